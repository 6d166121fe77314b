"""Dispute-game moves, computed from one party's own trace (protocol section 7, 10.3).

Each function answers one move of ``contracts/DisputeGame.vy`` from a ``Trace`` (all slots of a
run with their commitments) and the ``IntegerModel``: what the solver posts (bisection roots,
the transition proof, row-tree children, a row) and what the challenger picks (the first
disputed sub-interval, the disputed child, the column and proofs of the one step). A party
plays honestly with respect to its own trace; a lying party is one whose trace is wrong.

Move arguments are returned in the order and shape the contract's ABI takes (bytes, ints,
tuples), so a chain client passes them through unchanged.
"""

from dataclasses import dataclass

from . import commitments as cm
from . import witness
from .merkle import MerkleTree, depth_for
from .model import IntegerModel, input_slots
from .trace import Trace

WORD_BYTES = 32


def bisection_points(lo: int, hi: int, arity: int) -> list[int]:
    """q_0..q_p for the interval (lo, hi): p = min(arity, hi - lo), q_i = lo + floor(i * L / p).

    The solver posts the states at q_1..q_{p-1}; the challenger picks sub-interval (q_i, q_{i+1}).
    """
    if arity < 2 or arity & (arity - 1):
        raise ValueError(f"arity must be a power of two >= 2, got {arity}")
    length = hi - lo
    if lo < 0 or length < 2:
        raise ValueError(f"interval ({lo}, {hi}) has nothing to bisect")
    parts = min(arity, length)
    return [lo + i * length // parts for i in range(parts + 1)]


def bisection_roots(trace: Trace, lo: int, hi: int, arity: int) -> list[bytes]:
    """Solver: S_{q_1} .. S_{q_{p-1}} of its own trace."""
    return [trace.state_roots[q] for q in bisection_points(lo, hi, arity)[1:-1]]


def disputed_part(trace: Trace, lo: int, hi: int, arity: int, roots: list[bytes]) -> int:
    """Challenger: the first i whose right end S_{q_{i+1}} differs from its own trace.

    S_lo is agreed and S_hi disputed, so some right end differs; if the posted roots all agree,
    the last part (whose right end is S_hi) is the disputed one.
    """
    points = bisection_points(lo, hi, arity)
    for i, root in enumerate(roots):
        if root != trace.state_roots[points[i + 1]]:
            return i
    return len(points) - 2


@dataclass(frozen=True)
class Transition:
    """The solver's transition move for op ``op`` (protocol 7.2), in ABI order: the descriptor and
    its proof, the headers of the input slots the kind reads with their proofs in S_{op-1}, the
    params header (the preimage of ``params_root``; empty for an ``argmax`` without ``carry``),
    the output header and its slot-update proof."""

    desc: tuple
    desc_proof: list[bytes]
    inputs: list[tuple]
    input_proofs: list[list[bytes]]
    params: bytes
    output: tuple
    output_proof: list[bytes]

    def args(self) -> tuple:
        return (self.desc, self.desc_proof, self.inputs, self.input_proofs, self.params,
                self.output, self.output_proof)


def transition(model: IntegerModel, trace: Trace, op: int) -> Transition:
    """Solver: op ``op``'s descriptor, its input headers in S_{op-1}, its params header and its
    output header in S_op."""
    state = trace.state_tree(op - 1)
    return Transition(
        desc=witness.descriptor(model, op),
        desc_proof=model.op_tree.proof(op - 1),
        inputs=witness.step_inputs(model, trace, op),
        input_proofs=[state.proof(slot) for slot in input_slots(model.ops[op - 1])],
        params=witness.params_header(model.ops[op - 1]),
        output=trace.slot_commitments[op].full_header,
        output_proof=trace.slot_update_proof(op),
    )


def row_children(trace: Trace, op: int, levels_left: int, node_index: int) -> tuple[bytes, bytes]:
    """Solver: the children of the disputed node of slot ``op``'s row tree."""
    return trace.slot_commitments[op].tree.children(levels_left, node_index)


def disputed_child(trace: Trace, op: int, levels_left: int, node_index: int,
                   left: bytes, right: bytes) -> bool:
    """Challenger: True for the right child, False for the left: the first that differs from its own."""
    mine_left, _ = row_children(trace, op, levels_left, node_index)
    return left == mine_left


def word_tree(row: bytes) -> MerkleTree:
    """The row word tree of protocol 10.3: 32-byte words (the last zero-padded) as leaves."""
    padded = row + bytes(-len(row) % WORD_BYTES)
    words = [padded[i:i + WORD_BYTES] for i in range(0, len(padded), WORD_BYTES)]
    return MerkleTree(words, depth_for(len(words)))


@dataclass(frozen=True)
class Step:
    """The challenger's one-step move (protocol 7.4), in ABI order: the column, the revealed row's
    word holding it and its proof, the op (descriptor and input headers, as the transition
    revealed them), the revealed row's index and the kind's witness, ABI-encoded for its
    verifier (protocol 10.9). The game sends the move's calldata to the verifier unchanged."""

    column: int
    row_word: bytes
    row_word_proof: list[bytes]
    desc: tuple
    inputs: list[tuple]
    row_index: int
    witness: bytes

    def args(self) -> tuple:
        return (self.column, self.row_word, self.row_word_proof, self.desc, self.inputs, self.row_index,
                self.witness)


def disputed_column(trace: Trace, op: int, row_index: int, revealed: bytes) -> int:
    """Challenger: the first column whose element in the revealed row differs from its own
    (0 if none)."""
    mine = trace.row_bytes(op, row_index)
    width = cm.WIDTHS[trace.slot_commitments[op].dtype]
    first = next((i for i, (a, b) in enumerate(zip(revealed, mine)) if a != b), 0)
    return first // width


def step(model: IntegerModel, trace: Trace, op: int, row_index: int, revealed: bytes,
         column: int | None = None) -> Step:
    """Challenger: proofs for ``column`` (default: the first disputed) of the revealed row."""
    if column is None:
        column = disputed_column(trace, op, row_index, revealed)
    words = word_tree(revealed)
    word = column * cm.WIDTHS[trace.slot_commitments[op].dtype] // WORD_BYTES
    return Step(
        column=column,
        row_word=words.node(0, word),
        row_word_proof=words.proof(word),
        desc=witness.descriptor(model, op),
        inputs=witness.step_inputs(model, trace, op),
        row_index=row_index,
        witness=witness.step_witness(model, trace, op, row_index, column),
    )
