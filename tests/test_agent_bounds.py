"""What an agent takes on is bounded per model and across jobs, and a new job's model runs off
the tick (docs/agents.md, "RPC cost and risk").

- Move gas is kept per model: a game on a wide model (8,192 columns, moves of ~0.5-0.7M gas)
  does not cut the capacity of a narrow one, and an old outlier ages out of the window.
- The bond at risk is bounded by capacity counted across jobs: every job a solver has claimed
  may draw a game, so claims count against its capacity as games in play do, and a solver at
  the edge refuses the next claim with a log line.
- A new job's trace is computed by the agent's trace worker: the tick that first sees a large
  job sends its game's move and does not wait for the model; the trace is stored in the
  background, and a later tick claims the job.

Real agents, real contracts, on anvil.
"""

import random

import pytest

from accounting import assert_accounting
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee import commitments as cm
from referee.agents import capacity as cap
from referee.agents.challenger import Challenger
from referee.agents.client import CLAIMED, COMMITTED, OPEN, REJECTED, ChainClient
from referee.agents.deployment import deploy
from referee.agents.drive import drive
from referee.agents.journal import MOVE_GAS_WINDOW, Journal
from referee.agents.solver import Solver
from referee.trace import TraceStore

FEE = 3 * 10**16
SOLVER_BOND = 10**18
NARROW, WIDE = 1, 2  # model ids, in the order registered


@pytest.fixture(scope="module")
def models():
    narrow = to_integer_model(random_ref_model(random.Random(41), 7, [6, 5, 4]))
    wide = to_integer_model(random_ref_model(random.Random(43), 8192, [4]))
    return narrow, wide


@pytest.fixture(scope="module")
def deployment(accounts, models):
    deployer = accounts[0]
    d = deploy(deployer, sink=str(accounts[9].address))
    client = ChainClient(d, deployer)
    for model in models:
        client.registry.register(*model.registration(), sender=deployer)
    return d


@pytest.fixture
def market(deployment, accounts):
    m = ChainClient(deployment, accounts[0]).market
    yield m
    assert_accounting(m)


@pytest.fixture
def make_agent(deployment, models, tmp_path):
    lines = []

    def make(cls, account, name, home=None, **options):
        home = tmp_path / (home or name)
        journal = Journal(home / "state.sqlite")
        client = ChainClient(deployment, account, journal, patience=30, log=lines.append)
        return cls(client, journal, list(models), TraceStore(home / "traces"), name=name, log=lines.append,
                   device="cpu", **options)

    make.lines = lines
    return make


def widest(model) -> int:
    return cap.widest_row_bytes(model)


def test_agent_bounds_move_gas_kept_per_model_succeeds(market, models, accounts, make_agent):
    narrow, wide = models
    solver = make_agent(Solver, accounts[2], "solver", cheat="wrong-output")
    solver.ensure_stake(SOLVER_BOND)
    challenger = make_agent(Challenger, accounts[3], "challenger")
    before = challenger.capacity(narrow, 4)
    x = int8_tensor(random_input(random.Random(44), 2, wide.input_cols))
    market.post(WIDE, 2, cm.packed(x), SOLVER_BOND, 600, 600, 1800, value=FEE, sender=accounts[1])
    job = market.job_count()
    drive([solver, challenger], lambda: market.job(job).status == REJECTED and not challenger.journal.active_games())
    narrow_bound = cap.move_gas_bound(widest(narrow))
    # the challenger's step carries two rows of 8,192 columns: more than the narrow model's bound
    assert max(challenger.journal.move_gas(WIDE)) > narrow_bound
    for agent in (solver, challenger):
        measured = agent.journal.move_gas(WIDE)
        print(f"move gas: {agent.role} on the wide model: {measured}; narrow model's bound {narrow_bound:,}")
        assert measured and agent.journal.move_gas(NARROW) == []  # kept for the wide model only
        assert agent.capacity(narrow, 4).move_gas == narrow_bound
        assert agent.capacity(wide, 2).move_gas == max(cap.move_gas_bound(widest(wide)), max(measured))
    assert challenger.capacity(narrow, 4).move_gas == before.move_gas  # the send rate is measured as it plays
    # a restarted agent reads the same figures from its journal
    challenger.journal.close()
    again = make_agent(Challenger, accounts[3], "challenger again", home="challenger")
    assert again.capacity(narrow, 4).move_gas == before.move_gas
    assert list(again._move_gas[WIDE]) == again.journal.move_gas(WIDE)
    # a stale maximum ages out: after a window of smaller moves it no longer counts
    for _ in range(MOVE_GAS_WINDOW):
        again.journal.add_move_gas(WIDE, "pick", 60_000)
    assert max(again.journal.move_gas(WIDE)) == 60_000 and len(again.journal.move_gas(WIDE)) == MOVE_GAS_WINDOW


def test_agent_bounds_solver_at_capacity_refuses_next_claim_succeeds(chain, market, models, accounts, make_agent):
    narrow, _ = models
    node = chain.provider.web3.provider
    limit = chain.provider.web3.eth.get_block("latest")["gasLimit"]
    node.make_request("anvil_setBlockGasLimit", [hex(3_000_000)])
    # a base fee at which stuffing a commit window of 3M-gas blocks costs more than the bond
    # (terms.stuffing_cost): the capacity, not the price of block space, is what refuses here
    node.make_request("anvil_setNextBlockBaseFeePerGas", [hex(100 * 10**9)])
    node.make_request("evm_mine", [])
    try:
        # blocks of 3M gas and 300 s: four moves of the narrow model fit half a block, and a game of
        # 5 moves at one block each fits half the clock once (3600 // (2 * 5 * 300) = 1): capacity 4
        solver = make_agent(Solver, accounts[2], "solver", block_time=300)
        solver.ensure_stake(6 * SOLVER_BOND)
        capacity = solver.capacity(narrow, 3).games
        assert capacity == 4
        x = int8_tensor(random_input(random.Random(45), 3, narrow.input_cols))
        for _ in range(capacity + 1):
            market.post(NARROW, 3, cm.packed(x), SOLVER_BOND, 3600, 3600, 3600, value=FEE, sender=accounts[1])
        jobs = range(market.job_count() - capacity, market.job_count() + 1)
        for _ in range(3):  # one tick sees every job: the claims it sends count at once
            solver.tick()
            solver.await_receipts()
    finally:
        node.make_request("anvil_setBlockGasLimit", [hex(limit)])
    claimed = [j for j in jobs if market.job(j).status in (CLAIMED, COMMITTED)]
    assert len(claimed) == capacity, [market.job(j).status for j in jobs]
    refused = [j for j in jobs if j not in claimed]
    line = f"solver: job {refused[0]}: waiting, {capacity} games in play already, at capacity {capacity}"
    assert line in make_agent.lines, [ln for ln in make_agent.lines if "waiting" in ln]
    assert solver.bonds_at_risk() == capacity * SOLVER_BOND


def test_agent_bounds_new_job_trace_off_the_tick_move_sent_first_succeeds(market, models, accounts, make_agent):
    narrow, _ = models
    solver = make_agent(Solver, accounts[2], "solver", cheat="wrong-output")
    solver.ensure_stake(2 * SOLVER_BOND)
    challenger = make_agent(Challenger, accounts[3], "challenger")
    game = solver.client.game
    x = int8_tensor(random_input(random.Random(46), 3, narrow.input_cols))
    market.post(NARROW, 3, cm.packed(x), SOLVER_BOND, 600, 600, 1800, value=FEE, sender=accounts[1])
    drive([solver, challenger], lambda: game.game_count() > 0 and game.games(game.game_count()).phase == 1)
    game_id = game.game_count()  # challenged: the solver's bisection is due
    big = int8_tensor(random_input(random.Random(47), 4096, narrow.input_cols))  # the most rows a job has
    market.post(NARROW, 4096, cm.packed(big), SOLVER_BOND, 600, 600, 1800, value=FEE, sender=accounts[1])
    job = market.job_count()
    start = len(make_agent.lines)
    assert solver.tick() == 1
    seen = make_agent.lines[start:]
    assert f"solver: game {game_id}: bisect: sent" in seen, seen
    assert solver.traces.pending() == [job]  # handed to the worker, not waited for
    assert not any(f"job {job}: ran" in line for line in seen) and market.job(job).status == OPEN
    # the trace is computed and stored with no tick running
    assert solver.await_traces()
    assert solver.store.load(narrow.root, cm.commit_tensor(big).root).op_count == len(narrow.ops)
    solver.await_receipts()
    start = len(make_agent.lines)
    solver.tick()
    seen = make_agent.lines[start:]
    ran = next(i for i, line in enumerate(seen) if f"job {job}: ran" in line)
    assert seen.index(f"solver: job {job}: claimed: sent") > ran, seen
    solver.await_receipts()
    assert market.job(job).status == CLAIMED
