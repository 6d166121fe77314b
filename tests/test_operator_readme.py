"""The README's local-play recipe, pasted line by line into one shell, runs a whole job to payment
and a dispute to its end.

The test takes the ``sh`` block under "Try it on a local chain" exactly as the README has it
and feeds it to ``bash`` on its standard input, as a paste would be (so the ``for`` loop spans
lines as typed). The only change is the port (8545 -> a free one), so a chain already running
on 8545 is not touched. It runs in a scratch copy of the repository's layout (links to
``.venv``, ``contracts``, ``scripts`` and the Ape config; its own ``build/`` and
``deployments/``), so nothing in the checkout changes. The anvil it starts is stopped by the
recipe's ``kill %1``, and by the test's own clean-up if a line fails.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTION = "### Try it on a local chain"


def recipe() -> str:
    """The first ``sh`` code block after the README's local-play heading, verbatim."""
    text = (ROOT / "README.md").read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    after = text[text.index(SECTION):]
    match = re.search(r"```sh\n(.*?)```", after, re.S)
    assert match, "no sh block in the local-play section"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sandbox(tmp_path):
    for name in (".venv", "contracts", "scripts", "ape-config.yaml"):
        (tmp_path / name).symlink_to(ROOT / name)
    if (ROOT / ".build").is_dir():  # compiled contracts; Ape recompiles any source that changed
        shutil.copytree(ROOT / ".build", tmp_path / ".build")
    return tmp_path


def run_recipe(sandbox, lines: str, timeout: float = 900) -> str:
    """``lines`` pasted into one ``bash`` on a free port; its output.

    The output goes to a file and the test waits for ``bash`` itself, not for the end of its
    output: a line that fails stops the shell under ``set -e`` before ``kill %1``, and the anvil
    it started in the background keeps the output open. Reading to the end of a pipe then
    waited the whole timeout (900 s) for nothing; now the test fails at once with the output.
    A shell still running at ``timeout`` is stopped with its anvil, and the test fails with its
    last lines (which say which command hung)."""
    port = free_port()
    script = "set -e -o pipefail\n" + lines.replace("8545", str(port))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFEREE_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    log = sandbox / "recipe.out"
    with open(log, "w") as output:
        shell = subprocess.Popen(["bash"], cwd=sandbox, env=env, stdin=subprocess.PIPE, stdout=output,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
        shell.stdin.write(script)
        shell.stdin.close()
        try:
            shell.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if shell.poll() is None or _listening(port):  # hung, or a line failed: stop the shell and its anvil
                os.killpg(shell.pid, signal.SIGKILL)
                shell.wait()
    out = log.read_text()
    assert shell.returncode == 0, f"the recipe failed (exit {shell.returncode}); its last lines:\n" + "\n".join(
        out.splitlines()[-60:])
    assert "Traceback" not in out and "Error:" not in out, out
    assert "IncompleteFieldDefinitionWarning" not in out, out  # ape run prints no pydantic warning
    assert not _listening(port)  # kill %1 stopped the chain
    return out


def test_operator_readme_recipe_pasted_runs_job_and_dispute_succeeds(sandbox):
    lines = recipe()
    assert "8545" in lines and "--once" in lines and "ape run advance" in lines
    out = run_recipe(sandbox, lines)

    # the honest job: claimed, committed, then finalized after the window and paid
    assert "job 1: claimed" in out and "job 1: committed" in out, out
    assert "past job 1's challenge window" in out, out
    assert "job 1: finalized" in out, out  # ape run status 1
    assert "finalized, no challenge won: fee 0.01 ETH credited to solver" in out, out
    # the cheater: challenged, the game played to its end, the bond slashed
    assert "job 2: wrong S_N, challenged" in out, out
    assert "game 1: over: the challenger won (element differs)" in out, out
    assert "job 2: rejected" in out and "game 1: over, challenger won" in out, out
    assert "withdrew 0.9 ETH of stake" in out, out


PAUSE = 15  # seconds between commands, as typed: each transaction is a block that much later


@pytest.mark.long  # 95 s of pauses and process starts: make test-long runs it, make test deselects it
def test_operator_readme_recipe_typed_with_pauses_serves_the_job_succeeds(sandbox):
    """The recipe's honest job typed at a human pace: a pause after the deploy, the registration
    and the post, so the automining chain's blocks come 15 s or more apart. The solver still takes the
    60 s commit window (the chain's gaps are pauses, not a block time) and the job is paid; it
    used to skip it as "under 5 blocks of 15 s". (The dispute half is left out: it adds minutes
    and no pause.)"""
    kept, paced = recipe().splitlines(), []
    for line in kept[:next(i for i, line in enumerate(kept) if line.startswith("ape run status 1")) + 1]:
        paced.append(line)
        if line.startswith(("ape run deploy", "ape run register_model", "ape run post_job")):
            paced.append(f"sleep {PAUSE}")
    out = run_recipe(sandbox, "\n".join(paced + ["kill %1"]) + "\n", timeout=600)
    assert out.count("\n") and "skipped" not in out, out
    assert "job 1: claimed" in out and "job 1: committed" in out and "job 1: finalized" in out, out
    assert "blocks of 12 s (assumed: the chain mines a block per transaction" in out, out


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_operator_readme_recipe_names_only_real_options_succeeds():
    """Cheap guard for the slow test: every `ape run` script and `referee` command the recipe
    calls exists (a renamed script would otherwise fail three minutes in)."""
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py") if not p.stem.startswith("_")}
    called = set(re.findall(r"ape run (\w+)", recipe()))
    assert called <= scripts, called - scripts
    from referee.cli import main

    assert set(re.findall(r"^\s*referee (\w+)", recipe(), re.M)) <= set(main.commands)
