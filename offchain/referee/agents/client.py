"""A thin typed layer over the deployed contracts, through Ape, for the agents and scripts.

Reads are retried with exponential backoff while the RPC endpoint is unreachable (a node
restarting, a dropped connection) and give up with ``ChainUnavailable`` after ``patience``
seconds. Each failed attempt is reported at once (``on_unreachable``: the agents' RPC-error
metric); the log names the failure's root cause, says so once when an outage starts, and turns
to ``error:`` lines once it has lasted ``alarm_after`` seconds. Writes are journaled under a key naming what they do before they are signed; a key
still in flight after a crash or a dropped connection is waited for (the account nonce tells
whether it reached the chain), never sent twice. A transaction the node's estimate says would
revert raises ``TxReverted`` with the contract's reason and is not sent.

Two ways to write (``writes.py``): ``send`` waits for the receipt (scripts, set-up);
``prepare`` + ``submit`` hand a signed transaction to the node and return at once, with
consecutive nonces, so an agent playing many games sends every move of a block together and no
game's move waits on another game's receipt (docs/agents.md, "Many games at once"). ``poll``
collects the receipts of what was submitted. What happens to a submitted transaction until it
is mined (fee bumps, a drop, a nonce gap, a nonce another sender took) is the transaction
manager's (``txmgr.py``); this class stays the agents' one entry point to the chain.
``prepare_batch`` puts the moves of many games in one ``DisputeGame.multicall`` transaction
(one estimate for the batch, one journal commit for its keys); a sub-call that fails on chain
is skipped there, and its key is forgotten when the receipt comes, to be decided again.
"""

import http.client
import time
from collections.abc import Callable
from types import SimpleNamespace

from eth_utils import keccak

from ..errors import RefereeError
from .deployment import Deployment, contracts_project
from .views import Views
from .journal import Journal
from .txmgr import Knobs, TxManager
from .writes import (CALL_SKIPPED_TOPIC, METER_WRITE_GAS, Mined, Prepared, Submitted, TxReverted,  # noqa: F401
                     Writes, skipped_calls)  # the writes' names, importable here as before

# JobMarket job status and DisputeGame result codes (protocol section 10.8).
OPEN, CLAIMED, COMMITTED, FINALIZED, REJECTED, CANCELLED = range(1, 7)
JOB_STATUS = {OPEN: "open", CLAIMED: "claimed", COMMITTED: "committed", FINALIZED: "finalized",
              REJECTED: "rejected", CANCELLED: "cancelled"}
IN_PLAY, SOLVER_WON, CHALLENGER_WON, CLOSED = range(4)
RESULT_OF_PHASE = {8: SOLVER_WON, 9: CHALLENGER_WON, 10: CLOSED}  # DisputeGame's final phases (protocol 10.3)
# the game logs an agent's scan keeps, the latest of each kind per game (journal ``game_logs``):
# what the opponent's last move revealed, and why the game ended
RECORDED_GAME_EVENTS = ("Bisected", "ChildrenRevealed", "RowRevealed", "GameResolved")

_TRANSIENT_WORDS = ("connection refused", "connection reset", "connection aborted", "max retries exceeded",
                    "remote end closed", "timed out", "not connected", "broken pipe", "bad gateway",
                    "could not discover provider")


def pack_ids(ids: list[int]) -> bytes:
    """Packed int32 ids (protocol section 3: four bytes each, big-endian two's complement)."""
    return b"".join(int(i).to_bytes(4, "big", signed=True) for i in ids)


def unpack_ids(packed: bytes) -> list[int]:
    """Packed int32 ids (big-endian) back to a list; a trailing part of an id is not one."""
    return [int.from_bytes(packed[i:i + 4], "big", signed=True) for i in range(0, len(packed) - len(packed) % 4, 4)]


def commit_generation_args(job_id: int, prompt: list[int], tokens: list[int], trace) -> tuple:
    """The arguments of ``JobMarket.commit_generation`` for a teacher-forced trace."""
    from .. import commitments as cm

    n = trace.op_count
    return (job_id, pack_ids(prompt), pack_ids(tokens), cm.packed(trace.output), trace.trace_root,
            trace.state_tree(n).proof(n))


def open_window(job) -> tuple[str, int] | None:
    """The window a job is in and its last second: claim, commit or challenge (None after)."""
    return {OPEN: ("claim", job.claim_deadline), CLAIMED: ("commit", job.commit_deadline),
            COMMITTED: ("challenge", job.challenge_deadline)}.get(job.status)


class ChainUnavailable(RefereeError):
    """The RPC endpoint stayed unreachable for longer than the client's patience."""



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


class ChainClient(Writes):
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

    # -- models and jobs (protocol 10.1, 10.2, 5.15) --------------------------------------

    def model_id(self, model) -> int:
        """The id of ``model``'s true registry entry (its key covers every fact the model file
        gives, ``IntegerModel.entry``), or 0: an entry of the same root with other facts is not
        this model's and is never found."""
        return self.read(self.registry.model_id, model.entry)

    def check_entry(self, model_id: int, model) -> None:
        """RefereeError unless entry ``model_id`` states ``model``'s facts (root, shapes, dtypes,
        row rule): a job on another entry is sized by facts its model file does not give."""
        from ..model import entry_mismatch

        why = entry_mismatch(model, self.read(self.registry.model, model_id))
        if why is not None:
            raise RefereeError(f"model {model_id}: {why}")

    def register(self, model):
        """Register ``model`` with the facts its model file gives; the receipt (None if its
        entry exists: ``model_id`` gives it)."""
        if self.model_id(model):
            return None
        return self.send(f"register:{model.entry.hex()}", self.registry, "register", *model.registration())

    def post(self, model_id: int, x, fee: int, solver_bond: int, windows: tuple[int, int, int]):
        """Post a job of ``x`` (a 2-D int8 or int32 tensor: the model's input dtype) on entry
        ``model_id``; the receipt."""
        from .. import commitments as cm

        count = self.read(self.market.job_count)
        return self.send(f"post:{count}", self.market, "post", model_id, x.shape[0], cm.packed(x), solver_bond,
                         *windows, value=fee)

    def post_generation(self, model_id: int, prompt: list[int], n_tokens: int, fee: int, solver_bond: int,
                        windows: tuple[int, int, int]):
        """Post a generation job (protocol 5.15): ``n_tokens`` greedy tokens after ``prompt``
        (int32 ids); the receipt."""
        count = self.read(self.market.job_count)
        return self.send(f"post:{count}", self.market, "post_generation", model_id, pack_ids(prompt), n_tokens,
                         solver_bond, *windows, value=fee)

    def commit(self, job_id: int, trace, key: str | None = None):
        """Commit ``trace``'s output and trace root for job ``job_id`` (the slot-N proof
        included); the receipt."""
        from .. import commitments as cm

        n = trace.op_count
        return self.send(key or f"commit:{job_id}", self.market, "commit", job_id, cm.packed(trace.output),
                         trace.trace_root, trace.state_tree(n).proof(n))

    def commit_generation(self, job_id: int, prompt: list[int], tokens: list[int], trace, key: str | None = None):
        """Commit a generation job: ``tokens``, and the trace of the teacher-forced pass over
        [prompt ‖ tokens[:-1] ‖ 0 ...] (``referee.decode.verify_generation``); the receipt."""
        return self.send(key or f"commit:{job_id}", self.market, "commit_generation",
                         *commit_generation_args(job_id, prompt, tokens, trace))

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
