"""A job's moves before settlement (docs/protocol.md 10.2): the solver's stake, ``cancel``,
``claim``, ``expire``, ``commit`` and ``challenge``, and every job function in the wrong phase
or on an unknown job.

The fixtures (two markets, one on the real game and one on a stub) are in conftest.py; the
parameters and steps in tests/market_case.py.
"""

import ape
import pytest

from accounting import CANCELLED, CLAIMED, COMMITTED, FINALIZED, OPEN, REJECTED, assert_drained
from market_case import (CHALLENGER_BOND, CHALLENGE_WINDOW, CLAIM_WINDOW, COMMIT_WINDOW, DEPOSIT, FEE, N_OPS,
                         OPS_ROOT, SOLVER_BOND, TRACE, ZERO_ADDRESS, challenge, claimed,
                         commit, committed, job_in, post, warp, warp_past, withdraw,
                         withdraw_stake)
from referee.commitments import state_tree
from referee.hashing import keccak256

# ---------------------------------------------------------------------------
# deposit / withdraw_stake
# ---------------------------------------------------------------------------


def test_deposit_succeeds(market, who):
    tx = market.deposit(value=DEPOSIT, sender=who.solver)
    market.deposit(value=5, sender=who.solver)
    assert market.stake(who.solver) == DEPOSIT + 5
    assert market.locked(who.solver) == 0
    assert market.total_stake() == DEPOSIT + 5
    assert market.balance == DEPOSIT + 5
    [log] = tx.decode_logs(market.StakeDeposited)
    assert (log.solver, log.amount, log.stake) == (who.solver.address, DEPOSIT, DEPOSIT)


def test_deposit_zero_reverts(market, who):
    with ape.reverts("market: zero deposit"):
        market.deposit(value=0, sender=who.solver)


def test_withdraw_stake_succeeds(market, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    withdraw_stake(market, who.solver, DEPOSIT - 1)
    assert market.stake(who.solver) == 1
    withdraw_stake(market, who.solver, 1)
    assert market.stake(who.solver) == 0
    assert_drained(market)


def test_withdraw_stake_zero_reverts(market, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    with ape.reverts("market: zero amount"):
        market.withdraw_stake(0, sender=who.solver)


def test_withdraw_stake_above_stake_reverts(market, who):
    with ape.reverts("market: insufficient free stake"):
        market.withdraw_stake(1, sender=who.solver)
    market.deposit(value=DEPOSIT, sender=who.solver)
    with ape.reverts("market: insufficient free stake"):
        market.withdraw_stake(DEPOSIT + 1, sender=who.solver)


def test_withdraw_stake_locked_reverts(market, model_id, who):
    job_id = claimed(market, model_id, who)
    assert market.locked(who.solver) == SOLVER_BOND
    free = DEPOSIT - SOLVER_BOND
    with ape.reverts("market: insufficient free stake"):
        market.withdraw_stake(free + 1, sender=who.solver)
    withdraw_stake(market, who.solver, free)
    assert market.stake(who.solver) == SOLVER_BOND == market.locked(who.solver)
    # The bond is unlocked by finalize, then free again.
    commit(market, job_id, who.solver)
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=who.stranger)
    withdraw_stake(market, who.solver, SOLVER_BOND)


# ---------------------------------------------------------------------------
# cancel
# ---------------------------------------------------------------------------


def test_cancel_succeeds(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester)
    tx = market.cancel(job_id, sender=who.requester)
    assert market.job(job_id).status == CANCELLED
    assert market.total_escrow() == 0
    [log] = tx.decode_logs(market.JobCancelled)
    assert (log.job_id, log.requester, log.refund) == (job_id, who.requester.address, FEE)
    withdraw(market, who.requester, FEE)
    assert_drained(market)


def test_cancel_after_claim_deadline_succeeds(market, model_id, who):
    # An unclaimed job whose claim deadline passed stays OPEN until its requester cancels.
    job_id, _ = post(market, model_id, who.requester)
    warp_past(market.job(job_id).claim_deadline)
    market.cancel(job_id, sender=who.requester)
    withdraw(market, who.requester, FEE)


def test_cancel_after_expire_succeeds(market, model_id, who):
    # The requester gets the fee back and keeps the slashed bond of the expired claim.
    job_id = claimed(market, model_id, who)
    warp_past(market.job(job_id).commit_deadline)
    market.expire(job_id, sender=who.stranger)
    market.cancel(job_id, sender=who.requester)
    withdraw(market, who.requester, FEE + SOLVER_BOND)
    withdraw_stake(market, who.solver, DEPOSIT - SOLVER_BOND)
    assert_drained(market)


@pytest.mark.parametrize("caller", ["solver", "stranger"])
def test_cancel_wrong_caller_reverts(market, model_id, who, caller):
    job_id, _ = post(market, model_id, who.requester)
    with ape.reverts("market: caller is not the requester"):
        market.cancel(job_id, sender=getattr(who, caller))


# ---------------------------------------------------------------------------
# claim
# ---------------------------------------------------------------------------


def test_claim_succeeds(market, model_id, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    job_id, _ = post(market, model_id, who.requester)
    tx = market.claim(job_id, sender=who.solver)
    job = market.job(job_id)
    assert job.status == CLAIMED
    assert job.solver == who.solver.address
    assert job.commit_deadline == tx.timestamp + COMMIT_WINDOW
    assert market.locked(who.solver) == SOLVER_BOND
    assert market.stake(who.solver) == DEPOSIT
    [log] = tx.decode_logs(market.JobClaimed)
    assert (log.job_id, log.solver, log.bond, log.commit_deadline) == (
        job_id, who.solver.address, SOLVER_BOND, job.commit_deadline)


def test_claim_at_deadline_succeeds(market, model_id, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    job_id, _ = post(market, model_id, who.requester)
    warp(market.job(job_id).claim_deadline)
    market.claim(job_id, sender=who.solver)


def test_claim_after_deadline_reverts(market, model_id, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    job_id, _ = post(market, model_id, who.requester)
    warp(market.job(job_id).claim_deadline + 1)
    with ape.reverts("market: claim deadline passed"):
        market.claim(job_id, sender=who.solver)


def test_claim_no_stake_reverts(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester)
    with ape.reverts("market: insufficient free stake"):
        market.claim(job_id, sender=who.solver)
    market.deposit(value=SOLVER_BOND - 1, sender=who.solver)
    with ape.reverts("market: insufficient free stake"):
        market.claim(job_id, sender=who.solver)
    market.deposit(value=1, sender=who.solver)
    market.claim(job_id, sender=who.solver)  # exactly the bond is enough


def test_claim_stake_locked_by_other_jobs_reverts(market, model_id, who):
    # DEPOSIT covers two bonds, not three.
    assert 2 * SOLVER_BOND <= DEPOSIT < 3 * SOLVER_BOND
    market.deposit(value=DEPOSIT, sender=who.solver)
    jobs = [post(market, model_id, who.requester)[0] for _ in range(3)]
    market.claim(jobs[0], sender=who.solver)
    market.claim(jobs[1], sender=who.solver)
    assert market.locked(who.solver) == 2 * SOLVER_BOND
    with ape.reverts("market: insufficient free stake"):
        market.claim(jobs[2], sender=who.solver)
    withdraw_stake(market, who.solver, DEPOSIT - 2 * SOLVER_BOND)


# ---------------------------------------------------------------------------
# expire
# ---------------------------------------------------------------------------


def test_expire_succeeds(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp(market.job(job_id).commit_deadline + 1)
    tx = market.expire(job_id, sender=who.stranger)
    job = market.job(job_id)
    assert job.status == OPEN
    assert job.solver == ZERO_ADDRESS and job.commit_deadline == 0
    assert job.claim_deadline == tx.timestamp + CLAIM_WINDOW
    assert market.stake(who.solver) == DEPOSIT - SOLVER_BOND
    assert market.locked(who.solver) == 0
    assert market.credit(who.requester) == SOLVER_BOND
    assert market.total_escrow() == FEE  # the fee stays escrowed: the job can still be done
    [log] = tx.decode_logs(market.JobExpired)
    assert (log.job_id, log.solver, log.slashed, log.claim_deadline) == (
        job_id, who.solver.address, SOLVER_BOND, job.claim_deadline)


def test_expire_at_deadline_reverts(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp(market.job(job_id).commit_deadline)
    with ape.reverts("market: commit deadline not passed"):
        market.expire(job_id, sender=who.stranger)


# ---------------------------------------------------------------------------
# commit
# ---------------------------------------------------------------------------


def test_commit_succeeds(market, model_id, who):
    job_id = claimed(market, model_id, who)
    tx = commit(market, job_id, who.solver)
    job = market.job(job_id)
    assert job.status == COMMITTED
    assert job.trace_root == TRACE.s_n
    assert job.output_root == TRACE.slots[-1]
    assert job.challenge_deadline == tx.timestamp + CHALLENGE_WINDOW
    [log] = tx.decode_logs(market.JobCommitted)
    assert (log.job_id, log.solver, log.trace_root, log.output_root) == (
        job_id, who.solver.address, TRACE.s_n, TRACE.slots[-1])
    assert log.challenge_deadline == job.challenge_deadline
    assert log.output == TRACE.output  # anyone reads the result from the log


def test_commit_at_deadline_succeeds(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp(market.job(job_id).commit_deadline)
    commit(market, job_id, who.solver)


def test_commit_after_deadline_reverts(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp(market.job(job_id).commit_deadline + 1)
    with ape.reverts("market: commit deadline passed"):
        commit(market, job_id, who.solver)


@pytest.mark.parametrize("caller", ["requester", "solver2", "stranger"])
def test_commit_wrong_caller_reverts(market, model_id, who, caller):
    job_id = claimed(market, model_id, who)
    with ape.reverts("market: caller is not the solver"):
        commit(market, job_id, getattr(who, caller))


@pytest.mark.parametrize("output", [TRACE.output[:-1], TRACE.output + b"\x01", b"", TRACE.input])
def test_commit_output_shape_mismatch_reverts(market, model_id, who, output):
    job_id = claimed(market, model_id, who)
    with ape.reverts("market: output does not match shape"):
        market.commit(job_id, output, TRACE.s_n, TRACE.proof, sender=who.solver)


def _bad_commits():
    other_slot = state_tree(TRACE.slots, N_OPS).proof(N_OPS - 1)
    flipped = bytes([TRACE.output[0] ^ 1]) + TRACE.output[1:]
    return {
        "wrong sibling": (TRACE.output, TRACE.s_n, [keccak256(b"x")] + TRACE.proof[1:]),
        "short proof": (TRACE.output, TRACE.s_n, TRACE.proof[:-1]),
        "long proof": (TRACE.output, TRACE.s_n, TRACE.proof + [bytes(32)]),
        "empty proof": (TRACE.output, TRACE.s_n, []),
        "other slot's proof": (TRACE.output, TRACE.s_n, other_slot),
        "other trace root": (TRACE.output, keccak256(b"S_N"), TRACE.proof),
        "zero trace root": (TRACE.output, bytes(32), TRACE.proof),
        "other output": (flipped, TRACE.s_n, TRACE.proof),
        "S_0 as trace root": (TRACE.output, TRACE.s_0, TRACE.proof),
    }


@pytest.mark.parametrize("case", list(_bad_commits()))
def test_commit_bad_output_proof_reverts(market, model_id, who, case):
    output, trace_root, proof = _bad_commits()[case]
    job_id = claimed(market, model_id, who)
    with ape.reverts("market: bad output proof"):
        market.commit(job_id, output, trace_root, proof, sender=who.solver)
    commit(market, job_id, who.solver)  # the right one still goes through


# ---------------------------------------------------------------------------
# challenge
# ---------------------------------------------------------------------------


def test_challenge_succeeds(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    challenger = who.challengers[0]
    tx = stub_market.challenge(job_id, value=CHALLENGER_BOND, sender=challenger)
    [log] = tx.decode_logs(stub_market.JobChallenged)
    assert (log.job_id, log.game_id, log.challenger, log.bond) == (job_id, 1, challenger.address, CHALLENGER_BOND)
    record = stub_market.challenge_of(1)
    assert (record.job_id, record.challenger, record.bond, record.open) == (job_id, challenger.address,
                                                                            CHALLENGER_BOND, True)
    assert stub_market.job(job_id).open_games == 1
    assert stub_market.total_bonds() == CHALLENGER_BOND
    # The game gets the committed run: S_0 computed at post and S_N from the commit.
    opened = stub.opened(1)
    assert opened.owner == stub_market.address
    assert (opened.solver, opened.challenger) == (who.solver.address, challenger.address)
    assert (opened.ops_root, opened.n_ops, opened.s_0, opened.s_n) == (OPS_ROOT, N_OPS, TRACE.s_0, TRACE.s_n)


def test_challenge_real_game_succeeds(market, game, model_id, who):
    job_id = committed(market, model_id, who)
    game_id = challenge(market, job_id, who.challengers[0])
    assert game_id == 1
    assert game.to_move(game_id) == who.solver.address  # BISECT, N = 3 > 1


def test_challenge_at_deadline_succeeds(market, model_id, who):
    job_id = committed(market, model_id, who)
    warp(market.job(job_id).challenge_deadline)
    challenge(market, job_id, who.challengers[0])


def test_challenge_after_deadline_reverts(market, model_id, who):
    job_id = committed(market, model_id, who)
    warp(market.job(job_id).challenge_deadline + 1)
    with ape.reverts("market: challenge deadline passed"):
        challenge(market, job_id, who.challengers[0])


@pytest.mark.parametrize("value", [0, CHALLENGER_BOND - 1, CHALLENGER_BOND + 1, 2 * CHALLENGER_BOND])
def test_challenge_wrong_bond_reverts(market, model_id, who, value):
    job_id = committed(market, model_id, who)
    with ape.reverts("market: wrong challenger bond"):
        market.challenge(job_id, value=value, sender=who.challengers[0])


def test_challenge_by_solver_reverts(market, model_id, who):
    job_id = committed(market, model_id, who)
    with ape.reverts("market: solver cannot challenge"):
        market.challenge(job_id, value=CHALLENGER_BOND, sender=who.solver)


def test_challenge_by_requester_succeeds(market, model_id, who):
    job_id = committed(market, model_id, who)
    challenge(market, job_id, who.requester)


def test_challenge_game_id_reused_reverts(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    challenge(stub_market, job_id, who.challengers[0])
    stub.force_id(1, sender=who.stranger)
    with ape.reverts("market: game id reused"):
        challenge(stub_market, job_id, who.challengers[1])


# ---------------------------------------------------------------------------
# Wrong phase and unknown job, every job function
# ---------------------------------------------------------------------------

PHASE_CASES = [
    # (function, status the job is in, reason)
    ("cancel", CLAIMED, "market: job is not open"),
    ("cancel", COMMITTED, "market: job is not open"),
    ("cancel", FINALIZED, "market: job is not open"),
    ("cancel", REJECTED, "market: job is not open"),
    ("cancel", CANCELLED, "market: job is not open"),
    ("claim", CLAIMED, "market: job is not open"),
    ("claim", COMMITTED, "market: job is not open"),
    ("claim", FINALIZED, "market: job is not open"),
    ("claim", CANCELLED, "market: job is not open"),
    ("expire", OPEN, "market: job is not claimed"),
    ("expire", COMMITTED, "market: job is not claimed"),
    ("expire", CANCELLED, "market: job is not claimed"),
    ("commit", OPEN, "market: job is not claimed"),
    ("commit", COMMITTED, "market: job is not claimed"),
    ("commit", REJECTED, "market: job is not claimed"),
    ("challenge", OPEN, "market: job is not committed"),
    ("challenge", CLAIMED, "market: job is not committed"),
    ("challenge", FINALIZED, "market: job is not committed"),
    ("challenge", REJECTED, "market: job is not committed"),
    ("finalize", OPEN, "market: job is not committed"),
    ("finalize", CLAIMED, "market: job is not committed"),
    ("finalize", FINALIZED, "market: job is not committed"),
    ("finalize", REJECTED, "market: job is not committed"),
    ("finalize", CANCELLED, "market: job is not committed"),
]


def _call(market, who, name, job_id):
    """Calls a job function as the party that could call it in the right phase, once every
    deadline that function waits for has passed (or not yet come, for those that need it)."""
    if name == "cancel":
        return market.cancel(job_id, sender=who.requester)
    if name == "claim":
        return market.claim(job_id, sender=who.solver2)
    if name == "expire":
        return market.expire(job_id, sender=who.stranger)
    if name == "commit":
        return commit(market, job_id, who.solver)
    if name == "challenge":
        return market.challenge(job_id, value=CHALLENGER_BOND, sender=who.challengers[3])
    if name == "finalize":
        return market.finalize(job_id, sender=who.stranger)
    raise AssertionError(name)


@pytest.mark.parametrize("name,status,reason", PHASE_CASES)
def test_job_function_wrong_phase_reverts(stub_market, stub, model_id, who, name, status, reason):
    stub_market.deposit(value=DEPOSIT, sender=who.solver2)
    job_id = job_in(stub_market, model_id, who, status, stub)
    assert stub_market.job(job_id).status == status
    with ape.reverts(reason):
        _call(stub_market, who, name, job_id)


@pytest.mark.parametrize("name", ["cancel", "claim", "expire", "commit", "challenge", "finalize"])
def test_job_function_unknown_job_reverts(market, model_id, who, name):
    with ape.reverts("market: unknown job"):
        _call(market, who, name, 0)
    post(market, model_id, who.requester)
    with ape.reverts("market: unknown job"):
        _call(market, who, name, 2)


def test_job_unknown_reverts(market, model_id, who):
    with ape.reverts("market: unknown job"):
        market.job(1)
    post(market, model_id, who.requester)
    market.job(1)
    with ape.reverts("market: unknown job"):
        market.job(2)
    with ape.reverts("market: unknown job"):
        market.job(0)


def test_challenge_of_unknown_reverts(market):
    with ape.reverts("market: unknown game"):
        market.challenge_of(1)
