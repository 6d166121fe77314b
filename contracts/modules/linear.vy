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
     7.4) is `output_element` on the challenger's input row and weight
     row, after both were proven against committed roots.
"""


# @dev The exact dot product of two packed int8 rows. Imported under an
# alias: `int8` is a builtin type name, and Vyper 0.4.3 refuses a module
# bound to it ("NamespaceCollision: 'int8' has already been declared").
from . import int8 as i8


# @dev The requantization of section 4.
from . import requant


# @dev The longest packed row (protocol.md section 8).
MAX_COLS: constant(uint256) = 16384


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
