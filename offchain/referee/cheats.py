"""Lies a party can tell, built from an honest trace: for demonstrations and tests.

A cheating solver (``referee solve --cheat MODE``) commits and defends a wrong trace; a lying
challenger (``referee watch --cheat MODE``) believes one. Every lie here is one an honest
opponent catches through the dispute game (protocol section 7):

- ``wrong-output``: one element of the output changed, nothing else.
- ``wrong-intermediate``: one element of the first hidden slot changed, the output left right
  (so the lie sits inside the trace root, not in the visible result).
- ``wrong-shape``: the first hidden slot grown by a zero column, the output left right. (An
  output of the wrong shape cannot even be committed: the market checks rows x output_cols.)
- ``stall``: the wrong output, and then no answer to any move: the liar loses on time.

The builders (``wrong_element``, ``wrong_shape``, ``garbage_padding``) take any slot; the
modes above pick the slot for a whole model.
"""

import torch

from . import commitments as cm
from .errors import RefereeError
from .merkle import MerkleTree
from .trace import Trace

MODES = {
    "wrong-output": "change one element of the output",
    "wrong-intermediate": "change one element of the first hidden slot, keep the right output",
    "wrong-shape": "grow the first hidden slot by one column, keep the right output",
    "stall": "commit a wrong output, then never answer a move",
}


def wrong_element(trace: Trace, slot: int, row: int = 0, col: int = 0) -> Trace:
    """The trace with one element of one slot changed and nothing recomputed after it."""
    slots = [s.clone() for s in trace.slots]
    value = int(slots[slot][row, col])
    slots[slot][row, col] = value + 1 if value < 127 else value - 1
    return Trace(trace.model_root, slots)


def wrong_shape(trace: Trace, slot: int, extra_rows: int = 0, extra_cols: int = 0) -> Trace:
    """The trace with slot ``slot`` padded by zero rows or columns."""
    slots = [s.clone() for s in trace.slots]
    rows, cols = slots[slot].shape
    grown = torch.zeros((rows + extra_rows, cols + extra_cols), dtype=slots[slot].dtype)
    grown[:rows, :cols] = slots[slot]
    slots[slot] = grown
    return Trace(trace.model_root, slots)


def garbage_padding(trace: Trace, slot: int, garbage: bytes = b"\x01" * 32) -> Trace:
    """The trace with the first padding leaf of slot ``slot``'s row tree set to ``garbage``.

    The rows themselves are right; only the committed tree is wrong. Needs a row count that is
    not a power of two.
    """
    lying = Trace(trace.model_root, [s.clone() for s in trace.slots])
    commitments = list(trace.slot_commitments)
    honest = commitments[slot]
    if honest.rows == 1 << honest.tree.depth:
        raise ValueError("no padding leaf: the row count is a power of two")
    leaves = cm.row_leaves(trace.slots[slot]) + [garbage]
    commitments[slot] = cm.TensorCommitment(honest.rows, honest.cols, MerkleTree(leaves, honest.tree.depth), honest.dtype)
    lying.__dict__["slot_commitments"] = commitments  # cached_property: the lie replaces it
    return lying


def check_mode(mode: str | None, op_count: int) -> None:
    """A clear error for an unknown mode, or one the model has no hidden slot for."""
    if mode is None:
        return
    if mode not in MODES:
        raise RefereeError(f"unknown cheat {mode!r}; choose one of {', '.join(MODES)}")
    if mode in ("wrong-intermediate", "wrong-shape") and op_count < 2:
        raise RefereeError(f"cheat {mode!r} needs a model with a hidden slot (2 ops or more)")


def apply(mode: str | None, honest: Trace) -> Trace:
    """The trace a party with cheat ``mode`` believes (the honest one for ``None``)."""
    check_mode(mode, honest.op_count)
    if mode is None:
        return honest
    if mode in ("wrong-output", "stall"):
        return wrong_element(honest, honest.op_count)
    if mode == "wrong-intermediate":
        return wrong_element(honest, 1)
    return wrong_shape(honest, 1, extra_cols=1)
