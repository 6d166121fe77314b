"""The transformer kernels' fast and fallback paths, bit for bit against the independent
reference (tests/reference_kinds.py), the shape and range errors of a model of these kinds, and bad inputs.

tests/test_transformer_exact.py fuzzes every kind on random shapes; this file forces the
paths a random case rarely reaches: float32 blocking beyond k = 1024, the int64 fallbacks
when float64 would not be exact (large multipliers and shifts, rows wider than 4096), the
integer square root at perfect squares, and the extremes of every range.
"""

import random

import pytest
import torch

import reference_kinds as rk
from helpers import run_dict, small_transformer
from referee import kernels, ops
from referee.errors import InputError, ModelCompileError
from referee.executor import Executor, run_op
from referee.graph_dict import model_from_dict
from referee.model import IntegerModel, LinearOp


def i8(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int8)


def rand_rows(rng: random.Random, rows: int, cols: int, extreme: bool = False) -> list[list[int]]:
    pick = (lambda: rng.choice([-128, 127, -127, 0])) if extreme else (lambda: rng.randint(-128, 127))
    return [[pick() for _ in range(cols)] for _ in range(rows)]


@pytest.mark.parametrize("m, s", [(1, 1), (3, 7), ((1 << 31) - 1, 62), ((1 << 31) - 1, 40), (1 << 20, 30)])
@pytest.mark.parametrize("kk", [1, 1024, 1025, 2500])
def test_matmul_blocks_and_requant_paths_match_reference_succeeds(kk, m, s):
    rng = random.Random(kk * 7 + s)
    a, b = rand_rows(rng, 2, kk, extreme=kk > 1000), rand_rows(rng, 3, kk, extreme=kk > 1000)
    op = ops.MatmulOp(0, 0, kk, 3, heads=1, seq=2, multiplier=m, shift=s, causal=True)
    expected = rk.matmul(a, b, 1, 2, 3, m, s, True)
    assert kernels.Matmul(op, torch.device("cpu")).fused == (kk * (1 << 14) * m + (1 << (s - 1)) + (1 << (s + 7)) < 1 << 53)
    assert run_op(op, [i8(a), i8(b)]).tolist() == expected


def test_matmul_all_minus_128_saturates_largest_sum_succeeds():
    a = [[-128] * 4096]
    op = ops.MatmulOp(0, 0, 4096, 1, 1, 1, 1, 1)
    assert run_op(op, [i8(a), i8(a)]).tolist() == rk.matmul(a, a, 1, 1, 1, 1, 1, False) == [[127]]
    op = ops.MatmulOp(0, 0, 4096, 1, 1, 1, (1 << 31) - 1, 62)  # 2^26 * (2^31 - 1) / 2^62 -> 0 or 1
    assert run_op(op, [i8(a), i8(a)]).tolist() == rk.matmul(a, a, 1, 1, 1, (1 << 31) - 1, 62, False)


@pytest.mark.parametrize("ma, mb, s", [(1, 1, 1), ((1 << 31) - 1, (1 << 31) - 1, 62), ((1 << 31) - 1, 1, 31),
                                       (5, 3, 2), (1 << 30, 1 << 30, 45)])
def test_add_float64_and_int64_paths_match_reference_succeeds(ma, mb, s):
    rng = random.Random(ma + s)
    a, b = rand_rows(rng, 4, 33, extreme=True), rand_rows(rng, 4, 33)
    op = ops.AddOp(0, 0, 33, ma, mb, s)
    assert run_op(op, [i8(a), i8(b)]).tolist() == rk.add(a, b, ma, mb, s)


@pytest.mark.parametrize("cols", [1, 2, 384, 4096, 4097, 16384])
@pytest.mark.parametrize("rms", [False, True])
def test_norm_paths_and_extremes_match_reference_succeeds(cols, rms):
    rng = random.Random(cols * 2 + rms)
    rows = [[rng.choice([-128, 127]) for _ in range(cols)],          # largest variance
            [5] * cols,                                              # constant row: rho = 0 (LayerNorm)
            [0] * cols,                                              # zero row
            [rng.randint(-128, 127) for _ in range(cols)],
            [-128] + [127] * (cols - 1)]
    gamma = [rng.choice([-(1 << 15), (1 << 15) - 1, rng.randint(-999, 999)]) for _ in range(cols)]
    beta = [rng.randint(-(1 << 30), 1 << 30) for _ in range(cols)]
    for m, s in [(1 << 20, 36), ((1 << 31) - 1, 62), (7, 3)]:
        op = ops.NormOp(0, torch.tensor(gamma), torch.tensor(beta), m, s, rms=rms)
        assert run_op(op, [i8(rows)]).tolist() == rk.norm(rows, gamma, beta, m, s, rms), (m, s)


def test_isqrt_at_perfect_squares_and_neighbours_succeeds():
    roots = [0, 1, 2, 3, (1 << 26) - 1, 1 << 26, (1 << 29) - 1, 123456789]
    values = sorted({max(0, r * r + d) for r in roots for d in (-1, 0, 1)} | {(1 << 58) - 1})
    got = kernels.isqrt_(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [rk.isqrt(v) for v in values]
    small = [v for v in values if v < 1 << 52]
    assert kernels.isqrt_(torch.tensor(small, dtype=torch.float64)).tolist() == [rk.isqrt(v) for v in small]


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_extreme_rows_and_tables_match_reference_succeeds(causal):
    length, heads, seq = 512, 2, 4
    rows = [[-128] * (heads * length), [127] * (heads * length),
            [127 if c % 2 else -128 for c in range(heads * length)], [c % 256 - 128 for c in range(heads * length)]]
    for table in ([1 << 23] * 256, [0] * 256, [0] + [1 << 23] * 255, [(1 << 23) >> min(d, 23) for d in range(256)]):
        op = ops.SoftmaxOp(0, heads * length, heads, seq, torch.tensor(table, dtype=torch.int32), causal=causal)
        assert run_op(op, [i8(rows)]).tolist() == rk.softmax(rows, heads, seq, table, causal)


def test_embed_ids_out_of_vocabulary_and_saturation_succeeds():
    tok, pos = [[127, -128], [-128, 127], [1, -1]], [[127, 127], [-128, -128]]
    ids = [[0, 3], [-1, 2], [2**31 - 1, -2**31]]
    op = ops.EmbedOp(0, i8(tok), i8(pos), (1 << 31) - 1, (1 << 31) - 1, 30)
    got = run_op(op, [torch.tensor(ids, dtype=torch.int32)])
    assert got.tolist() == rk.embed(ids, tok, pos, (1 << 31) - 1, (1 << 31) - 1, 30)


def test_wide_linear_and_argmax_ties_match_reference_succeeds():
    rng = random.Random(3)
    w = rand_rows(rng, 9, 1500, extreme=True)
    op = LinearOp(0, i8(w), torch.full((9,), -(1 << 31) + 1 + 128 * 1500 * 128, dtype=torch.int32),
                  torch.ones(9, dtype=torch.int32), torch.ones(9, dtype=torch.int32), relu=False, wide=True)
    x = rand_rows(rng, 5, 1500, extreme=True)
    logits = run_op(op, [i8(x)])
    assert logits.dtype == torch.int32
    assert logits.tolist() == rk.linear_wide(x, w, op.bias.tolist(), [1] * 9, [1] * 9)
    ties = torch.tensor([[5, 5, 5], [-(1 << 31), -(1 << 31), 0], [2, 7, 7]], dtype=torch.int32)
    assert run_op(ops.ArgmaxOp(0, 3), [ties]).tolist() == rk.argmax(ties.tolist()) == [[0], [2], [1]]
    many = torch.tensor(rand_rows(rng, 50, 40, extreme=True), dtype=torch.int8)  # ties everywhere
    assert kernels.lowest_argmax(many).tolist() == run_op(ops.ArgmaxOp(0, 40), [many]).tolist() == rk.argmax(
        many.tolist(), -128, 127)


def _attention_model(seq: int = 4) -> IntegerModel:
    table = torch.tensor([max(0, (1 << 23) - 40000 * d) for d in range(256)], dtype=torch.int32)
    return IntegerModel(8, [
        ops.MatmulOp(0, 0, 8, 2 * seq, 2, seq, 1 << 20, 24, causal=True),
        ops.SoftmaxOp(1, 2 * seq, 2, seq, table, causal=True),
        ops.TransposeOp(0, 8, 2 * seq, 2),
        ops.MatmulOp(2, 3, 2 * seq, 8, 2, seq, 1 << 20, 27),
    ]).validate()


def test_graph_rows_that_break_a_shape_rule_are_refused_succeeds():
    ex = Executor(_attention_model(), "cpu")
    assert [s.shape for s in ex.run(torch.zeros(8, 8, dtype=torch.int8))][-1] == (8, 8)
    with pytest.raises(InputError, match="op 1 cannot run on an input of 6 rows: A has 6 rows, not a multiple of seq = 4"):
        ex.run(torch.zeros(6, 8, dtype=torch.int8))
    with pytest.raises(InputError, match="must be an int8 tensor, got torch.int32"):
        ex.run(torch.zeros(8, 8, dtype=torch.int32))
    embed = IntegerModel(300, [ops.EmbedOp(0, torch.zeros(2, 4, dtype=torch.int8), torch.zeros(300, 4, dtype=torch.int8),
                                         1, 1, 1)], input_dtype=1).validate()
    with pytest.raises(InputError, match="op 1 would write 65700 rows"):
        embed.slot_shapes(219)


@pytest.mark.parametrize("build, message", [
    (lambda: ops.MatmulOp(0, 0, 8, 6, 4, 2, 1, 1), "heads = 4 must be >= 1 and divide out_cols = 6"),
    (lambda: ops.SoftmaxOp(0, 8, 2, 4, torch.full((256,), (1 << 23) + 1, dtype=torch.int32)), "exp_table has an entry"),
    (lambda: ops.NormOp(0, torch.tensor([1 << 16]), torch.tensor([0]), 1, 1), r"column 0: 2\^15 \* \|gamma\|"),
    (lambda: ops.AddOp(0, 0, 8, 0, 1, 1), r"multiplier_a = 0 is outside \[1, 2147483647\]"),
    (lambda: ops.MatmulOp(0, 0, 8, 8, 1, 2, 1, 63), r"shift = 63 is outside \[1, 62\]"),
    (lambda: ops.TransposeOp(0, 8, 8, 3), "heads = 3 must be >= 1 and divide in_cols = 8"),
])
def test_graph_ranges_are_enforced_with_the_op_named_fails(build, message):
    with pytest.raises(ModelCompileError, match="op 1.*" + message):
        IntegerModel(8, [build()]).validate()


def test_graph_dtype_and_slot_rules_fails():
    with pytest.raises(ModelCompileError, match="op 1: cannot read slot 0 of dtype int8"):
        IntegerModel(4, [ops.EmbedOp(0, torch.zeros(2, 4, dtype=torch.int8), torch.zeros(4, 4, dtype=torch.int8),
                                   1, 1, 1)]).validate()
    with pytest.raises(ModelCompileError, match="op 2: input slot 2 is not an earlier slot"):
        IntegerModel(8, [ops.LutOp(0, 8, torch.zeros(256, dtype=torch.int8)), ops.AddOp(1, 2, 8, 1, 1, 1)]).validate()
    with pytest.raises(ModelCompileError, match="op 1: takes 8 columns but slot 0 has 4"):
        IntegerModel(4, [ops.ArgmaxOp(0, 8)]).validate()


def test_keymask_softmax_mask_slot_rules_fails():
    """The mask slot of a keymask softmax (5.5): [rows / T, L] int8, named only with the flag."""
    table = torch.full((256,), 1 << 20, dtype=torch.int32)
    two = ops.TransposeOp(0, 8, 2)  # slot 1: [4 rows, 2] int8
    masked = IntegerModel(8, [two, ops.SoftmaxOp(0, 8, 4, 4, table, keymask=True, input_b=1)]).validate()
    with pytest.raises(InputError, match="op 2 cannot run on an input of 8 rows: the mask has 32 rows; "
                                         "2 sequences of 4 rows need 2, one per sequence"):
        masked.slot_shapes(8)
    with pytest.raises(ModelCompileError, match="op 2: takes 4 columns but slot 1 has 2"):
        IntegerModel(8, [two, ops.SoftmaxOp(0, 8, 2, 4, table, keymask=True, input_b=1)]).validate()
    with pytest.raises(ModelCompileError, match="op 1: input_b = 1 names a mask slot, but the softmax has no keymask"):
        IntegerModel(8, [ops.SoftmaxOp(0, 8, 2, 4, table, input_b=1)]).validate()
    op = ops.SoftmaxOp(0, 8, 4, 4, table, keymask=True, input_b=1)
    with pytest.raises(InputError, match="SoftmaxOp takes 2 inputs, got 1"):
        run_op(op, [torch.zeros(8, 8, dtype=torch.int8)])
    with pytest.raises(InputError, match="does not fit its 2 columns"):
        run_op(op, [torch.zeros(8, 8, dtype=torch.int8), torch.zeros(2, 8, dtype=torch.int8)])
    with pytest.raises(InputError, match="SoftmaxOp cannot read torch.int32"):
        run_op(op, [torch.zeros(8, 8, dtype=torch.int8), torch.zeros(2, 2, dtype=torch.int32)])
    # A mask row of zeros is a sequence with no valid key: its segments are zero (S = 0).
    out = run_op(op, [torch.zeros(8, 8, dtype=torch.int8), torch.tensor([[1, 0], [0, 0]], dtype=torch.int8)])
    assert out[:4].tolist() == [[127, 0] * 4] * 4 and out[4:].tolist() == [[0] * 8] * 4


@pytest.mark.parametrize("rows, k, n", [(1, 1, 2), (2, 1, 9), (1, 8, 8), (5, 16, 24), (40, 13, 7), (33, 64, 1)])
@pytest.mark.parametrize("backend", ["int_mm", "float", "auto"])
def test_linear_every_backend_at_small_shapes_matches_reference_succeeds(rows, k, n, backend):
    """torch 2.13's CPU _int_mm returns zeros at k = 1, n >= 2: the kernels must never reach it there."""
    rng = random.Random(rows * 100 + k * 10 + n)
    w, x = rand_rows(rng, n, k), rand_rows(rng, rows, k)
    bias = [rng.randint(-5000, 5000) for _ in range(n)]
    for wide in (False, True):
        op = LinearOp(0, i8(w), torch.tensor(bias, dtype=torch.int32), torch.full((n,), 12345, dtype=torch.int32),
                      torch.full((n,), 17, dtype=torch.int32), relu=False, wide=wide)
        expected = rk.linear_wide(x, w, bias, [12345] * n, [17] * n) if wide else \
            [[rk.rq(a, 12345, 17) for a in row] for row in rk.linear_wide(x, w, bias, [12345] * n, [17] * n)]
        assert run_op(op, [i8(x)], backend=backend).tolist() == expected, wide


# ---------------------------------------------------------------------------------------
# Bad input, as an outside verifier would probe it: refused with one clear error, never wrapped

LINEAR_DICT = {"input_cols": 2, "ops": [{"kind": 1, "flags": 0, "input_a": 0, "weights": [[1, 1]], "bias": [0],
                                          "multiplier": [1], "shift": [1]}]}
ARGMAX_DICT = {"input_cols": 2, "input_dtype": 1, "ops": [{"kind": 9, "flags": 0, "input_a": 0, "in_cols": 2,
                                                             "out_cols": 1}]}


@pytest.mark.parametrize("model, x, message", [
    (LINEAR_DICT, [[128, 0]], r"row 0, column 0 is 128; inputs must be integers in \[-128, 127\]"),
    (LINEAR_DICT, [[0, -129]], r"row 0, column 1 is -129"),
    (LINEAR_DICT, [[2**32 + 3, 0]], r"row 0, column 0 is 4294967299"),
    (ARGMAX_DICT, [[2**31, 0]], r"is 2147483648; inputs must be integers in \[-2147483648, 2147483647\]"),
    (LINEAR_DICT, [[1, 2], [3]], r"rows have different lengths \[1, 2\]"),
    (LINEAR_DICT, [[1, 2.0]], r"row 0, column 1 is 2.0"),
])
def test_list_input_out_of_range_or_ragged_is_refused_fails(model, x, message):
    with pytest.raises(InputError, match=message):
        run_dict(model, x)


@pytest.mark.parametrize("table, message", [([], "token_table must be a 2-D int8 tensor"),
                                            ([[]], r"position table \(2, 4\) does not match width 0")])
def test_embed_with_empty_token_table_is_refused_fails(table, message):
    d = {"input_cols": 2, "input_dtype": 1, "ops": [{
        "kind": 8, "flags": 0, "input_a": 0, "in_cols": 2, "out_cols": 4, "token_table": table,
        "position_table": [[0] * 4] * 2, "multiplier_a": 1, "multiplier_b": 1, "shift": 1}]}
    with pytest.raises(ModelCompileError, match=message):
        model_from_dict(d)
    with pytest.raises(ModelCompileError, match="vocabulary 0"):
        IntegerModel(2, [ops.EmbedOp(0, torch.zeros(0, 4, dtype=torch.int8), torch.zeros(2, 4, dtype=torch.int8),
                                     1, 1, 1)], input_dtype=1).validate()


def test_non_contiguous_token_ids_run_like_contiguous_succeeds():
    model = small_transformer("decoder")
    ids = torch.randint(0, 40, (model.input_cols, 3), dtype=torch.int32, generator=torch.Generator().manual_seed(4)).t()
    assert not ids.is_contiguous()
    executor = Executor(model, "cpu")
    got, expected = executor.run(ids), executor.run(ids.contiguous())
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


# ---------------------------------------------------------------------------------------
# 16-bit activations (protocol 5.0): int16 inputs through every linear kernel (two int8
# halves), the float64 and int64 paths of add, matmul and norm at int16 extremes, rq16

I16_MIN, I16_MAX = -(1 << 15), (1 << 15) - 1


def i16(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int16)


def rand16(rng: random.Random, rows: int, cols: int) -> list[list[int]]:
    pick = lambda: rng.choice([I16_MIN, I16_MAX, -1, 0, 255, 256, -256, rng.randint(I16_MIN, I16_MAX)])  # noqa: E731
    return [[pick() for _ in range(cols)] for _ in range(rows)]


@pytest.mark.parametrize("backend", ["int_mm", "float", "int64"])
@pytest.mark.parametrize("fused64_max_k", [0, 512])
@pytest.mark.parametrize("wide", [True, False])
def test_linear_int16_every_value_every_kernel_succeeds(backend, fused64_max_k, wide):
    # Column 0 of x runs through all 65,536 int16 values (the others extremes), into weights that
    # copy, negate and scale it: the split x = 256 hi + lo + 128 and both joins (float64, and
    # int32 on int_mm) are exact for every value, on every kernel, wide (acc itself) or rq16.
    rng = random.Random(11)
    x = torch.tensor(rand16(rng, 1 << 16, 8), dtype=torch.int16)
    x[:, 0] = torch.arange(I16_MIN, I16_MAX + 1, dtype=torch.int32).to(torch.int16)
    w = [[1] + [0] * 7, [-1] + [0] * 7, [127, 3, -3, 0, 0, 0, 0, 1], [-128] * 8] + rand_rows(rng, 4, 8)
    n = len(w)
    op = LinearOp(1, i8(w), torch.tensor([0, 5, -7, 11, 0, 0, 1, -1], dtype=torch.int32),
                  torch.full((n,), 1 << 20, dtype=torch.int32), torch.full((n,), 30, dtype=torch.int32),
                  relu=False, wide=wide, i16=not wide)
    model = IntegerModel(1, [ops.EmbedOp(0, i16([[0] * 8]), i16([[0] * 8]), 1, 1, 1, i16=True), op],
                         input_dtype=1).validate()
    got = Executor(model, "cpu", backend, fused64_max_k).kernels[1](x)
    acc = x.to(torch.int64) @ i8(w).to(torch.int64).t() + op.bias.to(torch.int64)
    want = acc.to(torch.int32) if wide else ((acc * (1 << 20) + (1 << 29)) >> 30).clamp(I16_MIN, I16_MAX).to(torch.int16)
    assert torch.equal(got, want)


@pytest.mark.parametrize("rows, k, n", [(1, 1, 2), (2, 1, 9), (5, 16, 24), (40, 13, 7), (33, 64, 8), (3, 600, 5)])
@pytest.mark.parametrize("backend", ["int_mm", "float", "int64", "auto"])
def test_linear_int16_input_every_backend_matches_reference_succeeds(rows, k, n, backend):
    rng = random.Random(rows * 1000 + k * 10 + n)
    w = [[rng.randint(-128, 127) // max(1, k // 400) for _ in range(k)] for _ in range(n)]
    x = rand16(rng, rows, k)
    room = [(1 << 31) - 1 - (1 << 15) * sum(abs(v) for v in row) for row in w]
    bias = [rng.choice([r, -r, rng.randint(-5000, 5000)]) for r in room]
    for out16, relu, wide, (m, s) in [(True, False, False, (12345, 25)), (False, True, False, (1 << 20, 40)),
                                      (True, True, False, ((1 << 31) - 1, 62)), (False, False, True, (1, 1))]:
        op = LinearOp(0, i8(w), torch.tensor(bias, dtype=torch.int32), torch.full((n,), m, dtype=torch.int32),
                      torch.full((n,), s, dtype=torch.int32), relu=relu, wide=wide, i16=out16)
        expected = rk.linear16(x, w, bias, [m] * n, [s] * n, relu, 16 if out16 else 8, 16, wide=wide)
        got = run_op(op, [i16(x)], backend=backend)
        assert got.tolist() == expected, (out16, relu, wide, m, s)
        assert got.dtype == (torch.int32 if wide else torch.int16 if out16 else torch.int8)


@pytest.mark.parametrize("ma, mb, s", [(1, 1, 1), ((1 << 31) - 1, (1 << 31) - 1, 62), ((1 << 31) - 1, 1, 31),
                                       (5, 3, 2), (1 << 30, 1 << 30, 45), (1 << 20, 1 << 28, 20)])
@pytest.mark.parametrize("a16, b16, out16", [(True, True, True), (True, False, True), (False, False, True),
                                             (True, True, False)])
def test_add_int16_float64_and_int64_paths_match_reference_succeeds(ma, mb, s, a16, b16, out16):
    rng = random.Random(ma + s + 7 * a16 + 3 * b16)
    a = rand16(rng, 4, 33) if a16 else rand_rows(rng, 4, 33, extreme=True)
    b = rand16(rng, 4, 33) if b16 else rand_rows(rng, 4, 33)
    op = ops.AddOp(0, 0, 33, ma, mb, s, i16=out16)
    got = run_op(op, [i16(a) if a16 else i8(a), i16(b) if b16 else i8(b)])
    assert got.tolist() == rk.add(a, b, ma, mb, s, 16 if out16 else 8, 16 if a16 else 8, 16 if b16 else 8)


@pytest.mark.parametrize("m, s", [(1, 1), (3, 7), ((1 << 31) - 1, 62), (1 << 20, 30), (1, 16)])
@pytest.mark.parametrize("kk, a16", [(1, True), (300, False), (511, True), (511, False)])
def test_matmul_int16_operand_paths_match_reference_succeeds(kk, a16, m, s):
    rng = random.Random(kk + s)
    a = rand16(rng, 2, kk) if a16 else rand_rows(rng, 2, kk, extreme=True)
    b = rand_rows(rng, 3, kk, extreme=True) if a16 else rand16(rng, 3, kk)
    for out16 in (False, True):
        op = ops.MatmulOp(0, 0, kk, 3, heads=1, seq=2, multiplier=m, shift=s, causal=True, i16=out16)
        expected = rk.matmul(a, b, 1, 2, 3, m, s, True, 16 if out16 else 8, 16 if a16 else 8, 8 if a16 else 16)
        assert run_op(op, [i16(a) if a16 else i8(a), i8(b) if a16 else i16(b)]).tolist() == expected


@pytest.mark.parametrize("cols", [1, 2, 101, 102, 384, 1024])
@pytest.mark.parametrize("rms", [False, True])
def test_norm_int16_paths_and_extremes_match_reference_succeeds(cols, rms):
    # int16 rows: float64 up to n = 101 (n (65535 n)^2 < 2^52), int64 beyond, to n = 1024
    rng = random.Random(cols * 2 + rms)
    rows = [[rng.choice([I16_MIN, I16_MAX]) for _ in range(cols)], [I16_MIN] * cols, [0] * cols,
            [rng.randint(I16_MIN, I16_MAX) for _ in range(cols)], [I16_MIN] + [I16_MAX] * (cols - 1)]
    gamma = [rng.choice([-(1 << 15), (1 << 15) - 1, rng.randint(-999, 999)]) for _ in range(cols)]
    beta = [rng.randint(-(1 << 30), 1 << 30) for _ in range(cols)]
    for m, s in [(1 << 20, 36), ((1 << 31) - 1, 62), (7, 3)]:
        for out16 in (False, True):
            op = ops.NormOp(0, torch.tensor(gamma), torch.tensor(beta), m, s, rms=rms, i16=out16)
            expected = rk.norm(rows, gamma, beta, m, s, rms, 16 if out16 else 8, 16)
            assert run_op(op, [i16(rows)]).tolist() == expected, (m, s, out16)
    assert kernels.Norm(op, torch.device("cpu"), (2,)).stats_f64 == (cols <= 101)


@pytest.mark.parametrize("cols", [1025, 8192, 16384])
def test_rmsnorm_int16_rows_of_any_width_match_reference_succeeds(cols):
    # An RMSNorm reads int16 rows of any width (5.6: z = x, V <= n 2^30), a LayerNorm at most 1024.
    rng = random.Random(cols)
    rows = [[rng.choice([I16_MIN, I16_MAX]) for _ in range(cols)], [rng.randint(I16_MIN, I16_MAX) for _ in range(cols)]]
    gamma = [rng.randint(-(1 << 15), (1 << 15) - 1) for _ in range(cols)]
    beta = [rng.randint(-(1 << 30), 1 << 30) for _ in range(cols)]
    op = ops.NormOp(0, torch.tensor(gamma), torch.tensor(beta), (1 << 31) - 1, 62, rms=True, i16=True)
    assert run_op(op, [i16(rows)]).tolist() == rk.norm(rows, gamma, beta, (1 << 31) - 1, 62, True, 16, 16)
    layer = ops.NormOp(0, torch.tensor(gamma), torch.tensor(beta), (1 << 31) - 1, 62, rms=False, i16=True)
    with pytest.raises(ModelCompileError, match="LayerNorm reading int16 has at most 1024 columns"):
        run_op(layer, [i16(rows)])
    with pytest.raises(ValueError, match="LayerNorm reading int16"):
        rk.norm(rows, gamma, beta, (1 << 31) - 1, 62, False, 16, 16)


def test_softmax_i16_largest_sum_and_floor_succeeds():
    # S = 2^14 * 2^23 = 2^37 at L = MAX_COLS: the quotient rule's edge (S * 2^15 = 2^52)
    n = 16384
    rng = random.Random(5)
    rows = [[0] * n, [rng.randint(-128, 127) for _ in range(n)]]
    for table in ([1 << 23] * 256, [rng.randint(0, 1 << 23) for _ in range(256)]):
        op = ops.SoftmaxOp(0, n, 1, 1, torch.tensor(table, dtype=torch.int32), i16=True)
        got = run_op(op, [i8(rows)])
        assert got.dtype == torch.int16 and got.tolist() == rk.softmax(rows, 1, 1, table, False, bits=16)


def test_int16_slots_run_and_transpose_keeps_dtype_succeeds():
    model = IntegerModel(2, [ops.EmbedOp(0, i16([[1, -1], [I16_MAX, I16_MIN]]), i16([[5, 5], [-5, 5]]), 1 << 20,
                                         1 << 20, 12, i16=True),
                             ops.TransposeOp(1, 2, 2, 1), ops.ArgmaxOp(2, 2)], input_dtype=1).validate()
    assert [model.slot_dtype(j) for j in range(4)] == [1, 2, 2, 1]
    slots = Executor(model, "cpu").run(torch.tensor([[0, 1]], dtype=torch.int32))
    assert [s.dtype for s in slots] == [torch.int32, torch.int16, torch.int16, torch.int32]
    assert slots[2].tolist() == [list(r) for r in zip(*slots[1].tolist())]
