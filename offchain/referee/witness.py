"""The one-step witness of every kind (protocol 7.4, 10.9), built from the product's own model
and trace: what the challenger hands the kind's verifier for one disputed output element.

``step_inputs(model, trace, op)`` gives the input slot headers ``(rows, cols, rows_root, dtype)``
the kind reads, in order (``input_a``, then ``input_b`` for matmul, add, mul, a ``keymask``
softmax and an ``argmax`` with ``carry``: ``referee.model.input_slots``); the transition revealed
exactly these and the verifier trusts them. ``step_witness(model, trace, op, row, column)`` gives
the ABI-encoded witness tuple of ``contracts/verifiers/<Kind>Verifier.vy`` for output element
``(row, column)`` of op ``op``: the params header, the input rows the element reads with their
proofs against the slots' rows roots, and the table rows or column leaves the kind needs with
their proofs. Every row index is derived from ``(row, column)`` and the op's shape words exactly
as the verifier derives it (it never takes an index from the witness).

Rows and proofs come from ``trace.row_bytes`` and ``trace.slot_commitments[slot].tree``, so a
``SplitTrace`` serves as well as a ``Trace`` (one row read from the rank that holds it). The
only values computed here are ``norm``'s ``rho = isqrt(V)`` (exact, in Python ints) and the id
``embed`` reads: both from the one row the witness reveals anyway.

The same bytes as tests/verifier_witness.py builds from the independent reference
(tests/test_witness.py checks it for every op of the golden models).
"""

import math
import weakref

from eth_abi import encode

from . import commitments as cm
from . import ops as k
from .merkle import MerkleTree
from .model import IntegerModel, LinearOp, input_slots

PROOF = "bytes32[]"
# The tuple of every kind but linear's that reads (params, row a, proof a, row b, proof b).
TWO_ROWS = ("bytes", "bytes", PROOF, "bytes", PROOF)
# linear (contracts/verifiers/LinearVerifier.vy): x, x_proof, bias, multiplier, shift, w, w_proof,
# the weights rows root (the same bytes as referee.game's linear Step.witness).
LINEAR_WITNESS = ("bytes", PROOF, "int256", "int256", "uint256", "bytes", PROOF, "bytes32")


def descriptor(model: IntegerModel, op: int) -> tuple:
    """Op ``op``'s seven descriptor words (section 5) as the contracts' OpDescriptor tuple."""
    o = model.ops[op - 1]
    return (o.kind, o.flags, o.input_slot, o.input_b, o.in_cols, o.out_cols, o.params_root)


def step_inputs(model: IntegerModel, trace, op: int) -> list[tuple]:
    """The headers (rows, cols, rows_root, dtype) of the slots op ``op`` reads, in order."""
    return [trace.slot_commitments[s].full_header for s in input_slots(model.ops[op - 1])]


def step_witness(model: IntegerModel, trace, op: int, row: int, column: int) -> bytes:
    """The ABI-encoded witness of output element ``(row, column)`` of op ``op`` (protocol 10.9)."""
    o = model.ops[op - 1]
    rows, cols = trace.slot_commitments[op].rows, o.out_cols
    if not (0 <= row < rows and 0 <= column < cols):
        raise IndexError(f"element ({row}, {column}) is outside op {op}'s output [{rows}, {cols}]")
    return _BUILDERS[type(o)](o, _Rows(trace), row, column)


class _Rows:
    """A slot's packed row and its proof against the slot's rows root, from a trace."""

    def __init__(self, trace):
        self.trace = trace

    def __call__(self, slot: int, index: int) -> tuple[bytes, list[bytes]]:
        return self.trace.row_bytes(slot, index), self.trace.slot_commitments[slot].tree.proof(index)

    def values(self, slot: int, packed_row: bytes) -> list[int]:
        """The elements of a packed row of ``slot`` (big-endian, signed: section 3)."""
        width = cm.WIDTHS[self.trace.slot_commitments[slot].dtype]
        return [int.from_bytes(packed_row[i:i + width], "big", signed=True) for i in range(0, len(packed_row), width)]


# Per op, built once and kept while the op lives: its params header and its table trees (embed's
# token and position tables, rope's rotation table). ops.py recomputes a header on every call, and
# hashing a real model's table (embed's V x d) takes a while: a dispute asks for many elements.
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _cached(op, key: str, make):
    entries = _CACHE.setdefault(op, {})
    if key not in entries:
        entries[key] = make()
    return entries[key]


def params_header(op) -> bytes:
    """The preimage of ``op``'s params_root that the transition and the step reveal: its params
    header, empty for an ``argmax`` without ``carry`` (whose root is Z[0], 5.8)."""
    if isinstance(op, k.ArgmaxOp) and not op.carry:
        return b""
    return _cached(op, "params_header", op.params_header)


def _table_tree(op, name: str) -> MerkleTree:
    return _cached(op, name, lambda: cm.commit_tensor(getattr(op, name)).tree)


def _table_row(op, name: str, index: int) -> tuple[bytes, list[bytes]]:
    """Row ``index`` of a committed table (packed in the table's dtype) and its proof."""
    return cm.packed(getattr(op, name)[index:index + 1]), _table_tree(op, name).proof(index)


# ---------------------------------------------------------------------------------------
# One builder per kind: (op, rows, row, column) -> witness bytes


def _linear(o: LinearOp, rows: _Rows, row: int, column: int) -> bytes:
    """Input row ``row``; channel ``column``'s weight leaf (b, m, s, W[column]) and its proof."""
    x, xp = rows(o.input_slot, row)
    weights = o.weights
    return encode(LINEAR_WITNESS, (x, xp, int(o.bias[column]), int(o.multiplier[column]), int(o.shift[column]),
                                   cm.packed(o.weight[column:column + 1]), weights.tree.proof(column),
                                   weights.rows_root))


def _matmul(o: k.MatmulOp, rows: _Rows, row: int, column: int) -> bytes:
    """5.1: row r of A; row g*R_b + j of B (g = r // T_a, j = c mod R_b), also where causal masks
    the element (the verifier checks both rows regardless)."""
    r_b = o.out_cols // o.heads
    a, ap = rows(o.input_slot, row)
    b, bp = rows(o.input_b, (row // o.seq) * r_b + column % r_b)
    return encode(TWO_ROWS, (params_header(o), a, ap, b, bp))


def _transpose(o: k.TransposeOp, rows: _Rows, row: int, column: int) -> bytes:
    """5.2: output (r, x) is column h*C + c of input row g*R_in + i (g = r // C, i = x mod R_in)."""
    c_in, r_in = o.in_cols // o.heads, o.out_cols // o.heads
    x, xp = rows(o.input_slot, (row // c_in) * r_in + column % r_in)
    return encode(("bytes", "bytes", PROOF), (params_header(o), x, xp))


def _two_rows(o, rows: _Rows, row: int, column: int) -> bytes:
    """add (5.3) and mul (5.13): row r of each input."""
    a, ap = rows(o.input_slot, row)
    b, bp = rows(o.input_b, row)
    return encode(TWO_ROWS, (params_header(o), a, ap, b, bp))


def _lut(o: k.LutOp, rows: _Rows, row: int, column: int) -> bytes:
    """5.4: the packed table (the params header itself) and row r."""
    x, xp = rows(o.input_slot, row)
    return encode(("bytes", "bytes", PROOF), (params_header(o), x, xp))


def _softmax(o: k.SoftmaxOp, rows: _Rows, row: int, column: int) -> bytes:
    """5.5: the exp table (1024 bytes, hashed against ER in the header), row r, and with keymask
    the mask row of r's sequence, g = r // T (empty without: the verifier does not read it)."""
    x, xp = rows(o.input_slot, row)
    mask, mp = rows(o.input_b, row // o.seq) if o.keymask else (b"", [])
    exp_table = cm.packed(o.exp_table.reshape(1, 256))
    return encode(("bytes", "bytes", "bytes", PROOF, "bytes", PROOF), (params_header(o), exp_table, x, xp, mask, mp))


def _norm(o: k.NormOp, rows: _Rows, row: int, column: int) -> bytes:
    """5.6: row r; (gamma[c], beta[c]) with its column leaf's proof; rho = isqrt(V), the one value
    the verifier checks rather than computes (rho^2 <= V < (rho + 1)^2)."""
    x, xp = rows(o.input_slot, row)
    values = rows.values(o.input_slot, x)
    if o.rms:  # z = x
        v = sum(e * e for e in values)
    else:  # z = n x - sum x: V = sum z^2 = n (n sum x^2 - (sum x)^2), exact
        n, s1 = len(values), sum(values)
        v = n * (n * sum(e * e for e in values) - s1 * s1)
    return encode(("bytes", "bytes", PROOF, "int256", "int256", PROOF, "uint256"),
                  (params_header(o), x, xp, int(o.gamma[column]), int(o.beta[column]),
                   o.column_tree.proof(column), math.isqrt(v)))


def _embed(o: k.EmbedOp, rows: _Rows, row: int, column: int) -> bytes:
    """5.7: the ids row b = r // T, the token row of its id v at t = r mod T (empty for an id
    outside [0, V): it embeds as its position row alone) and position row t."""
    t_len = o.in_cols
    b, t = divmod(row, t_len)
    ids, ip = rows(o.input_slot, b)
    v = rows.values(o.input_slot, ids)[t]
    tok, tp = _table_row(o, "token_table", v) if 0 <= v < o.vocab else (b"", [])
    pos, pp = _table_row(o, "position_table", t)
    return encode(("bytes", "bytes", PROOF, "bytes", PROOF, "bytes", PROOF), (params_header(o), ids, ip, tok, tp, pos, pp))


def _argmax(o: k.ArgmaxOp, rows: _Rows, row: int, column: int) -> bytes:
    """5.8 / 5.14: row r; with carry the header enc(offset) and the carried pair's row r (both
    empty without: params_root is Z[0] and there is no pair)."""
    x, xp = rows(o.input_slot, row)
    carry, cp = rows(o.input_b, row) if o.carry else (b"", [])
    return encode(TWO_ROWS, (params_header(o), x, xp, carry, cp))


def _rope(o: k.RopeOp, rows: _Rows, row: int, column: int) -> bytes:
    """5.12: row r and the rotation table's row t = r mod T (its position) with its proof."""
    x, xp = rows(o.input_slot, row)
    table_row, tp = _table_row(o, "table", row % o.seq)
    return encode(TWO_ROWS, (params_header(o), x, xp, table_row, tp))


_BUILDERS = {
    LinearOp: _linear, k.MatmulOp: _matmul, k.TransposeOp: _transpose, k.AddOp: _two_rows, k.LutOp: _lut,
    k.SoftmaxOp: _softmax, k.NormOp: _norm, k.EmbedOp: _embed, k.ArgmaxOp: _argmax, k.RopeOp: _rope,
    k.MulOp: _two_rows,
}
