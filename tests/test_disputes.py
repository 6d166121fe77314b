"""Whole disputes through the job market, played from off-chain traces, through to payouts.

Each test posts a real job (the model registered by its roots, the input as packed bytes),
lets a solver commit its trace root, opens games through ``JobMarket.challenge`` and plays them
with ``dispute_driver.play``; then it checks every wei: who is credited what, that the market's
balance always equals its recorded obligations, and that nothing is left once all withdraw.
"""

import random

import ape
import pytest

from accounting import after_every_transaction, assert_accounting, assert_drained
from dispute_driver import Party, play
from game_bots import CLOSED
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee import commitments as cm
from referee.cheats import garbage_padding, wrong_element, wrong_shape
from referee.executor import run_model
from referee.trace import Trace
from referee.agents.deployment import deploy_game

ARITY = 4
CLOCK = 3600
CHALLENGER_BOND = 10**17
MIN_SOLVER_BOND = 10**17
SOLVER_BOND = 10**18
FEE = 3 * 10**16
SHARE_BPS, FEE_BPS = 1000, 300  # the bonus pool and the dilution fee, in basis points of the solver bond


def bonus(winners: int) -> int:
    """Each winning game's bonus when ``winners`` games won (protocol.md 10.2)."""
    share = SOLVER_BOND * SHARE_BPS // 10000 // winners
    return max(0, share - SOLVER_BOND * FEE_BPS // 10000)
WINDOWS = (600, 600, 1800)  # claim, commit, challenge (seconds)
MIN_WINDOW, MAX_WINDOW = 60, 30 * 86400  # the deployment's window limits


@pytest.fixture(scope="module")
def model_and_trace():
    rng = random.Random(77)
    model = to_integer_model(random_ref_model(rng, 7, [6, 5, 8, 4]))
    trace = Trace(model.root, run_model(model, int8_tensor(random_input(rng, 5, 7)), "cpu"))
    return model, trace


@pytest.fixture(scope="module")
def roles(accounts):
    names = ("requester", "solver", "challenger", "second", "third", "sink", "stranger")
    return dict(zip(names, accounts[1:8]))


@pytest.fixture(scope="module")
def deployment(project, deployer, roles, model_and_trace):
    model, _ = model_and_trace
    registry = deployer.deploy(project.ModelRegistry)
    game = deploy_game(deployer, ARITY, CLOCK, project)
    market = deployer.deploy(project.JobMarket, registry, game, CHALLENGER_BOND, MIN_SOLVER_BOND, SHARE_BPS,
                             FEE_BPS, roles["sink"], MIN_WINDOW, MAX_WINDOW)
    registry.register(*model.registration(), sender=deployer)
    return registry, game, market, registry.model_count()


@pytest.fixture(autouse=True)
def _accounting_holds(deployment):
    """The market's balance equals its recorded obligations after every transaction, whatever it did."""
    with after_every_transaction(deployment[2]):
        yield
    assert_accounting(deployment[2])


def post_and_commit(market, model_id, honest: Trace, solver: Party, requester):
    """Post a job with the honest input; the solver claims and commits its own trace."""
    market.post(model_id, honest.slots[0].shape[0], cm.packed(honest.slots[0]), SOLVER_BOND, *WINDOWS, value=FEE,
                sender=requester)
    job_id = market.job_count()
    if market.stake(solver.account) - market.locked(solver.account) < SOLVER_BOND:
        market.deposit(value=SOLVER_BOND, sender=solver.account)
    market.claim(job_id, sender=solver.account)
    n = solver.trace.op_count
    market.commit(job_id, cm.packed(solver.trace.output), solver.trace.trace_root,
                  solver.trace.state_tree(n).proof(n), sender=solver.account)
    return job_id


def challenge(market, game, job_id, account):
    market.challenge(job_id, value=CHALLENGER_BOND, sender=account)
    return game.game_count()


def withdraw_all(market, accounts):
    for account in accounts:
        if market.credit(account) > 0:
            market.withdraw(sender=account)


SOLVER_LIES = {
    "wrong output element": lambda t: wrong_element(t, 4, row=4, col=3),
    "right output, wrong intermediate slot": lambda t: wrong_element(t, 2, row=3, col=1),
    "wrong shape of a slot": lambda t: wrong_shape(t, 3, extra_cols=2),
    "garbage in a padding row": lambda t: garbage_padding(t, 3),
}


@pytest.mark.parametrize("lie", SOLVER_LIES)
def test_dispute_lying_solver_loses_bond_succeeds(chain, deployment, model_and_trace, roles, lie):
    registry, game, market, model_id = deployment
    model, honest = model_and_trace
    solver = Party(roles["solver"], model, SOLVER_LIES[lie](honest))
    judge = Party(roles["challenger"], model, honest)
    sink_before = roles["sink"].balance
    job_id = post_and_commit(market, model_id, honest, solver, roles["requester"])
    stake_committed = market.stake(solver.account)
    assert market.job(job_id).trace_root != honest.trace_root
    gid = challenge(market, game, job_id, judge.account)
    assert_accounting(market)

    outcome = play(chain, game, gid, solver, judge)
    assert not outcome.solver_won
    assert market.job(job_id).status == 3  # the game has a winner; the market settles it on request
    market.settle(gid, sender=roles["stranger"])

    job = market.job(job_id)
    assert job.status == 5  # REJECTED
    refund = market.refund_of(gid)  # the challenge's and the moves' gas
    assert refund > 0
    assert market.credit(roles["requester"]) == FEE
    assert market.credit(judge.account) == CHALLENGER_BOND + refund + bonus(1)
    assert market.stake(solver.account) == stake_committed - SOLVER_BOND
    assert market.locked(solver.account) == 0
    assert market.sink_pending() == SOLVER_BOND - refund - bonus(1)
    assert_accounting(market)

    withdraw_all(market, [roles["requester"], judge.account])
    market.release_to_sink(sender=roles["stranger"])
    assert roles["sink"].balance == sink_before + SOLVER_BOND - refund - bonus(1)
    assert_accounting(market)
    assert market.obligations() == market.total_stake()


def test_commit_output_with_garbage_padding_reverts(chain, deployment, model_and_trace, roles):
    """The market hashes the output bytes itself: a lie in the output's row tree cannot be committed."""
    _, _, market, model_id = deployment
    model, honest = model_and_trace
    lying = garbage_padding(honest, 4)
    market.post(model_id, 5, cm.packed(honest.slots[0]), SOLVER_BOND, *WINDOWS, value=FEE, sender=roles["requester"])
    job_id = market.job_count()
    market.deposit(value=SOLVER_BOND, sender=roles["solver"])
    market.claim(job_id, sender=roles["solver"])
    with ape.reverts("market: bad output proof"):
        market.commit(job_id, cm.packed(lying.output), lying.trace_root, lying.state_tree(4).proof(4),
                      sender=roles["solver"])
    market.commit(job_id, cm.packed(honest.output), honest.trace_root, honest.state_tree(4).proof(4),
                  sender=roles["solver"])
    chain.pending_timestamp = market.job(job_id).challenge_deadline + 1
    market.finalize(job_id, sender=roles["stranger"])
    assert_accounting(market)


def test_dispute_lying_challenger_pays_honest_solver_succeeds(chain, deployment, model_and_trace, roles):
    registry, game, market, model_id = deployment
    model, honest = model_and_trace
    solver = Party(roles["solver"], model, honest)
    liar = Party(roles["challenger"], model, wrong_element(honest, 3, row=2, col=2))
    credit_before = market.credit(solver.account)
    job_id = post_and_commit(market, model_id, honest, solver, roles["requester"])
    gid = challenge(market, game, job_id, liar.account)

    outcome = play(chain, game, gid, solver, liar)
    assert outcome.solver_won
    market.settle(gid, sender=solver.account)

    assert market.credit(solver.account) == credit_before + CHALLENGER_BOND
    chain.pending_timestamp = market.job(job_id).challenge_deadline + 1
    market.finalize(job_id, sender=roles["stranger"])
    assert market.job(job_id).status == 4  # FINALIZED
    assert market.credit(solver.account) == credit_before + CHALLENGER_BOND + FEE
    assert market.locked(solver.account) == 0
    assert_accounting(market)
    withdraw_all(market, [solver.account])
    market.withdraw_stake(market.stake(solver.account), sender=solver.account)
    assert_accounting(market)


def test_dispute_two_challengers_one_wrong_result_succeeds(chain, deployment, model_and_trace, roles):
    """Two winners share the bonus; a still-open game's challenger takes its bond and gas back."""
    registry, game, market, model_id = deployment
    model, honest = model_and_trace
    solver = Party(roles["solver"], model, wrong_element(honest, 4, row=0, col=0))
    first, second = Party(roles["challenger"], model, honest), Party(roles["second"], model, honest)
    third = Party(roles["third"], model, honest)
    job_id = post_and_commit(market, model_id, honest, solver, roles["requester"])
    g1, g2, g3 = (challenge(market, game, job_id, p.account) for p in (first, second, third))
    assert market.job(job_id).open_games == 3

    assert not play(chain, game, g1, solver, first).solver_won
    market.settle(g1, sender=roles["stranger"])
    assert not play(chain, game, g2, solver, second).solver_won  # played on: the game contract is separate
    market.settle(g2, sender=roles["stranger"])
    with ape.reverts("market: game not over"):
        market.settle(g3, sender=third.account)
    with ape.reverts("market: caller is not the challenger"):
        market.reclaim(g3, sender=roles["stranger"])
    tx = market.reclaim(g3, sender=third.account)

    assert market.credit(first.account) == CHALLENGER_BOND + market.refund_of(g1) + bonus(2)
    assert market.credit(second.account) == CHALLENGER_BOND + market.refund_of(g2) + bonus(2)
    assert market.credit(third.account) >= CHALLENGER_BOND + market.refund_of(g3) + tx.gas_used * tx.gas_price
    assert market.job(job_id).open_games == 0
    assert game.games(g3).phase == CLOSED
    assert_accounting(market)
    withdraw_all(market, [roles["requester"], first.account, second.account, third.account])
    market.release_to_sink(sender=roles["stranger"])
    assert_accounting(market)


def test_dispute_stalling_solver_loses_by_timeout_succeeds(chain, deployment, model_and_trace, roles):
    registry, game, market, model_id = deployment
    model, honest = model_and_trace
    solver = Party(roles["solver"], model, wrong_element(honest, 4, row=1, col=1), stalls=True)
    judge = Party(roles["challenger"], model, honest)
    job_id = post_and_commit(market, model_id, honest, solver, roles["requester"])
    gid = challenge(market, game, job_id, judge.account)

    assert not play(chain, game, gid, solver, judge).solver_won
    market.settle(gid, sender=judge.account)
    assert market.job(job_id).status == 5
    assert_accounting(market)
    withdraw_all(market, [roles["requester"], judge.account])
    market.release_to_sink(sender=roles["stranger"])


def test_dispute_everyone_withdraws_market_drained_succeeds(chain, deployment, roles):
    """Runs last in this module: after every dispute above settles and all withdraw, no wei is left."""
    _, _, market, _ = deployment
    withdraw_all(market, list(roles.values()))
    for account in roles.values():
        free = market.stake(account) - market.locked(account)
        if free:
            market.withdraw_stake(free, sender=account)
    if market.sink_pending():
        market.release_to_sink(sender=roles["stranger"])
    assert_drained(market)
