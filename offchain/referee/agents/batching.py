"""How an agent packs the moves of all its games into few transactions, and what each costs.

A move of a game travels as one sub-call of ``DisputeGame.multicall``: a batch pays one
transaction's base fee and one signature, nonce and send for up to ``MAX_CALLS`` moves, so an
agent's throughput is no longer its transactions per second (about 10 here) but what a block's
gas share holds. To fill that share without an estimate per move, ``GasTable`` keeps the gas
one move of each kind (``bisect``, ``step``, ``timeout``, ...) takes, from the receipts of
what was mined, and ``pack`` cuts the queue, nearest deadline first, into batches that fit:

- each batch at most ``max_calls`` moves of at most ``max_call_bytes`` calldata each (a longer
  move, a ``step`` over rows wider than the contract's ``BATCH_COLS``, goes in a transaction of
  its own), and at most ``MAX_BATCH_GAS`` by the table, so that its estimate stays under a
  transaction's gas cap (EIP-7825: 2**24);
- all batches together at most the gas ``left`` in this block's share; what does not fit waits
  for the next block (the agent's loop ticks at every new head).

The batch itself is estimated once when it is prepared (``ChainClient.prepare_batch``): the
table only decides how many moves go in it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

TX_BASE_GAS = 21_000  # what every transaction pays before its calldata
# A multicall's own cost over its moves: the base fee and the memory Vyper reserves for the
# whole argument (64 calls of 2,980 bytes); measured 40k-45k over 8 bisects here (2,340-byte calls).
BATCH_BASE_GAS = TX_BASE_GAS + 60_000
MAX_BATCH_GAS = 12_000_000  # by the table; the estimate x 1.2 + 20k stays under 2**24


@dataclass
class GasTable:
    """Gas per move of each kind (a DisputeGame method), learnt from receipts; ``default`` for
    a kind not yet seen (an upper bound: the capacity's largest move)."""

    default: int
    gas: dict[str, int] = field(default_factory=dict)

    def of(self, method: str) -> int:
        return self.gas.get(method, self.default)

    def seed(self, method: str, gas: int) -> None:
        """A move's gas from the journal (a restart keeps what the last run learnt)."""
        self.gas[method] = max(self.gas.get(method, 0), gas)

    def learn(self, methods: list[str], gas_used: int) -> None:
        """A mined transaction of ``methods`` (one move alone, or a multicall's landed moves)
        took ``gas_used``: a kind seen alone (or with known kinds only) gets its measured share,
        the largest seen; a mix whose table sum fell short is scaled up, never down."""
        if not methods:
            return
        work = max(gas_used - (BATCH_BASE_GAS if len(methods) > 1 else TX_BASE_GAS), 0)
        unknown = [m for m in methods if m not in self.gas]
        known_sum = sum(self.gas[m] for m in methods if m in self.gas)
        if unknown:
            each = max(work - known_sum, 0) // len(unknown)
            for method in set(unknown):
                self.gas[method] = each or self.default
            return
        if len(set(methods)) == 1:
            self.gas[methods[0]] = max(self.gas[methods[0]], work // len(methods))
        elif known_sum and work > known_sum:
            for method in set(methods):
                self.gas[method] = self.gas[method] * work // known_sum

    def largest(self) -> int:
        return max(self.gas.values(), default=0)


@dataclass
class Batch:
    """Moves that go out in one transaction: (action, calldata) in deadline order."""

    calls: list = field(default_factory=list)
    gas: int = 0  # by the table

    @property
    def alone(self) -> bool:
        return len(self.calls) == 1


def pack(moves: Iterable, table: GasTable, left: int, max_calls: int, max_call_bytes: int,
         max_batch_gas: int = MAX_BATCH_GAS) -> tuple[list[Batch], list]:
    """Cut ``moves`` ((action, calldata), nearest deadline first) into batches within ``left``
    gas in all; returns (batches, the moves that wait for the next block). The first move always
    goes out (a block's share is never too small for one move), and the order is kept: once one
    move does not fit, it and every later one wait."""
    batches: list[Batch] = []
    current, total = Batch(), 0
    moves = list(moves)
    for i, (action, data) in enumerate(moves):
        gas = table.of(action.method) + (TX_BASE_GAS if len(data) > max_call_bytes else 0)
        if total and total + gas > left:
            return _close(batches, current), moves[i:]
        total += gas
        if len(data) > max_call_bytes:  # too long for a multicall: a transaction of its own
            batches.append(Batch([(action, data)], gas))
            continue
        if len(current.calls) == max_calls or (current.calls and current.gas + gas > max_batch_gas):
            batches.append(current)
            current = Batch()
        current.calls.append((action, data))
        current.gas += gas
    return _close(batches, current), []


def _close(batches: list[Batch], current: Batch) -> list[Batch]:
    return batches + [current] if current.calls else batches
