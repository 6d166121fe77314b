#pragma version ~=0.4.3
"""
@title The Linear Op
@custom:contract-name linear
@notice One output element of a `linear` op and its weight leaf
        (section 4 of `docs/protocol.md`):
        `y = requantize(b + sum_j x[j] * W[j], m, s, relu)` and
        `WL = H(enc(b, m, s) ‖ packed W)`.
@dev Stateless: import it (`from ..modules import linear`); it needs no
     `initializes:`. The one-step check of the dispute game (section
     7.4), done by `contracts/verifiers/LinearVerifier.vy`, is
     `output_element` on the challenger's input row and weight row,
     after both were proven against committed roots; `dot16` and
     `finish` add what flags `i16` and `wide` and an
     `int16` input need (protocol.md 5.0).
"""


# @dev The exact dot product of two packed int8 rows. Imported under an
# alias: `int8` is a builtin type name, and Vyper 0.4.3 refuses a module
# bound to it ("NamespaceCollision: 'int8' has already been declared").
from . import int8 as i8


# @dev The requantization of section 4.
from . import requant


# @dev The longest packed row (protocol.md section 8).
MAX_COLS: constant(uint256) = 16384


# @dev The longest packed int16 row: MAX_COLS elements of two bytes.
MAX_ROW16: constant(uint256) = 2 * MAX_COLS


# @dev Int16 elements per 32-byte word, and the chunks of a row.
PER_WORD16: constant(uint256) = 16
MAX_CHUNKS16: constant(uint256) = MAX_COLS // PER_WORD16


# @dev The op's flags (protocol.md section 5).
FLAG_RELU: constant(uint256) = 1
FLAG_WIDE: constant(uint256) = 2
FLAG_I16: constant(uint256) = 128


# @dev The int16 output range `rq16` clamps to (protocol.md 5.0).
INT16_MIN: constant(int256) = -(2**15)
INT16_MAX: constant(int256) = 2**15 - 1


# @dev The bias range, int32 (protocol.md section 4).
MIN_BIAS: constant(int256) = -(2**31)
MAX_BIAS: constant(int256) = 2**31 - 1


@internal
@pure
def weight_leaf(bias: int256, multiplier: int256, shift_: uint256, w: Bytes[MAX_COLS]) -> bytes32:
    """
    @dev Weight leaf `WL[c] = H(enc(b[c], m[c], s[c]) ‖ packed W[c, :])`,
         `96 + k` bytes hashed (section 4): `b` as a signed word (two's
         complement), `m` and `s` as words. Checks no range: a leaf
         only binds the values; `output_element` checks them.
    @param bias The channel bias `b[c]`.
    @param multiplier The channel multiplier `m[c]`.
    @param shift_ The channel shift `s[c]`.
    @param w The packed weight row `W[c, :]`, `k` bytes.
    @return bytes32 The weight leaf.
    """
    return keccak256(concat(convert(bias, bytes32), convert(multiplier, bytes32), convert(shift_, bytes32), w))


@internal
@pure
def output_element(
    x: Bytes[MAX_COLS],
    w: Bytes[MAX_COLS],
    bias: int256,
    multiplier: int256,
    shift_: uint256,
    relu: bool,
) -> int256:
    """
    @dev One output element `y[i, c]` of a `linear` op (section 4):
         `requantize(b + sum_j x[j] * W[c, j], m, s, relu)`, in exact
         integer arithmetic. Reverts with "linear: bias out of range"
         if `bias` is not an int32, as `int8.dot` ("int8: length
         mismatch", "int8: empty row") and as `requant.requantize`
         ("requant: ..."), which also rejects an accumulator outside
         the int32 range (a model breaking the accumulator bound).
    @param x The packed input row `x[i, :]`, `k` bytes.
    @param w The packed weight row `W[c, :]`, `k` bytes.
    @param bias The channel bias `b[c]`, in [-2**31, 2**31 - 1].
    @param multiplier The channel multiplier `m[c]`, in [1, 2**31 - 1].
    @param shift_ The channel shift `s[c]`, in [1, 62].
    @param relu Whether the op applies ReLU.
    @return int256 The output element, in [-128, 127].
    """
    # INVARIANT: the bias is an int32; with `|dot| <= 16384 * 128**2 =
    # 2**28` the sum is far inside int256 (`requantize` then checks
    # that it is an int32).
    assert bias >= MIN_BIAS and bias <= MAX_BIAS, "linear: bias out of range"
    return requant.requantize(unsafe_add(bias, i8.dot(x, w)), multiplier, shift_, relu)


@internal
@pure
def _word_at(b: Bytes[MAX_ROW16], offset: uint256) -> uint256:
    """
    @dev The 32 bytes of `b` from `offset` (`offset < len(b)`), bytes
         past the end read as zero: a full word, the tail word shifted
         up (the row is at least a word long), or a short row assembled
         byte by byte.
    """
    n: uint256 = len(b)
    if offset + 32 <= n:
        return convert(extract32(b, offset), uint256)
    if n >= 32:
        # The last 32 bytes, shifted so that byte `offset` comes first.
        return convert(extract32(b, n - 32), uint256) << (8 * (offset + 32 - n))
    word: uint256 = 0
    for j: uint256 in range(n, bound=31):
        if j >= offset:
            byte: uint256 = convert(convert(slice(b, j, 1), bytes1), uint256)
            word = word | (byte << (8 * (31 - (j - offset))))
    return word


@internal
@pure
def dot16(x: Bytes[MAX_ROW16], w: Bytes[MAX_COLS]) -> int256:
    """
    @dev The exact dot product `sum_j x[j] * w[j]` of a packed int16
         row (two bytes big-endian per element, section 3) and a packed
         int8 row of the same element count `k`. Reverts with
         "linear: length mismatch" if `len(x) != 2 * len(w)` and with
         "linear: empty row" if `k == 0`.
    @return int256 The exact dot product, `|result| <= 16384 * 2**15 * 128 = 2**36`.
    """
    k: uint256 = len(w)
    assert len(x) == 2 * k, "linear: length mismatch"
    assert k != 0, "linear: empty row"
    acc: int256 = 0
    # Sixteen int16 elements (one word of x, half a word of w) a chunk.
    for i: uint256 in range(unsafe_add(k, 15) >> 4, bound=MAX_CHUNKS16):
        xw: uint256 = self._word_at(x, i << 5)
        ww: uint256 = self._word_at(w, i << 4)
        n: uint256 = min(PER_WORD16, unsafe_sub(k, i << 4))
        for j: uint256 in range(n, bound=PER_WORD16):
            # Arithmetic shifts on int256 sign-extend the element.
            xi: int256 = convert(convert(xw << (j << 4), bytes32), int256) >> 240
            wi: int256 = convert(convert(ww << (j << 3), bytes32), int256) >> 248
            # |xi * wi| <= 2**22 and at most 2**14 terms: exact.
            acc = unsafe_add(acc, unsafe_mul(xi, wi))
    return acc


@internal
@pure
def finish(acc: int256, multiplier: int256, shift_: uint256, flags: uint256) -> int256:
    """
    @dev The output element from its accumulator by the op's flags
         (protocol.md 5.0): `wide` gives `acc` itself (an int32; `m`
         and `s` must still be in range), `i16` gives `rq16`, neither
         gives section 4's `rq`; ReLU after the clamp. Reverts with the
         `requant:` reasons for `m`, `s` or `acc` out of range.
    """
    # `requantize` checks s, m and the int32 accumulator, in that order.
    y8: int256 = requant.requantize(acc, multiplier, shift_, flags & FLAG_RELU != 0)
    if flags & FLAG_WIDE != 0:
        return acc
    if flags & FLAG_I16 == 0:
        return y8
    # rq16: the same rounding, the 16-bit clamp (ranges checked above).
    y: int256 = unsafe_add(unsafe_mul(acc, multiplier), 1 << unsafe_sub(shift_, 1)) >> shift_
    y = min(max(y, INT16_MIN), INT16_MAX)
    if flags & FLAG_RELU != 0:
        y = max(y, 0)
    return y
