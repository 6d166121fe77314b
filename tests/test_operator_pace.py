"""An operator typing the README's commands at a human pace: on a local chain that mines a block
per transaction, the gaps between blocks are the pauses between commands, not a block time.
The agents used to take them for one (15-19 s), so a 60 s commit window read as "under 5 blocks"
and every job was skipped. Now an automining chain (``anvil_getAutomine``) means: blocks of the
default 12 s, or ``--block-time``; a chain that mines on its own is still measured. The slow
check, the README recipe pasted with pauses, is in tests/test_operator_readme.py."""

from click.testing import CliRunner

from flood import FEE, ROWS, SOLVER_BOND, agent, deployment, job_input, model  # noqa: F401 (fixtures)
from referee import commitments as cm
from referee.agents.capacity import DEFAULT_BLOCK_TIME
from referee.agents.client import CLAIMED, COMMITTED
from referee.agents.solver import Solver
from referee.cli import main as referee
from rpc import Node


def _blocks_apart(node: Node, seconds: int, count: int) -> None:
    for _ in range(count):
        latest = int(node.request("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        node.request("evm_mine", [latest + seconds])


def test_automining_chain_at_human_pace_takes_the_default_block_time_succeeds(chain, accounts, deployment, agent):
    node = Node(chain.provider.uri)
    _blocks_apart(node, 19, 70)  # a block per command, 19 s apart: more than the agent samples
    solver = agent(Solver, accounts[2], "solver", block_time=None)
    assert solver.block_time == DEFAULT_BLOCK_TIME and solver.block_time_source.startswith("assumed")
    solver.ensure_stake(SOLVER_BOND)
    market = solver.client.market
    # block space priced above the bond (terms.stuffing_cost): the block time is what is tested here
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(20 * 10**9)])  # and the fee still pays the gas
    market.post(1, ROWS, cm.packed(job_input(6)), SOLVER_BOND, 60, 60, 120, value=FEE, sender=accounts[1])
    job = market.job_count()
    for _ in range(3):  # the trace is computed off the tick, then the job is claimed
        solver.tick()
        solver.await_receipts()
        solver.await_traces()
    assert market.job(job).status in (CLAIMED, COMMITTED) and market.job(job).solver == accounts[2].address  # not skipped
    given = agent(Solver, accounts[3], "given", block_time=2.0)
    assert given.block_time == 2.0 and given.block_time_source == "given"


def test_chain_mining_on_its_own_is_measured_succeeds(chain, accounts, deployment, agent):
    node = Node(chain.provider.uri)
    node.request("evm_setAutomine", [False])
    try:
        _blocks_apart(node, 3, 70)
        solver = agent(Solver, accounts[2], "solver", block_time=None)
    finally:
        node.request("evm_setAutomine", [True])
    assert solver.block_time == 3.0 and solver.block_time_source == "measured"


def test_solve_and_watch_help_say_block_time_gates_the_commit_window_succeeds():
    for command in ("solve", "watch"):
        text = " ".join(CliRunner().invoke(referee, [command, "--help"]).output.split())
        assert "--block-time" in text and "the commit window a solver accepts (at least 5 blocks)" in text, text
