"""The agents' bare view reads (``referee.agents.views``) decode a static record by slicing its
32-byte words; that must give exactly what eth_abi's decoder gives, for every view the agents
read, on random values of every field (addresses checksummed, signed ints, bools, bytesN)."""

import random

from eth_abi import encode
from eth_utils import to_checksum_address

from referee.agents.views import Views, _value, _words


def _random_value(abi_type, rng: random.Random):
    if abi_type.type == "tuple":
        return tuple(_random_value(c, rng) for c in abi_type.components)
    base = abi_type.type
    if base == "address":
        return to_checksum_address(rng.randbytes(20))
    if base == "bool":
        return rng.random() < 0.5
    if base.startswith("uint"):
        return rng.randrange(2 ** int(base[4:] or 256))
    if base.startswith("int"):
        bits = int(base[3:] or 256)
        return rng.randrange(-2 ** (bits - 1), 2 ** (bits - 1))
    return rng.randbytes(int(base[5:]))


def _views(contract_type) -> Views:
    views = Views.__new__(Views)  # the decoder only: no node needed
    views.methods = {abi.name: abi for abi in contract_type.view_methods}
    return views


def _eth_abi(views: Views, name: str, raw: bytes):
    from eth_abi import decode

    outputs = views.methods[name].outputs
    decoded = [_value(o, v) for o, v in zip(outputs, decode([o.canonical_type for o in outputs], raw))]
    return decoded[0] if len(decoded) == 1 else tuple(decoded)


def test_static_records_decode_as_eth_abi_does(project):
    rng = random.Random(5)
    checked = set()
    for contract in (project.DisputeGame, project.JobMarket, project.ModelRegistry):
        views = _views(contract.contract_type)
        for name, abi in views.methods.items():
            if None in [_words(o) for o in abi.outputs]:
                continue  # a dynamic output (a job's input bytes): eth_abi's decoder reads it
            for _ in range(20):
                values = [_random_value(o, rng) for o in abi.outputs]
                raw = encode([o.canonical_type for o in abi.outputs], values)
                assert views._decode(name, raw) == _eth_abi(views, name, raw), (contract, name)
            checked.add(name)
    assert {"games", "job", "challenge_of"} <= checked  # what the agents read every block
