"""Floods in wall-clock time: the real ``referee solve`` / ``referee watch`` against a chain that
mines on its own clock, and an attacker that answers every move at once.

Unlike ``test_floods.py`` (lockstep: every party acts, then a block is mined) the test's anvil
mines a block every ``REFEREE_WALLCLOCK_BLOCK`` seconds (1 by default) whatever the parties
do, so an agent's own speed (its reads, signatures, sends and journal writes) is charged to its
chess clock, as on a real chain. The agents run as subprocesses through the CLI, as an operator
runs them; the attacker runs in the test process (``tests/flood.py``'s ``Attacker``, or a lying
``Solver`` for the bait jobs), looking at the chain every 0.1 s.

- Sybil games: K challenges against an honest solver's result, each game played by the Sybil
  from a lying trace (it loses at the step, as soon as the game gets there).
- Bait jobs: a liar posts J jobs of its own, commits wrong results and defends them at once;
  an honest challenger must win every game.

Each must be won with at least ``REFEREE_WALLCLOCK_KEEP`` (1/3 by default) of every honest
clock left (a behaviour: seconds on the chain's clock, not a timing of the code). ``make test``
plays K=20 and J=10 at 1-second blocks and a 60 s clock; ``make test-long`` plays K and J at the
agents' stated capacity with two busy processes (``REFEREE_WALLCLOCK_BUSY``), and a 12-second
block run of K=200, J=100 at the default clock keeping half of it.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flood import ROWS, Attacker, job_input, model  # noqa: F401 (fixture)
from game_bots import STATS
from referee import cheats
from referee import commitments as cm
from referee.agents import capacity as cap
from referee.agents.client import COMMITTED, ChainClient
from referee.agents.deployment import DEFAULT_PARAMS, deploy
from referee.agents.journal import Journal
from referee.agents.solver import Solver
from referee.executor import run_model
from referee.modelfile import save_model
from referee.trace import Trace, TraceStore
from rpc import Node

BLOCK = int(os.environ.get("REFEREE_WALLCLOCK_BLOCK", "1"))
CLOCK = int(os.environ.get("REFEREE_WALLCLOCK_CLOCK", "60" if BLOCK == 1 else str(DEFAULT_PARAMS["clock"])))
KEEP = float(os.environ.get("REFEREE_WALLCLOCK_KEEP", str(1 / 3 if BLOCK == 1 else 1 / 2)))
BUSY = int(os.environ.get("REFEREE_WALLCLOCK_BUSY", "0"))
WINDOWS = (600, 600, 3 * CLOCK + 600)  # claim, commit, challenge: the challenges land well inside
BOND = DEFAULT_PARAMS["challenger_bond"]


def _count(name: str, default: int, as_solver: bool, model) -> int:
    """A flood size from the environment; ``capacity``: the agent's stated capacity for these
    games at this block time and clock (the gas bound, before any sending is measured)."""
    value = os.environ.get(name, str(default))
    if value != "capacity":
        return int(value)
    widest = cap.widest_row_bytes(model)
    return cap.Capacity(BLOCK, 30_000_000, CLOCK, cap.moves_per_game(len(model.ops), ROWS, DEFAULT_PARAMS["arity"],
                                                                      as_solver), cap.move_gas_bound(widest)).games


class WallClock:
    """The test chain mining a block every ``BLOCK`` seconds while the test runs, the agents as
    subprocesses, and any busy processes; all undone on exit."""

    def __init__(self, chain, tmp_path: Path):
        self.node, self.uri, self.tmp = Node(chain.provider.uri), chain.provider.uri, tmp_path
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        for _ in range(BUSY):  # processes that each keep a core busy, as a solver's inference does
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while 1: pass"]))
        self.node.request("evm_setAutomine", [False])
        self.node.request("evm_setIntervalMining", [BLOCK])
        return self

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.node.request("evm_setIntervalMining", [0])
        self.node.request("evm_setAutomine", [True])

    def agent(self, command: str, account: str, files: dict, *extra: str) -> Path:
        """Start ``referee <command>`` as an operator would; returns its log file."""
        log = self.tmp / f"{command}.log"
        referee = Path(sys.executable).with_name("referee")
        args = [str(referee), command, "--network", self.uri, "--account", account, "--deployment",
                str(files["deployment"]), "--model", str(files["model"]), "--home", str(self.tmp / command),
                "--block-time", str(BLOCK), "--device", "cpu", "--log-file", str(log), *extra]
        # its output to a file, never a pipe: a pipe no one reads fills and blocks the agent
        with open(self.tmp / f"{command}.out", "wb") as out:
            self.procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               env={**os.environ, "PYTHONUNBUFFERED": "1"}))
        return log

    def until(self, done, act=lambda: None, limit: float = 600.0) -> None:
        """Call ``act`` every 0.1 s until ``done()``; fail after ``limit`` seconds or if an agent died."""
        deadline = time.monotonic() + limit
        while not done():
            for proc in self.procs:
                if proc.poll() is not None and proc.args[0] != sys.executable:
                    output = (self.tmp / f"{proc.args[1]}.out").read_text()
                    raise AssertionError(f"{proc.args[1]} exited: {output[-2000:]}")
            assert time.monotonic() < deadline, f"not done within {limit:.0f} s"
            act()
            time.sleep(0.1)


@pytest.fixture
def world(accounts, model, tmp_path):
    """A deployment with a ``CLOCK`` s game clock and the flood model registered, saved as an
    operator's files (deployment.json and the model folder)."""
    d = deploy(accounts[0], sink=str(accounts[9].address), clock=CLOCK)
    ChainClient(d, accounts[0]).registry.register(*model.registration(), sender=accounts[0])
    save_model(model, tmp_path / "model")
    return d, {"deployment": d.save(tmp_path / "deployment.json"), "model": tmp_path / "model"}


def judge(name: str, count_name: str, count: int, game, games: list[int], as_solver: bool) -> str:
    """Every game won by the honest side, with at least KEEP of its clock left; the flood line."""
    won = sum(game.result(g) == (1 if as_solver else 2) for g in games)
    left = [game.games(g).solver_time if as_solver else game.games(g).challenger_time for g in games]
    line = (f"flood (wall clock, {BLOCK} s blocks, {name}, {BUSY} busy processes): {count_name}={count}, won "
            f"{won}/{len(games)}, least clock left {min(left, default=0)} s of {CLOCK}")
    STATS.figures.append(line)
    assert len(games) == count and won == count, line
    assert min(left) >= KEEP * CLOCK, line
    return line


def test_wallclock_sybil_flood_honest_solver_wins_with_clock_left(chain, accounts, model, world, tmp_path):
    K = _count("REFEREE_WALLCLOCK_GAMES", 20, True, model)
    deployment, files = world
    market, game = ChainClient(deployment, accounts[0]).market, ChainClient(deployment, accounts[0]).game
    x = job_input(1)
    market.post(1, ROWS, cm.packed(x), 10**18, *WINDOWS, value=3 * 10**16, sender=accounts[1])
    job = market.job_count()
    lie = cheats.apply("wrong-output", Trace(model.root, run_model(model, x, "cpu")), model)
    attacker = Attacker(ChainClient(deployment, accounts[3], Journal(tmp_path / "attacker.sqlite")), model,
                        lambda job_id: lie, as_solver=False)

    with WallClock(chain, tmp_path) as clock:
        clock.agent("solve", "TEST::2", files, "--stake", "1")
        clock.until(lambda: market.job(job).status == COMMITTED)
        attacker.challenge(job, K)
        clock.until(lambda: len(attacker.games) == K and all(game.result(g) != 0 for g in attacker.games),
                    act=attacker.tick, limit=6 * CLOCK + 120)
    judge("Sybil games on an honest solver", "K", K, game, sorted(attacker.games), as_solver=True)


class Liar(Solver):
    """The bait jobs' solver: an attacker claims and commits every job it posted at once,
    however many games they may draw (an honest solver counts its claims against capacity)."""

    def commitments(self) -> int:
        return 0


def test_wallclock_bait_jobs_honest_challenger_wins_with_clock_left(chain, accounts, model, world, tmp_path):
    J = _count("REFEREE_WALLCLOCK_JOBS", 10, False, model)
    deployment, files = world
    journal = Journal(tmp_path / "liar" / "state.sqlite")
    liar = Liar(ChainClient(deployment, accounts[4], journal, patience=30), journal, [model],
                  TraceStore(tmp_path / "liar" / "traces"), name="liar", device="cpu", cheat="wrong-output",
                  min_fee=0, block_time=BLOCK, log=lambda line: None)
    min_bond = DEFAULT_PARAMS["min_solver_bond"]
    liar.ensure_stake(J * min_bond)
    market, game = liar.client.market, liar.client.game
    jobs = []
    for i in range(J):  # the liar's own jobs, at 1 wei each
        market.post(1, ROWS, cm.packed(job_input(100 + i)), min_bond, *WINDOWS, value=1, sender=accounts[4])
        jobs.append(market.job_count())
    start = chain.blocks.height

    def games() -> list[int]:
        return sorted(log.game_id for log in market.JobChallenged.range(
            start, chain.blocks.height + 1, search_topics={"challenger": accounts[5].address}))

    with WallClock(chain, tmp_path) as clock:
        clock.until(lambda: all(market.job(j).status == COMMITTED for j in jobs), act=liar.tick)
        clock.agent("watch", "TEST::5", files)
        clock.until(lambda: len(games()) == J and all(game.result(g) != 0 for g in games()), act=liar.tick,
                    limit=6 * CLOCK + 120)
    judge("bait jobs on an honest challenger", "J", J, game, games(), as_solver=False)
