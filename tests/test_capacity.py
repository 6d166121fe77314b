"""The capacity arithmetic of referee.agents.capacity, against brute force from the protocol.

``bisection_rounds`` must be the most rounds any sequence of choices can take (protocol 7.1:
``q_i = lo + floor(i * L / p)``), so it is checked against every path of small games; the block
time must ignore a local chain's clock jumps; the capacity figures quoted in docs/agents.md and
docs/security.md are recomputed here; and an agent at exactly its capacity, bound by block gas,
by its measured send rate or by a tick longer than a block, is simulated move by move to keep
half of every clock.
"""

from functools import lru_cache

import pytest

from flood import agent, deployment, model  # noqa: F401 (fixtures)

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


def _most_charged(games: int, moves: int, per_tick: int, blocks_per_tick: int, block_time: float) -> float:
    """Brute force: an agent that every ``blocks_per_tick`` blocks sends up to ``per_tick`` due
    moves, the longest-waiting first (each mined in the next block), against an opponent that
    answers in the block after; the most any game's clock is charged over ``moves`` moves."""
    ready, left, charged, t = [0] * games, [moves] * games, [0.0] * games, 0
    while any(left):
        due = sorted((ready[g], g) for g in range(games) if left[g] and ready[g] <= t)
        for _, g in due[:per_tick]:
            charged[g] += (t + 1 - ready[g]) * block_time
            left[g], ready[g] = left[g] - 1, t + 2
        t += blocks_per_tick
    return max(charged)


@pytest.mark.parametrize("block_time, clock", [(1, 60), (2, 600), (12, 3600)])
def test_capacity_with_measured_sending_keeps_half_of_every_clock(block_time, clock):
    """At exactly its capacity, whatever bounds it (block gas, the send rate, a tick longer
    than a block), a simulated agent spends at most half of any game's clock."""
    for moves, gas_moves, rate, tick in [(7, 49, None, 0.2), (16, 49, 20.0, 0.3), (7, 200, 2.0, 0.5),
                                         (16, 10, None, 3.0), (7, 49, 5.0, 1.5), (3, 200, 20.0, 2.5)]:
        c = cap.Capacity(block_time, 2 * gas_moves * 300_000, clock, moves, 300_000, send_rate=rate,
                         tick_time=tick * block_time, moves_per_tx=4)
        if not 0 < c.games <= 1500:
            continue
        charged = _most_charged(c.games, moves, c.moves_per_tick, c.blocks_per_tick, block_time)
        assert charged <= clock / cap.CLOCK_MARGIN, (block_time, clock, moves, gas_moves, rate, tick, c.games)


def test_capacity_counts_the_send_rate_and_the_tick_length():
    """The issue-16 figures: at 1-second blocks and a 60 s clock, games of 15 moves, the gas
    bound is 49 moves a block (98 games, the digits job's stated capacity); an agent sending 10
    transactions a second of one move each gets 10 out (20 games); multicalls of up to 40 moves
    lift the send bound past the gas one; a tick of 1.5 s reaches each game every 2 blocks."""
    bound = cap.move_gas_bound(8)
    gas_only = cap.Capacity(1, 30_000_000, 60, 15, bound)
    assert (gas_only.moves_per_block, gas_only.games, gas_only.bound_by) == (49, 98, "block gas")
    one_per_tx = cap.Capacity(1, 30_000_000, 60, 15, bound, send_rate=10.0, tick_time=0.5, moves_per_tx=1)
    assert (one_per_tx.moves_per_block, one_per_tx.games, one_per_tx.bound_by) == (10, 20, "send rate")
    batched = cap.Capacity(1, 30_000_000, 60, 15, bound, send_rate=10.0, tick_time=0.5, moves_per_tx=40)
    assert (batched.moves_per_block, batched.games, batched.bound_by) == (49, 98, "block gas")
    slow_tick = cap.Capacity(1, 30_000_000, 60, 15, bound, send_rate=10.0, tick_time=1.5, moves_per_tx=40)
    assert (slow_tick.blocks_per_tick, slow_tick.moves_per_tick, slow_tick.moves_per_block) == (2, 49, 24)
    assert (slow_tick.blocks_per_move, slow_tick.games, slow_tick.bound_by) == (1, 49, "tick length")
    assert "sending 10.0 tx/s of up to 40 moves, ticks of 1.50 s, bound by tick length" in slow_tick.describe()


def test_throughput_is_a_moving_figure_of_the_last_ticks():
    meter = cap.Throughput(window=4)
    assert meter.send_rate is None and meter.tick_time == 0.0
    meter.record(0, 0.0, 1.0)  # a tick that sent nothing: no send rate from it
    assert meter.send_rate is None
    meter.record(10, 1.0, 2.0)
    assert meter.tick_time == 0.0  # two ticks: the first (a catch-up over history) does not count yet
    meter.record(30, 1.0, 3.0)
    assert meter.send_rate == 20.0 and meter.tick_time == 2.0
    for _ in range(4):  # the old ticks leave the window
        meter.record(5, 1.0, 0.5)
    assert meter.send_rate == 5.0 and meter.tick_time == 0.5


def test_solver_beyond_capacity_warns_at_once_and_plays_by_deadline(chain, accounts, deployment, model, agent,
                                                                   tmp_path):
    """Blocks of 1.3M gas and 200 s give the solver a capacity of 2 games of this job; 6 Sybil
    games are opened: it says at once how many games it is short, and plays them all (the
    nearest deadline first), winning every one on the attackers' clocks."""
    from flood import ROWS, Lockstep, sybil_scene
    from referee.agents.client import COMMITTED
    from referee.agents.solver import Solver

    node = chain.provider.web3.provider
    limit = chain.provider.web3.eth.get_block("latest")["gasLimit"]
    lines = []
    solver = agent(Solver, accounts[2], "solver")
    solver._log = lines.append
    market, game = solver.client.market, solver.client.game
    job, attacker = sybil_scene(solver, model, deployment, accounts[1], accounts[3], tmp_path)
    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([solver], [solver], lambda: market.job(job).status == COMMITTED)
    node.make_request("anvil_setBlockGasLimit", [hex(1_300_000)])
    node.make_request("evm_mine", [])
    try:
        solver.block_time, solver.block_gas = 200, 1_300_000  # committed: now the chain slows down
        assert solver.capacity(model, ROWS).games == 2
        with Lockstep(chain.provider.uri, block_time=200) as lockstep:
            attacker.challenge(job, 6)
            lockstep.run([solver, attacker], [solver],
                         lambda: len(attacker.games) == 6 and all(game.result(g) != 0 for g in attacker.games))
    finally:
        node.make_request("anvil_setBlockGasLimit", [hex(limit)])
    warned = [line for line in lines if "beyond capacity" in line]
    assert any("6 games in play, capacity 2 for job 1" in line and "4 games short" in line for line in warned), warned
    assert sum(game.result(g) == 1 for g in attacker.games) == 6


def test_throughput_alarms_are_warning_lines():
    """An operator filtering on WARNING sees the backlog, the shortfall and a skipped move."""
    import logging

    from referee.agents.logs import line_level

    for line in ("backlog: 12 action(s) decided but not sent for more than a block (the oldest since block 9)",
                 "beyond capacity: 250 games in play, capacity 196 for job 3 (digits, 8 rows): 54 games short",
                 "game 4: bisect: skipped in its batch (game: wrong phase); decided again"):
        assert line_level(line) == logging.WARNING, line


def test_capacity_lines_only_for_a_figure_moved_for_good():
    """A capacity is logged again when its games figure moved by more than 10% or its bound
    changed, and held for 3 ticks: a send rate that wavers tick by tick prints no line."""
    from referee.agents.capacity_watch import CapacityLines

    lines = CapacityLines()
    assert lines.due("m", 490, "block gas")  # the first figure
    wavering = [(450, "block gas"), (490, "send rate"), (530, "block gas"), (300, "send rate"), (490, "block gas")] * 4
    assert not any(lines.due("m", games, bound) for games, bound in wavering)
    assert [lines.due("m", 460, "block gas") for _ in range(5)] == [False] * 5  # within 10%
    assert [lines.due("m", 300, "send rate") for _ in range(4)] == [False, False, True, False]  # held: once
    lines.logged("m", 490, "block gas")  # describe_capacity at start logs the worst case
    assert [lines.due("m", 490, "tick length") for _ in range(3)] == [False, False, True]  # a new bound
