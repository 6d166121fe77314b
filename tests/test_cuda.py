"""CUDA results equal CPU results and the reference, bit for bit (skipped without a CUDA device)."""

import random

import pytest
import torch

import reference as ref
from helpers import int8_tensor, linear_case_model, load_vectors, random_input, random_ref_model, to_integer_model
from referee.executor import Executor

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
