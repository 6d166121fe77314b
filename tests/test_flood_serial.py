"""The Sybil flood of issue 11 against the solver as it was and as it is, side by side.

Clock 600 s, 12 Sybil games, 12-second blocks (tests/flood.py). ``SerialSolver`` plays as the
agents did before batched play: one transaction at a time, each waited for, games in turn, so
with K games every answer waits about K blocks and the clock is charged for the wait. It loses
games on time. The real ``Solver`` answers every game in the next block and wins all of them.
"""

import pytest

from flood import Lockstep, sybil_scene
from flood import agent, model  # noqa: F401 (fixtures)
from game_bots import STATS
from referee.agents.client import COMMITTED, ChainClient
from referee.agents.deployment import deploy
from referee.agents.solver import Solver

GAMES = 12
CLOCK = 600


class SerialSolver(Solver):
    """The pre-batching solver: one action per block, the next only once it is mined."""

    def _flush(self) -> int:
        if self.client.in_flight():
            self._queue = []
            return 0
        self._queue = self._queue[:1]  # games in turn, as its old loop sent them
        return super()._flush()


@pytest.fixture
def deployment(accounts, model):
    d = deploy(accounts[0], sink=str(accounts[9].address), clock=CLOCK)
    ChainClient(d, accounts[0]).registry.register(*model.registration(), sender=accounts[0])
    return d


@pytest.mark.parametrize("cls", [SerialSolver, Solver], ids=["serial", "batched"])
def test_sybil_flood_serial_play_loses_batched_play_wins(chain, accounts, deployment, model, agent, tmp_path, cls):
    solver = agent(cls, accounts[2], "solver")
    market, game = solver.client.market, solver.client.game
    job, attacker = sybil_scene(solver, model, deployment, accounts[1], accounts[3], tmp_path)

    def over():
        return len(attacker.games) == GAMES and all(game.result(g) != 0 for g in attacker.games)

    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([solver], [solver], lambda: market.job(job).status == COMMITTED)
        attacker.challenge(job, GAMES)
        lockstep.run([solver, attacker], [solver], over)
    won = sum(game.result(g) == 1 for g in attacker.games)
    STATS.figures.append(f"flood (Sybil games, clock {CLOCK} s, {cls.__name__}): K={GAMES}, won {won}/{GAMES}, "
                         f"{lockstep.blocks.line()}")
    if cls is SerialSolver:
        assert won < GAMES  # the attack of issue 11 succeeds against one-at-a-time play
    else:
        assert won == GAMES
