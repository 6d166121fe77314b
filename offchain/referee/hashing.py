"""keccak256 and the byte encodings of docs/protocol.md section 1.

``enc`` is ``abi.encode`` of static 32-byte words: what the contracts hash with
``concat(convert(x, bytes32), ...)``.
"""

try:
    from sha3 import keccak_256 as _keccak_256  # safe-pysha3: C keccak, ~2 us a call (pycryptodome: ~20 us)
    KECCAK = "safe-pysha3"
except ImportError:  # a bare machine (e.g. a GPU host with only torch): same hashes, slower
    try:
        from Crypto.Hash import keccak as _crypto_keccak

        def _keccak_256(data: bytes):
            return _crypto_keccak.new(digest_bits=256, data=data)
        KECCAK = "pycryptodome"
    except ImportError:
        from .keccak_py import keccak256 as _pure

        class _keccak_256:  # noqa: N801 (mimics the hashlib-style constructor above)
            def __init__(self, data: bytes):
                self._digest = _pure(bytes(data))

            def digest(self) -> bytes:
                return self._digest
        KECCAK = "pure Python"

WORD = 32
ZERO32 = bytes(WORD)


def keccak256(data: bytes) -> bytes:
    """keccak256 as the EVM computes it (original Keccak padding, not NIST SHA3)."""
    return _keccak_256(data).digest()


def word(value: int | bytes) -> bytes:
    """One 32-byte big-endian word: an int (two's complement if negative) or 32 raw bytes."""
    if isinstance(value, bytes):
        if len(value) != WORD:
            raise ValueError(f"a word is 32 bytes, got {len(value)}")
        return value
    return (value % (1 << 256)).to_bytes(WORD, "big")


def enc(*values: int | bytes) -> bytes:
    """The words of ``values`` concatenated (Solidity ``abi.encode`` of static values)."""
    return b"".join(word(v) for v in values)


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def from_hex(text: str) -> bytes:
    """Parse a 0x-prefixed hex string."""
    if not isinstance(text, str) or not text.startswith("0x"):
        raise ValueError(f"expected a 0x-prefixed hex string, got {text!r}")
    return bytes.fromhex(text[2:])
