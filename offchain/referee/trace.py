"""Execution traces and their persistent store.

A ``Trace`` holds every slot tensor of one run with its commitments (slot roots, row trees,
state roots S_0..S_N) and answers each dispute move from memory: states at bisection points,
slot-update proofs, slot proofs, children in a row tree, row bytes and row proofs.

``TraceStore`` keeps one file per run, keyed by model root and input tensor root, written
atomically; loading recomputes every commitment and refuses a file that does not verify.

A tensor-parallel run's trace is held split (``SplitTrace``): each rank keeps its full rows
[r0, r1) of every slot (``parallel_commit.Layout``: power-of-two-aligned chunks) in its own
directory, beside an index of every slot's header and chunk roots. A ``SplitTrace`` answers
the same moves as a ``Trace``: the levels above the chunks come from the index; a row, a row's
proof or a node below a chunk root comes from the one rank file that holds the row, found by
(slot, row) -> rank, with no gather of the whole trace. The same store saves and loads both.
"""

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import commitments as cm
from .atomic import write_atomic
from .errors import TraceStoreError
from .hashing import from_hex, to_hex
from .merkle import MerkleTree, TreeWalk, zero_hash
from .parallel_commit import TORCH_DTYPES, Layout, RankCommit, SlotHeader, rows_root, top_tree

FORMAT = "referee-trace"
VERSION = "1"
SPLIT_FORMAT = "referee-trace-rows"
INDEX = "index.json"
ROWS = "rows.safetensors"


@dataclass(eq=False)
class Trace:
    """All slots of one run; commitments are computed on first use and cached."""

    model_root: bytes
    slots: list[torch.Tensor]  # slot 0 = input, slot j = output of op j; int8, int16 or int32 (rows, cols)

    @property
    def op_count(self) -> int:
        return len(self.slots) - 1

    @cached_property
    def slot_commitments(self) -> list[cm.TensorCommitment]:
        return [cm.commit_tensor(slot) for slot in self.slots]

    @cached_property
    def slot_roots(self) -> list[bytes]:
        return [c.root for c in self.slot_commitments]

    @cached_property
    def state_roots(self) -> list[bytes]:
        """S_0..S_N."""
        return cm.state_roots(self.slot_roots)

    @property
    def input_root(self) -> bytes:
        return self.slot_roots[0]

    @property
    def output(self) -> torch.Tensor:
        return self.slots[-1]

    @property
    def output_root(self) -> bytes:
        return self.slot_roots[-1]

    @property
    def trace_root(self) -> bytes:
        """S_N: the root the solver commits."""
        return self.state_roots[-1]

    def state_tree(self, filled_through: int) -> MerkleTree:
        return cm.state_tree(self.slot_roots, filled_through)

    def slot_update_proof(self, step: int) -> list[bytes]:
        """Siblings of slot ``step`` in S_step (the same siblings serve S_{step-1})."""
        return self.state_tree(step).proof(step)

    def row_bytes(self, slot: int, row: int) -> bytes:
        return cm.packed(self.slots[slot][row:row + 1])


class SplitTree(TreeWalk):
    """A slot's row tree across ranks, answering as ``MerkleTree`` does (children and proofs come
    from ``TreeWalk``): the top levels from the committed chunk roots, a node below a chunk root
    from that chunk's rows (one rank's file, read and hashed once, and checked against its
    committed chunk root)."""

    def __init__(self, layout: Layout, roots: list[bytes], chunk_tree):
        self.layout, self.depth = layout, layout.depth
        self._top = top_tree(layout, roots)
        self._chunk_tree = chunk_tree  # chunk -> MerkleTree of its rows (None for padding)

    @property
    def root(self) -> bytes:
        return self._top.root

    def node(self, height: int, index: int) -> bytes:
        self.check_node(height, index)
        below = self.layout.chunk_height - height
        if below <= 0:
            return self._top.node(-below, index)
        chunk = index >> below
        tree = self._chunk_tree(chunk)
        return zero_hash(height) if tree is None else tree.node(height, index - (chunk << below))


class SplitTrace:
    """A trace held across ranks: the ``Trace`` API (slot and state roots, state trees, row
    trees, row bytes) over ``read_rows(rank, slot, a, b)``, which returns rows [a, b) of a slot
    from the rank that holds them (``a``, ``b`` inside that rank's range)."""

    def __init__(self, model_root: bytes, headers: list[SlotHeader], chunk_roots: list[list[bytes]], ranks: int,
                 read_rows, where: str = "rank"):
        self.model_root, self.headers, self.chunk_roots, self.ranks = model_root, headers, chunk_roots, ranks
        self._read_rows, self._where = read_rows, where
        self._chunk_trees: dict[tuple[int, int], MerkleTree | None] = {}

    @classmethod
    def from_commits(cls, model_root: bytes, commits: list[RankCommit]) -> "SplitTrace":
        """The trace of in-memory rank commitments (``parallel_commit.commit_local``)."""
        def read(rank, slot, a, b):
            r0 = commits[rank].layout(slot).rows_of(rank)[0]
            return commits[rank].rows[slot][a - r0:b - r0]
        first = commits[0]
        return cls(model_root, first.headers, first.chunk_roots, first.ranks, read, "memory")

    @classmethod
    def of_commit(cls, model_root: bytes, commit: RankCommit, output: torch.Tensor) -> "SplitTrace":
        """What one rank knows after a split commitment, with no store and no other rank's disk:
        every root (the commitment's), the output slot whole (``parallel_commit.commit_and_output``)
        and its own rows; a row another rank holds raises. What ``referee run --ranks`` prints."""
        last = len(commit.headers) - 1
        if tuple(output.shape) != (commit.headers[last].rows, commit.headers[last].cols):
            raise ValueError(f"an output of shape {tuple(output.shape)} for a slot of {commit.headers[last]}")

        def read(rank, slot, a, b):
            if slot == last:
                return output[a:b]
            if rank != commit.rank or not commit.rows:  # (rows dropped: a commitment handed back for its roots)
                raise TraceStoreError(f"rows [{a}, {b}) of slot {slot} are held by rank {rank}, not here")
            r0 = commit.layout(slot).rows_of(rank)[0]
            return commit.rows[slot][a - r0:b - r0]
        return cls(model_root, commit.headers, commit.chunk_roots, commit.ranks, read)

    @property
    def op_count(self) -> int:
        return len(self.headers) - 1

    def layout(self, slot: int) -> Layout:
        return Layout(self.headers[slot].rows, self.ranks)

    def owner(self, slot: int, row: int) -> int:
        """The rank holding row ``row`` of slot ``slot``."""
        return self.layout(slot).owner(row)

    def rows(self, slot: int, a: int, b: int) -> torch.Tensor:
        """Rows [a, b) of a slot, read from the ranks that hold them (one rank for rows of one chunk)."""
        layout, parts = self.layout(slot), []
        while a < b:
            rank = layout.owner(a)
            end = min(b, layout.rows_of(rank)[1])
            parts.append(self._read_rows(rank, slot, a, end))
            a = end
        if not parts:
            return torch.empty((0, self.headers[slot].cols), dtype=TORCH_DTYPES[self.headers[slot].dtype])
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def chunk_tree(self, slot: int, chunk: int) -> MerkleTree | None:
        """The tree of one chunk's rows, checked against its committed root (None: padding)."""
        key = (slot, chunk)
        if key not in self._chunk_trees:
            layout = self.layout(slot)
            a, b = layout.chunk_rows(chunk)
            tree = None
            if a < b:
                tree = MerkleTree(cm.row_leaf_bytes(self.rows(slot, a, b)), layout.chunk_height)
                if tree.root != self.chunk_roots[slot][chunk]:
                    raise TraceStoreError(f"{self._where} {layout.owner(a)}: rows [{a}, {b}) of slot {slot} do not "
                                          f"hash to their committed root: the rank's rows file was altered")
            self._chunk_trees[key] = tree
        return self._chunk_trees[key]

    @cached_property
    def slot_commitments(self) -> list[cm.TensorCommitment]:
        return [cm.TensorCommitment(h.rows, h.cols, SplitTree(self.layout(j), self.chunk_roots[j],
                                                               lambda c, j=j: self.chunk_tree(j, c)), h.dtype)
                for j, h in enumerate(self.headers)]

    @cached_property
    def slot_roots(self) -> list[bytes]:
        return [h.root(rows_root(self.layout(j), self.chunk_roots[j])) for j, h in enumerate(self.headers)]

    @cached_property
    def state_roots(self) -> list[bytes]:
        return cm.state_roots(self.slot_roots)

    input_root, output_root, trace_root = Trace.input_root, Trace.output_root, Trace.trace_root
    state_tree, slot_update_proof = Trace.state_tree, Trace.slot_update_proof

    @property
    def output(self) -> torch.Tensor:
        return self.rows(self.op_count, 0, self.headers[-1].rows)

    @property
    def slots(self) -> list[torch.Tensor]:
        """Every slot whole: reads every rank's rows (for a cheat or a test, never for a move)."""
        return [self.rows(j, 0, h.rows) for j, h in enumerate(self.headers)]

    def row_bytes(self, slot: int, row: int) -> bytes:
        self.layout(slot).chunk_of(row)  # IndexError outside the slot
        return cm.packed(self.rows(slot, row, row + 1))

    def verify(self) -> None:
        """Hash every chunk of every slot against the index (reads every rank's rows once)."""
        for j in range(len(self.headers)):
            for chunk in range(self.layout(j).chunks):
                self.chunk_tree(j, chunk)
        self._chunk_trees.clear()  # verified; kept trees would hold the whole trace in memory


def _encode(trace: Trace) -> bytes:
    metadata = {
        "format": FORMAT, "version": VERSION,
        "model_root": to_hex(trace.model_root),
        "slot_roots": json.dumps([to_hex(r) for r in trace.slot_roots]),
        "state_roots": json.dumps([to_hex(r) for r in trace.state_roots]),
    }
    tensors, seen = {}, set()
    for j, slot in enumerate(trace.slots):
        slot = slot.contiguous()
        # A kernel may return a view of its input (a transpose of one column is a reshape):
        # safetensors refuses tensors that share memory, so such a slot is stored as a copy.
        if slot.untyped_storage().data_ptr() in seen:
            slot = slot.clone()
        seen.add(slot.untyped_storage().data_ptr())
        tensors[f"slot{j}"] = slot
    return save_safetensors(tensors, metadata=metadata)


def _decode(data: bytes, path: Path) -> Trace:
    try:
        tensors = load_safetensors(data)
        metadata = _read_metadata(data)
    except (SafetensorError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise TraceStoreError(f"trace file {path} is corrupt or truncated: {exc}") from None
    if metadata.get("format") != FORMAT or metadata.get("version") != VERSION:
        raise TraceStoreError(f"{path} is not a Referee trace file (version {VERSION})")
    count = len(tensors)
    if sorted(tensors) != sorted(f"slot{j}" for j in range(count)) or count < 2:
        raise TraceStoreError(f"trace file {path} has unexpected tensors {sorted(tensors)}")
    slots = [tensors[f"slot{j}"] for j in range(count)]
    # int32 slots: token ids (slot 0), wide linear and argmax outputs; int16: i16 outputs (protocol 5.0)
    if any(slot.dtype not in cm.DTYPES or slot.dim() != 2 for slot in slots):
        raise TraceStoreError(f"trace file {path} holds a slot that is not a 2-D int8, int16 or int32 tensor")
    try:
        trace = Trace(from_hex(metadata["model_root"]), slots)
        stored = {name: json.loads(metadata[f"{name}_roots"]) for name in ("slot", "state")}
    except (KeyError, ValueError) as exc:
        raise TraceStoreError(f"trace file {path} has malformed metadata: {exc}") from None
    for name, roots in stored.items():
        if roots != [to_hex(r) for r in getattr(trace, f"{name}_roots")]:
            raise TraceStoreError(f"trace file {path} does not verify: its {name} roots do not match its tensors")
    return trace


def _read_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors buffer (8-byte little-endian header length, JSON)."""
    if len(data) < 8:
        raise ValueError("file shorter than a safetensors header")
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size]).get("__metadata__", {})


def _encode_rows(model_root: bytes, rank: int, ranks: int, input_root: bytes, rows: list[torch.Tensor]) -> bytes:
    """One rank's rows file: its rows [r0, r1) of every slot, with who it is in the metadata."""
    metadata = {"format": SPLIT_FORMAT, "version": VERSION, "rank": str(rank), "ranks": str(ranks),
                "model_root": to_hex(model_root), "input_root": to_hex(input_root)}
    return save_safetensors({f"slot{j}": r.contiguous().clone() for j, r in enumerate(rows)}, metadata=metadata)


def _encode_index(model_root: bytes, ranks: int, headers: list[SlotHeader], chunk_roots: list[list[bytes]],
                  slot_roots: list[bytes], state_roots: list[bytes]) -> bytes:
    """The index every rank's directory holds: the slots' headers and chunk roots, the roots above."""
    return json.dumps({
        "format": SPLIT_FORMAT, "version": VERSION, "ranks": ranks, "model_root": to_hex(model_root),
        "headers": [[h.rows, h.cols, h.dtype] for h in headers],
        "chunk_roots": [[to_hex(r) for r in roots] for roots in chunk_roots],
        "slot_roots": [to_hex(r) for r in slot_roots], "state_roots": [to_hex(r) for r in state_roots],
    }).encode()


def _load_split(directory: Path, model_root: bytes, input_root: bytes) -> SplitTrace:
    """A split trace from its rank directories: the index checked against itself and the key, each
    rank's rows file against its header and its rows against their chunk roots."""
    try:
        index = json.loads((directory / "rank0" / INDEX).read_text())
        ranks = int(index["ranks"])
        headers = [SlotHeader(*map(int, h)) for h in index["headers"]]
        chunk_roots = [[from_hex(r) for r in roots] for roots in index["chunk_roots"]]
        trace = SplitTrace(from_hex(index["model_root"]), headers, chunk_roots, ranks, None, f"{directory}: rank")
        if index["slot_roots"] != [to_hex(r) for r in trace.slot_roots] or \
                index["state_roots"] != [to_hex(r) for r in trace.state_roots]:
            raise TraceStoreError(f"split trace {directory} does not verify: its index's roots do not match "
                                  f"its chunk roots")
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise TraceStoreError(f"split trace {directory} has a missing or malformed index: {exc}") from None
    if trace.model_root != model_root or trace.input_root != input_root or index["format"] != SPLIT_FORMAT:
        raise TraceStoreError(f"split trace {directory} belongs to another model or input")
    files = [directory / f"rank{r}" / ROWS for r in range(ranks)]
    for rank, path in enumerate(files):
        try:
            if json.loads((path.parent / INDEX).read_text()) != index:
                raise TraceStoreError(f"split trace {directory}: rank {rank}'s index differs from rank 0's")
            with safe_open(path, framework="pt") as f:
                meta, shapes = f.metadata() or {}, {k: f.get_slice(k).get_shape() for k in f.keys()}
        except (OSError, SafetensorError, ValueError, json.JSONDecodeError) as exc:
            raise TraceStoreError(f"split trace {directory}: rank {rank}'s rows file is missing or corrupt: "
                                  f"{exc}") from None
        want = {f"slot{j}": [trace.layout(j).rows_of(rank)[1] - trace.layout(j).rows_of(rank)[0], h.cols]
                for j, h in enumerate(headers)}
        if meta.get("format") != SPLIT_FORMAT or meta.get("rank") != str(rank) or shapes != want:
            raise TraceStoreError(f"split trace {directory}: rank {rank}'s rows file does not fit the index")

    def read(rank, slot, a, b):  # only the one rank's file, only the rows asked for
        r0 = trace.layout(slot).rows_of(rank)[0]
        with safe_open(files[rank], framework="pt") as f:
            return f.get_slice(f"slot{slot}")[a - r0:b - r0]
    trace._read_rows = read
    trace.verify()
    return trace


class TraceStore:
    """One verified trace file per (model root, input root) under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, model_root: bytes, input_root: bytes) -> Path:
        return self.root / to_hex(model_root) / f"{to_hex(input_root)}.trace"

    def split_path(self, model_root: bytes, input_root: bytes) -> Path:
        """The directory of a split trace: one ``rank{r}`` directory per rank."""
        return self.root / to_hex(model_root) / f"{to_hex(input_root)}.split"

    def save(self, trace: Trace | SplitTrace) -> Path:
        if isinstance(trace, SplitTrace):
            for rank in range(trace.ranks):
                rows = [trace.rows(j, *trace.layout(j).rows_of(rank)) for j in range(len(trace.headers))]
                self._save_rank(trace, rank, rows)
            return self.split_path(trace.model_root, trace.input_root)
        path = self.path(trace.model_root, trace.input_root)
        write_atomic(path, _encode(trace))
        return path

    def save_rank(self, model_root: bytes, commit: RankCommit) -> Path:
        """What one rank of a split run stores: its rows of every slot, and the index (each rank
        writes its own directory; the trace loads once every rank has)."""
        trace = SplitTrace(model_root, commit.headers, commit.chunk_roots, commit.ranks, None)
        return self._save_rank(trace, commit.rank, commit.rows)

    def _save_rank(self, trace: SplitTrace, rank: int, rows: list[torch.Tensor]) -> Path:
        directory = self.split_path(trace.model_root, trace.input_root) / f"rank{rank}"
        write_atomic(directory / ROWS, _encode_rows(trace.model_root, rank, trace.ranks, trace.input_root, rows))
        # The index last: a rank directory with an index has its rows file complete.
        write_atomic(directory / INDEX, _encode_index(trace.model_root, trace.ranks, trace.headers, trace.chunk_roots,
                                                      trace.slot_roots, trace.state_roots))
        return directory

    def load(self, model_root: bytes, input_root: bytes) -> Trace | SplitTrace:
        """The run's trace: its single file, else its split directories (a ``SplitTrace``)."""
        path = self.path(model_root, input_root)
        split = self.split_path(model_root, input_root)
        if not path.is_file() and split.is_dir():
            return _load_split(split, model_root, input_root)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TraceStoreError(f"no stored trace for model {to_hex(model_root)} and input {to_hex(input_root)}") from None
        trace = _decode(data, path)
        if trace.model_root != model_root or trace.input_root != input_root:
            raise TraceStoreError(f"trace file {path} belongs to another model or input")
        return trace

    def __contains__(self, key: tuple[bytes, bytes]) -> bool:
        """A single trace file, or a split trace every rank has saved (its index written last)."""
        if self.path(*key).is_file():
            return True
        split = self.split_path(*key)
        try:
            ranks = int(json.loads((split / "rank0" / INDEX).read_text())["ranks"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return all((split / f"rank{r}" / INDEX).is_file() for r in range(ranks))
