"""Floods of games on the real contracts and agents, with 12-second blocks mined in lockstep.

``Lockstep`` turns anvil's automine off and plays rounds: in each round every party looks at
the chain as the last block left it and submits what it wants mined (the real agents'
``tick``, the attackers' bots), then one block is mined 12 seconds after the last. A party that
answers at once is mined in the block after the move it answers: a latency of one block, which
is what each side's chess clock is charged. Block gas is anvil's (30M); what does not fit
stays in the pool for the next block, as on a real chain. When a round sends nothing and the
pool is empty, nobody acts until a deadline passes, so the clock jumps to just past the
earliest one (``referee.agents.drive.deadlines``), as in the other agent tests.

``Attacker`` is the flooding side: from its own account it opens games (or plays those it
has) and answers every move of every game in the next block, from a lying trace, except the
moves it refuses (``never``: a Sybil never plays ``step``), and calls ``timeout`` the first
block it may. ``moves_latency`` reads every game's events back and measures, for one side,
the blocks between each of its moves and the move (or the opening) it answered.
"""

import random
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

from game_bots import STATS
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee.agents.client import ChainClient, TxReverted
from referee.agents.deployment import DEFAULT_PARAMS, deploy
from referee.bonds import bonus
from referee.agents.drive import deadlines
from referee.agents.journal import Journal
from referee.agents.player import next_move
from referee import cheats
from referee import commitments as cm
from referee.executor import run_model
from referee.trace import Trace, TraceStore
from rpc import Node

BLOCK_TIME = 12
ROWS = 8
FEE = 3 * 10**16
SOLVER_BOND = 10**18
WINDOWS = (600, 600, 1800)
BOND = DEFAULT_PARAMS["challenger_bond"]
SOLVER_EVENTS = ("Bisected", "Transitioned", "ChildrenRevealed", "RowRevealed")
CHALLENGER_EVENTS = ("Chosen", "ChildPicked", "Stepped")


@dataclass
class Blocks:
    """What the mined blocks held: gas used per block with any transaction."""

    gas: list = field(default_factory=list)
    limit: int = 0

    def line(self) -> str:
        busy = [g for g in self.gas if g]
        mean = sum(busy) // len(busy) if busy else 0
        return f"gas per block max {max(busy, default=0):,}, mean {mean:,} of {self.limit:,}"


class Lockstep:
    """Anvil without automine; ``run`` plays rounds of (every party acts, one block is mined)."""

    def __init__(self, uri: str, block_time: int = BLOCK_TIME):
        self.node, self.block_time = Node(uri), block_time
        self.blocks = Blocks()

    def __enter__(self):
        self.node.request("evm_setAutomine", [False])
        return self

    def __exit__(self, *exc):
        self.node.request("evm_setAutomine", [True])
        self.node.request("evm_mine", [])  # whatever is left in the pool

    def mine(self, timestamp: int | None = None) -> None:
        latest = self.node.request("eth_getBlockByNumber", ["latest", False])
        self.node.request("evm_mine", [timestamp or int(latest["timestamp"], 16) + self.block_time])
        block = self.node.request("eth_getBlockByNumber", ["latest", False])
        self.blocks.gas.append(int(block["gasUsed"], 16))
        self.blocks.limit = int(block["gasLimit"], 16)

    def pool_size(self) -> int:
        status = self.node.request("txpool_status", [])
        return int(status["pending"], 16) + int(status["queued"], 16)

    def run(self, parties: list, agents: list, done, max_rounds: int = 3000) -> int:
        """Rounds until ``done()``; ``parties`` have ``tick() -> sent``, ``agents`` give deadlines."""
        for rounds in range(1, max_rounds + 1):
            sent = sum(party.tick() for party in parties)
            if done():
                return rounds
            if sent or self.pool_size() or any(agent.client.in_flight() for agent in agents):
                self.mine()  # an agent's transaction the node dropped is noticed over the blocks that follow
                continue
            if any([getattr(party, "await_traces", lambda: False)() for party in parties]):
                continue  # a trace computed in the background: its job acts before time moves on
            now = int(self.node.request("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
            ahead = [d for agent in agents for d in deadlines(agent) if d >= now]
            for party in parties:
                ahead += [d for d in getattr(party, "deadlines", lambda: [])() if d >= now]
            self.mine(min(ahead) + 1 if ahead else None)
        raise AssertionError(f"not done within {max_rounds} rounds")


class Attacker:
    """A flooding party: opens ``games`` challenges on ``job_id`` (0: none, it plays as the solver
    of its own jobs' games instead) and answers every move at once from ``trace_of(job_id)``."""

    def __init__(self, client: ChainClient, model, trace_of, as_solver: bool, never: tuple = ()):
        self.client, self.model, self.trace_of = client, model, trace_of
        self.as_solver, self.never = as_solver, set(never)
        self.to_open: list[int] = []  # job ids to challenge, one game each entry
        self.games: dict[int, int] = {}  # game id -> job id

    def challenge(self, job_id: int, count: int) -> None:
        self.to_open += [job_id] * count

    def follow(self, game_id: int, job_id: int) -> None:
        self.games[game_id] = job_id

    def _submit(self, key: str, contract, method: str, *args, value: int = 0) -> int:
        try:
            tx = self.client.prepare(key, contract, method, *args, value=value)
        except TxReverted:
            return 0
        if tx is None:
            return 0
        self.client.submit(tx)
        return 1

    def tick(self) -> int:
        client, sent = self.client, 0
        client.poll()  # mined transactions leave the in-flight set
        head = client.head()
        for log in client.logs(client.market, "JobChallenged", client.deployment.block, head,
                               challenger=client.address):
            self.games.setdefault(log.game_id, log.job_id)
        while self.to_open:
            job_id = self.to_open.pop()
            sent += self._submit(f"challenge:{job_id}:{len(self.to_open)}", client.market, "challenge", job_id,
                                 value=client.challenger_bond)
        now = client.now()
        for game_id, job_id in sorted(self.games.items()):
            move = next_move(client, game_id, self.as_solver, self.model, self.trace_of(job_id),
                             g=client.game_record(game_id), now=now)
            if move is not None and move.method not in self.never:
                sent += self._submit(move.key, client.game, move.method, *move.args)
        return sent

    def deadlines(self) -> list[int]:
        client = self.client
        return [client.read(client.game.deadline, g) for g in self.games if client.read(client.game.result, g) == 0]


def withdrawn(market, account, start: int, stop: int) -> int:
    """Wei ``account`` withdrew from ``market`` in blocks ``start..stop``."""
    return sum(log.amount for log in market.CreditWithdrawn.range(start, stop + 1,
                                                                  search_topics={"account": str(account.address)}))


def owed_to_winner(market, account, games: list[int], winners: int, start: int, stop: int,
                   solver_bond: int = SOLVER_BOND) -> int:
    """What a challenger that won ``games`` (each of a job with ``winners`` winning games) is owed:
    per game its bond, its metered gas (``refund_of``) and the bonus, and the settle gas refunded,
    in blocks ``start..stop``, for the games it settled itself (``SettleGasRefunded``)."""
    params = DEFAULT_PARAMS
    per_game = BOND + bonus(solver_bond, params["reward_share_bps"], params["dilution_fee_bps"], winners)
    settles = sum(log.refund for log in market.SettleGasRefunded.range(
        start, stop + 1, search_topics={"challenger": str(account.address)}))
    return sum(per_game + market.refund_of(g) for g in games) + settles


def judge(name: str, count_name: str, count: int, agent, game, games: list[int], start: int, stop: int,
          blocks: Blocks) -> str:
    """Asserts that ``agent`` (the honest side) won all ``count`` of ``games`` and that each of its
    moves waited at most ``ceil(count / moves_per_block)`` blocks (one while half a block's gas
    holds a move of every game); records and returns the suite's ``flood`` line."""
    won = sum(game.result(g) == (1 if agent.is_solver else 2) for g in games)
    latencies = move_latencies(game, games, start, stop, solver_side=agent.is_solver)
    line = (f"flood ({name}): {count_name}={count}, won {won}/{len(games)}, worst move latency {max(latencies)} "
            f"block(s) over {len(latencies)} moves, {blocks.line()}")
    STATS.figures.append(line)
    assert len(games) == count and won == count, line
    per_block = agent.capacity(agent.models[1], ROWS).moves_per_block
    assert max(latencies) <= -(-count // per_block), (per_block, latencies)
    return line


def move_latencies(game, game_ids: list[int], start: int, stop: int, solver_side: bool) -> list[int]:
    """Blocks between each of one side's moves and the previous event of its game."""
    events = defaultdict(list)  # game id -> [(block, log index, is ours)]
    mine = SOLVER_EVENTS if solver_side else CHALLENGER_EVENTS
    theirs = CHALLENGER_EVENTS if solver_side else SOLVER_EVENTS
    wanted = set(game_ids)
    for name in ("GameOpened",) + mine + theirs:
        for log in getattr(game, name).range(start, stop + 1):
            if log.game_id in wanted:
                events[log.game_id].append((log.block_number, log.log_index, name in mine))
    latencies = []
    for history in events.values():
        history.sort()
        latencies += [b[0] - a[0] for a, b in zip(history, history[1:]) if b[2]]
    return latencies



# ---------------------------------------------------------------------------
# Fixtures of the agents-at-scale tests (floods, copycats, job terms)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    # 5 ops (2 bisection rounds at arity 4), 8 rows (3 levels of row descent)
    return to_integer_model(random_ref_model(random.Random(7), 7, [6, 5, 8, 4, 6]))


@pytest.fixture
def deployment(accounts, model):
    d = deploy(accounts[0], sink=str(accounts[9].address))  # the default parameters
    ChainClient(d, accounts[0]).registry.register(*model.registration(), sender=accounts[0])
    return d


@pytest.fixture
def agent(deployment, model, tmp_path):
    """``agent(cls, account, name, **options)``: a real agent at 12-second blocks."""
    def make(cls, account, name, **options):
        journal = Journal(tmp_path / name / "state.sqlite")
        client = ChainClient(deployment, account, journal, patience=30)
        options.setdefault("block_time", 12)
        return cls(client, journal, [model], TraceStore(tmp_path / name / "traces"), name=name, device="cpu",
                   log=lambda line: None, **options)
    return make


def job_input(seed: int):
    return int8_tensor(random_input(random.Random(seed), ROWS, 7))


def sybil_scene(solver, model, deployment, requester, attacker_account, tmp_path, windows=WINDOWS):
    """The set-up of a flood of games on an honest solver: ``solver`` staked, a job of
    ``requester``'s posted for it, and a Sybil ``Attacker`` on ``attacker_account`` that will
    challenge it from a lying trace and never play ``step``. Returns (job id, attacker)."""
    solver.ensure_stake(SOLVER_BOND)
    market = solver.client.market
    x = job_input(1)
    market.post(1, ROWS, cm.packed(x), SOLVER_BOND, *windows, value=FEE, sender=requester)
    lie = cheats.apply("wrong-output", Trace(model.root, run_model(model, x, "cpu")), model)
    attacker = Attacker(ChainClient(deployment, attacker_account, Journal(tmp_path / "attacker.sqlite")), model,
                        lambda job_id: lie, as_solver=False, never=("step",))
    return market.job_count(), attacker
