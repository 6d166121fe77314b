"""A move's JSON-RPC cost does not grow with the chain's history (docs/agents.md, "RPC cost and
risk, bounded").

The real solver and challenger play the same game twice on anvil: once on a young chain, and
once after 2,500 empty blocks (``anvil_mine``; 10,000 in ``make test-long``, which anvil takes
minutes to mine here). Every JSON-RPC request an agent makes during a tick is counted by an
HTTP proxy in front of the node (each request of a batch counts), and the ticks that sent a
game move are compared: the same game, move by move, costs the same number of requests at
either height (give or take one), and no request reads logs over more blocks than the agent
has not yet scanned.

Measured here (a 3-op model, 3 rows; 10,000 blocks, ``REFEREE_RPC_HISTORY=10000``): 28 requests
a solver move and 29 a challenger move at both heights, in the tick that sends it, no getLogs
wider than 2 blocks (the test ran 250 s here on a loaded machine, 70-90 s at the default 2,500
blocks). The wait for the move's receipt is not counted: how often it polls depends on how fast
the node mines, and after 10,000 blocks anvil served each receipt one poll later (4 requests:
the block, the nonce, the receipt, the transaction), which had failed this test at +4 a move.
Before the cursor-driven reads (a 4-op model, 5 rows): 21 and 24 on a young chain; at 10,000
blocks each challenger move read the history in 5,000-block pages, 26 or 27 requests.

A challenger closing a job's other games (``close_others``, each tick while they stay open)
reads the job's games from the journal, as its scan recorded their ``JobChallenged`` logs:
the same requests at either height and no ``eth_getLogs`` (before, it read every
``JobChallenged`` of the job from the deployment block on each call, one request per
5,000-block page over the whole history). Measured here: 3 requests at both heights (2,500
blocks); before, 7 on a young chain and 8 after 6,000 blocks, its getLogs 5,000 blocks wide.
"""

import http.client
import http.server
import json
import os
import random
import threading
from collections import Counter

import ape
import pytest

from accounting import assert_accounting
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee import commitments as cm
from referee.agents.challenger import Challenger
from referee.agents.client import REJECTED, ChainClient
from referee.agents.deployment import deploy
from referee.agents.journal import Journal
from referee.agents.solver import Solver
from referee.trace import TraceStore

FEE = 3 * 10**16
SOLVER_BOND = 10**18
WINDOWS = (600, 600, 1800)
# empty blocks mined between the two games: 10,000 in make test-long (anvil mines them in ~2 min
# here), 2,500 in make test (beyond 2,000, the agents' log chunk)
HISTORY = int(os.environ.get("REFEREE_RPC_HISTORY", "2500"))
MOVES = {"bisect", "choose", "transition", "reveal_children", "pick", "reveal_row", "step"}


class CountingProxy:
    """An HTTP proxy in front of the test chain's RPC port that counts the JSON-RPC requests it
    passes on while ``counting`` (each request of a batch counts): per method, and the widest
    block range any ``eth_getLogs`` asked for."""

    def __init__(self, target_port: int):
        proxy = self
        self.counts: Counter = Counter()
        self.widest_logs = 0
        self.counting = False

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The body goes out in a write of its own after the headers: with Nagle's algorithm
            # on, each answer then waited ~40 ms for the client's delayed ACK (53 s of a 63 s test).
            disable_nagle_algorithm = True

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy._note(json.loads(body))
                upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=120)
                upstream.request("POST", "/", body, {"Content-Type": "application/json"})
                answer = upstream.getresponse().read()
                upstream.close()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _note(self, payload) -> None:
        if not self.counting:
            return
        for request in payload if isinstance(payload, list) else [payload]:
            self.counts[request["method"]] += 1
            if request["method"] == "eth_getLogs":
                query = request["params"][0]
                start, stop = (int(query[k], 16) for k in ("fromBlock", "toBlock"))
                self.widest_logs = max(self.widest_logs, stop - start + 1)

    def take(self) -> tuple[Counter, int]:
        counts, widest = self.counts, self.widest_logs
        self.counts, self.widest_logs = Counter(), 0
        return counts, widest

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def model():
    return to_integer_model(random_ref_model(random.Random(41), 7, [6, 5, 4]))


@pytest.fixture(scope="module")
def deployment(accounts, model):
    deployer, sink = accounts[0], accounts[9]
    d = deploy(deployer, sink=str(sink.address))
    client = ChainClient(d, deployer)
    client.registry.register(*model.registration(), sender=deployer)
    return d


def make_agent(cls, deployment, model, account, home, **options):
    journal = Journal(home / "state.sqlite")
    client = ChainClient(deployment, account, journal, patience=30)
    agent = cls(client, journal, [model], TraceStore(home / "traces"), name=cls.role, log=lambda line: None,
                device="cpu", **options)
    if cls is Solver:
        agent.ensure_stake(2 * SOLVER_BOND)  # a bond for each game: the cheat loses both
    return agent


def play_counted(agents, counter, market, job_id, max_rounds=200) -> list[tuple[str, str, int, int, Counter]]:
    """Tick the agents in turn until the job is rejected and every game is over; for each tick
    that sent one game move: (role, move, requests, widest getLogs range, requests by method)."""
    from referee.agents.drive import deadlines, warp

    moves = []
    for _ in range(max_rounds):
        sent = 0
        for agent in agents:
            counter.counting = True
            n = agent.tick()
            counter.counting = False
            counts, widest = counter.take()
            # uncounted: how often a wait for the receipt polls depends on how fast the node mines
            # (after 10,000 blocks anvil served each receipt a poll later: +4 requests a move)
            agent.await_receipts()
            sent += n
            kinds = [key.split(":")[0] for key in agent.journal.keys()[-n:]] if n else []
            if n == 1 and kinds[0] in MOVES:
                moves.append((agent.role, kinds[0], sum(counts.values()), widest, counts))
        if market.job(job_id).status == REJECTED and not any(a.journal.active_games() for a in agents):
            return moves
        if not sent and any([agent.await_traces() for agent in agents]):
            continue  # a trace computed in the background: its job acts on the next round
        if not sent:  # both wait on a window or a clock: move the time past the nearest deadline
            now = agents[0].client.now()
            warp(min([d for agent in agents for d in deadlines(agent) if d >= now], default=now) + 1)
    raise AssertionError("the game did not finish")


def counted(chain, run):
    """``run(counter)`` with every request of the test's clients going through a counting proxy."""
    counter = CountingProxy(int(chain.provider.uri.rsplit(":", 1)[1]))
    try:
        with ape.networks.parse_network_choice(counter.url):
            return run(counter)
    finally:
        counter.close()


def test_rpc_cost_move_requests_same_after_long_history_succeeds(chain, accounts, deployment, model, tmp_path):
    market = ChainClient(deployment, accounts[0]).market
    x = int8_tensor(random_input(random.Random(42), 3, 7))
    young, old = counted(chain, lambda counter: play_twice(deployment, model, accounts, counter, market, x, tmp_path))
    for role, kind, requests, widest, _ in young + old:
        print(f"rpc cost: {role} {kind}: {requests} requests, widest getLogs {widest} blocks")
    assert [(role, kind) for role, kind, *_ in young] == [(role, kind) for role, kind, *_ in old]
    assert len(young) >= 8, young  # a whole game: bisection rounds, the row descent, the step
    # the same count move by move, give or take the one request Ape's caches sometimes add (a
    # full-history scan costs one eth_getLogs per 5,000 blocks: +2 to +3 a move at 10,000); a
    # move that differs is named with the methods that differ
    differ = [(a[0], a[1], a[2], b[2], {m: b[4][m] - a[4][m] for m in a[4] | b[4] if a[4][m] != b[4][m]})
              for a, b in zip(young, old) if abs(a[2] - b[2]) > 1]
    assert not differ, differ
    assert sum(m[2] for m in old) <= sum(m[2] for m in young) + len(young) // 4, (young, old)
    assert max(m[3] for m in old) <= 10, old  # only blocks not yet scanned are read
    assert_accounting(market)


def test_rpc_cost_close_others_same_after_long_history_succeeds(chain, accounts, deployment, model, tmp_path):
    market = ChainClient(deployment, accounts[0]).market
    x = int8_tensor(random_input(random.Random(43), 3, 7))
    (young, young_widest), (old, old_widest) = counted(
        chain, lambda counter: close_others_twice(deployment, model, accounts, counter, market, x, tmp_path))
    print(f"rpc cost: close_others: {sum(young.values())} requests at the deployment's height, "
          f"{sum(old.values())} after {HISTORY:,} more blocks (getLogs {young['eth_getLogs']} and "
          f"{old['eth_getLogs']}, widest {young_widest} and {old_widest} blocks)")
    assert young == old, (young, old)
    assert old["eth_getLogs"] == 0 and old_widest == 0, old


def close_others_twice(deployment, model, accounts, counter, market, x, tmp_path):
    """A lying solver's job challenged by two accounts; the first one's agent asks to close the
    other's game on a young chain and after ``HISTORY`` empty blocks: each call's requests."""
    requester, solver_account, ours, other = accounts[1], accounts[2], accounts[3], accounts[4]
    solver = make_agent(Solver, deployment, model, solver_account, tmp_path / "solver", cheat="wrong-output")
    market.post(1, x.shape[0], cm.packed(x), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    job = market.job_count()
    for _ in range(6):  # the claim, then the wrong commit (a local chain mines at once)
        solver.tick()
        solver.await_receipts()
        solver.await_traces()
    bond = market.CHALLENGER_BOND()
    market.challenge(job, value=bond, sender=ours)
    market.challenge(job, value=bond, sender=other)
    challenger = make_agent(Challenger, deployment, model, ours, tmp_path / "challenger")
    costs = []
    for history in (0, HISTORY):
        for _ in range(history // 500):
            ape.chain.provider.web3.provider.make_request("anvil_mine", [hex(500), hex(1)])
        challenger._scan()  # the cursor catches up, as each tick's scan does
        challenger.now = challenger.client.now()
        counter.counting = True
        challenger.close_others(job)
        counter.counting = False
        costs.append(counter.take())
    assert len(challenger.journal.challenges_of(job)) == 2 and len(challenger.watched) == 1, challenger.watched
    return costs


def play_twice(deployment, model, accounts, counter, market, x, tmp_path):
    """The same game played on a young chain and after ``HISTORY`` empty blocks: each one's moves."""
    requester, solver_account, challenger_account = accounts[1], accounts[2], accounts[3]
    solver = make_agent(Solver, deployment, model, solver_account, tmp_path / "solver", cheat="wrong-output")
    challenger = make_agent(Challenger, deployment, model, challenger_account, tmp_path / "challenger")
    games = []
    for history in (0, HISTORY):
        for _ in range(history // 500):  # anvil slows down on long runs: short requests
            ape.chain.provider.web3.provider.make_request("anvil_mine", [hex(500), hex(1)])
        for agent in (solver, challenger):  # the agents' cursors catch up once, not per move
            agent.tick()
        market.post(1, x.shape[0], cm.packed(x), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
        games.append(play_counted([solver, challenger], counter, market, market.job_count()))
    return games
