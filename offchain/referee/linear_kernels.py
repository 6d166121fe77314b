"""The exact kernels of the ``linear`` op (protocol section 4), on CPU or CUDA.

Each op gets one kernel, all exact and bit-identical (tests compare every one with the
independent pure-integer reference); ``linear_kernel`` picks the fastest for the op, device
and backend:

* ``fused64`` (small k, backend ``float``, or a shape int_mm cannot take): one float64 GEMM computes ``(acc * m + 2^(s-1)) / 2^s`` directly,
  with ``m * 2^-s`` folded into the weights; a floor and a clamp finish the protocol's
  rounding. Exact when ``B[c] * m[c] + 2^(s-1) < 2^53`` for every channel (``B`` the
  accumulator bound): every product and partial sum, in any order, is a multiple of ``2^-s``
  whose numerator stays below ``2^53``, so float64 holds it exactly. The quantizer's 21-bit
  multipliers meet this whenever ``s <= 52``.
* ``FastLinear`` (CPU): an exact GEMM — float32 blocks, or ``torch._int_mm`` where
  the CPU has VNNI (``int_mm_exact_on_cpu``) — then bias and requantization in float64
  through referee.requant_f64 (one multiply, one add, one clamp, one conversion), used when
  every channel meets ``requant_f64.fits``. On the 2-core machine measured here int_mm is
  5-7x faster than the float32 GEMM, and the int64 requantization costs 10-20x the float64
  one per element. On a CPU without VNNI, int8 GEMMs may go through vpmaddubsw, whose int16
  pair sums saturate: int_mm is used on CPU only where the CPU reports VNNI (or AMX) and a
  probe of extreme values is exact, and only for k and n multiples of 8 with at least 32
  rows (zero-padded), the shapes it is documented for on CUDA (torch 2.13's CPU ``_int_mm``
  returns zeros for k = 1, n >= 2, found by tests/test_transformer_exact.py).
* ``float32``: float32 GEMMs over blocks of k whose worst case ``128 * sum |W[c, j]|`` stays
  within 2^24, so every partial sum in any order is an integer float32 represents exactly;
  block sums add up in float64, then int64 requantization with an arithmetic shift.
* ``int_mm`` (CUDA): ``torch._int_mm`` int8 x int8 -> int32, exact because the model
  compiler bounds |acc| below 2^31; operands are zero-padded to the kernel's shape rules.
* ``int64``: a plain int64 matmul, slow, kept as the obvious-by-inspection path.

A ``wide`` op (protocol 5.0) returns the int32 accumulator plus bias, exact by the same bound.

An int16 input (protocol 5.0) keeps every int8 GEMM: ``x = 256 hi + lo + 128`` with
``hi = x >> 8`` and ``lo = (x & 255) - 128``, both int8, so ``x W^T = 256 (hi W^T) + lo W^T +
128 sum_j W[c, j]``: the two halves go through the same GEMM as one batch of twice the rows,
each exact as an int8 GEMM is, and combine in float64 (every term below 2^40, exact). The
bounds that pick a kernel use the int16 accumulator bound ``2^15 sum|W[c]| + |b[c]|``. An op
with ``i16`` requantizes with the 16-bit clamp (``rq16``).
"""

import functools
import math

import torch

from . import commitments as cm
from .kernels import bits_of, split16
from .model import LinearOp
from .requant_f64 import fits, requant_, scale_offset

FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53
INT8_ABS_MAX = 128
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


def _out_range(op: LinearOp) -> tuple[int, int, torch.dtype]:
    """(low, high, dtype) of the requantized output: int8, or int16 with i16; low 0 with ReLU."""
    top = (1 << (bits_of(op) - 1))
    return (0 if op.relu else -top), top - 1, torch.int16 if op.i16 else torch.int8


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor, relu: bool) -> torch.Tensor:
    """clamp((acc * m + 2^(s-1)) >> s, -128, 127), then ReLU; acc is int64 (rows, n), m and s (n,)."""
    return _requantize_(acc.clone(), multiplier.to(torch.int64), _halves(shift), shift.to(torch.int64),
                        (0 if relu else -128, 127, torch.int8))


def _requantize_(acc: torch.Tensor, m: torch.Tensor, half: torch.Tensor, s: torch.Tensor, out_range) -> torch.Tensor:
    """In-place requantization of an int64 accumulator; m, half = 2^(s-1) and s are int64 (n,);
    ``out_range`` = (low, high, dtype) of the clamp (``_out_range``)."""
    # |acc| < 2^31 and m < 2^31, so acc * m + half < 2^63: no int64 overflow.
    acc.mul_(m).add_(half).bitwise_right_shift_(s)
    low, high, dtype = out_range
    return acc.clamp_(low, high).to(dtype)


def fused64_exact(op: LinearOp, in_dtype: int = cm.DTYPE_INT8) -> bool:
    """Whether every channel has B[c] * m[c] + 2^(s[c]-1) < 2^53 (the fused64 kernel is exact)."""
    bounds = op.accumulator_bounds(cm.DTYPE_ABS_MAX[in_dtype])
    worst = bounds * op.multiplier.to(torch.int64) + _halves(op.shift)
    return bool((worst < FLOAT64_EXACT).all())  # B < 2^31 and m < 2^31: no int64 overflow


def split_rows(x: torch.Tensor) -> torch.Tensor:
    """An int16 (rows, k) as the int8 (2 rows, k) stack [hi; lo] of kernels.split16: one GEMM."""
    return split16(x).flatten(0, 1)


def lo_offset(op: LinearOp, device: torch.device) -> torch.Tensor:
    """128 sum_j W[c, j] in float64: the constant that split16's lo half leaves out (join16)."""
    return (128.0 * op.weight.to(torch.float64).sum(dim=1)).to(device)


def join16(acc2: torch.Tensor, rows: int, row_sum: torch.Tensor) -> torch.Tensor:
    """256 acc(hi) + acc(lo) + 128 sum_j W[c, j] in float64: exact, every term below 2^40."""
    acc2 = acc2.to(torch.float64)
    return acc2[:rows].mul_(256.0).add_(acc2[rows:]).add_(row_sum)


class _Kernel:
    """One prepared op: input slot (rows, k) on the device -> output slot (rows, n)."""

    name = ""

    def __init__(self, op: LinearOp, device: torch.device):
        self.op = op
        self.out_range = _out_range(op)
        self.row_sum = lo_offset(op, device)

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
        """Exact int64 acc = x @ W^T (no bias) of an int8 x."""
        raise NotImplementedError

    def accumulate16(self, x: torch.Tensor) -> torch.Tensor:
        """Exact int64 acc = x @ W^T of an int16 x: two int8 halves in one GEMM (module doc)."""
        return join16(self.accumulate(split_rows(x)), x.shape[0], self.row_sum).to(torch.int64)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        acc = (self.accumulate16(x) if x.dtype == torch.int16 else self.accumulate(x)).add_(self.bias)
        if self.op.wide:  # protocol 5.0: the int32 accumulator itself, exact by the bound
            return acc.to(torch.int32)
        return _requantize_(acc, self.multiplier, self.half, self.shift, self.out_range)


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
        low, high, dtype = self.out_range
        return y.floor_().clamp_(low, high).to(dtype)


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

    def accumulate16(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.int64) @ self.weight_t  # exact for any int16 x: no split needed


def int_mm_shape(op: LinearOp) -> bool:
    return op.in_cols % 8 == 0 and op.out_cols % 8 == 0


def usable(op: LinearOp, in_dtype: int = cm.DTYPE_INT8) -> bool:
    """Whether every channel's worst case keeps the float64 requantization exact."""
    if op.wide:
        return True  # acc + b only: |acc + b| < 2^31, exact in float64
    bounds = op.accumulator_bounds(cm.DTYPE_ABS_MAX[in_dtype]).tolist()
    m, s = op.multiplier.tolist(), op.shift.tolist()
    return all(fits(bound, mc, sc, bits_of(op)) for bound, mc, sc in zip(bounds, m, s))


@functools.cache
def int_mm_exact_on_cpu() -> bool:
    """VNNI/AMX reported by the CPU, and torch._int_mm exact on extreme values (else False)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    if not any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8")):
        return False
    try:
        for rows, k, n in ((32, 8, 8), (33, 1024, 24), (64, 4096, 40), (40, 16, 1024)):
            for x_val, w_val in ((127, 127), (-128, -128), (-128, 127), (127, -128)):
                x = torch.full((rows, k), x_val, dtype=torch.int8)
                w = torch.full((n, k), w_val, dtype=torch.int8)
                w[::2, ::3] = -w_val - 1 if w_val == 127 else 127  # mixed signs within a row
                got = torch._int_mm(x, w.t()).to(torch.int64)
                if not torch.equal(got, x.to(torch.int64) @ w.to(torch.int64).t()):
                    return False
    except RuntimeError:
        return False
    return True


class FastLinear:
    """One linear op: exact GEMM (float32 blocks or int_mm), then bias and rq in float64."""

    def __init__(self, op: LinearOp, device: torch.device, int_mm: bool = False):
        self.op, self.int_mm, self.bits = op, int_mm, bits_of(op)
        self.row_sum = lo_offset(op, device)
        self.name = "int_mm+f64rq" if int_mm else "float32+f64rq"
        if int_mm:
            self.weight = op.weight.contiguous().to(device)  # (n, k), passed as .t(): column-major B
        else:
            w_t = op.weight.t().to(torch.float32)
            self.blocks = [(a, b, w_t[a:b].contiguous().to(device)) for a, b in float_blocks(op.weight)]
        if op.wide:
            self.no_bias = not bool(op.bias.any())
            # float32 adds the bias exactly while every |acc + b| stays within 2^24; else float64.
            self.wide32 = int(op.accumulator_bounds().max()) <= 1 << 24
            bias_dtype = torch.int32 if int_mm else torch.float32 if self.wide32 else torch.float64
            self.bias = op.bias.to(bias_dtype).to(device)
        else:
            self.scale, self.offset = scale_offset(op.multiplier, op.shift, op.bias, device, self.bits)
        self.offset16 = self._join32_offset(op, device) if int_mm and not op.wide else None

    def _join32_offset(self, op: LinearOp, device: torch.device):
        """For an int16 input on int_mm: the offset with 128 sum_j W[c, j] folded into the bias, or
        None where the int32 join below could overflow or its float64 rq be inexact.

        int_mm gives acc(hi) and acc(lo) in int32; 256 acc(hi) + acc(lo) = sum_j (x_j - 128) W[c, j]
        has magnitude <= 32896 sum|W[c]|, which must stay below 2^31 to be joined in int32 (one
        multiply and one add in place, instead of three float64 passes); then
        rq((x - 128) W + b + 128 sum W) is requant_f64's rq of that integer with the bias b + 128 sum W,
        exact while fits(33024 sum|W[c]| + |b[c]|) holds (requant_f64)."""
        w_sum = op.weight.to(torch.int64).sum(dim=1)
        abs_sum = op.weight.to(torch.int64).abs().sum(dim=1)
        if int(abs_sum.max()) * 32896 > (1 << 31) - 1:
            return None
        worst = (33024 * abs_sum + op.bias.to(torch.int64).abs()).tolist()
        if not all(fits(w, m, sh, self.bits) for w, m, sh in zip(worst, op.multiplier.tolist(), op.shift.tolist())):
            return None
        return scale_offset(op.multiplier, op.shift, op.bias.to(torch.int64) + 128 * w_sum, device, self.bits)[1]

    def _int_acc(self, x: torch.Tensor) -> torch.Tensor:
        """Exact int32 acc = x @ W^T (|acc| < 2^31); fewer than 32 rows are zero-padded."""
        rows = x.shape[0]
        if rows < 32:
            x = torch.cat([x, torch.zeros(32 - rows, x.shape[1], dtype=torch.int8, device=x.device)])
        return torch._int_mm(x.contiguous(), self.weight.t())[:rows]

    def _float_acc(self, x: torch.Tensor) -> torch.Tensor:
        """The exact accumulator as float32 (one block) or float64 (block sums, < 2^31)."""
        xf = x.to(torch.float32)
        if len(self.blocks) == 1:
            return xf @ self.blocks[0][2]  # every partial sum an integer within 2^24: exact
        acc = None
        for start, end, w_block in self.blocks:
            part = xf[:, start:end] @ w_block  # exact per block; block sums add in float64
            acc = part.to(torch.float64) if acc is None else acc.add_(part)
        return acc

    def _acc(self, x: torch.Tensor) -> torch.Tensor:
        return self._int_acc(x) if self.int_mm else self._float_acc(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.int16 and self.offset16 is not None:  # joined in int32 (_join32_offset)
            rows = x.shape[0]
            acc2 = self._int_acc(split_rows(x))
            acc = acc2[:rows].mul_(256).add_(acc2[rows:])  # sum (x - 128) W, exact in int32
            return requant_(acc.to(torch.float64), self.scale, self.offset16, self.op.relu, self.bits)
        if x.dtype == torch.int16:  # two int8 halves in one GEMM, joined in float64 (module doc)
            acc = join16(self._acc(split_rows(x)), x.shape[0], self.row_sum)
        else:
            acc = self._acc(x)
        if self.op.wide:  # |acc + b| < 2^31 by the accumulator bound: exact in int32 and float64
            if not self.no_bias:
                acc = acc.add_(self.bias) if acc.dtype != torch.float32 or self.wide32 else acc.double().add_(self.bias)
            return acc.to(torch.int32)
        return requant_(acc.to(torch.float64), self.scale, self.offset, self.op.relu, self.bits)


def linear_kernel(op: LinearOp, device: torch.device, backend: str, fused64_max_k: int = FUSED64_MAX_K,
                  in_dtype: int = cm.DTYPE_INT8):
    """The kernel of one linear op (every choice is exact; this picks the fastest).

    ``int64`` always takes the plain int64 matmul. On CPU with backend ``int_mm`` (the default
    where the CPU has VNNI), ``FastLinear`` with int_mm wherever the shape and the float64
    bound allow: 3-5x faster than ``fused64`` even at k = 64 (2-core AVX-512 VNNI machine).
    Otherwise a small-k op whose float64 bound holds takes ``fused64`` (one GEMM, no
    requantization pass); on CPU the rest take ``FastLinear`` with float32 blocks where its
    float64 requantization is exact; what remains takes ``int_mm`` or the float32 blocks.
    """
    if backend == "int64":
        return _Int64(op, device)
    cpu_fast = device.type == "cpu" and usable(op, in_dtype)
    if cpu_fast and backend == "int_mm" and int_mm_shape(op):
        return FastLinear(op, device, int_mm=True)
    if op.in_cols <= fused64_max_k and not op.wide and fused64_exact(op, in_dtype):
        return _Fused64(op, device)
    if cpu_fast:
        return FastLinear(op, device)
    return _IntMM(op, device) if backend == "int_mm" else _Float32Blocks(op, device)
