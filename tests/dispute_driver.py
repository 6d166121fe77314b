"""Plays whole dispute games on the real contracts, each side from its own trace.

A ``Party`` is an account with a model and a trace; it plays every move honestly with respect
to that trace (``referee.game``), so a liar is simply a party whose trace is wrong. The lies
the tests need are built here from an honest trace: a wrong element in any slot, a wrong
shape, garbage in a padding leaf of a row tree. ``play`` drives one game to its end, moving
chain time past a clock for a party that stalls, and returns the gas of every move.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import torch

from referee import commitments as cm
from referee import game as moves
from referee.merkle import MerkleTree
from referee.model import IntegerModel
from referee.trace import Trace

PHASES = {1: "bisect", 2: "choose", 3: "transition", 4: "reveal_children", 5: "pick",
          6: "reveal_row", 7: "step"}
SOLVER_PHASES = {1, 3, 4, 6}
SOLVER_WON, CHALLENGER_WON, CLOSED = 8, 9, 10


@dataclass
class Party:
    """One side of a game: who signs, and the model and trace it believes."""

    account: object
    model: IntegerModel
    trace: Trace
    stalls: bool = False  # never answers a move: loses on time


@dataclass
class Outcome:
    solver_won: bool
    phase: int
    gas: dict = field(default_factory=lambda: defaultdict(list))  # move name -> [gas_used]
    moves: int = 0
    reason: str = ""  # GameResolved.reason
    # what the last moves revealed, for a caller that stops early and moves by hand
    roots: list = field(default_factory=list)
    children: tuple = (b"", b"")
    row: bytes = b""


# ---------------------------------------------------------------------------
# Lies
# ---------------------------------------------------------------------------


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
    grown = torch.zeros((rows + extra_rows, cols + extra_cols), dtype=torch.int8)
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
    commitments[slot] = cm.TensorCommitment(honest.rows, honest.cols, MerkleTree(leaves, honest.tree.depth))
    lying.__dict__["slot_commitments"] = commitments  # cached_property: the lie replaces it
    return lying


# ---------------------------------------------------------------------------
# Playing
# ---------------------------------------------------------------------------


def _record_resolution(game, receipt, outcome: Outcome) -> None:
    for log in receipt.decode_logs(game.GameResolved):
        outcome.reason = log.reason


def play(chain, game, game_id: int, solver: Party, challenger: Party, stop_at: int | None = None,
         max_moves: int = 2000) -> Outcome:
    """Drive game ``game_id`` to its end (or until phase ``stop_at``); a stalling side loses by
    ``timeout``, called by the other."""
    arity = game.ARITY()
    outcome = Outcome(solver_won=False, phase=0)
    for _ in range(max_moves):
        g = game.games(game_id)
        phase = g.phase
        if phase not in PHASES or phase == stop_at:
            outcome.phase = phase
            outcome.solver_won = phase == SOLVER_WON
            return outcome
        mover = solver if phase in SOLVER_PHASES else challenger
        other = challenger if mover is solver else solver
        if mover.stalls:
            chain.pending_timestamp = game.deadline(game_id) + 1
            receipt = game.timeout(game_id, sender=other.account)
            outcome.gas["timeout"].append(receipt.gas_used)
            _record_resolution(game, receipt, outcome)
            continue
        lo, hi, levels, index = g.lo, g.hi, g.levels_left, g.node_index
        if phase == 1:
            outcome.roots = moves.bisection_roots(solver.trace, lo, hi, arity)
            receipt = game.bisect(game_id, outcome.roots, sender=solver.account)
        elif phase == 2:
            part = moves.disputed_part(challenger.trace, lo, hi, arity, outcome.roots)
            receipt = game.choose(game_id, part, outcome.roots, sender=challenger.account)
        elif phase == 3:
            t = moves.transition(solver.model, solver.trace, hi)
            receipt = game.transition(game_id, *t.args(), sender=solver.account)
        elif phase == 4:
            outcome.children = moves.row_children(solver.trace, hi, levels, index)
            receipt = game.reveal_children(game_id, *outcome.children, sender=solver.account)
        elif phase == 5:
            right = moves.disputed_child(challenger.trace, hi, levels, index, *outcome.children)
            receipt = game.pick(game_id, right, *outcome.children, sender=challenger.account)
        elif phase == 6:
            outcome.row = solver.trace.row_bytes(hi, index)
            receipt = game.reveal_row(game_id, outcome.row, sender=solver.account)
        else:
            s = moves.step(challenger.model, challenger.trace, hi, index, outcome.row)
            receipt = game.step(game_id, *s.args(), sender=challenger.account)
        outcome.gas[PHASES[phase]].append(receipt.gas_used)
        outcome.moves += 1
        _record_resolution(game, receipt, outcome)
    raise AssertionError(f"game {game_id} did not end within {max_moves} moves")
