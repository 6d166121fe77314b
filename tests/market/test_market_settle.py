"""Settling games (docs/protocol.md 10.2): ``settle`` of won and lost games, the bonus split
and gas refunds whatever the order, ``reclaim`` of a game after the job was rejected, and
``finalize``.

The fixtures (two markets, one on the real game and one on a stub) are in conftest.py; the
parameters and steps in tests/market_case.py.
"""

import ape
import pytest

from accounting import COMMITTED, FINALIZED, REJECTED
from market_case import (CHALLENGER_BOND, DEPOSIT, FEE, FEE_EACH, MAX_WINDOW, MIN_SOLVER_BOND, MIN_WINDOW, N_OPS,
                         OPS_ROOT, SINK, SOLVER_BOND, TRACE, bonus, challenge, committed,
                         solver_moves, time_out, time_out_and_settle, warp, warp_past)

# ---------------------------------------------------------------------------
# settle
# ---------------------------------------------------------------------------


def test_settle_solver_won_succeeds(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    tx = stub.report(stub_market, game_id, True, sender=who.stranger)
    assert stub_market.credit(who.solver) == CHALLENGER_BOND
    assert stub_market.credit(who.challengers[0]) == 0
    assert not stub_market.challenge_of(game_id).open
    job = stub_market.job(job_id)
    assert job.status == COMMITTED and job.open_games == 0
    assert stub_market.locked(who.solver) == SOLVER_BOND  # still bonded until finalize
    [log] = tx.decode_logs(stub_market.GameSettled)
    assert (log.game_id, log.job_id, log.solver_won, log.to_solver, log.to_challenger) == (
        game_id, job_id, True, CHALLENGER_BOND, 0)


MOVES_GAS = 7 * 10**15 + 5  # what a stub game reports its challenger's moves metered, in wei


def test_settle_challenger_won_succeeds(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    challenger = who.challengers[0]
    game_id = challenge(stub_market, job_id, challenger)
    stub.set_challenger_gas(game_id, MOVES_GAS, sender=who.stranger)
    metered = stub_market.challenge_of(game_id).gas
    assert metered > 0 and stub_market.refund_of(game_id) == metered + MOVES_GAS
    refund = metered + MOVES_GAS
    tx = stub.report(stub_market, game_id, False, sender=who.stranger)
    job = stub_market.job(job_id)
    assert job.status == REJECTED and job.open_games == 0
    assert (job.best_game, job.winners, job.held) == (game_id, 1, 0)
    assert stub_market.credit(who.requester) == FEE
    assert stub_market.credit(challenger) == CHALLENGER_BOND + refund + bonus(1)
    assert stub_market.sink_pending() == SOLVER_BOND - refund - bonus(1)
    assert stub_market.stake(who.solver) == DEPOSIT - SOLVER_BOND
    assert stub_market.locked(who.solver) == 0
    assert stub_market.credit(who.solver) == 0
    assert stub_market.total_escrow() == 0
    [rejected] = tx.decode_logs(stub_market.JobRejected)
    assert (rejected.job_id, rejected.game_id, rejected.challenger) == (job_id, game_id, challenger.address)
    assert (rejected.refund, rejected.held) == (FEE, SOLVER_BOND)
    [settled] = tx.decode_logs(stub_market.GameSettled)
    assert (settled.solver_won, settled.to_solver, settled.to_challenger) == (False, 0, CHALLENGER_BOND + refund)
    # its only game: the bonus is paid at once
    [paid] = tx.decode_logs(stub_market.RewardPaid)
    assert (paid.job_id, paid.game_id, paid.challenger, paid.reward, paid.fee) == (
        job_id, game_id, challenger.address, bonus(1), FEE_EACH)
    [released] = tx.decode_logs(stub_market.RewardsReleased)
    assert (released.job_id, released.winners, released.reward, released.to_sink) == (
        job_id, 1, bonus(1), SOLVER_BOND - refund - bonus(1))


def test_settle_after_rejection_succeeds(stub_market, stub, model_id, who):
    # Four games on one result: the solver wins two (one before, one after the rejection); the
    # two winners get their bonds and refunds at once, and each the two-winner bonus at the end.
    job_id = committed(stub_market, model_id, who)
    games = [challenge(stub_market, job_id, c) for c in who.challengers]
    refunds = [stub_market.refund_of(g) for g in games]
    stub.report(stub_market, games[0], True, sender=who.stranger)
    stub.report(stub_market, games[1], False, sender=who.stranger)
    # rejected; the slashed bond less the refund waits in escrow while games are open
    assert stub_market.credit(who.challengers[1]) == CHALLENGER_BOND + refunds[1]
    assert stub_market.total_escrow() == SOLVER_BOND - refunds[1] == stub_market.job(job_id).held
    stub.report(stub_market, games[2], False, sender=who.stranger)
    tx = stub.report(stub_market, games[3], True, sender=who.stranger)
    paid = tx.decode_logs(stub_market.RewardPaid)  # the last game closed: both winners are paid
    assert [(p.game_id, p.challenger, p.reward) for p in paid] == [
        (games[1], who.challengers[1].address, bonus(2)), (games[2], who.challengers[2].address, bonus(2))]
    assert stub_market.total_escrow() == 0
    job = stub_market.job(job_id)
    assert (job.status, job.best_game, job.winners, job.held) == (REJECTED, games[1], 2, 0)
    assert stub_market.credit(who.solver) == 2 * CHALLENGER_BOND
    assert stub_market.credit(who.challengers[0]) == 0
    assert stub_market.credit(who.challengers[1]) == CHALLENGER_BOND + refunds[1] + bonus(2)
    assert stub_market.credit(who.challengers[2]) == CHALLENGER_BOND + refunds[2] + bonus(2)
    assert stub_market.credit(who.challengers[3]) == 0
    assert stub_market.sink_pending() == SOLVER_BOND - refunds[1] - refunds[2] - 2 * bonus(2)  # slashed once
    assert stub_market.stake(who.solver) == DEPOSIT - SOLVER_BOND


@pytest.mark.parametrize("order", ["honest first", "copycat first"])
def test_settle_bonus_split_whatever_the_order_succeeds(stub_market, stub, model_id, who, order):
    # An honest challenger opens first; a copycat opens later, replays its moves and wins first
    # (or the other way round): both winning games get the same bonus whatever the order.
    job_id = committed(stub_market, model_id, who)
    honest, copycat = who.challengers[:2]
    first, later = challenge(stub_market, job_id, honest), challenge(stub_market, job_id, copycat)
    for game_id in ((later, first) if order == "copycat first" else (first, later)):
        stub.report(stub_market, game_id, False, sender=who.stranger)
    assert stub_market.credit(honest) == CHALLENGER_BOND + stub_market.refund_of(first) + bonus(2)
    assert stub_market.credit(copycat) == CHALLENGER_BOND + stub_market.refund_of(later) + bonus(2)
    assert stub_market.total_escrow() == 0


@pytest.mark.parametrize("winners", [1, 2, 3, 4, 5, 6, 7])
def test_settle_bonus_by_winner_count_succeeds(stub_market, stub, model_id, who, winners):
    # W winning games share the pool equally less the fee each; from four winners on (six at most
    # for any deployment) the share is below the fee and no one is paid a bonus. Games, not
    # accounts, are counted: here one challenger opens them all.
    job_id = committed(stub_market, model_id, who)
    games = [challenge(stub_market, job_id, who.challengers[0]) for _ in range(winners)]
    receipts = [stub.report(stub_market, g, False, sender=who.stranger) for g in games]
    refunds = [stub_market.refund_of(g) for g in games]
    assert stub_market.credit(who.challengers[0]) == winners * (CHALLENGER_BOND + bonus(winners)) + sum(refunds)
    paid = receipts[-1].decode_logs(stub_market.RewardPaid)
    assert len(paid) == (winners if bonus(winners) else 0)
    [released] = receipts[-1].decode_logs(stub_market.RewardsReleased)
    assert (released.winners, released.reward) == (winners, bonus(winners))
    assert released.to_sink == stub_market.sink_pending() == SOLVER_BOND - sum(refunds) - winners * bonus(winners)


def test_settle_share_equal_to_the_fee_pays_no_bonus_succeeds(project, deployer, registry, stub, model_id, who):
    # A pool of 10% and a fee of 2.5%: with four winners each share is exactly the fee, so no one
    # is paid a bonus (and no RewardPaid is logged); the whole pool goes to the sink.
    market = deployer.deploy(project.JobMarket, registry, stub, CHALLENGER_BOND, MIN_SOLVER_BOND, 1000, 250, SINK,
                             MIN_WINDOW, MAX_WINDOW)
    assert SOLVER_BOND * 1000 // 10000 // 4 == SOLVER_BOND * 250 // 10000
    job_id = committed(market, model_id, who)
    games = [challenge(market, job_id, who.challengers[0]) for _ in range(4)]
    receipts = [stub.report(market, g, False, sender=who.stranger) for g in games]
    assert not receipts[-1].decode_logs(market.RewardPaid)
    [released] = receipts[-1].decode_logs(market.RewardsReleased)
    assert (released.winners, released.reward) == (4, 0)
    assert market.sink_pending() == SOLVER_BOND - sum(market.refund_of(g) for g in games)


@pytest.mark.parametrize("winners", [5, 6])
def test_settle_bonus_at_the_paid_winners_limit(project, deployer, registry, stub, model_id, who, winners):
    # A pool of 10% and a fee of 1.67% (2 x 167 < 1000 < 6 x 167): five winners, MAX_PAID_WINNERS,
    # are each paid pool // 5 - fee; a sixth makes the share fall below the fee and no one is paid.
    market = deployer.deploy(project.JobMarket, registry, stub, CHALLENGER_BOND, MIN_SOLVER_BOND, 1000, 167, SINK,
                             MIN_WINDOW, MAX_WINDOW)
    pool, fee = SOLVER_BOND * 1000 // 10000, SOLVER_BOND * 167 // 10000
    assert pool // 5 > fee >= pool // 6
    job_id = committed(market, model_id, who)
    games = [challenge(market, job_id, who.challengers[0]) for _ in range(winners)]
    receipts = [stub.report(market, g, False, sender=who.stranger) for g in games]
    paid = receipts[-1].decode_logs(market.RewardPaid)
    reward = pool // 5 - fee if winners == 5 else 0
    assert [log.game_id for log in paid] == (games if reward else [])
    assert all(log.reward == reward for log in paid)
    [released] = receipts[-1].decode_logs(market.RewardsReleased)
    assert (released.winners, released.reward) == (winners, reward)
    refunds = sum(market.refund_of(g) for g in games)
    assert market.credit(who.challengers[0]) == winners * (CHALLENGER_BOND + reward) + refunds


def test_settle_refunds_beyond_the_bond_take_it_all_succeeds(stub_market, stub, model_id, who):
    # Refunds come first: metered gas beyond the slashed bond empties it; the second winner is
    # refunded what is left, no bonus is paid and the sink gets nothing.
    job_id = committed(stub_market, model_id, who)
    games = [challenge(stub_market, job_id, c) for c in who.challengers[:2]]
    stub.set_challenger_gas(games[0], SOLVER_BOND - 10**15, sender=who.stranger)
    stub.set_challenger_gas(games[1], SOLVER_BOND, sender=who.stranger)
    first = stub_market.refund_of(games[0])
    stub.report(stub_market, games[0], False, sender=who.stranger)
    tx = stub.report(stub_market, games[1], False, sender=who.stranger)
    assert stub_market.credit(who.challengers[0]) == CHALLENGER_BOND + first
    assert stub_market.credit(who.challengers[1]) == CHALLENGER_BOND + SOLVER_BOND - first
    assert not tx.decode_logs(stub_market.RewardPaid)
    assert stub_market.sink_pending() == 0 and stub_market.total_escrow() == 0


def test_settle_own_game_refunds_the_settle_gas_succeeds(market, game, model_id, who):
    # A winner that settles its own game is refunded that transaction's gas too; a game settled
    # by someone else is not (its challenger paid no settle gas).
    job_id = committed(market, model_id, who)
    mine, theirs = (challenge(market, job_id, c) for c in who.challengers[:2])
    warp_past(max(game.deadline(mine), game.deadline(theirs)))
    for game_id, caller in ((mine, who.challengers[0]), (theirs, who.challengers[1])):
        game.timeout(game_id, sender=caller)
    refunds = [market.refund_of(g) for g in (mine, theirs)]
    assert market.refund_of(mine) > market.challenge_of(mine).gas > 0  # the timeout was metered
    tx = market.settle(mine, sender=who.challengers[0])
    own = market.credit(who.challengers[0]) - CHALLENGER_BOND - refunds[0]
    assert own >= tx.gas_used * tx.gas_price  # at least its settle gas
    market.settle(theirs, sender=who.stranger)
    assert market.credit(who.challengers[1]) == CHALLENGER_BOND + refunds[1] + bonus(2)
    assert market.credit(who.challengers[0]) == CHALLENGER_BOND + refunds[0] + own + bonus(2)


def test_settle_by_anyone_succeeds(market, game, model_id, who):
    # The game calls no contract; once it has a winner, any account settles it.
    job_id = committed(market, model_id, who)
    game_id = challenge(market, job_id, who.challengers[0])
    time_out(game, game_id, who.challengers[0])
    assert game.result(game_id) == 2  # the solver never moved
    tx = market.settle(game_id, sender=who.stranger)
    [log] = tx.decode_logs(market.JobRejected)
    assert log.game_id == game_id and log.challenger == who.challengers[0].address


@pytest.mark.parametrize("result", [0, 3])
def test_settle_game_not_over_reverts(stub_market, stub, model_id, who, result):
    # In play (0) or closed without a winner (3): nothing to settle.
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    stub.set_result(game_id, result, sender=who.stranger)
    with ape.reverts("market: game not over"):
        stub_market.settle(game_id, sender=who.stranger)


def test_settle_real_game_in_play_reverts(market, game, model_id, who):
    job_id = committed(market, model_id, who)
    game_id = challenge(market, job_id, who.challengers[0])
    with ape.reverts("market: game not over"):
        market.settle(game_id, sender=who.challengers[0])
    solver_moves(game, game_id, who.solver)
    with ape.reverts("market: game not over"):
        market.settle(game_id, sender=who.solver)


def test_settle_unknown_game_reverts(market, stub_market, stub, model_id, who):
    with ape.reverts("market: unknown game"):
        stub.report(stub_market, 1, False, sender=who.stranger)
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    with ape.reverts("market: unknown game"):
        stub.report(stub_market, game_id + 1, True, sender=who.stranger)
    with ape.reverts("market: unknown game"):
        stub.report(stub_market, 0, True, sender=who.stranger)
    # A game another market (or anyone else) opened is not this market's to settle.
    with ape.reverts("market: unknown game"):
        market.settle(game_id, sender=who.stranger)


def test_views_of_unknown_game_revert(stub_market, model_id, who):
    """challenge_of and refund_of name a game the market did not open, rather than answering
    zeros (a refund of 0 wei would read as a real game's; the mutation test found no test of it)."""
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    assert stub_market.challenge_of(game_id).job_id == job_id
    assert stub_market.refund_of(game_id) > 0
    for view in (stub_market.challenge_of, stub_market.refund_of):
        for unknown in (0, game_id + 1):
            with ape.reverts("market: unknown game"):
                view(unknown)


def test_settle_game_of_other_owner_reverts(market, game, model_id, who):
    # Someone opens a game on the same DisputeGame directly and lets it end: the market
    # did not open it and settles nothing for it.
    game.open(who.solver, who.stranger, OPS_ROOT, N_OPS, TRACE.s_0, TRACE.s_n, sender=who.stranger)
    time_out(game, 1, who.stranger)
    with ape.reverts("market: unknown game"):
        market.settle(1, sender=who.stranger)


@pytest.mark.parametrize("first", [True, False])
def test_settle_settled_game_reverts(stub_market, stub, model_id, who, first):
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    stub.report(stub_market, game_id, first, sender=who.stranger)
    with ape.reverts("market: game already settled"):
        stub_market.settle(game_id, sender=who.stranger)
    for again in (True, False):
        with ape.reverts("market: game already settled"):
            stub.report(stub_market, game_id, again, sender=who.stranger)


# ---------------------------------------------------------------------------
# reclaim
# ---------------------------------------------------------------------------


def test_reclaim_succeeds(market, game, model_id, who):
    # A challenger walks away from its game of a rejected job: its bond and its gas (the
    # challenge, and the reclaim itself) back, no bonus; the one winner is then the sole winner.
    job_id = committed(market, model_id, who)
    winner, other = who.challengers[:2]
    won = challenge(market, job_id, winner)
    still_open = challenge(market, job_id, other)
    time_out_and_settle(market, game, won, who.stranger)
    assert market.job(job_id).open_games == 1
    assert market.credit(winner) == CHALLENGER_BOND + market.refund_of(won)  # the bonus waits for the open game
    refund = market.refund_of(still_open)
    tx = market.reclaim(still_open, sender=other)
    assert tx.decode_logs(game.GameClosed) and game.result(still_open) == 3
    assert market.credit(winner) == CHALLENGER_BOND + market.refund_of(won) + bonus(1)
    [paid] = tx.decode_logs(market.RewardPaid)
    assert (paid.game_id, paid.challenger, paid.reward) == (won, winner.address, bonus(1))
    assert not market.challenge_of(still_open).open
    assert market.job(job_id).open_games == 0
    assert market.credit(other) >= CHALLENGER_BOND + refund + tx.gas_used * tx.gas_price
    [log] = tx.decode_logs(market.ChallengeReclaimed)
    assert (log.game_id, log.job_id, log.challenger, log.bond, log.refund) == (
        still_open, job_id, other.address, CHALLENGER_BOND, refund)
    with ape.reverts("market: game already settled"):
        market.settle(still_open, sender=who.stranger)


def test_reclaim_committed_job_reverts(stub_market, model_id, who):
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    with ape.reverts("market: job is not rejected"):
        stub_market.reclaim(game_id, sender=who.challengers[0])


@pytest.mark.parametrize("opened", ["before", "after"])
def test_reclaim_by_another_reverts(stub_market, stub, model_id, who, opened):
    # No one but its challenger takes a game out of the bonus pool, wherever it was opened: the
    # winner, the solver or a stranger cannot strike it to keep the pool.
    job_id = committed(stub_market, model_id, who)
    games = [challenge(stub_market, job_id, c) for c in who.challengers[:2]]
    won, other = games if opened == "after" else games[::-1]
    owner = who.challengers[games.index(other)]
    stub.report(stub_market, won, False, sender=who.stranger)
    for caller in (who.stranger, who.solver, who.challengers[games.index(won)]):
        with ape.reverts("market: caller is not the challenger"):
            stub_market.reclaim(other, sender=caller)
    stub_market.reclaim(other, sender=owner)
    assert stub.closed(other) == 1


def test_reclaim_settled_game_reverts(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    won = challenge(stub_market, job_id, who.challengers[0])
    reclaimed = challenge(stub_market, job_id, who.challengers[1])
    stub.report(stub_market, won, False, sender=who.stranger)
    with ape.reverts("market: game already settled"):
        stub_market.reclaim(won, sender=who.challengers[0])
    stub_market.reclaim(reclaimed, sender=who.challengers[1])
    with ape.reverts("market: game already settled"):
        stub_market.reclaim(reclaimed, sender=who.challengers[1])


def test_reclaim_game_over_reverts(stub_market, stub, model_id, who):
    # A game that already has a winner is settled by its result, never closed.
    job_id = committed(stub_market, model_id, who)
    won = challenge(stub_market, job_id, who.challengers[0])
    later = challenge(stub_market, job_id, who.challengers[1])
    stub.report(stub_market, won, False, sender=who.stranger)
    for result in (1, 2):
        stub.set_result(later, result, sender=who.stranger)
        with ape.reverts("market: game is over, settle it"):
            stub_market.reclaim(later, sender=who.challengers[1])
    stub_market.settle(later, sender=who.stranger)  # challenger won too: a second winner
    assert stub_market.credit(who.challengers[1]) == CHALLENGER_BOND + stub_market.refund_of(later) + bonus(2)
    assert stub.closed(later) == 0


@pytest.mark.parametrize("game_id", [0, 1, 2**256 - 1])
def test_reclaim_unknown_game_reverts(stub_market, who, game_id):
    with ape.reverts("market: unknown game"):
        stub_market.reclaim(game_id, sender=who.stranger)


# ---------------------------------------------------------------------------
# finalize
# ---------------------------------------------------------------------------


def test_finalize_succeeds(market, model_id, who):
    job_id = committed(market, model_id, who)
    warp(market.job(job_id).challenge_deadline + 1)
    tx = market.finalize(job_id, sender=who.stranger)
    assert market.job(job_id).status == FINALIZED
    assert market.credit(who.solver) == FEE
    assert market.locked(who.solver) == 0 and market.stake(who.solver) == DEPOSIT
    assert market.total_escrow() == 0
    [log] = tx.decode_logs(market.JobFinalized)
    assert (log.job_id, log.solver, log.fee) == (job_id, who.solver.address, FEE)


def test_finalize_at_deadline_reverts(market, model_id, who):
    job_id = committed(market, model_id, who)
    warp(market.job(job_id).challenge_deadline)
    with ape.reverts("market: challenge window not over"):
        market.finalize(job_id, sender=who.stranger)


def test_finalize_game_open_reverts(market, game, model_id, who):
    job_id = committed(market, model_id, who)
    game_id = challenge(market, job_id, who.challengers[0])
    solver_moves(game, game_id, who.solver)
    warp_past(market.job(job_id).challenge_deadline)
    with ape.reverts("market: game still open"):
        market.finalize(job_id, sender=who.stranger)
    # The challenger runs out of clock: the solver wins; until the game is settled in the
    # market it still counts as open.
    time_out(game, game_id, who.stranger)
    with ape.reverts("market: game still open"):
        market.finalize(job_id, sender=who.stranger)
    market.settle(game_id, sender=who.stranger)
    market.finalize(job_id, sender=who.stranger)
    assert market.credit(who.solver) == FEE + CHALLENGER_BOND
