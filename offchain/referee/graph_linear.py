"""The fast exact ``linear`` kernel of graph models on the ``float`` backend.

A float32 GEMM (over blocks of k whose worst-case partial sums stay within 2^24, as
referee.executor's ``float32`` kernel) gives the exact accumulator; the bias and the
requantization then go through referee.requant_f64 in float64 — one multiply, one add, one
clamp and one conversion, where the MLP executor's int64 path needs int64 shifts that cost
10-20x more per element on the CPUs measured here. Used only when every channel meets
``requant_f64.fits``; otherwise the graph executor keeps the MLP executor's kernels.
"""

import torch

from .executor import float_blocks
from .model import LinearOp
from .requant_f64 import fits, requant_, scale_offset


def usable(op: LinearOp) -> bool:
    """Whether every channel's worst case keeps the float64 requantization exact."""
    if op.wide:
        return True  # acc + b only: |acc + b| < 2^31, exact in float64
    bounds, m, s = op.accumulator_bounds().tolist(), op.multiplier.tolist(), op.shift.tolist()
    return all(fits(bound, mc, sc) for bound, mc, sc in zip(bounds, m, s))


class FastLinear:
    name = "float32+f64rq"

    def __init__(self, op: LinearOp, device: torch.device):
        self.op = op
        w_t = op.weight.t().to(torch.float32)
        self.blocks = [(a, b, w_t[a:b].contiguous().to(device)) for a, b in float_blocks(op.weight)]
        if op.wide:
            # float32 adds the bias exactly while every |acc + b| stays within 2^24; else float64.
            self.wide32 = int(op.accumulator_bounds().max()) <= 1 << 24
            self.bias = op.bias.to(torch.float32 if self.wide32 else torch.float64).to(device)
            self.no_bias = not bool(op.bias.any())
        else:
            self.scale, self.offset = scale_offset(op.multiplier, op.shift, op.bias, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.float32)
        if len(self.blocks) == 1 and self.op.wide and self.wide32:
            acc = xf @ self.blocks[0][2]  # exact float32 integers, |acc + b| <= 2^24
            return (acc if self.no_bias else acc.add_(self.bias)).to(torch.int32)
        if len(self.blocks) == 1:
            acc = (xf @ self.blocks[0][2]).to(torch.float64)  # one block: every partial sum < 2^24, exact
        else:
            acc = None
            for start, end, w_block in self.blocks:
                part = xf[:, start:end] @ w_block  # exact per block; block sums add in float64 (< 2^31)
                acc = part.to(torch.float64) if acc is None else acc.add_(part)
        if self.op.wide:
            return acc.add_(self.bias).to(torch.int32)  # |acc + b| < 2^31 by the accumulator bound
        return requant_(acc, self.scale, self.offset, self.op.relu)
