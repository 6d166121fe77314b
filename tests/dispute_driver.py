"""Plays whole dispute games on the real contracts, each side from its own trace.

A ``Party`` is an account with a model and a trace; it plays every move honestly with respect
to that trace (``referee.game``), so a liar is simply a party whose trace is wrong (the lies
are built by ``referee.cheats`` from an honest trace). ``play`` drives one game to its end, moving
chain time past a clock for a party that stalls, and returns the gas of every move.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from referee import game as moves
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
