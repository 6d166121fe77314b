"""The capacity arithmetic of referee.agents.capacity, against brute force from the protocol.

``bisection_rounds`` must be the most rounds any sequence of choices can take (protocol 7.1:
``q_i = lo + floor(i * L / p)``), so it is checked against every path of small games; the block
time must ignore a local chain's clock jumps; the capacity figures quoted in docs/agents.md and
docs/security.md are recomputed here.
"""

from functools import lru_cache

import pytest

from referee.agents import capacity as cap


@lru_cache(maxsize=None)
def _most_rounds(lo: int, hi: int, arity: int) -> int:
    length = hi - lo
    if length <= 1:
        return 0
    parts = min(arity, length)
    points = [lo + i * length // parts for i in range(parts + 1)]
    return 1 + max(_most_rounds(a, b, arity) for a, b in zip(points, points[1:]))


@pytest.mark.parametrize("arity", [2, 4, 8, 64])
def test_bisection_rounds_is_the_longest_path(arity):
    for n_ops in range(1, 300):
        assert cap.bisection_rounds(n_ops, arity) == _most_rounds(0, n_ops, arity), (n_ops, arity)


def test_moves_per_game_counts_each_side():
    # 5 ops at arity 4: 2 rounds; 8 rows: 3 levels; the solver adds transition and row, the
    # challenger the step
    assert cap.moves_per_game(5, 8, 4, as_solver=True) == 7
    assert cap.moves_per_game(5, 8, 4, as_solver=False) == 6
    assert cap.moves_per_game(1, 1, 4, as_solver=True) == 2  # one op, one row: transition and row


def test_block_time_is_the_median_gap_and_ignores_clock_jumps():
    assert cap.block_time_of([0, 12, 24, 36, 1836, 1848]) == 12.0  # one warp of 1800 s
    assert cap.block_time_of([5, 5, 5, 6, 6]) == cap.DEFAULT_BLOCK_TIME  # a block per transaction
    assert cap.block_time_of([7]) == cap.DEFAULT_BLOCK_TIME
    assert cap.block_time_of([0, 2, 4, 6]) == 2.0


def test_capacity_figures_of_the_docs():
    bound = cap.move_gas_bound(8)
    assert bound == 300_640
    solver = cap.Capacity(12, 30_000_000, 3600, cap.moves_per_game(5, 8, 4, True), bound)
    assert (solver.moves_per_block, solver.blocks_per_move, solver.games) == (49, 21, 1029)
    assert solver.flood_cost(10**17) == 103 * 10**18
    worst = cap.Capacity(12, 30_000_000, 3600, cap.moves_per_game(5, 4096, 4, True), bound)
    assert (worst.moves, worst.games, worst.flood_cost(10**17)) == (16, 441, 442 * 10**17)
    # a clock too short for the chain: no game fits half of it
    assert cap.Capacity(400, 30_000_000, 3600, 7, bound).games == 0
