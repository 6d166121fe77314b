#pragma version ~=0.4.3
"""
@title Int8 Requantization
@custom:contract-name requant
@notice Maps an exact integer accumulator of a `linear` op back to
        int8: `y = clamp((acc * m + 2**(s - 1)) >> s, -128, 127)`,
        then `max(y, 0)` if ReLU is on. This is section 4 of
        `docs/protocol.md`, bit for bit; the golden vectors in
        `tests/vectors/requant.json` are the proof of agreement
        with the off-chain executors.
@dev Stateless: import it (`from ..modules import requant`) and call
     `requant.requantize(...)`; it needs no `initializes:`.

     Rounding is round half toward +infinity of `acc * m / 2**s`:
     `>>` is an arithmetic (flooring) right shift and the added
     `2**(s - 1)` is one half. Never use `//` or `/` here: Vyper's
     signed `//` truncates toward zero, which differs for negative
     `acc * m`.

     `>>` on `int256` in Vyper 0.4.3 compiles to the EVM `SAR`
     opcode (arithmetic shift, rounds toward -infinity):
     `vyper/codegen/expr.py`, `Expr.handle_binop`, selects `sar` when
     the left operand's type is signed and `shr` otherwise. The
     compiled mock contains `SAR` and no `SHR` on this path, and the
     vectors with negative `acc * m` (e.g. `acc = -3, m = 1, s = 1`
     -> `-1`) confirm it at runtime.

     Ranges (protocol.md section 4 and section 8): `s` in [1, 62],
     `m` in [1, 2**31 - 1], `acc` in the int32 range
     [-2**31, 2**31 - 1] (the model compiler's accumulator bound
     gives `|acc| < 2**31`; accepting the int32 minimum as well is
     harmless). Within these, `|acc * m| + 2**61 < 2**63`, so every
     intermediate fits in int64 and, trivially, in int256.
"""


# @dev The smallest and largest allowed shift `s` (protocol.md
# section 8): `2**(s - 1)` and `acc * m` must fit in int64.
MIN_SHIFT: constant(uint256) = 1
MAX_SHIFT: constant(uint256) = 62


# @dev The allowed multiplier range `[1, 2**31 - 1]` (positive int32).
MIN_MULTIPLIER: constant(int256) = 1
MAX_MULTIPLIER: constant(int256) = 2**31 - 1


# @dev The allowed accumulator range, the int32 range.
MIN_ACC: constant(int256) = -(2**31)
MAX_ACC: constant(int256) = 2**31 - 1


# @dev The int8 output range the result is clamped to.
INT8_MIN: constant(int256) = -128
INT8_MAX: constant(int256) = 127


@internal
@pure
def requantize(acc: int256, multiplier: int256, shift_: uint256, relu: bool) -> int256:
    """
    @dev Requantizes one accumulator to an int8 value, as section 4
         of `docs/protocol.md`: `clamp((acc * m + 2**(s - 1)) >> s,
         -128, 127)`, then `max(y, 0)` if `relu`. Reverts with
         `"requant: ..."` if an argument is out of its range.
    @param acc The exact accumulator `b[c] + sum_j x[j] * W[c, j]`,
           in [-2**31, 2**31 - 1].
    @param multiplier The channel multiplier `m`, in [1, 2**31 - 1].
    @param shift_ The channel shift `s`, in [1, 62] (named `shift_`:
           `shift` is a reserved builtin name in Vyper 0.4.3).
    @param relu Whether the op applies ReLU (after the clamp).
    @return int256 The requantized value, in [-128, 127]
            ([0, 127] if `relu`).
    """
    # INVARIANT: `2**(s - 1)` is a whole half and `acc * m` fits in int64.
    assert shift_ >= MIN_SHIFT and shift_ <= MAX_SHIFT, "requant: shift out of range"
    # INVARIANT: the multiplier is a positive int32.
    assert multiplier >= MIN_MULTIPLIER and multiplier <= MAX_MULTIPLIER, "requant: multiplier out of range"
    # INVARIANT: the accumulator is an int32.
    assert acc >= MIN_ACC and acc <= MAX_ACC, "requant: accumulator out of range"

    # With the ranges above, `|acc * m| <= 2**62 - 2**31` and the
    # half is at most `2**61`: no intermediate comes near int256's
    # bounds, so the unchecked operations cannot overflow.
    half: int256 = 1 << unsafe_sub(shift_, 1)
    scaled: int256 = unsafe_add(unsafe_mul(acc, multiplier), half)
    # Arithmetic (flooring) shift: `>>` on a signed `int256` is the
    # EVM `SAR` in Vyper 0.4.3 (see the module's `@dev`).
    y: int256 = scaled >> shift_
    y = min(max(y, INT8_MIN), INT8_MAX)
    if relu:
        y = max(y, 0)
    return y
