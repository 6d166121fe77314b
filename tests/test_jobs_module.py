"""The jobs and terms modules (contracts/modules/jobs.vy, terms.vy) through their harness
(contracts/mocks/jobs_mock.vy): the deployment's terms, the terms ``post`` accepts, and the job's
life from ``post`` to ``finalize``, each bound tested at its edge (the value at the bound passes,
one past it fails), with the harness's balance always equal to ``obligations()``.

The harness is deployed with limits strictly inside the constants (MIN_WINDOW 60 > 1, MAX_WINDOW
a week < WINDOW_LIMIT), so a check against the wrong one of the two fails here."""

import ape
import pytest
from ape import chain

from referee.hashing import keccak256
from market_case import make_trace, packed

ZERO = "0x0000000000000000000000000000000000000000"
CHALLENGER_BOND, MIN_SOLVER_BOND, SHARE, DILUTION = 3 * 10**17 + 1, 10**17, 997, 331
MIN_WINDOW, WEEK = 60, 7 * 86400
WINDOW_LIMIT, MAX_ROWS, MAX_TENSOR_BYTES = 365 * 86400, 4096, 65536
TERMS = (CHALLENGER_BOND, MIN_SOLVER_BOND, SHARE, DILUTION, MIN_WINDOW, WEEK)
FEE, BOND, DEPOSIT = 2 * 10**18 + 3, 10**18 + 7, 3 * 10**18
WINDOWS = (600, 1200, 86400)
N_OPS, IN_COLS, OUT_COLS, ROWS = 3, 4, 2, 3
TRACE = make_trace(N_OPS, ROWS, IN_COLS, OUT_COLS)
OPEN, CLAIMED, COMMITTED, FINALIZED, CANCELLED = 1, 2, 3, 4, 6


@pytest.fixture(scope="module")
def registry(project, deployer):
    registry = deployer.deploy(project.ModelRegistry)
    registry.register(N_OPS, IN_COLS, OUT_COLS, keccak256(b"jobs module ops"), 0, 0, 1, 65536, 1, 1, sender=deployer)
    return registry


@pytest.fixture(scope="module")
def jobs(project, deployer, registry):
    return deployer.deploy(project.jobs_mock, registry, *TERMS)


@pytest.fixture(scope="module")
def requester(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def solver(accounts):
    return accounts[2]


@pytest.fixture(autouse=True)
def owed(jobs):
    """The harness holds exactly what it owes, after every test."""
    yield
    assert chain.provider.get_balance(jobs.address) == jobs.obligations()


def warp(timestamp: int):
    chain.pending_timestamp = timestamp


def post(jobs, requester, model_id=1, rows=ROWS, data=TRACE.input, fee=FEE, bond=BOND, windows=WINDOWS):
    jobs.post(model_id, rows, data, bond, *windows, value=fee, sender=requester)
    return jobs.job_count()


def claimed(jobs, requester, solver):
    jobs.deposit(value=DEPOSIT, sender=solver)
    job_id = post(jobs, requester)
    jobs.claim(job_id, sender=solver)
    return job_id


def committed(jobs, requester, solver):
    job_id = claimed(jobs, requester, solver)
    jobs.commit(job_id, TRACE.output, TRACE.s_n, TRACE.proof, sender=solver)
    return job_id


def model(registry, deployer, in_cols, out_cols) -> int:
    registry.register(2, in_cols, out_cols, keccak256(b"model %d %d" % (in_cols, out_cols)),
                      0, 0, 1, 65536, 1, 1, sender=deployer)
    return registry.model_count()


# ---------------------------------------------------------------------------
# The deployment's terms (terms.__init__, jobs.__init__)
# ---------------------------------------------------------------------------


def test_constructor_terms_succeeds(jobs, registry):
    assert jobs.REGISTRY() == registry.address
    assert (jobs.CHALLENGER_BOND(), jobs.MIN_SOLVER_BOND(), jobs.REWARD_SHARE_BPS(), jobs.DILUTION_FEE_BPS(),
            jobs.MIN_WINDOW(), jobs.MAX_WINDOW()) == TERMS
    assert (jobs.WINDOW_LIMIT(), jobs.MAX_ROWS(), jobs.MAX_REWARD_SHARE_BPS(), jobs.MAX_PAID_WINNERS()) == (
        WINDOW_LIMIT, MAX_ROWS, 1000, 5)
    assert (jobs.OPEN(), jobs.CLAIMED(), jobs.COMMITTED(), jobs.FINALIZED(), jobs.REJECTED(), jobs.CANCELLED()) == (
        1, 2, 3, 4, 5, 6)


# (index into TERMS, the edge value that passes, the one past it that fails, the reason)
CONSTRUCTOR_EDGES = [
    (0, 1, 0, "market: zero challenger bond"),
    (1, 1, 0, "market: zero minimum solver bond"),
    (2, 1000, 1001, "market: reward share out of range"),        # with a fee of 300 (1000 < 6 x 300)
    (4, 1, 0, "market: window limits out of range"),             # min_window >= 1
    (4, WEEK, WEEK + 1, "market: window limits out of range"),   # min_window <= max_window
    (5, WINDOW_LIMIT, WINDOW_LIMIT + 1, "market: window limits out of range"),  # max_window <= WINDOW_LIMIT
    (5, MIN_WINDOW, MIN_WINDOW - 1, "market: window limits out of range"),      # max_window >= min_window
]


@pytest.mark.parametrize("index,good,bad,reason", CONSTRUCTOR_EDGES)
def test_constructor_term_at_edge(project, deployer, registry, index, good, bad, reason):
    terms = list(TERMS)
    if index == 2:
        terms[3] = 300
    terms[index] = good
    deployed = deployer.deploy(project.jobs_mock, registry, *terms)
    assert deployed.CHALLENGER_BOND() == terms[0] and deployed.MAX_WINDOW() == terms[5]
    terms[index] = bad
    with ape.reverts(reason):
        deployer.deploy(project.jobs_mock, registry, *terms)


BAD_SPLITS = [(1000, 500), (4, 2), (6, 1), (996, 166), (1, 1), (0, 1), (1, 0), (1000, 2**255)]


@pytest.mark.parametrize("share,fee", [(1000, 499), (1000, 167), (0, 0), (3, 1), (5, 2), (5, 1)] + BAD_SPLITS)
def test_constructor_dilution_fee_at_edges(project, deployer, registry, share, fee):
    # fee <= share, and 2 x fee < share < 6 x fee unless both are zero: (1000, 499) and (1000, 167)
    # are just inside, (1000, 500) and (996, 166) just outside; (1, 1) has fee == share but fails
    # 2 x fee < share; (0, 1) and (1000, 2^255) have the fee above the share (2 x 2^255 would
    # overflow: the first check must refuse it); (1, 0) is a share with no fee
    terms = list(TERMS)
    terms[2], terms[3] = share, fee
    if (share, fee) in BAD_SPLITS:
        with ape.reverts("market: dilution fee out of range"):
            deployer.deploy(project.jobs_mock, registry, *terms)
    else:
        assert deployer.deploy(project.jobs_mock, registry, *terms).DILUTION_FEE_BPS() == fee


def test_constructor_zero_registry_reverts(project, deployer):
    with ape.reverts("market: zero registry"):
        deployer.deploy(project.jobs_mock, ZERO, *TERMS)


# ---------------------------------------------------------------------------
# The terms post accepts (terms._check_post), each at its edge
# ---------------------------------------------------------------------------


def check(jobs, fee=1, bond=MIN_SOLVER_BOND, windows=WINDOWS, rows=1):
    return jobs.check_post(fee, bond, *windows, rows)


def test_check_post_fee_and_bond_edges(jobs):
    assert check(jobs, fee=1, bond=MIN_SOLVER_BOND)
    with ape.reverts("market: zero fee"):
        check(jobs, fee=0)
    with ape.reverts("market: solver bond below minimum"):
        check(jobs, bond=MIN_SOLVER_BOND - 1)


@pytest.mark.parametrize("which,name", [(0, "claim"), (1, "commit"), (2, "challenge")])
def test_check_post_window_edges(jobs, which, name):
    # MIN_WINDOW and MAX_WINDOW pass, a second outside either fails; WINDOW_LIMIT (above
    # MAX_WINDOW here) fails too
    for value, ok in [(MIN_WINDOW, True), (MIN_WINDOW - 1, False), (WEEK, True), (WEEK + 1, False),
                      (WINDOW_LIMIT, False), (0, False)]:
        windows = list(WINDOWS)
        windows[which] = value
        if ok:
            assert check(jobs, windows=windows)
        else:
            with ape.reverts(f"market: {name} window out of range"):
                check(jobs, windows=windows)


def test_check_post_rows_edges(jobs):
    assert check(jobs, rows=1) and check(jobs, rows=MAX_ROWS)
    for rows in (0, MAX_ROWS + 1):
        with ape.reverts("market: rows out of range"):
            check(jobs, rows=rows)


def test_check_post_order_of_reasons(jobs):
    # the first failing check is the reason (protocol.md 10.5): fee, bond, windows, rows
    with ape.reverts("market: zero fee"):
        jobs.check_post(0, 0, 0, 0, 0, 0)
    with ape.reverts("market: solver bond below minimum"):
        jobs.check_post(1, 0, 0, 0, 0, 0)
    with ape.reverts("market: claim window out of range"):
        jobs.check_post(1, MIN_SOLVER_BOND, 0, 0, 0, 0)
    with ape.reverts("market: commit window out of range"):
        jobs.check_post(1, MIN_SOLVER_BOND, MIN_WINDOW, 0, 0, 0)
    with ape.reverts("market: challenge window out of range"):
        jobs.check_post(1, MIN_SOLVER_BOND, MIN_WINDOW, MIN_WINDOW, 0, 0)


# ---------------------------------------------------------------------------
# post
# ---------------------------------------------------------------------------


def test_post_succeeds(jobs, requester):
    tx = jobs.post(1, ROWS, TRACE.input, BOND, *WINDOWS, value=FEE, sender=requester)
    job_id = jobs.job_count()
    job = jobs.job(job_id)
    assert (job.requester, job.status, job.fee, job.solver_bond) == (requester.address, OPEN, FEE, BOND)
    assert (job.input_root, job.s_0) == (TRACE.slots[0], TRACE.s_0)
    assert job.claim_deadline == tx.timestamp + WINDOWS[0]
    assert jobs.total_escrow() == FEE
    [log] = tx.decode_logs(jobs.JobPosted)
    assert (log.job_id, log.input) == (job_id, TRACE.input)


def test_post_at_every_edge_succeeds(jobs, requester):
    post(jobs, requester, fee=1, bond=MIN_SOLVER_BOND, windows=(MIN_WINDOW,) * 3)
    job_id = post(jobs, requester, windows=(WEEK,) * 3)
    assert jobs.job(job_id).claim_window == WEEK


@pytest.mark.parametrize("which,name", [(0, "claim"), (1, "commit"), (2, "challenge")])
def test_post_window_above_deployment_maximum_reverts(jobs, requester, which, name):
    windows = list(WINDOWS)
    windows[which] = WEEK + 1
    with ape.reverts(f"market: {name} window out of range"):
        post(jobs, requester, windows=windows)


def test_post_input_length_edges(jobs, requester):
    for data in (TRACE.input[:-1], TRACE.input + b"\x00"):
        with ape.reverts("market: input does not match shape"):
            post(jobs, requester, data=data)


def test_post_output_at_commit_limit_edges(jobs, registry, deployer, requester):
    # rows x output_cols == MAX_TENSOR_BYTES passes; 65,538 (6 x 10,923), the smallest output
    # above it a job can have, fails (65,537 is prime and above MAX_COLS)
    at_limit = model(registry, deployer, 1, 16)
    assert jobs.job(post(jobs, requester, model_id=at_limit, rows=4096, data=packed(4096, 1, 0))).rows == 4096
    above = model(registry, deployer, 1, 10923)
    assert 6 * 10923 == MAX_TENSOR_BYTES + 2
    with ape.reverts("market: output too large to commit"):
        post(jobs, requester, model_id=above, rows=6, data=packed(6, 1, 0))
    post(jobs, requester, model_id=above, rows=5, data=packed(5, 1, 0))  # 54,615 bytes


def test_post_max_rows_succeeds(jobs, registry, deployer, requester):
    one = model(registry, deployer, 1, 1)
    post(jobs, requester, model_id=one, rows=MAX_ROWS, data=packed(MAX_ROWS, 1, 0))
    with ape.reverts("market: rows out of range"):
        post(jobs, requester, model_id=one, rows=MAX_ROWS + 1, data=packed(MAX_ROWS + 1, 1, 0))


# ---------------------------------------------------------------------------
# job ids (jobs._check_job and the views)
# ---------------------------------------------------------------------------


def test_job_ids_edges(jobs, requester):
    for job_id in (0, 1):
        with ape.reverts("market: unknown job"):
            jobs.check_job(job_id)
    post(jobs, requester)
    post(jobs, requester)
    assert jobs.job_count() == 2 and jobs.check_job(1) and jobs.check_job(2)
    for job_id in (0, 3, 2**256 - 1):
        with ape.reverts("market: unknown job"):
            jobs.job(job_id)
    for fn in (jobs.cancel, jobs.claim, jobs.expire, jobs.finalize):
        with ape.reverts("market: unknown job"):
            fn(3, sender=requester)
    with ape.reverts("market: unknown job"):
        jobs.commit(3, TRACE.output, TRACE.s_n, TRACE.proof, sender=requester)


# ---------------------------------------------------------------------------
# cancel, claim, expire
# ---------------------------------------------------------------------------


def test_cancel_succeeds_and_only_once(jobs, requester, solver):
    job_id = post(jobs, requester)
    with ape.reverts("market: caller is not the requester"):
        jobs.cancel(job_id, sender=solver)
    tx = jobs.cancel(job_id, sender=requester)
    assert jobs.job(job_id).status == CANCELLED and jobs.credit(requester) == FEE
    [log] = tx.decode_logs(jobs.JobCancelled)
    assert log.refund == FEE
    with ape.reverts("market: job is not open"):
        jobs.cancel(job_id, sender=requester)
    jobs.withdraw(sender=requester)


def test_cancel_claimed_reverts(jobs, requester, solver):
    job_id = claimed(jobs, requester, solver)
    with ape.reverts("market: job is not open"):
        jobs.cancel(job_id, sender=requester)


def test_claim_deadline_edges(jobs, requester, solver):
    jobs.deposit(value=DEPOSIT, sender=solver)
    late = post(jobs, requester)
    warp(jobs.job(late).claim_deadline + 1)
    with ape.reverts("market: claim deadline passed"):
        jobs.claim(late, sender=solver)
    on_time = post(jobs, requester)
    warp(jobs.job(on_time).claim_deadline)
    tx = jobs.claim(on_time, sender=solver)
    job = jobs.job(on_time)
    assert (job.status, job.solver, job.commit_deadline) == (CLAIMED, solver.address, tx.timestamp + WINDOWS[1])
    assert jobs.locked(solver) == BOND
    with ape.reverts("market: job is not open"):
        jobs.claim(on_time, sender=solver)


def test_claim_locks_the_bond_at_the_free_stake_edge(jobs, requester, solver):
    job_id = post(jobs, requester)
    jobs.deposit(value=BOND - 1, sender=solver)
    with ape.reverts("market: insufficient free stake"):
        jobs.claim(job_id, sender=solver)
    jobs.deposit(value=1, sender=solver)
    jobs.claim(job_id, sender=solver)
    assert jobs.locked(solver) == jobs.stake(solver) == BOND


def test_expire_deadline_edges(jobs, requester, solver, accounts):
    job_id = claimed(jobs, requester, solver)
    with ape.reverts("market: job is not claimed"):
        jobs.expire(post(jobs, requester), sender=requester)
    warp(jobs.job(job_id).commit_deadline)
    with ape.reverts("market: commit deadline not passed"):
        jobs.expire(job_id, sender=accounts[5])
    warp(jobs.job(job_id).commit_deadline + 1)
    tx = jobs.expire(job_id, sender=accounts[5])
    job = jobs.job(job_id)
    assert (job.status, job.solver, job.commit_deadline) == (OPEN, ZERO, 0)
    assert job.claim_deadline == tx.timestamp + WINDOWS[0]
    assert jobs.credit(requester) == BOND and jobs.stake(solver) == DEPOSIT - BOND and jobs.locked(solver) == 0


# ---------------------------------------------------------------------------
# commit
# ---------------------------------------------------------------------------


def test_commit_deadline_edges(jobs, requester, solver):
    late = claimed(jobs, requester, solver)
    warp(jobs.job(late).commit_deadline + 1)
    with ape.reverts("market: commit deadline passed"):
        jobs.commit(late, TRACE.output, TRACE.s_n, TRACE.proof, sender=solver)
    job_id = post(jobs, requester)
    jobs.claim(job_id, sender=solver)
    warp(jobs.job(job_id).commit_deadline)
    tx = jobs.commit(job_id, TRACE.output, TRACE.s_n, TRACE.proof, sender=solver)
    job = jobs.job(job_id)
    assert (job.status, job.trace_root, job.output_root) == (COMMITTED, TRACE.s_n, TRACE.slots[-1])
    assert job.challenge_deadline == tx.timestamp + WINDOWS[2]
    with ape.reverts("market: job is not claimed"):
        jobs.commit(job_id, TRACE.output, TRACE.s_n, TRACE.proof, sender=solver)


def test_commit_checks_caller_shape_and_proof(jobs, requester, solver):
    job_id = claimed(jobs, requester, solver)
    with ape.reverts("market: caller is not the solver"):
        jobs.commit(job_id, TRACE.output, TRACE.s_n, TRACE.proof, sender=requester)
    for output in (TRACE.output[:-1], TRACE.output + b"\x00"):
        with ape.reverts("market: output does not match shape"):
            jobs.commit(job_id, output, TRACE.s_n, TRACE.proof, sender=solver)
    with ape.reverts("market: bad output proof"):
        jobs.commit(job_id, TRACE.output, TRACE.s_0, TRACE.proof, sender=solver)
    with ape.reverts("market: bad output proof"):
        jobs.commit(job_id, bytes(len(TRACE.output)), TRACE.s_n, TRACE.proof, sender=solver)


def test_commit_unclaimed_reverts(jobs, requester, solver):
    with ape.reverts("market: job is not claimed"):
        jobs.commit(post(jobs, requester), TRACE.output, TRACE.s_n, TRACE.proof, sender=solver)


# ---------------------------------------------------------------------------
# finalize
# ---------------------------------------------------------------------------


def test_finalize_deadline_and_open_game_edges(jobs, requester, solver, accounts):
    job_id = committed(jobs, requester, solver)
    warp(jobs.job(job_id).challenge_deadline)
    with ape.reverts("market: challenge window not over"):
        jobs.finalize(job_id, sender=accounts[5])
    jobs.set_open_games(job_id, 1, sender=accounts[5])
    warp(jobs.job(job_id).challenge_deadline + 1)
    with ape.reverts("market: game still open"):
        jobs.finalize(job_id, sender=accounts[5])
    jobs.set_open_games(job_id, 0, sender=accounts[5])
    tx = jobs.finalize(job_id, sender=accounts[5])
    assert jobs.job(job_id).status == FINALIZED
    assert jobs.credit(solver) == FEE and jobs.locked(solver) == 0 and jobs.stake(solver) == DEPOSIT
    [log] = tx.decode_logs(jobs.JobFinalized)
    assert (log.solver, log.fee) == (solver.address, FEE)
    with ape.reverts("market: job is not committed"):
        jobs.finalize(job_id, sender=accounts[5])


def test_finalize_claimed_reverts(jobs, requester, solver):
    job_id = claimed(jobs, requester, solver)
    warp(jobs.job(job_id).commit_deadline + 1)
    with ape.reverts("market: job is not committed"):
        jobs.finalize(job_id, sender=requester)


# ---------------------------------------------------------------------------
# the held slashed bond (jobs._take_held)
# ---------------------------------------------------------------------------


def test_take_held_at_edges(jobs, requester, accounts):
    job_id = post(jobs, requester)
    jobs.hold(job_id, value=1000, sender=accounts[5])
    taker = accounts[6]
    assert jobs.take_held.call(job_id, 999, sender=taker) == 999
    jobs.take_held(job_id, 999, sender=taker)
    assert jobs.job(job_id).held == 1 and jobs.credit(taker) == 999
    jobs.take_held(job_id, 2, sender=taker)  # one more than is left: takes what is left
    assert jobs.job(job_id).held == 0 and jobs.credit(taker) == 1000
    assert jobs.total_escrow() == FEE
