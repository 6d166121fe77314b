#pragma version ~=0.4.3
"""
@title Model Registry
@custom:contract-name ModelRegistry
@notice Immutable entries of integer models (protocol.md section 5 and
        10.1). A model is registered by its commitment, the op count
        `N`, the input and output column counts and the ops root `OR`,
        and by the facts the market sizes and checks jobs with: the
        input and output dtypes and the row rule (`row_step`,
        `max_input_rows`, `out_rows_num / out_rows_den`). The registry
        computes the model root `MR` (section 5: `H(enc(N, input_cols,
        output_cols, OR))` for an int8 input, `H(enc(N, input_cols,
        output_cols, OR, input_dtype))` otherwise), the entry key
        `E = H(MR ‖ enc(output_dtype, row_step, max_input_rows,
        out_rows_num, out_rows_den))` and the state depth
        `D = depth(N + 1)`; the job market and the dispute game read them
        from here and never from a caller.
@dev Holds no ETH and has no owner: an entry never changes once written,
     so a job or a game that names a model id is bound to one model for
     ever. An entry key can be registered only once, so `model_id(key)`
     is a function of the key.

     The registry cannot see weights, nor derive the dtypes and the row
     rule from the ops root: they are the registrant's claims. They need
     not be trusted: a job sized by wrong facts has no valid trace (an op
     whose rows or dtypes break its shape rule loses the solver the
     transition), and agents compare an entry's facts with the model file
     they hold and refuse a job whose entry differs. Because the key
     covers every fact, a squatter who registers a model root with wrong
     facts first makes a different entry and never blocks the true one.
     The facts are kept canonical (the output row fraction in lowest
     terms, `max_input_rows` a multiple of `row_step`), so a model has
     exactly one true entry.

     A model whose weights break the accumulator bound of section 4 can
     be registered; agents load the model file (which recomputes every
     root) before serving or challenging it.
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------


# @dev The view the job market reads; the `Model` struct lives there so
# both contracts share one definition.
from .interfaces import IModelRegistry
implements: IModelRegistry


# ---------------------------------------------------------------------------
# MODULES
# ---------------------------------------------------------------------------


# @dev Stateless: `depth(n)` of section 2 for the state depth.
from .modules import merkle


# ---------------------------------------------------------------------------
# EVENTS
# ---------------------------------------------------------------------------


# @dev Emitted once per model; agents rebuild the registry from these.
event ModelRegistered:
    model_id: indexed(uint256)
    root: indexed(bytes32)
    registrant: indexed(address)
    n_ops: uint256
    input_cols: uint256
    output_cols: uint256
    ops_root: bytes32
    entry: bytes32
    input_dtype: uint256
    output_dtype: uint256
    row_step: uint256
    max_input_rows: uint256
    out_rows_num: uint256
    out_rows_den: uint256


# ---------------------------------------------------------------------------
# CONSTANTS
# ---------------------------------------------------------------------------


# @dev The largest op count (protocol.md section 8): slots 0 ... N fit a
# state tree of depth at most 16, the longest proof the contracts take.
MAX_OPS: public(constant(uint256)) = 65535


# @dev The largest column count of a tensor (protocol.md section 8): the
# one-step check must fit one transaction at `k = MAX_COLS`.
MAX_COLS: public(constant(uint256)) = 16384


# @dev The largest row count of any slot (protocol.md section 8), which
# bounds `max_input_rows` and the output row fraction's terms.
MAX_ROWS: public(constant(uint256)) = 65536


# @dev The small numbers of an entry, packed 24 bits each (every one is at
# most MAX_ROWS = 2^16): n_ops, input_cols, output_cols, state_depth,
# input_dtype, output_dtype, row_step, max_input_rows, out_rows_num,
# out_rows_den.
FIELDS: constant(uint256) = 10
FIELD_BITS: constant(uint256) = 24
FIELD_MASK: constant(uint256) = (1 << FIELD_BITS) - 1


# @dev Dtype codes (protocol.md section 3): a model's input is int8 or
# int32; its output any of the three.
DTYPE_INT32: constant(uint256) = 1
DTYPE_INT16: constant(uint256) = 2


# ---------------------------------------------------------------------------
# STRUCTS
# ---------------------------------------------------------------------------


# @dev An entry as stored: the three hashes, the registrant and every small
# number packed in one word (`_pack`), so that `model(id)`, which the
# market reads at every post and commit, costs five cold reads, not
# fourteen.
struct Stored:
    root: bytes32
    ops_root: bytes32
    entry: bytes32
    registrant: address
    packed: uint256


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev Model id -> entry; ids run from 1 to `_model_count`, so id 0 is
# never a model and an empty entry means "unknown".
_models: HashMap[uint256, Stored]


# @dev Entry key -> model id (0 if the key is not registered).
_ids: HashMap[bytes32, uint256]


# @dev The number of registered models, which is also the last id.
_model_count: uint256


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------


@deploy
def __init__():
    """
    @dev Nothing to set up: the registry starts empty and has no owner.
    """
    pass


# ---------------------------------------------------------------------------
# EXTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@external
def register(
    n_ops: uint256,
    input_cols: uint256,
    output_cols: uint256,
    ops_root: bytes32,
    input_dtype: uint256,
    output_dtype: uint256,
    row_step: uint256,
    max_input_rows: uint256,
    out_rows_num: uint256,
    out_rows_den: uint256,
) -> uint256:
    """
    @notice Registers a model by its commitment and its job facts
            (protocol.md section 5 and 10.1). Anyone may register; the
            caller is recorded as registrant.
    @dev The shapes, dtypes and row rule are the only facts the contracts
         rely on: the market sizes posted inputs and committed outputs
         with them and the game bisects over `n_ops` ops. Nothing else
         about the model is checked here (see the contract's `@dev`).
    @param n_ops The op count `N`, in [1, MAX_OPS].
    @param input_cols The column count of slot 0, in [1, MAX_COLS].
    @param output_cols The column count of slot `N`, in [1, MAX_COLS].
    @param ops_root The ops root `OR`; nonzero.
    @param input_dtype The dtype of slot 0: 0 (int8) or 1 (int32).
    @param output_dtype The dtype of slot `N`: 0, 1 or 2.
    @param row_step A posted row count must be a multiple of it; in
           [1, MAX_ROWS].
    @param max_input_rows The largest posted row count that keeps every
           slot within MAX_ROWS rows; a multiple of `row_step`, at most
           MAX_ROWS.
    @param out_rows_num With `out_rows_den`, the output's rows:
           `rows_out = rows_in * out_rows_num / out_rows_den`; both in
           [1, MAX_ROWS], in lowest terms.
    @param out_rows_den See `out_rows_num`.
    @return uint256 The new model id (ids start at 1).
    """
    # INVARIANT: the state tree over slots 0 ... N has depth <= 16.
    assert n_ops >= 1 and n_ops <= MAX_OPS, "registry: op count out of range"
    # INVARIANT: every tensor shape stays within the limits of section 8.
    assert input_cols >= 1 and input_cols <= MAX_COLS, "registry: input cols out of range"
    # INVARIANT: the output shape, too.
    assert output_cols >= 1 and output_cols <= MAX_COLS, "registry: output cols out of range"
    # INVARIANT: a zero root commits to nothing (it is the empty leaf Z[0]).
    assert ops_root != empty(bytes32), "registry: zero ops root"
    # INVARIANT: a model reads int8 activations or int32 token ids (section 3).
    assert input_dtype <= DTYPE_INT32, "registry: input dtype out of range"
    # INVARIANT: an output slot is int8, int32 or int16.
    assert output_dtype <= DTYPE_INT16, "registry: output dtype out of range"
    # INVARIANT: some row count is a multiple of the step and fits.
    assert row_step >= 1 and row_step <= MAX_ROWS, "registry: row step out of range"
    # INVARIANT: the cap is itself a valid row count (canonical: the
    # largest multiple of the step that fits).
    assert max_input_rows >= row_step and max_input_rows <= MAX_ROWS and max_input_rows % row_step == 0, \
        "registry: max input rows out of range"
    # INVARIANT: rows_in * num / den is defined and bounded (no overflow:
    # rows_in <= 2^16, num <= 2^16).
    assert out_rows_num >= 1 and out_rows_num <= MAX_ROWS and out_rows_den >= 1 and out_rows_den <= MAX_ROWS, \
        "registry: output row rule out of range"
    # INVARIANT: one way to write a fraction, so one true entry per model.
    assert self._gcd(out_rows_num, out_rows_den) == 1, "registry: output row rule not in lowest terms"

    root: bytes32 = empty(bytes32)
    if input_dtype == 0:
        root = keccak256(
            concat(convert(n_ops, bytes32), convert(input_cols, bytes32), convert(output_cols, bytes32), ops_root)
        )
    else:
        root = keccak256(
            concat(
                convert(n_ops, bytes32),
                convert(input_cols, bytes32),
                convert(output_cols, bytes32),
                ops_root,
                convert(input_dtype, bytes32),
            )
        )
    entry: bytes32 = keccak256(
        concat(
            root,
            convert(output_dtype, bytes32),
            convert(row_step, bytes32),
            convert(max_input_rows, bytes32),
            convert(out_rows_num, bytes32),
            convert(out_rows_den, bytes32),
        )
    )
    # INVARIANT: one id per entry key, so `model_id(key)` is well defined
    # (the same root with other facts is another entry).
    assert self._ids[entry] == 0, "registry: model already registered"

    model_id: uint256 = self._model_count + 1
    self._model_count = model_id
    self._ids[entry] = model_id
    self._models[model_id] = Stored(
        root=root,
        ops_root=ops_root,
        entry=entry,
        registrant=msg.sender,
        packed=self._pack(
            [
                n_ops, input_cols, output_cols, merkle.depth(n_ops + 1), input_dtype, output_dtype, row_step,
                max_input_rows, out_rows_num, out_rows_den,
            ]
        ),
    )
    log ModelRegistered(
        model_id=model_id,
        root=root,
        registrant=msg.sender,
        n_ops=n_ops,
        input_cols=input_cols,
        output_cols=output_cols,
        ops_root=ops_root,
        entry=entry,
        input_dtype=input_dtype,
        output_dtype=output_dtype,
        row_step=row_step,
        max_input_rows=max_input_rows,
        out_rows_num=out_rows_num,
        out_rows_den=out_rows_den,
    )
    return model_id


@view
@external
def model(model_id: uint256) -> IModelRegistry.Model:
    """
    @notice The entry of a registered model.
    @dev Reverts for an id that was never issued, so a caller can never
         mistake an empty struct for a model with zero shapes.
    @param model_id The model id, in [1, model_count()].
    @return IModelRegistry.Model The model's root, ops root, op count,
            column counts, state depth, registrant, entry key, dtypes
            and row rule.
    """
    # INVARIANT: only issued ids have entries.
    assert model_id >= 1 and model_id <= self._model_count, "registry: unknown model"
    stored: Stored = self._models[model_id]
    w: uint256[FIELDS] = self._unpack(stored.packed)
    return IModelRegistry.Model(
        root=stored.root,
        ops_root=stored.ops_root,
        n_ops=w[0],
        input_cols=w[1],
        output_cols=w[2],
        state_depth=w[3],
        registrant=stored.registrant,
        entry=stored.entry,
        input_dtype=w[4],
        output_dtype=w[5],
        row_step=w[6],
        max_input_rows=w[7],
        out_rows_num=w[8],
        out_rows_den=w[9],
    )


@view
@external
def model_id(entry: bytes32) -> uint256:
    """
    @notice The id of a model entry, looked up by its entry key.
    @param entry The entry key `E` (the contract's `@notice`), which
           covers the model root and every registered fact.
    @return uint256 The model id, or 0 if the key is not registered.
    """
    return self._ids[entry]


@view
@external
def model_count() -> uint256:
    """
    @notice The number of registered models (also the last id issued).
    @return uint256 The model count.
    """
    return self._model_count


# ---------------------------------------------------------------------------
# INTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@pure
@internal
def _gcd(a: uint256, b: uint256) -> uint256:
    """
    @dev Euclid's greatest common divisor of `a, b` in [1, 2^16]: at most
         24 steps (consecutive Fibonacci numbers are the worst case).
    @param a A positive integer at most 2^16.
    @param b A positive integer at most 2^16.
    @return uint256 gcd(a, b).
    """
    x: uint256 = a
    y: uint256 = b
    for _: uint256 in range(32):
        if y == 0:
            break
        r: uint256 = x % y
        x = y
        y = r
    return x


@pure
@internal
def _pack(fields: uint256[FIELDS]) -> uint256:
    """
    @dev The fields, `FIELD_BITS` each, field 0 lowest; each is checked
         (or, for the depth, computed) to be at most 2^16 by `register`.
    @param fields The small numbers of an entry, in `FIELDS` order.
    @return uint256 The packed word.
    """
    word: uint256 = 0
    for i: uint256 in range(FIELDS):
        word = word | (fields[i] << (i * FIELD_BITS))
    return word


@pure
@internal
def _unpack(word: uint256) -> uint256[FIELDS]:
    """
    @dev The inverse of `_pack`.
    @param word A packed word.
    @return uint256[FIELDS] Its fields.
    """
    fields: uint256[FIELDS] = empty(uint256[FIELDS])
    for i: uint256 in range(FIELDS):
        fields[i] = (word >> (i * FIELD_BITS)) & FIELD_MASK
    return fields
