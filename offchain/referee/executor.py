"""Exact executor: runs an integer model on a batch and returns every slot tensor.

Each op gets one of four kernels, all exact and bit-identical (tests compare every one with an
independent pure-integer reference):

* ``fused64`` (``float`` backend, small k): one float64 GEMM computes
  ``(acc * m + 2^(s-1)) / 2^s`` directly, with ``m * 2^-s`` folded into the weights; a floor
  and a clamp finish the protocol's rounding. Exact when ``B[c] * m[c] + 2^(s[c]-1) < 2^53``
  for every channel (``B`` the accumulator bound): every product and partial sum, in any
  order, is a multiple of ``2^-s`` whose numerator stays below ``2^53``, so float64 holds it
  exactly. The quantizer's 21-bit multipliers meet this whenever ``s <= 52``.
* ``float32`` (``float`` backend otherwise): float32 GEMMs over blocks of k whose worst case
  ``128 * sum |W[c, j]|`` stays within 2^24, so every partial sum in any order is an integer
  float32 represents exactly (protocol section 4); block sums add up in float64, then int64
  requantization with an arithmetic shift.
* ``int_mm`` (CUDA default): ``torch._int_mm`` int8 x int8 -> int32, exact because the model
  compiler bounds |acc| below 2^31; operands are zero-padded to the kernel's shape rules.
* ``int64``: a plain int64 matmul, slow, kept as the obvious-by-inspection path.
"""

import contextlib
import math
from collections.abc import Callable

import torch

from .errors import InputError, RefereeError
from .model import MAX_ROWS, IntegerModel, LinearOp

FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53
INT8_ABS_MAX = 128
BACKENDS = ("float", "int_mm", "int64")
# Above this k a float64 GEMM costs more than the int64 requantization passes it saves
# (measured on 2 AVX-512 cores: break-even near k = 300).
FUSED64_MAX_K = 512


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


def _halves(shift: torch.Tensor) -> torch.Tensor:
    """2^(s-1) per channel, int64: the rounding half of the protocol's shift."""
    s = shift.to(torch.int64)
    return torch.bitwise_left_shift(torch.ones_like(s), s - 1)


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor, relu: bool) -> torch.Tensor:
    """clamp((acc * m + 2^(s-1)) >> s, -128, 127), then ReLU; acc is int64 (rows, n), m and s (n,)."""
    return _requantize_(acc.clone(), multiplier.to(torch.int64), _halves(shift), shift.to(torch.int64), relu)


def _requantize_(acc: torch.Tensor, m: torch.Tensor, half: torch.Tensor, s: torch.Tensor, relu: bool) -> torch.Tensor:
    """In-place requantization of an int64 accumulator; m, half = 2^(s-1) and s are int64 (n,)."""
    # |acc| < 2^31 and m < 2^31, so acc * m + half < 2^63: no int64 overflow.
    acc.mul_(m).add_(half).bitwise_right_shift_(s)
    return acc.clamp_(0 if relu else -128, 127).to(torch.int8)


def fused64_exact(op: LinearOp) -> bool:
    """Whether every channel has B[c] * m[c] + 2^(s[c]-1) < 2^53 (the fused64 kernel is exact)."""
    worst = op.accumulator_bounds() * op.multiplier.to(torch.int64) + _halves(op.shift)
    return bool((worst < FLOAT64_EXACT).all())  # B < 2^31 and m < 2^31: no int64 overflow


class _Kernel:
    """One prepared op: int8 input slot (rows, k) on the device -> int8 output slot (rows, n)."""

    name = ""

    def __init__(self, op: LinearOp, device: torch.device):
        self.op = op

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _IntegerRequant(_Kernel):
    """Kernels that produce the exact int64 accumulator, then requantize it in int64."""

    def __init__(self, op: LinearOp, device: torch.device):
        super().__init__(op, device)
        as_dev = lambda t: t.to(torch.int64).to(device)  # noqa: E731
        self.bias, self.multiplier, self.shift, self.half = map(as_dev, (op.bias, op.multiplier, op.shift,
                                                                         _halves(op.shift)))

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        """Exact int64 acc = x @ W^T (no bias)."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        acc = self.accumulate(x).add_(self.bias)
        if self.op.wide:  # protocol 5.0: the int32 accumulator itself, exact by the bound
            return acc.to(torch.int32)
        return _requantize_(acc, self.multiplier, self.half, self.shift, self.op.relu)


class _Fused64(_Kernel):
    name = "fused64"

    def __init__(self, op: LinearOp, device: torch.device):
        super().__init__(op, device)
        shifts = op.shift.tolist()
        scale = torch.tensor([math.ldexp(1.0, -s) for s in shifts], dtype=torch.float64)
        half = torch.tensor([math.ldexp(1.0, s - 1) for s in shifts], dtype=torch.float64)
        m = op.multiplier.to(torch.float64)
        # W' = W * m * 2^-s and c' = (b * m + 2^(s-1)) * 2^-s: integers below 2^53 times powers
        # of two, so float64 holds every one of them exactly.
        self.weight_t = (op.weight.to(torch.float64) * (m * scale)[:, None]).t().contiguous().to(device)
        self.offset = ((op.bias.to(torch.float64) * m + half) * scale).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.addmm(self.offset, x.to(torch.float64), self.weight_t)  # (acc * m + half) / 2^s, exact
        return y.floor_().clamp_(0 if self.op.relu else -128, 127).to(torch.int8)


class _Float32Blocks(_IntegerRequant):
    name = "float32"

    def __init__(self, op: LinearOp, device: torch.device):
        super().__init__(op, device)
        w_t = op.weight.t().to(torch.float32)
        self.blocks = [(a, b, w_t[a:b].contiguous().to(device)) for a, b in float_blocks(op.weight)]

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.float32)
        acc = None
        for start, end, w_block in self.blocks:
            part = xf[:, start:end] @ w_block  # exact: every partial sum is an integer below 2^24
            # Block sums add up in float64, exact below 2^53 (|acc| < 2^31).
            acc = part.to(torch.float64) if acc is None else acc.add_(part)
        return acc.to(torch.int64)


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class _IntMM(_IntegerRequant):
    name = "int_mm"

    def __init__(self, op: LinearOp, device: torch.device):
        super().__init__(op, device)
        k, n = op.in_cols, op.out_cols
        weight = torch.zeros(_ceil_to(n, 8), _ceil_to(k, 8), dtype=torch.int8)
        weight[:n, :k] = op.weight
        # Kept (n, k) row-major and passed as its transpose: the column-major B operand that
        # cuBLASLt's int8 kernels take (the usual `_int_mm(x, w.t())`).
        self.weight = weight.to(device)

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        rows, k = x.shape
        # _int_mm wants more than 16 rows and k, n multiples of 8: zero padding adds nothing.
        x_pad = torch.zeros(max(32, _ceil_to(rows, 8)), self.weight.shape[1], dtype=torch.int8, device=x.device)
        x_pad[:rows, :k] = x
        return torch._int_mm(x_pad, self.weight.t())[:rows, :self.op.out_cols].to(torch.int64)


class _Int64(_IntegerRequant):
    name = "int64"

    def __init__(self, op: LinearOp, device: torch.device):
        super().__init__(op, device)
        self.weight_t = op.weight.t().to(torch.int64).contiguous().to(device)

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.int64) @ self.weight_t


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


def kernel_class(op: LinearOp, backend: str, fused64_max_k: int = FUSED64_MAX_K) -> type[_Kernel]:
    """The linear kernel a backend uses for one op (every choice is exact; this picks the fastest)."""
    if backend == "int_mm":
        return _IntMM
    if backend == "int64":
        return _Int64
    fused = op.in_cols <= fused64_max_k and not op.wide and fused64_exact(op)
    return _Fused64 if fused else _Float32Blocks


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RefereeError("CUDA was requested but this machine has no usable CUDA device")
    return torch.device(device)


class Executor:
    """Prepares a model for one device and backend once, then runs batches exactly.

    ``fused64_max_k`` bounds k for the fused float64 kernel (a speed choice only: every kernel
    is exact); tests set it to force one kernel or the other.
    """

    def __init__(self, model: IntegerModel, device: str = "auto", backend: str = "auto",
                 fused64_max_k: int = FUSED64_MAX_K):
        self.model = model
        self.device = resolve_device(device)
        if backend == "auto":
            backend = "int_mm" if self.device.type == "cuda" else "float"
        if backend not in BACKENDS:
            raise RefereeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.kernels = [kernel_class(op, backend, fused64_max_k)(op, self.device) for op in model.ops]

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
        slots = [x.to(self.device)]
        with torch.inference_mode(), _ieee_float32_matmul():
            for j, kernel in enumerate(self.kernels, start=1):
                slots.append(kernel(slots[kernel.op.input_slot]))
                if on_op:
                    on_op(j)
        return [s.cpu() for s in slots]


def run_model(model: IntegerModel, x: torch.Tensor, device: str = "auto", backend: str = "auto") -> list[torch.Tensor]:
    """One-shot convenience: prepare and run."""
    return Executor(model, device, backend).run(x)
