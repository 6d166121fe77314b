#pragma version ~=0.4.3
"""
@title The Linear Op
@custom:contract-name linear
@notice One output element of a `linear` op and its weight leaf
        (section 4 of `docs/protocol.md`):
        `y = requantize(b + sum_j x[j] * W[j], m, s, relu)` and
        `WL = H(enc(b, m, s) ‖ packed W)`.
@dev Stateless: import it (`from ..modules import linear`); it needs no
     `initializes:`. `output_element` is the int8 element of section 4
     on an input row and a weight row proven against committed roots;
     the game's one-step check (section 7.4),
     `contracts/verifiers/LinearVerifier.vy`, computes the accumulator
     of an int8 or int16 row itself and turns it into the element with
     `finish`, by the flags `wide` and `i16` (protocol.md 5.0).
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
