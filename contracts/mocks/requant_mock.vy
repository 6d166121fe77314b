#pragma version ~=0.4.3
"""
@title Requantization Module Reference Implementation
@custom:contract-name requant_mock
@notice Test harness: exposes the stateless `requant` module's
        `requantize` as an external pure function, so the tests can
        check it against `tests/vectors/requant.json`.
@dev Not for deployment outside tests.
"""


# @dev The stateless module under test; it needs no `initializes:`.
from ..modules import requant


@external
@pure
def requantize(acc: int256, multiplier: int256, shift_: uint256, relu: bool) -> int256:
    """
    @dev Returns `requant.requantize(acc, multiplier, shift_, relu)`.
    @param acc The exact accumulator, in [-2**31, 2**31 - 1].
    @param multiplier The channel multiplier `m`, in [1, 2**31 - 1].
    @param shift_ The channel shift `s`, in [1, 62].
    @param relu Whether ReLU is applied after the clamp.
    @return int256 The requantized int8 value.
    """
    return requant.requantize(acc, multiplier, shift_, relu)
