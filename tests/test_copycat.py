"""A copycat cannot take the honest challenger's bonus (tests/copycat.py), on the real agents.

A lying solver (``referee.agents.Solver`` with ``--cheat wrong-output``) plays both games of its
job from one trace; the honest challenger (``referee.agents.Challenger``) challenges; the copycat,
with no model, opens its own game in the same block just after and copies every pending honest
move into it with a higher tip, so its ``step`` is mined first and it settles first. Settling
first earns nothing: the two winning games share the bonus pool equally, each less the dilution
fee, and each is refunded its own gas, so the honest challenger is paid its bond, its gas and
the same bonus as the copycat, whatever the order (protocol 10.2: the contract cannot tell the
two apart; a second copycat would leave each a sixth of what one does, a third nothing).
12-second blocks mined in lockstep (tests/flood.py).
"""

from accounting import assert_accounting
from copycat import Copycat
from flood import BOND, FEE, ROWS, SOLVER_BOND, WINDOWS, Lockstep, job_input, owed_to_winner, withdrawn
from flood import agent, deployment, model  # noqa: F401 (fixtures)
from game_bots import STATS
from referee import commitments as cm
from referee.agents.challenger import Challenger
from referee.agents.client import REJECTED
from referee.agents.deployment import DEFAULT_PARAMS
from referee.agents.solver import Solver
from referee.bonds import bonus

def _first(events) -> tuple[int, int]:
    return min((log.block_number, log.log_index) for log in events)

def test_copycat_replaying_the_honest_moves_gains_nothing_by_settling_first(chain, accounts, deployment, agent):
    requester, liar_account, honest_account, copycat_account = accounts[1], accounts[2], accounts[5], accounts[6]
    liar = agent(Solver, liar_account, "liar", cheat="wrong-output")
    liar.ensure_stake(SOLVER_BOND)
    market, game = liar.client.market, liar.client.game
    market.post(1, ROWS, cm.packed(job_input(3)), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    job = market.job_count()
    honest = agent(Challenger, honest_account, "honest")
    copycat = Copycat(chain.provider.uri, copycat_account, market, game, str(honest_account.address), job)
    start = chain.blocks.height

    def done():
        return (market.job(job).status == REJECTED and market.job(job).open_games == 0
                and market.credit(honest_account) == 0)

    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([liar, honest, copycat], [liar, honest], done)

    ours, theirs = copycat.own_game, copycat.honest_game
    assert ours == theirs + 1  # opened in the same block, just after
    opened = {log.game_id: log.block_number for log in game.GameOpened.range(start, chain.blocks.height + 1)}
    assert opened[ours] == opened[theirs]
    stop = chain.blocks.height + 1
    stepped = {g: _first(log for log in game.Stepped.range(start, stop) if log.game_id == g) for g in (ours, theirs)}
    settled = {g: _first(log for log in market.GameSettled.range(start, stop) if log.game_id == g) for g in (ours, theirs)}
    # the copycat front-ran the honest step and settled first: under "first settled wins", it
    # would have taken the reward
    assert stepped[ours] < stepped[theirs] and settled[ours] < settled[theirs]
    assert game.result(ours) == game.result(theirs) == 2
    params = DEFAULT_PARAMS
    two = bonus(SOLVER_BOND, params["reward_share_bps"], params["dilution_fee_bps"], 2)
    paid = sorted((log.game_id, log.challenger, log.reward) for log in market.RewardPaid.range(start, stop))
    assert paid == sorted([(theirs, honest_account.address, two), (ours, copycat_account.address, two)])
    # the honest challenger: its bond, all its gas and the two-winner bonus, whoever settled first
    assert withdrawn(market, honest_account, start, stop) == owed_to_winner(market, honest_account, [theirs], 2,
                                                                            start, stop)
    assert market.credit(copycat_account) == owed_to_winner(market, copycat_account, [ours], 2, start, stop)
    STATS.figures.append(f"copycat: front-ran the honest step ({stepped[ours]} before {stepped[theirs]}) and settled "
                         f"first; the honest challenger (game {theirs}) and the copycat each got the bonus "
                         f"{two / 1e18:g} ETH and their own gas back")
    assert_accounting(market)
