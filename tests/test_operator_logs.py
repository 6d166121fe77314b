"""``referee solve|watch --log-file --log-level``: lines an operator can read and grep.

The agents run in-process through click's runner against the test chain, as an operator runs
them: a solver with a wrong output and a challenger take turns (``--once``), each writing to
its own log file. Every line has a UTC timestamp, a level and the agent's name; a restarted
agent says which game it resumes and at which phase; a solver waiting for its window says how
long is left; ``--log-level warning`` drops the INFO lines.
"""

import random
import re

from click.testing import CliRunner

from flood import deployment, model  # noqa: F401 (fixtures)
from helpers import int8_tensor, random_input
from referee import commitments as cm
from referee.agents.client import ChainClient
from referee.cli import main as referee
from referee.modelfile import save_model

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO |WARNING|ERROR) (solver|challenger) +\S")


def test_operator_log_files_are_timestamped_levelled_and_say_what_resumes(chain, accounts, deployment, model,
                                                                          tmp_path):
    save_model(model, tmp_path / "model")
    deployment.save(tmp_path / "deployment.json")
    common = ["--network", chain.provider.uri, "--deployment", str(tmp_path / "deployment.json"), "--model",
              str(tmp_path / "model"), "--home", str(tmp_path / "home"), "--once"]
    x = int8_tensor(random_input(random.Random(4), 8, 7))
    market = ChainClient(deployment, accounts[0]).market
    market.post(1, 8, cm.packed(x), 10**18, 600, 600, 1800, value=3 * 10**16, sender=accounts[1])

    def solve(*extra):
        result = CliRunner().invoke(referee, ["solve", "--account", "TEST::2", "--stake", "1", "--cheat",
                                              "wrong-output", "--log-file", str(tmp_path / "solver.log"), *common,
                                              *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    def watch(*extra):
        result = CliRunner().invoke(referee, ["watch", "--account", "TEST::3", "--log-file",
                                              str(tmp_path / "challenger.log"), *common, *extra],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output

    solve()
    watch()  # challenges: the game opens
    solve()  # bisects: the game is in its journal now
    watch()  # chooses
    solve()  # a restart: it resumes the game from its journal (the second bisection round)
    watch("--log-level", "warning")
    solver_log = (tmp_path / "solver.log").read_text().splitlines()
    challenger_log = (tmp_path / "challenger.log").read_text().splitlines()
    assert solver_log and all(LINE.match(line) for line in solver_log), solver_log
    assert any(re.search(r"INFO  solver +job 1: claimed \(gas [\d,]+\)$", line) for line in solver_log)
    assert any(re.search(r"waiting: job 1's challenge window, \d+ min \d\d s left", line) for line in solver_log)
    assert any("resuming job 1 (committed)" in line for line in solver_log)
    assert any(re.search(r"resuming game 1 at bisect \(solver to move, (\d+ min \d\d s|1 h \d\d min) left\)", line)
               for line in solver_log), solver_log
    assert any("capacity for" in line and "a flood beyond it costs the attacker" in line for line in solver_log)
    assert all(LINE.match(line) for line in challenger_log), challenger_log
    starts = [line for line in challenger_log if "watching market" in line]
    assert len(starts) == 2  # the third, warning-level run logged no INFO line, not even its start
