"""Reference semantics and commitments of Llama's kinds and flags (docs/protocol.md 5.12-5.14).

Plain Python ``int`` only, written from the spec and sharing no code with ``offchain/referee/``:
``rope`` (kind 10), ``mul`` (kind 11), ``matmul`` with ``grouped`` (H_b key/value heads) and
``argmax`` with ``pair``/``carry`` (a vocabulary split into chunks). Each element is computed
the way its **One step** paragraph reads it (one row of each input, one table row).

The model-level functions (``validate_model``, ``params_header``, ``run_op``, ``trace``, roots)
are those of ``tests/reference_transformer.py`` extended to these kinds and flags: an op that
is none of them is handed to ``reference_transformer`` unchanged, so every earlier root is its.
Every range the spec states is checked and a violation raises ``ValueError``.

The op dicts (as ``reference_transformer``'s, with ``kind``, ``flags``, ``input_a``, ``input_b``)::

    10 rope     in_cols, out_cols, heads, multiplier, shift, table ([T, D], entries in [-2^14, 2^14])
    11 mul      in_cols, out_cols, multiplier, shift            (input_b: the second factor)
    2 matmul    flag bit 1 (grouped): kv_heads as well           (B has kv_heads * K columns)
    9 argmax    flag bit 0 (pair): out_cols 2; bit 1 (carry): offset, input_b the carried pair
"""

import reference as ref
import reference_kinds as rk
import reference_transformer as rt

ROPE, MUL = 10, 11
FLAG_GROUPED = 2        # matmul
FLAG_PAIR, FLAG_CARRY = 1, 2  # argmax
ROPE_ONE = 2**14        # rope table entries lie in [-2^14, 2^14]
OFFSET_MAX = 2**24      # argmax carry: 1 <= offset <= 2^24
KIND_NAMES = {**rt.KIND_NAMES, ROPE: "rope", MUL: "mul"}
KIND_FLAGS = {**rt.KIND_FLAGS, ROPE: rt.FLAG_I16, MUL: rt.FLAG_I16,
              rt.MATMUL: rt.FLAG_CAUSAL | FLAG_GROUPED | rt.FLAG_I16, rt.ARGMAX: FLAG_PAIR | FLAG_CARRY}
_check_int = ref._check_int
DTYPE_INT8, DTYPE_INT16, DTYPE_INT32 = rt.DTYPE_INT8, rt.DTYPE_INT16, rt.DTYPE_INT32


# ---------------------------------------------------------------------------------------
# rope (5.12)


def check_rope_table(table, D):
    T, cols = rk.shape("rope table", table, -ROPE_ONE, ROPE_ONE)
    if cols != D or D % 2:
        raise ValueError(f"the rope table has {cols} columns; the head width D = {D} must equal it and be even")
    return T


def rope_pair(a, b, c, s, m, sh, bits):
    """``(rq(a c - b s), rq(b c + a s))``: one column pair rotated, |acc| <= 2^30."""
    return rk.rq(a * c - b * s, m, sh, bits), rk.rq(b * c + a * s, m, sh, bits)


def rope(x, heads, table, m, s, bits=8, in_bits=8):
    """``[G*T, H*D]`` -> the same shape: row ``r`` rotated by table row ``t = r mod T``."""
    rows, cols = rk.shape("input", x, *rk.RANGES[in_bits])
    D = rk._split("heads", cols, heads)
    T = check_rope_table(table, D)
    rk._split("T", rows, T)
    ref._check_requant_params(m, s)
    half = D // 2
    out = []
    for r in range(rows):
        t = r - (r // T) * T
        c_row, s_row = table[t][:half], table[t][half:]  # the one step's table row
        y = [0] * cols
        for h in range(heads):
            for i in range(half):
                lo, hi = h * D + i, h * D + i + half
                y[lo], y[hi] = rope_pair(x[r][lo], x[r][hi], c_row[i], s_row[i], m, s, bits)
        out.append(y)
    return out


# ---------------------------------------------------------------------------------------
# mul (5.13)


def mul(A, B, m, s, bits=8, a_bits=8, b_bits=8):
    """``y = rq(a * b, m, s)`` elementwise; ``|a * b| <= 2^30`` for any two int16 inputs."""
    rows, cols = rk.shape("A", A, *rk.RANGES[a_bits])
    if rk.shape("B", B, *rk.RANGES[b_bits]) != (rows, cols):
        raise ValueError("mul: both inputs must have the same rows and columns")
    ref._check_requant_params(m, s)
    return [[rk.rq(A[r][c] * B[r][c], m, s, bits) for c in range(cols)] for r in range(rows)]


# ---------------------------------------------------------------------------------------
# matmul with grouped (5.14)


def matmul_grouped(A, B, heads, kv_heads, seq, out_cols, m, s, causal, bits=8, a_bits=8, b_bits=8):
    """``A [G*T_a, H*K]``, ``B [G*R_b, H_b*K]`` -> ``[G*T_a, H*R_b]``; query head ``h`` reads
    key head ``floor(h * H_b / H)``."""
    rows_a, in_cols = rk.shape("A", A, *rk.RANGES[a_bits])
    rows_b, cols_b = rk.shape("B", B, *rk.RANGES[b_bits])
    K = rk._split("heads", in_cols, heads)
    _check_int("kv_heads", kv_heads, 1, heads - 1)
    rk._split("kv_heads", heads, kv_heads)
    if cols_b != kv_heads * K:
        raise ValueError(f"B has {cols_b} columns, a grouped matmul needs H_b * K = {kv_heads * K}")
    rk.matmul_bound(K, a_bits, b_bits)
    R_b = rk._split("heads", out_cols, heads)
    G = rk._split("T_a", rows_a, seq)
    if rows_b != G * R_b:
        raise ValueError(f"B has {rows_b} rows, the shape rule needs G * R_b = {G * R_b}")
    ref._check_requant_params(m, s)
    out = []
    for r in range(rows_a):
        g = r // seq
        i = r - g * seq
        row = []
        for c in range(out_cols):
            h = c // R_b
            j = c - h * R_b
            hb = h * kv_heads // heads
            if causal and j > i:
                row.append(rk.RANGES[bits][0])
                continue
            b_row = B[g * R_b + j]
            acc = sum(A[r][h * K + k] * b_row[hb * K + k] for k in range(K))
            row.append(rk.rq(acc, m, s, bits))
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------
# argmax with pair and carry (5.14)


def argmax_chunk(x, pair=False, carry=None, offset=0, lo=rk.INT32_MIN, hi=rk.INT32_MAX):
    """``[rows, n]`` -> ``[rows, 1]`` (index) or with ``pair`` ``[rows, 2]`` (value, index); with
    ``carry`` (``[rows, 2]`` int32, an earlier pair) a carried value at least this chunk's
    maximum keeps its index, else the index is ``offset`` plus this chunk's lowest."""
    rows, _ = rk.shape("input", x, lo, hi)
    if carry is not None:
        if rk.shape("carry", carry, rk.INT32_MIN, rk.INT32_MAX) != (rows, 2):
            raise ValueError(f"the carried pair must be [{rows}, 2]")
        _check_int("offset", offset, 1, OFFSET_MAX)
    out = []
    for r, row in enumerate(x):
        M = max(row)
        v, idx = M, row.index(M)  # list.index: the lowest position of M
        if carry is not None:
            vb, jb = carry[r]
            v, idx = (vb, jb) if vb >= M else (M, offset + idx)
        out.append([v, idx] if pair else [idx])
    return out


# ---------------------------------------------------------------------------------------
# The model-level functions of reference_transformer, extended


def is_new(op) -> bool:
    """Whether the op is one of 5.12-5.14's (a new kind, or a new flag of matmul or argmax)."""
    kind, flags = op["kind"], op["flags"]
    return (kind in (ROPE, MUL) or (kind == rt.MATMUL and bool(flags & FLAG_GROUPED))
            or (kind == rt.ARGMAX and bool(flags & (FLAG_PAIR | FLAG_CARRY))))


def reads_b(op) -> bool:
    if op["kind"] == MUL or (op["kind"] == rt.ARGMAX and op["flags"] & FLAG_CARRY):
        return True
    return rt.reads_b(op)


def params_header(op) -> bytes:
    kind = op["kind"]
    if kind == ROPE:
        T = check_rope_table(op["table"], op["in_cols"] // op["heads"])
        return ref.enc(op["heads"], T, op["multiplier"], op["shift"],
                       rt.table_rows_root(op["table"], DTYPE_INT16))
    if kind == MUL:
        return ref.enc(op["multiplier"], op["shift"])
    if kind == rt.MATMUL and op["flags"] & FLAG_GROUPED:
        return ref.enc(op["heads"], op["seq"], op["multiplier"], op["shift"], op["kv_heads"])
    if kind == rt.ARGMAX and op["flags"] & FLAG_CARRY:
        return ref.enc(op["offset"])
    return rt.params_header(op)


def params_root(op) -> bytes:
    if op["kind"] == rt.ARGMAX and not op["flags"] & FLAG_CARRY:
        return bytes(32)
    return ref.keccak256(params_header(op))


def op_cols(op):
    return rt.op_cols(op)


def out_dtype(op, in_dtype=DTYPE_INT8):
    if op["kind"] in (ROPE, MUL):
        return DTYPE_INT16 if op["flags"] & rt.FLAG_I16 else DTYPE_INT8
    return rt.out_dtype(op, in_dtype)


def _input_cols(op, in_cols):
    """The column count of each input slot (5.12-5.14)."""
    kind, flags = op["kind"], op["flags"]
    if kind == rt.MATMUL:
        return [in_cols, op["kv_heads"] * rk._split("heads", in_cols, op["heads"])]
    if kind == rt.ARGMAX and flags & FLAG_CARRY:
        return [in_cols, 2]
    return [in_cols] * (2 if reads_b(op) else 1)


def _validate_new(op, j, cols, dtypes):
    """5.12-5.14's rules for one op whose inputs are slots among ``cols``/``dtypes``."""
    kind, flags = op["kind"], op["flags"]
    _check_int("flags", flags, 0, 2**256 - 1)
    if flags & ~KIND_FLAGS[kind]:
        raise ValueError(f"flags {flags} set a bit the kind does not define")
    _check_int("input_a", op["input_a"], 0, j - 1)
    if reads_b(op):
        _check_int("input_b", op["input_b"], 0, j - 1)
    elif op["input_b"] != 0:
        raise ValueError("input_b must be 0 unless the op reads a second slot")
    in_cols, out_cols = op_cols(op)
    _check_int("in_cols", in_cols, 1, ref.MAX_COLS)
    _check_int("out_cols", out_cols, 1, ref.MAX_COLS)
    slots = [op["input_a"]] + ([op["input_b"]] if reads_b(op) else [])
    reads = [(DTYPE_INT8, DTYPE_INT16)] * 2
    if kind == rt.ARGMAX:
        reads = [(DTYPE_INT8, DTYPE_INT16, DTYPE_INT32), (DTYPE_INT32,)]
    for slot, want, ok in zip(slots, _input_cols(op, in_cols), reads):
        if cols[slot] != want:
            raise ValueError(f"input {want} columns != columns of slot {slot} ({cols[slot]})")
        if dtypes[slot] not in ok:
            raise ValueError(f"slot {slot} has dtype {dtypes[slot]}, the kind reads {ok}")
    in_bits = [rt.BITS.get(dtypes[s], 32) for s in slots]
    if kind == ROPE:
        check_rope_table(op["table"], rk._split("heads", in_cols, op["heads"]))
        ref._check_requant_params(op["multiplier"], op["shift"])
    elif kind == MUL:
        ref._check_requant_params(op["multiplier"], op["shift"])
    elif kind == rt.MATMUL:
        _check_int("kv_heads", op["kv_heads"], 1, op["heads"] - 1)
        rk._split("kv_heads", op["heads"], op["kv_heads"])
        rk._split("heads", out_cols, op["heads"])
        _check_int("seq (T_a)", op["seq"], 1, ref.MAX_ROWS)
        rk.matmul_bound(in_cols // op["heads"], *in_bits)
        ref._check_requant_params(op["multiplier"], op["shift"])
    elif kind == rt.ARGMAX:
        if out_cols != (2 if flags & FLAG_PAIR else 1):
            raise ValueError("argmax has out_cols = 2 with pair, else 1")
        if flags & FLAG_CARRY:
            _check_int("offset", op["offset"], 1, OFFSET_MAX)
    if kind in (ROPE, MUL) and out_cols != in_cols:
        raise ValueError(f"out_cols {out_cols} must equal in_cols {in_cols}")


def validate_op(op, j, cols, dtypes):
    if op["kind"] not in KIND_NAMES or isinstance(op["kind"], bool):
        raise ValueError(f"unknown kind {op['kind']!r}")
    if is_new(op):
        _validate_new(op, j, cols, dtypes)
    else:
        rt._validate_op(op, j, cols, dtypes)


def validate_model(model):
    """``reference_transformer.validate_model`` with 5.12-5.14: ``(slot_cols, slot_dtypes)``."""
    input_dtype = model.get("input_dtype", DTYPE_INT8)
    rt._dtype(input_dtype)
    _check_int("input_cols", model["input_cols"], 1, ref.MAX_COLS)
    ops = model["ops"]
    if not 1 <= len(ops) <= ref.MAX_OPS:
        raise ValueError(f"a model has 1 to {ref.MAX_OPS} ops, got {len(ops)}")
    cols, dtypes = [model["input_cols"]], [input_dtype]
    for j, op in enumerate(ops, start=1):
        try:
            validate_op(op, j, cols, dtypes)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise ValueError(f"op {j} ({KIND_NAMES.get(op.get('kind'), '?')}): {e}") from None
        cols.append(op_cols(op)[1])
        dtypes.append(out_dtype(op, dtypes[op["input_a"]]))
    return cols, dtypes


def op_descriptor(op) -> bytes:
    in_cols, out_cols = op_cols(op)
    return ref.descriptor(op["kind"], op["flags"], op["input_a"], op["input_b"], in_cols, out_cols, params_root(op))


def op_leaves(model) -> list:
    validate_model(model)
    return [ref.keccak256(op_descriptor(op)) for op in model["ops"]]


def ops_root(model) -> bytes:
    leaves = op_leaves(model)
    return ref.merkle_root(leaves, ref.depth(len(leaves)))


def op_proof(model, j) -> list:
    leaves = op_leaves(model)
    return ref.merkle_proof(leaves, ref.depth(len(leaves)), j - 1)


def model_root(model) -> bytes:
    cols, dtypes = validate_model(model)
    words = [len(model["ops"]), cols[0], cols[-1], ops_root(model)]
    if dtypes[0] != DTYPE_INT8:
        words.append(dtypes[0])
    return ref.keccak256(ref.enc(*words))


def run_op(op, inputs, in_dtypes=None):
    """One op on its input matrices; the kinds and flags of 5.12-5.14 here, the rest by rt."""
    if not is_new(op):
        return rt.run_op(op, inputs, in_dtypes)
    kind, flags = op["kind"], op["flags"]
    w = [rt.BITS.get(dt, 32) for dt in (in_dtypes or [DTYPE_INT8] * len(inputs))]
    bits = 16 if flags & rt.FLAG_I16 else 8
    if kind == ROPE:
        return rope(inputs[0], op["heads"], op["table"], op["multiplier"], op["shift"], bits, w[0])
    if kind == MUL:
        return mul(inputs[0], inputs[1], op["multiplier"], op["shift"], bits, w[0], w[1])
    if kind == rt.MATMUL:
        return matmul_grouped(inputs[0], inputs[1], op["heads"], op["kv_heads"], op["seq"], op["out_cols"],
                              op["multiplier"], op["shift"], bool(flags & rt.FLAG_CAUSAL), bits, w[0], w[1])
    carry = inputs[1] if flags & FLAG_CARRY else None
    return argmax_chunk(inputs[0], bool(flags & FLAG_PAIR), carry, op.get("offset", 0))


def run_model(model, x) -> list:
    cols, dtypes = validate_model(model)
    _, x_cols = rt.check_tensor(x, dtypes[0])
    if x_cols != cols[0]:
        raise ValueError(f"input has {x_cols} columns, the model expects {cols[0]}")
    slots = [x]
    for j, op in enumerate(model["ops"], start=1):
        names = [op["input_a"]] + ([op["input_b"]] if reads_b(op) else [])
        try:
            slots.append(run_op(op, [slots[i] for i in names], [dtypes[i] for i in names]))
        except ValueError as e:
            raise ValueError(f"op {j} ({KIND_NAMES[op['kind']]}): {e}") from None
    return slots


def trace(model, x):
    """``(slots, slot_roots, state_roots)`` of one job, as ``reference_transformer.trace``."""
    slots = run_model(model, x)
    _, dtypes = validate_model(model)
    roots = [rt.tensor_root(s, dt) for s, dt in zip(slots, dtypes)]
    return slots, roots, ref.state_roots(roots, ref.depth(len(model["ops"]) + 1))
