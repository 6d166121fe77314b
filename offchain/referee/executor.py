"""Exact executor: runs an integer model on a batch and returns every slot tensor.

Three ways to compute the accumulators, all exact and bit-identical (tests compare them with
an independent pure-integer reference):

* ``float`` (CPU default): float32 GEMMs over blocks of k whose worst case
  ``128 * sum |W[c, j]|`` stays within 2^24, so every partial sum in any summation order is an
  integer float32 represents exactly (protocol section 4); block results are summed in int64.
* ``int_mm`` (CUDA default): ``torch._int_mm`` int8 x int8 -> int32, exact because the model
  compiler bounds |acc| below 2^31; operands are zero-padded to the kernel's shape rules.
* ``int64``: a plain int64 matmul, slow, kept as the obvious-by-inspection path.

Requantization is int64 element-wise arithmetic with an arithmetic right shift, the single
rounding rule of the protocol.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import InputError, RefereeError
from .model import MAX_ROWS, IntegerModel, LinearOp

FLOAT32_EXACT = 1 << 24
INT8_ABS_MAX = 128
BACKENDS = ("float", "int_mm", "int64")


def float_blocks(weight: torch.Tensor) -> list[tuple[int, int]]:
    """Split k into [start, end) blocks whose worst-case float32 partial sums stay exact.

    Greedy over groups of 64 columns: a group alone always fits (128 * 64 * 128 = 2^20 <= 2^24),
    and a block grows while 128 * max_c sum_{j in block} |W[c, j]| stays within 2^24.
    """
    k, group = weight.shape[1], 64
    abs_w = weight.to(torch.int64).abs()
    blocks, start, running = [], 0, torch.zeros(weight.shape[0], dtype=torch.int64)
    for g0 in range(0, k, group):
        group_sum = abs_w[:, g0:g0 + group].sum(dim=1)
        if INT8_ABS_MAX * int((running + group_sum).max()) > FLOAT32_EXACT:
            blocks.append((start, g0))
            start, running = g0, group_sum
        else:
            running = running + group_sum
    blocks.append((start, k))
    return blocks


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor, relu: bool) -> torch.Tensor:
    """clamp((acc * m + 2^(s-1)) >> s, -128, 127), then ReLU; acc is int64 (rows, n), m and s (n,)."""
    m, s = multiplier.to(torch.int64), shift.to(torch.int64)
    return _requantize_(acc.clone(), m, torch.bitwise_left_shift(torch.ones_like(s), s - 1), s, relu)


def _requantize_(acc: torch.Tensor, m: torch.Tensor, half: torch.Tensor, s: torch.Tensor, relu: bool) -> torch.Tensor:
    """In-place requantization of an int64 accumulator; m, half = 2^(s-1) and s are int64 (n,)."""
    # |acc| < 2^31 and m < 2^31, so acc * m + half < 2^63: no int64 overflow.
    acc.mul_(m).add_(half).bitwise_right_shift_(s)
    return acc.clamp_(0 if relu else -128, 127).to(torch.int8)


@dataclass
class _PreparedLinear:
    op: LinearOp
    bias: torch.Tensor        # int64 (n,)
    multiplier: torch.Tensor  # int64 (n,)
    half: torch.Tensor        # int64 (n,): 2^(s-1)
    shift: torch.Tensor       # int64 (n,)
    blocks: list[tuple[int, int, torch.Tensor]]  # float: (start, end, W^T block float32 (kb, n))
    weight_t: torch.Tensor | None  # int_mm / int64: W^T (k_padded, n_padded)


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@contextlib.contextmanager
def _ieee_float32_matmul():
    """Float32 GEMMs must not drop to TF32/bf16: exactness rests on true float32 sums."""
    saved = torch.get_float32_matmul_precision()
    saved_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)
        torch.backends.cuda.matmul.allow_tf32 = saved_tf32


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RefereeError("CUDA was requested but this machine has no usable CUDA device")
    return torch.device(device)


class Executor:
    """Prepares a model for one device and backend once, then runs batches exactly."""

    def __init__(self, model: IntegerModel, device: str = "auto", backend: str = "auto"):
        self.model = model
        self.device = resolve_device(device)
        if backend == "auto":
            backend = "int_mm" if self.device.type == "cuda" else "float"
        if backend not in BACKENDS:
            raise RefereeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self._ops = [self._prepare(op) for op in model.ops]

    def _prepare(self, op: LinearOp) -> _PreparedLinear:
        dev = self.device
        blocks, weight_t = [], None
        if self.backend == "float":
            w_t = op.weight.t().to(torch.float32)
            blocks = [(start, end, w_t[start:end].contiguous().to(dev)) for start, end in float_blocks(op.weight)]
        elif self.backend == "int_mm":
            k, n = op.in_cols, op.out_cols
            weight_t = torch.zeros(_ceil_to(k, 8), _ceil_to(n, 8), dtype=torch.int8)
            weight_t[:k, :n] = op.weight.t()
            weight_t = weight_t.to(dev)
        else:
            weight_t = op.weight.t().to(torch.int64).contiguous().to(dev)
        shift = op.shift.to(torch.int64)
        half = torch.bitwise_left_shift(torch.ones_like(shift), shift - 1)
        as_dev = lambda t: t.to(torch.int64).to(dev)  # noqa: E731
        return _PreparedLinear(op, as_dev(op.bias), as_dev(op.multiplier), as_dev(half), as_dev(shift),
                               blocks, weight_t)

    def _accumulate(self, prep: _PreparedLinear, x: torch.Tensor) -> torch.Tensor:
        """Exact int64 acc = x @ W^T + b for int8 x (rows, k) on the device."""
        if self.backend == "float":
            xf = x.to(torch.float32)
            acc = None
            for start, end, w_block in prep.blocks:
                part = xf[:, start:end] @ w_block  # exact: every partial sum is an integer below 2^24
                # Block sums add up in float64, exact below 2^53 (|acc| < 2^31).
                acc = part.to(torch.float64) if acc is None else acc.add_(part)
            acc = acc.to(torch.int64)
        elif self.backend == "int_mm":
            rows, k = x.shape
            # _int_mm wants more than 16 rows and k, n multiples of 8: zero padding adds nothing.
            x_pad = torch.zeros(max(32, _ceil_to(rows, 8)), prep.weight_t.shape[0], dtype=torch.int8, device=x.device)
            x_pad[:rows, :k] = x
            acc = torch._int_mm(x_pad, prep.weight_t)[:rows, :prep.op.out_cols].to(torch.int64)
        else:
            acc = x.to(torch.int64) @ prep.weight_t
        return acc.add_(prep.bias)

    def check_input(self, x: torch.Tensor) -> None:
        cols = self.model.input_cols
        if not isinstance(x, torch.Tensor) or x.dtype != torch.int8:
            raise InputError(f"input must be an int8 tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() != 2 or x.shape[1] != cols:
            raise InputError(f"input has shape {tuple(x.shape)}; the model expects (rows, {cols})")
        if not 1 <= x.shape[0] <= MAX_ROWS:
            raise InputError(f"input has {x.shape[0]} rows; allowed are 1 to {MAX_ROWS}")

    def run(self, x: torch.Tensor, on_op: Callable[[int], None] | None = None) -> list[torch.Tensor]:
        """All slot tensors [x, y_1, ..., y_N] as int8 CPU tensors; ``on_op(j)`` after op j."""
        self.check_input(x)
        slots_dev = [x.to(self.device)]
        with torch.inference_mode(), _ieee_float32_matmul():
            for j, prep in enumerate(self._ops, start=1):
                acc = self._accumulate(prep, slots_dev[prep.op.input_slot])
                slots_dev.append(_requantize_(acc, prep.multiplier, prep.half, prep.shift, prep.op.relu))
                if on_op:
                    on_op(j)
        return [s.cpu() for s in slots_dev]


def run_model(model: IntegerModel, x: torch.Tensor, device: str = "auto", backend: str = "auto") -> list[torch.Tensor]:
    """One-shot convenience: prepare and run."""
    return Executor(model, device, backend).run(x)
