"""Losing money is an ERROR line and a metric; a low clock of ours is a WARNING first.

Real agents on the test chain, each logging through ``referee.agents.logs`` at ``warning``
level (what ``referee solve|watch --log-level warning`` sets up) into one stream, each with its
own ``AgentMetrics``. A lying solver (``wrong-intermediate``) faces an honest challenger and a
challenger that challenges and then never moves (``stall``). The games are opened, then the
clock is moved on to leave the solver under a quarter of its clock at its first move: it warns
in both games. It loses the honest challenger's game (its bond slashed), and the stalling
challenger loses its own on time (its bond taken). Every such line survives the warning level;
the metrics count the games lost, the bond slashed and the wei lost.
"""

import io

from flood import BOND, FEE, ROWS, SOLVER_BOND, WINDOWS, job_input
from flood import deployment, model  # noqa: F401 (fixtures)
from referee import commitments as cm
from referee.agents.challenger import Challenger
from referee.agents.client import COMMITTED, REJECTED, ChainClient
from referee.agents.drive import drive, warp
from referee.agents.journal import Journal
from referee.agents.logs import agent_logger, line_logger, setup_logging
from referee.agents.metrics import AgentMetrics
from referee.agents.solver import Solver
from referee.trace import TraceStore



def _sample(agent, name: str) -> float:
    return agent.metrics.registry.get_sample_value(name, agent.metrics.labels) or 0.0


def test_losses_are_errors_and_metrics_and_a_low_clock_warns_first(chain, accounts, deployment, model, tmp_path):
    stream = io.StringIO()
    setup_logging("warning", stream=stream)

    def make(cls, account, name, **options):
        journal = Journal(tmp_path / name / "state.sqlite")
        log = line_logger(agent_logger(name), prefix=f"{name}: ")
        client = ChainClient(deployment, account, journal, patience=30, log=log)
        agent = cls(client, journal, [model], TraceStore(tmp_path / name / "traces"), name=name, device="cpu",
                    block_time=12, log=log, **options)
        agent.metrics = AgentMetrics(agent.role, account.address)
        return agent

    liar = make(Solver, accounts[2], "solver", cheat="wrong-intermediate")
    staller = make(Challenger, accounts[3], "staller", cheat="stall")
    honest = make(Challenger, accounts[4], "honest")
    liar.ensure_stake(SOLVER_BOND)
    market, game = liar.client.market, liar.client.game
    market.post(1, ROWS, cm.packed(job_input(5)), SOLVER_BOND, *WINDOWS, value=FEE, sender=accounts[1])
    job = market.job_count()
    drive([liar], lambda: market.job(job).status == COMMITTED)
    drive([staller, honest], lambda: market.job(job).open_games == 2 and all(
        a.journal.active_games() for a in (staller, honest)))
    opened = max(game.games(g).last_move for g in (1, 2))
    warp(opened + game.CLOCK() * 4 // 5)  # the solver is to move in both, with a fifth of its clock left

    def done():
        return (market.job(job).status == REJECTED and market.job(job).open_games == 0
                and not liar.journal.active_jobs() and not staller.journal.active_games())

    drive([liar, staller, honest], done, max_rounds=200)
    lines = stream.getvalue().splitlines()
    assert lines and not any(" INFO " in line for line in lines), lines
    low = [line for line in lines if "low clock, our move with" in line]
    assert len(low) == 2 and all(" WARNING solver " in line for line in low), lines
    lost_game = [line for line in lines if " ERROR solver " in line and "; we lost" in line]
    slashed = [line for line in lines if " ERROR solver " in line and "rejected: our bond of 1 ETH was slashed" in line]
    staller_lost = [line for line in lines if " ERROR staller " in line and "we lost our bond of 0.1 ETH" in line]
    assert len(lost_game) == 1 and len(slashed) == 1 and len(staller_lost) == 1, lines
    assert _sample(liar, "referee_games_lost_total") == 1
    assert _sample(liar, "referee_bonds_slashed_total") == 1
    assert _sample(liar, "referee_wei_lost_total") == SOLVER_BOND
    assert _sample(liar, "referee_low_clock_alerts_total") == 2
    assert _sample(staller, "referee_games_lost_total") == 1
    assert _sample(staller, "referee_wei_lost_total") == BOND
    assert _sample(honest, "referee_games_lost_total") == _sample(honest, "referee_wei_lost_total") == 0
    assert _sample(honest, "referee_low_clock_alerts_total") == 0
