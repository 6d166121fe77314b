#pragma version ~=0.4.3
"""
@title Packed Rows Harness
@custom:contract-name rows_mock
@notice Test harness: exposes the stateless `rows` module's functions as
        external functions, so tests/test_verifiers.py can check them against
        section 3's packing and tests/vectors/transformer_tensors.json.
@dev Not for deployment outside tests.
"""

from ..modules import rows


@external
@pure
def width(dtype: uint256) -> uint256:
    """
    @dev Returns `rows.width(dtype)`.
    @param dtype A dtype code.
    @return uint256 Bytes per element.
    """
    return rows.width(dtype)


@external
@pure
def lane(word: bytes32, pos: uint256, width_: uint256) -> int256:
    """
    @dev Returns `rows.lane(word, pos, width_)`.
    @param word A word.
    @param pos The element's first byte.
    @param width_ The element width.
    @return int256 The element.
    """
    return rows.lane(word, pos, width_)


@external
@pure
def element(row: Bytes[rows.MAX_ROW_BYTES], dtype: uint256, c: uint256) -> int256:
    """
    @dev Returns `rows.element(row, dtype, c)`.
    @param row A packed row.
    @param dtype Its dtype code.
    @param c The column.
    @return int256 The element.
    """
    return rows.element(row, dtype, c)


@external
@pure
def leaf(row: Bytes[rows.MAX_ROW_BYTES]) -> bytes32:
    """
    @dev Returns `rows.leaf(row)`.
    @param row A packed row.
    @return bytes32 Its leaf.
    """
    return rows.leaf(row)


@external
@pure
def depth(n: uint256) -> uint256:
    """
    @dev Returns `rows.depth(n)`.
    @param n A leaf count.
    @return uint256 The depth.
    """
    return rows.depth(n)


@external
@pure
def verify(leaf_: bytes32, index: uint256, proof: DynArray[bytes32, rows.MAX_PROOF], depth_: uint256,
           root: bytes32) -> bool:
    """
    @dev Returns `rows.verify(leaf_, index, proof, depth_, root)`.
    @param leaf_ The leaf.
    @param index Its position.
    @param proof The siblings.
    @param depth_ The committed depth.
    @param root The root.
    @return bool Whether the proof holds.
    """
    return rows.verify(leaf_, index, proof, depth_, root)


@external
@pure
def requantize(acc: int256, m: int256, s: uint256, i16: bool) -> int256:
    """
    @dev Returns `rows.requantize(acc, m, s, i16)`.
    @param acc The accumulator.
    @param m The multiplier.
    @param s The shift.
    @param i16 Whether the output is int16.
    @return int256 The requantized value.
    """
    return rows.requantize(acc, m, s, i16)


@external
@pure
def valid_rq(m: uint256, s: uint256) -> bool:
    """
    @notice `rows.valid_rq`: `m` in [1, 2^31 - 1] and `s` in [1, 62].
    """
    return rows.valid_rq(m, s)


@external
@pure
def valid_cols(in_cols: uint256, out_cols: uint256) -> bool:
    """
    @notice `rows.valid_cols`: both counts in [1, MAX_COLS].
    """
    return rows.valid_cols(in_cols, out_cols)


@external
@pure
def divides(h: uint256, n: uint256) -> bool:
    """
    @notice `rows.divides`: `h >= 1` divides `n`.
    """
    return rows.divides(h, n)


@external
@pure
def activation(dtype: uint256) -> bool:
    """
    @notice `rows.activation`: `int8` or `int16`.
    """
    return rows.activation(dtype)


@external
@pure
def out_dtype(flags: uint256) -> uint256:
    """
    @notice `rows.out_dtype`: `int16` with flag `i16`, else `int8`.
    """
    return rows.out_dtype(flags)
