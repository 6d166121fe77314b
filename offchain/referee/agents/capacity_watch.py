"""An agent's capacity, watched: how many games it can play at once, said when it moves.

The figure is ``capacity.Capacity``'s, from the agent's models, the chain's block time and
gas limit, the gas of its latest moves and its own measured sending (``capacity.Throughput``).
The agent logs its worst case at start (``describe_capacity``), again when its games figure
has moved by more than a tenth or its bound (block gas, send rate, tick length) has changed,
and stayed so for a few ticks (``CapacityLines``: a send rate measured over a few ticks wavers,
and a line each time it did would bury the log), and warns at once when it plays more games than the capacity for
their jobs, or when decided actions wait for more than a block (a backlog).
"""

from ..model import IntegerModel
from . import batching
from . import capacity as cap
from .client import IN_PLAY, RESULT_OF_PHASE
from .sending import Action
from .terms import BlockSpace, ether

BLOCK_TIME_SAMPLE = 64  # recent blocks the block time is measured over
CHANGED_BY_MUCH = 0.25  # a shortfall or a backlog that moved by this part is logged again
MOVED_BY = 0.10  # a capacity whose games figure moved by more than this part is logged again...
SETTLE_TICKS = 3  # ...once it has held for this many ticks (as has a change of its bound)


class CapacityLines:
    """Which capacity figures are worth a line, per model: the first, then one whose games
    figure moved by more than ``moved_by`` from the one last logged or whose bound changed,
    once it has held for ``settle`` ticks in a row (a wavering figure is not logged at each
    swing)."""

    def __init__(self, moved_by: float = MOVED_BY, settle: int = SETTLE_TICKS):
        self.moved_by, self.settle = moved_by, settle
        self._logged: dict[str, tuple[int, str]] = {}  # model -> (games, bound) last logged
        self._held: dict[str, int] = {}  # model -> ticks in a row its figure differed from that

    def has(self, name: str) -> bool:
        return name in self._logged

    def logged(self, name: str, games: int, bound: str) -> None:
        self._logged[name] = (games, bound)
        self._held.pop(name, None)

    def due(self, name: str, games: int, bound: str) -> bool:
        """Whether this tick's figure for ``name`` is to be logged (it then counts as logged)."""
        last = self._logged.get(name)
        if last is not None and bound == last[1] and abs(games - last[0]) <= self.moved_by * max(last[0], 1):
            self._held.pop(name, None)
            return False
        self._held[name] = self._held.get(name, 0) + 1
        if last is not None and self._held[name] < self.settle:
            return False
        self.logged(name, games, bound)
        return True


class CapacityWatch:
    """The capacity half of ``Agent`` (it sets the attributes these methods read)."""

    def _measured_block_time(self) -> float:
        if self.client.automines():  # a block per transaction: the gaps are the operator's pauses
            self.block_time_source = "assumed: the chain mines a block per transaction; --block-time sets it"
            return cap.DEFAULT_BLOCK_TIME
        self.block_time_source = "measured"
        return cap.block_time_of(self.client.recent_timestamps(BLOCK_TIME_SAMPLE))

    def capacity(self, model: IntegerModel, rows: int) -> cap.Capacity:
        """How many games of jobs like this one (model, rows) this agent can play at once: the
        largest move is the model's shape bound, or more if one of its latest moves took more."""
        measured = self._move_gas.get(self._model_id(model), ())
        move_gas = max(cap.move_gas_bound(cap.widest_row_bytes(model)), max(measured, default=0))
        return cap.Capacity(block_time=self.block_time, block_gas=self.block_gas, clock=self.client.clock,
                            moves=cap.moves_per_game(len(model.ops), rows, self.client.arity, self.is_solver),
                            move_gas=move_gas, send_rate=self.throughput.send_rate,
                            tick_time=self.throughput.tick_time,
                            moves_per_tx=max(1, min(self.client.max_calls, batching.MAX_BATCH_GAS // move_gas)))

    def _model_id(self, model: IntegerModel) -> int | None:
        return next((model_id for model_id, m in self.models.items() if m is model), None)

    def block_space(self) -> BlockSpace:
        """What filling blocks ahead of ours costs now (``terms.stuffing_cost``)."""
        return self.per_tick("space", lambda: BlockSpace(self.block_gas, *self.client.txmgr.fees()))

    def games_in_play(self) -> int:
        return len(self._playing())

    def _playing(self) -> list[tuple[int, int]]:
        """(game, job) of our games not over, by the records this tick read: a game won and
        waiting for its settle makes no more moves, so it takes none of the capacity."""
        seen = self._games_seen
        return [(g, j) for g, j in self.journal.active_games()
                if g not in seen or RESULT_OF_PHASE.get(seen[g].phase, IN_PLAY) == IN_PLAY]

    def describe_capacity(self) -> None:
        """Logs the worst-case capacity per model (the largest job it can be posted), and what a
        flood of games beyond it costs an attacker in bonds."""
        for model in self.models.values():
            worst = self.capacity(model, cap.MAX_POSTED_ROWS)
            self.capacity_lines.logged(model.name, worst.games, worst.bound_by)
            self.log(f"capacity for {model.name}: {worst.describe()}; a flood beyond it costs the attacker "
                     f"{ether(worst.flood_cost(self.client.challenger_bond))} in challenger bonds "
                     f"(at most {ether(self.limits.max_bond)} of ours at risk per job)")

    def _watch_capacity(self) -> None:
        """After a tick: the capacity logged again when it moved for good (``CapacityLines``), and
        a warning at once when more games are in play than the capacity for their jobs (the
        agent plays on, nearest deadline first)."""
        for model in self.models.values():
            worst = self.capacity(model, cap.MAX_POSTED_ROWS)
            first = not self.capacity_lines.has(model.name)
            if self.capacity_lines.due(model.name, worst.games, worst.bound_by):
                self.log(f"capacity for {model.name}{'' if first else ' now'}: {worst.describe()}")
        in_play = self._playing()
        least = None  # (capacity, job id, model, rows) of the job whose games allow the fewest
        for job_id in sorted({j for _, j in in_play}):
            row = self.journal.job(job_id)
            if row is None or row.model_id not in self.models:
                continue
            games = self.capacity(self.models[row.model_id], row.rows).games
            if least is None or games < least[0]:
                least = (games, job_id, self.models[row.model_id].name, row.rows)
        beyond = len(in_play) - least[0] if least else 0
        if beyond <= 0:
            self._alarms.pop("beyond", None)
        elif _changed(self._alarms.get("beyond"), beyond):
            self._alarms["beyond"] = beyond
            games, job_id, name, rows = least
            self.log(f"beyond capacity: {len(in_play)} games in play, capacity {games} for job {job_id} "
                     f"({name}, {rows} rows): {beyond} games short; playing the nearest deadlines first")

    def _note_backlog(self, head: int, waiting: list[Action]) -> None:
        """Actions decided but not sent for more than a block are a backlog: a warning (again
        when it grows or shrinks by much) and the ``referee_backlog_actions`` metric."""
        self._backlog = {a.key: self._backlog.get(a.key, head) for a in waiting}
        late = [since for since in self._backlog.values() if head - since > 1]
        if self.metrics:
            self.metrics.set_backlog(len(late))
        if not late:
            self._alarms.pop("backlog", None)
        elif _changed(self._alarms.get("backlog"), len(late)):
            self._alarms["backlog"] = len(late)
            self.log(f"backlog: {len(late)} action(s) decided but not sent for more than a block (the oldest "
                     f"since block {min(late):,}); the agent sends less than its games need")


def _changed(before: int | None, now: int) -> bool:
    """Whether a figure last logged as ``before`` (None: never) moved enough to log again."""
    return before is None or abs(now - before) > CHANGED_BY_MUCH * max(before, 1)
