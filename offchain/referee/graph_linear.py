"""The fast exact ``linear`` kernels of graph models.

The accumulator comes from one of two exact GEMMs:

* ``float32``: float32 GEMMs over blocks of k whose worst-case partial sums stay within 2^24
  (as referee.executor's ``float32`` kernel);
* ``int_mm``: ``torch._int_mm``, int8 x int8 -> int32, exact because the model compiler bounds
  |acc| below 2^31. On CPUs with VNNI (vpdpbusd accumulates straight into int32) it is 5-7x
  faster than the float32 GEMM on the 2-core machine measured here; on a CPU without VNNI,
  int8 GEMMs may go through vpmaddubsw, whose int16 pair sums saturate, so it is used on CPU
  only where the CPU reports VNNI (or AMX) and a probe of extreme values is exact
  (``int_mm_exact_on_cpu``), and only for k and n multiples of 8 with at least 32 rows
  (zero-padded), the shapes it is documented for on CUDA: torch 2.13's CPU ``_int_mm``
  returns zeros for k = 1, n >= 2 (found by tests/test_transformer_exact.py).

The bias and the requantization then go through referee.requant_f64 in float64 — one
multiply, one add, one clamp and one conversion, where the MLP executor's int64 path needs
int64 shifts that cost 10-20x more per element here. Used only when every channel meets
``requant_f64.fits``; otherwise the graph executor keeps the MLP executor's kernels.
"""

import functools

import torch

from .executor import float_blocks
from .model import LinearOp
from .requant_f64 import fits, requant_, scale_offset


def int_mm_shape(op: LinearOp) -> bool:
    return op.in_cols % 8 == 0 and op.out_cols % 8 == 0


def usable(op: LinearOp) -> bool:
    """Whether every channel's worst case keeps the float64 requantization exact."""
    if op.wide:
        return True  # acc + b only: |acc + b| < 2^31, exact in float64
    bounds, m, s = op.accumulator_bounds().tolist(), op.multiplier.tolist(), op.shift.tolist()
    return all(fits(bound, mc, sc) for bound, mc, sc in zip(bounds, m, s))


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
        self.op, self.int_mm = op, int_mm
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
            self.scale, self.offset = scale_offset(op.multiplier, op.shift, op.bias, device)

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

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        acc = self._int_acc(x) if self.int_mm else self._float_acc(x)
        if self.op.wide:  # |acc + b| < 2^31 by the accumulator bound: exact in int32 and float64
            if not self.no_bias:
                acc = acc.add_(self.bias) if acc.dtype != torch.float32 or self.wide32 else acc.double().add_(self.bias)
            return acc.to(torch.int32)
        return requant_(acc.to(torch.float64), self.scale, self.offset, self.op.relu)
