"""Honest parties win under floods: the real agents against floods of games, at the default
deployment (clock 3600 s, arity 4, 0.1 ETH bonds) with 12-second blocks (tests/flood.py).

- A Sybil flood on an honest solver: an attacker opens K games against its right result,
  answers every solver move in the next block, never plays ``step`` and waits for the solver's
  clock to run out. The solver (``referee.agents.Solver``) answers every game in the next block
  and wins all K on the attacker's clock.
- A flood of jobs on an honest challenger: a liar posts J jobs of its own at 1 wei, commits a
  wrong output on each (its own solver agent, which answers every move at once), and the
  challenger (``referee.agents.Challenger``) challenges all J and wins all J.

Each prints one ``flood`` line: K or J, games won, the worst move latency in blocks, the gas
used per block. The latency must be one block while half a block's gas holds a move of every
game (``capacity.moves_per_block``, 49 here), and ``ceil(K / 49)`` blocks beyond: block gas,
not the protocol, is then the limit. ``REFEREE_FLOOD_GAMES`` and ``REFEREE_FLOOD_JOBS`` set K and J (50 and 30 in
``make test``; ``make test-long`` runs 200 and 100).
"""

import os

from accounting import assert_accounting
from game_bots import STATS
from flood import (BOND, FEE, ROWS, SOLVER_BOND, WINDOWS, Lockstep, job_input, judge, owed_to_winner, sybil_scene,
                   withdrawn)
from flood import agent, deployment, model  # noqa: F401 (fixtures)
from referee import commitments as cm
from referee.agents.challenger import Challenger
from referee.agents.client import COMMITTED, FINALIZED, REJECTED
from referee.agents.deployment import DEFAULT_PARAMS
from referee.agents.solver import Solver

K = int(os.environ.get("REFEREE_FLOOD_GAMES", "50"))
J = int(os.environ.get("REFEREE_FLOOD_JOBS", "30"))


def test_flood_of_sybil_games_honest_solver_wins_every_game(chain, accounts, deployment, model, agent, tmp_path):
    requester, solver_account, attacker_account = accounts[1], accounts[2], accounts[3]
    solver = agent(Solver, solver_account, "solver")
    market, game = solver.client.market, solver.client.game
    job, attacker = sybil_scene(solver, model, deployment, requester, attacker_account, tmp_path)
    start = chain.blocks.height
    attacker_before = attacker_account.balance

    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([solver], [solver], lambda: market.job(job).status == COMMITTED)
        attacker.challenge(job, K)
        lockstep.run([solver, attacker], [solver],
                     lambda: market.job(job).status == FINALIZED and market.credit(solver_account) == 0)

    stop = chain.blocks.height
    judge("Sybil games on an honest solver", "K", K, solver, game, sorted(attacker.games), start, stop,
          lockstep.blocks)
    # the solver is paid the fee and every Sybil bond; its stake is whole
    assert withdrawn(market, solver_account, start, stop) == FEE + K * BOND
    assert market.stake(solver_account) == SOLVER_BOND and market.locked(solver_account) == 0
    assert attacker_before - attacker_account.balance > K * BOND  # the flood cost its bonds and gas
    assert_accounting(market)


def test_flood_of_jobs_honest_challenger_wins_every_game(chain, accounts, deployment, model, agent, tmp_path):
    liar_account, challenger_account = accounts[4], accounts[5]
    liar = agent(Solver, liar_account, "liar", cheat="wrong-output", min_fee=0)
    min_bond = DEFAULT_PARAMS["min_solver_bond"]
    liar.ensure_stake(J * min_bond)
    market, game = liar.client.market, liar.client.game
    jobs = []
    for i in range(J):  # the liar's own jobs, at 1 wei each
        market.post(1, ROWS, cm.packed(job_input(100 + i)), min_bond, *WINDOWS, value=1, sender=liar_account)
        jobs.append(market.job_count())
    challenger = agent(Challenger, challenger_account, "challenger")
    start = chain.blocks.height

    def done():
        return (all(market.job(j).status == REJECTED for j in jobs) and not challenger.journal.active_games()
                and market.credit(challenger_account) == 0)

    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([liar, challenger], [liar, challenger], done)

    stop = chain.blocks.height
    games = sorted(log.game_id for log in market.JobChallenged.range(
        start, stop + 1, search_topics={"challenger": challenger_account.address}))
    judge("jobs on an honest challenger", "J", J, challenger, game, games, start, stop, lockstep.blocks)
    # every bond came back with its gas and the bonus of each slashed liar bond (a sole winner each)
    assert withdrawn(market, challenger_account, start, stop) == owed_to_winner(
        market, challenger_account, games, 1, start, stop, solver_bond=min_bond)
    assert_accounting(market)


def test_flood_beyond_capacity_is_declined_until_games_end_with_its_reason(chain, accounts, deployment, model, agent):
    """A challenger at its capacity declines more games for now, saying why, instead of losing them
    on time; it challenges the wrong result it waited on once a game of its has ended."""
    liar_account, challenger_account = accounts[4], accounts[5]
    liar = agent(Solver, liar_account, "liar", cheat="wrong-output", min_fee=0)
    min_bond = DEFAULT_PARAMS["min_solver_bond"]
    liar.ensure_stake(3 * min_bond)
    market = liar.client.market
    for i in range(3):
        market.post(1, ROWS, cm.packed(job_input(200 + i)), min_bond, *WINDOWS, value=1, sender=liar_account)
    node = chain.provider.web3.provider
    limit = chain.provider.web3.eth.get_block("latest")["gasLimit"]
    node.make_request("anvil_setBlockGasLimit", [hex(1_300_000)])
    # blocks this small are cheap to stuff: at 100 gwei (decaying by 12.5% an empty block) the
    # commit window and the clock still cost more to fill than the bonds (terms.stuffing_cost)
    node.make_request("anvil_setNextBlockBaseFeePerGas", [hex(100 * 10**9)])
    node.make_request("evm_mine", [])
    try:
        # blocks of 1.3M gas and 200 s: two moves fit half a block, and 6 moves a game at one
        # block each fit half the clock once (3600 // (2 * 6 * 200) = 1): capacity 2
        challenger = agent(Challenger, challenger_account, "challenger", block_time=200)
        assert challenger.capacity(model, ROWS).games == 2
        decided = lambda: all(challenger.journal.job(j) is not None and  # noqa: E731
                              challenger.journal.job(j).state != "to check" for j in range(1, 4))
        def challenged() -> set[int]:
            return {log.job_id for log in market.JobChallenged.range(
                0, chain.blocks.height + 1, search_topics={"challenger": challenger_account.address})}

        with Lockstep(chain.provider.uri) as lockstep:
            lockstep.run([liar, challenger], [liar], decided)
            states = {j: (challenger.journal.job(j).state, challenger.journal.job(j).note) for j in range(1, 4)}
            declined = [j for j, (state, note) in states.items() if "not challenged" in note]
            assert len(declined) == 1, states
            assert states[declined[0]] == ("at capacity", "wrong result; not challenged yet: 2 games in play "
                                                          "already, at capacity 2")
            assert challenged() == {1, 2, 3} - set(declined)
            # it waits, not gives up: once a game of its ends, the third wrong result is challenged
            lockstep.run([liar, challenger], [liar, challenger], lambda: challenged() == {1, 2, 3})
    finally:
        node.make_request("anvil_setBlockGasLimit", [hex(limit)])


def test_solver_prints_its_capacity_and_the_flood_cost(accounts, deployment, model, agent):
    """At start a solver logs, per model, its worst-case capacity and what outrunning it costs."""
    lines = []
    solver = agent(Solver, accounts[2], "solver")
    solver._log = lines.append
    solver.describe_capacity()
    worst = solver.capacity(model, 4096)  # the largest job a model can be posted
    assert worst.moves == 16 and worst.games == 441  # 2 rounds + 12 levels + transition + row
    [line] = lines
    assert f"{worst.games:,} games at once" in line
    assert "a flood beyond it costs the attacker 44.2 ETH in challenger bonds" in line  # 442 x 0.1 ETH


def test_flood_at_twice_capacity_costs_the_solver_at_most_its_bond(chain, accounts, deployment, model, agent,
                                                                     tmp_path):
    """Beyond capacity (docs/security.md, "Beyond capacity"): a Sybil flood of twice the
    solver's capacity is warned of at once with its shortfall, played nearest deadline first,
    and the most the solver can lose is the flooded job's bond, while the attacker loses a
    bond on every game the solver wins. Blocks of 1.3M gas every 200 s make the capacity 2 (two
    moves fit half a block; 7 moves a game at a block each fit half the 3600 s clock once)."""
    requester, solver_account, attacker_account = accounts[1], accounts[2], accounts[3]
    node = chain.provider.web3.provider
    limit = chain.provider.web3.eth.get_block("latest")["gasLimit"]
    node.make_request("anvil_setBlockGasLimit", [hex(1_300_000)])
    # small blocks are cheap to stuff: at 300 gwei the 1200 s commit window (6 blocks) costs 2.3
    # ETH to fill, more than the 1 ETH bond (terms.stuffing_cost); the fee is not weighed (min_fee=0)
    node.make_request("anvil_setNextBlockBaseFeePerGas", [hex(300 * 10**9)])
    node.make_request("evm_mine", [])
    lines: list[str] = []
    try:
        solver = agent(Solver, solver_account, "solver", block_time=200, min_fee=0)
        solver._log = lines.append
        capacity = solver.capacity(model, ROWS).games
        assert capacity == 2
        K2 = 2 * capacity
        market, game = solver.client.market, solver.client.game
        job, attacker = sybil_scene(solver, model, deployment, requester, attacker_account, tmp_path,
                                    windows=(1200, 1200, 3600))
        start = chain.blocks.height
        with Lockstep(chain.provider.uri, block_time=200) as lockstep:
            lockstep.run([solver], [solver], lambda: market.job(job).status == COMMITTED)
            attacker.challenge(job, K2)
            lockstep.run([solver, attacker], [solver],
                         lambda: market.job(job).status in (FINALIZED, REJECTED) and market.credit(solver_account) == 0)
    finally:
        node.make_request("anvil_setBlockGasLimit", [hex(limit)])
    stop = chain.blocks.height
    games = sorted(attacker.games)
    won = sum(game.result(g) == 1 for g in games)
    lost_bond = SOLVER_BOND - market.stake(solver_account)
    paid = withdrawn(market, solver_account, start, stop)
    left = min(game.games(g).solver_time for g in games)
    line = (f"flood (twice the capacity, lockstep, 200 s blocks of 1.3M gas): K={K2} at capacity {capacity}, won "
            f"{won}/{K2}, least clock left {left} s of 3600, bond lost {lost_bond / 10**18:g} ETH, withdrawn "
            f"{paid / 10**18:g} ETH")
    STATS.figures.append(line)
    # warned at once, naming the shortfall
    assert any(f"beyond capacity: {K2} games in play, capacity {capacity} for job {job}" in l and
               f"{K2 - capacity} games short" in l for l in lines), line
    # the bound: at most the flooded job's bond lost; every game it won paid it the Sybil's bond
    assert 0 <= lost_bond <= SOLVER_BOND and market.locked(solver_account) == 0, line
    assert paid >= won * BOND + (FEE if lost_bond == 0 else 0), line
    assert_accounting(market)
