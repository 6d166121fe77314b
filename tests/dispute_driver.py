"""Plays whole dispute games on the real contracts, each side from its own trace.

A ``Party`` is an ape account with a model and a trace; it plays every move honestly with
respect to that trace (``game_bots.trace_move``, from ``referee.game``), so a liar is simply a party whose trace is wrong (the lies
are built by ``referee.cheats`` from an honest trace). ``play`` drives one game to its end, moving
chain time past a clock for a party that stalls, and returns the gas of every move.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from game_bots import SOLVER_PHASES, SOLVER_WON, Seen, remember, trace_move
from referee.model import IntegerModel
from referee.trace import Trace

PHASES = {1: "bisect", 2: "choose", 3: "transition", 4: "reveal_children", 5: "pick",
          6: "reveal_row", 7: "step"}


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
    # what the moves revealed, for a caller that stops early and moves by hand
    seen: Seen = field(default_factory=Seen)

    @property
    def roots(self) -> list:
        return self.seen.roots

    @property
    def children(self) -> tuple:
        return self.seen.children

    @property
    def row(self) -> bytes:
        return self.seen.row


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
        state = {key: getattr(g, key) for key in ("lo", "hi", "levels_left", "node_index")}
        method, args = trace_move(mover, phase, game_id, state, outcome.seen, arity)
        receipt = getattr(game, method)(*args, sender=mover.account)
        remember(outcome.seen, method, args)
        outcome.gas[PHASES[phase]].append(receipt.gas_used)
        outcome.moves += 1
        _record_resolution(game, receipt, outcome)
    raise AssertionError(f"game {game_id} did not end within {max_moves} moves")
