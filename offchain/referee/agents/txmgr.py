"""The agents' transaction manager: every submitted transaction followed until it is mined.

One state machine per transaction, after Optimism's ``op-service/txmgr`` (resubmit with a fee
bump until mined; a not-in-mempool timeout; a cap on "nonce too low"; named knobs, here
``Knobs``). ``ChainClient.submit`` and ``poll`` hand it their transactions; each ``poll``
moves every one it follows by what the chain and the node say:

- **mined**: a receipt for any hash it was ever signed with (a bump's or the first) settles
  all its keys, journaled as mined or reverted;
- **dropped**: the node no longer has it (evicted from the pool, a node restart, an RPC that
  never relayed it; ``anvil_dropTransaction`` in the tests) for ``not_in_pool_blocks``
  blocks (at the first look within ``hurry_blocks`` of its deadline): its keys are forgotten in the journal and returned by ``take_dropped``, so the
  agent decides them again from the chain, and its nonce becomes a *gap*;
- **replaced**: the chain's nonce passed it and no hash of ours was mined: another
  transaction took the nonce (another process on the same account). Its keys are forgotten
  and decided again, and an ERROR line names the nonce;
- **pending**: after ``bump_after_blocks`` blocks (every block within ``hurry_blocks`` of its
  action's deadline) it is signed again at the same nonce and data with both fees raised by
  ``bump_per_mille`` (geth replaces a pooled transaction only when both rise by 10%), and at
  least to what a fresh one would pay now. The journal keeps every hash.

The fee cap is what is at stake: ``stake_share_bps`` of the wei the action protects (the bond
a move defends, the fee a claim earns; the caller passes it as ``stake``) per unit of the
transaction's gas limit, never below what it needs now (twice the base fee plus the tip it was
first signed with). Reaching it is logged once per transaction.

A gap (a dropped nonce) is taken by the next submission; one still open at the next poll with
a transaction of ours behind it is filled by a zero-value transfer to ourselves, so nothing
waits behind it. Nonces the chain used that no row of the journal and no transaction of this
process has are another sender's on our account: an ERROR line names each, once.
``lagging`` counts the transactions in flight for more than ``lagging_blocks`` blocks; a
change is a WARNING line, and the agent exports it as a metric.

Every transaction followed is kept in the journal's ``inflight`` table (its fields, as signed
last), written before it leaves and removed once it is mined or forgotten. A restarted agent
re-adopts them at its first look (``adopt``): each is followed on as if the process had never
stopped (bumped when due, mined, dropped and decided again, or replaced), its nonce is never
taken again, and a nonce below the highest of them that none holds is a gap, filled as above.
"""

import time

from eth_utils import keccak

from .tracked import FILL_GAS, GWEI, Knobs, Tracked, bumped, from_fields, gwei, is_fill, to_fields, what

__all__ = ["FILL_GAS", "GWEI", "Knobs", "Tracked", "TxManager"]  # the tests' and the client's imports


class TxManager:
    """The in-flight transactions of one ``ChainClient`` (its account, journal, node and log)."""

    def __init__(self, client, knobs: Knobs = Knobs()):
        self.client = client
        self.knobs = knobs
        self.block_time = 12.0  # seconds; the agent sets what it measured (deadline urgency)
        self.pending: dict[int, Tracked] = {}  # by nonce
        self.gaps: dict[int, int] = {}  # a dropped nonce -> the poll that freed it
        self._polls = 0
        self.next_nonce = 0  # the lowest nonce not yet used by this process
        self.lagging = 0  # transactions in flight for more than lagging_blocks blocks
        self._dropped: list[str] = []  # keys forgotten since the last take_dropped
        self._mined_nonces: set[int] = set()  # nonces this process saw mined with its own transactions
        self._seen_nonce: int | None = None  # the chain's nonce at the last look
        self._named: set[int] = set()  # foreign nonces already named in an ERROR line
        self._fee_block, self._fee = -1, (0, 0)
        self._latest: tuple[float, object] | None = None  # (when, the latest block) as last read
        self._pending_nonce: tuple[float, int] | None = None  # (when, the node's pending nonce)
        self._adopted = False  # the journal's transactions in flight were taken over

    def adopt(self) -> None:
        """Follow the transactions a previous run left in flight (the journal's ``inflight``),
        once, before anything else is sent or looked at: their nonces are ours, and any nonce
        under the highest of them that none holds is a gap (filled if the first tick does not
        take it)."""
        if self._adopted:
            return
        self._adopted = True
        journal = self.client.journal
        if journal is None or self.client.account is None:
            return
        left = [from_fields(fields) for fields in journal.tracked()]
        if not left:
            return
        chain_nonce = self._nonce("latest")
        for t in left:
            self.pending[t.nonce] = t
            self.used(t.nonce)
        for nonce in range(chain_nonce, self.next_nonce):
            if nonce not in self.pending:
                self.gaps[nonce] = self._polls + 1  # the first tick may take it with an action decided again
        self.log(f"{len(left)} transaction(s) in flight before the restart followed again (nonces "
                 f"{', '.join(str(t.nonce) for t in left)})")

    @property
    def web3(self):
        return self.client._ape.chain.provider.web3

    def log(self, line: str) -> None:
        self.client.log(line)

    # -- fees and nonces -------------------------------------------------------------------

    def _fresh(self, read: tuple[float, object] | None) -> bool:
        """Whether a figure read at ``read[0]`` is still this block's: read under half a block
        ago, and since the last ``poll`` (which reads both again). A flush of a hundred transactions reads the block and the nonce a few times, not a
        hundred (each read is a round trip, and a flush's length is charged to every clock)."""
        return read is not None and time.monotonic() - read[0] < self.block_time / 2

    def latest_block(self):
        if not self._fresh(self._latest):
            self._latest = (time.monotonic(), self.client.read(lambda: self.web3.eth.get_block("latest")))
        return self._latest[1]

    def fees(self) -> tuple[int, int]:
        """(base fee, priority fee) per gas at the latest block, read once per block."""
        block = self.latest_block()
        if self._fee_block != block["number"]:
            tip = self.client.read(lambda: self.web3.eth.max_priority_fee)
            self._fee_block, self._fee = block["number"], (block.get("baseFeePerGas", 0), tip)
        return self._fee

    def fee_cap(self, stake: int, gas_limit: int, need: int) -> int:
        """The most per gas a transaction protecting ``stake`` wei may pay: a share of the stake
        over its gas limit, never below ``need`` (what it needs at today's base fee)."""
        return max(stake * self.knobs.stake_share_bps // 10_000 // max(gas_limit, 1), need)

    def _nonce(self, block: str) -> int:
        return self.client.read(lambda: self.web3.eth.get_transaction_count(self.client.address, block))

    def take_nonce(self) -> int:
        """The nonce of the next transaction: the lowest gap, else past everything sent."""
        self.adopt()
        if self._seen_nonce is None:
            self._seen_nonce = self._nonce("latest")
        if self.gaps:
            nonce = min(self.gaps)
            del self.gaps[nonce]
            return nonce
        if not self._fresh(self._pending_nonce):  # our own sends since are in next_nonce
            self._pending_nonce = (time.monotonic(), self._nonce("pending"))
        return max(self._pending_nonce[1], self.next_nonce)

    def used(self, nonce: int) -> None:
        """``nonce`` went out (a waited ``send``, or a submission the node took)."""
        self.next_nonce = max(self.next_nonce, nonce + 1)

    def release(self, nonce: int) -> None:
        """``nonce`` was taken but no transaction went out with it: the next one takes it."""
        if nonce < self.next_nonce:
            self.gaps[nonce] = self._polls

    # -- submitting -----------------------------------------------------------------------

    def submit(self, tx, nonce: int | None = None):
        """Sign ``tx`` (a ``client.Prepared``) at the next nonce and today's fees, journal it
        (every key, one hash, one sqlite transaction) and hand it to the node; a ``Submitted``.
        A node's "nonce too low" is retried on a fresh nonce; any other refusal forgets the
        keys (to be decided again) and raises."""
        from .client import Submitted

        journal = self.client.journal
        for attempt in range(self.knobs.nonce_too_low_retries + 1):
            nonce = self.take_nonce() if nonce is None else nonce
            base, tip = self.fees()
            max_fee = 2 * base + tip  # room for the base fee to rise 12.5% a block for 6 full blocks
            raw, tx_hash = self._sign(tx.to, tx.data, tx.value, tx.gas_limit, nonce, max_fee, tip)
            head = self._fee_block
            t = Tracked(tx.keys, tx.method, tx.to, tx.data, tx.value, tx.gas_limit, tx.stake, tx.deadline, nonce,
                        max_fee, tip, tip, head, [tx_hash], head)
            if journal is not None:  # before it leaves: a restart finds it by its hash, and follows it
                with journal.batch():
                    journal.txs_sent(tx.keys, nonce, tx_hash)
                    journal.track(nonce, to_fields(t))
            try:
                self.client.read(lambda: self.web3.eth.send_raw_transaction(raw))
                break
            except Exception as exc:
                # Refused, or lost on the way: whether the node has it decides. One it lacks is
                # forgotten, to be decided and sent again; one it has is in flight. (If the node
                # cannot even be asked, the journaled hash settles it on a later pass.)
                if self.node_has(tx_hash):
                    break
                if journal is not None:
                    with journal.batch():
                        for key in tx.keys:
                            journal.forget_tx(key)
                        journal.untrack(nonce)
                if "nonce too low" in str(exc).lower() and attempt < self.knobs.nonce_too_low_retries:
                    self.used(nonce)  # another transaction has it: never again
                    self._pending_nonce = None
                    nonce = None
                    continue
                self.release(nonce)
                raise
        self.used(nonce)
        self.pending[nonce] = t
        return Submitted(tx.keys, tx.method, nonce, tx_hash, head)

    def _sign(self, to: str, data: bytes, value: int, gas_limit: int, nonce: int, max_fee: int,
              tip: int) -> tuple[bytes, str]:
        client = self.client
        unsigned = client._ape.chain.provider.network.ecosystem.create_transaction(
            chain_id=client.deployment.chain_id, receiver=to, sender=client.address, data=data, value=value,
            nonce=nonce, gas_limit=gas_limit, max_fee=max_fee, max_priority_fee=tip, type=2)
        raw = client.account.sign_transaction(unsigned).serialize_transaction()
        return raw, "0x" + keccak(raw).hex()

    # -- following ------------------------------------------------------------------------

    def has_key(self, key: str) -> bool:
        self.adopt()
        return any(key in t.keys for t in self.pending.values())

    def in_flight(self) -> list:
        from .client import Submitted

        self.adopt()
        return [Submitted(t.keys, t.method, t.nonce, t.hashes[-1], t.sent_block)
                for t in sorted(self.pending.values(), key=lambda t: t.nonce) if not is_fill(t)]

    def take_dropped(self) -> list[str]:
        """Keys forgotten since the last call (dropped or replaced): decide them again."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def poll(self) -> list:
        """One look at every transaction in flight: the ``Mined`` ones since the last poll;
        the dropped and replaced are forgotten, the slow bumped, gaps filled."""
        from .client import Mined

        if self.client.account is None:
            return []  # a read-only client sends nothing
        self.adopt()
        self._polls += 1
        self._latest = (time.monotonic(), self.client.read(lambda: self.web3.eth.get_block("latest")))
        self._pending_nonce = None  # read again at this pass's first submission
        block = self._latest[1]
        head, now = block["number"], block["timestamp"]
        chain_nonce = self._nonce("latest")  # before the receipts: a nonce passed without one is not ours
        mined = []
        for nonce, t in sorted(self.pending.items()):
            receipt = self.receipt_of(t.keys, t.hashes)
            if receipt is not None:
                self._untrack(nonce)
                self._mined_nonces.add(nonce)
                if is_fill(t):
                    self.log(f"nonce {nonce}: gap filled by a zero-value transfer")
                else:
                    mined.append(Mined(t.keys, t.method, receipt["status"] == 1, receipt["gasUsed"],
                                       receipt["blockNumber"], receipt["logs"], self.skipped(receipt, t.keys)))
            elif chain_nonce > nonce and t.passed_at in (None, self._polls):
                # a node under load can count a block's nonces before it serves the block's
                # receipts: "replaced" only if no receipt of ours has come by the next look
                t.passed_at = self._polls
            elif chain_nonce > nonce:
                self._untrack(nonce)
                self._forget(t, f"error: nonce {nonce} of {self.client.address} was taken by a transaction "
                                f"this agent did not send; {what(t)} is decided again (another agent or wallet "
                                "on this account?)")
                self._named.add(nonce)
            elif not any(self.node_has(h) for h in reversed(t.hashes)):
                t.missing_since = head if t.missing_since is None else t.missing_since
                patience = 0 if self._urgent(t, now) else self.knobs.not_in_pool_blocks
                if head - t.missing_since >= patience:
                    self._untrack(nonce)
                    self.gaps[nonce] = self._polls
                    self._forget(t, f"warning: {what(t)}: dropped by the node (nonce {nonce}); decided again")
            else:
                t.missing_since = None
                if self._bump_due(t, head, now):
                    self._bump(t, head)
        self._name_foreign(chain_nonce)
        self._fill_gaps(chain_nonce)
        self._count_lagging(head)
        return mined

    def _untrack(self, nonce: int) -> None:
        """No longer followed: mined, or forgotten to be decided again."""
        del self.pending[nonce]
        if self.client.journal is not None:
            self.client.journal.untrack(nonce)

    def _forget(self, t: Tracked, line: str) -> None:
        if self.client.journal is not None:
            for key in t.keys:
                self.client.journal.forget_tx(key)
        if not is_fill(t):
            self._dropped.extend(t.keys)
        self.log(line)

    def receipt_of(self, keys: tuple[str, ...], hashes: list[str]):
        """The receipt of whichever of ``hashes`` was mined, journaled under ``keys`` (mined or
        reverted, each key its share of the gas); None if none was."""
        from web3.exceptions import TransactionNotFound

        for tx_hash in reversed(hashes):
            try:
                receipt = self.client.read(lambda h=tx_hash: self.web3.eth.get_transaction_receipt(h))
            except TransactionNotFound:
                continue
            if self.client.journal is not None:
                ok = receipt["status"] == 1
                skipped = self.skipped(receipt, keys)
                with self.client.journal.batch():
                    for key in keys:
                        if key in skipped:  # a multicall's sub-call that failed: decided again
                            self.client.journal.forget_tx(key)
                        else:
                            self.client.journal.tx_done(key, "mined" if ok else "reverted",
                                                        gas=receipt["gasUsed"] // len(keys),
                                                        reason="" if ok else "reverted on chain")
            return receipt
        return None

    def skipped(self, receipt, keys: tuple[str, ...]) -> dict[str, str]:
        """The keys of a multicall's sub-calls its receipt reports skipped, with their reasons."""
        from .client import skipped_calls

        if receipt["status"] != 1:
            return {}
        return {keys[i]: why for i, why in skipped_calls(receipt, str(self.client.game.address)).items() if i < len(keys)}

    def node_has(self, tx_hash: str) -> bool:
        from web3.exceptions import TransactionNotFound

        try:
            return self.client.read(lambda: self.web3.eth.get_transaction(tx_hash)) is not None
        except TransactionNotFound:
            return False

    # -- bumps ----------------------------------------------------------------------------

    def _urgent(self, t: Tracked, now: int) -> bool:
        """Within ``hurry_blocks`` of its action's deadline: every block counts."""
        return t.deadline is not None and t.deadline - now <= self.knobs.hurry_blocks * self.block_time

    def _bump_due(self, t: Tracked, head: int, now: int) -> bool:
        every = 1 if self._urgent(t, now) else self.knobs.bump_after_blocks
        return head - t.priced_block >= every

    def _bump(self, t: Tracked, head: int) -> None:
        """Sign ``t`` again, same nonce and data, both fees up by the bump (at least to what a
        fresh transaction pays), within the cap; the journal keeps both hashes."""
        base, tip_now = self.fees()
        tip = max(bumped(t.tip, self.knobs.bump_per_mille), tip_now)
        max_fee = max(bumped(t.max_fee, self.knobs.bump_per_mille), 2 * base + tip)
        # the floor: its first tip over today's base fee (not the node's suggested tip, which
        # follows whoever outbids us: a stuffer would raise our cap with its own bids)
        cap = self.fee_cap(t.stake, t.gas_limit, 2 * base + t.first_tip)
        if max_fee > cap:
            max_fee, tip = cap, min(tip, cap)
            if not t.capped:
                t.capped = True
                self.log(f"warning: {what(t)}: fee cap {gwei(cap)} reached ({self.knobs.stake_share_bps / 100:g}% of "
                         f"the {t.stake / 10**18:.4g} ETH at stake over {t.gas_limit:,} gas); not bumped further")
        # INVARIANT: a replacement raises both fees by 10% (geth's rule), or the node refuses it
        if max_fee * 10 < t.max_fee * 11 or tip * 10 < t.tip * 11:
            t.priced_block = head  # nothing to gain now; look again after another interval
            return
        raw, tx_hash = self._sign(t.to, t.data, t.value, t.gas_limit, t.nonce, max_fee, tip)
        journal = self.client.journal
        if journal is not None:  # before it leaves, as a first signature is
            with journal.batch():
                journal.tx_rehash(t.keys, t.hashes + [tx_hash])
                journal.track(t.nonce, {**to_fields(t), "hashes": t.hashes + [tx_hash], "max_fee": max_fee, "tip": tip,
                                        "priced_block": head})
        try:
            self.client.read(lambda: self.web3.eth.send_raw_transaction(raw))
        except Exception as exc:  # refused (underpriced, or mined meanwhile): the old hashes stand
            if not self.node_has(tx_hash):
                if journal is not None:
                    with journal.batch():
                        journal.tx_rehash(t.keys, t.hashes)
                        journal.track(t.nonce, to_fields(t))
                self.log(f"warning: {what(t)}: fee bump refused by the node: {str(exc).splitlines()[0]}")
                t.priced_block = head
                return
        self.log(f"{what(t)}: pending {head - t.sent_block} block(s), fees bumped to {gwei(max_fee)} "
                 f"(tip {gwei(tip)})")
        t.hashes.append(tx_hash)
        t.max_fee, t.tip, t.priced_block = max_fee, tip, head

    # -- gaps, foreign nonces, lag --------------------------------------------------------

    def _fill_gaps(self, chain_nonce: int) -> None:
        """A gap the chain passed is closed; one at the top is left to the next submission; one
        a transaction of ours waits behind, not taken since the poll that freed it (the agent's
        tick in between decided nothing to send), gets a zero-value transfer."""
        from .client import Prepared

        for nonce, freed in sorted(self.gaps.items()):
            if nonce < chain_nonce:
                del self.gaps[nonce]
            elif any(n > nonce for n in self.pending) and self._polls > freed:
                del self.gaps[nonce]
                fill = Prepared((f"fill:{nonce}",), self.client.address, "fill", b"", 0, FILL_GAS)
                try:
                    self.submit(fill, nonce)
                except Exception as exc:  # the node refused it: the gap stays for the next look
                    self.gaps[nonce] = self._polls
                    self.log(f"nonce {nonce}: gap not filled: {str(exc).splitlines()[0]}")

    def _name_foreign(self, chain_nonce: int) -> None:
        """An ERROR line, once, for each nonce the chain used that is not ours."""
        seen, self._seen_nonce = self._seen_nonce, chain_nonce
        journal = self.client.journal
        if seen is None or journal is None:
            return
        for nonce in range(seen, chain_nonce):
            if nonce in self._mined_nonces or nonce in self._named or journal.has_nonce(nonce):
                continue
            self._named.add(nonce)
            self.log(f"error: nonce {nonce} of {self.client.address} was used by a transaction this agent did not "
                     "send: another agent or wallet is using this account (each agent needs its own account)")

    def _count_lagging(self, head: int) -> None:
        late = [t for t in self.pending.values() if head - t.sent_block > self.knobs.lagging_blocks]
        if len(late) != self.lagging and late:
            oldest = min(late, key=lambda t: t.sent_block)
            self.log(f"warning: {len(late)} transaction(s) in flight for more than {self.knobs.lagging_blocks} "
                     f"blocks (oldest: {what(oldest)}, nonce {oldest.nonce}, since block {oldest.sent_block})")
        self.lagging = len(late)
