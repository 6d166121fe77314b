#pragma version ~=0.4.3
"""
@title Jobs
@custom:contract-name jobs
@license MIT
@notice Jobs (protocol.md 10.2): the job record and its statuses, and
        the job's life outside its games: `post` (its terms checked by
        `terms.vy`, its shapes here), `cancel`, `claim`, `expire`,
        `commit`, `finalize`, and the views `job` and `job_count`.
        Generation jobs are posted and committed by `generation.vy`,
        through `_store_job` and `_claimed`.
@dev Stateful: `JobMarket.vy` initializes it (with `terms`, the bounds
     `post` checks, and `stakes` and `escrow`, whose totals every
     function here moves wei between) and exports its externals; the
     market's `challenge`, `settle` and `reclaim` read and update the
     record of a COMMITTED or REJECTED job directly. Each function keeps
     the market's accounting: a fee is in `escrow.total_escrow` while
     its job is OPEN, CLAIMED or COMMITTED, and a claimed job's bond is
     locked in `stakes`.
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------


# @dev The model entries: shapes, op count, ops root and state depth.
from ..interfaces import IModelRegistry


# @dev The market's events.
from ..interfaces import IJobMarket


# ---------------------------------------------------------------------------
# MODULES
# ---------------------------------------------------------------------------


# @dev Stateless: the output proof against the trace root, and `S_0`.
from . import merkle


# @dev Stateless: tensor roots of the posted input and committed output,
# and a dtype's element width.
from . import tensor
from . import rows as packed_rows


# @dev Stateful (immutables): the deployment's bounds on a job's terms.
from . import terms


# @dev Stateful: a claim locks the bond, an expiry slashes it, a
# finalization unlocks it.
from . import stakes


# @dev Stateful: fees are escrowed and refunds and payments credited.
from . import escrow
uses: (terms, stakes, escrow)


# ---------------------------------------------------------------------------
# CONSTANTS
# ---------------------------------------------------------------------------


# @dev Job status: posted, escrowed, waiting for a solver to claim it.
# (0 is "no such job": ids start at 1.)
OPEN: public(constant(uint256)) = 1


# @dev Job status: a solver locked its bond and must commit by the
# commit deadline.
CLAIMED: public(constant(uint256)) = 2


# @dev Job status: the output and trace root are committed; challenges
# are open until the challenge deadline.
COMMITTED: public(constant(uint256)) = 3


# @dev Job status (final): paid to the solver.
FINALIZED: public(constant(uint256)) = 4


# @dev Job status (final): the solver lost a game; the fee was refunded.
REJECTED: public(constant(uint256)) = 5


# @dev Job status (final): the requester took the OPEN job back.
CANCELLED: public(constant(uint256)) = 6


# ---------------------------------------------------------------------------
# STRUCTS
# ---------------------------------------------------------------------------


# @dev One job. The windows are kept so that every later deadline is
# `now + window` at the step that starts it; deadlines and the solver are
# zero until their step happens.
struct Job:
    requester: address
    model_id: uint256
    rows: uint256
    input_root: bytes32
    s_0: bytes32
    fee: uint256
    solver_bond: uint256
    claim_window: uint256
    commit_window: uint256
    challenge_window: uint256
    status: uint256
    claim_deadline: uint256
    solver: address
    commit_deadline: uint256
    trace_root: bytes32
    output_root: bytes32
    challenge_deadline: uint256
    open_games: uint256
    # after a lost game: the game whose win rejected the job, how many
    # games the challenger side has won, and the slashed bond still held
    # in escrow (refunds come out of it as winners settle; the bonus pool
    # and the rest to the sink when the last game is closed)
    best_game: uint256
    winners: uint256
    held: uint256
    # a generation job (protocol 5.15): the number of tokens asked for;
    # 0 for every other job. Until its commit, `input_root` holds
    # H(packed prompt) and `s_0` is zero: `commit_generation` builds the
    # verified input from the prompt and the tokens and sets `T_0` and
    # `S_0` there, from which its games open as any job's do.
    n_tokens: uint256


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev The model registry (protocol.md 10.1).
REGISTRY: public(immutable(address))


# @dev Job id -> job; ids run from 1 to `_job_count`.
_jobs: HashMap[uint256, Job]


# @dev The number of jobs posted, which is also the last id.
_job_count: uint256


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------


@deploy
def __init__(registry: address):
    """
    @dev Fixes the registry the jobs' models are read from.
    @param registry The model registry; nonzero.
    """
    # INVARIANT: the market reads its models from a real registry.
    assert registry != empty(address), "market: zero registry"
    REGISTRY = registry


# ---------------------------------------------------------------------------
# EXTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@payable
@external
@nonreentrant
def post(
    model_id: uint256,
    rows: uint256,
    input: Bytes[tensor.MAX_TENSOR_BYTES],
    solver_bond: uint256,
    claim_window: uint256,
    commit_window: uint256,
    challenge_window: uint256,
) -> uint256:
    """
    @notice Posts a job: runs model `model_id` on `input`, for a fee of
            `msg.value`, escrowed until the job ends.
    @dev Computes the input's tensor root `T_0` (section 3, by the
         input dtype's rule) and the initial state root `S_0` (section 6,
         `merkle.initial_state`).
    @param model_id A registered model (the registry reverts with
           "registry: unknown model" otherwise).
    @param rows The input's row count, in [1, terms.MAX_ROWS], a
           multiple of the model's `row_step`, at most its
           `max_input_rows`, with `rows * out_rows_num / out_rows_den`
           whole.
    @param input The packed input of the model's input dtype,
           `rows * input_cols * width` bytes (section 3).
    @param solver_bond The bond a solver must lock to claim the job; at
           least `terms.MIN_SOLVER_BOND`.
    @param claim_window Seconds a solver has to claim, from now (and
           again after an expired claim); in
           [terms.MIN_WINDOW, terms.MAX_WINDOW].
    @param commit_window Seconds a solver has to commit, from its claim;
           in [terms.MIN_WINDOW, terms.MAX_WINDOW].
    @param challenge_window Seconds to challenge, from the commit; in
           [terms.MIN_WINDOW, terms.MAX_WINDOW].
    @return uint256 The new job id (ids start at 1).
    """
    # INVARIANT: the job's own terms are within the deployment's
    # (`terms._check_post`: fee, bond, windows, rows, in that order).
    terms._check_post(msg.value, solver_bond, claim_window, commit_window, challenge_window, rows)

    model: IModelRegistry.Model = staticcall IModelRegistry(REGISTRY).model(model_id)
    # INVARIANT: every slot's row count is whole (the model's row rule).
    assert rows % model.row_step == 0, "market: rows not a multiple of the model's row step"
    # INVARIANT: every slot keeps at most MAX_ROWS rows.
    assert rows <= model.max_input_rows, "market: more rows than the model takes"
    # INVARIANT: the output's row count is whole (rows <= 2^12 and
    # num <= 2^16: no overflow).
    assert rows * model.out_rows_num % model.out_rows_den == 0, "market: output rows not whole"
    rows_out: uint256 = rows * model.out_rows_num // model.out_rows_den
    # INVARIANT: the input is exactly the packed `[rows, input_cols]`
    # tensor of the model's input dtype; checked here so the reason names
    # the market, before the tensor module would refuse it.
    assert len(input) == rows * model.input_cols * packed_rows.width(model.input_dtype), "market: input does not match shape"
    # INVARIANT: the job's output fits what `commit` accepts, so an honest
    # solver can always commit (a job it could not would cost it its bond).
    assert rows_out * model.output_cols * packed_rows.width(model.output_dtype) <= tensor.MAX_TENSOR_BYTES, \
        "market: output too large to commit"

    input_root: bytes32 = tensor.tensor_root(input, rows, model.input_cols, model.input_dtype)
    s_0: bytes32 = merkle.initial_state(input_root, model.state_depth)

    job_id: uint256 = 0
    claim_deadline: uint256 = 0
    job_id, claim_deadline = self._store_job(
        model_id, rows, input_root, s_0, 0, msg.value, solver_bond, claim_window, commit_window, challenge_window
    )
    log IJobMarket.JobPosted(
        job_id=job_id,
        requester=msg.sender,
        model_id=model_id,
        rows=rows,
        input_root=input_root,
        s_0=s_0,
        fee=msg.value,
        solver_bond=solver_bond,
        claim_window=claim_window,
        commit_window=commit_window,
        challenge_window=challenge_window,
        claim_deadline=claim_deadline,
        input=input,
        n_tokens=0,
    )
    return job_id


@external
@nonreentrant
def cancel(job_id: uint256):
    """
    @notice Takes an OPEN job back; its fee is credited to the requester.
    @dev Only OPEN: once claimed, the solver's work is protected until
         its commit deadline (after which `expire` reopens the job).
    @param job_id The job.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only the requester decides to withdraw its own offer.
    assert msg.sender == job.requester, "market: caller is not the requester"
    # INVARIANT: a claimed or settled job cannot be taken back.
    assert job.status == OPEN, "market: job is not open"

    self._jobs[job_id].status = CANCELLED
    escrow.total_escrow -= job.fee
    escrow._add_credit(job.requester, job.fee)
    log IJobMarket.JobCancelled(job_id=job_id, requester=job.requester, refund=job.fee)


@external
@nonreentrant
def claim(job_id: uint256):
    """
    @notice Claims an OPEN job: locks `solver_bond` of the caller's stake
            and starts the commit window.
    @param job_id The job.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: one solver at a time, and only for a live offer.
    assert job.status == OPEN, "market: job is not open"
    # INVARIANT: the requester's offer lapses at its claim deadline.
    assert block.timestamp <= job.claim_deadline, "market: claim deadline passed"
    stakes._lock(msg.sender, job.solver_bond)
    commit_deadline: uint256 = block.timestamp + job.commit_window
    self._jobs[job_id].status = CLAIMED
    self._jobs[job_id].solver = msg.sender
    self._jobs[job_id].commit_deadline = commit_deadline
    log IJobMarket.JobClaimed(job_id=job_id, solver=msg.sender, bond=job.solver_bond, commit_deadline=commit_deadline)


@external
@nonreentrant
def expire(job_id: uint256):
    """
    @notice Ends a claim that was not committed by its commit deadline:
            the solver's bond is slashed to the requester's credit and
            the job is OPEN again with a fresh claim deadline.
    @dev The requester's fee stays escrowed: the job can still be done
         (or cancelled). The whole bond goes to the requester, who lost
         the time.
    @param job_id The job.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only a claim can expire.
    assert job.status == CLAIMED, "market: job is not claimed"
    # INVARIANT: the solver keeps its whole commit window.
    assert block.timestamp > job.commit_deadline, "market: commit deadline not passed"

    stakes._slash(job.solver, job.solver_bond)
    escrow._add_credit(job.requester, job.solver_bond)
    claim_deadline: uint256 = block.timestamp + job.claim_window
    self._jobs[job_id].status = OPEN
    self._jobs[job_id].claim_deadline = claim_deadline
    self._jobs[job_id].solver = empty(address)
    self._jobs[job_id].commit_deadline = 0
    log IJobMarket.JobExpired(job_id=job_id, solver=job.solver, slashed=job.solver_bond, claim_deadline=claim_deadline)


@external
@nonreentrant
def commit(
    job_id: uint256,
    output: Bytes[tensor.MAX_TENSOR_BYTES],
    trace_root: bytes32,
    output_proof: DynArray[bytes32, merkle.MAX_PROOF],
):
    """
    @notice Commits the job's result: the output bytes and the trace
            root `S_N`, and starts the challenge window.
    @dev The output's tensor root `T_N` must be slot `N` of `trace_root`
         (section 6, "the output proof at commit"), so the bytes in the
         `JobCommitted` log are the output any game is played over.
    @param job_id The job.
    @param output The packed output of the model's output dtype,
           `rows_out * output_cols * width` bytes, `rows_out = rows *
           out_rows_num / out_rows_den`.
    @param trace_root The final state root `S_N`.
    @param output_proof The `D` siblings of slot `N` in `trace_root`.
    """
    job: Job = self._claimed(job_id)
    # INVARIANT: a generation job's result is its tokens, with the input
    # they make (commit_generation).
    assert job.n_tokens == 0, "market: a generation job commits with commit_generation"

    model: IModelRegistry.Model = staticcall IModelRegistry(REGISTRY).model(job.model_id)
    rows_out: uint256 = job.rows * model.out_rows_num // model.out_rows_den
    # INVARIANT: the output is exactly the packed `[rows_out, output_cols]`
    # tensor of the output dtype; checked here so the reason names the
    # market.
    assert len(output) == rows_out * model.output_cols * packed_rows.width(model.output_dtype), \
        "market: output does not match shape"
    output_root: bytes32 = tensor.tensor_root(output, rows_out, model.output_cols, model.output_dtype)
    # INVARIANT: the posted output is the one the trace root commits to.
    assert merkle.verify(output_root, model.n_ops, output_proof, model.state_depth, trace_root), "market: bad output proof"

    challenge_deadline: uint256 = block.timestamp + job.challenge_window
    self._jobs[job_id].status = COMMITTED
    self._jobs[job_id].trace_root = trace_root
    self._jobs[job_id].output_root = output_root
    self._jobs[job_id].challenge_deadline = challenge_deadline
    log IJobMarket.JobCommitted(
        job_id=job_id,
        solver=msg.sender,
        trace_root=trace_root,
        output_root=output_root,
        challenge_deadline=challenge_deadline,
        output=output,
    )


@external
@nonreentrant
def finalize(job_id: uint256):
    """
    @notice Pays a committed result that survived its challenge window:
            the fee is credited to the solver and its bond unlocked.
    @param job_id The job.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only a committed result is paid.
    assert job.status == COMMITTED, "market: job is not committed"
    # INVARIANT: every challenger gets its whole window.
    assert block.timestamp > job.challenge_deadline, "market: challenge window not over"
    # INVARIANT: a running game could still reject the result.
    assert job.open_games == 0, "market: game still open"

    self._jobs[job_id].status = FINALIZED
    escrow.total_escrow -= job.fee
    stakes._unlock(job.solver, job.solver_bond)
    escrow._add_credit(job.solver, job.fee)
    log IJobMarket.JobFinalized(job_id=job_id, solver=job.solver, fee=job.fee)


@view
@external
def job(job_id: uint256) -> Job:
    """
    @notice A job's full record.
    @param job_id The job, in [1, job_count()].
    @return Job The job.
    """
    self._check_job(job_id)
    return self._jobs[job_id]


@view
@external
def job_count() -> uint256:
    """
    @notice The number of jobs posted (also the last id).
    @return uint256 The job count.
    """
    return self._job_count


# ---------------------------------------------------------------------------
# INTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@view
@internal
def _check_job(job_id: uint256):
    """
    @dev Reverts unless `job_id` was issued.
    @param job_id The job id.
    """
    # INVARIANT: only issued ids have jobs.
    assert job_id >= 1 and job_id <= self._job_count, "market: unknown job"


@internal
def _take_held(job_id: uint256, amount: uint256) -> uint256:
    """
    @dev Takes up to `amount` out of a REJECTED job's held slashed bond
         (refunds come first, ahead of the bonus pool); the caller
         credits it.
    @param job_id The job.
    @param amount The wei wanted.
    @return uint256 The wei taken: `amount`, or all that is left.
    """
    taken: uint256 = min(amount, self._jobs[job_id].held)
    self._jobs[job_id].held -= taken
    escrow.total_escrow -= taken
    return taken


@view
@internal
def _claimed(job_id: uint256) -> Job:
    """
    @dev The job, after the checks every commit makes: it exists, is
         CLAIMED, the caller is its solver and the commit deadline has
         not passed.
    @param job_id The job.
    @return Job The job's record.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only a claimed job takes a result.
    assert job.status == CLAIMED, "market: job is not claimed"
    # INVARIANT: only the solver whose bond is locked may commit.
    assert msg.sender == job.solver, "market: caller is not the solver"
    # INVARIANT: after the deadline the claim can only expire.
    assert block.timestamp <= job.commit_deadline, "market: commit deadline passed"
    return job


@internal
def _store_job(
    model_id: uint256,
    rows: uint256,
    input_root: bytes32,
    s_0: bytes32,
    n_tokens: uint256,
    fee: uint256,
    solver_bond: uint256,
    claim_window: uint256,
    commit_window: uint256,
    challenge_window: uint256,
) -> (uint256, uint256):
    """
    @dev Writes a new OPEN job for `fee` (the caller's `msg.value`) and
         escrows the fee; the caller logs `JobPosted`.
    @return (uint256, uint256) The job id and its claim deadline.
    """
    job_id: uint256 = self._job_count + 1
    self._job_count = job_id
    claim_deadline: uint256 = block.timestamp + claim_window
    self._jobs[job_id] = Job(
        requester=msg.sender,
        model_id=model_id,
        rows=rows,
        input_root=input_root,
        s_0=s_0,
        fee=fee,
        solver_bond=solver_bond,
        claim_window=claim_window,
        commit_window=commit_window,
        challenge_window=challenge_window,
        status=OPEN,
        claim_deadline=claim_deadline,
        solver=empty(address),
        commit_deadline=0,
        trace_root=empty(bytes32),
        output_root=empty(bytes32),
        challenge_deadline=0,
        open_games=0,
        best_game=0,
        winners=0,
        held=0,
        n_tokens=n_tokens,
    )
    escrow.total_escrow += fee
    return job_id, claim_deadline
