"""Reference implementation of the Referee protocol (docs/protocol.md, sections 1-9).

This module is an independent, deliberately plain re-implementation of the binding
specification: Python ``int`` and ``bytes`` only, no numpy, no torch, written straight from
docs/protocol.md. It shares no code with ``offchain/referee/`` (nothing is imported from it
and nothing was copied from it), so that the golden vectors it produces
(``tests/vectors/generate.py``) are an independent check of both the off-chain code and the
contracts.

Conventions used throughout:

- a hash, leaf or root is a 32-byte ``bytes`` value;
- a matrix (tensor, weight matrix) is a list of rows, each a list of ``int``;
- a ``linear`` op's weights ``W`` are output-major, ``W[c][j]`` (``torch.nn.Linear``);
- every range the specification states is checked, and a violation raises ``ValueError``.

A model is a dict::

    {"input_cols": int,
     "ops": [{"kind": 1, "flags": 0 or 1, "input_a": int, "input_b": 0,
              "weights": [[int]], "bias": [int], "multiplier": [int], "shift": [int]},
             ...]}

where ``ops[j - 1]`` is op ``j`` and writes slot ``j``.
"""

from Crypto.Hash import keccak

# ---------------------------------------------------------------------------------------
# Constants (section 4 and section 8)

MAX_COLS = 16384
MAX_ROWS = 65536
MAX_OPS = 65535

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MULTIPLIER_MIN, MULTIPLIER_MAX = 1, 2**31 - 1
SHIFT_MIN, SHIFT_MAX = 1, 62
ACC_BOUND = 2**31 - 1

KIND_LINEAR = 1
FLAG_RELU = 1

WORD_BYTES = 32


# ---------------------------------------------------------------------------------------
# Hashing and byte encodings (section 1)


def keccak256(data: bytes) -> bytes:
    """Keccak-256 as the EVM computes it (original Keccak padding, not SHA3-256)."""
    h = keccak.new(digest_bits=256)
    h.update(bytes(data))
    return h.digest()


def _check_int(name, value, lo, hi):
    # bool is an int subclass; refuse it where a number is meant.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} = {value} is outside [{lo}, {hi}]")


def _check_hash(name, value):
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {value!r}")


def word(value) -> bytes:
    """One 32-byte big-endian word.

    An ``int`` in ``[-2^255, 2^256)`` is encoded as two's complement over 256 bits (a
    non-negative value is therefore the same as its unsigned encoding); a 32-byte value (a
    hash) is taken as it is.
    """
    if isinstance(value, (bytes, bytearray)):
        _check_hash("word", value)
        return bytes(value)
    _check_int("word", value, -(2**255), 2**256 - 1)
    return (value % 2**256).to_bytes(WORD_BYTES, "big")


def enc(*values) -> bytes:
    """``enc(a, b, ...)``: the words of the values concatenated (Solidity abi.encode)."""
    return b"".join(word(v) for v in values)


def pack_int8(values) -> bytes:
    """Pack int8 values, one two's-complement byte each, in order."""
    out = bytearray()
    for v in values:
        _check_int("int8 element", v, INT8_MIN, INT8_MAX)
        out.append(v % 256)
    return bytes(out)


def unpack_int8(data: bytes) -> list:
    """Inverse of ``pack_int8``."""
    return [b - 256 if b >= 128 else b for b in data]


# ---------------------------------------------------------------------------------------
# Merkle trees (section 2)


def depth(n: int) -> int:
    """Smallest ``d >= 0`` with ``2^d >= n``, for ``n >= 1``."""
    _check_int("n", n, 1, 2**256)
    d = 0
    while 2**d < n:
        d += 1
    return d


def zero_hashes(count: int) -> list:
    """``[Z[0], ..., Z[count - 1]]`` with ``Z[0] = 0^32`` and ``Z[h+1] = H(Z[h] || Z[h])``."""
    _check_int("count", count, 0, 2**16)
    out = []
    z = bytes(32)
    for _ in range(count):
        out.append(z)
        z = keccak256(z + z)
    return out


def _zero(h: int) -> bytes:
    return zero_hashes(h + 1)[h]


def _subtree_root(leaves, h):
    """Root of a subtree of height ``h`` whose first leaves are ``leaves`` (rest zero)."""
    if not leaves:
        return _zero(h)
    if h == 0:
        return leaves[0]
    half = 2 ** (h - 1)
    left = _subtree_root(leaves[:half], h - 1)
    right = _subtree_root(leaves[half:], h - 1)
    return keccak256(left + right)


def _check_leaves(leaves, d):
    _check_int("depth", d, 0, 64)
    if len(leaves) > 2**d:
        raise ValueError(f"{len(leaves)} leaves do not fit a tree of depth {d}")
    for i, leaf in enumerate(leaves):
        _check_hash(f"leaf {i}", leaf)


def merkle_root(leaves, d: int) -> bytes:
    """Root of the depth-``d`` tree over ``leaves``, right-padded with ``Z[0]``."""
    _check_leaves(leaves, d)
    return _subtree_root(list(leaves), d)


def merkle_proof(leaves, d: int, index: int) -> list:
    """The ``d`` sibling hashes of leaf ``index``, bottom-up.

    ``index`` may name a padding position (``len(leaves) <= index < 2^d``).
    """
    _check_leaves(leaves, d)
    _check_int("index", index, 0, 2**d - 1)
    leaves = list(leaves)
    siblings = []
    for h in range(d):
        # At height h the node containing leaf `index` is number index >> h; its sibling
        # is number (index >> h) ^ 1, covering leaves [sib * 2^h, (sib + 1) * 2^h).
        sib = (index >> h) ^ 1
        size = 2**h
        siblings.append(_subtree_root(leaves[sib * size:(sib + 1) * size], h))
    return siblings


def merkle_verify(leaf: bytes, index: int, siblings, root: bytes, depth=None) -> bool:
    """Section 2 verification; the tree depth is ``len(siblings)``.

    With ``depth`` given (the depth fixed by a committed shape or count), a proof of any
    other length is rejected, as every verifier in the protocol does.
    """
    _check_hash("leaf", leaf)
    _check_hash("root", root)
    for s in siblings:
        _check_hash("sibling", s)
    d = len(siblings)
    if depth is not None and d != depth:
        return False
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**d:
        return False
    node = bytes(leaf)
    for h in range(d):
        if (index >> h) & 1 == 0:
            node = keccak256(node + siblings[h])
        else:
            node = keccak256(siblings[h] + node)
    return node == bytes(root)


# ---------------------------------------------------------------------------------------
# Tensors (section 3)


def _check_matrix(name, matrix, max_rows, max_cols):
    if not isinstance(matrix, (list, tuple)) or len(matrix) == 0:
        raise ValueError(f"{name} must be a non-empty list of rows")
    if len(matrix) > max_rows:
        raise ValueError(f"{name} has {len(matrix)} rows, more than {max_rows}")
    cols = len(matrix[0])
    if not 1 <= cols <= max_cols:
        raise ValueError(f"{name} has {cols} columns, outside [1, {max_cols}]")
    for r, row in enumerate(matrix):
        if len(row) != cols:
            raise ValueError(f"{name} row {r} has {len(row)} columns, expected {cols}")
        for v in row:
            _check_int(f"{name}[{r}] element", v, INT8_MIN, INT8_MAX)
    return len(matrix), cols


def row_leaf(row) -> bytes:
    """``L[r] = H(packed row)``."""
    return keccak256(pack_int8(row))


def pack_tensor(rows_matrix) -> bytes:
    """Row-major packing of a tensor."""
    _check_matrix("tensor", rows_matrix, MAX_ROWS, MAX_COLS)
    return b"".join(pack_int8(row) for row in rows_matrix)


def row_leaves(rows_matrix) -> list:
    _check_matrix("tensor", rows_matrix, MAX_ROWS, MAX_COLS)
    return [row_leaf(row) for row in rows_matrix]


def tensor_header(rows_matrix):
    """``(rows, cols, R)`` with ``R`` the rows root (padding leaves ``Z[0]``)."""
    rows, cols = _check_matrix("tensor", rows_matrix, MAX_ROWS, MAX_COLS)
    rows_root = merkle_root([row_leaf(row) for row in rows_matrix], depth(rows))
    return rows, cols, rows_root


def header_root(rows: int, cols: int, rows_root: bytes) -> bytes:
    """``T = H(enc(rows, cols, R))``."""
    _check_int("rows", rows, 1, MAX_ROWS)
    _check_int("cols", cols, 1, MAX_COLS)
    _check_hash("rows root", rows_root)
    return keccak256(enc(rows, cols, rows_root))


def tensor_root(rows_matrix) -> bytes:
    return header_root(*tensor_header(rows_matrix))


def row_proof(rows_matrix, index: int) -> list:
    """Proof of row leaf ``index`` against the rows root (depth ``depth(rows)``)."""
    leaves = row_leaves(rows_matrix)
    return merkle_proof(leaves, depth(len(leaves)), index)


# ---------------------------------------------------------------------------------------
# The linear op (section 4)


def _check_requant_params(multiplier, shift):
    _check_int("multiplier", multiplier, MULTIPLIER_MIN, MULTIPLIER_MAX)
    _check_int("shift", shift, SHIFT_MIN, SHIFT_MAX)


def requantize(acc: int, multiplier: int, shift: int, relu: bool) -> int:
    """``clamp((acc * m + 2^(s-1)) >> s, -128, 127)``, then ReLU if asked.

    ``acc`` must be an int32 (the accumulator bound keeps real accumulators inside it).
    """
    _check_int("acc", acc, INT32_MIN, INT32_MAX)
    _check_requant_params(multiplier, shift)
    if relu not in (False, True):  # also admits 0 and 1
        raise ValueError(f"relu must be a bool, got {relu!r}")
    y = (acc * multiplier + (1 << (shift - 1))) >> shift
    y = max(INT8_MIN, min(INT8_MAX, y))
    if relu:
        y = max(y, 0)
    return y


def accumulator_bound(w_row, bias: int) -> int:
    """``B = 128 * sum_j |W[c, j]| + |b[c]|`` for one output channel."""
    for v in w_row:
        _check_int("weight", v, INT8_MIN, INT8_MAX)
    _check_int("bias", bias, INT32_MIN, INT32_MAX)
    return 128 * sum(abs(v) for v in w_row) + abs(bias)


def _check_channel(w_row, bias, multiplier, shift):
    if not 1 <= len(w_row) <= MAX_COLS:
        raise ValueError(f"weight row has {len(w_row)} entries, outside [1, {MAX_COLS}]")
    bound = accumulator_bound(w_row, bias)
    if bound > ACC_BOUND:
        raise ValueError(f"accumulator bound {bound} exceeds 2^31 - 1")
    _check_requant_params(multiplier, shift)


def linear_element(x_row, w_row, bias, multiplier, shift, relu):
    """One output element: returns ``(acc, y)``."""
    _check_channel(w_row, bias, multiplier, shift)
    if len(x_row) != len(w_row):
        raise ValueError(f"input row has {len(x_row)} entries, weight row {len(w_row)}")
    for v in x_row:
        _check_int("input element", v, INT8_MIN, INT8_MAX)
    acc = bias
    for xv, wv in zip(x_row, w_row):
        acc += xv * wv
    return acc, requantize(acc, multiplier, shift, relu)


def linear(x, W, b, m, s, relu):
    """The whole op: ``x`` is ``[rows, k]``, ``W`` is ``[n, k]``; returns ``[rows, n]``."""
    _check_matrix("input", x, MAX_ROWS, MAX_COLS)
    n, k = _check_matrix("weights", W, MAX_COLS, MAX_COLS)
    if not len(b) == len(m) == len(s) == n:
        raise ValueError("bias, multiplier and shift need one entry per output column")
    if len(x[0]) != k:
        raise ValueError(f"input has {len(x[0])} columns, weights expect {k}")
    return [
        [linear_element(row, W[c], b[c], m[c], s[c], relu)[1] for c in range(n)]
        for row in x
    ]


def weight_leaf(w_row, bias: int, multiplier: int, shift: int) -> bytes:
    """``WL[c] = H(enc(b[c], m[c], s[c]) || packed W[c, :])``."""
    if not 1 <= len(w_row) <= MAX_COLS:
        raise ValueError(f"weight row has {len(w_row)} entries, outside [1, {MAX_COLS}]")
    _check_int("bias", bias, INT32_MIN, INT32_MAX)
    _check_requant_params(multiplier, shift)
    return keccak256(enc(bias, multiplier, shift) + pack_int8(w_row))


def _check_weights(W, b, m, s):
    n, k = _check_matrix("weights", W, MAX_COLS, MAX_COLS)
    if not len(b) == len(m) == len(s) == n:
        raise ValueError("bias, multiplier and shift need one entry per output column")
    return n, k


def weight_leaves(W, b, m, s) -> list:
    _check_weights(W, b, m, s)
    return [weight_leaf(W[c], b[c], m[c], s[c]) for c in range(len(W))]


def weights_header(W, b, m, s):
    """``(n, k, weight rows root)``."""
    n, k = _check_weights(W, b, m, s)
    return n, k, merkle_root(weight_leaves(W, b, m, s), depth(n))


def weights_root(W, b, m, s) -> bytes:
    """``WR = H(enc(n, k, root(WL, depth(n))))``."""
    return keccak256(enc(*weights_header(W, b, m, s)))


# ---------------------------------------------------------------------------------------
# Models (section 5)


def descriptor(kind, flags, input_a, input_b, in_cols, out_cols, params_root) -> bytes:
    """``desc = enc(kind, flags, input_a, input_b, in_cols, out_cols, params_root)``.

    Only the encoding is checked here (each field a uint256, ``params_root`` 32 bytes), so
    that invalid descriptors can be built for tests; ``validate_model`` checks meaning.
    """
    for name, v in (("kind", kind), ("flags", flags), ("input_a", input_a),
                    ("input_b", input_b), ("in_cols", in_cols), ("out_cols", out_cols)):
        _check_int(name, v, 0, 2**256 - 1)
    _check_hash("params_root", params_root)
    return enc(kind, flags, input_a, input_b, in_cols, out_cols, params_root)


def validate_model(model):
    """Check a model against sections 4, 5 and 8; returns the column count of every slot."""
    input_cols = model["input_cols"]
    _check_int("input_cols", input_cols, 1, MAX_COLS)
    ops = model["ops"]
    if not 1 <= len(ops) <= MAX_OPS:
        raise ValueError(f"a model has 1 to {MAX_OPS} ops, got {len(ops)}")
    slot_cols = [input_cols]
    for j, op in enumerate(ops, start=1):
        if op["kind"] != KIND_LINEAR:
            raise ValueError(f"op {j}: unknown kind {op['kind']!r}")
        _check_int(f"op {j} flags", op["flags"], 0, FLAG_RELU)
        _check_int(f"op {j} input_a", op["input_a"], 0, j - 1)
        if op["input_b"] != 0:
            raise ValueError(f"op {j}: input_b must be 0 for linear")
        W, b, m, s = op["weights"], op["bias"], op["multiplier"], op["shift"]
        n, k = _check_weights(W, b, m, s)
        if k != slot_cols[op["input_a"]]:
            raise ValueError(f"op {j}: in_cols {k} != columns of slot {op['input_a']}")
        for c in range(n):
            try:
                _check_channel(W[c], b[c], m[c], s[c])
            except ValueError as e:
                raise ValueError(f"op {j}, channel {c}: {e}") from None
        slot_cols.append(n)
    return slot_cols


def op_descriptor(model, j: int) -> bytes:
    """``desc_j`` of op ``j`` (1-based)."""
    validate_model(model)
    op = model["ops"][j - 1]
    W = op["weights"]
    return descriptor(op["kind"], op["flags"], op["input_a"], op["input_b"],
                      len(W[0]), len(W),
                      weights_root(W, op["bias"], op["multiplier"], op["shift"]))


def op_leaves(model) -> list:
    """``[OL[1], ..., OL[N]]``, ``OL[j] = H(desc_j)``."""
    return [keccak256(op_descriptor(model, j)) for j in range(1, len(model["ops"]) + 1)]


def ops_root(model) -> bytes:
    leaves = op_leaves(model)
    return merkle_root(leaves, depth(len(leaves)))


def op_proof(model, j: int) -> list:
    """Proof of ``OL[j]`` (leaf index ``j - 1``) against the ops root."""
    leaves = op_leaves(model)
    return merkle_proof(leaves, depth(len(leaves)), j - 1)


def model_root(model) -> bytes:
    """``MR = H(enc(N, input_cols, output_cols, OR))``."""
    slot_cols = validate_model(model)
    return keccak256(enc(len(model["ops"]), slot_cols[0], slot_cols[-1], ops_root(model)))


def state_depth(model) -> int:
    """``D = depth(N + 1)``."""
    return depth(len(model["ops"]) + 1)


# ---------------------------------------------------------------------------------------
# Execution state (section 6)


def run_model(model, x) -> list:
    """All slot matrices ``[slot 0 = x, slot 1, ..., slot N]``."""
    validate_model(model)
    _, cols = _check_matrix("input", x, MAX_ROWS, MAX_COLS)
    if cols != model["input_cols"]:
        raise ValueError(f"input has {cols} columns, the model expects {model['input_cols']}")
    slots = [x]
    for op in model["ops"]:
        relu = bool(op["flags"] & FLAG_RELU)
        slots.append(linear(slots[op["input_a"]], op["weights"], op["bias"],
                            op["multiplier"], op["shift"], relu))
    return slots


def state_root(slot_roots, d: int) -> bytes:
    """``S = root([T_0, ..., T_j], D)``; unfilled slots are ``Z[0]``."""
    return merkle_root(slot_roots, d)


def state_roots(slot_roots, d: int) -> list:
    """``[S_0, ..., S_N]`` for the slot roots ``[T_0, ..., T_N]``."""
    return [state_root(slot_roots[:j + 1], d) for j in range(len(slot_roots))]


def slot_update_proof(slot_roots, d: int, j: int) -> list:
    """The ``D`` siblings of slot ``j``: proves slot ``j`` empty in ``S_{j-1}`` and
    ``T_j`` in ``S_j``."""
    return merkle_proof(slot_roots[:j + 1], d, j)


# ---------------------------------------------------------------------------------------
# The dispute game (section 7)


def bisection_points(lo: int, hi: int, arity: int) -> list:
    """``[q_0, ..., q_p]`` with ``p = min(a, L)``, ``q_i = lo + floor(i * L / p)``."""
    _check_int("lo", lo, 0, 2**256 - 1)
    _check_int("hi", hi, 0, 2**256 - 1)
    _check_int("arity", arity, 2, 2**256 - 1)
    if arity & (arity - 1) != 0:
        raise ValueError(f"arity {arity} is not a power of two")
    length = hi - lo
    if length <= 1:
        raise ValueError(f"interval ({lo}, {hi}) is not bisectable: hi - lo must exceed 1")
    p = min(arity, length)
    return [lo + (i * length) // p for i in range(p + 1)]
