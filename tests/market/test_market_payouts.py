"""Money out of the market (docs/protocol.md 10.2): ``withdraw`` and ``release_to_sink``,
receivers that call back into the market, and every job lifecycle end to end on the real
dispute game, until the market holds nothing.

The fixtures (two markets, one on the real game and one on a stub) are in conftest.py; the
parameters and steps in tests/market_case.py.
"""

import ape
import pytest
from ape import chain

from accounting import COMMITTED, FINALIZED, OPEN, REJECTED, assert_accounting, assert_drained
from market_case import (CHALLENGER_BOND, DEPOSIT, FEE, ROWS, SINK, SOLVER_BOND, TRACE, WINDOWS, bonus, challenge,
                         claimed, commit, committed, post, solver_moves, time_out_and_settle,
                         warp, warp_past, withdraw, withdraw_stake)

# ---------------------------------------------------------------------------
# withdraw / release_to_sink
# ---------------------------------------------------------------------------


def test_withdraw_nothing_reverts(market, model_id, who):
    with ape.reverts("market: nothing to withdraw"):
        market.withdraw(sender=who.requester)
    market.deposit(value=DEPOSIT, sender=who.solver)  # stake is not credit
    with ape.reverts("market: nothing to withdraw"):
        market.withdraw(sender=who.solver)


def test_withdraw_twice_reverts(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester)
    market.cancel(job_id, sender=who.requester)
    withdraw(market, who.requester, FEE)
    with ape.reverts("market: nothing to withdraw"):
        market.withdraw(sender=who.requester)


def test_release_to_sink_nothing_reverts(market, who):
    with ape.reverts("market: nothing to release"):
        market.release_to_sink(sender=who.stranger)


def test_release_to_sink_succeeds(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    stub.report(stub_market, game_id, False, sender=who.stranger)
    to_sink = SOLVER_BOND - stub_market.refund_of(game_id) - bonus(1)
    before = chain.provider.get_balance(SINK)
    tx = stub_market.release_to_sink(sender=who.stranger)
    assert chain.provider.get_balance(SINK) == before + to_sink
    assert stub_market.sink_pending() == 0
    [log] = tx.decode_logs(stub_market.SinkReleased)
    assert (log.sink, log.amount) == (SINK, to_sink)
    with ape.reverts("market: nothing to release"):
        stub_market.release_to_sink(sender=who.stranger)


@pytest.mark.parametrize("slashed", [False, True])
def test_release_to_sink_sweeps_forced_eth_succeeds(stub_market, stub, model_id, who, slashed):
    # ETH forced in without a call (SELFDESTRUCT, a block reward; anvil_setBalance here) is owed
    # to no one: the balance exceeds the obligations until release_to_sink sends the surplus,
    # with any slashed remainder, to the sink. Nothing is stuck; no one's credit changes.
    to_sink = 0
    if slashed:
        job_id = committed(stub_market, model_id, who)
        game_id = challenge(stub_market, job_id, who.challengers[0])
        stub.report(stub_market, game_id, False, sender=who.stranger)
        to_sink = SOLVER_BOND - stub_market.refund_of(game_id) - bonus(1)
    forced = 10**15 + 9
    balance = chain.provider.get_balance(stub_market.address)
    chain.provider.set_balance(stub_market.address, balance + forced)
    assert stub_market.obligations() == balance
    credits = [stub_market.credit(a) for a in (who.requester, who.solver, *who.challengers)]
    before = chain.provider.get_balance(SINK)
    tx = stub_market.release_to_sink(sender=who.stranger)
    expected = forced + to_sink
    [log] = tx.decode_logs(stub_market.SinkReleased)
    assert (log.sink, log.amount) == (SINK, expected)
    assert chain.provider.get_balance(SINK) == before + expected
    assert chain.provider.get_balance(stub_market.address) == stub_market.obligations()
    assert [stub_market.credit(a) for a in (who.requester, who.solver, *who.challengers)] == credits
    with ape.reverts("market: nothing to release"):
        stub_market.release_to_sink(sender=who.stranger)


# ---------------------------------------------------------------------------
# Reentrancy: a receiver that calls back into the market when paid
# ---------------------------------------------------------------------------


@pytest.fixture
def receiver(project, deployer, market, model_id, who):
    """A contract account holding stake DEPOSIT and credit FEE (a cancelled job's refund)."""
    contract = deployer.deploy(project.reentrant_receiver)
    contract.execute(market, market.deposit.encode_input(), value=DEPOSIT, sender=who.stranger)
    contract.execute(market, market.post.encode_input(model_id, ROWS, TRACE.input, SOLVER_BOND, *WINDOWS),
                     value=FEE, sender=who.stranger)
    contract.execute(market, market.cancel.encode_input(market.job_count()), sender=who.stranger)
    assert market.stake(contract) == DEPOSIT and market.credit(contract) == FEE
    return contract


@pytest.mark.parametrize("reentry", ["withdraw", "withdraw_stake"])
def test_withdraw_reentrant_receiver_paid_once_succeeds(market, receiver, who, reentry):
    # Paid its credit, the receiver calls back: `withdraw()` again (its credit is already
    # zero) or `withdraw_stake(DEPOSIT)` (which would pay out without the lock). Both fail.
    data = market.withdraw.encode_input() if reentry == "withdraw" else market.withdraw_stake.encode_input(DEPOSIT)
    receiver.arm(market, data, sender=who.stranger)
    tx = receiver.execute(market, market.withdraw.encode_input(), sender=who.stranger)
    assert receiver.attempts() == 1 and receiver.successes() == 0
    [log] = tx.decode_logs(receiver.Reentered)
    assert not log.success
    assert receiver.received() == FEE and receiver.balance == FEE
    assert market.credit(receiver) == 0 and market.stake(receiver) == DEPOSIT
    assert_accounting(market)


@pytest.mark.parametrize("reentry", ["withdraw", "withdraw_stake"])
def test_withdraw_stake_reentrant_receiver_paid_once_succeeds(market, receiver, who, reentry):
    amount = DEPOSIT // 2
    data = market.withdraw.encode_input() if reentry == "withdraw" else market.withdraw_stake.encode_input(amount)
    receiver.arm(market, data, sender=who.stranger)
    receiver.execute(market, market.withdraw_stake.encode_input(amount), sender=who.stranger)
    assert receiver.attempts() == 1 and receiver.successes() == 0
    assert receiver.received() == amount and receiver.balance == amount
    assert market.stake(receiver) == DEPOSIT - amount and market.credit(receiver) == FEE
    assert_accounting(market)


def test_withdraw_rejecting_receiver_reverts(market, receiver, who):
    # A failed payment reverts the whole withdrawal: the credit stays, nothing is lost.
    receiver.set_reject(True, sender=who.stranger)
    with ape.reverts("reentrant_receiver: rejected"):
        receiver.execute(market, market.withdraw.encode_input(), sender=who.stranger)
    assert market.credit(receiver) == FEE and receiver.balance == 0
    receiver.set_reject(False, sender=who.stranger)
    receiver.execute(market, market.withdraw.encode_input(), sender=who.stranger)
    assert receiver.balance == FEE


def test_receiver_without_reentry_succeeds(market, receiver, who):
    # The plain contract-wallet case: all gas is forwarded, so a receiver that writes storage
    # on receipt is paid.
    receiver.execute(market, market.withdraw.encode_input(), sender=who.stranger)
    receiver.execute(market, market.withdraw_stake.encode_input(DEPOSIT), sender=who.stranger)
    assert receiver.received() == FEE + DEPOSIT
    assert_drained(market)


# ---------------------------------------------------------------------------
# End to end: every lifecycle on the real dispute game, to zero
# ---------------------------------------------------------------------------


def test_lifecycle_finalize_succeeds(market, model_id, who):
    # post -> claim -> commit -> window -> finalize -> withdraw
    market.deposit(value=DEPOSIT, sender=who.solver)
    job_id, _ = post(market, model_id, who.requester)
    assert_accounting(market)
    market.claim(job_id, sender=who.solver)
    assert_accounting(market)
    commit(market, job_id, who.solver)
    assert_accounting(market)
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=who.stranger)
    assert market.job(job_id).status == FINALIZED
    assert market.credit(who.requester) == 0
    withdraw(market, who.solver, FEE)
    withdraw_stake(market, who.solver, DEPOSIT)
    assert_drained(market)


def test_lifecycle_cancel_succeeds(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester)
    market.cancel(job_id, sender=who.requester)
    withdraw(market, who.requester, FEE)
    assert_drained(market)


def test_lifecycle_expire_and_claim_by_other_solver_succeeds(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp_past(market.job(job_id).commit_deadline)
    # The late solver can no longer commit; anyone expires the claim.
    with ape.reverts("market: commit deadline passed"):
        commit(market, job_id, who.solver)
    market.expire(job_id, sender=who.stranger)
    assert market.job(job_id).status == OPEN
    with ape.reverts("market: job is not claimed"):
        market.expire(job_id, sender=who.stranger)
    # A second solver claims the reopened job within its fresh claim window and completes it.
    market.deposit(value=DEPOSIT, sender=who.solver2)
    warp(market.job(job_id).claim_deadline)
    market.claim(job_id, sender=who.solver2)
    with ape.reverts("market: caller is not the solver"):
        commit(market, job_id, who.solver)
    commit(market, job_id, who.solver2)
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=who.stranger)
    withdraw(market, who.solver2, FEE)
    withdraw(market, who.requester, SOLVER_BOND)
    assert market.credit(who.solver) == 0
    withdraw_stake(market, who.solver, DEPOSIT - SOLVER_BOND)
    withdraw_stake(market, who.solver2, DEPOSIT)
    assert_drained(market)


def test_lifecycle_challenge_lost_by_challenger_succeeds(market, game, model_id, who):
    job_id = committed(market, model_id, who)
    challenger = who.challengers[0]
    game_id = challenge(market, job_id, challenger)
    solver_moves(game, game_id, who.solver)
    tx = time_out_and_settle(market, game, game_id, who.stranger)  # the challenger does not answer
    [log] = tx.decode_logs(market.GameSettled)
    assert log.game_id == game_id and log.solver_won
    assert market.credit(who.solver) == CHALLENGER_BOND
    assert market.job(job_id).status == COMMITTED and market.job(job_id).open_games == 0
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=who.stranger)
    withdraw(market, who.solver, FEE + CHALLENGER_BOND)
    assert market.credit(challenger) == 0
    withdraw_stake(market, who.solver, DEPOSIT)
    assert_drained(market)


def test_lifecycle_challenge_won_by_challenger_succeeds(market, game, model_id, who):
    # Four parallel games on one result: the solver wins game 4; game 1's challenger wins and
    # the result is rejected; game 2's challenger wins too; game 3 is still open and its
    # challenger reclaims it (closed, bond and gas back). Games 1 and 2 share the bonus.
    job_id = committed(market, model_id, who)
    games = [challenge(market, job_id, c) for c in who.challengers]
    assert games == [1, 2, 3, 4]
    assert market.job(job_id).open_games == 4
    assert market.total_bonds() == 4 * CHALLENGER_BOND
    solver_moves(game, games[3], who.solver)
    assert_accounting(market)

    time_out_and_settle(market, game, games[3], who.stranger)  # game 4's challenger runs out: solver wins
    assert market.credit(who.solver) == CHALLENGER_BOND
    time_out_and_settle(market, game, games[0], who.stranger)  # the solver runs out in game 1: rejected
    assert market.job(job_id).status == REJECTED
    assert_accounting(market)
    with ape.reverts("market: job is not committed"):
        market.finalize(job_id, sender=who.stranger)
    with ape.reverts("market: job is not committed"):
        market.challenge(job_id, value=CHALLENGER_BOND, sender=who.stranger)
    time_out_and_settle(market, game, games[1], who.stranger)  # game 2: a second winner
    with ape.reverts("market: caller is not the challenger"):
        market.reclaim(games[2], sender=who.stranger)
    tx = market.reclaim(games[2], sender=who.challengers[2])  # game 3 is closed unfinished
    assert tx.decode_logs(game.GameClosed)
    assert game.result(games[2]) == 3  # closed without a winner
    with ape.reverts("game: not in play"):
        game.timeout(games[2], sender=who.stranger)
    with ape.reverts("market: game already settled"):
        market.settle(games[2], sender=who.stranger)
    assert market.job(job_id).open_games == 0

    refunds = [market.refund_of(g) for g in games]
    reclaimed = market.credit(who.challengers[2])
    assert reclaimed >= CHALLENGER_BOND + refunds[2] + tx.gas_used * tx.gas_price  # its reclaim gas too
    withdraw(market, who.requester, FEE)
    withdraw(market, who.challengers[0], CHALLENGER_BOND + refunds[0] + bonus(2))
    withdraw(market, who.challengers[1], CHALLENGER_BOND + refunds[1] + bonus(2))
    withdraw(market, who.challengers[2], reclaimed)
    assert market.credit(who.challengers[3]) == 0
    withdraw(market, who.solver, CHALLENGER_BOND)
    assert market.stake(who.solver) == DEPOSIT - SOLVER_BOND and market.locked(who.solver) == 0
    withdraw_stake(market, who.solver, DEPOSIT - SOLVER_BOND)
    before = chain.provider.get_balance(SINK)
    market.release_to_sink(sender=who.stranger)
    to_sink = SOLVER_BOND - 2 * bonus(2) - refunds[0] - refunds[1] - (reclaimed - CHALLENGER_BOND)
    assert chain.provider.get_balance(SINK) == before + to_sink
    assert_drained(market)


def test_lifecycle_self_challenge_costs_the_cheater_succeeds(market, game, model_id, who):
    # Protocol 10.2, "Who gets a slashed solver bond": a solver challenging its own wrong
    # result from a second account, and forfeiting that game, still loses 90% of its bond and
    # more: the accomplice's gas comes back, and the bonus is at most pool - fee.
    job_id = committed(market, model_id, who)
    accomplice = who.solver2
    game_id = challenge(market, job_id, accomplice)
    time_out_and_settle(market, game, game_id, who.stranger)  # the solver "loses" on purpose
    refund = market.refund_of(game_id)
    withdraw(market, accomplice, CHALLENGER_BOND + refund + bonus(1))
    withdraw(market, who.requester, FEE)
    withdraw_stake(market, who.solver, DEPOSIT - SOLVER_BOND)
    # Net over both accounts, before gas: -SOLVER_BOND + refund + bonus(1), the refund repaying gas burned.
    assert SOLVER_BOND - bonus(1) >= SOLVER_BOND * 9 // 10
    market.release_to_sink(sender=who.stranger)
    assert_drained(market)


def test_lifecycle_many_jobs_succeeds(market, game, model_id, who):
    # Jobs in every final state side by side; accounting after every step, drained at the end.
    market.deposit(value=DEPOSIT, sender=who.solver)
    market.deposit(value=DEPOSIT, sender=who.solver2)
    finalized, _ = post(market, model_id, who.requester)
    rejected, _ = post(market, model_id, who.requester, fee=FEE + 1)
    cancelled, _ = post(market, model_id, who.stranger, fee=7)
    market.claim(finalized, sender=who.solver)
    market.claim(rejected, sender=who.solver2)
    commit(market, finalized, who.solver)
    commit(market, rejected, who.solver2)
    market.cancel(cancelled, sender=who.stranger)
    lost = challenge(market, finalized, who.challengers[0])
    won = challenge(market, rejected, who.challengers[1])
    assert_accounting(market)
    solver_moves(game, lost, who.solver)
    time_out_and_settle(market, game, lost, who.stranger)
    time_out_and_settle(market, game, won, who.stranger)
    assert_accounting(market)
    warp_past(market.job(finalized).challenge_deadline)
    market.finalize(finalized, sender=who.stranger)
    withdraw(market, who.solver, FEE + CHALLENGER_BOND)
    withdraw(market, who.requester, FEE + 1)
    withdraw(market, who.stranger, 7)
    withdraw(market, who.challengers[1], CHALLENGER_BOND + market.refund_of(won) + bonus(1))
    withdraw_stake(market, who.solver, DEPOSIT)
    withdraw_stake(market, who.solver2, DEPOSIT - SOLVER_BOND)
    market.release_to_sink(sender=who.stranger)
    assert_drained(market)
