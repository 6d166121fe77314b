"""The golden op cases of Llama's kinds and flags (docs/protocol.md 5.12-5.14), appended to
transformer_ops.json by generate_transformer.py: ``rope``, ``mul``, ``matmul`` with
``grouped`` and ``argmax`` with ``pair``/``carry``.

Each case is ``(name, op, inputs, in_dtypes)``, inputs slot 0 and (two-input ops) slot 1, as
in tests/reference_cases.py; values are hand-picked edges (half ties of both signs, clamps at
both ends, the largest accumulators) plus random rows from the generator's own seed.
"""

import reference_models as rm
import reference_llama as rl
import reference_transformer as rt

I8, I16, I32 = rt.DTYPE_INT8, rt.DTYPE_INT16, rt.DTYPE_INT32
I16_MIN, I16_MAX = -(2**15), 2**15 - 1
M_MAX = 2**31 - 1
ONE = rl.ROPE_ONE


def rope(heads, D, table, m, s, i16=False):
    return {"kind": rl.ROPE, "flags": rt.FLAG_I16 if i16 else 0, "input_a": 0, "input_b": 0,
            "in_cols": heads * D, "out_cols": heads * D, "heads": heads, "multiplier": m, "shift": s,
            "table": table}


def mul(n, m, s, i16=False):
    return {"kind": rl.MUL, "flags": rt.FLAG_I16 if i16 else 0, "input_a": 0, "input_b": 1, "in_cols": n,
            "out_cols": n, "multiplier": m, "shift": s}


def grouped(heads, kv_heads, K, seq, r_b, m, s, causal, i16=False):
    flags = rl.FLAG_GROUPED | (rt.FLAG_CAUSAL if causal else 0) | (rt.FLAG_I16 if i16 else 0)
    return {"kind": rt.MATMUL, "flags": flags, "input_a": 0, "input_b": 1, "in_cols": heads * K,
            "out_cols": heads * r_b, "heads": heads, "seq": seq, "multiplier": m, "shift": s, "kv_heads": kv_heads}


def argmax(n, pair, offset=0):
    op = {"kind": rt.ARGMAX, "flags": (rl.FLAG_PAIR if pair else 0) | (rl.FLAG_CARRY if offset else 0),
          "input_a": 0, "input_b": 1 if offset else 0, "in_cols": n, "out_cols": 2 if pair else 1}
    return {**op, "offset": offset} if offset else op


def _rows(rng, rows, cols, lo, hi):
    return [[rng.choice((lo, hi, 0, rng.randint(lo, hi))) for _ in range(cols)] for _ in range(rows)]


def rope_cases(rng):
    ties = [[3, 0], [-3, 0], [1, 0], [-1, 0], [0, 3], [0, -3], [5, -2], [-5, 2]]
    return [
        # c = s = 1, m = 1, s = 1: acc = a - b and b + a, odd sums are half ties (+inf wins)
        ("rope_ties_both_signs", rope(1, 2, [[1, 1]], 1, 1), [ties], [I8]),
        # |entries| = 2^14, extremes: saturation at both ends, then a -2^14 entry
        ("rope_saturation_int8", rope(1, 4, [[ONE, -ONE, ONE, -ONE]], 1, 7),
         [[[127, -128, 127, -128], [-128, 127, 127, 127], [1, 0, -1, 0], [0, 0, 0, 0]]], [I8]),
        # three heads, T = 4 positions of Llama's table (D = 4, base 10000), two sequences
        ("rope_positions_T4_three_heads_two_sequences", rope(3, 4, rm.rope_table(4, 4), 1, 14),
         [_rows(rng, 8, 12, -128, 127)], [I8]),
        # |acc| = 2^30: -2^15 * 2^14 twice, written as int16 (rq16 clamps)
        ("rope_int16_acc_2^30_i16", rope(2, 2, [[ONE, -ONE], [-ONE, ONE]], 1, 14, i16=True),
         [[[I16_MIN, I16_MAX, I16_MIN, I16_MIN], [I16_MIN, I16_MIN, I16_MAX, I16_MAX],
           [I16_MAX, I16_MIN, 1, -1], [-1, 1, 0, I16_MIN]]], [I16]),
        ("rope_int16_in_int8_out", rope(1, 6, rm.rope_table(2, 6), M_MAX, 52),
         [_rows(rng, 4, 6, I16_MIN, I16_MAX)], [I16]),
        ("rope_int8_in_int16_out_half_ties", rope(2, 2, [[3, -5], [ONE, 1]], 1, 1, i16=True),
         [_rows(rng, 6, 4, -128, 127)], [I8]),
    ]


def mul_cases(rng):
    a = [[1, -1, 3, -3, 5, -5, 127, -128], [0, 7, -7, 1, 1, -1, -128, -128]]
    b = [[1, 1, 1, 1, 1, 1, 127, -128], [9, 1, 1, -1, 3, -3, 127, 1]]
    return [
        ("mul_int8_ties_both_signs", mul(8, 1, 1), [a, b], [I8, I8]),
        ("mul_int8_saturation", mul(8, 3, 1), [a, b], [I8, I8]),
        ("mul_int8_by_int16_i16", mul(8, 1, 4, i16=True), [a, _rows(rng, 2, 8, I16_MIN, I16_MAX)], [I8, I16]),
        ("mul_int16_by_int8", mul(8, 12345, 20), [_rows(rng, 2, 8, I16_MIN, I16_MAX), b], [I16, I8]),
        # -2^15 * -2^15 = 2^30, the largest product; clamps of rq16 at both ends
        ("mul_int16_by_int16_2^30_i16", mul(4, M_MAX, 46, i16=True),
         [[[I16_MIN, I16_MIN, I16_MAX, 1]], [[I16_MIN, I16_MAX, I16_MAX, -1]]], [I16, I16]),
        ("mul_int16_by_int16_m1_s1_clamps", mul(4, 1, 1),
         [[[I16_MIN, I16_MIN, I16_MAX, 3]], [[I16_MIN, I16_MAX, I16_MAX, -3]]], [I16, I16]),
    ]


def grouped_cases(rng):
    G, T, K, d_h = 2, 3, 2, 2
    return [
        # Q.K^T, H = 4 query heads over H_b = 1 key head (multi-query), causal
        ("matmul_grouped_Hb1_causal", grouped(4, 1, K, T, T, 1, 6, True),
         [_rows(rng, G * T, 4 * K, -128, 127), _rows(rng, G * T, K, -128, 127)], [I8, I8]),
        # H_b = H / 2, half ties (m = 1, s = 1), causal with the int16 mask value
        ("matmul_grouped_Hb2_ties_i16_causal", grouped(4, 2, 1, T, T, 1, 1, True, i16=True),
         [[[1, -1, 3, -3]] * (G * T), [[1, 1], [-1, 1], [3, -1]] * G], [I8, I8]),
        # P.V' with GQA: P [G*T, H*T] int16 (K = T), V' = transpose(V) [G*d_h, H_b*T], R_b = d_h
        ("matmul_grouped_PV_int16_P", grouped(4, 2, T, T, d_h, 1 << 10, 22, False),
         [_rows(rng, G * T, 4 * T, 0, I16_MAX), _rows(rng, G * d_h, 2 * T, -128, 127)], [I16, I8]),
    ]


def argmax_cases(rng):
    i32_min, i32_max = -(2**31), 2**31 - 1
    x = [[5, 5, 1], [i32_min, i32_min, i32_min], [0, 7, 7], [i32_max, 0, i32_max]]
    carry = [[5, 2], [i32_min, 0], [8, 1], [i32_max - 1, 4]]
    return [
        ("argmax_pair_ties_int32", argmax(3, True), [x], [I32]),
        ("argmax_pair_int8", argmax(4, True), [[[-128, -128, -128, -128], [3, 127, 127, -1]]], [I8]),
        ("argmax_pair_int16", argmax(2, True), [[[I16_MIN, I16_MAX], [I16_MAX, I16_MAX]]], [I16]),
        # the carried value wins ties (the earlier chunk holds the lower ids) and larger values
        ("argmax_carry_ties_keep_carried", argmax(3, False, 3), [x, carry], [I32, I32]),
        ("argmax_carry_pair_middle_chunk", argmax(3, True, 3), [x, carry], [I32, I32]),
        ("argmax_carry_offset_2^24_int8", argmax(4, True, 2**24),
         [[[1, 2, 2, 0], [-128, -128, -128, -128]], [[2, 7], [-129, 9]]], [I8, I32]),
        ("argmax_carry_random_int16", argmax(5, False, 11),
         [_rows(rng, 4, 5, -3, 3), [[rng.randint(-3, 3), rng.randrange(11)] for _ in range(4)]], [I16, I32]),
    ]


def llama_cases(rng):
    return rope_cases(rng) + mul_cases(rng) + grouped_cases(rng) + argmax_cases(rng)
