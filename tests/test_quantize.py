"""The quantizer: supported layers only, fixed-point factors, and the digits demo's accuracy."""

import math

import pytest
import torch
from torch import nn

from referee.digits import train_and_quantize
from referee.errors import ModelCompileError
from referee.quantize import fixed_point, quantize_input, quantize_sequential


@pytest.fixture(scope="module")
def digits():
    return train_and_quantize()


def test_digits_integer_accuracy_within_one_point_succeeds(digits):
    assert digits.float_accuracy > 0.9
    assert abs(digits.float_accuracy - digits.integer_accuracy) <= 0.01


def test_digits_training_is_deterministic_succeeds(digits):
    assert train_and_quantize().integer_model.root == digits.integer_model.root


def test_digits_integer_model_is_three_linear_ops_succeeds(digits):
    model = digits.integer_model
    assert [(op.in_cols, op.out_cols, op.relu) for op in model.ops] == [(64, 64, True), (64, 32, True), (32, 10, False)]
    assert all(int(op.weight.abs().max()) == 127 for op in model.ops)  # symmetric per-channel int8


@pytest.mark.parametrize("layer", [nn.Conv1d(1, 1, 1), nn.Sigmoid(), nn.Dropout()])
def test_quantize_unsupported_layer_fails(layer):
    with pytest.raises(ModelCompileError, match=f"layer 1 \\({type(layer).__name__}\\) is not supported"):
        quantize_sequential(nn.Sequential(nn.Linear(4, 4), layer), torch.randn(8, 4))


def test_quantize_relu_without_linear_fails():
    with pytest.raises(ModelCompileError, match="layer 0 \\(ReLU\\) must directly follow a Linear"):
        quantize_sequential(nn.Sequential(nn.ReLU(), nn.Linear(4, 4)), torch.randn(8, 4))


def test_quantize_calibration_shape_mismatch_fails():
    with pytest.raises(ModelCompileError, match="calibration data has shape"):
        quantize_sequential(nn.Sequential(nn.Linear(4, 4)), torch.randn(8, 5))


@pytest.mark.parametrize("real", [1.0, 0.5, 0.3, 1e-3, 2.0 ** -40, 123.456])
def test_fixed_point_precise_and_in_range_succeeds(real):
    m, s = fixed_point(real)
    assert 2**20 <= m < 2**21 and 1 <= s <= 62
    assert math.isclose(m / 2**s, real, rel_tol=2**-20)


def test_fixed_point_tiny_factor_clips_shift_succeeds():
    m, s = fixed_point(2.0 ** -70)
    assert (m, s) == (1, 62)


@pytest.mark.parametrize("real", [2.0 ** 21, 0.0, -1.0, float("inf")])
def test_fixed_point_out_of_range_fails(real):
    with pytest.raises(ModelCompileError):
        fixed_point(real)


def test_quantize_input_rounds_and_clamps_succeeds():
    x = torch.tensor([[0.0, 0.49, 0.51, -0.51, 1000.0, -1000.0]])
    assert quantize_input(x, 1.0).tolist() == [[0, 0, 1, -1, 127, -128]]
