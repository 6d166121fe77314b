"""keccak256 and the byte encodings of docs/protocol.md section 1.

``keccak256`` hashes one message; ``keccak256_many`` hashes many equal-length messages lying
back to back (every row of a tensor, every pair of a Merkle level) in one call. The batch
call runs in ``native/keccak.c`` (built by ``make setup``; SIMD lanes and threads, the GIL
released) when that library is built and agrees with the per-message keccak on a self-test
at import; otherwise it hashes message by message with the per-message keccak: the same
bits, slower. ``describe()`` says which path is in use; ``REFEREE_NATIVE_KECCAK=0`` forces
the per-message path, ``REFEREE_KECCAK_THREADS=N`` sets the threads of the batch call.

``enc`` is ``abi.encode`` of static 32-byte words: what the contracts hash with
``concat(convert(x, bytes32), ...)``.
"""

import ctypes
import os
from pathlib import Path

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

_per_call = _keccak_256  # rebound below to the native library on a host without safe-pysha3
WORD = 32
ZERO32 = bytes(WORD)
NATIVE_LIBRARY = Path(__file__).resolve().parent / "native" / "keccak.so"
NATIVE_VERSION = 1  # keccak.c's VERSION: a library built from other source is not loaded
_LANE_NAMES = {8: "AVX-512, 8 lanes", 4: "AVX2, 4 lanes", 1: "1 lane"}


def _default_threads() -> int:
    """REFEREE_KECCAK_THREADS, else the cores this process may run on."""
    if os.environ.get("REFEREE_KECCAK_THREADS", "").isdigit() and int(os.environ["REFEREE_KECCAK_THREADS"]) > 0:
        return int(os.environ["REFEREE_KECCAK_THREADS"])
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


THREADS = _default_threads()


def _per_message(view: memoryview, length: int, count: int) -> bytes:
    return b"".join(_per_call(view[k * length:(k + 1) * length]).digest() for k in range(count))


def _load_native():
    """(the ctypes library, its best lane count) or (None, why not)."""
    if os.environ.get("REFEREE_NATIVE_KECCAK", "1") == "0":
        return None, "off (REFEREE_NATIVE_KECCAK=0)"
    source = NATIVE_LIBRARY.with_name("keccak.c")
    if not NATIVE_LIBRARY.exists():
        return None, "not built (make setup builds it with cc)"
    if source.exists() and NATIVE_LIBRARY.stat().st_mtime < source.stat().st_mtime:
        return None, "stale: keccak.c is newer (make setup rebuilds it)"
    try:
        lib = ctypes.CDLL(str(NATIVE_LIBRARY))  # CDLL: every call releases the GIL
        if lib.referee_keccak_version() != NATIVE_VERSION:
            return None, f"{NATIVE_LIBRARY.name} is another version (make setup rebuilds it)"
    except (OSError, AttributeError) as exc:
        return None, f"cannot load {NATIVE_LIBRARY.name}: {exc}"
    lib.referee_keccak256_many.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t,
                                           ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.referee_keccak256_many.restype = ctypes.c_int
    best = lib.referee_keccak_best_lanes()
    # Self-test every lane width this CPU runs against the per-message keccak: 9 messages fill
    # one 8-lane group and leave one for the 1-lane code; lengths around the 136-byte rate.
    for length in (0, 135, 136, 300):
        data = bytes((7 * i + length) % 251 for i in range(9 * length))
        want = _per_message(memoryview(data), length, 9)
        for lanes in sorted({1, min(best, 4), best}):
            out = ctypes.create_string_buffer(9 * WORD)
            if lib.referee_keccak256_many(data, length, length, 9, out, 2, lanes) != lanes or out.raw != want:
                return None, f"self-test failed ({lanes} lanes, {length}-byte messages): not used"
    return lib, best


_NATIVE, _NATIVE_STATE = _load_native()


def describe() -> str:
    """Which keccak runs: the batch path (native, or per message and why) and the per-message one."""
    if _NATIVE is None:
        return f"{KECCAK} per message, batches too (native keccak {_NATIVE_STATE})"
    return f"native C batches ({_LANE_NAMES[_NATIVE_STATE]}, {THREADS} threads), {KECCAK} per message"


def keccak256(data: bytes) -> bytes:
    """keccak256 as the EVM computes it (original Keccak padding, not NIST SHA3)."""
    return _per_call(data).digest()


def keccak256_many(data, length: int, count: int | None = None, threads: int | None = None,
                   lanes: int = 0) -> bytes:
    """keccak256 of each of ``count`` consecutive ``length``-byte messages of ``data`` (bytes or
    any contiguous buffer, e.g. a numpy view of a tensor: not copied), their 32-byte digests
    concatenated. ``count`` defaults to ``len(data) // length``; ``threads`` to all cores;
    ``lanes`` (tests only) pins the native SIMD width."""
    view = memoryview(data).cast("B")
    if count is None:
        if length <= 0:
            raise ValueError("count is needed for empty messages")
        count = len(view) // length
    if count < 0 or length < 0 or count * length > len(view):
        raise ValueError(f"{count} messages of {length} bytes do not fit {len(view)} bytes")
    if _NATIVE is None or count == 0:
        return _per_message(view, length, count)
    out = ctypes.create_string_buffer(count * WORD)
    if isinstance(data, bytes) or view.readonly:
        buffer = data if isinstance(data, bytes) else view.tobytes()
    else:
        buffer = (ctypes.c_char * len(view)).from_buffer(view)
    if _NATIVE.referee_keccak256_many(buffer, length, length, count, out, threads or THREADS, lanes) < 0:
        raise ValueError("native keccak refused its arguments")
    return out.raw


class _NativeKeccak:
    """The per-message keccak of a bare host that has the library: one native call (~1 us)
    beats pycryptodome (~20 us) and pure Python (~1 ms)."""

    def __init__(self, data: bytes):
        self._data = data

    def digest(self) -> bytes:
        return keccak256_many(self._data, len(self._data), 1, threads=1)


if _NATIVE is not None and KECCAK != "safe-pysha3":
    _per_call, KECCAK = _NativeKeccak, "native C"


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
