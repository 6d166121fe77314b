#pragma version ~=0.4.3
"""
@title Generation Jobs
@custom:contract-name generation
@license MIT
@notice Generation jobs (protocol.md 5.15): `post_generation` asks a
        model to continue a prompt by `n` greedy tokens; the solver's
        `commit_generation` gives the tokens and the teacher-forced
        pass's output and trace root, and the market builds the verified
        input `prompt ‖ tokens[:-1] ‖ 0...` and its `T_0` and `S_0`, from
        which the job's games open as any job's do.
@dev Stateful through `jobs`: `JobMarket.vy` initializes it (with
     `jobs` and `terms`) and exports its externals. A generation job is
     a `jobs.Job` with `n_tokens != 0`; every other step of its life
     (`cancel`, `claim`, `expire`, `finalize`, the games) is the one of
     `jobs.vy` and the market.
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------


# @dev The model entries: dtypes, row rule, op count and state depth.
from ..interfaces import IModelRegistry


# @dev The market's events.
from ..interfaces import IJobMarket


# ---------------------------------------------------------------------------
# MODULES
# ---------------------------------------------------------------------------


# @dev Stateless: the output proof against the trace root, and `S_0`.
from . import merkle


# @dev Stateless: the frontier walk of a rows root.
from . import tensor


# @dev Stateful (immutables): the deployment's bounds on a job's terms.
from . import terms


# @dev Stateful: the job records, a new job's escrow and a commit's checks.
from . import jobs
uses: (terms, jobs)


# ---------------------------------------------------------------------------
# CONSTANTS
# ---------------------------------------------------------------------------


# @dev The longest context `T` of a generation job (protocol.md 10.0): its
# prompt, tokens and `[T, 1]` int32 output are at most `4 T` bytes each,
# so the buffers `commit_generation` holds stay small (memory costs
# grow with their bounds' sum squared).
MAX_CONTEXT: public(constant(uint256)) = 4096
MAX_GEN_BYTES: constant(uint256) = 4 * MAX_CONTEXT


# @dev MAX_GEN_BYTES in words: the zero padding of a generation job's
# verified input is cut from this many zero words.
ZERO_WORDS: constant(uint256) = MAX_GEN_BYTES // 32


# @dev The token ids' dtype code (protocol.md section 3).
DTYPE_INT32: constant(uint256) = 1


# ---------------------------------------------------------------------------
# EXTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@payable
@external
@nonreentrant
def post_generation(
    model_id: uint256,
    prompt: Bytes[MAX_GEN_BYTES],
    n_tokens: uint256,
    solver_bond: uint256,
    claim_window: uint256,
    commit_window: uint256,
    challenge_window: uint256,
) -> uint256:
    """
    @notice Posts a generation job (protocol.md 5.15): continue `prompt`
            by `n_tokens` greedy tokens of model `model_id`, for a fee of
            `msg.value`, escrowed until the job ends.
    @dev One sequence (`rows = 1`). `T_0` and `S_0` hold the answer, so
         they are computed at `commit_generation`; until then the job's
         `input_root` is `H(prompt)` and its `s_0` zero.
    @param model_id A registered generation model: int32 input of
           `T = input_cols` ids (`T <= MAX_CONTEXT`), int32 output of
           one column and `T` rows for one input row (row step 1).
    @param prompt The packed int32 prompt ids (big-endian), `4 * P`
           bytes, `P >= 1`.
    @param n_tokens The tokens asked for, `n >= 1`, `P + n - 1 <= T`.
    @param solver_bond As for `post`.
    @param claim_window As for `post`.
    @param commit_window As for `post`.
    @param challenge_window As for `post`.
    @return uint256 The new job id.
    """
    # INVARIANT: the job's own terms are within the deployment's (one row).
    terms._check_post(msg.value, solver_bond, claim_window, commit_window, challenge_window, 1)

    model: IModelRegistry.Model = staticcall IModelRegistry(jobs.REGISTRY).model(model_id)
    # INVARIANT: the model maps one row of T ids to T int32 rows of one
    # column (5.15's generation model, as registered).
    assert (
        model.input_dtype == DTYPE_INT32
        and model.output_dtype == DTYPE_INT32
        and model.output_cols == 1
        and model.row_step == 1
        and model.out_rows_num == model.input_cols
        and model.out_rows_den == 1
    ), "market: model cannot generate"
    # INVARIANT: the context fits the generation buffers.
    assert model.input_cols <= MAX_CONTEXT, "market: context above MAX_CONTEXT"
    # INVARIANT: at least one token is asked for.
    assert n_tokens >= 1, "market: zero tokens"
    # INVARIANT: the prompt is P >= 1 whole int32 ids.
    assert len(prompt) >= 4 and len(prompt) % 4 == 0, "market: prompt is not int32 ids"
    # INVARIANT: the prompt and every token but the last fit the context
    # (n <= T first, so the sum cannot overflow).
    assert n_tokens <= model.input_cols and len(prompt) // 4 + n_tokens - 1 <= model.input_cols, \
        "market: prompt and tokens exceed the context"

    prompt_hash: bytes32 = keccak256(prompt)
    job_id: uint256 = 0
    claim_deadline: uint256 = 0
    job_id, claim_deadline = jobs._store_job(
        model_id, 1, prompt_hash, empty(bytes32), n_tokens, msg.value, solver_bond, claim_window, commit_window, challenge_window
    )
    log IJobMarket.JobPosted(
        job_id=job_id,
        requester=msg.sender,
        model_id=model_id,
        rows=1,
        input_root=prompt_hash,
        s_0=empty(bytes32),
        fee=msg.value,
        solver_bond=solver_bond,
        claim_window=claim_window,
        commit_window=commit_window,
        challenge_window=challenge_window,
        claim_deadline=claim_deadline,
        input=prompt,
        n_tokens=n_tokens,
    )
    return job_id


@external
@nonreentrant
def commit_generation(
    job_id: uint256,
    prompt: Bytes[MAX_GEN_BYTES],
    tokens: Bytes[MAX_GEN_BYTES],
    output_ids: Bytes[MAX_GEN_BYTES],
    trace_root: bytes32,
    output_proof: DynArray[bytes32, merkle.MAX_PROOF],
):
    """
    @notice Commits a generation job's result (protocol.md 5.15): the
            tokens, the `[T, 1]` int32 output of the teacher-forced pass
            and its trace root `S_N`; starts the challenge window.
    @dev Checks the tokens are the output's rows `P - 1 ... P + n - 2`,
         builds the verified input `x = prompt ‖ tokens[:-1] ‖ 0...` (one
         row of `T` int32 ids), its `T_0 = H(enc(1, T, H(x), 1))` and
         `S_0`, and stores both with the job: its games open from that
         `S_0` as any job's do. The prompt is given again (the job keeps
         its hash) so that it is never stored.
    @param job_id The job.
    @param prompt The posted prompt, `4 * P` bytes.
    @param tokens The `n` generated ids, `4 * n` bytes.
    @param output_ids The packed `[T, 1]` int32 output, `4 * T` bytes
           (named apart from `commit`'s `output`, whose bound is larger).
    @param trace_root The final state root `S_N`.
    @param output_proof The `D` siblings of slot `N` in `trace_root`.
    """
    job: jobs.Job = jobs._claimed(job_id)
    # INVARIANT: only a generation job has tokens.
    assert job.n_tokens != 0, "market: not a generation job"
    # INVARIANT: the input is built from the prompt the requester posted.
    assert keccak256(prompt) == job.input_root, "market: prompt differs from the posted one"
    # INVARIANT: one id per token asked for.
    assert len(tokens) == 4 * job.n_tokens, "market: tokens do not match the count"

    model: IModelRegistry.Model = staticcall IModelRegistry(jobs.REGISTRY).model(job.model_id)
    context: uint256 = model.input_cols
    # INVARIANT: the output is T rows of one int32.
    assert len(output_ids) == 4 * context, "market: output does not match shape"
    # INVARIANT: the tokens are the output's rows P - 1 ... P + n - 2
    # (post kept P >= 1 and P + n - 1 <= T: the slice is inside).
    start: uint256 = len(prompt) - 4
    assert keccak256(slice(output_ids, start, len(tokens))) == keccak256(tokens), "market: tokens differ from the output"
    output_root: bytes32 = self._id_column_root(output_ids, context)
    # INVARIANT: the committed output is the one the trace root commits to.
    assert merkle.verify(output_root, model.n_ops, output_proof, model.state_depth, trace_root), "market: bad output proof"

    # x = prompt ‖ tokens[:-1] ‖ zero ids up to T (the zeros: the ABI
    # encoding of an empty static array, MAX_TENSOR_BYTES zero bytes)
    x_leaf: bytes32 = keccak256(
        slice(
            concat(prompt, slice(tokens, 0, len(tokens) - 4), abi_encode(empty(bytes32[ZERO_WORDS]))),
            0,
            4 * context,
        )
    )
    # one row: the rows root is its leaf (depth(1) = 0)
    input_root: bytes32 = tensor.header_root(1, context, x_leaf, DTYPE_INT32)
    s_0: bytes32 = merkle.initial_state(input_root, model.state_depth)

    challenge_deadline: uint256 = block.timestamp + job.challenge_window
    jobs._jobs[job_id].status = jobs.COMMITTED
    jobs._jobs[job_id].input_root = input_root
    jobs._jobs[job_id].s_0 = s_0
    jobs._jobs[job_id].trace_root = trace_root
    jobs._jobs[job_id].output_root = output_root
    jobs._jobs[job_id].challenge_deadline = challenge_deadline
    log IJobMarket.JobCommitted(
        job_id=job_id,
        solver=msg.sender,
        trace_root=trace_root,
        output_root=output_root,
        challenge_deadline=challenge_deadline,
        output=output_ids,
    )
    log IJobMarket.TokensGenerated(job_id=job_id, input_root=input_root, s_0=s_0, tokens=tokens)

# ---------------------------------------------------------------------------
# INTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@pure
@internal
def _id_column_root(data: Bytes[MAX_GEN_BYTES], rows: uint256) -> bytes32:
    """
    @dev `tensor.tensor_root` of an int32 `[rows, 1]` tensor (a
         generation job's output), over a buffer of MAX_GEN_BYTES:
         leaves `H(4 bytes)`. Its walk is repeated here because passing
         the output to `tensor.tensor_root` would copy it into a 64 KiB
         frame, whose memory expansion costs about 48k gas. The caller
         has checked `len(data) == 4 * rows`, rows in [1, MAX_CONTEXT].
    @param data The packed ids.
    @param rows The row count.
    @return bytes32 The tensor root `H(enc(rows, 1, R, 1))`.
    """
    frontier: bytes32[tensor.FRONTIER] = empty(bytes32[tensor.FRONTIER])
    for i: uint256 in range(rows, bound=MAX_CONTEXT):
        node: bytes32 = keccak256(slice(data, unsafe_mul(i, 4), 4))
        h: uint256 = 0
        bits: uint256 = i
        for _: uint256 in range(tensor.FRONTIER - 1):
            if bits & 1 == 0:
                break
            node = keccak256(concat(frontier[h], node))
            bits = bits >> 1
            h = unsafe_add(h, 1)
        frontier[h] = node
    return tensor.header_root(rows, 1, tensor._frontier_root(frontier, rows), DTYPE_INT32)
