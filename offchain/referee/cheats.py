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
- ``wrong-token`` (a generation job, protocol 5.15): the first generated token changed, and the
  text generated on from it; the committed output says the model chose that token. On any other
  job it is ``wrong-output``.
- ``wrong-attention`` (a model with attention): one element of the first ``softmax`` slot
  changed, the output left right: the lie sits inside an attention op.

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
    "wrong-token": "change the first generated token and generate on from it (else as wrong-output)",
    "wrong-attention": "change one element of the first softmax (attention) slot, keep the right output",
}
KIND_SOFTMAX = 6


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


def check_mode(mode: str | None, model) -> None:
    """A clear error for an unknown mode, or one the model has no slot for."""
    if mode is None:
        return
    if mode not in MODES:
        raise RefereeError(f"unknown cheat {mode!r}; choose one of {', '.join(MODES)}")
    if mode in ("wrong-intermediate", "wrong-shape") and len(model.ops) < 2:
        raise RefereeError(f"cheat {mode!r} needs a model with a hidden slot (2 ops or more)")
    if mode == "wrong-attention" and attention_slot(model) is None:
        raise RefereeError(f"cheat {mode!r} needs a model with attention (a softmax op)")


def attention_slot(model) -> int | None:
    """The slot of the model's first softmax op, if it has one."""
    return next((j for j, op in enumerate(model.ops, start=1) if op.kind == KIND_SOFTMAX), None)


def apply(mode: str | None, honest: Trace, model, generation: tuple[int, int] | None = None) -> Trace:
    """The trace a party with cheat ``mode`` believes (the honest one for ``None``);
    ``generation`` is (prompt length, token count) for a generation job."""
    check_mode(mode, model)
    if mode is None:
        return honest
    if mode == "wrong-token" and generation is not None:
        return committed_token(honest, *generation)
    if mode in ("wrong-output", "stall", "wrong-token"):
        return wrong_element(honest, honest.op_count)
    if mode == "wrong-intermediate":
        return wrong_element(honest, 1)
    if mode == "wrong-attention":
        return wrong_element(honest, attention_slot(model))
    return wrong_shape(honest, 1, extra_cols=1)


def changed_token(token: int, vocab: int) -> int:
    """The id a ``wrong-token`` cheat puts in place of the model's first choice."""
    return (token + 1) % vocab


def committed_token(honest: Trace, prompt_len: int, n: int) -> Trace:
    """A teacher-forced trace whose output row P-1 says the model chose the first fed token
    (the verified input's id at P, which the cheat changed), or a changed id when n = 1: the
    only lie, so the market takes the commit and the challenger finds it at the argmax."""
    out = honest.slots[-1]
    value = int(honest.slots[0][0, prompt_len]) if n >= 2 else int(out[prompt_len - 1, 0]) + 1
    slots = [s.clone() for s in honest.slots]
    slots[-1][prompt_len - 1, 0] = value
    return Trace(honest.model_root, slots)
