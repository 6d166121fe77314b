"""Generate the golden vectors of docs/protocol.md section 9 from tests/reference.py.

    python tests/vectors/generate.py            write tests/vectors/*.json
    python tests/vectors/generate.py --check    regenerate in memory; exit 1 naming every
                                                file that differs or is missing, else 0

(``--dir PATH`` writes or checks PATH instead of this script's directory.)

Every value comes from ``tests/reference.py`` (plain Python integers; it shares no code with
``offchain/referee/``). Randomness is drawn only from ``random.Random`` instances with fixed
seeds, one per file, so the output is byte-for-byte reproducible and changing one file's
cases does not disturb the others. Hashes and byte strings are ``0x``-prefixed lowercase
hex; integers are JSON numbers; the ReLU flag of requant and linear cases is a JSON boolean.
Files are written with ``json.dumps(..., indent=1)`` plus a trailing newline.
"""

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for `import reference`

import reference as ref  # noqa: E402

SEED = 0x5EFE_2EE0  # base seed; each file adds its own offset

I32_MAX = 2**31 - 1
I32_MIN = -(2**31)
M_MAX = 2**31 - 1


def hx(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def hxs(items) -> list:
    return [hx(x) for x in items]


def rand_int8(rng: random.Random) -> int:
    """A random int8; one draw in eight is an extreme (-128, 127 or 0)."""
    if rng.randrange(8) == 0:
        return [-128, 127, 0][rng.randrange(3)]
    return rng.randrange(-128, 128)


def rand_row(rng, k):
    return [rand_int8(rng) for _ in range(k)]


def rand_matrix(rng, rows, cols):
    return [rand_row(rng, cols) for _ in range(rows)]


def pick_scale(acc_mag: int, target: int, max_shift: int = 40):
    """A ``(multiplier, shift)`` mapping ``acc_mag`` to about ``target``.

    The largest shift (at most ``max_shift``) whose multiplier fits int32 is used.
    """
    acc_mag = max(acc_mag, 1)
    for s in range(max_shift, 0, -1):
        m = (target * 2**s + acc_mag // 2) // acc_mag
        if 1 <= m <= M_MAX:
            return m, s
    return 1, 1


def requant_case(name, acc, m, s, relu):
    return {"name": name, "acc": acc, "multiplier": m, "shift": s, "relu": relu,
            "y": ref.requantize(acc, m, s, relu)}


# ---------------------------------------------------------------------------------------
# requant.json


def gen_requant():
    rng = random.Random(SEED + 1)
    c = requant_case
    cases = [
        # Rounding: the spec's examples (m = 1, s = 1) and exact half ties of both signs.
        c("spec_example_acc3_m1_s1", 3, 1, 1, False),            # 1.5 -> 2
        c("spec_example_acc-3_m1_s1", -3, 1, 1, False),          # -1.5 -> -1
        c("spec_example_acc-1_m1_s1", -1, 1, 1, False),          # -0.5 -> 0
        c("spec_example_acc1_m1_s1", 1, 1, 1, False),            # 0.5 -> 1
        c("tie_pos_m3_s2", 10, 3, 2, False),                     # 7.5 -> 8
        c("tie_neg_m3_s2", -10, 3, 2, False),                    # -7.5 -> -7
        c("tie_pos_m7_s5", 48, 7, 5, False),                     # 10.5 -> 11
        c("tie_neg_m7_s5", -48, 7, 5, False),                    # -10.5 -> -10
        c("tie_pos_half_m1_s4", 8, 1, 4, False),                 # 0.5 -> 1
        c("tie_neg_half_m1_s4", -8, 1, 4, False),                # -0.5 -> 0
        c("below_tie_pos_m1_s4", 7, 1, 4, False),                # 0.4375 -> 0
        c("above_tie_neg_m1_s4", -7, 1, 4, False),               # -0.4375 -> 0
        c("above_tie_pos_m1_s4", 9, 1, 4, False),                # 0.5625 -> 1
        c("below_tie_neg_m1_s4", -9, 1, 4, False),               # -0.5625 -> -1
        c("tie_pos_s61", 2**30, 2**30, 61, False),               # 0.5 -> 1
        c("tie_neg_s62", -(2**31), 2**30, 62, False),            # -0.5 -> 0
        c("tie_pos_large_m_s30", 1, 3 * 2**29, 30, False),       # 1.5 -> 2
        c("tie_neg_large_m_s30", -1, 3 * 2**29, 30, False),      # -1.5 -> -1
        c("large_m_clamp_lo_s33", -1001, 3 * 2**29, 33, False),  # -187.6875 -> -128
        c("large_m_neg_s37", -1001, 3 * 2**29, 37, False),       # -11.73 -> -12
        # Clamp at +127, approached from inside and outside.
        c("clamp_hi_126_exact", 1008, 1, 3, False),              # 126
        c("clamp_hi_tie_to_127", 1012, 1, 3, False),             # 126.5 -> 127
        c("clamp_hi_127_exact", 1016, 1, 3, False),              # 127
        c("clamp_hi_127_round_down", 1019, 1, 3, False),         # 127.375 -> 127
        c("clamp_hi_tie_to_128_clamped", 1020, 1, 3, False),     # 127.5 -> 128 -> 127
        c("clamp_hi_128_clamped", 1024, 1, 3, False),            # 128 -> 127
        c("clamp_hi_far", I32_MAX, M_MAX, 1, False),
        # Clamp at -128, approached from inside and outside.
        c("clamp_lo_-127_exact", -1016, 1, 3, False),            # -127
        c("clamp_lo_tie_to_-127", -1020, 1, 3, False),           # -127.5 -> -127
        c("clamp_lo_-128_exact", -1024, 1, 3, False),            # -128
        c("clamp_lo_tie_to_-128", -1028, 1, 3, False),           # -128.5 -> -128
        c("clamp_lo_-129_clamped", -1029, 1, 3, False),          # -128.625 -> -129 -> -128
        c("clamp_lo_-129_exact_clamped", -1032, 1, 3, False),    # -129 -> -128
        c("clamp_lo_far", I32_MIN, M_MAX, 1, False),
        # Shift extremes.
        c("s1_m1_acc0", 0, 1, 1, False),
        c("s1_m1_acc254", 254, 1, 1, False),                     # 127
        c("s1_m1_acc-256", -256, 1, 1, False),                   # -128
        c("s62_acc_max_m_max", I32_MAX, M_MAX, 62, False),       # 0.99999... -> 1
        c("s62_acc_min_m_max", I32_MIN, M_MAX, 62, False),       # -0.99999... -> -1
        c("s62_acc_neg_max_m_max", -I32_MAX, M_MAX, 62, False),  # -0.99999... -> -1
        c("s62_acc_max_m1", I32_MAX, 1, 62, False),              # ~2^-31 -> 0
        c("s62_acc_min_m1", I32_MIN, 1, 62, False),              # -2^-31 -> 0
        # Multiplier extremes.
        c("m1_acc100_s2", 100, 1, 2, False),                     # 25
        c("m_max_acc1_s31", 1, M_MAX, 31, False),                # 0.99999... -> 1
        c("m_max_acc-1_s31", -1, M_MAX, 31, False),              # -0.99999... -> -1
        c("m_max_acc100_s38", 100, M_MAX, 38, False),            # 0.78 -> 1
        c("m_max_acc12345_s40", 12345, M_MAX, 40, False),        # 24.1 -> 24
        c("m_max_acc-12345_s40", -12345, M_MAX, 40, False),      # -24.1 -> -24
        # Extreme accumulators.
        c("acc_max_m1_s24", I32_MAX, 1, 24, False),              # 127.99 -> 128 -> 127
        c("acc_max_m1_s25", I32_MAX, 1, 25, False),              # 63.99 -> 64
        c("acc_min_m1_s23", I32_MIN, 1, 23, False),              # -256 -> -128
        c("acc_min_m1_s24", I32_MIN, 1, 24, False),              # -128
        c("acc_min_m1_s25", I32_MIN, 1, 25, False),              # -64
        c("acc_neg_max_m1_s25", -I32_MAX, 1, 25, False),         # -63.99 -> -64
        c("acc_max_m_max_s55", I32_MAX, M_MAX, 55, False),       # 127.99 -> 128 -> 127
        c("acc_min_m_max_s56", I32_MIN, M_MAX, 56, False),       # -63.99 -> -64
        # ReLU.
        c("relu_negative", -100, 1, 2, True),                    # -25 -> 0
        c("relu_positive", 100, 1, 2, True),                     # 25
        c("relu_zero_acc", 0, 1, 2, True),                       # 0
        c("relu_rounds_to_zero", 1, 1, 2, True),                 # 0.25 -> 0
        c("relu_neg_tie", -1, 1, 1, True),                       # -0.5 -> 0 -> 0
        c("relu_pos_tie", 1, 1, 1, True),                        # 0.5 -> 1
        c("relu_clamp_hi", I32_MAX, M_MAX, 1, True),             # 127
        c("relu_clamp_lo", I32_MIN, M_MAX, 1, True),             # -128 -> 0
        c("relu_s62_acc_min", I32_MIN, M_MAX, 62, True),         # -1 -> 0
    ]
    # Random cases, scaled so that most land inside [-128, 127].
    for i in range(40):
        acc = rng.randrange(-(2 ** rng.randrange(1, 32)), 2 ** rng.randrange(1, 32))
        acc = max(I32_MIN, min(I32_MAX, acc))
        m = rng.randrange(1, 2 ** rng.randrange(1, 32))
        s = (abs(acc) * m).bit_length() - 7 + rng.randrange(-2, 3)
        s = max(1, min(62, s))
        cases.append(c(f"random_{i:02d}", acc, m, s, rng.randrange(4) == 0))
    return {
        "description": "requantize(acc, multiplier, shift, relu) = "
                       "clamp((acc*multiplier + 2^(shift-1)) >> shift, -128, 127), then "
                       "max(y, 0) if relu (docs/protocol.md section 4). Ties round toward "
                       "+infinity; >> is an arithmetic (flooring) shift.",
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------
# linear.json


def linear_case(name, x, w, bias, m, s, relu):
    acc, y = ref.linear_element(x, w, bias, m, s, relu)
    return {"name": name, "x": x, "w": w, "bias": bias, "multiplier": m, "shift": s,
            "relu": relu, "acc": acc, "y": y, "x_packed": hx(ref.pack_int8(x)),
            "w_packed": hx(ref.pack_int8(w)), "weight_leaf": hx(ref.weight_leaf(w, bias, m, s))}


def scaled_linear_case(rng, name, x, w, bias, relu, target):
    acc = bias + sum(a * b for a, b in zip(x, w))
    m, s = pick_scale(abs(acc), target, max_shift=rng.randrange(24, 48))
    return linear_case(name, x, w, bias, m, s, relu)


def gen_linear():
    rng = random.Random(SEED + 2)
    L = linear_case
    cases = [
        L("k1_basic", [5], [7], 3, 1, 1, False),                  # acc 38 -> 19
        L("k1_min_times_min", [-128], [-128], 0, 1, 8, False),    # acc 16384 -> 64
        L("k1_min_times_min_clamped", [-128], [-128], 0, 1, 1, False),  # 8192 -> 127
        L("k1_min_times_max", [-128], [127], 0, 1, 7, False),     # -16256 -> -127
        L("k1_negative_bias_only", [0], [-128], -1000, 1, 4, False),  # -62.5 -> -62
        L("k1_relu_negative", [-3], [5], 0, 1, 1, True),          # -15 -> -7 -> 0
        L("k1_relu_zero", [0], [0], 0, 1, 1, True),               # 0
        L("k1_relu_positive", [3], [5], 1, 1, 1, True),           # 16 -> 8
        L("k2_negative_tie", [1, 2], [-1, -1], 0, 1, 1, False),   # -3 -> -1
        L("k64_all_min", [-128] * 64, [-128] * 64, 0, 1, 14, False),  # 2^20 -> 64
        L("k64_min_times_max_tie", [-128] * 64, [127] * 64, 0, 1, 14, False),  # -63.5 -> -63
    ]
    # Accumulator bound met with equality, reaching acc = +(2^31 - 1) and -(2^31 - 1).
    w = [-rng.randrange(1, 129) for _ in range(32)]
    bias = I32_MAX - 128 * sum(abs(v) for v in w)
    cases.append(L("bound_equality_acc_max", [-128] * 32, w, bias, 1, 25, False))
    w = [rng.randrange(1, 128) for _ in range(32)]
    bias = -(I32_MAX - 128 * sum(abs(v) for v in w))
    cases.append(L("bound_equality_acc_neg_max", [-128] * 32, w, bias, 1, 25, False))
    # Random rows: negative accumulators, ReLU, and large k.
    x, w = rand_row(rng, 16), rand_row(rng, 16)
    acc0 = sum(a * b for a, b in zip(x, w))
    cases.append(scaled_linear_case(rng, "k16_negative_acc", x, w, -abs(acc0) - 5000,
                                    False, 90))
    x, w = rand_row(rng, 16), rand_row(rng, 16)
    acc0 = sum(a * b for a, b in zip(x, w))
    cases.append(scaled_linear_case(rng, "k16_negative_acc_relu", x, w, -abs(acc0) - 5000,
                                    True, 90))
    x, w = rand_row(rng, 33), rand_row(rng, 33)
    acc0 = sum(a * b for a, b in zip(x, w))
    cases.append(scaled_linear_case(rng, "k33_positive_acc_relu", x, w, abs(acc0) + 777,
                                    True, 70))
    x, w = rand_row(rng, 300), rand_row(rng, 300)
    cases.append(scaled_linear_case(rng, "k300_random", x, w, rng.randrange(-10**6, 10**6),
                                    False, 100))
    for k in (4096, 16384):
        x, w = rand_row(rng, k), rand_row(rng, k)
        cases.append(scaled_linear_case(rng, f"k{k}_random", x, w,
                                        rng.randrange(-10**7, 10**7), False, 77))
    return {
        "description": "One output element of a linear op (docs/protocol.md section 4): "
                       "acc = bias + sum_j x[j]*w[j]; y = requantize(acc, multiplier, shift, "
                       "relu); weight_leaf = H(enc(bias, multiplier, shift) || w_packed).",
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------
# merkle.json


def proof_entries(leaves, d, indices):
    root = ref.merkle_root(leaves, d)
    out = []
    for i in indices:
        sib = ref.merkle_proof(leaves, d, i)
        assert ref.merkle_verify(leaves[i], i, sib, root, depth=d)
        out.append({"index": i, "siblings": hxs(sib)})
    return out


def gen_merkle():
    rng = random.Random(SEED + 3)
    trees = []
    shapes = [(n, ref.depth(n)) for n in (1, 2, 3, 4, 5, 7, 8, 9)]
    shapes += [(1, 2), (3, 3), (5, 4)]  # depth larger than depth(n), as in state trees
    for n, d in shapes:
        leaves = [rng.getrandbits(256).to_bytes(32, "big") for _ in range(n)]
        name = f"leaves_{n}" if d == ref.depth(n) else f"leaves_{n}_depth_{d}"
        indices = sorted({0, n // 2, n - 1})
        trees.append({"name": name, "leaves": hxs(leaves), "depth": d,
                      "root": hx(ref.merkle_root(leaves, d)),
                      "proofs": proof_entries(leaves, d, indices)})
    return {
        "description": "Merkle trees (docs/protocol.md section 2): leaves padded on the "
                       "right with Z[0] to 2^depth, inner node H(left || right); proofs "
                       "are depth siblings, bottom-up. zero_hashes is Z[0] ... Z[32].",
        "zero_hashes": hxs(ref.zero_hashes(33)),
        "trees": trees,
    }


# ---------------------------------------------------------------------------------------
# tensors.json


def tensor_case(name, values):
    rows, cols, rows_root = ref.tensor_header(values)
    leaves = [ref.row_leaf(r) for r in values]
    return {"name": name, "rows": rows, "cols": cols, "values": values,
            "packed": hx(ref.pack_tensor(values)), "row_leaves": hxs(leaves),
            "rows_root": hx(rows_root), "tensor_root": hx(ref.tensor_root(values)),
            "row_proofs": proof_entries(leaves, ref.depth(rows), range(rows))}


def gen_tensors():
    rng = random.Random(SEED + 4)
    T = tensor_case
    cases = [
        T("1x1", [[-1]]),
        T("1x1_zero", [[0]]),
        T("1x7", rand_matrix(rng, 1, 7)),
        T("1x300", rand_matrix(rng, 1, 300)),
        T("2x1", rand_matrix(rng, 2, 1)),
        T("3x4_padding", rand_matrix(rng, 3, 4)),
        T("3x2_all_zero_padding", [[0, 0], [0, 0], [0, 0]]),
        T("4x5", rand_matrix(rng, 4, 5)),
        T("5x3_padding", rand_matrix(rng, 5, 3)),
        T("17x8_padding", rand_matrix(rng, 17, 8)),
        T("3x3_extremes", [[-128, 127, 0], [127, 0, -128], [0, -128, 127]]),
        T("2x4_all_min_all_max", [[-128] * 4, [127] * 4]),
        T("2x300", rand_matrix(rng, 2, 300)),
    ]
    return {
        "description": "Tensors (docs/protocol.md section 3): row leaf H(packed row); "
                       "rows_root over the row leaves at depth(rows), padded with Z[0]; "
                       "tensor_root = H(enc(rows, cols, rows_root)); a proof of every row.",
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------
# bisection.json


def gen_bisection():
    triples = [
        (0, 2, 2), (0, 3, 2), (0, 4, 2), (0, 5, 2), (0, 7, 2), (3, 5, 2),
        (0, 2, 4), (0, 3, 4), (0, 4, 4), (0, 5, 4), (0, 6, 4), (0, 10, 4), (17, 23, 4),
        (0, 2, 8), (0, 7, 8), (0, 8, 8), (0, 9, 8), (0, 15, 8), (0, 17, 8), (17, 30, 8),
        (0, 100, 2), (0, 100, 4), (0, 100, 8), (41, 141, 8),
        (0, 65535, 2), (0, 65535, 4), (0, 65535, 8), (12345, 65535, 4), (65533, 65535, 8),
        (0, 65535, 16),
    ]
    cases = [{"lo": lo, "hi": hi, "arity": a, "points": ref.bisection_points(lo, hi, a)}
             for lo, hi, a in triples]
    return {
        "description": "Op bisection points (docs/protocol.md section 7.1): p = min(arity, "
                       "hi - lo), q_i = lo + floor(i * (hi - lo) / p) for i = 0 ... p.",
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------
# models.json


def make_op(rng, slots, input_a, out_cols, relu):
    """A linear op reading ``slots[input_a]``, scaled per channel from its real accumulators
    so that outputs are varied (some clamped, most not)."""
    x = slots[input_a]
    k = len(x[0])
    W = rand_matrix(rng, out_cols, k)
    b = [rng.randrange(-2000, 2001) for _ in range(out_cols)]
    m, s = [], []
    for c in range(out_cols):
        accs = [b[c] + sum(a * w for a, w in zip(row, W[c])) for row in x]
        target = rng.randrange(40, 150)  # what the largest |acc| of the channel maps to
        mc, sc = pick_scale(max(abs(a) for a in accs), target, max_shift=rng.randrange(20, 40))
        m.append(mc)
        s.append(sc)
    return {"kind": ref.KIND_LINEAR, "flags": ref.FLAG_RELU if relu else 0,
            "input_a": input_a, "input_b": 0,
            "weights": W, "bias": b, "multiplier": m, "shift": s}


def build_model(rng, input_cols, rows, plan):
    """``plan``: one ``(input_a, out_cols, relu)`` per op."""
    x = rand_matrix(rng, rows, input_cols)
    model = {"input_cols": input_cols, "ops": []}
    slots = [x]
    for input_a, out_cols, relu in plan:
        model["ops"].append(make_op(rng, slots, input_a, out_cols, relu))
        slots = ref.run_model(model, x)
    return model, x


def model_entry(name, model, x):
    slots = ref.run_model(model, x)
    n_ops = len(model["ops"])
    for j, y in enumerate(slots[1:], start=1):
        flat = [v for row in y for v in row]
        assert any(-128 < v < 127 and v != 0 for v in flat), f"{name}: slot {j} degenerate"
    d = ref.state_depth(model)
    o_root = ref.ops_root(model)
    o_leaves = ref.op_leaves(model)
    ops = []
    for j, op in enumerate(model["ops"], start=1):
        W, b, m, s = op["weights"], op["bias"], op["multiplier"], op["shift"]
        desc = ref.op_descriptor(model, j)
        proof = ref.op_proof(model, j)
        assert ref.merkle_verify(o_leaves[j - 1], j - 1, proof, o_root, depth=ref.depth(n_ops))
        ops.append({
            "kind": op["kind"], "flags": op["flags"], "input_a": op["input_a"],
            "input_b": op["input_b"], "in_cols": len(W[0]), "out_cols": len(W),
            "weights": W, "bias": b, "multiplier": m, "shift": s,
            "weight_leaves": hxs(ref.weight_leaves(W, b, m, s)),
            "weights_rows_root": hx(ref.weights_header(W, b, m, s)[2]),
            "weights_root": hx(ref.weights_root(W, b, m, s)),
            "descriptor": hx(desc), "op_leaf": hx(ref.keccak256(desc)),
            "op_proof": hxs(proof),
        })
    slot_roots = [ref.tensor_root(y) for y in slots]
    s_roots = ref.state_roots(slot_roots, d)
    updates = []
    for j in range(1, n_ops + 1):
        sib = ref.slot_update_proof(slot_roots, d, j)
        assert ref.merkle_verify(bytes(32), j, sib, s_roots[j - 1], depth=d)
        assert ref.merkle_verify(slot_roots[j], j, sib, s_roots[j], depth=d)
        updates.append({"step": j, "siblings": hxs(sib)})
    return {
        "name": name, "input_cols": model["input_cols"], "output_cols": len(slots[-1][0]),
        "state_depth": d, "ops": ops, "ops_root": hx(o_root),
        "model_root": hx(ref.model_root(model)), "input": x,
        "slots": [{"values": y, "packed": hx(ref.pack_tensor(y)),
                   "rows_root": hx(ref.tensor_header(y)[2]), "tensor_root": hx(r)}
                  for y, r in zip(slots, slot_roots)],
        "state_roots": hxs(s_roots),
        "slot_update_proofs": updates,
    }


def gen_models():
    rng = random.Random(SEED + 5)
    specs = [
        ("one_op_rows1", 6, 1, [(0, 4, False)]),
        ("three_ops_rows3_op3_reads_slot1", 8, 3,
         [(0, 6, True), (1, 5, True), (1, 4, False)]),
        ("five_ops_rows5_state_depth3", 10, 5,
         [(0, 8, True), (1, 8, True), (0, 6, False), (2, 7, True), (4, 3, False)]),
    ]
    models = []
    for name, input_cols, rows, plan in specs:
        model, x = build_model(rng, input_cols, rows, plan)
        models.append(model_entry(name, model, x))
    return {
        "description": "Whole small models and their traces (docs/protocol.md sections 4-6): "
                       "ops[j-1] is op j (writes slot j); op_proof proves op_leaf at index "
                       "j-1 against ops_root; slots[] are slots 0 ... N (slot 0 = input); "
                       "state_roots are S_0 ... S_N at state_depth; slot_update_proofs[step j] "
                       "are the siblings of slot j, valid for Z[0] in S_{j-1} and for slot "
                       "j's tensor_root in S_j.",
        "models": models,
    }


# ---------------------------------------------------------------------------------------

GENERATORS = {
    "requant.json": gen_requant,
    "linear.json": gen_linear,
    "merkle.json": gen_merkle,
    "tensors.json": gen_tensors,
    "bisection.json": gen_bisection,
    "models.json": gen_models,
}


def render(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=False) + "\n"


def main(argv=None) -> int:
    return write_or_check(GENERATORS, render, "generate.py", __doc__, argv)


def write_or_check(generators: dict, render, name: str, doc: str, argv=None) -> int:
    """Writes each of ``generators``' files (``fname -> () -> obj``, as ``render(obj)``), or with
    ``--check`` regenerates them in memory and fails on a missing or differing file; shared with
    generate_transformer.py."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory and compare with the files on disk")
    parser.add_argument("--dir", type=Path, default=HERE,
                        help="directory of the JSON files (default: this script's)")
    args = parser.parse_args(argv)
    bad = []
    for fname, gen in generators.items():
        text = render(gen())
        path = args.dir / fname
        if args.check:
            if not path.is_file():
                bad.append(f"{fname}: missing")
            elif path.read_text(encoding="utf-8") != text:
                bad.append(f"{fname}: differs from the regenerated vectors")
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({len(text)} bytes)")
    if bad:
        for line in bad:
            print(f"{name} --check: {line}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{name} --check: all {len(generators)} files match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
