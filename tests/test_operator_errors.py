"""Operator mistakes around the chain end in one ``Error:`` line that says what to do: a
``--network`` that is not one, a node that is down, a deployments file the chain does not
hold (anvil restarted), a post the market would refuse, too little ETH, two agents on one
journal. Two cases run ``ape run`` in a subprocess, as an operator meets them (a node that is
down fails inside Ape's command machinery, before the script runs; an unanswered question
needs a real stdin); the rest invoke the same commands in-process (each ``ape run`` costs
seconds of start-up), the way tests/test_operator_cli.py does."""

import json
import os
import random
import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee.agents.deployment import Deployment
from referee.cli import main as referee
from referee.inputs import save_rows
from referee.modelfile import save_model

ROOT = Path(__file__).resolve().parents[1]
APE = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "ape"


def ape_run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{APE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(APE if APE.exists() else "ape"), "run", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def script(name: str):
    """An Ape script's click command, loaded as ``ape run`` loads it."""
    import importlib.util
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cli


def one_error_line(output: str, fragment: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ") and fragment in lines[0], output
    assert "Traceback" not in output and "IncompleteFieldDefinitionWarning" not in output
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("errors")
    model = to_integer_model(random_ref_model(random.Random(31), 6, [5, 3]))
    save_model(model, base / "model")
    save_rows(int8_tensor(random_input(random.Random(32), 2, 6)), base / "input.json")
    return base


@pytest.fixture(scope="module")
def stale(chain, files):
    """A deployments file for this chain id whose addresses hold no code: what a restarted
    anvil leaves behind."""
    addresses = ["0x" + bytes([n] * 20).hex() for n in (0x11, 0x22, 0x33)]
    path = files / "stale.json"
    Deployment(chain_id=chain.provider.chain_id, network="ethereum:custom", registry=addresses[0], game=addresses[1],
               market=addresses[2], block=1, params={}).save(path)
    return path


def test_operator_network_unreachable_one_line_reverts():
    port = closed_port()
    result = ape_run("status", "1", "--network", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    one_error_line(result.stdout + result.stderr, f"cannot connect to http://127.0.0.1:{port}")


@pytest.mark.parametrize("network, fragment", [
    ("127.0.0.1:18545", "a node's URL needs its scheme, e.g. http://127.0.0.1:18545"),
    ("ethereum:nowhere", "cannot use network ethereum:nowhere"),
])
def test_operator_network_not_a_network_one_line_reverts(network, fragment):
    result = CliRunner().invoke(script("status"), ["1", "--network", network])
    assert result.exit_code == 1
    one_error_line(result.output, fragment)


@pytest.mark.parametrize("name, args", [
    ("status", ["1"]),
    ("post_job", ["{model}", "{input}", "--account", "TEST::1", "--yes"]),
])
def test_operator_script_stale_deployment_one_line_reverts(chain, files, stale, name, args):
    args = [a.format(model=files / "model", input=files / "input.json") for a in args]
    result = CliRunner().invoke(script(name), [*args, "--network", chain.provider.uri, "--deployment", str(stale)])
    assert result.exit_code == 1
    line = one_error_line(result.output, "no contract at its registry, game and market addresses")
    assert "the chain was reset since the file was written" in line and "ape run deploy" in line


@pytest.mark.parametrize("command", [
    ["solve", "--account", "TEST::2", "--model", "{model}", "--once"],
    ["unstake", "--account", "TEST::2"],
])
def test_operator_agent_stale_deployment_one_line_reverts(chain, files, stale, command):
    args = [a.format(model=files / "model") for a in command]
    result = CliRunner().invoke(referee, [*args, "--network", chain.provider.uri, "--deployment", str(stale)])
    assert result.exit_code == 1, result.output
    one_error_line(result.output, "no contract at its registry, game and market addresses")


def test_operator_rehearse_stale_deployment_one_line_reverts(chain, files, stale, tmp_path):
    result = CliRunner().invoke(referee, ["rehearse", "--fork-url", chain.provider.uri, "--job", "1", "--account",
                                          "TEST::3", "--deployment", str(stale), "--model", str(files / "model"),
                                          "--home", str(tmp_path)])
    assert result.exit_code == 1, result.output
    one_error_line(result.output, "no contract at its")


@pytest.fixture(scope="module")
def deployed(chain, files):
    path = files / "deployment.json"
    network = ["--network", chain.provider.uri]
    for name, args in (("deploy", ["--account", "TEST::0", "--out", str(path)]),
                       ("register_model", ["--account", "TEST::0", str(files / "model"), "--deployment", str(path)])):
        result = CliRunner().invoke(script(name), [*network, *args])
        assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("args, fragment", [
    (["--fee", "0"], "--fee must be more than 0"),
    (["--bond", "0.01"], "--bond 0.01 ETH is below this market's minimum solver bond 0.1 ETH"),
    (["--fee", "100000000"], "less than the fee 100,000,000 ETH: fund the account or lower --fee"),
])
def test_operator_post_job_refused_before_sending_one_line_reverts(chain, files, deployed, args, fragment):
    head = chain.blocks.height
    result = CliRunner().invoke(script("post_job"), [str(files / "model"), str(files / "input.json"), "--account",
                                                     "TEST::1", "--yes", *args, "--network", chain.provider.uri,
                                                     "--deployment", str(deployed)])
    assert result.exit_code == 1
    one_error_line(result.output, fragment)
    assert chain.blocks.height == head  # nothing sent


def test_operator_post_job_without_yes_and_no_terminal_sends_nothing_reverts(chain, files, deployed):
    head = chain.blocks.height
    result = ape_run("post_job", files / "model", files / "input.json", "--account", "TEST::1",
                     "--network", chain.provider.uri, "--deployment", deployed)
    assert result.returncode == 1, result.stdout
    assert "fee          0.01 ETH" in result.stdout  # the cost is shown first
    last = result.stderr.strip().splitlines()[-1]
    assert last == "Error: nothing sent: pass --yes to post the job without being asked"
    assert chain.blocks.height == head


def test_operator_two_agents_one_journal_second_refused_reverts(chain, files, deployed, tmp_path):
    from referee.agents.journal import Journal

    state = tmp_path / "state.sqlite"
    running = Journal(state)  # the first agent, still running
    try:
        result = CliRunner().invoke(referee, ["watch", "--account", "TEST::3", "--model", str(files / "model"),
                                              "--state", str(state), "--once", "--network", chain.provider.uri,
                                              "--deployment", str(deployed)])
        assert result.exit_code == 1, result.output
        one_error_line(result.output, f"agent state {state} is in use by another agent (pid {os.getpid()})")
    finally:
        running.close()
    result = CliRunner().invoke(referee, ["watch", "--account", "TEST::3", "--model", str(files / "model"), "--state",
                                          str(state), "--once", "--network", chain.provider.uri, "--deployment",
                                          str(deployed)])
    assert result.exit_code == 0, result.output  # once the first has stopped, the next one runs
    assert json.loads(deployed.read_text())["market"]


def test_operator_journal_of_another_deployment_says_what_to_do_reverts(chain, files, deployed, tmp_path):
    """An agent started on a journal written for another deployment: what happened, what to do."""
    other = tmp_path / "other.json"
    result = CliRunner().invoke(script("deploy"), ["--network", chain.provider.uri, "--account", "TEST::0", "--out",
                                                   str(other)])
    assert result.exit_code == 0, result.output
    state = tmp_path / "state.sqlite"
    watch = ["watch", "--account", "TEST::3", "--model", str(files / "model"), "--state", str(state), "--once",
             "--network", chain.provider.uri]
    assert CliRunner().invoke(referee, [*watch, "--deployment", str(deployed)]).exit_code == 0
    result = CliRunner().invoke(referee, [*watch, "--deployment", str(other)])
    assert result.exit_code == 1
    line = one_error_line(result.output, f"agent state {state} belongs to market")
    assert "it is another deployment's journal" in line and "aside (or delete it) to start afresh" in line


@pytest.mark.parametrize("command", ["solve", "watch"])
def test_operator_agent_network_without_scheme_one_line_reverts(files, command):
    result = CliRunner().invoke(referee, [command, "--account", "TEST::2", "--model", str(files / "model"),
                                          "--network", "127.0.0.1:18545", "--once"])
    assert result.exit_code == 1
    one_error_line(result.output, "a node's URL needs its scheme, e.g. http://127.0.0.1:18545")


@pytest.mark.parametrize("command", ["solve", "watch"])
def test_operator_agent_unknown_device_one_line_reverts(chain, files, deployed, tmp_path, command):
    result = CliRunner().invoke(referee, [command, "--account", "TEST::2", "--model", str(files / "model"),
                                          "--network", chain.provider.uri, "--deployment", str(deployed),
                                          "--home", str(tmp_path), "--device", "tpu", "--once"])
    assert result.exit_code == 1
    one_error_line(result.output, "--device tpu: not a device; use auto, cpu, cuda or cuda:N")
