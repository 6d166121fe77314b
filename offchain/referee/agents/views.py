"""Fast reads of a contract's views: one bare ``eth_call``, decoded with eth_abi.

An agent playing K games reads each game's record (and its job's) every block. Through Ape's
contract wrappers such a read costs tens of milliseconds of Python (transaction objects,
conversions, a code check on every call); here it is the JSON-RPC round trip and a decode.
Values come back as Ape's do where the agents use them: structs as objects with attribute
access, addresses checksummed, ``bytes32`` as ``bytes``. ``many`` reads one view for many
arguments (every game's record) in one JSON-RPC batch request: one round trip, not K.
"""

from types import SimpleNamespace

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address


def _value(abi_type, value):
    if abi_type.type == "address":
        return to_checksum_address(value)
    if abi_type.type == "tuple":
        return SimpleNamespace(**{c.name: _value(c, v) for c, v in zip(abi_type.components, value)})
    return value


class Views:
    """The view functions of one deployed contract (an Ape ``ContractInstance``), read bare."""

    def __init__(self, web3, contract):
        self.web3, self.address = web3, str(contract.address)
        self.methods = {abi.name: abi for abi in contract.contract_type.view_methods}
        self.selectors = {name: keccak(text=abi.selector)[:4] for name, abi in self.methods.items()}

    def __call__(self, name: str, *args):
        """``name(*args)`` at the latest block; a revert raises web3's ``ContractLogicError``."""
        return self._decode(name, self.web3.eth.call(self._call(name, args)))

    def many(self, name: str, arg_lists: list[tuple], chunk: int = 200) -> list:
        """``name(*args)`` for each of ``arg_lists``, in one batch request per ``chunk`` calls,
        all at the same block (the latest when the first batch is read)."""
        if not arg_lists:
            return []
        block = self.web3.eth.block_number
        out = []
        for start in range(0, len(arg_lists), chunk):
            with self.web3.batch_requests() as batch:
                for args in arg_lists[start:start + chunk]:
                    batch.add(self.web3.eth.call(self._call(name, args), block))
                out += [self._decode(name, raw) for raw in batch.execute()]
        return out

    def _call(self, name: str, args) -> dict:
        abi = self.methods[name]
        data = self.selectors[name] + encode([i.canonical_type for i in abi.inputs], list(args))
        return {"to": self.address, "data": "0x" + data.hex()}

    def _decode(self, name: str, raw):
        abi = self.methods[name]
        values = decode([o.canonical_type for o in abi.outputs], bytes(raw))
        decoded = [_value(o, v) for o, v in zip(abi.outputs, values)]
        return decoded[0] if len(decoded) == 1 else tuple(decoded)
