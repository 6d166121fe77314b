#pragma version ~=0.4.3
"""
@title Linear Module Reference Implementation
@custom:contract-name linear_mock
@notice Test harness: exposes the stateless `linear` module's functions
        as external functions, so the tests can check them against
        `tests/vectors/linear.json`, and measures the gas of one
        output-element check sent as a transaction.
@dev Not for deployment outside tests.
"""


# @dev The stateless module under test; it needs no `initializes:`.
from ..modules import linear


# @dev Emitted by `check_element`, so the check is a real transaction
# whose `gas_used` the tests read.
event ElementChecked:
    computed: int256
    matches: bool


@external
@pure
def weight_leaf(bias: int256, multiplier: int256, shift_: uint256, w: Bytes[linear.MAX_COLS]) -> bytes32:
    """
    @dev Returns `linear.weight_leaf(bias, multiplier, shift_, w)`.
    @param bias The channel bias.
    @param multiplier The channel multiplier.
    @param shift_ The channel shift.
    @param w The packed weight row.
    @return bytes32 The weight leaf.
    """
    return linear.weight_leaf(bias, multiplier, shift_, w)


@external
@pure
def output_element(
    x: Bytes[linear.MAX_COLS],
    w: Bytes[linear.MAX_COLS],
    bias: int256,
    multiplier: int256,
    shift_: uint256,
    relu: bool,
) -> int256:
    """
    @dev Returns `linear.output_element(x, w, bias, multiplier, shift_, relu)`.
    @param x The packed input row.
    @param w The packed weight row.
    @param bias The channel bias.
    @param multiplier The channel multiplier.
    @param shift_ The channel shift.
    @param relu Whether ReLU is applied.
    @return int256 The output element.
    """
    return linear.output_element(x, w, bias, multiplier, shift_, relu)


@external
def check_element(
    x: Bytes[linear.MAX_COLS],
    w: Bytes[linear.MAX_COLS],
    bias: int256,
    multiplier: int256,
    shift_: uint256,
    relu: bool,
    expected: int256,
) -> bool:
    """
    @dev Computes `linear.output_element(...)` as a transaction, the
         core of the game's one-step check, and emits `ElementChecked`;
         stores nothing. For gas measurement.
    @param x The packed input row.
    @param w The packed weight row.
    @param bias The channel bias.
    @param multiplier The channel multiplier.
    @param shift_ The channel shift.
    @param relu Whether ReLU is applied.
    @param expected The claimed output element.
    @return bool Whether the computed element equals `expected`.
    """
    computed: int256 = linear.output_element(x, w, bias, multiplier, shift_, relu)
    log ElementChecked(computed=computed, matches=computed == expected)
    return computed == expected


@external
@view
def output_element_gas(
    x: Bytes[linear.MAX_COLS],
    w: Bytes[linear.MAX_COLS],
    bias: int256,
    multiplier: int256,
    shift_: uint256,
    relu: bool,
) -> (int256, uint256):
    """
    @dev Computes `linear.output_element(...)` and the gas it took,
         measured with `msg.gas` around the call: the execution cost of
         the computation alone, without the transaction's intrinsic
         and calldata costs or the copying of the calldata arguments.
    @param x The packed input row.
    @param w The packed weight row.
    @param bias The channel bias.
    @param multiplier The channel multiplier.
    @param shift_ The channel shift.
    @param relu Whether ReLU is applied.
    @return (int256, uint256) The output element and the gas used.
    """
    before: uint256 = msg.gas
    computed: int256 = linear.output_element(x, w, bias, multiplier, shift_, relu)
    return computed, before - msg.gas
