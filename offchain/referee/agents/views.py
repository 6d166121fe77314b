"""Fast reads of a contract's views: one bare ``eth_call``, decoded with eth_abi.

An agent playing K games reads each game's record (and its job's) every block. Through Ape's
contract wrappers such a read costs tens of milliseconds of Python (transaction objects,
conversions, a code check on every call); here it is the JSON-RPC round trip and a decode.
Values come back as Ape's do where the agents use them: structs as objects with attribute
access, addresses checksummed, ``bytes32`` as ``bytes``.
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
        abi = self.methods[name]
        data = self.selectors[name] + encode([i.canonical_type for i in abi.inputs], list(args))
        raw = self.web3.eth.call({"to": self.address, "data": "0x" + data.hex()})
        values = decode([o.canonical_type for o in abi.outputs], bytes(raw))
        decoded = [_value(o, v) for o, v in zip(abi.outputs, values)]
        return decoded[0] if len(decoded) == 1 else tuple(decoded)
