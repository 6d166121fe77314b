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


@internal
@pure
def dot8(x: Bytes[MAX_ROW16], w: Bytes[MAX_COLS]) -> int256:
    """
    @dev `int8.dot(x, w)` for an `x` typed as the longer int16 row
         buffer (the verifier decodes one witness type for both input
         dtypes): the same SWAR body, its bounds in `int8.vy`'s `@dev`
         and protocol.md 10.6. Reverts with "linear: length mismatch"
         if `len(x) != len(w)` and "linear: empty row" if `k == 0`.
    """
    k: uint256 = len(x)
    assert k == len(w), "linear: length mismatch"
    assert k != 0, "linear: empty row"

    # sum u*v and the lane-wise byte sums S (`int8.vy`'s `@dev`).
    suv: uint256 = 0
    lanes: uint256 = 0
    n_words: uint256 = unsafe_add(k, 31) >> 5
    offset: uint256 = 0
    u: uint256 = 0
    v: uint256 = 0
    for _: uint256 in range(n_words, bound=i8.MAX_WORDS):
        end: uint256 = unsafe_add(offset, 32)
        if end <= k:
            # A full word.
            u = convert(extract32(x, offset), uint256) ^ i8.K80
            v = convert(extract32(w, offset), uint256) ^ i8.K80
        elif k >= 32:
            # The tail, `r = k % 32` new bytes: read the last 32 bytes
            # and keep the low r bytes (the rest were counted already).
            keep: uint256 = unsafe_sub(i8.ONE << unsafe_mul(unsafe_sub(k, offset), 8), 1)
            u = (convert(extract32(x, unsafe_sub(k, 32)), uint256) ^ i8.K80) & keep
            v = (convert(extract32(w, unsafe_sub(k, 32)), uint256) ^ i8.K80) & keep
        else:
            # A row shorter than a word (k < 32, the only iteration,
            # `u = v = 0` here): assemble it byte by byte at the top of
            # the word; the bytes below stay 0.
            for j: uint256 in range(k, bound=31):
                at: uint256 = unsafe_mul(unsafe_sub(31, j), 8)
                u = u | (convert(convert(slice(x, j, 1), bytes1), uint256) ^ 128) << at
                v = v | (convert(convert(slice(w, j, 1), bytes1), uint256) ^ 128) << at

        # v' = v with its eight 32-bit lanes reversed (point 2).
        v = ((v >> 32) & i8.M32) | ((v & i8.M32) << 32)
        v = ((v >> 64) & i8.M64) | ((v & i8.M64) << 64)
        v = (v >> 128) | (v << 128)

        # Each product's top lane is an 8-lane dot product < 2**20
        # (point 4); the total stays < 2**31.
        suv = unsafe_add(
            suv,
            unsafe_add(
                unsafe_add(unsafe_mul(u & i8.M, v & i8.M) >> 224, unsafe_mul((u >> 8) & i8.M, (v >> 8) & i8.M) >> 224),
                unsafe_add(unsafe_mul((u >> 16) & i8.M, (v >> 16) & i8.M) >> 224, unsafe_mul((u >> 24) & i8.M, (v >> 24) & i8.M) >> 224),
            ),
        )
        # Byte sums (point 5): first 16 lanes of 16 bits holding the sum
        # of two bytes of u and two of v (at most 4 * 255 = 1020), then
        # 8 lanes of 32 bits holding at most 8 * 255 = 2040 per word,
        # 1044480 over all words: no carries between lanes. Since `v`
        # is only permuted by whole lanes, its byte sum is unchanged.
        pairs: uint256 = unsafe_add(
            unsafe_add(u & i8.M16, (u >> 8) & i8.M16),
            unsafe_add(v & i8.M16, (v >> 8) & i8.M16),
        )
        lanes = unsafe_add(lanes, unsafe_add(pairs & i8.M32L, (pairs >> 16) & i8.M32L))
        offset = end

    # sum u + sum v, < 2**24 (point 5).
    byte_sum: uint256 = unsafe_mul(lanes, i8.ONES) >> 224
    # Point 7: every term below is < 2**31, so the int256 arithmetic
    # is exact.
    return unsafe_sub(
        unsafe_add(convert(suv, int256), convert(unsafe_mul(k, 16384), int256)),
        convert(unsafe_mul(byte_sum, 128), int256),
    )
