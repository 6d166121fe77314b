"""Job terms no one can honour are refused, by the market and by the agents, each with its reason.

The market (default deployment: windows of 60 s to 30 days) refuses an output larger than
``commit`` takes, a 1-second commit window and a 365-day challenge window. Terms the market
accepts but an agent must not take on are refused by the agents themselves
(``referee.agents.terms``), each logged as the job's note: a bond above ``--max-bond``, a fee
below the gas of serving the job, a commit window of fewer than five blocks, windows that would
lock the bond beyond ``--max-window``; a challenger does not challenge above its ``--max-bond``.
A bond that stuffing its window would cost less than (``terms.stuffing_cost``, at the latest
base fee) is refused, and the same job's terms are taken once the base fee makes stuffing dear.
"""

from types import SimpleNamespace

import pytest

from flood import FEE, ROWS, SOLVER_BOND, WINDOWS, job_input
from flood import agent, model  # noqa: F401 (fixtures)
from referee import commitments as cm
from referee.agents import terms
from referee.agents.challenger import Challenger
from referee.agents.client import CLAIMED, COMMITTED, ChainClient
from referee.agents.deployment import deploy
from referee.agents.drive import drive
from referee.agents.solver import Solver
from rpc import Node

DAY = 86400


@pytest.fixture
def deployment(accounts, model):
    """Windows from 10 s, so that the agents' own minimum (five 12-second blocks) is what refuses."""
    d = deploy(accounts[0], sink=str(accounts[9].address), min_window=10)
    ChainClient(d, accounts[0]).registry.register(*model.registration(), sender=accounts[0])
    return d


@pytest.mark.parametrize("windows,fee,reason", [
    ((600, 1, 1800), FEE, "market: commit window out of range"),
    ((600, 600, 365 * DAY), 1, "market: challenge window out of range"),
])
def test_market_refuses_bait_windows(accounts, model, windows, fee, reason):
    import ape

    d = deploy(accounts[0], sink=str(accounts[9].address))  # the defaults: 60 s to 30 days
    client = ChainClient(d, accounts[0])
    client.registry.register(*model.registration(), sender=accounts[0])
    with ape.reverts(reason):
        client.market.post(1, ROWS, cm.packed(job_input(0)), SOLVER_BOND, *windows, value=fee, sender=accounts[1])


def test_market_refuses_output_larger_than_commit_takes(accounts):
    import ape

    d = deploy(accounts[0], sink=str(accounts[9].address))
    client = ChainClient(d, accounts[0])
    client.registry.register(1, 16, 32, b"\x01" * 32, 0, 0, 1, 65536, 1, 1, sender=accounts[0])  # 16 -> 32 columns
    with ape.reverts("market: output too large to commit"):  # 4096 x 32 = 131,072 bytes
        client.market.post(1, 4096, bytes(4096 * 16), SOLVER_BOND, *WINDOWS, value=FEE, sender=accounts[1])


def test_agents_refuse_terms_they_cannot_honour_with_the_reason(chain, accounts, deployment, agent):
    requester = accounts[1]
    solver = agent(Solver, accounts[2], "solver")
    solver.ensure_stake(3 * SOLVER_BOND)
    market = solver.client.market
    bad = {
        "bond": (2 * SOLVER_BOND, FEE, WINDOWS, "bond 2 ETH is above --max-bond 1 ETH"),
        "fee": (SOLVER_BOND, 1, WINDOWS, "is below the gas of serving it at the current price"),
        "commit window": (SOLVER_BOND, FEE, (600, 30, 1800), "commit window 30 s is under 5 blocks of 12 s"),
        "locked too long": (SOLVER_BOND, FEE, (600, 600, 10 * DAY), "lock the bond for 864,600 s, above --max-window"),
    }
    jobs = {}
    for i, (name, (bond, fee, windows, _)) in enumerate(bad.items()):
        market.post(1, ROWS, cm.packed(job_input(i)), bond, *windows, value=fee, sender=requester)
        jobs[name] = market.job_count()
    market.post(1, ROWS, cm.packed(job_input(9)), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    good = market.job_count()
    drive([solver], lambda: market.job(good).status == COMMITTED)
    for name, (_, _, _, reason) in bad.items():
        row = solver.journal.job(jobs[name])
        assert row.state == "done" and reason in row.note, (name, row.note)
        assert market.job(jobs[name]).status not in (CLAIMED, COMMITTED)
    # a challenger with a lower --max-bond sees the wrong result and says why it does not challenge
    liar = agent(Solver, accounts[3], "liar", cheat="wrong-output", min_fee=0)
    liar.ensure_stake(3 * SOLVER_BOND)  # it also takes the 1-wei job the solver refused
    market.post(1, ROWS, cm.packed(job_input(10)), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    wrong = market.job_count()
    careful = agent(Challenger, accounts[4], "careful", max_bond=5 * 10**16)
    drive([liar, careful], lambda: careful.journal.job(wrong) is not None and careful.journal.job(wrong).state == "done")
    assert "not challenged: bond 0.1 ETH is above --max-bond 0.05 ETH" in careful.journal.job(wrong).note


def test_solver_refuses_an_output_commit_cannot_take():
    # a market from before the output check could post it; the agent refuses it itself
    job = SimpleNamespace(rows=4096, solver_bond=SOLVER_BOND, fee=FEE, commit_window=600, challenge_window=1800)
    reason = terms.solver_refusal(job, 32, terms.Limits(), gas_price=10**9, block_time=12, games_in_play=0,
                                  capacity=10)
    assert reason == "its output (131,072 bytes) is larger than commit takes (65,536)"
    assert terms.solver_refusal(job, 16, terms.Limits(), 10**9, 12, 0, 10) is None
    assert "at capacity 10" in terms.solver_refusal(job, 16, terms.Limits(), 10**9, 12, 10, 10)


def test_stuffing_cost_is_the_window_s_blocks_at_the_base_fee_plus_tip():
    space = terms.BlockSpace(block_gas=30_000_000, base_fee=10**9, tip=10**9)
    assert terms.stuffing_cost(60, 12, space) == 5 * 30_000_000 * 2 * 10**9  # 0.3 ETH
    assert terms.stuffing_cost(59, 12, space) == 4 * 30_000_000 * 2 * 10**9  # a partial block is not stuffed
    job = SimpleNamespace(rows=8, solver_bond=SOLVER_BOND, fee=FEE, commit_window=60, challenge_window=1800)
    reason = terms.solver_refusal(job, 16, terms.Limits(), 10**9, 12, 0, 10, space=space)
    assert reason.startswith("stuffing its 60 s commit window (5 blocks of 30,000,000 gas at base fee 1 gwei + tip "
                             "1 gwei) costs 0.3 ETH, no more than the bond 1 ETH")
    dear = terms.BlockSpace(30_000_000, 10 * 10**9, 10**9)  # 1.65 ETH to stuff the same 5 blocks
    assert terms.solver_refusal(job, 16, terms.Limits(), 10**9, 12, 0, 10, space=dear) is None
    # a game's clock guards the same bond: a 120 s clock is 10 blocks, 0.6 ETH at the cheap price
    job.commit_window = 600
    assert "a game's 120 s clock" in terms.solver_refusal(job, 16, terms.Limits(), 10**9, 12, 0, 10, space=space,
                                                         clock=120)
    assert "a game's 120 s clock" in terms.challenger_refusal(SOLVER_BOND, terms.Limits(), 0, 10, space=space,
                                                             clock=120, block_time=12)
    assert terms.challenger_refusal(10**17, terms.Limits(), 0, 10, space=space, clock=120, block_time=12) is None


def test_solver_refuses_a_bond_stuffing_would_buy_then_takes_it_at_a_higher_base_fee(chain, accounts, deployment,
                                                                                    agent):
    requester = accounts[1]
    solver = agent(Solver, accounts[2], "solver")
    solver.ensure_stake(SOLVER_BOND)
    market, node = solver.client.market, Node(chain.provider.uri)
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(10**6)])  # cheap block space: 5 blocks cost ~0.15 ETH
    node.request("evm_mine", [])
    market.post(1, ROWS, cm.packed(job_input(20)), SOLVER_BOND, 600, 60, 1800, value=FEE, sender=requester)
    cheap = market.job_count()
    drive([solver], lambda: solver.journal.job(cheap) is not None and solver.journal.job(cheap).state == "done")
    note = solver.journal.job(cheap).note
    assert "skipped: stuffing its 60 s commit window (5 blocks" in note and "no more than the bond 1 ETH" in note
    assert market.job(cheap).status not in (CLAIMED, COMMITTED)
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(40 * 10**9)])  # dear: 5 blocks cost over 5 ETH
    node.request("evm_mine", [])
    market.post(1, ROWS, cm.packed(job_input(21)), SOLVER_BOND, 600, 60, 1800, value=FEE, sender=requester)
    dear = market.job_count()
    drive([solver], lambda: market.job(dear).status == COMMITTED)
