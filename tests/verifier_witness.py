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
        rho += int(bad_rho)  # True: one too big; -1: one too small
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
    """(desc, inputs, row, column, witness): what a verifier's ``step`` reads (``step_args``)."""
    return descriptor(case), headers(case), row, column, witness(case, row, column, **tamper)


def step_args(desc, inputs, row, column, witness) -> tuple:
    """The arguments of a verifier's ``step`` (IVerifier: ``DisputeGame.step``'s, which the game
    forwards), called directly: no game, row word or row word proof (the verifier ignores them)."""
    return 0, column, bytes(32), [], desc, inputs, row, witness


def step_call(case, row, column, **tamper) -> tuple:
    """``step_args`` of ``call_args``."""
    return step_args(*call_args(case, row, column, **tamper))


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


# ---------------------------------------------------------------------------------------
# Cases built here: random ones for the tests, real-sized ones for benchmarks/verifier_gas.py

RANGE = {rt.DTYPE_INT8: (-128, 127), rt.DTYPE_INT16: (-32768, 32767), rt.DTYPE_INT32: (-(2**31), 2**31 - 1)}


def tensor(rng, rows, cols, dtype=rt.DTYPE_INT8, lo=None, hi=None):
    """A random matrix of a dtype, extremes included."""
    a, b = RANGE[dtype]
    lo, hi = a if lo is None else lo, b if hi is None else hi
    pick = (lo, hi, 0, -1, 1)
    return [[rng.choice(pick) if rng.random() < 0.1 else rng.randint(lo, hi) for _ in range(cols)]
            for _ in range(rows)]


def make_case(name, op, inputs, compute=True):
    """A case dict like the golden vectors', its output computed by the reference."""
    out = rl.run_op(op, [v for _, v in inputs], [d for d, _ in inputs]) if compute else None
    return {"name": name, "op": op, "inputs": [{"dtype": d, "values": v} for d, v in inputs],
            "output": {"values": out}}


def _rq(rng, acc=2**14, i16=0):
    """(m, s) that map accumulators of about ``acc`` to about the output's range (so neither
    saturate nor vanish), with the extremes of m and s now and then."""
    if rng.random() < 0.1:
        return rng.choice((1, rng.randint(1, 2**31 - 1), 2**31 - 1)), rng.choice((1, 62, rng.randint(1, 62)))
    out = 32767 if i16 else 127
    s = rng.randint(16, 40)
    return max(1, min(2**31 - 1, int(2**s * out / max(acc, 1) * rng.uniform(0.2, 1.5)))), s


def _amax(dtype):
    return 2**15 if dtype == rt.DTYPE_INT16 else 2**7


def random_case(kind, rng, name="random"):
    """One random op of ``kind`` with small shapes, every flag and dtype the kind allows."""
    i16 = I16 if rng.random() < 0.5 else 0
    act = rng.choice((rt.DTYPE_INT8, rt.DTYPE_INT16))
    G = rng.randint(1, 2)
    base = {"kind": kind, "input_a": 0, "input_b": 0}
    if kind == MATMUL:
        H = rng.choice((1, 2, 4))
        Hb = rng.choice([d for d in (1, 2) if H % d == 0 and d < H]) if H > 1 and rng.random() < 0.5 else H
        K, T_a, R_b = rng.randint(1, 5), rng.randint(1, 3), rng.randint(1, 4)
        flags = i16 | (1 if rng.random() < 0.5 else 0) | (GROUPED if Hb < H else 0)
        da, db = rng.choice(((0, 0), (0, 2), (2, 0)))
        m, s = _rq(rng, K * _amax(da) * _amax(db) // 4, i16)
        op = {**base, "flags": flags, "input_b": 1, "in_cols": H * K, "out_cols": H * R_b, "heads": H,
              "seq": T_a, "multiplier": m, "shift": s, **({"kv_heads": Hb} if Hb < H else {})}
        return make_case(name, op, [(da, tensor(rng, G * T_a, H * K, da)), (db, tensor(rng, G * R_b, Hb * K, db))])
    if kind == TRANSPOSE:
        H, C, R_in = rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 4)
        op = {**base, "flags": 0, "in_cols": H * C, "out_cols": H * R_in, "heads": H}
        return make_case(name, op, [(act, tensor(rng, G * R_in, H * C, act))])
    if kind in (ADD, MUL):
        rows, n = rng.randint(1, 3), rng.randint(1, 40)
        da, db = rng.choice((0, 2)), rng.choice((0, 2))
        if kind == MUL:
            m, s = _rq(rng, _amax(da) * _amax(db) // 4, i16)
            extra = {"multiplier": m}
        else:
            m, s = _rq(rng, _amax(da), i16)
            extra = {"multiplier_a": m, "multiplier_b": _rq(rng, _amax(db), i16)[0] if rng.random() < 0.9
                     else rng.randint(1, 2**31 - 1)}
        op = {**base, "flags": i16, "input_b": 1, "in_cols": n, "out_cols": n, "shift": s, **extra}
        return make_case(name, op, [(da, tensor(rng, rows, n, da)), (db, tensor(rng, rows, n, db))])
    if kind == LUT:
        rows, n = rng.randint(1, 3), rng.randint(1, 40)
        table = tensor(rng, 1, 256, rt.DTYPE_INT16 if i16 else rt.DTYPE_INT8)[0]
        op = {**base, "flags": i16, "in_cols": n, "out_cols": n, "table": table}
        return make_case(name, op, [(0, tensor(rng, rows, n))])
    if kind == SOFTMAX:
        H, L, T = rng.randint(1, 3), rng.randint(1, 40), rng.randint(1, 3)
        flags = i16 | (1 if rng.random() < 0.5 else 0) | (KEYMASK if rng.random() < 0.5 else 0)
        E = [rng.randint(0, 2**23) for _ in range(256)]
        op = {**base, "flags": flags, "in_cols": H * L, "out_cols": H * L, "heads": H, "seq": T, "exp_table": E}
        inputs = [(0, tensor(rng, G * T, H * L))]
        if flags & KEYMASK:
            op["input_b"] = 1
            inputs.append((0, [[rng.choice((0, 0, 1, 1, 5, -3)) for _ in range(L)] for _ in range(G)]))
        return make_case(name, op, inputs)
    if kind == NORM:
        rows, n = rng.randint(1, 3), rng.randint(1, 40)
        gamma = [rng.randint(-(2**15), 2**15) for _ in range(n)]
        beta = [rng.choice((rng.randint(-(2**24), 2**24), 2**31 - 1 - 2**15 * abs(gamma[c]))) for c in range(n)]
        m, s = _rq(rng, 2**28, i16)
        op = {**base, "flags": i16 | rng.choice((0, 1)), "in_cols": n, "out_cols": n, "multiplier": m,
              "shift": s, "gamma": gamma, "beta": beta}
        return make_case(name, op, [(act, tensor(rng, rows, n, act))])
    if kind == EMBED:
        V, T, d = rng.randint(1, 40), rng.randint(1, 4), rng.randint(1, 20)
        dt = rt.DTYPE_INT16 if i16 else rt.DTYPE_INT8
        ids = [[rng.choice((rng.randint(0, V - 1), -1, V, 2**31 - 1, -(2**31))) for _ in range(T)]
               for _ in range(rng.randint(1, 2))]
        m_a, s = _rq(rng, _amax(dt), i16)
        op = {**base, "flags": i16, "in_cols": T, "out_cols": d, "token_table": tensor(rng, V, d, dt),
              "position_table": tensor(rng, T, d, dt), "multiplier_a": m_a,
              "multiplier_b": min(2**31 - 1, m_a * rng.randint(1, 3)), "shift": s}
        return make_case(name, op, [(rt.DTYPE_INT32, ids)])
    if kind == ARGMAX:
        rows, n = rng.randint(1, 3), rng.randint(1, 40)
        dt = rng.choice((0, 1, 2))
        lo, hi = (-3, 3) if rng.random() < 0.5 else RANGE[dt]  # ties
        flags = rng.randint(0, 3)
        op = {**base, "flags": flags, "in_cols": n, "out_cols": 2 if flags & 1 else 1}
        inputs = [(dt, tensor(rng, rows, n, dt, lo, hi))]
        if flags & CARRY:
            op.update(input_b=1, offset=rng.choice((1, rng.randint(1, 2**24), 2**24)))
            inputs.append((rt.DTYPE_INT32, [[rng.randint(lo, hi), rng.randint(0, 2**24)] for _ in range(rows)]))
        return make_case(name, op, inputs)
    if kind == ROPE:
        H, D, T = rng.randint(1, 3), 2 * rng.randint(1, 4), rng.randint(1, 3)
        table = tensor(rng, T, D, rt.DTYPE_INT16, -(2**14), 2**14)
        m, s = _rq(rng, _amax(act) * 2**13, i16)
        op = {**base, "flags": i16, "in_cols": H * D, "out_cols": H * D, "heads": H, "multiplier": m,
              "shift": s, "table": table}
        return make_case(name, op, [(act, tensor(rng, G * T, H * D, act))])
    raise ValueError(kind)
