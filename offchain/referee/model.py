"""The integer model: exact ops of any kind of protocol section 5 (``linear`` and the
transformer kinds of referee.ops) over int8, int16 and int32 slots.

``IntegerModel.validate`` checks what the model alone fixes: every op's ranges (the int32
accumulator bound included, for the dtype the op reads), that its input slots are earlier
ones, their column counts and dtypes, and the bounds an int16 input adds (5.0, 5.10). Row counts depend on the job: ``slot_shapes(rows)`` applies every kind's shape
rule to an input's row count and raises ``InputError`` naming the op whose rule fails, so an
executor refuses such a job before it runs. Commitments (params roots, ops root, model root)
are computed once and cached.
"""

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import NamedTuple

import torch

from . import commitments as cm
from . import ops as k
from .errors import InputError, ModelCompileError
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
    # Protocol 5.0: the output is the int32 accumulator itself (logits for argmax).
    wide: bool = False
    # Protocol 5.0: the output is int16, requantized with a 16-bit clamp.
    i16: bool = False
    kind = cm.KIND_LINEAR
    input_b = 0

    @property
    def in_cols(self) -> int:
        return self.weight.shape[1]

    @property
    def out_cols(self) -> int:
        return self.weight.shape[0]

    @property
    def flags(self) -> int:
        return ((cm.FLAG_RELU if self.relu else 0) | (cm.FLAG_WIDE if self.wide else 0)
                | (cm.FLAG_I16 if self.i16 else 0))

    def accumulator_bounds(self, in_max: int = 128) -> torch.Tensor:
        """B[c] = X * sum_j |W[c, j]| + |b[c]|: the largest |acc| an input with |x| <= X can
        reach (X = 128 for int8, 2^15 for int16)."""
        return in_max * self.weight.to(torch.int64).abs().sum(dim=1) + self.bias.to(torch.int64).abs()

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
    _require(not (op.i16 and op.wide), f"{where}: a linear op is not both wide and i16")
    _check_range(f"{where}: multiplier", op.multiplier, 1, INT32_MAX)
    _check_range(f"{where}: shift", op.shift, MIN_SHIFT, MAX_SHIFT)
    check_accumulator(op, where, INT8)


def check_accumulator(op: LinearOp, where: str, in_dtype: int) -> None:
    """Section 4's accumulator bound for an input of ``in_dtype``: X * sum|W[c]| + |b[c]| < 2^31."""
    bounds = op.accumulator_bounds(cm.DTYPE_ABS_MAX[in_dtype])
    worst = int(bounds.argmax())
    _require(int(bounds[worst]) <= INT32_MAX,
             f"{where}, output channel {worst}: worst-case |accumulator| {int(bounds[worst])} for an "
             f"{DTYPE_NAMES[in_dtype]} input reaches 2^31; scale down its weights or bias")


INT8, INT32, INT16 = cm.DTYPE_INT8, cm.DTYPE_INT32, cm.DTYPE_INT16
DTYPE_NAMES = {INT8: "int8", INT32: "int32", INT16: "int16"}
# 5.1: K * max|A| * max|B| < 2^31; with one int16 operand K <= 511. Two int16 operands are refused.
MATMUL_I16_MAX_K = 511
# 5.6: an int16 input keeps V = sum z^2 < n^3 * 2^32 <= 2^62 and |z * 2^15| < 2^41 in int64.
NORM_I16_MAX_COLS = 1024
OP_TYPES = (LinearOp, k.MatmulOp, k.TransposeOp, k.AddOp, k.LutOp, k.SoftmaxOp, k.NormOp, k.EmbedOp, k.ArgmaxOp,
            k.RopeOp, k.MulOp)
KIND_NAMES = {LinearOp: "linear", k.MatmulOp: "matmul", k.TransposeOp: "transpose", k.AddOp: "add",
              k.LutOp: "lut", k.SoftmaxOp: "softmax", k.NormOp: "norm", k.EmbedOp: "embed", k.ArgmaxOp: "argmax",
              k.RopeOp: "rope", k.MulOp: "mul"}
TWO_INPUTS = (k.MatmulOp, k.AddOp, k.MulOp)


def kind_name(op) -> str:
    return KIND_NAMES[type(op)]


def input_slots(op) -> list[int]:
    """The slots an op reads: input_a, then input_b for matmul, add, mul, a keymask softmax (5.5)
    and an argmax with carry (5.14)."""
    if (isinstance(op, TWO_INPUTS) or (isinstance(op, k.SoftmaxOp) and op.keymask)
            or (isinstance(op, k.ArgmaxOp) and op.carry)):
        return [op.input_slot, op.input_b]
    return [op.input_slot]


def input_cols(op) -> list[int]:
    """The column count each of ``input_slots(op)`` must have: in_cols, except a softmax's mask
    slot (one column per key, L = in_cols / H), a grouped matmul's B (H_b * K, 5.14) and an
    argmax's carried pair (2)."""
    if isinstance(op, k.SoftmaxOp) and op.keymask:
        return [op.in_cols, op.keys]
    if isinstance(op, k.MatmulOp):
        return [op.in_cols, op.b_cols]
    if isinstance(op, k.ArgmaxOp) and op.carry:
        return [op.in_cols, 2]
    return [op.in_cols] * len(input_slots(op))


def accepted_dtypes(op, index: int = 0) -> tuple[int, ...]:
    """The dtypes input ``index`` of a kind reads (5.0): int8 or int16, except embed (int32),
    argmax (any; its carried pair int32) and lut and softmax (int8 only: the input indexes a
    256-entry table)."""
    if isinstance(op, k.EmbedOp) or (isinstance(op, k.ArgmaxOp) and index == 1):
        return (INT32,)
    if isinstance(op, k.ArgmaxOp):
        return (INT8, INT16, INT32)
    if isinstance(op, (k.LutOp, k.SoftmaxOp)):
        return (INT8,)
    return (INT8, INT16)


def output_dtype(op, in_dtype: int = INT8) -> int:
    """The dtype an op writes (5.10); ``transpose`` keeps ``in_dtype``, its input's."""
    if isinstance(op, k.ArgmaxOp) or (isinstance(op, LinearOp) and op.wide):
        return INT32
    if isinstance(op, k.TransposeOp):
        return in_dtype
    return INT16 if op.i16 else INT8


def check_input_bounds(op, where: str, dtypes: list[int]) -> None:
    """The bounds an int16 input adds (5.0): linear's accumulator bound at 2^15, matmul's
    K * max|A| * max|B| < 2^31, norm's row width; and an argmax's carried pair is int32."""
    if isinstance(op, k.ArgmaxOp) and op.carry:
        _require(dtypes[1:] == [INT32], f"{where}: an argmax's carried pair (slot {op.input_b}) is int32")
    if INT16 not in dtypes:
        return
    if isinstance(op, LinearOp):
        check_accumulator(op, where, INT16)
    elif isinstance(op, k.MatmulOp):
        kk = op.in_cols // op.heads
        _require(dtypes != [INT16, INT16], f"{where}: a matmul reads at most one int16 operand")
        _require(kk <= MATMUL_I16_MAX_K, f"{where}: K = {kk} with an int16 operand; K * 2^15 * 2^7 < 2^31 "
                                         f"needs K <= {MATMUL_I16_MAX_K}")
    elif isinstance(op, k.NormOp):
        _require(op.rms or op.cols <= NORM_I16_MAX_COLS,  # RMSNorm's z = x keeps V < n 2^30 at any width
                 f"{where}: a LayerNorm reading int16 has at most {NORM_I16_MAX_COLS} columns, this one {op.cols}")


def output_rows(op, rows: list[int]) -> int:
    """The shape rule's row count (5.1-5.14) from the input slots' row counts; ValueError if it fails."""
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
    if isinstance(op, (k.AddOp, k.MulOp)) or (isinstance(op, k.ArgmaxOp) and op.carry):
        if rows[1] != a:
            raise ValueError(f"its inputs have {a} and {rows[1]} rows")
        return a
    if isinstance(op, (k.SoftmaxOp, k.RopeOp)):
        if a % op.seq:
            raise ValueError(f"the input has {a} rows, not a multiple of seq = {op.seq}")
        if isinstance(op, k.SoftmaxOp) and op.keymask and rows[1] != a // op.seq:
            raise ValueError(f"the mask has {rows[1]} rows; {a // op.seq} sequences of {op.seq} rows need "
                             f"{a // op.seq}, one per sequence")
        return a
    if isinstance(op, k.EmbedOp):
        return a * op.in_cols
    return a  # linear, lut, norm, argmax


class RegistryFacts(NamedTuple):
    """What a registry entry claims beside the model root (protocol 10.1): the dtypes and the
    row rule (a posted row count is a multiple of ``row_step`` and at most ``max_input_rows``;
    the output has ``rows * out_rows_num / out_rows_den`` rows)."""

    input_dtype: int
    output_dtype: int
    row_step: int
    max_input_rows: int
    out_rows_num: int
    out_rows_den: int


FACT_NAMES = RegistryFacts._fields


def entry_key(root: bytes, facts: RegistryFacts) -> bytes:
    """The registry's key of an entry (protocol 10.1): H(MR ‖ enc(output_dtype, row_step,
    max_input_rows, out_rows_num, out_rows_den)); it covers every registered fact."""
    return cm.keccak256(root + cm.enc(facts.output_dtype, facts.row_step, facts.max_input_rows,
                                      facts.out_rows_num, facts.out_rows_den))


def entry_mismatch(model: "IntegerModel", entry) -> str | None:
    """None if a registry entry (``IModelRegistry.Model``, any object with its fields) is
    ``model``'s; otherwise one line naming the first fact that differs. An entry is the
    registrant's claim: a job sized by wrong facts has no valid trace, so agents take none."""
    mine = {"root": model.root, "ops_root": model.ops_root, "n_ops": len(model.ops),
            "input_cols": model.input_cols, "output_cols": model.output_cols, **model.registry_facts()._asdict()}
    for name, want in mine.items():
        got = getattr(entry, name)
        got = bytes(got) if isinstance(want, bytes) else int(got)
        if got != want:
            shown = (lambda v: "0x" + v.hex()) if isinstance(want, bytes) else str
            return (f"the registry entry's {name} is {shown(got)} but {model.name}'s model file gives {shown(want)}; "
                    "its jobs are not this model's")
    return None


def check_op(op, where: str) -> None:
    """The rules of one op's own section (its kind, ranges and column limits), not its slots."""
    _require(isinstance(op, OP_TYPES), f"{where}: {type(op).__name__} is not an op kind")
    if isinstance(op, LinearOp):
        check_linear(op, where)
    else:
        op.check(where)
    _require(1 <= op.in_cols <= MAX_COLS and 1 <= op.out_cols <= MAX_COLS,
             f"{where}: columns ({op.in_cols}, {op.out_cols}) outside [1, {MAX_COLS}]")


@dataclass(eq=False)
class IntegerModel:
    """An exact integer model of any kinds: ops in topological order, op j writing slot j."""

    input_cols: int
    ops: list
    name: str = "model"
    # Float scales of the quantized input and output, kept for users; not committed.
    input_scale: float | None = None
    output_scale: float | None = None
    meta: dict = field(default_factory=dict)
    input_dtype: int = INT8  # int32 for token ids (a model whose first op is embed)

    @property
    def output_cols(self) -> int:
        return self.ops[-1].out_cols

    @property
    def output_dtype(self) -> int:
        return self.slot_dtype(len(self.ops))

    @property
    def state_depth(self) -> int:
        return cm.state_depth(len(self.ops))

    def slot_cols(self, slot: int) -> int:
        return self.input_cols if slot == 0 else self.ops[slot - 1].out_cols

    def slot_dtype(self, slot: int) -> int:
        if slot == 0:
            return self.input_dtype
        op = self.ops[slot - 1]
        # transpose keeps its input's dtype; every other kind's follows from its flags
        return output_dtype(op, self.slot_dtype(op.input_slot) if isinstance(op, k.TransposeOp) else INT8)

    def kinds(self) -> dict[str, int]:
        """Op count by kind name, in the order kinds first appear."""
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[kind_name(op)] = counts.get(kind_name(op), 0) + 1
        return counts

    def validate(self) -> "IntegerModel":
        """Check every rule of protocol sections 4, 5 and 8 that the model fixes; ModelCompileError otherwise."""
        _require(1 <= len(self.ops) <= MAX_OPS, f"a model has 1 to {MAX_OPS} ops, this one has {len(self.ops)}")
        _require(isinstance(self.input_cols, int) and 1 <= self.input_cols <= MAX_COLS,
                 f"input_cols must be in [1, {MAX_COLS}], got {self.input_cols}")
        _require(self.input_dtype in (INT8, INT32), f"input dtype {self.input_dtype} is neither int8 (0) nor int32 (1)")
        for j, op in enumerate(self.ops, start=1):
            where = f"op {j}"
            check_op(op, where)
            dtypes = []
            for slot, want in zip(input_slots(op), input_cols(op)):
                _require(isinstance(slot, int) and 0 <= slot < j, f"{where}: input slot {slot} is not an earlier slot")
                cols, dtype = self.slot_cols(slot), self.slot_dtype(slot)
                _require(cols == want, f"{where}: takes {want} columns but slot {slot} has {cols}")
                _require(dtype in accepted_dtypes(op, len(dtypes)),
                         f"{where}: cannot read slot {slot} of dtype {DTYPE_NAMES[dtype]}")
                dtypes.append(dtype)
            check_input_bounds(op, where, dtypes)
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
            shapes.append((out, op.out_cols, self.slot_dtype(j)))
        return shapes

    def _slot_rows(self, rows: int) -> list[int] | None:
        """Every slot's row count for an input of ``rows`` rows by the shape rules alone (no
        MAX_ROWS cap), or None if a rule fails."""
        counts = [rows]
        for op in self.ops:
            try:
                counts.append(output_rows(op, [counts[s] for s in input_slots(op)]))
            except ValueError:
                return None
        return counts

    @cached_property
    def row_rule(self) -> tuple[int, int, int, int]:
        """(row_step, max_input_rows, out_rows_num, out_rows_den) of protocol 10.1, from the
        shape rules: every slot's rows are ``rows_0 * a / b`` and every rule a divisibility, so
        the row counts a job may have are the multiples of the smallest one, ``row_step``;
        ``max_input_rows`` is the largest multiple that keeps every slot within MAX_ROWS and the
        output's rows are ``rows_0 * num / den`` in lowest terms. ModelCompileError if no row
        count fits."""
        step = next((r for r in range(1, MAX_ROWS + 1) if self._slot_rows(r) is not None), None)
        _require(step is not None, f"{self.name}: no input of 1 to {MAX_ROWS} rows satisfies every op's shape rule")
        ratios = [Fraction(count, step) for count in self._slot_rows(step)]
        most = max(ratios)
        max_rows = int(MAX_ROWS / (most * step)) * step
        _require(max_rows >= step, f"{self.name}: an input of {step} rows already makes a slot of "
                                   f"{int(most * step)} rows; at most {MAX_ROWS}")
        return step, max_rows, ratios[-1].numerator, ratios[-1].denominator

    def registry_facts(self) -> RegistryFacts:
        """The facts a registry entry of this model must state (protocol 10.1)."""
        return RegistryFacts(self.input_dtype, self.output_dtype, *self.row_rule)

    def registration(self) -> tuple:
        """The arguments of ``ModelRegistry.register`` for this model, in order."""
        return (len(self.ops), self.input_cols, self.output_cols, self.ops_root, *self.registry_facts())

    @property
    def entry(self) -> bytes:
        """The registry's key of this model's true entry (``model_id(entry)``)."""
        return entry_key(self.root, self.registry_facts())

    def descriptors(self) -> list[bytes]:
        return [op.descriptor() for op in self.ops]

    @cached_property
    def op_tree(self) -> MerkleTree:
        """Tree over the op leaves H(desc_j), op j at leaf j - 1."""
        leaves = [cm.op_leaf(d) for d in self.descriptors()]
        return MerkleTree(leaves, depth_for(len(self.ops)))

    @property
    def ops_root(self) -> bytes:
        return self.op_tree.root

    @cached_property
    def root(self) -> bytes:
        """Protocol 5: an int8-input model's root is unchanged by input_dtype (MLP roots stay)."""
        return cm.model_root(len(self.ops), self.input_cols, self.output_cols, self.ops_root, self.input_dtype)
