"""The integer model: a list of exact ``linear`` ops over int8 slots (protocol sections 4-5).

``IntegerModel.validate`` enforces every range of the protocol, including the int32
accumulator bound, so a model that exists in memory can always be executed exactly and
verified on-chain. Commitments (weights roots, ops root, model root) are computed once and
cached.
"""

from dataclasses import dataclass, field
from functools import cached_property

import torch

from . import commitments as cm
from .errors import ModelCompileError
from .merkle import MerkleTree, depth_for

INT32_MAX = (1 << 31) - 1
MAX_COLS = 16384
MAX_ROWS = 65536
MAX_OPS = 65535
MIN_SHIFT, MAX_SHIFT = 1, 62


@dataclass(eq=False)
class LinearOp:
    """y = requant(x @ weight.T + bias) with optional ReLU; one output channel per weight row."""

    input_slot: int
    weight: torch.Tensor      # (n, k) int8
    bias: torch.Tensor        # (n,) int32
    multiplier: torch.Tensor  # (n,) int32, in [1, 2^31 - 1]
    shift: torch.Tensor       # (n,) int32, in [1, 62]
    relu: bool
    # Protocol 5.0: the output is the int32 accumulator itself (logits for argmax); graph
    # models only, an MLP's IntegerModel refuses it.
    wide: bool = False

    @property
    def in_cols(self) -> int:
        return self.weight.shape[1]

    @property
    def out_cols(self) -> int:
        return self.weight.shape[0]

    @property
    def flags(self) -> int:
        return (cm.FLAG_RELU if self.relu else 0) | (cm.FLAG_WIDE if self.wide else 0)

    def accumulator_bounds(self) -> torch.Tensor:
        """B[c] = 128 * sum_j |W[c, j]| + |b[c]|: the largest |acc| any int8 input can reach."""
        return 128 * self.weight.to(torch.int64).abs().sum(dim=1) + self.bias.to(torch.int64).abs()

    @cached_property
    def weights(self) -> cm.TensorCommitment:
        return cm.commit_weights(self.weight, self.bias, self.multiplier, self.shift)

    def params_header(self) -> bytes:
        """enc(n, k, weight rows root): the words hashed into the weights root."""
        return cm.enc(self.out_cols, self.in_cols, self.weights.rows_root)

    @property
    def params_root(self) -> bytes:
        return self.weights.root

    def descriptor(self) -> bytes:
        return cm.descriptor(cm.KIND_LINEAR, self.flags, self.input_slot, 0, self.in_cols,
                             self.out_cols, self.weights.root)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ModelCompileError(message)


def _check_range(name: str, tensor: torch.Tensor, low: int, high: int) -> None:
    bad = ((tensor < low) | (tensor > high)).nonzero()
    if len(bad):
        index = int(bad[0][0])
        raise ModelCompileError(f"{name}[{index}] = {int(tensor[index])} is outside [{low}, {high}]")


def check_linear(op: LinearOp, where: str) -> None:
    """Every rule of protocol section 4 on one linear op's own parameters (not its slots)."""
    _require(op.weight.dtype == torch.int8 and op.weight.dim() == 2,
             f"{where}: weight must be a 2-D int8 tensor, got {op.weight.dtype} {tuple(op.weight.shape)}")
    n, k = op.weight.shape
    for name in ("bias", "multiplier", "shift"):
        tensor = getattr(op, name)
        _require(tensor.dtype == torch.int32 and tuple(tensor.shape) == (n,),
                 f"{where}: {name} must be int32 of shape ({n},), got {tensor.dtype} {tuple(tensor.shape)}")
    _require(1 <= n <= MAX_COLS and 1 <= k <= MAX_COLS, f"{where}: shape ({n}, {k}) exceeds {MAX_COLS}")
    _require(not (op.relu and op.wide), f"{where}: a linear op is not both ReLU and wide")
    _check_range(f"{where}: multiplier", op.multiplier, 1, INT32_MAX)
    _check_range(f"{where}: shift", op.shift, MIN_SHIFT, MAX_SHIFT)
    bounds = op.accumulator_bounds()
    worst = int(bounds.argmax())
    _require(int(bounds[worst]) <= INT32_MAX,
             f"{where}, output channel {worst}: worst-case |accumulator| {int(bounds[worst])} "
             f"reaches 2^31; scale down its weights or bias")


@dataclass(eq=False)
class IntegerModel:
    """An exact integer model: ops in topological order, op j writing slot j."""

    input_cols: int
    ops: list[LinearOp]
    name: str = "model"
    # Float scales of the quantized input and output, kept for users; not committed.
    input_scale: float | None = None
    output_scale: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def output_cols(self) -> int:
        return self.ops[-1].out_cols

    @property
    def state_depth(self) -> int:
        return cm.state_depth(len(self.ops))

    def slot_cols(self, slot: int) -> int:
        return self.input_cols if slot == 0 else self.ops[slot - 1].out_cols

    def validate(self) -> "IntegerModel":
        """Check every rule of protocol sections 4, 5 and 8; raise ModelCompileError naming the rule."""
        _require(1 <= len(self.ops) <= MAX_OPS, f"a model has 1 to {MAX_OPS} ops, this one has {len(self.ops)}")
        _require(1 <= self.input_cols <= MAX_COLS, f"input_cols must be in [1, {MAX_COLS}], got {self.input_cols}")
        for j, op in enumerate(self.ops, start=1):
            where = f"op {j}"
            _require(isinstance(op, LinearOp), f"{where}: only linear ops are supported")
            _require(not op.wide, f"{where}: a wide linear op needs a graph model (referee.graph)")
            check_linear(op, where)
            _require(0 <= op.input_slot < j, f"{where}: input slot {op.input_slot} is not an earlier slot")
            expected = self.slot_cols(op.input_slot)
            _require(op.in_cols == expected, f"{where}: takes {op.in_cols} columns but slot {op.input_slot} has {expected}")
        return self

    @cached_property
    def op_tree(self) -> MerkleTree:
        """Tree over the op leaves H(desc_j), op j at leaf j - 1."""
        leaves = [cm.op_leaf(op.descriptor()) for op in self.ops]
        return MerkleTree(leaves, depth_for(len(self.ops)))

    @property
    def ops_root(self) -> bytes:
        return self.op_tree.root

    @cached_property
    def root(self) -> bytes:
        return cm.model_root(len(self.ops), self.input_cols, self.output_cols, self.ops_root)
