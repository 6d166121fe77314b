"""A thin typed layer over the deployed contracts, through Ape, for the agents and scripts.

Reads are retried with exponential backoff while the RPC endpoint is unreachable (a node
restarting, a dropped connection) and give up with ``ChainUnavailable`` after ``patience``
seconds. Each failed attempt is reported at once (``on_unreachable``: the agents' RPC-error
metric); the log names the failure's root cause, says so once when an outage starts, and turns
to ``error:`` lines once it has lasted ``alarm_after`` seconds. Writes are journaled under a key naming what they do before they are signed; a key
still in flight after a crash or a dropped connection is waited for (the account nonce tells
whether it reached the chain), never sent twice. A transaction the node's estimate says would
revert raises ``TxReverted`` with the contract's reason and is not sent.

Two ways to write: ``send`` waits for the receipt (scripts, set-up); ``prepare`` + ``submit``
hand a signed transaction to the node and return at once, with consecutive nonces, so an agent
playing many games sends every move of a block together and no game's move waits on another
game's receipt (docs/agents.md, "Many games at once"). ``poll`` collects the receipts of what
was submitted. What happens to a submitted transaction until it is mined (fee bumps, a drop,
a nonce gap, a nonce another sender took) is the transaction manager's (``txmgr.py``); this
class stays the agents' one entry point to the chain. ``prepare_batch`` puts the moves of
many games in one ``DisputeGame.multicall`` transaction (one estimate for the batch, one
journal commit for its keys); a sub-call that fails on chain is skipped there, and its key is
forgotten when the receipt comes, to be decided again.
"""

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from eth_abi import decode
from eth_utils import keccak

from ..errors import RefereeError
from .deployment import Deployment, contracts_project
from .views import Views
from .journal import Journal
from .txmgr import Knobs, TxManager

# JobMarket job status and DisputeGame result codes (protocol section 10.8).
OPEN, CLAIMED, COMMITTED, FINALIZED, REJECTED, CANCELLED = range(1, 7)
JOB_STATUS = {OPEN: "open", CLAIMED: "claimed", COMMITTED: "committed", FINALIZED: "finalized",
              REJECTED: "rejected", CANCELLED: "cancelled"}
IN_PLAY, SOLVER_WON, CHALLENGER_WON, CLOSED = range(4)
# the game logs an agent's scan keeps, the latest of each kind per game (journal ``game_logs``):
# what the opponent's last move revealed, and why the game ended
RECORDED_GAME_EVENTS = ("Bisected", "ChildrenRevealed", "RowRevealed", "GameResolved")

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
    """A transaction estimated and ready to submit: ``gas_limit`` is what it may take of a block.
    ``keys``: what it does, one key per action it carries (a multicall carries many); ``stake``:
    the wei the action protects, which caps its fees (``txmgr``); ``deadline``: the timestamp it
    must be mined by (None: no hurry), which makes its bumps come sooner."""

    keys: tuple[str, ...]
    to: str
    method: str
    data: bytes
    value: int
    gas_limit: int
    stake: int = 0
    deadline: int | None = None

    @property
    def key(self) -> str:
        return self.keys[0]


@dataclass
class Submitted:
    """A transaction handed to the node, not yet seen mined (``tx_hash``: its latest signature)."""

    keys: tuple[str, ...]
    method: str
    nonce: int
    tx_hash: str
    block: int  # the head when it was submitted

    @property
    def key(self) -> str:
        return self.keys[0]


@dataclass
class Mined:
    """A submitted transaction's receipt: ``ok`` is False when it reverted on chain;
    ``skipped``: the keys of a multicall's sub-calls that failed, with their reasons (forgotten
    in the journal, to be decided again)."""

    keys: tuple[str, ...]
    method: str
    ok: bool
    gas_used: int
    block: int
    logs: list
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.keys[0]

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


# A metered call (the challenger's moves, `challenge`: protocol 10.2.1) writes its gas at the
# transaction's price; a node estimates at price 0, where the write of a fresh slot costs nothing
# (22,100 gas when it is set nonzero), so each call's limit makes room for it.
METER_WRITE_GAS = 22_100


def _gas_limit(estimate: int, calls: int) -> int:
    """A transaction's gas limit from the node's estimate for ``calls`` calls: our own margin
    (not the network's default, a block's worth on local chains; never short when the state
    moves a little before mining), and room for each call's metering write."""
    return estimate * 6 // 5 + 20_000 + METER_WRITE_GAS * calls


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


def root_cause(exc: BaseException) -> str:
    """``ConnectionRefusedError, [Errno 111] Connection refused``: the innermost exception
    under ``exc`` (Ape and requests wrap the socket's error two or three times over). No colon
    after the name: ``Error:`` in a line would make it an ERROR line (logs.line_level)."""
    seen = set()
    while id(exc) not in seen and (exc.__cause__ or exc.__context__) is not None:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}, {text}" if text else type(exc).__name__


class ChainClient:
    """The registry, market and game of one deployment, as seen and moved by ``account``."""

    def __init__(self, deployment: Deployment, account, journal: Journal | None = None,
                 patience: float = 120.0, log: Callable[[str], None] = lambda line: None,
                 alarm_after: float = 30.0, knobs: Knobs = Knobs()):
        import ape

        self._ape = ape
        self.deployment = deployment
        self.account = account  # None: read only
        self.address = str(account.address) if account is not None else ""
        self.journal = journal
        self.patience = patience
        self.alarm_after = alarm_after  # seconds of outage after which its lines are errors
        self.on_unreachable: Callable[[], None] | None = None  # called on every failed attempt
        self.log = log
        chain_id = self.read(lambda: ape.chain.provider.chain_id)
        if chain_id != deployment.chain_id:
            raise RefereeError(f"connected to chain {chain_id}, but the deployment is on chain {deployment.chain_id}")
        project = contracts_project()
        self.registry = self._instance(project.ModelRegistry, deployment.registry)
        self.game = self._instance(project.DisputeGame, deployment.game)
        self.market = self._instance(project.JobMarket, deployment.market)
        web3 = ape.chain.provider.web3
        self.market_views, self.game_views = Views(web3, self.market), Views(web3, self.game)
        self.arity = self.read(self.game.ARITY)
        self.clock = self.read(self.game.CLOCK)
        self.challenger_bond = self.read(self.market.CHALLENGER_BOND)
        self.txmgr = TxManager(self, knobs)  # every submitted transaction, until mined
        # a multicall's bounds: sub-calls per batch, and the longest one (longer go alone)
        self.max_calls, self.max_call_bytes = self.read(self.game.MAX_CALLS), self.read(self.game.MAX_CALL_BYTES)

    def _instance(self, container, address: str):
        """``container``'s contract at ``address``, with exactly this checkout's ABI. Ape keeps
        contract types per address on disk (``~/.ape/<ecosystem>/<network>``) and merges a given
        one into what it holds; a local chain redeployed from changed sources (or another
        checkout's contracts) at the same deterministic addresses then read as one contract with
        two ``JobPosted`` events, and every log query failed (``ContractEventWrapper`` has no
        ``range``)."""
        return self.read(lambda: self._ape.chain.contracts.instance_at(
            address, contract_type=container.contract_type, fetch_from_explorer=False, detect_proxy=False,
            replace=True))

    # -- reads ---------------------------------------------------------------------------

    def read(self, fn: Callable, *args):
        """``fn(*args)``, retried with backoff while the node cannot be reached."""
        delay, waited, alarmed = 0.25, 0.0, -1.0
        while True:
            try:
                return fn(*args)
            except Exception as exc:  # classified below: only connection failures are retried
                if not is_transient(exc):
                    raise
                if self.on_unreachable is not None:
                    self.on_unreachable()
                cause = root_cause(exc)
                if waited >= self.patience:
                    raise ChainUnavailable(f"the node has been unreachable for {waited:.0f} s ({cause})") from None
                if waited == 0:
                    self.log(f"node unreachable ({cause}); retrying for up to {self.patience:.0f} s")
                elif waited >= self.alarm_after and waited - alarmed >= self.alarm_after:
                    alarmed = waited
                    self.log(f"error: the node has been unreachable for {waited:.0f} s ({cause}); still retrying")
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

    def automines(self) -> bool:
        """True on a local chain that mines a block per transaction (anvil's and hardhat's
        automine): its block timestamps are the gaps between transactions, not a block time."""
        web3 = self._ape.chain.provider.web3
        for method in ("anvil_getAutomine", "hardhat_getAutomine"):
            try:
                response = self.read(web3.provider.make_request, method, [])
            except Exception as exc:  # a real node refuses the method: it does not automine
                if isinstance(exc, ChainUnavailable):
                    raise
                continue
            if isinstance(response, dict) and "result" in response:
                return response["result"] is True
        return False

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
        """The packed input of job ``job_id``: as the journal recorded it from the ``JobPosted``
        log when it has, else from that log, found by a scan of the whole history (scripts)."""
        row = self.journal.job(job_id) if self.journal is not None else None
        if row is not None:
            return bytes(row.input)
        posted = self.logs(self.market, "JobPosted", self.deployment.block, self.head(), job_id=job_id)
        if not posted:
            raise RefereeError(f"job {job_id} does not exist on this chain")
        return bytes(posted[0].input)

    def logs(self, contract, event: str, start: int, stop: int, **topics) -> list:
        """Logs of ``event`` in blocks ``start..stop`` (inclusive), filtered by indexed fields."""
        if stop < start:
            return []
        return self.read(lambda: list(getattr(contract, event).range(start, stop + 1, search_topics=topics or None)))

    def events(self, contract, names: tuple[str, ...], start: int, stop: int) -> list:
        """Logs of any of the events ``names`` of ``contract`` in blocks ``start..stop``, in chain
        order, from one ``eth_getLogs`` request (each carries its ``event_name``)."""
        if stop < start:
            return []
        web3, ecosystem = self._ape.chain.provider.web3, self._ape.chain.provider.network.ecosystem
        abis = [getattr(contract, name).abi for name in names]
        topic0 = ["0x" + keccak(text=abi.selector).hex() for abi in abis]
        query = {"address": str(contract.address), "fromBlock": hex(start), "toBlock": hex(stop), "topics": [topic0]}
        raw = self.read(lambda: web3.eth.get_logs(query))
        return list(ecosystem.decode_logs(raw, *abis))

    def last_log(self, contract, event: str, **topics):
        """The latest ``event`` log matching ``topics`` in the whole history: a scan from the
        deployment block, for scripts; agents read ``game_log``, whose cost does not grow."""
        found = self.logs(contract, event, self.deployment.block, self.head(), **topics)
        return found[-1] if found else None

    def game_log(self, game_id: int, event: str):
        """The latest ``event`` log of game ``game_id`` (one the agent's scan records: see
        ``RECORDED_GAME_EVENTS``): looked for in the blocks the scan has not read yet, then in
        the journal, as the scan recorded it. Without a journal that scans, a full ``last_log``."""
        cursor = self.journal.cursor() if self.journal is not None else None
        if cursor is None:
            return self.last_log(self.game, event, game_id=game_id)
        recent = self.logs(self.game, event, cursor + 1, self.head(), game_id=game_id)
        if recent:
            return recent[-1]
        fields = self.journal.game_log(game_id, event)
        return SimpleNamespace(event_name=event, **fields) if fields is not None else None

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
        if self.txmgr.has_key(key):
            return True
        row = self.journal.tx(key) if self.journal is not None else None
        if row is None:
            return False
        if row.status != "sent":
            return True  # mined or reverted before: never again
        if row.tx_hash:  # a pipelined one: its hashes say where it is
            return self._resolve_by_hash(row)
        if self._nonce("pending") > row.nonce:  # it reached the node: the chain will show it
            if self._nonce("latest") > row.nonce:
                self.journal.tx_done(key, "mined")
            return True
        self.journal.forget_tx(key)  # it never reached the node: send it now
        return False

    def prepare(self, key: str | tuple[str, ...], contract, method: str, *args, value: int = 0, stake: int = 0,
                deadline: int | None = None) -> Prepared | None:
        """Estimate ``contract.method(*args)`` for ``key`` (or a tuple of keys, one per action a
        multicall carries); None when a key went out before. ``stake`` and ``deadline`` go to
        the transaction manager (fee cap, bump pace). Raises ``TxReverted`` when the node's
        estimate says it would revert (nothing is sent or journaled, so a later call may try
        again).

        The call is encoded once and estimated over bare JSON-RPC: an agent prepares every move
        of every game each block, and Ape's transaction objects cost tens of milliseconds each."""
        from web3.exceptions import ContractLogicError

        keys = (key,) if isinstance(key, str) else tuple(key)
        if any([self._already_sent(k) for k in keys]):  # every key resolved, none short-circuited
            return None
        data = bytes(getattr(contract, method).encode_input(*args))
        to = str(contract.address)
        call = {"from": self.address, "to": to, "data": "0x" + data.hex(), "value": value}
        try:
            gas = self.read(lambda: self._ape.chain.provider.web3.eth.estimate_gas(call))
        except ContractLogicError as exc:
            raise TxReverted(method, _revert_reason(exc)) from None
        return Prepared(keys, to, method, data, value, _gas_limit(gas, 1), stake, deadline)

    @staticmethod
    def encode(contract, method: str, *args) -> bytes:
        """The calldata of ``contract.method(*args)``."""
        return bytes(getattr(contract, method).encode_input(*args))

    def prepare_batch(self, calls: list[tuple[str, bytes]], stake: int = 0, deadline: int | None = None) -> Prepared | None:
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
        calls = [(key, data) for key, data in calls if not self._already_sent(key)]  # txmgr or journal
        if not calls:
            return None
        data = self.encode(self.game, "multicall", [d for _, d in calls])
        to = str(self.game.address)
        call = {"from": self.address, "to": to, "data": "0x" + data.hex()}
        try:
            gas = self.read(lambda: self._ape.chain.provider.web3.eth.estimate_gas(call))
        except ContractLogicError as exc:
            raise TxReverted("multicall", _revert_reason(exc)) from None
        return Prepared(tuple(key for key, _ in calls), to, "multicall", data, 0, _gas_limit(gas, len(calls)),
                        stake, deadline)

    def submit(self, tx: Prepared) -> Submitted:
        """Sign and hand ``tx`` to the node without waiting for it to be mined (``txmgr``)."""
        return self.txmgr.submit(tx)

    def poll(self) -> list[Mined]:
        """Receipts of submitted transactions mined since the last poll (journaled as they come);
        the same pass re-prices the slow ones and forgets the dropped (``forgotten``)."""
        return self.txmgr.poll()

    def forgotten(self) -> list[str]:
        """Keys whose transaction the node dropped or another took the nonce of, since the last
        call: they are no longer sent, and are decided again."""
        return self.txmgr.take_dropped()

    def in_flight(self) -> list[Submitted]:
        return self.txmgr.in_flight()

    def _resolve_by_hash(self, row) -> bool:
        """A journaled transaction of known hashes: mined (its receipt says how), still waiting
        in the node's pool, or unknown to the node (never arrived, or dropped): forgotten, to be
        sent again. True while it counts as sent."""
        keys = tuple(self.journal.keys_of(row.tx_hash)) or (row.key,)  # every key of its transaction, in order
        if self.txmgr.receipt_of(keys, row.hashes) is not None:
            return self.journal.tx(row.key) is not None  # False: its sub-call was skipped, forgotten
        if any(self.txmgr.node_has(h) for h in row.hashes):
            return True
        self.journal.forget_tx(row.key)
        return False

    def send(self, key: str, contract, method: str, *args, value: int = 0):
        """Send ``contract.method(*args)`` once per ``key`` and wait for it; the receipt, or None
        when the transaction for ``key`` went out before (the chain now shows its effect) or is in
        flight."""
        from ape.exceptions import ContractLogicError

        tx = self.prepare(key, contract, method, *args, value=value)
        if tx is None:
            return None
        nonce = self.txmgr.take_nonce()
        try:
            if self.journal is not None:
                self.journal.tx_sent(key, nonce)
            receipt = getattr(contract, method)(*args, sender=self.account, value=value, nonce=nonce,
                                                gas_limit=tx.gas_limit)
            self.txmgr.used(nonce)
        except ContractLogicError as exc:
            reason = str(exc.message or exc)
            if self.journal is not None:
                self.journal.tx_done(key, "reverted", reason=reason)
            if self._nonce("latest") > nonce:
                self.txmgr.used(nonce)  # mined, and reverted on chain
            else:
                self.txmgr.release(nonce)
            raise TxReverted(method, reason) from None
        except BaseException:  # refused by the node (funds, gas), or Ctrl-C while it was sent
            self._forget_unsent(key, nonce)
            raise
        if self.journal is not None:
            self.journal.tx_done(key, "mined", gas=receipt.gas_used)
        return receipt

    def _forget_unsent(self, key: str, nonce: int) -> None:
        """A waited send that failed: unless the node took its nonce, its ``sent`` row is
        forgotten and the nonce handed back to the transaction manager. Left behind, a later
        transaction taking that nonce would make the next start read it as mined, and the action
        (a deposit, say) would never be sent again."""
        try:
            taken = self._nonce("pending") > nonce
        except Exception:  # no node to ask: the restart's own check decides
            return
        if taken:
            self.txmgr.used(nonce)
            return
        self.txmgr.release(nonce)
        if self.journal is not None and self.journal.tx(key) is not None:
            self.journal.forget_tx(key)
