"""Execution traces and their persistent store.

A ``Trace`` holds every slot tensor of one run with its commitments (slot roots, row trees,
state roots S_0..S_N) and answers each dispute move from memory: states at bisection points,
slot-update proofs, slot proofs, children in a row tree, row bytes and row proofs.

``TraceStore`` keeps one file per run, keyed by model root and input tensor root, written
atomically; loading recomputes every commitment and refuses a file that does not verify.
"""

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import commitments as cm
from .atomic import write_atomic
from .errors import TraceStoreError
from .hashing import from_hex, to_hex
from .merkle import MerkleTree

FORMAT = "referee-trace"
VERSION = "1"


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


class TraceStore:
    """One verified trace file per (model root, input root) under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, model_root: bytes, input_root: bytes) -> Path:
        return self.root / to_hex(model_root) / f"{to_hex(input_root)}.trace"

    def save(self, trace: Trace) -> Path:
        path = self.path(trace.model_root, trace.input_root)
        write_atomic(path, _encode(trace))
        return path

    def load(self, model_root: bytes, input_root: bytes) -> Trace:
        path = self.path(model_root, input_root)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TraceStoreError(f"no stored trace for model {to_hex(model_root)} and input {to_hex(input_root)}") from None
        trace = _decode(data, path)
        if trace.model_root != model_root or trace.input_root != input_root:
            raise TraceStoreError(f"trace file {path} belongs to another model or input")
        return trace

    def __contains__(self, key: tuple[bytes, bytes]) -> bool:
        return self.path(*key).is_file()
