"""Property tests (hypothesis): requantization and the linear op over their whole input ranges
agree with the independent reference, on every CPU backend."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
from referee.executor import BACKENDS, Executor
from referee.linear_kernels import fused64_exact, requantize, usable
from referee.model import IntegerModel, LinearOp

int8s = st.integers(-128, 127)
multipliers = st.integers(1, 2**31 - 1)
shifts = st.integers(1, 62)


@settings(max_examples=400, deadline=None)
@given(acc=st.integers(-(2**31), 2**31 - 1), m=multipliers, s=shifts, relu=st.booleans())
def test_requantize_matches_reference_succeeds(acc, m, s, relu):
    got = requantize(torch.tensor([[acc]]), torch.tensor([m], dtype=torch.int32), torch.tensor([s], dtype=torch.int32), relu)
    assert int(got) == ref.requantize(acc, m, s, relu)


@st.composite
def linear_cases(draw, multipliers=multipliers):
    k = draw(st.integers(1, 40))
    n = draw(st.integers(1, 6))
    rows = draw(st.integers(1, 5))
    w = [draw(st.lists(int8s, min_size=k, max_size=k)) for _ in range(n)]
    bias = [draw(st.integers(-(2**31 - 1 - 128 * sum(map(abs, row))), 2**31 - 1 - 128 * sum(map(abs, row))))
            for row in w]
    m = draw(st.lists(multipliers, min_size=n, max_size=n))
    s = draw(st.lists(shifts, min_size=n, max_size=n))
    x = [draw(st.lists(int8s, min_size=k, max_size=k)) for _ in range(rows)]
    return x, w, bias, m, s, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(case=linear_cases())
def test_linear_matches_reference_on_every_backend_succeeds(case):
    x, w, bias, m, s, relu = case
    op = LinearOp(0, torch.tensor(w, dtype=torch.int8), torch.tensor(bias, dtype=torch.int32),
                  torch.tensor(m, dtype=torch.int32), torch.tensor(s, dtype=torch.int32), relu)
    model = IntegerModel(len(x[0]), [op]).validate()
    expected = ref.linear(x, w, bias, m, s, relu)
    for backend in BACKENDS:
        assert Executor(model, "cpu", backend).run(torch.tensor(x, dtype=torch.int8))[-1].tolist() == expected, backend


@settings(max_examples=150, deadline=None)
@given(case=linear_cases(multipliers=st.integers(1, 2**21 - 1)))
def test_linear_fused64_matches_reference_succeeds(case):
    """21-bit multipliers (the quantizer's): the fused float64 kernel wherever its bound holds."""
    x, w, bias, m, s, relu = case
    op = LinearOp(0, torch.tensor(w, dtype=torch.int8), torch.tensor(bias, dtype=torch.int32),
                  torch.tensor(m, dtype=torch.int32), torch.tensor(s, dtype=torch.int32), relu)
    executor = Executor(IntegerModel(len(x[0]), [op]).validate(), "cpu", "float")
    assert executor.kernels[0].name == ("fused64" if fused64_exact(op) else "float32+f64rq" if usable(op) else "float32")
    assert executor.run(torch.tensor(x, dtype=torch.int8))[-1].tolist() == ref.linear(x, w, bias, m, s, relu)
