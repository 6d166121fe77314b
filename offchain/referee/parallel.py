"""Tensor-parallel exact execution, the plan: which ops are split across R ranks, and how,
derived from the IntegerModel alone (no annotations; issue 20, Megatron-LM's pattern).

Every slot j is either ``FULL`` (each rank holds all of it) or ``COLS`` (rank r holds column
block r of R equal contiguous blocks: columns [r c / R, (r + 1) c / R) of its c columns, all
rows). Each op then runs in one mode:

* ``replicate``: every rank runs the whole op on full inputs (embed, norm, add on the residual
  stream, argmax, the head, pooling);
* ``column``: a linear reading a full slot, writing a ``COLS`` one: rank r's rows of W
  (its output channels, with their bias, m and s);
* ``row``: a linear reading a ``COLS`` slot, writing a full one: rank r's columns of W give an
  integer partial accumulator; one all-reduce (SUM, exact in any order); then bias and the
  requantization once, on every rank;
* ``shard``: a per-head or elementwise op (rope, matmul, softmax, transpose, lut, mul, add) on
  ``COLS`` inputs, writing ``COLS``: rank r runs it on its heads (H / R of them, GQA: its
  H_b / R KV groups with their query heads) or its columns. A softmax's key mask stays full.

Why contiguous blocks work everywhere: heads occupy contiguous column blocks of every
attention slot (q, k, scores, P, v, the transposed v, P.V), and GQA's query head h reads KV
head h // (H / H_b), so R | H_b keeps each rank's query heads with their KV heads.

Derivation: slots joined by a shard-able op (its inputs and its output, a mask excepted) form
one region; a region is split when every slot in it is written by a linear or a shard-able op,
read only by shard-able ops or linears, is neither the input nor the output, and R divides what
it must (heads, KV heads, a linear's output channels or inputs). Regions are chosen in slot
order, never two joined by one linear (a linear is column or row parallel, not both): so an
MLP's linears alternate column, row. A region whose R does not divide its heads / KV groups /
widths is **replicated** (not refused), and ``Plan.notes`` names the op and why; the
description says so. With R = 1 the same plan is made (every split has one block): one rank
runs the very code path that R ranks run.

API for referee.parallel_commit (the split commitment and trace store):

* ``plan(model, ranks) -> Plan``: ``plan.split[j]`` (FULL or COLS, slots 0..N),
  ``plan.modes[j - 1]`` (op j's mode), ``plan.block(j, rank) -> (lo, hi)`` the columns that
  rank holds of slot j (all of them for FULL).
* ``referee.parallel_runtime.RankRun(model, plan, rank, device, backend)``: one rank's shards of
  the weights and kernels; ``.run(x) -> RankResult``.
* ``RankResult.shard(j) -> (split, tensor)``: this rank's part of slot j (the whole slot for
  FULL, its column block for COLS, on the rank's device); ``RankResult.shards`` all of them.
* ``referee.parallel_runtime.gather_slot(result, j)``: the whole slot j on rank 0 (None on the
  others), the interim gather (tests and benchmarks compare whole slots with it);
  ``run_rank(model, x, plan, rank, device, backend, finish=gather_all, group=None)`` runs one
  rank and returns ``(finish(result), bytes moved)``: ``referee run --ranks``
  (referee.parallel_launch) and torchrun's referee.parallel_main pass
  ``parallel_commit.commit_and_output`` (every rank hashing and storing its rows).
* ``referee.parallel_runtime.simulate(model, x, ranks) -> [RankResult]``: every rank's shards,
  computed in one process without a process group (tests); ``join(results)`` the whole slots.
"""

from dataclasses import dataclass, field

from . import ops as k
from .model import IntegerModel, LinearOp, input_slots, kind_name

FULL, COLS = "full", "cols"
HEAD_KINDS = (k.RopeOp, k.MatmulOp, k.SoftmaxOp, k.TransposeOp)
ELEMENTWISE = (k.LutOp, k.MulOp, k.AddOp)
MODES = ("replicate", "column", "row", "shard")


def sharded_inputs(op) -> list[int]:
    """The input slots a shard-able op reads split (a softmax's key mask stays full)."""
    if isinstance(op, k.SoftmaxOp):
        return [op.input_slot]
    return input_slots(op)


def _divides(op, ranks: int) -> str | None:
    """None if a shard-able op splits into ``ranks`` equal parts; else why not."""
    if isinstance(op, k.MatmulOp):
        if op.kv_heads % ranks:
            groups = "KV heads" if op.grouped else "heads"
            return f"{op.kv_heads} {groups}, not a multiple of {ranks} ranks"
        return None
    if isinstance(op, HEAD_KINDS):
        return None if op.heads % ranks == 0 else f"{op.heads} heads, not a multiple of {ranks} ranks"
    return None if op.out_cols % ranks == 0 else f"{op.out_cols} columns, not a multiple of {ranks} ranks"


@dataclass
class Plan:
    """How a model runs on ``ranks`` ranks (module doc)."""

    ranks: int
    split: list[str]                 # slot 0..N: FULL or COLS
    modes: list[str]                 # op 1..N (index j - 1): one of MODES
    cols: list[int]                  # slot 0..N: the slot's column count
    # (op, kind, why) of each region replicated for want of divisibility
    notes: list[tuple[int, str, str]] = field(default_factory=list)

    def block(self, slot: int, rank: int) -> tuple[int, int]:
        """The columns [lo, hi) of ``slot`` that ``rank`` holds."""
        c = self.cols[slot]
        if self.split[slot] == FULL:
            return 0, c
        return rank * c // self.ranks, (rank + 1) * c // self.ranks

    def describe(self) -> str:
        counts = {mode: self.modes.count(mode) for mode in MODES if mode in self.modes}
        text = f"{self.ranks} ranks: " + ", ".join(f"{n} {mode}" for mode, n in counts.items())
        if self.notes:  # one clause per (kind, reason): a 32-layer model's notes stay one line
            grouped: dict[tuple[str, str], list[int]] = {}
            for j, kind, reason in self.notes:
                grouped.setdefault((kind, reason), []).append(j)
            text += "; replicated, not split: " + "; ".join(
                f"the region{'s' if len(js) > 1 else ''} of {kind} op{'s' if len(js) > 1 else ''} "
                f"{', '.join(map(str, js))} ({reason})"
                for (kind, reason), js in grouped.items())
        return text


class _Regions:
    """Union-find over slots: a shard-able op joins its split inputs and its output."""

    def __init__(self, n: int):
        self.parent = list(range(n + 1))

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def plan(model: IntegerModel, ranks: int) -> Plan:
    """The split of ``model`` over ``ranks`` ranks (module doc)."""
    if not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"ranks must be a positive integer, got {ranks!r}")
    ops, n = model.ops, len(model.ops)
    regions = _Regions(n)
    readers: dict[int, list[tuple[int, bool]]] = {s: [] for s in range(n + 1)}  # slot -> (op, read split?)
    for j, op in enumerate(ops, start=1):
        shardable = isinstance(op, HEAD_KINDS + ELEMENTWISE)
        split_in = sharded_inputs(op) if shardable else []
        for s in input_slots(op):
            readers[s].append((j, s in split_in or isinstance(op, LinearOp)))
        for s in split_in:
            regions.union(j, s)
    members: dict[int, list[int]] = {}
    for s in range(n + 1):
        members.setdefault(regions.find(s), []).append(s)

    notes: list[tuple[int, str, str]] = []

    def eligible(slots: list[int]) -> bool:
        whys = []  # (op, reason): R does not divide what the split needs
        for s in slots:
            if s == 0 or s == n:
                return False
            op = ops[s - 1]
            if isinstance(op, LinearOp):
                if regions.find(op.input_slot) == regions.find(s):
                    return False
                if op.out_cols % ranks:
                    whys.append((s, f"{op.out_cols} output channels, not a multiple of {ranks} ranks"))
            elif isinstance(op, HEAD_KINDS + ELEMENTWISE):
                reason = _divides(op, ranks)
                if reason:
                    whys.append((s, reason))
            else:
                return False
            for j, split_read in readers[s]:
                if not split_read:
                    return False  # read whole by a norm, embed, argmax or a softmax's mask
                reader = ops[j - 1]
                if isinstance(reader, LinearOp) and reader.in_cols % ranks:
                    whys.append((j, f"{reader.in_cols} inputs, not a multiple of {ranks} ranks"))
        if whys:  # name a head op where one is the cause: heads are what a reader thinks in
            j, reason = min(whys, key=lambda w: (not isinstance(ops[w[0] - 1], HEAD_KINDS), w[0]))
            notes.append((j, kind_name(ops[j - 1]), reason))
            return False
        return True

    split = [FULL] * (n + 1)
    for root in sorted(members, key=lambda r: min(members[r])):
        slots = members[root]
        if not eligible(slots):
            continue
        clash = False
        for s in slots:  # a linear joining two split regions would be both column and row parallel
            op = ops[s - 1]
            if isinstance(op, LinearOp) and split[op.input_slot] == COLS:
                clash = True
            clash = clash or any(isinstance(ops[j - 1], LinearOp) and split[j] == COLS for j, _ in readers[s])
        if not clash:
            for s in slots:
                split[s] = COLS

    modes = []
    for j, op in enumerate(ops, start=1):
        if split[j] == COLS:
            modes.append("column" if isinstance(op, LinearOp) else "shard")
        elif isinstance(op, LinearOp) and split[op.input_slot] == COLS:
            modes.append("row")
        else:
            modes.append("replicate")
    cols = [model.slot_cols(s) for s in range(n + 1)]
    return Plan(ranks, split, modes, cols, notes)
