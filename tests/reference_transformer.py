"""Reference commitments and traces of transformer models (docs/protocol.md sections 3, 5, 6).

Plain Python ``int`` and ``bytes``, written from the spec and sharing no code with
``offchain/referee/``: dtype-bound tensor roots, each kind's params header and params root,
descriptors, model roots of int8 and token (int32-input) models, and whole-model runs and
traces. The kinds' arithmetic is in ``tests/reference_kinds.py``; sections 1-6 for ``linear``
models are ``tests/reference.py``, whose roots this module reproduces unchanged for int8.

A model is a dict, the same shape as the plain-dict bridge ``referee.graph_dict`` reads (so a
test hands one model to both)::

    {"input_cols": int, "input_dtype": 0 or 1 (default 0),
     "ops": [op, ...]}              # ops[j - 1] is op j and writes slot j

Every op has ``kind``, ``flags``, ``input_a``, ``input_b``; per kind:

    1 linear     weights, bias, multiplier, shift   (flags bit 0 ReLU, bit 1 wide)
    2 matmul     in_cols, out_cols, heads, seq, multiplier, shift   (bit 0 causal)
    3 transpose  in_cols, out_cols, heads
    4 add        in_cols, out_cols, multiplier_a, multiplier_b, shift
    5 lut        in_cols, out_cols, table (256 int8, table[v + 128])
    6 softmax    in_cols, out_cols, heads, seq, exp_table (256 ints)   (bit 0 causal, bit 1 keymask:
                 input_b is then the [rows / T, in_cols / heads] int8 mask slot)
    7 norm       in_cols, out_cols, multiplier, shift, gamma, beta   (bit 0 rms)
    8 embed      in_cols, out_cols, token_table, position_table, multiplier_a, multiplier_b, shift
    9 argmax     in_cols, out_cols (= 1)

Flag bit 7 (``i16``, 128) on kinds 1, 2, 4-8 makes the output slot int16 (5.0): a ``lut`` with
it has a table of 256 int16 entries. ``transpose`` keeps its input's dtype.
"""

import reference as ref
import reference_kinds as rk

DTYPE_INT8, DTYPE_INT32, DTYPE_INT16 = 0, 1, 2
DTYPES = {DTYPE_INT8: (1, ref.INT8_MIN, ref.INT8_MAX), DTYPE_INT32: (4, ref.INT32_MIN, ref.INT32_MAX),
          DTYPE_INT16: (2, rk.INT16_MIN, rk.INT16_MAX)}
BITS = {DTYPE_INT8: 8, DTYPE_INT16: 16}  # the activation dtypes' widths

LINEAR, MATMUL, TRANSPOSE, ADD, LUT, SOFTMAX, NORM, EMBED, ARGMAX = range(1, 10)
KIND_NAMES = {LINEAR: "linear", MATMUL: "matmul", TRANSPOSE: "transpose", ADD: "add", LUT: "lut",
              SOFTMAX: "softmax", NORM: "norm", EMBED: "embed", ARGMAX: "argmax"}
FLAG_RELU, FLAG_WIDE = 1, 2
FLAG_CAUSAL = FLAG_RMS = 1
FLAG_KEYMASK = 2  # softmax
FLAG_I16 = 128
# The flag bits each kind defines (5.10); every other bit must be 0.
KIND_FLAGS = {LINEAR: FLAG_RELU | FLAG_WIDE | FLAG_I16, MATMUL: FLAG_CAUSAL | FLAG_I16, TRANSPOSE: 0,
              ADD: FLAG_I16, LUT: FLAG_I16, SOFTMAX: FLAG_CAUSAL | FLAG_KEYMASK | FLAG_I16,
              NORM: FLAG_RMS | FLAG_I16, EMBED: FLAG_I16, ARGMAX: 0}
# The input dtypes each kind reads (5.0, 5.10).
READS = {EMBED: (DTYPE_INT32,), ARGMAX: (DTYPE_INT8, DTYPE_INT16, DTYPE_INT32), LUT: (DTYPE_INT8,),
         SOFTMAX: (DTYPE_INT8,)}
READS_DEFAULT = (DTYPE_INT8, DTYPE_INT16)
TWO_INPUTS = (MATMUL, ADD)


def reads_b(op) -> bool:
    """Whether the op reads slot ``input_b``: matmul, add, and softmax with ``keymask``."""
    return op["kind"] in TWO_INPUTS or (op["kind"] == SOFTMAX and bool(op["flags"] & FLAG_KEYMASK))

_check_int = ref._check_int
keccak256 = ref.keccak256


# ---------------------------------------------------------------------------------------
# Tensors with a dtype (section 3)


def _dtype(dtype):
    if dtype not in DTYPES or isinstance(dtype, bool):
        raise ValueError(f"unknown dtype {dtype!r}")
    return DTYPES[dtype]


def pack_row(row, dtype=DTYPE_INT8) -> bytes:
    """int8: one two's-complement byte per element; int32: four bytes, big-endian."""
    width, lo, hi = _dtype(dtype)
    out = bytearray()
    for v in row:
        _check_int("element", v, lo, hi)
        out += (v % 2 ** (8 * width)).to_bytes(width, "big")
    return bytes(out)


def unpack_row(data: bytes, dtype=DTYPE_INT8) -> list:
    width, _, _ = _dtype(dtype)
    if len(data) % width:
        raise ValueError(f"{len(data)} bytes is not a whole number of {width}-byte elements")
    out = []
    for i in range(0, len(data), width):
        u = int.from_bytes(data[i:i + width], "big")
        out.append(u - 2 ** (8 * width) if u >= 2 ** (8 * width - 1) else u)
    return out


def check_tensor(values, dtype=DTYPE_INT8):
    _, lo, hi = _dtype(dtype)
    return rk.shape("tensor", values, lo, hi)


def pack_tensor(values, dtype=DTYPE_INT8) -> bytes:
    check_tensor(values, dtype)
    return b"".join(pack_row(row, dtype) for row in values)


def row_leaves(values, dtype=DTYPE_INT8) -> list:
    check_tensor(values, dtype)
    return [keccak256(pack_row(row, dtype)) for row in values]


def tensor_header(values, dtype=DTYPE_INT8):
    """``(rows, cols, R, dtype)``."""
    rows, cols = check_tensor(values, dtype)
    return rows, cols, ref.merkle_root(row_leaves(values, dtype), ref.depth(rows)), dtype


def header_root(rows, cols, rows_root, dtype) -> bytes:
    """int8: ``H(enc(rows, cols, R))`` (as before dtypes); else ``H(enc(rows, cols, R, dtype))``."""
    _dtype(dtype)
    _check_int("rows", rows, 1, ref.MAX_ROWS)
    _check_int("cols", cols, 1, ref.MAX_COLS)
    ref._check_hash("rows root", rows_root)
    if dtype == DTYPE_INT8:
        return keccak256(ref.enc(rows, cols, rows_root))
    return keccak256(ref.enc(rows, cols, rows_root, dtype))


def tensor_root(values, dtype=DTYPE_INT8) -> bytes:
    return header_root(*tensor_header(values, dtype))


def row_proof(values, dtype, index) -> list:
    leaves = row_leaves(values, dtype)
    return ref.merkle_proof(leaves, ref.depth(len(leaves)), index)


def table_rows_root(table, dtype=DTYPE_INT8) -> bytes:
    """Rows root of an int8 (or int16) table (``embed``'s ``TR``/``PR``): leaves
    ``H(packed row)`` at ``depth(rows)``; a vocabulary may have more than ``MAX_ROWS`` rows."""
    return ref.merkle_root([keccak256(pack_row(row, dtype)) for row in table], ref.depth(len(table)))


def embed_table_dtype(op):
    """``embed``'s tables are int8, or int16 with flag i16 (5.7)."""
    return DTYPE_INT16 if op["flags"] & FLAG_I16 else DTYPE_INT8


# ---------------------------------------------------------------------------------------
# Params headers and roots (5.1-5.8)


def exp_table_root(E) -> bytes:
    """``ER = H(packed E)``, the 256 entries as big-endian int32 (1024 bytes, ``E[0]`` first)."""
    rk.check_exp_table(E)
    return keccak256(pack_row(E, DTYPE_INT32))


def norm_column_leaf(gamma_c, beta_c) -> bytes:
    """``GL[c] = H(enc(gamma[c], beta[c]))``, signed words."""
    return keccak256(ref.enc(gamma_c, beta_c))


def norm_columns_root(gamma, beta) -> bytes:
    """``GR = root([GL[0], ..., GL[n-1]], depth(n))``."""
    leaves = [norm_column_leaf(g, b) for g, b in zip(gamma, beta)]
    return ref.merkle_root(leaves, ref.depth(len(leaves)))


def params_header(op) -> bytes:
    """The bytes hashed into ``params_root`` (``b""`` for argmax, whose root is ``Z[0]``)."""
    kind = op["kind"]
    if kind == LINEAR:
        return ref.enc(*ref.weights_header(op["weights"], op["bias"], op["multiplier"], op["shift"]))
    if kind == MATMUL:
        return ref.enc(op["heads"], op["seq"], op["multiplier"], op["shift"])
    if kind == TRANSPOSE:
        return ref.enc(op["heads"])
    if kind == ADD:
        return ref.enc(op["multiplier_a"], op["multiplier_b"], op["shift"])
    if kind == LUT:  # 256 bytes, or 512 (int16 big-endian) with i16
        bits = _bits(op)
        rk.check_table(op["table"], bits)
        return pack_row(op["table"], DTYPE_INT16 if bits == 16 else DTYPE_INT8)
    if kind == SOFTMAX:
        return ref.enc(op["heads"], op["seq"], exp_table_root(op["exp_table"]))
    if kind == NORM:
        return ref.enc(len(op["gamma"]), op["multiplier"], op["shift"],
                       norm_columns_root(op["gamma"], op["beta"]))
    if kind == EMBED:
        tok, pos = op["token_table"], op["position_table"]
        return ref.enc(len(tok), len(pos), len(tok[0]), op["multiplier_a"], op["multiplier_b"],
                       op["shift"], table_rows_root(tok, embed_table_dtype(op)),
                       table_rows_root(pos, embed_table_dtype(op)))
    if kind == ARGMAX:
        return b""
    raise ValueError(f"unknown kind {kind!r}")


def params_root(op) -> bytes:
    header = params_header(op)
    return bytes(32) if op["kind"] == ARGMAX else keccak256(header)


# ---------------------------------------------------------------------------------------
# Model validation (sections 5 and 5.10)


def op_cols(op):
    """``(in_cols, out_cols)`` of an op's descriptor."""
    if op["kind"] == LINEAR:
        return len(op["weights"][0]), len(op["weights"])
    return op["in_cols"], op["out_cols"]


def _bits(op):
    """The output width of a kind that writes activations: 16 with flag i16, else 8."""
    return 16 if op["flags"] & FLAG_I16 else 8


def out_dtype(op, in_dtype=DTYPE_INT8):
    """The output slot's dtype; ``transpose`` keeps ``in_dtype`` (its input's)."""
    if op["kind"] == ARGMAX or (op["kind"] == LINEAR and op["flags"] & FLAG_WIDE):
        return DTYPE_INT32
    if op["kind"] == TRANSPOSE:
        return in_dtype
    return DTYPE_INT16 if op["flags"] & FLAG_I16 else DTYPE_INT8


def _check_params(op, in_cols, out_cols):
    kind = op["kind"]
    if kind == LINEAR:
        validate_linear(op)
    elif kind == MATMUL:
        rk._split("heads", in_cols, op["heads"])
        rk._split("heads", out_cols, op["heads"])
        _check_int("seq (T_a)", op["seq"], 1, ref.MAX_ROWS)
        ref._check_requant_params(op["multiplier"], op["shift"])
    elif kind == TRANSPOSE:
        rk._split("heads", in_cols, op["heads"])
        rk._split("heads", out_cols, op["heads"])
    elif kind == ADD:
        rk.rescale2(0, op["multiplier_a"], 0, op["multiplier_b"], op["shift"])
    elif kind == LUT:
        rk.check_table(op["table"], _bits(op))
    elif kind == SOFTMAX:
        rk._split("heads", in_cols, op["heads"])
        _check_int("seq (T)", op["seq"], 1, ref.MAX_ROWS)
        rk.check_exp_table(op["exp_table"])
    elif kind == NORM:
        rk.check_norm_params(op["gamma"], op["beta"], op["multiplier"], op["shift"], in_cols)
    elif kind == EMBED:
        V, T, d = rk.check_embed_tables(op["token_table"], op["position_table"], _bits(op))
        if (T, d) != (in_cols, out_cols):
            raise ValueError(f"tables are [{V}, {d}] and [{T}, {d}]; the descriptor says "
                             f"T = {in_cols}, d = {out_cols}")
        rk.rescale2(0, op["multiplier_a"], 0, op["multiplier_b"], op["shift"])


def validate_linear(op):
    W, b, m, s = op["weights"], op["bias"], op["multiplier"], op["shift"]
    ref._check_weights(W, b, m, s)
    for c in range(len(W)):
        ref._check_channel(W[c], b[c], m[c], s[c])
    if op["flags"] & (FLAG_RELU | FLAG_WIDE) == FLAG_RELU | FLAG_WIDE:
        raise ValueError("linear: ReLU and wide are not both allowed")
    if op["flags"] & (FLAG_I16 | FLAG_WIDE) == FLAG_I16 | FLAG_WIDE:
        raise ValueError("linear: wide and i16 are not both allowed")


def validate_model(model):
    """Check sections 3, 5 and 5.1-5.10; returns ``(slot_cols, slot_dtypes)`` of slots 0...N."""
    input_dtype = model.get("input_dtype", DTYPE_INT8)
    _dtype(input_dtype)
    _check_int("input_cols", model["input_cols"], 1, ref.MAX_COLS)
    ops = model["ops"]
    if not 1 <= len(ops) <= ref.MAX_OPS:
        raise ValueError(f"a model has 1 to {ref.MAX_OPS} ops, got {len(ops)}")
    cols, dtypes = [model["input_cols"]], [input_dtype]
    for j, op in enumerate(ops, start=1):
        try:
            _validate_op(op, j, cols, dtypes)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise ValueError(f"op {j} ({KIND_NAMES.get(op.get('kind'), '?')}): {e}") from None
        cols.append(op_cols(op)[1])
        dtypes.append(out_dtype(op, dtypes[op["input_a"]]))
    return cols, dtypes


def _validate_op(op, j, cols, dtypes):
    kind = op["kind"]
    if kind not in KIND_NAMES or isinstance(kind, bool):
        raise ValueError(f"unknown kind {kind!r}")
    _check_int("flags", op["flags"], 0, 2**256 - 1)
    if op["flags"] & ~KIND_FLAGS[kind]:
        raise ValueError(f"flags {op['flags']} set a bit the kind does not define")
    _check_int("input_a", op["input_a"], 0, j - 1)
    if reads_b(op):
        _check_int("input_b", op["input_b"], 0, j - 1)
    elif op["input_b"] != 0:
        raise ValueError("input_b must be 0 unless the op reads a second slot")
    in_cols, out_cols = op_cols(op)
    _check_int("in_cols", in_cols, 1, ref.MAX_COLS)
    _check_int("out_cols", out_cols, 1, ref.MAX_COLS)
    inputs = [op["input_a"]] + ([op["input_b"]] if reads_b(op) else [])
    wants = [(in_cols, "in_cols")]
    if reads_b(op):  # a softmax's mask slot has L = in_cols / H columns, one per key
        keys = kind == SOFTMAX
        wants.append((rk._split("heads", in_cols, op["heads"]) if keys else in_cols,
                      "the mask's L" if keys else "in_cols"))
    for slot, (want_cols, what) in zip(inputs, wants):
        if cols[slot] != want_cols:
            raise ValueError(f"{what} {want_cols} != columns of slot {slot} ({cols[slot]})")
        want = READS.get(kind, READS_DEFAULT)
        if dtypes[slot] not in want:
            raise ValueError(f"slot {slot} has dtype {dtypes[slot]}, the kind reads {want}")
    in_dtypes = [dtypes[slot] for slot in inputs]
    if DTYPE_INT16 in in_dtypes:  # the bounds an int16 input adds (5.0)
        if kind == LINEAR:
            for c, (w_row, b) in enumerate(zip(op["weights"], op["bias"])):
                if 2**15 * sum(abs(w) for w in w_row) + abs(b) > ref.INT32_MAX:
                    raise ValueError(f"channel {c}: accumulator bound for an int16 input exceeds 2^31 - 1")
        elif kind == MATMUL:
            rk.matmul_bound(in_cols // op["heads"], BITS[in_dtypes[0]], BITS[in_dtypes[1]])
        elif kind == NORM and not op["flags"] & 1 and in_cols > rk.NORM_I16_MAX_COLS:  # LayerNorm only
            raise ValueError(f"a LayerNorm reading int16 has at most {rk.NORM_I16_MAX_COLS} columns")
    if kind in (ADD, LUT, SOFTMAX, NORM) and out_cols != in_cols:
        raise ValueError(f"out_cols {out_cols} must equal in_cols {in_cols}")
    if kind == ARGMAX and out_cols != 1:
        raise ValueError("argmax has out_cols = 1")
    _check_params(op, in_cols, out_cols)


# ---------------------------------------------------------------------------------------
# Descriptors and roots (section 5)


def op_descriptor(op) -> bytes:
    in_cols, out_cols = op_cols(op)
    return ref.descriptor(op["kind"], op["flags"], op["input_a"], op["input_b"], in_cols,
                          out_cols, params_root(op))


def op_leaves(model) -> list:
    validate_model(model)
    return [keccak256(op_descriptor(op)) for op in model["ops"]]


def ops_root(model) -> bytes:
    leaves = op_leaves(model)
    return ref.merkle_root(leaves, ref.depth(len(leaves)))


def op_proof(model, j) -> list:
    leaves = op_leaves(model)
    return ref.merkle_proof(leaves, ref.depth(len(leaves)), j - 1)


def model_root(model) -> bytes:
    """``H(enc(N, input_cols, output_cols, OR))``; a token model appends ``input_dtype``."""
    cols, dtypes = validate_model(model)
    words = [len(model["ops"]), cols[0], cols[-1], ops_root(model)]
    if dtypes[0] != DTYPE_INT8:
        words.append(dtypes[0])
    return keccak256(ref.enc(*words))


# ---------------------------------------------------------------------------------------
# Execution and the trace (section 6)


def run_op(op, inputs, in_dtypes=None):
    """One op on its input matrices (``[a]`` or ``[a, b]``) of ``in_dtypes`` (int8 where not
    given; int32 for ``embed``); returns the output matrix."""
    kind, flags = op["kind"], op["flags"]
    a = inputs[0]
    # input widths (int32 inputs only reach embed and argmax, which take no width)
    w = [BITS.get(dt, 32) for dt in (in_dtypes or [DTYPE_INT8] * len(inputs))]
    bits = _bits(op)
    if kind == LINEAR:
        if flags & FLAG_WIDE:
            if w[0] == 16:
                return rk.linear16(a, op["weights"], op["bias"], op["multiplier"], op["shift"], False, 8, 16,
                                   wide=True)
            return rk.linear_wide(a, op["weights"], op["bias"], op["multiplier"], op["shift"])
        if bits == 16 or w[0] == 16:
            return rk.linear16(a, op["weights"], op["bias"], op["multiplier"], op["shift"],
                               bool(flags & FLAG_RELU), bits, w[0])
        return ref.linear(a, op["weights"], op["bias"], op["multiplier"], op["shift"],
                          bool(flags & FLAG_RELU))
    if kind == MATMUL:
        return rk.matmul(a, inputs[1], op["heads"], op["seq"], op["out_cols"],
                         op["multiplier"], op["shift"], bool(flags & FLAG_CAUSAL), bits, w[0], w[1])
    if kind == TRANSPOSE:
        return rk.transpose(a, op["heads"], op["out_cols"], w[0])
    if kind == ADD:
        return rk.add(a, inputs[1], op["multiplier_a"], op["multiplier_b"], op["shift"], bits, w[0], w[1])
    if kind == LUT:
        return rk.lut(a, op["table"], bits)
    if kind == SOFTMAX:
        return rk.softmax(a, op["heads"], op["seq"], op["exp_table"], bool(flags & FLAG_CAUSAL),
                          inputs[1] if flags & FLAG_KEYMASK else None, bits)
    if kind == NORM:
        return rk.norm(a, op["gamma"], op["beta"], op["multiplier"], op["shift"],
                       bool(flags & FLAG_RMS), bits, w[0])
    if kind == EMBED:
        return rk.embed(a, op["token_table"], op["position_table"], op["multiplier_a"],
                        op["multiplier_b"], op["shift"], bits)
    if kind == ARGMAX:
        return rk.argmax(a)
    raise ValueError(f"unknown kind {kind!r}")


def run_model(model, x) -> list:
    """All slot matrices ``[slot 0 = x, slot 1, ..., slot N]``."""
    cols, dtypes = validate_model(model)
    _, x_cols = check_tensor(x, dtypes[0])
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


def slot_roots(model, slots) -> list:
    _, dtypes = validate_model(model)
    return [tensor_root(s, dt) for s, dt in zip(slots, dtypes)]


def trace(model, x):
    """``(slots, slot_roots, state_roots)`` of one job: ``S_0 ... S_N`` at depth ``D``."""
    slots = run_model(model, x)
    roots = slot_roots(model, slots)
    d = ref.depth(len(model["ops"]) + 1)
    return slots, roots, ref.state_roots(roots, d)
