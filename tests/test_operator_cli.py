"""The operator commands against the test chain: Ape scripts and ``referee solve|watch|unstake``.

The commands are invoked in-process with click's runner and ``--network`` set to the test
chain's URL (so Ape connects a second provider to the same anvil, exactly as an operator's
command connects to a running node); one test runs the installed ``referee`` entry point in a
subprocess. A whole job goes through the scripts and agents: deploy, register, post, solve
with a cheat, watch and dispute, status, unstake. User mistakes end in one ``Error:`` line.
"""

import importlib.util
import shutil
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from referee.cli import main as referee
from referee.inputs import save_rows
from referee.modelfile import save_model

from helpers import int8_tensor, random_input, random_ref_model, to_integer_model

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    if str(ROOT) not in sys.path:  # the scripts import scripts._shared, as under `ape run`
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import random

    base = tmp_path_factory.mktemp("operator")
    model = to_integer_model(random_ref_model(random.Random(9), 6, [5, 7, 3]))
    model.name = "operator-model"
    save_model(model, base / "model")
    save_rows(int8_tensor(random_input(random.Random(10), 3, 6)), base / "input.json")
    return base


def run(command, args: list[str], expect_ok: bool = True) -> str:
    result = CliRunner().invoke(command, args, catch_exceptions=False)
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result.output


def test_operator_whole_job_through_scripts_and_agents_succeeds(chain, files):
    network = ["--network", chain.provider.uri]
    deployment = str(files / "deployment.json")
    out = run(script("deploy"), [*network, "--account", "TEST::0", "--out", deployment, "--clock", "600"])
    assert "market" in out and json.loads(Path(deployment).read_text())["params"]["clock"] == 600
    out = run(script("deploy"), [*network, "--account", "TEST::0", "--out", deployment], expect_ok=False)
    assert "pass --force" in out

    d = ["--deployment", deployment]
    assert "registered operator-model as model 1" in run(script("register_model"),
                                                         [*network, "--account", "TEST::0", str(files / "model"), *d])
    assert "already model 1" in run(script("register_model"), [*network, "--account", "TEST::0",
                                                               str(files / "model"), *d])
    out = run(script("post_job"), [*network, "--account", "TEST::1", str(files / "model"), str(files / "input.json"),
                                   "--fee", "0.02", "--challenge-window", "900", "--yes", *d])
    # the cost is shown before sending (--yes: without asking), then the job
    preview, posted = out.strip().splitlines()[:-1], out.strip().splitlines()[-1]
    assert preview[0] == "post a job: operator-model (model 1) on 3 rows"
    assert any(line.split() == ["windows", "claim", "3,600", "s,", "commit", "3,600", "s,", "challenge", "900", "s"]
               for line in preview)
    gas_line = next(line for line in preview if line.lstrip().startswith("gas"))
    assert "about" in gas_line and "gwei" in gas_line and "0.02 ETH, escrowed now" in out
    assert posted.startswith("job 1: operator-model on 3 rows, fee 0.02 ETH")

    agent = [*network, *d, "--model", str(files / "model"), "--home", str(files / "home"), "--once"]
    out = run(referee, ["solve", "--account", "TEST::2", "--stake", "1", "--cheat", "wrong-output", *agent])
    assert "job 1: claimed" in out and "job 1: committed" in out
    # the two agents take turns, each a fresh process-like start from its journal
    for _ in range(12):
        run(referee, ["watch", "--account", "TEST::3", *agent])
        run(referee, ["solve", "--account", "TEST::2", "--cheat", "wrong-output", *agent])
    status = run(script("status"), [*network, "1", *d])  # the op's kind read from the chain, no --model
    assert "job 1: rejected" in status and "game 1: over, challenger won" in status
    # the timeline in words: who moved and what it means, never raw event names
    for said in ("requester 0x7099…79C8 posted job 1: model 1 on 3 rows, fee 0.02 ETH",
                 "claimed it, locking a bond of 0.1 ETH", "committed its result", "challenged with a bond of 0.1 ETH",
                 "game 1: the challenger disputes part", "the disputed op is found",
                 "game 1: the solver revealed op 3 (linear)'s output, 3 x 3",
                 "game 1: the challenger disputes the", "game 1: over: the challenger won (element differs)",
                 "the result is rejected (game 1", "game 1 settled, the challenger won"):
        assert said in status, (said, status)
    assert "GameResolved" not in status and "JobRejected" not in status
    step = next(line for line in status.splitlines() if "recompute row" in line)
    assert "column" in step and "the solver claimed" in step and "they differ" in step
    assert "game 1: over, challenger won" in run(script("dispute"), [*network, "1", *d])

    # the cheater staked 1 ETH and lost its 0.1 ETH bond; the rest comes out, then nothing more
    assert "withdrew 0.9 ETH of stake" in run(referee, ["unstake", *network, "--account", "TEST::2", *d])
    assert "has no free stake" in run(referee, ["unstake", *network, "--account", "TEST::2", *d], expect_ok=False)


def test_operator_dispute_by_hand_and_timeout_succeeds(chain, accounts, files, tmp_path):
    """A challenge by hand (its cost shown first), moves by hand with defaults taken from the
    account, the clock advanced by the advance script, and a timeout."""
    from referee.agents.journal import Journal

    network = ["--network", chain.provider.uri]
    deployment = str(files / "hand.json")
    run(script("deploy"), [*network, "--account", "TEST::0", "--out", deployment, "--clock", "600"])
    d = ["--deployment", deployment]
    run(script("register_model"), [*network, "--account", "TEST::0", str(files / "model"), *d])
    home = files / "hand-home"
    agent = [*network, *d, "--model", str(files / "model"), "--home", str(home), "--once"]
    post = [*network, "--account", "TEST::1", str(files / "model"), str(files / "input.json"), "--yes", *d]
    run(script("post_job"), post)
    run(referee, ["solve", "--account", "TEST::2", "--stake", "1", "--cheat", "stall", *agent])  # job 1, a lie
    run(script("post_job"), post)
    run(referee, ["solve", "--account", "TEST::5", "--stake", "1", *agent])  # job 2, right

    model = ["--model", str(files / "model")]
    hand = [*network, "--account", "TEST::3", "--home", str(home), *model, *d]
    out = run(script("challenge"), ["2", *hand, "--yes"], expect_ok=False)
    assert "Error: job 2's result is right" in out and "a challenge would lose its bond of 0.1 ETH; nothing sent" in out
    out = run(script("challenge"), ["1", *hand], expect_ok=False)  # no --yes, nothing to answer with
    assert "bond         0.1 ETH at risk" in out and "the bond back, its gas refunded, and up to 0.007 ETH" in out and "gwei" in out
    assert out.strip().splitlines()[-1].startswith("Error: nothing sent: not confirmed (--yes would send the challenge")
    out = run(script("challenge"), ["1", *hand, "--yes"])
    assert "job 1: challenged, game 1 opened" in out

    out = run(script("dispute"), [*network, "1", "--timeout", "--account", "TEST::3", *d])
    assert "solver to move, to bisect the disputed ops" in out and "nothing for" in out  # its clock is running
    # the clocks say time left (the contract's figure), the challenger's untouched since the challenge
    assert "clocks: solver" in out and "challenger 10 min 00 s left" in out and "used" not in out
    out = run(script("dispute"), [*network, "1", "--move", *hand])
    assert "nothing for" in out  # not the challenger's move
    # the stalling solver's move made by hand with every default from the account: its agent's
    # trace store and the model its journal names
    solver_journal = home / f"solver-{str(accounts[2].address).lower()}" / "state.sqlite"
    journal = Journal(solver_journal, lock=False)
    assert journal.model_dirs() == [files / "model"]  # `referee solve --model` recorded it
    journal.close()
    out = run(script("dispute"), [*network, "1", "--move", "--account", "TEST::2", "--home", str(home), *d])
    assert "sent bisect" in out and "no stored trace" not in out
    out = run(script("dispute"), [*network, "1", "--move", "--account", "TEST::3", "--home", str(tmp_path), *d],
              expect_ok=False)
    assert "Error: job 1 runs model 1: pass --model DIR, its model directory (no agent journal at" in out
    # the challenger's trace was kept by the challenge; a fresh store makes it run the model here
    out = run(script("dispute"), [*network, "1", "--move", *hand, "--store", str(tmp_path / "empty")])
    assert "no stored trace in" in out and "sent choose" in out
    out = run(script("advance"), [*network, "--game", "1", *d])
    assert "past the solver's clock in game 1" in out
    out = run(script("dispute"), [*network, "1", "--timeout", "--account", "TEST::4", *d])
    assert "sent timeout" in out and "challenger won" in out
    out = run(script("advance"), [*network, "--game", "1", *d], expect_ok=False)
    assert "Error: game 1 is over: it has no clock running" in out


@pytest.mark.parametrize("args, message", [
    (["solve", "--network", "http://127.0.0.1:9", "--account", "TEST::2", "--model", "m"], "cannot connect"),
    (["watch", "--account", "TEST::3", "--model", "m", "--deployment", "/nonexistent.json"], "no deployments file"),
    (["watch", "--account", "no-such-alias", "--model", "m"], "no account 'no-such-alias'"),
    (["solve", "--account", "TEST::2", "--model", "m", "--cheat", "lie"], "Invalid value for '--cheat'"),
    (["solve", "--account", "TEST::2", "--model", "m", "--stake", "lots"], "is not an amount of ETH"),
])
def test_operator_user_mistake_one_line_error_reverts(chain, files, args, message):
    # "m" stands for a model that loads: the models are read first, before any chain work
    args = [str(files / "model") if a == "m" else a for a in args]
    if "--network" not in args:
        args = [*args, "--network", chain.provider.uri]
    result = CliRunner().invoke(referee, args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_operator_entry_point_wrong_model_one_line_error_reverts(chain, files, tmp_path):
    deployment = tmp_path / "d.json"
    run(script("deploy"), ["--network", chain.provider.uri, "--account", "TEST::0", "--out", str(deployment)])
    result = subprocess.run([sys.executable, "-m", "referee.cli", "watch", "--network", chain.provider.uri,
                             "--account", "TEST::3", "--deployment", str(deployment), "--model", str(files / "model"),
                             "--home", str(tmp_path), "--once"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "is not registered on this chain" in result.stderr
    assert "Traceback" not in result.stderr


def test_operator_keystore_account_signs_unattended_succeeds(chain, accounts, files, tmp_path, monkeypatch):
    """An account from Ape's keystore, unlocked with REFEREE_PASSPHRASE; a wrong one is one line."""
    import uuid

    from ape_accounts import generate_account

    alias = f"referee-test-{uuid.uuid4().hex[:8]}"
    account, _ = generate_account(alias, "correct horse")
    try:
        accounts[0].transfer(account, 2 * 10**18)
        deployment = tmp_path / "d.json"
        run(script("deploy"), ["--network", chain.provider.uri, "--account", "TEST::0", "--out", str(deployment)])
        run(script("register_model"), ["--network", chain.provider.uri, "--account", "TEST::0",
                                       str(files / "model"), "--deployment", str(deployment)])
        solve = ["solve", "--network", chain.provider.uri, "--account", alias, "--deployment", str(deployment),
                 "--model", str(files / "model"), "--home", str(tmp_path), "--stake", "0.5", "--once"]
        monkeypatch.setenv("REFEREE_PASSPHRASE", "wrong")
        result = CliRunner().invoke(referee, solve)
        assert result.exit_code == 1 and f"wrong passphrase for account '{alias}'" in result.output
        monkeypatch.setenv("REFEREE_PASSPHRASE", "correct horse")
        assert "staked 0.5 ETH" in run(referee, solve)
    finally:
        account.keyfile_path.unlink()


@pytest.fixture(scope="module")
def hostile(chain, files, tmp_path_factory):
    """A deployment with the operator model registered, and hostile files next to the good ones."""
    import numpy as np

    base = tmp_path_factory.mktemp("hostile")
    deployment = str(base / "deployment.json")
    network = ["--network", chain.provider.uri]
    run(script("deploy"), [*network, "--account", "TEST::0", "--out", deployment])
    run(script("register_model"), [*network, "--account", "TEST::0", str(files / "model"), "--deployment", deployment])
    tampered = base / "tampered"
    shutil.copytree(files / "model", tampered)
    weights = bytearray((tampered / "weights.safetensors").read_bytes())
    weights[-1] ^= 1  # one weight changed: the model root no longer matches
    (tampered / "weights.safetensors").write_bytes(bytes(weights))
    truncated = base / "truncated"
    shutil.copytree(files / "model", truncated)
    (truncated / "weights.safetensors").write_bytes((files / "model" / "weights.safetensors").read_bytes()[:100])
    np.save(base / "float.npy", np.zeros((3, 6), dtype=np.float32))
    save_rows(int8_tensor([[1] * 5] * 3), base / "narrow.json")  # one column short
    save_rows(int8_tensor([[1] * 6] * 4097), base / "tall.json")  # past the market's 4096 rows
    (base / "ragged.json").write_text("[[1, 2, 3, 4, 5, 6], [1]]")
    return base, ["--network", chain.provider.uri, "--deployment", deployment]


@pytest.mark.parametrize("command, args, message", [
    ("register_model", ["TEST::0", "{base}/tampered"], "weights do not match weights_root"),
    ("register_model", ["TEST::0", "{base}/truncated"], "is corrupt or truncated"),
    ("post_job", ["TEST::1", "{model}", "{base}/float.npy"], "holds float32 values"),
    ("post_job", ["TEST::1", "{model}", "{base}/narrow.json"], "input has shape (3, 5); the model expects (rows, 6)"),
    ("post_job", ["TEST::1", "{model}", "{base}/ragged.json"], "rows have different lengths"),
    ("post_job", ["TEST::1", "{model}", "{base}/tall.json"],
     "the input has 4,097 rows; this market takes at most 4,096 per job"),
    ("post_job", ["TEST::1", "{base}/tampered", "{model}/../input.json"], "weights do not match weights_root"),
    ("solve", ["TEST::2", "{base}/tampered"], "weights do not match weights_root"),
    ("watch", ["TEST::3", "{base}/truncated"], "is corrupt or truncated"),
])
def test_operator_hostile_file_one_line_error_reverts(hostile, files, command, args, message):
    """Tampered or truncated model files and inputs of the wrong dtype, shape or size: one Error
    line, no traceback, nothing sent (the job count is unchanged)."""
    base, connection = hostile
    account, *paths = [a.format(base=base, model=files / "model") for a in args]
    if command in ("solve", "watch"):
        result = CliRunner().invoke(referee, [command, "--account", account, "--model", paths[0], "--home",
                                              str(base / "home"), "--once", *connection])
    else:
        result = CliRunner().invoke(script(command), [*connection, "--account", account, *paths])
    assert result.exit_code != 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error") and message in last and "Traceback" not in result.output, result.output
    status = CliRunner().invoke(script("status"), [*connection, "1"])
    assert "there is no job 1 (jobs so far: 0)" in status.output, status.output
