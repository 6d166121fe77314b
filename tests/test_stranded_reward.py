"""No stranded reward: the honest challenger closes a job's game its players left stalled.

A lying solver (``referee.agents.Solver`` with ``--cheat wrong-output``) commits a wrong result;
its accomplice challenges it first, so its game has the lowest id, and then never moves. The
liar bisects in every game and never claims a timeout, so the accomplice's game stays in play
once the accomplice's clock has run out. The honest challenger (``referee.agents.Challenger``)
wins its own game, which rejects the job; the market holds the pool until the job's last game
closes. The honest agent then times out the stalled game and settles it (anyone may call
both), so the reward is released to it and withdrawn. On main before this change the agent
settled its own game, withdrew its bond and forgot the job: the reward stayed in escrow.
12-second blocks mined in lockstep (tests/flood.py).
"""

from accounting import assert_accounting
from flood import BOND, FEE, ROWS, SOLVER_BOND, WINDOWS, Attacker, Lockstep, job_input, withdrawn
from flood import agent, deployment, model  # noqa: F401 (fixtures)
from game_bots import STATS
from referee import commitments as cm
from referee.agents.challenger import Challenger
from referee.agents.client import COMMITTED, REJECTED
from referee.agents.deployment import DEFAULT_PARAMS
from referee.agents.solver import Solver


class Liar(Attacker):
    """The liar's side of every game of its job: answers each move at once, never times out."""

    def __init__(self, solver: Solver, model, job_id: int):
        trace = solver.trace_for(solver.journal.job(job_id))
        super().__init__(solver.client, model, lambda _: trace, as_solver=True, never=("timeout",))
        self.job_id = job_id

    def tick(self) -> int:
        client = self.client
        for log in client.logs(client.market, "JobChallenged", client.deployment.block, client.head(),
                               job_id=self.job_id):
            self.follow(log.game_id, log.job_id)
        return super().tick()


def test_stalled_accomplice_game_is_closed_and_the_reward_paid(chain, accounts, deployment, agent, model):
    requester, liar_account, accomplice, honest_account = accounts[1], accounts[2], accounts[3], accounts[5]
    solver = agent(Solver, liar_account, "liar", cheat="wrong-output")
    solver.ensure_stake(SOLVER_BOND)
    market, game = solver.client.market, solver.client.game
    market.post(1, ROWS, cm.packed(job_input(4)), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    job = market.job_count()
    for _ in range(6):  # claim, then commit the wrong result (a local chain mines at once)
        solver.tick()
        solver.await_receipts()
        if market.job(job).status == COMMITTED:
            break
    assert market.job(job).status == COMMITTED
    start = chain.blocks.height
    market.challenge(job, value=BOND, sender=accomplice)  # the accomplice's game: the lowest id
    honest = agent(Challenger, honest_account, "honest")
    liar = Liar(solver, model, job)

    def done():
        return market.job(job).open_games == 0 and market.credit(honest_account) == 0 and \
            withdrawn(market, honest_account, start, chain.blocks.height) > BOND

    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([liar, honest], [honest], done, max_rounds=400)

    stop = chain.blocks.height
    games = sorted(log.game_id for log in market.JobChallenged.range(start, stop + 1,
                                                                    search_topics={"job_id": job}))
    stalled, ours = games
    assert market.challenge_of(stalled).challenger == accomplice.address
    assert game.result(stalled) == 1 and game.result(ours) == 2  # the accomplice lost on time, we won
    [timed_out] = [log for log in game.GameResolved.range(start, stop + 1) if log.game_id == stalled]
    assert timed_out.reason == "timeout"
    assert market.job(job).status == REJECTED
    # one winning game: the pool less the dilution fee (protocol 10.2.1), paid once the stalled
    # game closed, on top of our bond and the gas we spent, refunded as we settled
    pool = SOLVER_BOND * DEFAULT_PARAMS["reward_share_bps"] // 10_000
    reward = pool - SOLVER_BOND * DEFAULT_PARAMS["dilution_fee_bps"] // 10_000
    [paid] = list(market.RewardPaid.range(start, stop + 1))
    assert (paid.game_id, paid.challenger, paid.reward) == (ours, honest_account.address, reward)
    [settled] = [log for log in market.GameSettled.range(start, stop + 1) if log.game_id == ours]
    refunds = sum(log.refund for log in market.SettleGasRefunded.range(start, stop + 1) if log.game_id == ours)
    assert settled.to_challenger > BOND  # the bond and the metered gas of our challenge and moves
    assert withdrawn(market, honest_account, start, stop) == settled.to_challenger + refunds + reward
    assert market.credit(liar_account) == BOND  # the accomplice's bond, won on time
    STATS.figures.append(f"stranded reward: the accomplice's game {stalled} stalled; the honest agent timed it out "
                         f"and settled it, and withdrew {withdrawn(market, honest_account, start, stop) / 1e18:.6f} ETH "
                         f"(bond {BOND / 1e18:g}, gas refunded, reward {reward / 1e18:g})")
    assert_accounting(market)
