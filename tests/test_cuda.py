"""CUDA results equal CPU results and the reference, bit for bit (skipped without a CUDA device).

MLPs (linear ops) and every transformer kind: the golden vectors, random ops of every kind
against the independent reference (tests/reference_transformer.py), and compiled
transformers slot for slot against the CPU. No hypothesis here: gpu/check.py runs this file
on machines that may have only torch (seeded ``random`` instead).
"""

import random

import pytest
import torch

import reference as ref
import reference_transformer as rt
from helpers import int8_tensor, linear_case_model, load_vectors, random_input, random_ref_model, to_integer_model
from referee.executor import Executor, run_op
from referee.graph_dict import model_from_dict, op_from_dict

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]


@pytest.mark.parametrize("backend", ["int_mm", "float", "int64"])
def test_cuda_models_golden_vectors_succeeds(backend):
    for vec in load_vectors("models")["models"]:
        slots = Executor(to_integer_model(vec), "cuda", backend).run(int8_tensor(vec["input"]))
        assert [s.tolist() for s in slots] == [slot["values"] for slot in vec["slots"]], vec["name"]


@pytest.mark.parametrize("backend", ["int_mm", "float"])
def test_cuda_linear_golden_vectors_succeeds(backend):
    for case in load_vectors("linear")["cases"]:
        model = linear_case_model(case)
        assert Executor(model, "cuda", backend).run(int8_tensor([case["x"]]))[-1].tolist() == [[case["y"]]], case["name"]


@pytest.mark.parametrize("seed", range(8))
def test_cuda_random_models_equal_cpu_and_reference_succeeds(seed):
    rng = random.Random(seed)
    input_cols = rng.choice([1, 7, 64, 300, 1024])
    ref_model = random_ref_model(rng, input_cols, [rng.choice([1, 9, 64, 257]) for _ in range(3)], extreme=seed % 2 == 1)
    x = random_input(rng, rng.choice([1, 3, 16, 33]), input_cols, extreme=seed % 2 == 1)
    model = to_integer_model(ref_model)
    cpu = Executor(model, "cpu").run(int8_tensor(x))
    expected = ref.run_model(ref_model, x)
    for backend in ("int_mm", "float"):
        gpu = Executor(model, "cuda", backend).run(int8_tensor(x))
        assert all(torch.equal(a, b) for a, b in zip(gpu, cpu)), backend
        assert [s.tolist() for s in gpu] == expected, backend


# ---- transformer kinds ---------------------------------------------------------------------

TORCH = {0: torch.int8, 1: torch.int32, 2: torch.int16}  # section 3's dtype codes


def tensor(values, dtype: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64).to(TORCH[dtype])


@pytest.mark.parametrize("backend", ["int_mm", "float", "int64"])
def test_cuda_transformer_op_vectors_succeeds(backend):
    for name in ("transformer_ops", "transformer_large"):
        for case in load_vectors(name)["cases"]:
            inputs = [tensor(i["values"], i["dtype"]) for i in case["inputs"]]
            got = run_op(op_from_dict(case["op"]), inputs, device="cuda", backend=backend)
            assert got.tolist() == case["output"]["values"], case["name"]


@pytest.mark.parametrize("backend", ["int_mm", "float", "int64"])
def test_cuda_transformer_model_vectors_succeeds(backend):
    for vec in load_vectors("transformer_models")["models"]:
        model = model_from_dict({"input_cols": vec["input_cols"], "input_dtype": vec["input_dtype"], "ops": vec["ops"]})
        slots = Executor(model, "cuda", backend).run(tensor(vec["input"], vec["input_dtype"]))
        assert [s.tolist() for s in slots] == [s["values"] for s in vec["slots"]], vec["name"]


def _rows(rng: random.Random, rows: int, cols: int, extreme: bool, low: int = -128, high: int = 127):
    pick = (lambda: rng.choice([low, high, 0, low + 1])) if extreme else (lambda: rng.randint(low, high))
    return [[pick() for _ in range(cols)] for _ in range(rows)]


def random_op(rng: random.Random, kind: int, extreme: bool):
    """One op dict of ``kind`` with random parameters and matching input matrices (dtype, values)."""
    h, seq, groups = rng.choice([1, 2, 3]), rng.choice([1, 2, 5]), rng.choice([1, 2])
    m, s = rng.choice([1, rng.randint(1, 2**31 - 1), 2**31 - 1]), rng.choice([1, rng.randint(1, 62), 62])
    n = rng.choice([1, 7, 64, 1100]) if kind in (1, 4, 5, 7, 9) else 0
    if kind == 1:
        w = _rows(rng, rng.choice([1, 9]), n, extreme)
        op = {"kind": 1, "flags": rng.choice([0, 1, 2]), "input_a": 0, "input_b": 0, "weights": w,
              "bias": [rng.randint(-1000, 1000) for _ in w], "multiplier": [m] * len(w), "shift": [s] * len(w)}
        return op, [(0, _rows(rng, 3, n, extreme))]
    if kind == 2:
        kk, rb = rng.choice([1, 8, 1030]), rng.choice([1, seq, 4])
        op = {"kind": 2, "flags": rng.choice([0, 1]), "input_a": 0, "input_b": 1, "in_cols": h * kk,
              "out_cols": h * rb, "heads": h, "seq": seq, "multiplier": m, "shift": s}
        return op, [(0, _rows(rng, groups * seq, h * kk, extreme)), (0, _rows(rng, groups * rb, h * kk, extreme))]
    if kind == 3:
        c, r_in = rng.choice([1, 3]), rng.choice([1, 4])
        op = {"kind": 3, "flags": 0, "input_a": 0, "input_b": 0, "in_cols": h * c, "out_cols": h * r_in, "heads": h}
        return op, [(0, _rows(rng, groups * r_in, h * c, extreme))]
    if kind == 4:
        op = {"kind": 4, "flags": 0, "input_a": 0, "input_b": 1, "in_cols": n, "out_cols": n,
              "multiplier_a": m, "multiplier_b": rng.choice([1, m]), "shift": s}
        return op, [(0, _rows(rng, 3, n, extreme)), (0, _rows(rng, 3, n, extreme))]
    if kind == 5:
        op = {"kind": 5, "flags": 0, "input_a": 0, "input_b": 0, "in_cols": n, "out_cols": n,
              "table": [rng.randint(-128, 127) for _ in range(256)]}
        return op, [(0, _rows(rng, 3, n, extreme))]
    if kind == 6:
        length = rng.choice([1, 4, 300])
        table = [rng.choice([0, 1 << 23, rng.randint(0, 1 << 23)]) for _ in range(256)]
        flags = rng.choice([0, 1, 2, 3])  # bit 1 keymask: slot 1 is the [groups, length] mask
        op = {"kind": 6, "flags": flags, "input_a": 0, "input_b": flags >> 1, "in_cols": h * length,
              "out_cols": h * length, "heads": h, "seq": seq, "exp_table": table}
        mask = [[rng.choice([0, 0, 1, -128]) for _ in range(length)] for _ in range(groups)]
        return op, [(0, _rows(rng, groups * seq, h * length, extreme))] + ([(0, mask)] if flags & 2 else [])
    if kind == 7:
        gamma = [rng.randint(-(1 << 15), (1 << 15) - 1) for _ in range(n)]
        beta = [rng.randint(-(1 << 30), 1 << 30) for _ in range(n)]
        op = {"kind": 7, "flags": rng.choice([0, 1]), "input_a": 0, "input_b": 0, "in_cols": n, "out_cols": n,
              "multiplier": m, "shift": s, "gamma": gamma, "beta": beta}
        return op, [(0, _rows(rng, 3, n, extreme))]
    if kind == 8:
        vocab, t, d = rng.choice([1, 5, 70]), rng.choice([1, 3]), rng.choice([1, 6])
        op = {"kind": 8, "flags": 0, "input_a": 0, "input_b": 0, "in_cols": t, "out_cols": d,
              "token_table": _rows(rng, vocab, d, extreme), "position_table": _rows(rng, t, d, extreme),
              "multiplier_a": m, "multiplier_b": rng.choice([1, m]), "shift": s}
        return op, [(1, _rows(rng, 2, t, False, -2, vocab + 1))]
    op = {"kind": 9, "flags": 0, "input_a": 0, "input_b": 0, "in_cols": n, "out_cols": 1}
    dtype = rng.choice([0, 1])
    return op, [(dtype, _rows(rng, 3, n, extreme, *((-128, 127) if dtype == 0 else (-2**31, 2**31 - 1))))]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", range(1, 10))
def test_cuda_random_kinds_equal_cpu_and_reference_succeeds(kind, seed):
    rng = random.Random(kind * 1000 + seed)
    op_dict, inputs = random_op(rng, kind, extreme=seed % 2 == 1)
    op = op_from_dict(op_dict)
    tensors = [tensor(values, dtype) for dtype, values in inputs]
    expected = rt.run_op(op_dict, [values for _, values in inputs])
    assert run_op(op, tensors, device="cpu").tolist() == expected
    for backend in ("int_mm", "float", "int64"):
        assert run_op(op, tensors, device="cuda", backend=backend).tolist() == expected, backend


@pytest.mark.parametrize("kind, pad_id", [("encoder", None), ("encoder", 0), ("decoder", None)])
def test_cuda_compiled_transformer_equals_cpu_succeeds(kind, pad_id):
    from referee.transformer import FloatTransformer, TransformerConfig
    from referee.transformer_compile import compile_transformer
    cfg = TransformerConfig(kind, layers=2, width=128, heads=4, ffn=512, seq=32, vocab=1000, pad_id=pad_id)
    gen = torch.Generator().manual_seed(3)
    # int16 activations (transformer_compile.WIDE16, the default) and every kernel reading them
    model = compile_transformer(FloatTransformer(cfg, seed=4), torch.randint(0, cfg.vocab, (4, cfg.seq), generator=gen))
    x = torch.randint(0, cfg.vocab, (4, cfg.seq), generator=gen, dtype=torch.int32)
    x[1, 7:], x[2, 1:], x[3] = 0, 0, 0  # with pad id 0: padded sequences, one all padding
    cpu = Executor(model, "cpu").run(x)
    for backend in ("int_mm", "float"):
        gpu = Executor(model, "cuda", backend).run(x)
        assert all(torch.equal(a, b) for a, b in zip(gpu, cpu)), backend
