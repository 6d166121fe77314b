"""The exact executor against the independent pure-integer reference, bit for bit."""

import random

import pytest
import torch

import reference as ref
from helpers import int8_tensor, linear_case_model, load_vectors, random_input, random_ref_model, to_integer_model
from referee.errors import InputError, RefereeError
from referee.executor import BACKENDS, Executor
from referee.linear_kernels import FLOAT64_EXACT, float_blocks, fused64_exact, requantize
from referee.model import MAX_COLS, IntegerModel, LinearOp

CPU_BACKENDS = list(BACKENDS)


def test_requantize_golden_vectors_succeeds():
    cases = load_vectors("requant")["cases"]
    acc = torch.tensor([[c["acc"] for c in cases]], dtype=torch.int64)
    m = torch.tensor([c["multiplier"] for c in cases], dtype=torch.int32)
    s = torch.tensor([c["shift"] for c in cases], dtype=torch.int32)
    plain = requantize(acc, m, s, relu=False)[0].tolist()
    relu = requantize(acc, m, s, relu=True)[0].tolist()
    for case, y_plain, y_relu in zip(cases, plain, relu):
        assert (y_relu if case["relu"] else y_plain) == case["y"], case["name"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_linear_golden_vectors_succeeds(backend):
    for case in load_vectors("linear")["cases"]:
        if backend == "int_mm" and len(case["x"]) > 4096:
            continue  # the CPU int_mm kernel is slow; the float and int64 paths cover large k
        model = linear_case_model(case)
        out = Executor(model, "cpu", backend).run(int8_tensor([case["x"]]))[-1]
        assert out.tolist() == [[case["y"]]], case["name"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_models_golden_vectors_every_slot_succeeds(backend):
    for vec in load_vectors("models")["models"]:
        slots = Executor(to_integer_model(vec), "cpu", backend).run(int8_tensor(vec["input"]))
        assert [s.tolist() for s in slots] == [slot["values"] for slot in vec["slots"]], vec["name"]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("extreme", [False, True])
@pytest.mark.parametrize("multiplier_bits", [31, 21])
def test_random_models_match_reference_succeeds(seed, extreme, multiplier_bits):
    rng = random.Random(1000 * seed + 10 * extreme + multiplier_bits)
    input_cols = rng.choice([1, 7, 64, 129, 300, 700])
    widths = [rng.choice([1, 3, 8, 33, 100]) for _ in range(rng.randint(1, 4))]
    ref_model = random_ref_model(rng, input_cols, widths, extreme=extreme, multiplier_bits=multiplier_bits)
    x = random_input(rng, rng.choice([1, 2, 5, 17, 40]), input_cols, extreme=extreme)
    expected = ref.run_model(ref_model, x)
    model = to_integer_model(ref_model)
    for backend in CPU_BACKENDS:
        for fused64_max_k in (0, MAX_COLS):  # without, then wherever the float64 bound allows it
            got = Executor(model, "cpu", backend, fused64_max_k).run(int8_tensor(x))
            assert [s.tolist() for s in got] == expected, backend


@pytest.mark.parametrize("multiplier_bits", [31, 21])
def test_random_models_are_not_degenerate_succeeds(multiplier_bits):
    """The generator above makes outputs that test something: mostly neither clamped nor zero."""
    values = []
    for seed in range(12):
        rng = random.Random(seed)
        ref_model = random_ref_model(rng, 64, [32, 16], multiplier_bits=multiplier_bits)
        values += [v for row in ref.run_model(ref_model, random_input(rng, 8, 64))[-1] for v in row]
    inside = [v for v in values if -128 < v < 127 and v != 0]
    assert len(inside) > len(values) / 3 and len(set(inside)) > 50


def test_float_path_worst_case_accumulators_exact_succeeds():
    # -128 * -128 = 2^14 in every product: each float32 block's partial sums reach exactly its
    # 2^24 limit, and k = MAX_COLS - 1 gives 16 blocks; one inexact block would show here.
    k = 16383
    w = torch.full((2, k), -128, dtype=torch.int8)
    w[1] = 127
    model = IntegerModel(k, [LinearOp(0, w, torch.tensor([0, -5], dtype=torch.int32),
                                      torch.tensor([1, 1], dtype=torch.int32),
                                      torch.tensor([24, 24], dtype=torch.int32), False)]).validate()
    x = torch.full((3, k), -128, dtype=torch.int8)
    x[1] = 127
    x[2, ::2] = 127
    expected = ref.linear(x.tolist(), w.tolist(), [0, -5], [1, 1], [24, 24], False)
    assert Executor(model, "cpu", "float").run(x)[-1].tolist() == expected
    assert all(128 * int(w[:, a:b].to(torch.int64).abs().sum(1).max()) <= 1 << 24 for a, b in float_blocks(w))


def test_float_blocks_cover_k_without_gaps_succeeds():
    w = torch.randint(-128, 128, (5, 5000), dtype=torch.int8, generator=torch.Generator().manual_seed(3))
    blocks = float_blocks(w)
    assert blocks[0][0] == 0 and blocks[-1][1] == 5000
    assert all(a < b and b == c for (a, b), (c, _) in zip(blocks, blocks[1:]))


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 5, dtype=torch.int8), "expects (rows, 4)"),
    (torch.zeros(2, 4, dtype=torch.int32), "int8"),
    (torch.zeros(4, dtype=torch.int8), "expects (rows, 4)"),
])
def test_run_bad_input_fails(bad, message):
    rng = random.Random(5)
    model = to_integer_model(random_ref_model(rng, 4, [3]))
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Executor(model, "cpu").run(bad)


def test_unknown_backend_fails():
    model = to_integer_model(random_ref_model(random.Random(1), 4, [3]))
    with pytest.raises(RefereeError, match="unknown backend"):
        Executor(model, "cpu", "fp16")


def _single_op(w, bias, m, s, relu=False):
    return to_integer_model({"input_cols": len(w[0]), "ops": [{
        "kind": 1, "flags": int(relu), "input_a": 0, "input_b": 0, "weights": w,
        "bias": bias, "multiplier": m, "shift": s}]})


def test_fused64_at_float64_edge_exact_succeeds():
    # B = 128 * 1024 * 128 = 2^24 and m = 2^28 - 1, s = 52: B*m + 2^51 = 2^53 - 2^51 - 2^24,
    # just inside the float64 bound; x spans the extremes so acc*m/2^s lands on every kind of value.
    k, m, s = 1024, (1 << 28) - 1, 52
    w = [[-128] * k, [127] * k, [(-128, 127)[j % 2] for j in range(k)]]
    model = _single_op(w, [0, 0, 0], [m] * 3, [s] * 3)
    assert fused64_exact(model.ops[0])
    rng = random.Random(9)
    x = [[-128] * k, [127] * k, [0] * k] + [[rng.choice((-128, 127, 1, -1)) for _ in range(k)] for _ in range(20)]
    executor = Executor(model, "cpu", "float", fused64_max_k=MAX_COLS)
    assert [kernel.name for kernel in executor.kernels] == ["fused64"]
    assert executor.run(int8_tensor(x))[-1].tolist() == ref.linear(x, w, [0, 0, 0], [m] * 3, [s] * 3, False)


def test_fused64_refused_past_float64_bound_succeeds():
    k, s = 1024, 52
    m = -(-(FLOAT64_EXACT - (1 << (s - 1))) // (1 << 24))  # the smallest m with B*m + half >= 2^53
    model = _single_op([[-128] * k], [0], [m], [s])
    assert not fused64_exact(model.ops[0])
    assert [kernel.name for kernel in Executor(model, "cpu", "float", fused64_max_k=MAX_COLS).kernels] == ["float32"]
    assert fused64_exact(_single_op([[-128] * k], [0], [m - 1], [s]).ops[0])


def test_kernel_choice_by_k_succeeds():
    small = _single_op([[1] * 8], [0], [1 << 20], [30])
    wide = _single_op([[1] * 2000], [0], [1 << 20], [30])
    assert Executor(small, "cpu").kernels[0].name == "fused64"
    assert Executor(wide, "cpu").kernels[0].name == "float32+f64rq"  # float32 GEMM, float64 requantization
    square = _single_op([[1] * 64] * 8, [0] * 8, [1 << 20] * 8, [30] * 8)  # k, n multiples of 8: int_mm's shapes
    assert Executor(square, "cpu", "int_mm").kernels[0].name == "int_mm+f64rq"
    assert Executor(square, "cpu", "float").kernels[0].name == "fused64"
    assert Executor(wide, "cpu", fused64_max_k=MAX_COLS).kernels[0].name == "fused64"
