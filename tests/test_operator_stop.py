"""Stopping an agent says what it leaves in play. ``referee watch`` runs as its own process (as
an operator runs it) against a lying solver's job; once its challenge is mined and the game is in
its journal, it is sent SIGTERM (what ``kill``, ``docker stop`` and systemd send; Ctrl-C takes
the same path). It exits 0 and its last lines name the game still in play, whose move it is, the
time left and the deadline: a WARNING, since a long stop can lose that game on time."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from flood import FEE, ROWS, SOLVER_BOND, WINDOWS, agent, deployment, job_input, model  # noqa: F401 (fixtures)
from referee import commitments as cm
from referee.agents.client import COMMITTED
from referee.agents.drive import drive
from referee.agents.solver import Solver
from referee.modelfile import save_model

ROOT = Path(__file__).resolve().parents[1]


def _wait_for(path: Path, pattern: str, process, limit: float = 240) -> str:
    """The log file's text once ``pattern`` is in it (a bound, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if re.search(pattern, text):
            return text
        assert process.poll() is None, text
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} never logged:\n{path.read_text() if path.exists() else ''}")


def test_operator_watch_stopped_by_sigterm_names_games_in_play_succeeds(chain, accounts, deployment, agent, model,
                                                                         tmp_path):
    solver = agent(Solver, accounts[2], "liar", cheat="wrong-output")
    solver.ensure_stake(SOLVER_BOND)
    market = solver.client.market
    market.post(1, ROWS, cm.packed(job_input(7)), SOLVER_BOND, *WINDOWS, value=FEE, sender=accounts[1])
    job = market.job_count()
    drive([solver], lambda: market.job(job).status == COMMITTED)
    save_model(model, tmp_path / "model")
    deployment.save(tmp_path / "deployment.json")
    log = tmp_path / "watch.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "offchain"), os.environ.get("PYTHONPATH", "")])}
    watch = subprocess.Popen([sys.executable, "-m", "referee.cli", "watch", "--network", chain.provider.uri,
                              "--account", "TEST::3", "--deployment", str(tmp_path / "deployment.json"), "--model",
                              str(tmp_path / "model"), "--home", str(tmp_path / "home"), "--poll", "0.5",
                              "--block-time", "12", "--log-file", str(log)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(log, rf"waiting: game \d+: the opponent's move", watch)  # the game is in its journal
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=120) == 0
    finally:
        if watch.poll() is None:
            os.killpg(watch.pid, signal.SIGKILL)
            watch.wait()
    lines = log.read_text().splitlines()
    game = solver.client.game.game_count()
    [left] = [line for line in lines if f"stopped: game {game} (job {job}) still in play" in line]
    assert " WARNING challenger " in left and "at bisect, the opponent's move" in left, lines
    assert re.search(r"(\d+ min \d\d s|1 h \d\d min) left \(deadline \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$", left), left
    assert lines[-1].endswith("stopped; start again with the same --state to resume"), lines
