"""A thin typed layer over the deployed contracts, through Ape, for the agents and scripts.

Reads are retried with exponential backoff while the RPC endpoint is unreachable (a node
restarting, a dropped connection) and give up with ``ChainUnavailable`` after ``patience``
seconds. Writes are journaled under a key naming what they do before they are signed; a key
still in flight after a crash or a dropped connection is waited for (the account nonce tells
whether it reached the chain), never sent twice. A transaction the node's estimate says would
revert raises ``TxReverted`` with the contract's reason and is not sent.

Two ways to write: ``send`` waits for the receipt (scripts, set-up); ``prepare`` + ``submit``
hand a signed transaction to the node and return at once, with consecutive nonces, so an agent
playing many games sends every move of a block together and no game's move waits on another
game's receipt (docs/agents.md, "Many games at once"). ``prepare_batch`` puts the moves of many
games in one ``DisputeGame.multicall`` transaction (one estimate for the batch, one journal
commit for its keys); a sub-call that fails on chain is skipped there, and its key is forgotten
when the receipt comes, to be decided again. ``poll`` collects the receipts of what was
submitted.
"""

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_abi import decode
from eth_utils import keccak

from ..errors import RefereeError
from .deployment import Deployment, contracts_project
from .views import Views
from .journal import Journal

# JobMarket job status and DisputeGame result codes (protocol section 10.8).
OPEN, CLAIMED, COMMITTED, FINALIZED, REJECTED, CANCELLED = range(1, 7)
JOB_STATUS = {OPEN: "open", CLAIMED: "claimed", COMMITTED: "committed", FINALIZED: "finalized",
              REJECTED: "rejected", CANCELLED: "cancelled"}
IN_PLAY, SOLVER_WON, CHALLENGER_WON, CLOSED = range(4)

# DisputeGame's log of a skipped sub-call of a multicall: (caller) indexed; index, reason
CALL_SKIPPED_TOPIC = keccak(text="CallSkipped(address,uint256,bytes)")

_TRANSIENT_WORDS = ("connection refused", "connection reset", "connection aborted", "max retries exceeded",
                    "remote end closed", "timed out", "not connected", "broken pipe", "bad gateway",
                    "could not discover provider")


def open_window(job) -> tuple[str, int] | None:
    """The window a job is in and its last second: claim, commit or challenge (None after)."""
    return {OPEN: ("claim", job.claim_deadline), CLAIMED: ("commit", job.commit_deadline),
            COMMITTED: ("challenge", job.challenge_deadline)}.get(job.status)


class ChainUnavailable(RefereeError):
    """The RPC endpoint stayed unreachable for longer than the client's patience."""


class TxReverted(RefereeError):
    """A transaction was rejected by a contract; ``reason`` is the contract's revert string."""

    def __init__(self, method: str, reason: str):
        super().__init__(f"{method} reverted: {reason}")
        self.method = method
        self.reason = reason


@dataclass
class Prepared:
    """A transaction estimated and ready to submit: ``gas_limit`` is what it may take of a block;
    ``keys``: the actions it carries (a multicall's moves, in order; ``key`` is the first)."""

    key: str
    to: str
    method: str
    data: bytes
    value: int
    gas_limit: int
    keys: tuple[str, ...] = ()

    def __post_init__(self):
        self.keys = tuple(self.keys) or (self.key,)


@dataclass
class Submitted:
    """A transaction handed to the node, not yet seen mined."""

    key: str
    method: str
    nonce: int
    tx_hash: str
    block: int  # the head when it was submitted
    keys: tuple[str, ...] = ()

    def __post_init__(self):
        self.keys = tuple(self.keys) or (self.key,)


@dataclass
class Mined:
    """A submitted transaction's receipt: ``ok`` is False when it reverted on chain;
    ``skipped``: the keys of a multicall's sub-calls that failed, with their reasons (forgotten
    in the journal, to be decided again)."""

    key: str
    method: str
    ok: bool
    gas_used: int
    block: int
    logs: list
    keys: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.keys = tuple(self.keys) or (self.key,)

    @property
    def landed(self) -> tuple[str, ...]:
        """The keys whose calls took effect."""
        return tuple(k for k in self.keys if k not in self.skipped) if self.ok else ()


def skipped_calls(receipt, game_address: str) -> dict[int, str]:
    """Index -> revert reason of each sub-call that a multicall's receipt reports skipped."""
    out = {}
    for log in receipt["logs"]:
        topics = log["topics"]
        if not topics or bytes(topics[0]) != CALL_SKIPPED_TOPIC or str(log["address"]).lower() != game_address.lower():
            continue
        index, data = decode(["uint256", "bytes"], bytes(log["data"]))
        out[index] = decode(["string"], data[4:])[0] if data[:4] == bytes.fromhex("08c379a0") else "reverted"
    return out


def _revert_reason(exc) -> str:
    """The contract's reason from a node's "execution reverted: ..." error."""
    message = str(exc.args[0] if exc.args else exc)
    return message.split("execution reverted: ", 1)[-1] if "execution reverted" in message else message


def is_transient(exc: BaseException) -> bool:
    """True for a failure of the connection to the node, not of the request itself."""
    import requests

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ConnectionError, TimeoutError, http.client.HTTPException,
                            requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
        if type(exc).__name__ == "ProviderNotConnectedError":
            return True
        if any(word in str(exc).lower() for word in _TRANSIENT_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class ChainClient:
    """The registry, market and game of one deployment, as seen and moved by ``account``."""

    def __init__(self, deployment: Deployment, account, journal: Journal | None = None,
                 patience: float = 120.0, log: Callable[[str], None] = lambda line: None):
        import ape

        self._ape = ape
        self.deployment = deployment
        self.account = account  # None: read only
        self.address = str(account.address) if account is not None else ""
        self.journal = journal
        self.patience = patience
        self.log = log
        chain_id = self.read(lambda: ape.chain.provider.chain_id)
        if chain_id != deployment.chain_id:
            raise RefereeError(f"connected to chain {chain_id}, but the deployment is on chain {deployment.chain_id}")
        project = contracts_project()
        self.registry = self.read(project.ModelRegistry.at, deployment.registry)
        self.game = self.read(project.DisputeGame.at, deployment.game)
        self.market = self.read(project.JobMarket.at, deployment.market)
        web3 = ape.chain.provider.web3
        self.market_views, self.game_views = Views(web3, self.market), Views(web3, self.game)
        self.arity = self.read(self.game.ARITY)
        self.clock = self.read(self.game.CLOCK)
        self.challenger_bond = self.read(self.market.CHALLENGER_BOND)
        # a multicall's bounds: sub-calls per batch, and the longest one (longer go alone)
        self.max_calls, self.max_call_bytes = self.read(self.game.MAX_CALLS), self.read(self.game.MAX_CALL_BYTES)
        self._submitted: dict[str, Submitted] = {}
        self._next_nonce = 0  # the lowest nonce not yet used by a submission of this process
        self._fee_block, self._fee = -1, (0, 0)

    # -- reads ---------------------------------------------------------------------------

    def read(self, fn: Callable, *args):
        """``fn(*args)``, retried with backoff while the node cannot be reached."""
        delay, waited = 0.25, 0.0
        while True:
            try:
                return fn(*args)
            except Exception as exc:  # classified below: only connection failures are retried
                if not is_transient(exc):
                    raise
                if waited >= self.patience:
                    raise ChainUnavailable(f"the node has been unreachable for {waited:.0f} s: {exc}") from None
                self.log(f"node unreachable ({type(exc).__name__}); retrying in {delay:.2f} s")
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 8.0)

    def head(self) -> int:
        return self.read(lambda: self._ape.chain.blocks.head.number)

    def now(self) -> int:
        """The latest block's timestamp: what the contracts compare deadlines against."""
        return self.read(lambda: self._ape.chain.blocks.head.timestamp)

    def block_hash(self, number: int) -> str:
        return "0x" + bytes(self.read(lambda: self._ape.chain.blocks[number].hash)).hex()

    def block_timestamp(self, number: int) -> int:
        return self.read(lambda: self._ape.chain.blocks[number].timestamp)

    def recent_timestamps(self, count: int) -> list[int]:
        """The timestamps of the last ``count + 1`` blocks (fewer on a young chain), oldest first."""
        web3 = self._ape.chain.provider.web3
        head = self.head()
        return [self.read(lambda n=n: web3.eth.get_block(n)["timestamp"]) for n in range(max(0, head - count), head + 1)]

    def job(self, job_id: int):
        return self.read(self.market.job, job_id)

    # the agents' reads of every block (views.py: a bare eth_call each, not Ape's wrappers)

    def job_record(self, job_id: int):
        return self.read(self.market_views, "job", job_id)

    def game_record(self, game_id: int):
        return self.read(self.game_views, "games", game_id)

    def game_records(self, game_ids: list[int]) -> dict:
        """Game id -> record, for many games in one batch request (one round trip)."""
        return dict(zip(game_ids, self.read(self.game_views.many, "games", [(g,) for g in game_ids])))

    def job_records(self, job_ids: list[int]) -> dict:
        return dict(zip(job_ids, self.read(self.market_views.many, "job", [(j,) for j in job_ids])))

    def challenge_record(self, game_id: int):
        return self.read(self.market_views, "challenge_of", game_id)

    def posted_input(self, job_id: int) -> bytes:
        """The packed input of job ``job_id``, from its ``JobPosted`` log."""
        posted = self.logs(self.market, "JobPosted", self.deployment.block, self.head(), job_id=job_id)
        if not posted:
            raise RefereeError(f"job {job_id} does not exist on this chain")
        return bytes(posted[0].input)

    def logs(self, contract, event: str, start: int, stop: int, **topics) -> list:
        """Logs of ``event`` in blocks ``start..stop`` (inclusive), filtered by indexed fields."""
        if stop < start:
            return []
        return self.read(lambda: list(getattr(contract, event).range(start, stop + 1, search_topics=topics or None)))

    def last_log(self, contract, event: str, **topics):
        found = self.logs(contract, event, self.deployment.block, self.head(), **topics)
        return found[-1] if found else None

    def credit(self) -> int:
        return self.read(self.market.credit, self.address)

    def free_stake(self) -> int:
        return self.read(self.market.stake, self.address) - self.read(self.market.locked, self.address)

    def gas_price(self) -> int:
        return int(self.read(lambda: self._ape.chain.provider.web3.eth.gas_price))

    def block_gas_limit(self) -> int:
        return int(self.read(lambda: self._ape.chain.provider.web3.eth.get_block("latest")["gasLimit"]))

    def _nonce(self, block: str) -> int:
        return self.read(lambda: self._ape.chain.provider.web3.eth.get_transaction_count(self.address, block))

    # -- writes --------------------------------------------------------------------------

    def _already_sent(self, key: str) -> bool:
        """Whether ``key`` went out before: mined, reverted, or still in flight (never resent)."""
        if key in self._submitted:
            return True
        row = self.journal.tx(key) if self.journal is not None else None
        if row is None:
            return False
        if row.status != "sent":
            return True  # mined or reverted before: never again
        if row.tx_hash:  # a pipelined one: its hash says where it is
            return self._resolve_by_hash(row)
        if self._nonce("pending") > row.nonce:  # it reached the node: the chain will show it
            if self._nonce("latest") > row.nonce:
                self.journal.tx_done(key, "mined")
            return True
        self.journal.forget_tx(key)  # it never reached the node: send it now
        return False

    def prepare(self, key: str, contract, method: str, *args, value: int = 0) -> Prepared | None:
        """Estimate ``contract.method(*args)`` for ``key``; None when ``key`` went out before.
        Raises ``TxReverted`` when the node's estimate says it would revert (nothing is sent or
        journaled, so a later call may try again).

        The call is encoded once and estimated over bare JSON-RPC: an agent prepares every move
        of every game each block, and Ape's transaction objects cost tens of milliseconds each."""
        from web3.exceptions import ContractLogicError

        if self._already_sent(key):
            return None
        data = bytes(getattr(contract, method).encode_input(*args))
        to = str(contract.address)
        call = {"from": self.address, "to": to, "data": "0x" + data.hex(), "value": value}
        try:
            gas = self.read(lambda: self._ape.chain.provider.web3.eth.estimate_gas(call))
        except ContractLogicError as exc:
            raise TxReverted(method, _revert_reason(exc)) from None
        # our own margin over the node's estimate: not the network's default (a block's worth
        # on local chains), and never short when the state moves a little before mining
        return Prepared(key, to, method, data, value, gas * 6 // 5 + 20_000)

    @staticmethod
    def encode(contract, method: str, *args) -> bytes:
        """The calldata of ``contract.method(*args)``."""
        return bytes(getattr(contract, method).encode_input(*args))

    def prepare_batch(self, calls: list[tuple[str, bytes]]) -> Prepared | None:
        """One ``DisputeGame.multicall`` of ``calls`` ((key, calldata of a game function), in
        order), estimated once for the whole batch; keys that went out before are left out
        (None when none is left). At most ``max_calls`` calls of at most ``max_call_bytes``
        each: a longer batch is the caller's mistake and raises ``RefereeError``."""
        from web3.exceptions import ContractLogicError

        if len(calls) > self.max_calls:
            raise RefereeError(f"a multicall carries at most {self.max_calls} calls, not {len(calls)}")
        for key, data in calls:
            if len(data) > self.max_call_bytes:
                raise RefereeError(f"{key}: {len(data):,} bytes of calldata, over the {self.max_call_bytes:,} "
                                   "a multicall's sub-call may carry: send it alone")
        calls = [(key, data) for key, data in calls if not self._already_sent(key)]
        if not calls:
            return None
        data = self.encode(self.game, "multicall", [d for _, d in calls])
        to = str(self.game.address)
        call = {"from": self.address, "to": to, "data": "0x" + data.hex()}
        try:
            gas = self.read(lambda: self._ape.chain.provider.web3.eth.estimate_gas(call))
        except ContractLogicError as exc:
            raise TxReverted("multicall", _revert_reason(exc)) from None
        return Prepared(calls[0][0], to, "multicall", data, 0, gas * 6 // 5 + 20_000,
                        keys=tuple(key for key, _ in calls))

    def _fees(self) -> tuple[int, int]:
        """(max fee, priority fee) per gas for this block: twice the base fee plus the tip."""
        web3 = self._ape.chain.provider.web3
        block = self.read(lambda: web3.eth.get_block("latest"))
        if self._fee_block != block["number"]:
            tip = self.read(lambda: web3.eth.max_priority_fee)
            self._fee_block, self._fee = block["number"], (2 * block.get("baseFeePerGas", 0) + tip, tip)
        return self._fee

    def submit(self, tx: Prepared) -> Submitted:
        """Sign and hand ``tx`` to the node without waiting for it to be mined."""
        provider = self._ape.chain.provider
        nonce = max(self._nonce("pending"), self._next_nonce)
        max_fee, tip = self._fees()
        unsigned = provider.network.ecosystem.create_transaction(
            chain_id=self.deployment.chain_id, receiver=tx.to, sender=self.address, data=tx.data, value=tx.value,
            nonce=nonce, gas_limit=tx.gas_limit, max_fee=max_fee, max_priority_fee=tip, type=2)
        raw = self.account.sign_transaction(unsigned).serialize_transaction()
        tx_hash = "0x" + keccak(raw).hex()
        if self.journal is not None:  # before it leaves: a restart finds it by its hash
            self.journal.txs_sent(tx.keys, nonce, tx_hash)
        try:
            self.read(lambda: provider.web3.eth.send_raw_transaction(raw))
        except Exception:
            # Refused, or lost on the way: whether the node has it decides. One it lacks is
            # forgotten, to be decided and sent again; one it has is in flight. (If the node
            # cannot even be asked, the journaled hash settles it on a later pass.)
            if not self._node_has(tx_hash):
                if self.journal is not None:
                    with self.journal.batch():
                        for key in tx.keys:
                            self.journal.forget_tx(key)
                raise
        self._next_nonce = nonce + 1
        submitted = Submitted(tx.key, tx.method, nonce, tx_hash, self._fee_block, keys=tx.keys)
        self._submitted[tx.key] = submitted
        return submitted

    def _resolve_by_hash(self, row) -> bool:
        """A journaled transaction of known hash: mined (its receipt says how), still waiting in
        the node's pool, or unknown to the node (never arrived, or dropped): forgotten, to be
        sent again. True while it counts as sent."""
        if self._recorded_receipt(row.key, row.tx_hash) is not None:
            return self.journal.tx(row.key) is not None  # False: its sub-call was skipped, forgotten
        if self._node_has(row.tx_hash):
            return True
        self.journal.forget_tx(row.key)
        return False

    def _node_has(self, tx_hash: str) -> bool:
        from web3.exceptions import TransactionNotFound

        try:
            return self.read(lambda: self._ape.chain.provider.web3.eth.get_transaction(tx_hash)) is not None
        except TransactionNotFound:
            return False

    def in_flight(self) -> list[Submitted]:
        return list(self._submitted.values())

    def poll(self) -> list[Mined]:
        """Receipts of submitted transactions mined since the last poll (journaled as they come)."""
        mined = []
        for key, tx in list(self._submitted.items()):
            receipt = self._recorded_receipt(key, tx.tx_hash, tx.keys)
            if receipt is None:
                continue
            del self._submitted[key]
            skipped = skipped_calls(receipt, str(self.game.address)) if receipt["status"] == 1 else {}
            mined.append(Mined(key, tx.method, receipt["status"] == 1, receipt["gasUsed"], receipt["blockNumber"],
                               receipt["logs"], keys=tx.keys,
                               skipped={tx.keys[i]: why for i, why in skipped.items() if i < len(tx.keys)}))
        return mined

    def _recorded_receipt(self, key: str, tx_hash: str, keys: tuple[str, ...] = ()):
        """The receipt of ``tx_hash``, journaled (mined or reverted) under each key it carries
        (``keys``, else the journal's keys of that hash in the order sent), in one commit, each
        with its share of the gas; the keys of a multicall's skipped sub-calls are forgotten
        instead. None if not mined."""
        from web3.exceptions import TransactionNotFound

        try:
            receipt = self.read(lambda: self._ape.chain.provider.web3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None
        if self.journal is not None:
            keys = tuple(keys) or tuple(self.journal.keys_of(tx_hash)) or (key,)
            ok = receipt["status"] == 1
            skipped = skipped_calls(receipt, str(self.game.address)) if ok else {}
            with self.journal.batch():
                for i, k in enumerate(keys):
                    if i in skipped:
                        self.journal.forget_tx(k)
                    else:
                        self.journal.tx_done(k, "mined" if ok else "reverted", gas=receipt["gasUsed"] // len(keys),
                                             reason="" if ok else "reverted on chain")
        return receipt

    def send(self, key: str, contract, method: str, *args, value: int = 0):
        """Send ``contract.method(*args)`` once per ``key`` and wait for it; the receipt, or None
        when the transaction for ``key`` went out before (the chain now shows its effect) or is in
        flight."""
        from ape.exceptions import ContractLogicError

        tx = self.prepare(key, contract, method, *args, value=value)
        if tx is None:
            return None
        try:
            nonce = max(self._nonce("pending"), self._next_nonce)
            if self.journal is not None:
                self.journal.tx_sent(key, nonce)
            receipt = getattr(contract, method)(*args, sender=self.account, value=value, nonce=nonce,
                                                gas_limit=tx.gas_limit)
            self._next_nonce = nonce + 1
        except ContractLogicError as exc:
            reason = str(exc.message or exc)
            if self.journal is not None:
                self.journal.tx_done(key, "reverted", reason=reason)
            raise TxReverted(method, reason) from None
        if self.journal is not None:
            self.journal.tx_done(key, "mined", gas=receipt.gas_used)
        return receipt
