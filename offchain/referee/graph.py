"""A graph model: any ops of protocol section 5 (linear and the transformer kinds) over slots
of differing shapes and dtypes.

``GraphModel.validate`` checks what the model alone fixes: every op's ranges, that its input
slots are earlier ones, their column counts and dtypes (5.10). Row counts depend on the job:
``slot_shapes(rows)`` applies every kind's shape rule to an input's row count and raises
``InputError`` naming the op whose rule fails, so an executor refuses such a job before it
runs. ``IntegerModel`` (referee.model) stays the MLP-only model of the existing file format.
"""

from dataclasses import dataclass, field
from functools import cached_property

from . import commitments as cm
from . import ops as k
from .errors import InputError, ModelCompileError
from .merkle import MerkleTree, depth_for
from .model import MAX_COLS, MAX_OPS, MAX_ROWS, LinearOp, check_linear

INT8, INT32 = cm.DTYPE_INT8, cm.DTYPE_INT32
OP_TYPES = (LinearOp, k.MatmulOp, k.TransposeOp, k.AddOp, k.LutOp, k.SoftmaxOp, k.NormOp, k.EmbedOp, k.ArgmaxOp)
TWO_INPUTS = (k.MatmulOp, k.AddOp)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ModelCompileError(message)


def input_slots(op) -> list[int]:
    return [op.input_slot, op.input_b] if isinstance(op, TWO_INPUTS) else [op.input_slot]


def accepted_dtypes(op) -> tuple[int, ...]:
    """The input dtypes a kind reads (5.0): int8, except embed (int32) and argmax (either)."""
    if isinstance(op, k.EmbedOp):
        return (INT32,)
    if isinstance(op, k.ArgmaxOp):
        return (INT8, INT32)
    return (INT8,)


def output_dtype(op) -> int:
    if isinstance(op, k.ArgmaxOp) or (isinstance(op, LinearOp) and op.wide):
        return INT32
    return INT8


def output_rows(op, rows: list[int]) -> int:
    """The shape rule's row count (5.1-5.8) from the input slots' row counts; ValueError if it fails."""
    a = rows[0]
    if isinstance(op, k.MatmulOp):
        if a % op.seq:
            raise ValueError(f"A has {a} rows, not a multiple of seq = {op.seq}")
        if rows[1] != (a // op.seq) * (op.out_cols // op.heads):
            raise ValueError(f"B has {rows[1]} rows; {a // op.seq} sequences of {op.out_cols // op.heads} rows need "
                             f"{(a // op.seq) * (op.out_cols // op.heads)}")
        return a
    if isinstance(op, k.TransposeOp):
        r_in = op.out_cols // op.heads
        if a % r_in:
            raise ValueError(f"the input has {a} rows, not a multiple of {r_in}")
        return a // r_in * (op.in_cols // op.heads)
    if isinstance(op, k.AddOp):
        if rows[1] != a:
            raise ValueError(f"its inputs have {a} and {rows[1]} rows")
        return a
    if isinstance(op, k.SoftmaxOp):
        if a % op.seq:
            raise ValueError(f"the input has {a} rows, not a multiple of seq = {op.seq}")
        return a
    if isinstance(op, k.EmbedOp):
        return a * op.in_cols
    return a  # linear, lut, norm, argmax


@dataclass(eq=False)
class GraphModel:
    """An exact integer model of any kinds: ops in topological order, op j writing slot j."""

    input_cols: int
    ops: list
    input_dtype: int = INT8
    name: str = "model"
    meta: dict = field(default_factory=dict)  # float scales etc. for users; not committed

    @property
    def output_cols(self) -> int:
        return self.ops[-1].out_cols

    @property
    def state_depth(self) -> int:
        return cm.state_depth(len(self.ops))

    def slot_cols(self, slot: int) -> int:
        return self.input_cols if slot == 0 else self.ops[slot - 1].out_cols

    def slot_dtype(self, slot: int) -> int:
        return self.input_dtype if slot == 0 else output_dtype(self.ops[slot - 1])

    def validate(self) -> "GraphModel":
        """Check every rule of protocol sections 4, 5 and 8 that the model fixes; ModelCompileError otherwise."""
        _require(1 <= len(self.ops) <= MAX_OPS, f"a model has 1 to {MAX_OPS} ops, this one has {len(self.ops)}")
        _require(1 <= self.input_cols <= MAX_COLS, f"input_cols must be in [1, {MAX_COLS}], got {self.input_cols}")
        _require(self.input_dtype in (INT8, INT32), f"input dtype {self.input_dtype} is neither int8 (0) nor int32 (1)")
        for j, op in enumerate(self.ops, start=1):
            where = f"op {j}"
            _require(isinstance(op, OP_TYPES), f"{where}: {type(op).__name__} is not an op kind")
            if isinstance(op, LinearOp):
                check_linear(op, where)
            else:
                op.check(where)
            _require(1 <= op.in_cols <= MAX_COLS and 1 <= op.out_cols <= MAX_COLS,
                     f"{where}: columns ({op.in_cols}, {op.out_cols}) outside [1, {MAX_COLS}]")
            for slot in input_slots(op):
                _require(isinstance(slot, int) and 0 <= slot < j, f"{where}: input slot {slot} is not an earlier slot")
                cols, dtype = self.slot_cols(slot), self.slot_dtype(slot)
                _require(cols == op.in_cols, f"{where}: takes {op.in_cols} columns but slot {slot} has {cols}")
                _require(dtype in accepted_dtypes(op), f"{where}: cannot read slot {slot} of dtype "
                         f"{'int32' if dtype == INT32 else 'int8'}")
        return self

    def slot_shapes(self, rows: int) -> list[tuple[int, int, int]]:
        """(rows, cols, dtype) of every slot for an input of ``rows`` rows; InputError if a rule fails."""
        if not 1 <= rows <= MAX_ROWS:
            raise InputError(f"input has {rows} rows; allowed are 1 to {MAX_ROWS}")
        shapes = [(rows, self.input_cols, self.input_dtype)]
        for j, op in enumerate(self.ops, start=1):
            try:
                out = output_rows(op, [shapes[s][0] for s in input_slots(op)])
            except ValueError as e:
                raise InputError(f"op {j} cannot run on an input of {rows} rows: {e}") from None
            if out > MAX_ROWS:
                raise InputError(f"op {j} would write {out} rows for an input of {rows} rows; at most {MAX_ROWS}")
            shapes.append((out, op.out_cols, output_dtype(op)))
        return shapes

    def descriptors(self) -> list[bytes]:
        return [op.descriptor() for op in self.ops]

    @cached_property
    def op_tree(self) -> MerkleTree:
        leaves = [cm.op_leaf(d) for d in self.descriptors()]
        return MerkleTree(leaves, depth_for(len(self.ops)))

    @property
    def ops_root(self) -> bytes:
        return self.op_tree.root

    @cached_property
    def root(self) -> bytes:
        return cm.model_root(len(self.ops), self.input_cols, self.output_cols, self.ops_root, self.input_dtype)
