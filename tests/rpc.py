"""Bare JSON-RPC to the test chain, for suites that make thousands of calls.

Ape's contract wrappers cost tens of milliseconds a call (conversion, middleware, receipts
with traces); the randomized games make ~20 transactions and ~20 invariant checks per game,
so they talk to the same anvil node directly:

- ``Node``: requests and batches of requests over one keep-alive HTTP connection; transactions from
  anvil's unlocked dev accounts (the same mnemonic as ape's test accounts) with a fixed gas
  limit, so nothing is estimated; the chain clock; snapshots.
- ``Abi``: one contract's functions encoded and decoded with ``eth_abi`` from the ABI ape
  compiled, events decoded by name.

A reverted transaction raises ``Reverted`` with the contract's reason string, read back by
replaying the call at the block that mined it.
"""

import http.client
import json
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from eth_abi import decode, encode
from eth_utils import to_checksum_address

from referee.hashing import keccak256

GAS = 25_000_000  # under anvil's 30M block limit; a game move uses at most ~2M
ERROR_SELECTOR = keccak256(b"Error(string)")[:4]


class Reverted(Exception):
    """A call or transaction reverted; ``reason`` is the contract's string ('' if none)."""

    def __init__(self, reason: str):
        super().__init__(reason or "reverted without a reason")
        self.reason = reason


def _reason(error: dict) -> str:
    data = error.get("data")
    if isinstance(data, dict):  # some nodes nest it
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        raw = bytes.fromhex(data[2:])
        if raw[:4] == ERROR_SELECTOR:
            return decode(["string"], raw[4:])[0]
        return ""
    raise AssertionError(f"RPC error without revert data: {error}")


@dataclass
class Receipt:
    gas_used: int
    logs: list


class Node:
    """One anvil node by URL."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.ids = 0
        self.gas_paid = Counter()  # wei of gas per sender, over every transaction sent here
        self.gas_used = Counter()  # gas units per sender
        self.gas_price: int | None = None  # wei per gas for what is sent (None: the node's price)
        # with ``base_fee`` set, every block is mined at that base fee and each transaction pays it
        # plus ``tip`` (EIP-1559): the price a gas refund repays (contracts/modules/gas_meter.vy)
        self.base_fee: int | None = None
        self.tip = 10**9

    def request(self, method: str, params: list):
        [reply] = self.batch([(method, params)])
        return reply

    def batch(self, calls: list[tuple[str, list]]) -> list:
        """Many requests in one round trip; an error reply is returned as its dict."""
        body = []
        for method, params in calls:
            self.ids += 1
            body.append({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        payload = json.dumps(body).encode()
        try:
            self.connection.request("POST", self.path, payload, {"Content-Type": "application/json"})
            response = self.connection.getresponse()
        except (http.client.HTTPException, OSError):  # a dropped keep-alive: one fresh connection
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.connection.request("POST", self.path, payload, {"Content-Type": "application/json"})
            response = self.connection.getresponse()
        replies = json.loads(response.read())
        by_id = {r["id"]: r for r in replies}
        answers = [by_id[b["id"]] for b in body]
        return [{"error": a["error"]} if "error" in a else a["result"] for a in answers]

    # -- reading ---------------------------------------------------------------------------

    def call(self, to: str, data: bytes, sender: str | None = None, block="latest", env: dict | None = None) -> bytes:
        """eth_call (``env``: block fields to override, e.g. its time); raises ``Reverted``."""
        tx = {"to": to, "data": "0x" + data.hex()}
        if sender:
            tx["from"] = sender
        reply = self.request("eth_call", [tx, block, {}, env] if env else [tx, block])
        if isinstance(reply, dict) and "error" in reply:
            raise Reverted(_reason(reply["error"]))
        return bytes.fromhex(reply[2:])

    def balance(self, address: str) -> int:
        return int(self.request("eth_getBalance", [address, "latest"]), 16)

    def timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self.request("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    # -- writing ---------------------------------------------------------------------------

    def send(self, sender: str, to: str, data: bytes, value: int = 0, at: int | None = None) -> Receipt:
        """Mines one transaction from an unlocked account at timestamp ``at`` (default: the latest
        block's, so the chain's clock moves only when told); raises ``Reverted`` (the failed
        transaction is mined all the same, as on a real chain)."""
        tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "value": hex(value), "gas": hex(GAS)}
        if self.gas_price is not None:
            tx["gasPrice"] = hex(self.gas_price)
        if self.base_fee is not None:
            self.request("anvil_setNextBlockBaseFeePerGas", [hex(self.base_fee)])
            tx["maxFeePerGas"], tx["maxPriorityFeePerGas"] = hex(self.base_fee + self.tip), hex(self.tip)
        at = self.timestamp() if at is None else at
        self.request("evm_setNextBlockTimestamp", [at])
        tx_hash = self.request("eth_sendTransaction", [tx])
        if isinstance(tx_hash, dict):
            raise AssertionError(f"eth_sendTransaction refused: {tx_hash['error']}")
        receipt = self.request("eth_getTransactionReceipt", [tx_hash])
        for _ in range(200):  # anvil can answer with the hash a moment before the receipt is stored
            if receipt is not None:
                break
            time.sleep(0.005)
            receipt = self.request("eth_getTransactionReceipt", [tx_hash])
        else:
            raise AssertionError(f"transaction {tx_hash} was not mined")
        block = int(receipt["blockNumber"], 16)
        self.gas_paid[sender.lower()] += int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        self.gas_used[sender.lower()] += int(receipt["gasUsed"], 16)
        if int(receipt["status"], 16) != 1:
            # replay on the state before it, at its block's time: the reason the node saw
            try:
                self.call(to, data, sender, hex(block - 1), {"time": hex(at), "number": hex(block)})
            except Reverted as exc:
                raise Reverted(exc.reason) from None
            raise Reverted("")
        return Receipt(int(receipt["gasUsed"], 16), receipt["logs"])

    def mine(self, at: int) -> None:
        """An empty block at timestamp ``at``: the chain's clock moves on."""
        self.request("evm_setNextBlockTimestamp", [at])
        self.request("evm_mine", [])

    def snapshot(self) -> str:
        return self.request("evm_snapshot", [])

    def revert(self, snapshot: str) -> None:
        assert self.request("evm_revert", [snapshot]) is True


def _type(param: dict) -> str:
    """The canonical ABI type of a parameter, tuples spelled out."""
    kind = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in param["components"]) + ")" + kind[len("tuple"):]
    return kind


def _plain(value):
    """Decoded values as plain Python: addresses checksummed, tuples kept."""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


class Abi:
    """One deployed contract's calldata and return values, from its compiled ABI."""

    def __init__(self, node: Node, address: str, abi: list):
        self.node = node
        self.address = str(address)
        self.functions, self.events = {}, {}
        self.abi = [e if isinstance(e, dict) else e.model_dump(mode="json", by_alias=True) for e in abi]
        for entry in self.abi:
            if entry["type"] == "function":
                inputs = [_type(p) for p in entry["inputs"]]
                selector = keccak256(f"{entry['name']}({','.join(inputs)})".encode())[:4]
                self.functions[entry["name"]] = (selector, inputs, entry["outputs"])
            elif entry["type"] == "event":
                types = [_type(p) for p in entry["inputs"]]
                topic = keccak256(f"{entry['name']}({','.join(types)})".encode())
                self.events[topic] = (entry["name"], entry["inputs"])

    def data(self, name: str, *args) -> bytes:
        selector, inputs, _ = self.functions[name]
        return selector + encode(inputs, list(args))

    def view(self, name: str, *args):
        """A view's return value: a dict for a struct, a scalar for one value, else a tuple."""
        outputs = self.functions[name][2]
        values = _plain(decode([_type(p) for p in outputs], self.node.call(self.address, self.data(name, *args))))
        if len(outputs) == 1 and outputs[0]["type"] == "tuple":
            return dict(zip([c["name"] for c in outputs[0]["components"]], values[0]))
        return values[0] if len(values) == 1 else values

    def transact(self, sender: str, name: str, *args, value: int = 0, at: int | None = None) -> Receipt:
        return self.node.send(sender, self.address, self.data(name, *args), value, at)

    def event_logs(self, receipt: Receipt, name: str) -> list[dict]:
        """The named events this contract emitted in ``receipt``, non-indexed fields decoded."""
        found = []
        for log in receipt.logs:
            if log["address"].lower() != self.address.lower():
                continue
            event, inputs = self.events.get(bytes.fromhex(log["topics"][0][2:]), (None, None))
            if event != name:
                continue
            plain = [p for p in inputs if not p["indexed"]]
            values = decode([_type(p) for p in plain], bytes.fromhex(log["data"][2:]))
            found.append(dict(zip([p["name"] for p in plain], _plain(values))))
        return found
