"""How many games an agent can play at once, and what a flood beyond that costs the attacker.

An agent submits the moves of all its games together each block (``Agent._flush``, many moves
per ``multicall`` transaction), so a move waits about one block however many games there are,
until the moves due in one block no longer fit what the agent can get out in a block. Past that,
a round of moves takes ``ceil(games / moves_per_block)`` blocks, and a game of ``moves`` own
moves charges the agent's clock about ``moves × ceil(games / moves_per_block) × block_time``. An
agent plans to spend at most half its clock (``CLOCK_MARGIN``), so

    capacity = moves_per_block × floor(clock / (CLOCK_MARGIN × moves × block_time))

games at once. What it gets out in a block is bounded twice, by block gas and by its own
sending:

    moves_per_block = min(floor(BLOCK_SHARE × block_gas / move_gas),
                          floor(send_rate × block_time × moves_per_tx))

A tick longer than a block reaches each game only once per ``ticks = ceil(tick_time /
block_time)`` blocks, and sends one block's share then: the unit of time becomes the tick, so

    capacity = min(moves_per_block(gas), send_rate × ticks × block_time × moves_per_tx)
               × floor(clock / (CLOCK_MARGIN × moves × block_time × ticks))

which is the formula above when a tick fits in a block.

``send_rate`` (transactions a second while sending) and ``tick_time`` are measured by the agent
over its last ticks (``Throughput``); ``moves_per_tx`` is what one multicall carries (64 moves,
fewer when their gas would pass a transaction's cap). Before anything is measured only the gas
bound counts.

Both figures are bounds, not averages: ``moves`` is the most moves one side makes in a game of
the job's shape (bisection rounds, the row descent, the transition and the row or the step),
and ``move_gas`` is the largest gas one move may take, from the shape of the model (its widest
row in calldata) or, once the agent has played, the largest move it measured, whichever is more.
A challenger takes no game beyond its capacity; a solver cannot refuse games, but a Sybil flood
that outruns it must first open ``capacity + 1`` games and lose their bonds.
"""

import math
from collections import deque
from dataclasses import dataclass

from ..merkle import depth_for

BLOCK_SHARE = 0.5     # the part of each block's gas an agent plans to fill
CLOCK_MARGIN = 2      # an agent plans to spend at most 1 / CLOCK_MARGIN of its clock
DEFAULT_BLOCK_TIME = 12.0  # seconds, Ethereum's slot; used when the chain does not tell
MAX_POSTED_ROWS = 4096     # JobMarket.MAX_ROWS: the largest job, for worst-case figures
# The largest move but for calldata: a transition with three 16-deep proofs measured
# 225k-260k gas here (docs/benchmarks.md); calldata costs at most 40 gas a byte (EIP-7623).
BASE_MOVE_GAS = 300_000
CALLDATA_GAS_PER_BYTE = 40
THROUGHPUT_TICKS = 16  # ticks the send rate and tick length are averaged over
THROUGHPUT_MIN_TICKS = 3  # ticks measured before the tick length counts (the first catches up)


def bisection_rounds(n_ops: int, arity: int) -> int:
    """The most ``bisect``/``choose`` rounds a game over ``n_ops`` ops takes (protocol 7.1)."""
    rounds, length = 0, n_ops
    while length > 1:
        parts = min(arity, length)
        length = -(-length // parts)  # the longest sub-interval a choice can leave
        rounds += 1
    return rounds


def moves_per_game(n_ops: int, rows: int, arity: int, as_solver: bool) -> int:
    """The most moves one side makes in a game: bisection rounds, row descent, and its last move."""
    rounds, descent = bisection_rounds(n_ops, arity), depth_for(rows)
    # solver: bisect per round, transition, reveal_children per level, reveal_row;
    # challenger: choose per round, pick per level, step
    return rounds + descent + (2 if as_solver else 1)


def widest_row_bytes(model) -> int:
    """The longest packed row of any slot of ``model`` (columns times the dtype's width): what a
    ``reveal_row`` carries at most, and each input row of a one step."""
    from ..commitments import WIDTHS

    return max(model.slot_cols(s) * WIDTHS[model.slot_dtype(s)] for s in range(len(model.ops) + 1))


def move_gas_bound(widest_bytes: int) -> int:
    """An upper bound on the gas of one move of a model whose longest packed row is
    ``widest_bytes``: the one step carries two rows that long (and at most a 1 KiB table,
    inside the base), ``reveal_row`` one."""
    return BASE_MOVE_GAS + CALLDATA_GAS_PER_BYTE * 2 * widest_bytes


@dataclass(frozen=True)
class Capacity:
    """An agent's capacity for games of one shape, at one block time and block gas limit."""

    block_time: float
    block_gas: int
    clock: int
    moves: int
    move_gas: int
    send_rate: float | None = None  # transactions a second while sending (None: not measured)
    tick_time: float = 0.0  # seconds one pass over every job and game takes
    moves_per_tx: int = 1

    @property
    def gas_moves_per_block(self) -> int:
        """Moves a block's gas share holds: the physical bound."""
        return int(self.block_gas * BLOCK_SHARE) // self.move_gas

    @property
    def blocks_per_tick(self) -> int:
        return max(1, math.ceil(self.tick_time / self.block_time - 1e-9))

    @property
    def sent_moves_per_tick(self) -> int | None:
        """Moves the agent can send in one tick's blocks (None: not measured)."""
        if self.send_rate is None:
            return None
        return int(self.send_rate * self.blocks_per_tick * self.block_time * self.moves_per_tx)

    @property
    def moves_per_tick(self) -> int:
        """Moves one tick gets out: a block's gas share, or what the agent sends in the tick."""
        sent = self.sent_moves_per_tick
        return self.gas_moves_per_block if sent is None else min(self.gas_moves_per_block, sent)

    @property
    def moves_per_block(self) -> int:
        return self.moves_per_tick // self.blocks_per_tick

    @property
    def bound_by(self) -> str:
        """What limits the moves a block: "block gas", "send rate" or "tick length"."""
        sent = self.sent_moves_per_tick
        if self.blocks_per_tick > 1:
            return "tick length"
        return "send rate" if sent is not None and sent < self.gas_moves_per_block else "block gas"

    @property
    def blocks_per_move(self) -> int:
        """How many ticks (blocks, while a tick fits in one) each move may wait, in the worst case,
        within the planned clock."""
        return int(self.clock // (CLOCK_MARGIN * self.moves * self.block_time * self.blocks_per_tick))

    @property
    def games(self) -> int:
        return self.moves_per_tick * self.blocks_per_move

    def flood_cost(self, challenger_bond: int) -> int:
        """Wei in challenger bonds an attacker must put up (and lose) to outrun this capacity."""
        return (self.games + 1) * challenger_bond

    def describe(self) -> str:
        sending = ("send rate not yet measured" if self.send_rate is None else
                   f"sending {self.send_rate:.1f} tx/s of up to {self.moves_per_tx} moves, ticks of "
                   f"{self.tick_time:.2f} s, bound by {self.bound_by}")
        return (f"{self.games:,} games at once ({self.moves} moves a game, at most {self.move_gas:,} gas a move, "
                f"{self.moves_per_block} moves a block ({self.gas_moves_per_block} in half of "
                f"{self.block_gas:,} gas; {sending}), {self.block_time:g} s blocks, clock {self.clock:,} s)")


class Throughput:
    """The agent's own sending, a moving figure over its last ``THROUGHPUT_TICKS`` ticks:
    transactions a second while it sends, and how long a tick takes (the median; the time
    spent computing new jobs' traces, once per job, is not the tick's)."""

    def __init__(self, window: int = THROUGHPUT_TICKS):
        self._ticks: deque = deque(maxlen=window)  # (transactions, seconds sending, seconds ticking)

    def record(self, txs: int, send_seconds: float, tick_seconds: float) -> None:
        self._ticks.append((txs, send_seconds, tick_seconds))

    @property
    def send_rate(self) -> float | None:
        txs = sum(t for t, _, _ in self._ticks)
        seconds = sum(s for t, s, _ in self._ticks if t)
        return txs / seconds if txs and seconds > 0 else None

    @property
    def tick_time(self) -> float:
        """The median tick: one slow tick (a node's hiccup) does not halve the capacity; nor
        does the first one, which reads the history since the agent last ran (0 until
        ``THROUGHPUT_MIN_TICKS`` ticks are measured)."""
        if len(self._ticks) < THROUGHPUT_MIN_TICKS:
            return 0.0
        ticks = sorted(t for _, _, t in self._ticks)
        return ticks[len(ticks) // 2]


def block_time_of(timestamps: list[int]) -> float:
    """The chain's block time from consecutive block timestamps: the median gap, robust to the
    clock jumps of a local chain; ``DEFAULT_BLOCK_TIME`` when the gaps say nothing (a local chain
    that mines a block per transaction, often several in one second)."""
    gaps = sorted(b - a for a, b in zip(timestamps, timestamps[1:]))
    median = gaps[len(gaps) // 2] if gaps else 0
    return float(median) if median >= 1 else DEFAULT_BLOCK_TIME
