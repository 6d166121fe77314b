"""One party's next move in a dispute game, from the game's state on chain and its own trace.

``next_move`` reads the game (phase, interval, row-tree position, clocks) and the values the
opponent revealed in its last move (the ``Bisected`` roots, the ``ChildrenRevealed`` pair, the
``RowRevealed`` row, read back from the logs as the agent's scan recorded them in its journal,
``ChainClient.game_log``, so a restarted agent needs no memory of them),
and returns the contract call that answers it, built by ``referee.game``. When the opponent
is to move and its clock has run out, the answer is ``timeout``. Nothing is returned while
the opponent still has time.

Each move carries a key naming the position it answers, so the chain client sends it once,
and the last second its side may make it (``deadline``), by which an agent playing many games
orders its moves.
"""

from dataclasses import dataclass

from .. import game as moves
from ..model import IntegerModel
from ..trace import Trace
from .client import ChainClient

BISECT, CHOOSE, TRANSITION, CHILDREN, PICK, ROW, STEP = range(1, 8)
PHASE_NAMES = {BISECT: "bisect", CHOOSE: "choose", TRANSITION: "transition", CHILDREN: "reveal_children",
               PICK: "pick", ROW: "reveal_row", STEP: "step"}
SOLVER_PHASES = {BISECT, TRANSITION, CHILDREN, ROW}


NO_DEADLINE = 2**63 - 1  # a timeout: it only ends a game already won, after every move


@dataclass(frozen=True)
class Move:
    key: str
    method: str  # a DisputeGame function
    args: tuple
    deadline: int = NO_DEADLINE


def _position(game_id: int, g) -> str:
    return f"{game_id}:{g.phase}:{g.lo}:{g.hi}:{g.levels_left}:{g.node_index}"


def deadline_of(g) -> int:
    """The last second the side to move in game record ``g`` may move (``DisputeGame.deadline``)."""
    return g.last_move + (g.solver_time if g.phase in SOLVER_PHASES else g.challenger_time)


def next_move(client: ChainClient, game_id: int, as_solver: bool, model: IntegerModel, trace: Trace,
              answer: bool = True, g=None, now: int | None = None) -> Move | None:
    """The move ``as_solver``'s side makes now in ``game_id``, or None (not its turn, or over).

    ``answer=False`` (a stalling party) never moves but still claims an opponent's timeout.
    ``g`` (the game's record) and ``now`` (the latest block's timestamp) save reads when the
    caller has them.
    """
    g = g if g is not None else client.read(client.game.games, game_id)
    phase = g.phase
    if phase not in PHASE_NAMES:
        return None
    if (phase in SOLVER_PHASES) != as_solver:
        if (now if now is not None else client.now()) > deadline_of(g):
            return Move(f"timeout:{game_id}", "timeout", (game_id,))
        return None
    if not answer:
        return None
    key = f"{PHASE_NAMES[phase]}:{_position(game_id, g)}"
    try:
        args = _arguments(client, game_id, g, model, trace)
    except LogNotServedYet:
        return None  # asked again next tick, when the node serves the log
    return Move(key, PHASE_NAMES[phase], (game_id, *args), deadline_of(g))


class LogNotServedYet(Exception):
    """The game's record shows the opponent's move, but no log of it is served yet: a node can
    answer a call at its newest block before its log queries reach that block (anvil did, mining
    on a 12-second interval under load), so the record and the logs are read at different heads."""


def _revealed(client: ChainClient, game_id: int, event: str):
    log = client.game_log(game_id, event)
    if log is None:
        raise LogNotServedYet(f"game {game_id}: no {event} log yet")
    return log


def _arguments(client: ChainClient, game_id: int, g, model: IntegerModel, trace: Trace) -> tuple:
    """The arguments after ``game_id`` of the move the phase ``g.phase`` asks for."""
    phase, lo, hi, levels, index = g.phase, g.lo, g.hi, g.levels_left, g.node_index
    if phase == BISECT:
        return (moves.bisection_roots(trace, lo, hi, client.arity),)
    if phase == CHOOSE:
        roots = [bytes(r) for r in _revealed(client, game_id, "Bisected").roots]
        return (moves.disputed_part(trace, lo, hi, client.arity, roots), roots)
    if phase == TRANSITION:
        return moves.transition(model, trace, hi).args()
    if phase == CHILDREN:
        return moves.row_children(trace, hi, levels, index)
    if phase == PICK:
        log = _revealed(client, game_id, "ChildrenRevealed")
        left, right = bytes(log.left), bytes(log.right)
        return (moves.disputed_child(trace, hi, levels, index, left, right), left, right)
    if phase == ROW:
        return (trace.row_bytes(hi, index),)
    row = bytes(_revealed(client, game_id, "RowRevealed").row)
    return moves.step(model, trace, hi, index, row).args()
