"""The job market's accounting invariant (docs/protocol.md section 10.2), checked from the
outside.

``assert_accounting(market)`` checks that the market's balance equals ``obligations()`` and
that each of the five storage totals equals a sum recomputed here, independently, from the
per-account and per-job views:

- ``total_stake``  = the sum of ``stake(a)`` over every holder,
- ``total_escrow`` = the sum of the fees of jobs that are OPEN, CLAIMED or COMMITTED, and of
  the slashed bonds REJECTED jobs still hold (for their winners' refunds and bonus),
- ``total_bonds``  = the sum of the bonds of challenges still open,
- ``total_credit`` = the sum of ``credit(a)`` over every holder,

and ``sink_pending`` closes the sum. It also checks that each holder's ``locked(a)`` is the
sum of the bonds of its CLAIMED and COMMITTED jobs (never more than its stake) and that each
job's ``open_games`` counts its open challenges, that a slashed bond is held only while a rejected
job has open games, and that exactly the rejected jobs have winners.

Holders are the local test accounts and every address the market's logs name: depositors,
requesters, claiming solvers and challengers, the only accounts the market ever gives stake or
credit to. So contract accounts (the reentrant receiver) are covered too.

``assert_drained(market)`` is for after full resolution and every withdrawal: balance zero and
every total zero.

The views and logs are read in two batched JSON-RPC round trips (tests/rpc.py), not through
ape's contract wrappers: this runs after every test of tests/market/ and after every
transaction of the randomized games, and the wrappers cost tens of milliseconds a call.
"""

from collections import defaultdict
from contextlib import contextmanager
from functools import lru_cache

from ape import accounts, chain
from eth_abi import decode, encode
from eth_utils import to_checksum_address

from referee.hashing import keccak256
from rpc import Node

OPEN, CLAIMED, COMMITTED, FINALIZED, REJECTED, CANCELLED = 1, 2, 3, 4, 5, 6
LIVE = (OPEN, CLAIMED, COMMITTED)  # statuses whose fee is still escrowed
BONDED = (CLAIMED, COMMITTED)  # statuses whose solver bond is still locked

# JobMarket's Job struct, in order (contracts/JobMarket.vy).
JOB_FIELDS = [
    ("requester", "address"), ("model_id", "uint256"), ("rows", "uint256"), ("input_root", "bytes32"),
    ("s_0", "bytes32"), ("fee", "uint256"), ("solver_bond", "uint256"), ("claim_window", "uint256"),
    ("commit_window", "uint256"), ("challenge_window", "uint256"), ("status", "uint256"),
    ("claim_deadline", "uint256"), ("solver", "address"), ("commit_deadline", "uint256"),
    ("trace_root", "bytes32"), ("output_root", "bytes32"), ("challenge_deadline", "uint256"),
    ("open_games", "uint256"), ("best_game", "uint256"), ("winners", "uint256"), ("held", "uint256"),
    ("n_tokens", "uint256"),
]
CHALLENGE_FIELDS = [("job_id", "uint256"), ("challenger", "address"), ("bond", "uint256"), ("open", "bool"),
                    ("gas", "uint256")]

# Events naming a holder, and the topic (1-based, after the signature) that holds its address.
HOLDER_TOPICS = {
    "StakeDeposited(address,uint256,uint256)": 1,
    "JobPosted(uint256,address,uint256,uint256,bytes32,bytes32,uint256,uint256,uint256,uint256,uint256,uint256,bytes,"
    "uint256)": 2,
    "JobClaimed(uint256,address,uint256,uint256)": 2,
    "JobChallenged(uint256,uint256,address,uint256)": 3,
}
CHALLENGED = "JobChallenged(uint256,uint256,address,uint256)"


def _topic(signature: str) -> bytes:
    return keccak256(signature.encode())


def _address(word: bytes) -> str:
    return to_checksum_address(word[-20:])


def _call(address: str, signature: str, types: list, args: list) -> tuple[str, list]:
    data = keccak256(signature.encode())[:4] + encode(types, args)
    return ("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"])


class _Views:
    """The market's views, read in two batched round trips of bare eth_calls (rpc.Node)."""

    def __init__(self, market, node: Node | None = None):
        self.address = str(getattr(market, "address", market))
        self.node = node or _default_node(chain.provider.uri)
        self.pending = []  # (request, output types, key)
        self.values = {}

    def queue(self, key, signature: str, args: list = (), types: list = (), fields: list | None = None):
        """One view call; a struct's ``fields`` (name, type) make its value a dict."""
        self.pending.append((_call(self.address, signature, list(types), list(args)), fields, key))

    def fetch(self, extra: list = ()) -> list:
        """Runs the queued calls (their values land in ``self.values``) and ``extra`` raw requests."""
        replies = self.node.batch([request for request, _, _ in self.pending] + list(extra))
        for (request, fields, key), reply in zip(self.pending, replies):
            if isinstance(reply, dict) and "error" in reply:
                raise AssertionError(f"{key} failed: {reply['error']}")
            raw = bytes.fromhex(reply[2:])
            if fields:
                struct = "(" + ",".join(t for _, t in fields) + ")"
                self.values[key] = dict(zip([n for n, _ in fields], decode([struct], raw)[0]))
            else:
                self.values[key] = decode(["uint256"], raw)[0]
        self.pending = []
        return replies[len(replies) - len(extra):] if extra else []


@lru_cache(maxsize=4)
def _default_node(uri: str) -> Node:
    return Node(uri)


TOTALS = ("total_stake", "total_escrow", "total_bonds", "total_credit", "sink_pending", "obligations")


@lru_cache(maxsize=1)
def _test_accounts() -> frozenset[str]:
    # Deriving the test accounts from their mnemonic takes ~0.4 s; they never change.
    return frozenset(str(a.address) for a in accounts.test_accounts)


def holders_and_games(logs: list) -> tuple[set[str], list[int]]:
    """Every address that may hold stake or credit, and the ids of the games opened."""
    found = set(_test_accounts())
    by_topic = {_topic(sig): index for sig, index in HOLDER_TOPICS.items()}
    challenged = _topic(CHALLENGED)
    games = []
    for log in logs:
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        if topics and topics[0] in by_topic:
            found.add(_address(topics[by_topic[topics[0]]]))
        if topics and topics[0] == challenged:
            games.append(int.from_bytes(topics[2], "big"))
    return found, games


# Invariant checks executed in this test session (printed by tests/conftest.py).
CHECKS = {"accounting": 0}


def assert_accounting(market, node: Node | None = None) -> int:
    """Checks the invariant; returns ``obligations()``."""
    CHECKS["accounting"] += 1
    views = _Views(market, node)
    views.queue("job_count", "job_count()")
    for total in TOTALS:
        views.queue(total, f"{total}()")
    logs, balance = views.fetch([
        ("eth_getLogs", [{"address": views.address, "fromBlock": "0x0", "toBlock": "latest"}]),
        ("eth_getBalance", [views.address, "latest"])])
    holders, games = holders_and_games(logs)
    totals = {total: views.values[total] for total in TOTALS}
    for address in holders:
        for view in ("stake", "locked", "credit"):
            views.queue((view, address), f"{view}(address)", [address], ["address"])
    for job_id in range(1, views.values["job_count"] + 1):
        views.queue(("job", job_id), "job(uint256)", [job_id], ["uint256"], JOB_FIELDS)
    for game_id in games:
        views.queue(("challenge", game_id), "challenge_of(uint256)", [game_id], ["uint256"], CHALLENGE_FIELDS)
    views.fetch()
    value = views.values
    stakes = {a: value[("stake", a)] for a in holders}
    locks = {a: value[("locked", a)] for a in holders}
    credit = sum(value[("credit", a)] for a in holders)
    stake = sum(stakes.values())

    escrow = 0
    expected_locked: dict[str, int] = defaultdict(int)
    expected_open_games: dict[int, int] = defaultdict(int)
    jobs = {}
    for job_id in range(1, value["job_count"] + 1):
        job = value[("job", job_id)]
        jobs[job_id] = job
        if job["status"] in LIVE:
            escrow += job["fee"]
        elif job["status"] == REJECTED:
            escrow += job["held"]  # the slashed bond, held for refunds and the bonus until the last game closes
        if job["status"] in BONDED:
            expected_locked[to_checksum_address(job["solver"])] += job["solver_bond"]

    bonds = 0
    for game_id in games:
        challenge = value[("challenge", game_id)]
        if challenge["open"]:
            bonds += challenge["bond"]
            expected_open_games[challenge["job_id"]] += 1

    for job_id, job in jobs.items():
        assert job["open_games"] == expected_open_games[job_id], f"job {job_id}: open_games"
        # the held slashed bond is released when the job's last game closes: none is left without a game
        assert job["held"] == 0 or (job["status"] == REJECTED and job["open_games"] > 0), f"job {job_id}: held"
        # a rejected job was won at least once; no other job has winners
        assert (job["winners"] >= 1) == (job["status"] == REJECTED), f"job {job_id}: winners"
    assert set(expected_locked) <= holders, "a bonded solver is not among the holders"
    for address in holders:
        assert locks[address] == expected_locked[address], f"{address}: locked"
        assert locks[address] <= stakes[address], f"{address}: locked above stake"

    assert totals["total_stake"] == stake, "total_stake"
    assert totals["total_escrow"] == escrow, "total_escrow"
    assert totals["total_bonds"] == bonds, "total_bonds"
    assert totals["total_credit"] == credit, "total_credit"
    recomputed = stake + escrow + bonds + credit + totals["sink_pending"]
    assert totals["obligations"] == recomputed, "obligations() differs from the recomputed sum"
    assert int(balance, 16) == recomputed, "balance differs from the obligations"
    return recomputed


def assert_drained(market, node: Node | None = None):
    """After full resolution and every withdrawal: nothing held, nothing owed."""
    assert assert_accounting(market, node) == 0
    views = _Views(market, node)
    for total in TOTALS:
        views.queue(total, f"{total}()")
    [balance] = views.fetch([("eth_getBalance", [views.address, "latest"])])
    assert int(balance, 16) == 0
    for total in TOTALS:
        assert views.values[total] == 0, total


@contextmanager
def after_every_transaction(*markets):
    """Checks the invariant of each of ``markets`` after every transaction ape sends meanwhile
    (a lifecycle test's every step, not only its end). A reverted transaction raises before the
    check: it changed nothing."""
    provider_class = type(chain.provider)  # ape-foundry's class holds its own send_transaction
    send = provider_class.send_transaction

    def checked(provider, txn):
        receipt = send(provider, txn)
        for market in markets:
            assert_accounting(market)
        return receipt

    provider_class.send_transaction = checked
    try:
        yield
    finally:
        provider_class.send_transaction = send
