"""How a ``ChainClient`` writes: estimate and prepare, submit pipelined, or send and wait.

``prepare`` (one call) and ``prepare_batch`` (a ``DisputeGame.multicall`` of many games'
moves) estimate a transaction once, over bare JSON-RPC, with our own gas margin and room for
each metered call's write; a key that went out before (in the transaction manager, or in the
journal: mined, reverted, or still pooled by one of its hashes) is never prepared again.
``submit`` hands a prepared transaction to the transaction manager (``txmgr.py``), which
follows it until mined; ``poll`` moves them all. ``send`` is the waited write of scripts and
set-up: journaled before it is signed, its nonce handed back when the node refused it.
"""

from dataclasses import dataclass, field

from eth_abi import decode
from eth_utils import keccak

from ..errors import RefereeError

# DisputeGame's log of a skipped sub-call of a multicall: (caller) indexed; index, reason
CALL_SKIPPED_TOPIC = keccak(text="CallSkipped(address,uint256,bytes)")


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


class Writes:
    """The writing half of ``ChainClient`` (which holds the account, journal and transaction
    manager these methods use)."""

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
