#pragma version ~=0.4.3
"""
@title Int8 Module Reference Implementation
@custom:contract-name int8_mock
@notice Test harness: exposes the stateless `int8` module's functions
        as external pure functions, so the tests can check them against
        a plain Python dot product and `tests/vectors/linear.json`.
@dev Not for deployment outside tests.
"""


# @dev The stateless module under test; it needs no `initializes:`.
# Imported under an alias: `int8` is a builtin type name, and Vyper
# 0.4.3 refuses a module bound to it (NamespaceCollision).
from ..modules import int8 as i8


@external
@pure
def element(word: bytes32, i: uint256) -> int256:
    """
    @dev Returns `int8.element(word, i)`.
    @param word The word.
    @param i The byte index, in [0, 31].
    @return int256 Byte `i` of `word` as a signed int8.
    """
    return i8.element(word, i)


@external
@pure
def dot(x: Bytes[i8.MAX_COLS], w: Bytes[i8.MAX_COLS]) -> int256:
    """
    @dev Returns `int8.dot(x, w)`.
    @param x A packed int8 row.
    @param w A packed int8 row of the same length.
    @return int256 The exact dot product.
    """
    return i8.dot(x, w)
