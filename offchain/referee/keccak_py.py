"""Keccak-256 in plain Python (the original Keccak padding, as the EVM computes it).

Only a fallback for machines without a C keccak (safe-pysha3 or pycryptodome), such as a GPU
host with nothing but its own torch: about 1000x slower, fine for checks, not for traces.
Written from the Keccak reference (FIPS 202's permutation with the 0x01 domain padding).
"""

_ROUND_CONSTANTS = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000, 0x000000000000808B,
    0x0000000080000001, 0x8000000080008081, 0x8000000000008009, 0x000000000000008A, 0x0000000000000088,
    0x0000000080008009, 0x000000008000000A, 0x000000008000808B, 0x800000000000008B, 0x8000000000008089,
    0x8000000000008003, 0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
]
_ROTATIONS = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56],
              [27, 20, 39, 8, 14]]  # _ROTATIONS[x][y]
_MASK = (1 << 64) - 1
RATE = 136  # bytes: 1600 - 2 * 256 bits


def _rol(v: int, n: int) -> int:
    return ((v << n) | (v >> (64 - n))) & _MASK if n else v


def _permute(a: list[int]) -> None:
    """Keccak-f[1600] in place on 25 lanes, lane (x, y) at index x + 5 y."""
    for rc in _ROUND_CONSTANTS:
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
        b = [0] * 25
        for x in range(5):
            for y in range(5):
                b[y + 5 * ((2 * x + 3 * y) % 5)] = _rol(a[x + 5 * y] ^ d[x], _ROTATIONS[x][y])
        for x in range(5):
            for y in range(5):
                a[x + 5 * y] = b[x + 5 * y] ^ (~b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y])
        a[0] ^= rc


def keccak256(data: bytes) -> bytes:
    free = RATE - len(data) % RATE  # 1 ... RATE bytes of padding
    padded = bytearray(data) + (b"\x81" if free == 1 else b"\x01" + bytes(free - 2) + b"\x80")
    state = [0] * 25
    for start in range(0, len(padded), RATE):
        block = padded[start:start + RATE]
        for i in range(RATE // 8):
            state[i] ^= int.from_bytes(block[8 * i:8 * i + 8], "little")
        _permute(state)
    return b"".join(state[i].to_bytes(8, "little") for i in range(4))
