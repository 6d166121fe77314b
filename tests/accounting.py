"""The job market's accounting invariant (docs/protocol.md section 10.2), checked from the
outside.

``assert_accounting(market)`` checks that the market's balance equals ``obligations()`` and
that each of the five storage totals equals a sum recomputed here, independently, from the
per-account and per-job views:

- ``total_stake``  = the sum of ``stake(a)`` over every holder,
- ``total_escrow`` = the sum of the fees of jobs that are OPEN, CLAIMED or COMMITTED,
- ``total_bonds``  = the sum of the bonds of challenges still open,
- ``total_credit`` = the sum of ``credit(a)`` over every holder,

and ``sink_pending`` closes the sum. It also checks that each holder's ``locked(a)`` is the
sum of the bonds of its CLAIMED and COMMITTED jobs (never more than its stake) and that each
job's ``open_games`` counts its open challenges.

Holders are the local test accounts and every address the market's logs name: depositors,
requesters, claiming solvers and challengers, the only accounts the market ever gives stake or
credit to. So contract accounts (the reentrant receiver) are covered too.

``assert_drained(market)`` is for after full resolution and every withdrawal: balance zero and
every total zero.

The views are read with plain ``eth_call``s and the logs with one ``eth_getLogs``, not through
ape's contract wrappers: this runs after every test of tests/test_market.py, and the wrappers
cost tens of milliseconds a call.
"""

from collections import defaultdict
from functools import lru_cache

from ape import accounts, chain
from eth_abi import decode, encode
from eth_utils import to_checksum_address

from referee.hashing import keccak256

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
    ("open_games", "uint256"),
]
CHALLENGE_FIELDS = [("job_id", "uint256"), ("challenger", "address"), ("bond", "uint256"), ("open", "bool")]

# Events naming a holder, and the topic (1-based, after the signature) that holds its address.
HOLDER_TOPICS = {
    "StakeDeposited(address,uint256,uint256)": 1,
    "JobPosted(uint256,address,uint256,uint256,bytes32,bytes32,uint256,uint256,uint256,uint256,uint256,uint256,bytes)": 2,
    "JobClaimed(uint256,address,uint256,uint256)": 2,
    "JobChallenged(uint256,uint256,address,uint256)": 3,
}
CHALLENGED = "JobChallenged(uint256,uint256,address,uint256)"


def _topic(signature: str) -> bytes:
    return keccak256(signature.encode())


def _address(word: bytes) -> str:
    return to_checksum_address(word[-20:])


class _Views:
    """The market's views through bare eth_call."""

    def __init__(self, market):
        self.address = str(market.address)
        self.web3 = chain.provider.web3

    def call(self, signature: str, args: list, types: list, out: list):
        data = keccak256(signature.encode())[:4] + encode(types, args)
        # the bare RPC request: web3's middleware stack costs ~10 ms a call, four times the node
        reply = self.web3.provider.make_request("eth_call", [{"to": self.address, "data": "0x" + data.hex()}, "latest"])
        if "error" in reply:
            raise AssertionError(f"{signature} failed: {reply['error']}")
        return decode(out, bytes.fromhex(reply["result"][2:]))

    def uint(self, name: str, *account: str) -> int:
        if account:
            return self.call(f"{name}(address)", list(account), ["address"], ["uint256"])[0]
        return self.call(f"{name}()", [], [], ["uint256"])[0]

    def job(self, job_id: int) -> dict:
        values = self.call("job(uint256)", [job_id], ["uint256"], [t for _, t in JOB_FIELDS])
        return dict(zip([n for n, _ in JOB_FIELDS], values))

    def challenge(self, game_id: int) -> dict:
        values = self.call("challenge_of(uint256)", [game_id], ["uint256"], [t for _, t in CHALLENGE_FIELDS])
        return dict(zip([n for n, _ in CHALLENGE_FIELDS], values))

    def logs(self) -> list:
        return self.web3.eth.get_logs({"address": self.address, "fromBlock": 0, "toBlock": "latest"})


@lru_cache(maxsize=1)
def _test_accounts() -> frozenset[str]:
    # Deriving the test accounts from their mnemonic takes ~0.4 s; they never change.
    return frozenset(str(a.address) for a in accounts.test_accounts)


def holders_and_games(views: _Views) -> tuple[set[str], list[int]]:
    """Every address that may hold stake or credit, and the ids of the games opened."""
    found = set(_test_accounts())
    by_topic = {_topic(sig): index for sig, index in HOLDER_TOPICS.items()}
    challenged = _topic(CHALLENGED)
    games = []
    for log in views.logs():
        topics = [bytes(t) for t in log["topics"]]
        if topics and topics[0] in by_topic:
            found.add(_address(topics[by_topic[topics[0]]]))
        if topics and topics[0] == challenged:
            games.append(int.from_bytes(topics[2], "big"))
    return found, games


def assert_accounting(market) -> int:
    """Checks the invariant; returns ``obligations()``."""
    views = _Views(market)
    holders, games = holders_and_games(views)

    stake = credit = 0
    stakes, locks = {}, {}
    for address in holders:
        stakes[address] = views.uint("stake", address)
        locks[address] = views.uint("locked", address)
        stake += stakes[address]
        credit += views.uint("credit", address)

    escrow = 0
    expected_locked: dict[str, int] = defaultdict(int)
    expected_open_games: dict[int, int] = defaultdict(int)
    jobs = {}
    for job_id in range(1, views.uint("job_count") + 1):
        job = views.job(job_id)
        jobs[job_id] = job
        if job["status"] in LIVE:
            escrow += job["fee"]
        if job["status"] in BONDED:
            expected_locked[_address(bytes.fromhex(job["solver"][2:]))] += job["solver_bond"]

    bonds = 0
    for game_id in games:
        challenge = views.challenge(game_id)
        if challenge["open"]:
            bonds += challenge["bond"]
            expected_open_games[challenge["job_id"]] += 1

    for job_id, job in jobs.items():
        assert job["open_games"] == expected_open_games[job_id], f"job {job_id}: open_games"
    assert set(expected_locked) <= holders, "a bonded solver is not among the holders"
    for address in holders:
        assert locks[address] == expected_locked[address], f"{address}: locked"
        assert locks[address] <= stakes[address], f"{address}: locked above stake"

    assert views.uint("total_stake") == stake, "total_stake"
    assert views.uint("total_escrow") == escrow, "total_escrow"
    assert views.uint("total_bonds") == bonds, "total_bonds"
    assert views.uint("total_credit") == credit, "total_credit"
    recomputed = stake + escrow + bonds + credit + views.uint("sink_pending")
    assert views.uint("obligations") == recomputed, "obligations() differs from the recomputed sum"
    assert chain.provider.get_balance(views.address) == recomputed, "balance differs from the obligations"
    return recomputed


def assert_drained(market):
    """After full resolution and every withdrawal: nothing held, nothing owed."""
    assert assert_accounting(market) == 0
    views = _Views(market)
    assert chain.provider.get_balance(views.address) == 0
    for total in ("total_stake", "total_escrow", "total_bonds", "total_credit", "sink_pending", "obligations"):
        assert views.uint(total) == 0, total
