"""The per-kind edge cases of the transformer golden vectors (docs/protocol.md 5.0-5.8).

Each case is ``(name, op, inputs[, input dtypes])``; ``tests/vectors/generate_transformer.py``
runs it on the reference. The inputs are slot 0 (and slot 1 for matmul and add), so a
two-input op has ``input_a = 0``, ``input_b = 1``. Cases are chosen to break a kernel that
rounds or divides the wrong way: half ties of both signs, negative sums at every shift and
floor division, saturation at both ends, constant and zero rows, causal masks, ``S = 0``,
ties in argmax, and sums past float32's and float64's exact range.
"""

import reference_models as rm
import reference_transformer as rt

I32_MIN, I32_MAX, M_MAX = -(2**31), 2**31 - 1, 2**31 - 1
I32 = rt.DTYPE_INT32


def _op(kind, flags=0, input_b=0, **fields):
    return {"kind": kind, "flags": flags, "input_a": 0, "input_b": input_b, **fields}


def linear(W, b, m, s, flags=0):
    return _op(rt.LINEAR, flags, weights=W, bias=b, multiplier=m, shift=s)


def matmul(in_cols, out_cols, heads, seq, m, s, causal=False):
    return _op(rt.MATMUL, int(causal), 1, in_cols=in_cols, out_cols=out_cols, heads=heads,
               seq=seq, multiplier=m, shift=s)


def transpose(in_cols, out_cols, heads):
    return _op(rt.TRANSPOSE, in_cols=in_cols, out_cols=out_cols, heads=heads)


def add(n, m_a, m_b, s):
    return _op(rt.ADD, 0, 1, in_cols=n, out_cols=n, multiplier_a=m_a, multiplier_b=m_b, shift=s)


def lut(n, table):
    return _op(rt.LUT, in_cols=n, out_cols=n, table=table)


def softmax(n, heads, seq, E, causal=False, keymask=False):
    """With ``keymask`` the mask is slot 1 (``input_b = 1``), ``[rows / seq, n / heads]``."""
    flags = int(causal) | (rt.FLAG_KEYMASK if keymask else 0)
    return _op(rt.SOFTMAX, flags, int(keymask), in_cols=n, out_cols=n, heads=heads, seq=seq, exp_table=E)


def norm(gamma, beta, m, s, rms=False):
    n = len(gamma)
    return _op(rt.NORM, int(rms), in_cols=n, out_cols=n, multiplier=m, shift=s, gamma=gamma,
               beta=beta)


def embed(tok, pos, m_a, m_b, s):
    return _op(rt.EMBED, in_cols=len(pos), out_cols=len(tok[0]), token_table=tok,
               position_table=pos, multiplier_a=m_a, multiplier_b=m_b, shift=s)


def argmax(n):
    return _op(rt.ARGMAX, in_cols=n, out_cols=1)


def mat(rng, rows, cols, lo=-128, hi=127):
    return [[rng.randint(lo, hi) for _ in range(cols)] for _ in range(rows)]


def extremes(rng, rows, cols):
    return [[rng.choice((-128, 127, -128, 127, 0, -1, 1)) for _ in range(cols)] for _ in range(rows)]


IDENTITY = list(range(-128, 128))
E_HALVING = [2**23 >> d if d < 24 else 0 for d in range(256)]   # E[d] = 2^23 / 2^d
E_FLAT = [2**23] * 256                                         # the largest S: L * 2^23
E_ZERO0 = [0] + [2**23] * 255                                  # E[0] = 0: S = 0 where all tie


def edge_cases(rng):
    out = []
    c = out.append
    # --- linear wide: the int32 accumulator itself (m, s committed, unused).
    w = [[-128] * 32, [127] * 32, [rng.randint(-128, 127) for _ in range(32)]]
    bound = 128 * 128 * 32
    c(("linear_wide_bound_equality_both_signs", linear(w, [I32_MAX - bound, -(I32_MAX - 128 * 127 * 32), 0],
                                                       [1, M_MAX, 7], [1, 62, 30], rt.FLAG_WIDE),
       [[[-128] * 32, [127] * 32, [0] * 32]]))
    c(("linear_wide_negative_sums_and_ties", linear([[1, -1], [-2, 3], [5, 5]], [0, -7, 3],
                                                    [1, 1, 1], [1, 1, 1], rt.FLAG_WIDE),
       [[[3, 3], [-128, 127], [1, -1], [-1, -1]]]))
    # --- matmul: ties of rq at both signs (m = 1, s = 1: acc ±1, ±3 → 1, 0, 2, -1).
    c(("matmul_rq_half_ties_both_signs", matmul(2, 4, 1, 4, 1, 1),
       [[[1, 0], [-1, 0], [3, 0], [-3, 0]], [[1, 0], [1, 0], [1, 0], [1, 1]]]))
    c(("matmul_negative_sums_tie_m3_s2", matmul(3, 3, 1, 1, 3, 2),
       [[[-2, -1, 1], [4, -3, -3]], [[1, 2, -6], [-1, -2, -3], [5, 0, 0], [0, 0, 1], [2, 2, 2], [-1, 0, 0]]]))
    c(("matmul_saturation_both_ends_K64", matmul(64, 2, 1, 2, 1, 7),
       [[[-128] * 64, [127] * 64], [[-128] * 64, [127] * 64]]))
    c(("matmul_acc_2^20_exact_s14", matmul(64, 1, 1, 1, 1, 14), [[[-128] * 64], [[-128] * 64]]))
    c(("matmul_m_max_s62", matmul(4, 2, 1, 2, M_MAX, 62),
       [[[-128] * 4, [127, -128, 5, 0]], [[-128] * 4, [1, 1, 1, 1]]]))
    x = mat(rng, 6, 4)
    c(("matmul_qk_causal_2_heads_2_seqs_same_slot", matmul(4, 6, 2, 3, 1 << 20, 30, True), [x, x]))
    c(("matmul_pv_R_b_ne_T_a_2_heads", matmul(6, 4, 2, 3, 1 << 16, 24),
       [mat(rng, 6, 6, 0, 127), mat(rng, 4, 6)]))
    c(("matmul_causal_T_a_1_nothing_masked", matmul(3, 2, 1, 1, 5, 6, True),
       [mat(rng, 2, 3), mat(rng, 4, 3)]))
    # --- transpose.
    c(("transpose_plain_2x3", transpose(3, 2, 1), [[[1, 2, 3], [-4, -5, -6]]]))
    c(("transpose_1x1", transpose(1, 1, 1), [[[-128]]]))
    c(("transpose_per_sequence_G3", transpose(2, 2, 1), [extremes(rng, 6, 2)]))
    c(("transpose_v_layout_2_heads_2_seqs", transpose(4, 6, 2), [mat(rng, 6, 4)]))
    c(("transpose_pooling_column_to_row", transpose(1, 4, 1), [[[1], [2], [-3], [4], [127], [-128], [0], [9]]]))
    # --- add: one rounding of two rescales.
    c(("add_half_ties_both_signs_s1", add(4, 1, 1, 1), [[[1, -1, 3, -3]], [[0, 0, 0, 0]]]))
    c(("add_negative_sum_ties_s2", add(4, 1, 1, 2), [[[-1, -3, -5, 2]], [[-1, -3, 0, -4]]]))
    c(("add_saturation_both_ends", add(4, M_MAX, M_MAX, 31), [[[127, -128, 127, -128]], [[127, -128, -128, 0]]]))
    c(("add_same_slot_m_max_s62", add(3, M_MAX, M_MAX, 62), [[[-128, 127, 1]], [[-128, 127, 1]]]))
    c(("add_residual_scales", add(8, 3 << 10, 5 << 9, 12), [mat(rng, 3, 8), mat(rng, 3, 8)]))
    # --- lut.
    c(("lut_identity_every_input", lut(256, IDENTITY), [[IDENTITY]]))
    c(("lut_reversed_every_input", lut(256, [-1 - v for v in IDENTITY]), [[IDENTITY]]))
    from fractions import Fraction
    gelu = rm.gelu_table(Fraction(1, 32), Fraction(1, 32))
    c(("lut_gelu_i_bert", lut(8, gelu), [extremes(rng, 4, 8)]))
    # --- softmax.
    c(("softmax_constant_row_uniform", softmax(5, 1, 1, E_HALVING), [[[7] * 5, [-128] * 5]]))
    c(("softmax_tied_maxima", softmax(4, 1, 1, E_HALVING), [[[3, 3, 2, -128], [127, -128, 127, 126]]]))
    c(("softmax_d_255_extremes", softmax(2, 1, 1, [2**23] + [5] * 255), [[[127, -128], [-128, 127]]]))
    c(("softmax_flat_table_largest_S", softmax(6, 2, 1, E_FLAT), [mat(rng, 2, 6)]))
    c(("softmax_E0_zero_S_zero", softmax(4, 2, 1, E_ZERO0), [[[9, 9, 1, 2], [5, -5, -5, -5]]]))
    c(("softmax_L1_single_column", softmax(2, 2, 1, E_HALVING), [[[5, -128], [0, 0]]]))
    c(("softmax_causal_2_heads_2_seqs", softmax(6, 2, 3, rm.exp_table(3), True), [mat(rng, 6, 6)]))
    c(("softmax_causal_row0_only_u0", softmax(4, 1, 4, E_ZERO0, True),
       [[[1, 2, 3, 4], [-1, 5, 6, 7], [0, 0, 0, 1], [4, 3, 2, 1]]]))
    c(("softmax_floor_remainders", softmax(3, 1, 1, [7, 5, 3] + [1] * 253), [[[0, -1, -2], [0, 0, -1], [2, 0, 1]]]))
    # --- norm: LayerNorm and RMSNorm; every floor at negative values.
    c(("norm_layer_constant_rows_beta_only", norm([100, -100, 5], [7, -7, -1], 1, 1),
       [[[3, 3, 3], [-128, -128, -128]]]))
    c(("norm_rms_zero_row_beta_only", norm([9, 9], [-3, 3], 1, 1, True), [[[0, 0], [1, -1]]]))
    c(("norm_layer_negative_floor_q", norm([1, 1, 1], [0, 0, 0], 1, 1),
       [[[1, 0, 0], [-1, 0, 0], [2, -1, 0], [127, -128, 0]]]))
    c(("norm_rms_negative_floor_q", norm([1, 1, 1], [0, 0, 0], 1, 8, True), [[[1, -1, 1], [-3, 1, 1]]]))
    c(("norm_n1_layer_and_rms_cases", norm([12345], [-9], 1, 2), [[[5], [-128], [0]]]))
    gmax = (2**31 - 1 - 5) // 2**15
    room = I32_MAX - 2**15 * gmax
    c(("norm_param_bound_equality_saturation", norm([gmax, -gmax], [room, -room], 1, 20),
       [[[127, -128], [-128, 127], [0, 0]]]))
    c(("norm_layer_random_gamma_beta", norm([rng.randint(-400, 400) for _ in range(16)],
                                             [rng.randint(-30000, 30000) for _ in range(16)], 3, 16),
       [extremes(rng, 3, 16)]))
    c(("norm_rms_l2_shape", norm([1 << 10] * 8, [0] * 8, 1, 15, True), [mat(rng, 3, 8)]))
    # --- embed: in range, out of range (V, -1, int32 ends), ties, saturation.
    tok = mat(rng, 300, 4)
    tok[299] = [127, -128, 127, -128]
    pos = [[1, -1, 0, 127], [-128, 64, -64, 3], [0, 0, 0, 0]]
    c(("embed_ids_in_and_out_of_vocabulary", embed(tok, pos, 1, 1, 1),
       [[[0, 299, 300], [-1, I32_MAX, I32_MIN], [255, 256, 1]]], [I32]))
    c(("embed_saturation_and_ties", embed(tok, pos, M_MAX, M_MAX, 31), [[[299, 299, 299]]], [I32]))
    c(("embed_negative_ties_s2", embed([[-1, -3, 1, 3]], [[-1, -3, -5, 1]], 1, 1, 2), [[[0], [7]]], [I32]))
    # --- argmax: ties to the lowest index, int8 and int32.
    c(("argmax_int8_ties_lowest", argmax(5),
       [[[3, 7, 7, -1, 7], [-128] * 5, [0, 0, 1, 1, 1], [127, 127, -128, 0, 127]]]))
    c(("argmax_int32_near_ties_float32_would_merge", argmax(4),
       [[[2**30, 2**30 + 1, 2**30 + 1, 2**30 - 1], [I32_MIN, I32_MIN, I32_MIN + 1, I32_MIN],
         [I32_MAX - 1, I32_MAX, I32_MAX, 0]]], [I32]))
    c(("argmax_n1", argmax(1), [[[-5], [5]]]))
    # --- softmax with keymask (slot 1 = the mask, one row per sequence, one column per key);
    # appended last so that every earlier case keeps its random draws.
    x = mat(rng, 6, 8)
    c(("softmax_keymask_2_heads_3_seqs", softmax(8, 2, 2, rm.exp_table(3), keymask=True),
       [x, [[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]]]))
    c(("softmax_keymask_fully_masked_segment_and_any_nonzero_valid", softmax(6, 2, 1, E_HALVING, keymask=True),
       [[[5, 9, -128, 127, 0, 0], [1, 2, 3, 4, 5, 6]], [[0, 0, 0], [-128, 127, 0]]]))
    c(("softmax_keymask_and_causal_position_0_fully_masked", softmax(4, 1, 4, rm.exp_table(4), True, True),
       [mat(rng, 8, 4), [[0, 1, 1, 0], [1, 1, 0, 1]]]))
    c(("softmax_keymask_masked_keys_above_the_max", softmax(4, 1, 1, E_HALVING, keymask=True),
       [[[127, -128, 127, -100], [127, 126, -128, -128]], [[0, 1, 0, 1], [0, 0, 1, 1]]]))
    # --- the encoder's mask slot and masked sum pooling (5.9).
    c(("embed_key_mask_from_ids_pad_0", embed([[0], [1], [1], [1]], [[0]] * 5, 2, 1, 1),
       [[[2, 3, 0, 0, 0], [1, 0, 3, 7, -1]]], [I32]))
    h = mat(rng, 4, 4)  # transpose(h) of G = 2 sequences of T = 4 tokens, d = 2: [G d, T]
    c(("matmul_masked_sum_pooling_T_a_1", matmul(4, 2, 1, 1, 1, 3),
       [[[1, 1, 0, 0], [1, 1, 1, 1]], h]))
    return out


def large_cases(rng):
    n = 16384
    # Half -128 and half 127 in LayerNorm: V = n^3 * 127.5^2 ≈ 2^55.7 > 2^53.
    x = [[(-128, 127)[(j * 7919) % 3 != 0] for j in range(n)]]
    K = 2048
    # Mostly same-sign products of magnitude ~2^14: the sum passes 2^24 and a float32
    # accumulator loses its low bits.
    a = [[rng.choice((-128, 127, -127, 125)) for _ in range(K)]]
    b = [[v if rng.randrange(10) else -v - 1 for v in a[0]]]
    w = [[max(-128, v - rng.randrange(2)) if rng.randrange(10) else -v - 1 for v in a[0]]]
    L = 2048
    return [
        ("norm_layer_n_max_cols_V_past_2^53", norm([3] * n, [0] * n, 1, 9), [x]),
        ("matmul_K2048_sum_past_2^24", matmul(K, 1, 1, 1, 1, 24), [a, b]),
        ("linear_wide_k2048_sum_past_2^24", linear(w, [-12345], [1], [1], rt.FLAG_WIDE), [a]),
        ("softmax_L2048_random_row", softmax(L, 1, 1, rm.exp_table(5)),
         [[[rng.randint(-128, 127) for _ in range(L)]]]),
    ]


def bad_ops():
    """``(op, input dtype, message)``: one-op models (input of 4 columns) that break a rule of
    5.1-5.10; the reference raises ``ValueError`` matching ``message``."""
    return [
        ({**transpose(4, 4, 1), "kind": 12}, 0, "unknown kind"),
        ({**transpose(4, 4, 1), "flags": 1}, 0, "flags"),
        ({**softmax(4, 1, 1, E_HALVING), "flags": 4}, 0, "flags"),
        ({**softmax(4, 1, 1, E_HALVING), "input_b": 1}, 0, "input_b"),
        ({**softmax(4, 2, 1, E_HALVING, keymask=True), "input_b": 0}, 0, "columns"),
        ({**softmax(4, 1, 1, E_HALVING, keymask=True), "input_b": 0}, 1, "dtype"),
        ({**lut(4, IDENTITY), "input_b": 1}, 0, "input_b"),
        (linear([[1] * 4], [0], [1], [1], 3), 0, "ReLU and wide"),
        (linear([[1] * 4], [0], [1], [1]), 1, "dtype"),
        (lut(4, IDENTITY), 1, "dtype"),
        (embed([[1] * 2], [[0] * 2] * 4, 1, 1, 1), 0, "dtype"),
        (lut(4, IDENTITY[:255]), 0, "256"),
        (lut(4, [128] + IDENTITY[1:]), 0, "outside"),
        (softmax(4, 1, 1, [2**23 + 1] + E_HALVING[1:]), 0, "outside"),
        (softmax(4, 3, 1, E_HALVING), 0, "divide"),
        ({**matmul(4, 5, 2, 1, 1, 1), "input_b": 0}, 0, "divide"),
        (norm([2**16] * 4, [0] * 4, 1, 1), 0, "2\\^15"),
        (norm([1] * 3, [0] * 3, 1, 1), 0, "in_cols"),
        ({**add(4, 1, 1, 63), "input_b": 0}, 0, "shift"),
        ({**argmax(4), "out_cols": 2}, 0, "out_cols = 1"),
        ({**matmul(4, 4, 1, 65537, 1, 1), "input_b": 0}, 0, "T_a"),
        (softmax(4, 1, 65537, E_HALVING), 0, "seq \\(T\\)"),
        ({**lut(4, IDENTITY), "out_cols": 5}, 0, "out_cols"),
    ]


# ---------------------------------------------------------------------------------------
# 16-bit activations (5.0): flag i16 on every kind that writes activations, int16 inputs on
# every kind that reads them. Appended after the int8 cases (their entries stay unchanged).

I16, I8 = rt.DTYPE_INT16, rt.DTYPE_INT8
I16_MIN, I16_MAX = -(2**15), 2**15 - 1
F16 = rt.FLAG_I16


def _i16(op):
    return {**op, "flags": op["flags"] | F16}


def int16_cases(rng):
    out = []
    c = out.append
    # --- linear: rq16 ties and clamps; an int16 input at the accumulator bound's equality.
    c(("linear_i16_rq16_ties_and_clamps", linear([[1], [127]], [0, 0], [1, M_MAX], [1, 20], F16),
       [[[1], [-1], [3], [-3], [127], [-128]]]))
    c(("linear_i16_relu", linear([[1, 1], [-1, 2]], [0, -5], [M_MAX, 3], [20, 1], F16 | rt.FLAG_RELU),
       [[[127, 127], [-128, 5], [0, 0]]]))
    w = [[2] * 2 + [1] * 3]  # sum |W| = 7
    room = I32_MAX - 2**15 * 7
    c(("linear_int16_input_bound_equality", linear(w, [room], [1], [16], F16),
       [[[I16_MAX] * 5, [I16_MIN] * 5, [0] * 5]], [I16]))
    c(("linear_int16_in_int16_out_negative_ties", linear([[1, 0], [3, -1]], [0, 1], [1, 1], [1, 2], F16),
       [[[-3, 0], [I16_MIN, I16_MAX], [-1, -1], [255, 256]]], [I16]))
    c(("linear_wide_int16_input", linear([[-128, 127, 1], [5, -5, 0]], [3, -3], [1, 1], [1, 1], rt.FLAG_WIDE),
       [[[I16_MIN, I16_MAX, -1], [I16_MAX, I16_MIN, 256], [-256, 255, 0]]], [I16]))
    # --- matmul: one int16 operand at K = 511, the largest; rq16; the causal mask at -2^15.
    c(("matmul_int16_A_K511_largest_sum", _i16(matmul(511, 2, 1, 2, 1, 16)),
       [[[I16_MIN] * 511, [I16_MAX] * 511], [[-128] * 511, [127] * 511]], [I16, I8]))
    c(("matmul_int16_B_rq16_ties", matmul(2, 4, 1, 4, 1, 1),
       [[[1, 0], [-1, 0], [3, 0], [-3, 0]], [[1, 0], [1, 0], [1, 0], [I16_MAX, I16_MIN]]], [I8, I16]))
    c(("matmul_i16_causal_masks_at_minus_2^15", _i16(matmul(4, 6, 2, 3, 1 << 20, 16, True)),
       [mat(rng, 6, 4), mat(rng, 6, 4)]))
    c(("matmul_i16_pv_probabilities", _i16(matmul(6, 4, 2, 3, 1 << 16, 24)),
       [mat(rng, 6, 6, 0, I16_MAX), mat(rng, 4, 6)], [I16, I8]))
    # --- transpose keeps the dtype.
    c(("transpose_int16_v_layout", transpose(4, 6, 2), [mat(rng, 6, 4, I16_MIN, I16_MAX)], [I16]))
    # --- add: int16 and int8 summands, rq16 ties and clamps; int16 into int8.
    c(("add_i16_half_ties_both_signs_s1", _i16(add(4, 1, 1, 1)),
       [[[1, -1, 3, -3]], [[0, 0, 0, 0]]], [I16, I16]))
    c(("add_i16_saturation_both_ends", _i16(add(4, M_MAX, M_MAX, 31)),
       [[[I16_MAX, I16_MIN, I16_MAX, I16_MIN]], [[127, -128, -128, 0]]], [I16, I8]))
    c(("add_int16_inputs_into_int8", add(4, 1, 3, 9), [[[I16_MAX, I16_MIN, 300, -300]], [[1, -1, 2, -700]]],
       [I16, I16]))
    c(("add_i16_residual_scales", _i16(add(8, 3 << 10, 5 << 17, 12)),
       [mat(rng, 3, 8, I16_MIN, I16_MAX), mat(rng, 3, 8)], [I16, I8]))
    # --- lut: a table of int16 entries (512 bytes, big-endian).
    c(("lut_i16_every_input", _i16(lut(256, [v * 256 + (v & 255) for v in IDENTITY])), [[IDENTITY]]))
    c(("lut_i16_extreme_entries", _i16(lut(4, [(I16_MIN, I16_MAX, 0, -1)[v % 4] for v in range(256)])),
       [extremes(rng, 3, 4)]))
    # --- softmax: floor(32767 e / S).
    c(("softmax_i16_tied_maxima", _i16(softmax(4, 1, 1, E_HALVING)), [[[3, 3, 2, -128], [127, -128, 127, 126]]]))
    c(("softmax_i16_floor_remainders", _i16(softmax(3, 1, 1, [7, 5, 3] + [1] * 253)),
       [[[0, -1, -2], [0, 0, -1], [2, 0, 1]]]))
    c(("softmax_i16_causal_2_heads", _i16(softmax(6, 2, 3, rm.exp_table(3), True)), [mat(rng, 6, 6)]))
    c(("softmax_i16_E0_zero_S_zero", _i16(softmax(4, 2, 1, E_ZERO0)), [[[9, 9, 1, 2], [5, -5, -5, -5]]]))
    # --- norm: int16 rows (constant, extremes, negative floors); rq16 outputs.
    c(("norm_int16_constant_rows_beta_only", norm([100, -100, 5], [7, -7, -1], 1, 1),
       [[[I16_MAX] * 3, [I16_MIN] * 3]], [I16]))
    c(("norm_int16_layer_extremes", _i16(norm([1 << 10] * 4, [0, 1, -1, 0], 1, 10)),
       [[[I16_MIN, I16_MAX, I16_MIN, I16_MAX], [I16_MIN, I16_MIN, I16_MIN, I16_MAX], [1, 0, 0, 0]]], [I16]))
    c(("norm_int16_rms_negative_floor", _i16(norm([1, 1, 1], [0, 0, 0], 1, 1, True)),
       [[[1, -1, 1], [-3, 1, 1], [I16_MIN, 0, 0]]], [I16]))
    gmax = (2**31 - 1 - 5) // 2**15
    room = I32_MAX - 2**15 * gmax
    c(("norm_i16_saturation_both_ends", _i16(norm([gmax, -gmax], [room, -room], 1, 12)),
       [[[127, -128], [-128, 127], [0, 0]]]))
    # --- embed: rq16.
    tok = [[127, -128, 1, -1], [0, 5, -5, 3]]
    pos = [[1, -1, 0, 127], [-128, 64, -64, 3]]
    c(("embed_i16_saturation_and_ties", _i16(embed(tok, pos, M_MAX, M_MAX, 23)), [[[0, 1], [2, -1]]], [I32]))
    c(("embed_i16_negative_ties_s1", _i16(embed([[-1, -3, 1, 3]], [[0, 0, 0, -1]], 1, 1, 1)), [[[0]]], [I32]))
    tok16 = [[I16_MIN, I16_MAX, 1, -1], [I16_MAX, I16_MAX, -300, 256], [-2, 3, I16_MIN, 0]]
    pos16 = [[I16_MIN, I16_MAX, 0, 255], [I16_MAX, I16_MIN, -256, -1]]
    c(("embed_i16_int16_tables_extremes", _i16(embed(tok16, pos16, M_MAX, M_MAX, 32)),
       [[[0, 1], [2, 3], [-1, 1]]], [I32]))
    # --- argmax of int16.
    c(("argmax_int16_ties_lowest", argmax(4),
       [[[I16_MIN, I16_MAX, I16_MAX, 0], [I16_MIN] * 4, [300, 299, 300, -300]]], [I16]))
    return out


def large_int16_cases():
    n = 1024
    return [
        # Alternating -2^15 / 2^15 - 1 over n = 1024: V = n^3 (2^16 - 1)^2 / 4 ≈ 2^60, int64 only.
        ("norm_int16_n1024_V_past_2^53", _i16(norm([3] * n, [0] * n, 1, 9)),
         [[[(I16_MIN, I16_MAX)[j % 2] for j in range(n)]]], [I16]),
        ("matmul_int16_K511_sum_past_2^24", matmul(511, 1, 1, 1, 1, 24),
         [[[(I16_MIN, I16_MAX, -7)[j % 3] for j in range(511)]], [[(-128, 127, 5)[j % 3] for j in range(511)]]],
         [I16, I8]),
    ]


def bad_int16_models():
    """``(model, message)``: two-op models whose second op breaks a rule an int16 input adds
    (5.0); slot 1 is an int16 embedding of 4 columns."""
    def emb(d, flags=F16):  # token ids [B, 4] -> [4B, d]
        return {**embed([[1] * d], [[0] * d] * 4, 1, 1, 1), "flags": flags}

    first = emb(4)
    wide = [[1] * 4] * 2
    return [
        # 2^15 * sum|W| > 2^31 - 1 (sum|W| = 76200), though 128 * sum|W| is far from it
        ([emb(600), {**linear([[127] * 600], [0], [1], [1]), "input_a": 1}], "accumulator bound"),
        ([first, {**lut(4, IDENTITY), "input_a": 1}], "dtype"),
        ([first, {**softmax(4, 1, 1, E_HALVING), "input_a": 1}], "dtype"),
        ([first, {**matmul(4, 1, 1, 1, 1, 1), "input_a": 1, "input_b": 1}], "at most one int16"),
        ([first, {**linear(wide, [0, 0], [1, 1], [1, 1], rt.FLAG_WIDE | F16), "input_a": 1}], "wide and i16"),
        ([first, {**transpose(4, 4, 1), "flags": F16, "input_a": 1}], "flags"),
        ([emb(512), emb(512, 0), {**matmul(512, 1, 1, 1, 1, 1), "input_a": 1, "input_b": 2}], "K = 512"),
        ([emb(1025), {**norm([1] * 1025, [0] * 1025, 1, 1), "input_a": 1}], "at most 1024"),
    ]
