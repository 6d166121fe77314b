"""How an agent sends: a tick's actions queued, then flushed within a block's share of gas.

``send`` queues an ``Action`` for this tick; ``_flush`` submits the queue most urgent clock
first: market calls one transaction each, game calls packed into ``DisputeGame.multicall``
transactions by the gas table (``batching.py``), interleaved by deadline, all pipelined and
within the agent's share of the block's gas and half a block's time (what does not fit waits
for the next block, which ``_await_block`` watches for). ``_receipts`` collects what was mined (the gas table and the move gas learn from it) and
forgets what the transaction manager dropped, to be decided again. ``_guarded`` runs one step,
logging a revert or a lost connection instead of stopping the loop.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import batching
from . import capacity as cap
from .client import TxReverted, is_transient

NO_DEADLINE = 2**63  # sorts after every clock: settle, finalize, withdraw
HEAD_POLL = 0.1  # seconds between looks at the head while waiting for the next block
FLUSH_SHARE = 0.5  # of a block: market calls past it in one flush wait for the next block
# the keys of game moves (journal), whose measured gas refines the capacity
MOVES = {"bisect", "choose", "transition", "reveal_children", "pick", "reveal_row", "step"}
GAME_CALLS = MOVES | {"timeout"}  # what a multicall carries


@dataclass
class Action:
    """One transaction an agent decided on this tick, sent in order of ``deadline``."""

    key: str
    method: str
    args: tuple
    contract: object
    value: int
    what: str
    deadline: int
    stake: int = 0  # wei the action protects: the transaction manager caps its fees by it


class Sending:
    """The sending half of ``Agent`` (it sets the attributes these methods read)."""

    def _await_block(self, poll: float) -> None:
        """Wait until the chain's head moves past the one this tick saw, at most ``poll`` s: the
        part of a batch beyond a block's share goes out as soon as the next block is seen."""
        deadline, seen = time.monotonic() + poll, self._budget[0]
        while time.monotonic() < deadline:
            time.sleep(min(HEAD_POLL, poll))
            if self._guarded(self.client.head) not in (None, seen):
                return

    def _flush(self) -> int:
        """Submits this tick's actions in order of deadline, the nearest first, within the
        agent's share of the block's gas (the rest wait for the next block): market calls one
        transaction each, each run of game calls packed into multicalls by the gas table. A burst
        of market calls (challenges of many wrong results) therefore never holds back a move whose
        clock ends sooner, and once the flush has taken ``FLUSH_SHARE`` of a block the rest of
        it waits for the next block: a burst does not stretch the tick every game waits on.
        Returns how many actions went out."""
        started, client = time.perf_counter(), self.client
        head = client.head()
        block, used = self._budget if self._budget[0] == head else (head, 0)
        budget, sent, txs = int(self.block_gas * cap.BLOCK_SHARE), 0, 0
        queue = sorted(self._queue, key=lambda a: a.deadline)
        waiting: list[Action] = []
        for is_move, run in _runs(queue, lambda a: a.contract is client.game):
            if waiting or (used and used >= budget):
                waiting += run
                continue
            if not is_move:  # claim, commit, challenge, settle, withdraw: alone
                for i, action in enumerate(run):
                    tx = self._guarded(client.prepare, action.key, action.contract or client.market,
                                       action.method, *action.args, value=action.value, stake=action.stake,
                                       deadline=_deadline(action))
                    if tx is None:
                        continue
                    if used and used + tx.gas_limit > budget:
                        waiting += run[i:]
                        break
                    if self._guarded(client.submit, tx) is not None:
                        used, sent, txs = used + tx.gas_limit, sent + 1, txs + 1
                        self._sent([action])
                    if time.perf_counter() - started > FLUSH_SHARE * self.block_time:
                        waiting += run[i + 1:]  # the tick stays within a block: later games' moves wait on it
                        break
                continue
            moves = [(a, client.encode(client.game, a.method, *a.args)) for a in run]
            batches, rest = batching.pack(moves, self.gas_table, budget - used, client.max_calls,
                                          client.max_call_bytes)
            for batch in batches:
                actions = {a.key: a for a, _ in batch.calls}
                if batch.alone:
                    (action, _), = batch.calls
                    tx = self._guarded(client.prepare, action.key, client.game, action.method, *action.args,
                                       stake=action.stake, deadline=_deadline(action))
                else:
                    calls = [a for a, _ in batch.calls]  # the batch's fee cap and hurry: its largest stake, nearest deadline
                    tx = self._guarded(client.prepare_batch, [(a.key, data) for a, data in batch.calls],
                                       stake=max(a.stake for a in calls),
                                       deadline=_deadline(min(calls, key=lambda a: a.deadline)))
                if tx is None:
                    continue
                if self._guarded(client.submit, tx) is not None:
                    used, sent, txs = used + tx.gas_limit, sent + len(tx.keys), txs + 1
                    self._sent([actions[key] for key in tx.keys])
            waiting += [a for a, _ in rest]
        if waiting:
            self.log(f"this block's share of gas is used: {len(waiting)} action(s) wait for the next")
        self._note_backlog(head, waiting)
        self._budget, self._queue = (block, used), []
        self._sending = (txs, time.perf_counter() - started)
        return sent

    def _sent(self, actions: list[Action]) -> None:
        for action in actions:
            self._whats[action.key] = action.what or action.method
            self._methods[action.key] = action.method
            if self.metrics:
                self.metrics.tx_sent(action.method)
            self.log(f"{self._whats[action.key]}: sent")

    def await_receipts(self, timeout: float = 30.0) -> None:
        """Collect the receipts of everything submitted, waiting for them up to ``timeout`` s
        (a local chain mines at once; ``drive`` and ``--once`` wait for them between passes)."""
        deadline = time.monotonic() + timeout
        self._guarded(self._receipts)
        while self.client.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
            self._guarded(self._receipts)

    def _receipts(self) -> None:
        mined_now = self.client.poll()
        for key in self.client.forgotten():  # dropped or replaced: decided again this tick
            self._whats.pop(key, None)
            self._methods.pop(key, None)
        for mined in mined_now:
            share = mined.gas_used // len(mined.keys)
            landed: list[tuple[str, str]] = []
            for key in mined.keys:
                what, method = self._whats.pop(key, mined.method), self._methods.pop(key, mined.method)
                if key in mined.skipped:  # its sub-call failed on chain: forgotten, decided again
                    self.log(f"{what}: skipped in its batch ({mined.skipped[key]}); decided again")
                elif mined.ok:
                    landed.append((key, method))
                    self.log(f"{what} (gas {share if len(mined.keys) > 1 else mined.gas_used:,})")
                else:
                    self.log(f"error: {what}: reverted on chain")
                if self.metrics and (key in mined.skipped or not mined.ok):
                    self.metrics.tx_reverted(method)
            if landed and all(m in GAME_CALLS for _, m in landed):
                self.gas_table.learn([m for _, m in landed], mined.gas_used)
                for key, method in landed:
                    if method in MOVES:  # a batched move: its kind's share, as if sent alone
                        self._note_move_gas(key, method, mined.gas_used if len(mined.keys) == 1 else
                                            self.gas_table.of(method) + batching.TX_BASE_GAS)

    def _note_move_gas(self, key: str, method: str, gas: int) -> None:
        """A mined move's gas, kept for its game's model (a move's key names its game second)."""
        model_id = self.journal.model_of_game(int(key.split(":")[1]))
        if model_id in self._move_gas:
            self._move_gas[model_id].append(gas)
            self.journal.add_move_gas(model_id, method, gas)

    def _guarded(self, action: Callable, *args, **kwargs):
        """Run one step; a revert or a dropped connection is logged (None) and retried next tick."""
        try:
            return action(*args, **kwargs)
        except TxReverted as exc:
            self.log(f"error: {exc}")
            if self.metrics:
                self.metrics.tx_reverted(exc.method)
        except Exception as exc:  # connection failures, and the node refusing a transaction
            from ape.exceptions import ApeException

            if self.metrics:
                self.metrics.rpc_error("unreachable" if is_transient(exc) else "other")
            if is_transient(exc):
                self.log(f"connection lost ({type(exc).__name__}); will retry")
            elif isinstance(exc, ApeException):  # e.g. too little ETH for the bond or the gas
                self.log(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            else:
                raise
        return None

    def send(self, key: str, method: str, *args, contract=None, value: int = 0, what: str = "",
             deadline: int = NO_DEADLINE, stake: int = 0) -> Action:
        """Queue ``method(*args)`` for this tick's batch; ``deadline`` (a timestamp) orders it
        and hurries its fee bumps, ``stake`` (wei it protects) caps its fees."""
        action = Action(key, method, args, contract, value, what, deadline, stake)
        self._queue.append(action)
        return action

    def send_now(self, key: str, method: str, *args, value: int = 0, what: str = ""):
        """Send one market call and wait for it (set-up and operator commands, not the loop)."""
        receipt = self.client.send(key, self.client.market, method, *args, value=value)
        if receipt is not None:
            self.log(f"{what or method} (gas {receipt.gas_used:,})")
        return receipt


def _runs(actions: list[Action], is_move: Callable[[Action], bool]) -> list[tuple[bool, list[Action]]]:
    """``actions`` cut into maximal runs of game calls and of market calls, order kept."""
    runs: list[tuple[bool, list[Action]]] = []
    for action in actions:
        kind = is_move(action)
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(action)
        else:
            runs.append((kind, [action]))
    return runs


def _deadline(action: Action) -> int | None:
    """The timestamp an action must be mined by, for the transaction manager; None: no hurry."""
    return None if action.deadline == NO_DEADLINE else action.deadline
