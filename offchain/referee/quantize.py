"""Quantizer: a float ``torch.nn.Sequential`` of ``Linear``/``ReLU`` -> an exact ``IntegerModel``.

Post-training static quantization:
* weights: per-output-channel symmetric int8, ``W_q = round(W / s_w[c])``, |W_q| <= 127;
* activations: one symmetric scale per slot, calibrated as max |activation| / 127 over
  sample data run through the float model (after ReLU where the op has one);
* bias: int32 at the accumulator's scale ``s_x * s_w[c]``;
* requantization: the real factor ``s_x * s_w[c] / s_y`` as ``m[c] / 2^s[c]``, the usual
  fixed-point form (as in gemmlowp / TFLite) but with a 21-bit multiplier: a relative error
  of 2^-21 is far below int8 resolution, and it keeps ``acc * m + 2^(s-1)`` under 2^53, so the
  executor's fused float64 kernel is exact for these models (shift clipped to [1, 62]).

Everything a float model or its calibration data can get wrong is refused up front, naming
the cause: layers whose shapes do not chain, NaN or Inf in weights, biases or calibration
data, no calibration samples or only zeros, and a bias too large to fit int32 at its
accumulator's scale (tiny calibration inputs shrink that scale; clamping the bias silently
would change the model and then fail the accumulator bound with the wrong advice).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ModelCompileError
from .model import INT32_MAX, MAX_SHIFT, MIN_SHIFT, IntegerModel, LinearOp

INT8_SYMMETRIC = 127
MULTIPLIER_BITS = 21


@dataclass
class _Layer:
    linear: nn.Linear
    relu: bool


def _layers(model: nn.Sequential) -> list[_Layer]:
    if not isinstance(model, nn.Sequential):
        raise ModelCompileError(f"expected a torch.nn.Sequential, got {type(model).__name__}")
    layers: list[_Layer] = []
    for index, module in enumerate(model):
        if isinstance(module, nn.Linear):
            layers.append(_Layer(module, relu=False))
        elif isinstance(module, nn.ReLU):
            if not layers or layers[-1].relu:
                raise ModelCompileError(f"layer {index} (ReLU) must directly follow a Linear layer")
            layers[-1].relu = True
        else:
            raise ModelCompileError(
                f"layer {index} ({type(module).__name__}) is not supported; Referee supports Linear and ReLU")
    if not layers:
        raise ModelCompileError("the model has no Linear layer")
    for index, (before, after) in enumerate(zip(layers, layers[1:]), start=1):
        if after.linear.in_features != before.linear.out_features:
            raise ModelCompileError(f"Linear layer {index + 1} takes {after.linear.in_features} features, but Linear "
                                    f"layer {index} gives {before.linear.out_features}: the layers do not chain")
    for index, layer in enumerate(layers, start=1):
        for name in ("weight", "bias"):
            tensor = getattr(layer.linear, name)
            if tensor is not None:
                _require_finite(tensor.detach(), f"Linear layer {index}'s {name}")
    return layers


def _require_finite(tensor: torch.Tensor, what: str) -> None:
    bad = (~torch.isfinite(tensor)).nonzero()
    if len(bad):
        position = tuple(int(i) for i in bad[0])
        value = float(tensor[position])
        raise ModelCompileError(f"{what} holds {value} at {list(position)}: every value must be finite")


def _scale(values: torch.Tensor) -> float:
    peak = float(values.abs().max()) if values.numel() else 0.0
    return peak / INT8_SYMMETRIC if peak > 0 else 1.0


def fixed_point(real: float) -> tuple[int, int]:
    """(m, s) with m / 2^s ~= real, m a 21-bit multiplier in [2^20, 2^21), s in [1, 62]."""
    if not real > 0 or not math.isfinite(real):
        raise ModelCompileError(f"requantization factor must be positive and finite, got {real}")
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2^exponent, mantissa in [0.5, 1)
    m, s = round(mantissa * (1 << MULTIPLIER_BITS)), MULTIPLIER_BITS - exponent
    if m == 1 << MULTIPLIER_BITS:
        m, s = 1 << (MULTIPLIER_BITS - 1), s - 1
    if s > MAX_SHIFT:  # tiny factor: lose precision rather than range
        m, s = max(1, round(real * (1 << MAX_SHIFT))), MAX_SHIFT
    if s < MIN_SHIFT:
        raise ModelCompileError(f"requantization factor {real} is too large (needs a shift below {MIN_SHIFT})")
    return m, s


def quantize_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Float input -> int8 at the model's input scale: ``clamp(round(x / scale), -128, 127)``,
    the division in float64 and rounding half to even (docs/formats.md)."""
    if not scale > 0 or not math.isfinite(scale):
        raise ModelCompileError(f"input scale must be positive and finite, got {scale}")
    return torch.clamp(torch.round(x.to(torch.float64) / scale), -128, 127).to(torch.int8)


def _check_bias_fits(op: int, b_real: torch.Tensor, w_q: torch.Tensor, bias: torch.Tensor, scale_x: float) -> None:
    """Refuse a bias that does not fit the int32 accumulator at the scale ``scale_x * s_w``.

    The bias is stored in accumulator units, ``b / (s_x * s_w)``: when the calibration data
    makes ``s_x`` tiny, a modest float bias becomes a huge integer. The accumulator bound
    ``128 * sum|W_q| + |b_q| < 2^31`` is what the model must meet."""
    headroom = INT32_MAX - 128 * w_q.to(torch.int64).abs().sum(dim=1).to(torch.float64)
    over = (b_real.abs() > headroom).nonzero()
    if not len(over):
        return
    c = int(over[0][0])
    source = "the calibration inputs" if op == 1 else f"the calibration data's activations entering op {op}"
    raise ModelCompileError(
        f"op {op}, output channel {c}: bias {float(bias[c]):.4g} is {float(b_real[c].abs()):.4g} in accumulator "
        f"units, past int32, because {source} are tiny (largest |x| {scale_x * INT8_SYMMETRIC:.3g}); calibrate "
        "on data at the scale the model will really see")


def quantize_sequential(model: nn.Sequential, calibration: torch.Tensor, name: str = "model") -> IntegerModel:
    """Compile ``model`` to an integer model calibrated on ``calibration`` (float, (samples, in))."""
    layers = _layers(model)
    if calibration.dim() != 2 or calibration.shape[1] != layers[0].linear.in_features:
        raise ModelCompileError(f"calibration data has shape {tuple(calibration.shape)}; "
                                f"expected (samples, {layers[0].linear.in_features})")
    if calibration.shape[0] == 0:
        raise ModelCompileError("calibration data has 0 samples: the scales are learnt from them")
    _require_finite(calibration, "calibration data")
    if not bool(calibration.any()):
        raise ModelCompileError("calibration data is all zeros: it shows no input scale to learn")
    ops: list[LinearOp] = []
    with torch.no_grad():
        activation = calibration.to(torch.float64)
        input_scale = scale_x = _scale(activation)
        for j, layer in enumerate(layers, start=1):
            weight = layer.linear.weight.detach().to(torch.float64)
            bias = layer.linear.bias.detach().to(torch.float64) if layer.linear.bias is not None \
                else torch.zeros(weight.shape[0], dtype=torch.float64)
            activation = activation @ weight.T + bias
            if layer.relu:
                activation = activation.clamp(min=0)
            scale_y = _scale(activation)
            scale_w = weight.abs().amax(dim=1) / INT8_SYMMETRIC
            scale_w[scale_w == 0] = 1.0
            w_q = torch.round(weight / scale_w[:, None]).clamp(-INT8_SYMMETRIC, INT8_SYMMETRIC).to(torch.int8)
            b_real = torch.round(bias / (scale_x * scale_w))
            _check_bias_fits(j, b_real, w_q, bias, scale_x)
            b_q = b_real.to(torch.int32)
            pairs = [fixed_point(scale_x * float(sw) / scale_y) for sw in scale_w]
            ops.append(LinearOp(input_slot=j - 1, weight=w_q, bias=b_q,
                                multiplier=torch.tensor([m for m, _ in pairs], dtype=torch.int32),
                                shift=torch.tensor([s for _, s in pairs], dtype=torch.int32),
                                relu=layer.relu))
            scale_x = scale_y
    integer_model = IntegerModel(layers[0].linear.in_features, ops, name=name,
                                 input_scale=input_scale, output_scale=scale_x)
    return integer_model.validate()
