"""Witnesses of the one-step verifiers (docs/protocol.md 10.9), built from the independent
reference's trees (tests/reference*.py): for one op (a golden vector case or a random one)
and one output element (row, column), the descriptor, the input slot headers and the
ABI-encoded witness that ``contracts/verifiers/<Kind>Verifier.vy`` takes.

A case is a dict as in tests/vectors/transformer_ops.json: ``op`` (the kind's fields),
``inputs[]`` (``dtype, values``), ``output`` (``dtype, values``) and ``params_header``
(hex, as hashed). ``witness(case, row, column, **tamper)`` also builds the broken witnesses
of the revert tests (a wrong proof, table, params header or rho).
"""

from eth_abi import encode

import reference as ref
import reference_kinds as rk
import reference_llama as rl
import reference_transformer as rt

MATMUL, TRANSPOSE, ADD, LUT, SOFTMAX, NORM, EMBED, ARGMAX, ROPE, MUL = range(2, 12)
NAMES = {MATMUL: "Matmul", TRANSPOSE: "Transpose", ADD: "Add", LUT: "Lut", SOFTMAX: "Softmax",
         NORM: "Norm", EMBED: "Embed", ARGMAX: "Argmax", ROPE: "Rope", MUL: "Mul"}
REASON = {k: v.lower() for k, v in NAMES.items()}  # revert reasons start with the kind's name
I16, GROUPED, CARRY, KEYMASK = 128, 2, 2, 2
PROOF = "bytes32[]"


def h(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr[2:] if hexstr.startswith("0x") else hexstr)


def descriptor(case) -> tuple:
    """The seven descriptor words (section 5) as the OpDescriptor struct tuple."""
    op = case["op"]
    in_cols, out_cols = rl.op_cols(op)
    return (op["kind"], op["flags"], op["input_a"], op["input_b"], in_cols, out_cols,
            rl.params_root(op))


def headers(case) -> list:
    """The SlotHeader tuples of the inputs the kind reads, in order."""
    return [rt.tensor_header(i["values"], i["dtype"]) for i in case["inputs"][:n_inputs(case)]]


def n_inputs(case) -> int:
    return 2 if rl.reads_b(case["op"]) else 1


def _row(inp, index, bad_proof=False):
    """(packed row, proof) of row ``index`` of an input slot; a flipped sibling if bad."""
    values, dtype = inp["values"], inp["dtype"]
    proof = rt.row_proof(values, dtype, index)
    if bad_proof:
        proof = _flip(proof) if proof else [bytes(32)]
    return rt.pack_row(values[index], dtype), proof


def _flip(proof):
    return [bytes([proof[0][0] ^ 1]) + proof[0][1:]] + list(proof[1:])


def _table_row(table, dtype, index, bad=False):
    leaves = [ref.keccak256(rt.pack_row(r, dtype)) for r in table]
    proof = ref.merkle_proof(leaves, ref.depth(len(leaves)), index)
    if bad:
        proof = _flip(proof) if proof else [bytes(32)]
    return rt.pack_row(table[index], dtype), proof


def params_header(case, bad=False) -> bytes:
    header = rl.params_header(case["op"])
    if bad:  # one bit of the last word flipped
        header = header[:-1] + bytes([header[-1] ^ 1])
    return header


def witness(case, row, column, bad_a=False, bad_b=False, bad_params=False, bad_table=False,
            bad_rho=False) -> bytes:
    """The ABI-encoded witness of ``y[row, column]`` (10.9), broken as asked."""
    op, inputs = case["op"], case["inputs"]
    kind, flags = op["kind"], op["flags"]
    params = params_header(case, bad_params)
    if kind in (MATMUL,):
        heads, T_a = op["heads"], op["seq"]
        R_b = op["out_cols"] // heads
        g, j = row // T_a, column % R_b
        a, ap = _row(inputs[0], row, bad_a)
        b, bp = _row(inputs[1], g * R_b + j, bad_b)
        return encode(["bytes", "bytes", PROOF, "bytes", PROOF], [params, a, ap, b, bp])
    if kind == TRANSPOSE:
        heads = op["heads"]
        C, R_in = op["in_cols"] // heads, op["out_cols"] // heads
        g, i = row // C, column % R_in
        x, xp = _row(inputs[0], g * R_in + i, bad_a)
        return encode(["bytes", "bytes", PROOF], [params, x, xp])
    if kind in (ADD, MUL):
        a, ap = _row(inputs[0], row, bad_a)
        b, bp = _row(inputs[1], row, bad_b)
        return encode(["bytes", "bytes", PROOF, "bytes", PROOF], [params, a, ap, b, bp])
    if kind == LUT:
        table = params_header(case, bad_table or bad_params)
        x, xp = _row(inputs[0], row, bad_a)
        return encode(["bytes", "bytes", PROOF], [table, x, xp])
    if kind == SOFTMAX:
        E = rt.pack_row(op["exp_table"], rt.DTYPE_INT32)
        if bad_table:
            E = E[:-1] + bytes([E[-1] ^ 1])
        x, xp = _row(inputs[0], row, bad_a)
        mask, mp = b"", []
        if flags & KEYMASK:
            mask, mp = _row(inputs[1], row // op["seq"], bad_b)
        return encode(["bytes", "bytes", "bytes", PROOF, "bytes", PROOF], [params, E, x, xp, mask, mp])
    if kind == NORM:
        x, xp = _row(inputs[0], row, bad_a)
        gamma, beta = op["gamma"], op["beta"]
        leaves = [rt.norm_column_leaf(gc, bc) for gc, bc in zip(gamma, beta)]
        cp = ref.merkle_proof(leaves, ref.depth(len(leaves)), column)
        g_c, b_c = gamma[column], beta[column]
        if bad_table:
            b_c += 1
        _, _, rho = rk.norm_stats(inputs[0]["values"][row], bool(flags & 1))
        if bad_rho:
            rho += 1
        return encode(["bytes", "bytes", PROOF, "int256", "int256", PROOF, "uint256"],
                      [params, x, xp, g_c, b_c, cp, rho])
    if kind == EMBED:
        T = op["in_cols"]
        b, t = row // T, row % T
        ids, ip = _row(inputs[0], b, bad_a)
        v = inputs[0]["values"][b][t]
        dtype = rt.embed_table_dtype(op)
        tok, tp = b"", []
        if 0 <= v < len(op["token_table"]):
            tok, tp = _table_row(op["token_table"], dtype, v, bad_table)
        pos, pp = _table_row(op["position_table"], dtype, t, bad_b)
        return encode(["bytes", "bytes", PROOF, "bytes", PROOF, "bytes", PROOF],
                      [params, ids, ip, tok, tp, pos, pp])
    if kind == ARGMAX:
        x, xp = _row(inputs[0], row, bad_a)
        carry, cp = b"", []
        if flags & CARRY:
            carry, cp = _row(inputs[1], row, bad_b)
        return encode(["bytes", "bytes", PROOF, "bytes", PROOF], [params, x, xp, carry, cp])
    if kind == ROPE:
        x, xp = _row(inputs[0], row, bad_a)
        T = len(op["table"])
        tr, tp = _table_row(op["table"], rt.DTYPE_INT16, row % T, bad_table)
        return encode(["bytes", "bytes", PROOF, "bytes", PROOF], [params, x, xp, tr, tp])
    raise ValueError(f"no verifier for kind {kind}")


def call_args(case, row, column, **tamper):
    """(desc, inputs, row, column, witness): the arguments of ``element``."""
    return descriptor(case), headers(case), row, column, witness(case, row, column, **tamper)


def elements(case, limit=None, rng=None):
    """The (row, column) pairs a test checks: every element of a small output, else ``limit``
    random ones (and the corners)."""
    values = case["output"]["values"]
    rows, cols = len(values), len(values[0])
    every = [(r, c) for r in range(rows) for c in range(cols)]
    if limit is None or len(every) <= limit:
        return every
    picks = {(0, 0), (rows - 1, cols - 1)}
    while len(picks) < limit:
        picks.add((rng.randrange(rows), rng.randrange(cols)))
    return sorted(picks)
