#pragma version ~=0.4.3
"""
@title Tensor Module Reference Implementation
@custom:contract-name tensor_mock
@notice Test harness: exposes the stateless `tensor` module's functions
        as external pure functions, so the tests can check them against
        `tests/vectors/tensors.json`, `transformer_tensors.json` and the word-tree definition of
        protocol.md section 10.3.
@dev Not for deployment outside tests.
"""


# @dev The stateless module under test; it needs no `initializes:`.
from ..modules import tensor


@external
@pure
def header_root(rows: uint256, cols: uint256, rows_root: bytes32, dtype: uint256) -> bytes32:
    """
    @dev Returns `tensor.header_root(rows, cols, rows_root, dtype)`.
    @param rows The row count.
    @param cols The column count.
    @param rows_root The rows root `R`.
    @param dtype The dtype code.
    @return bytes32 `H(enc(rows, cols, R))` (int8) or `H(enc(rows, cols, R, dtype))`.
    """
    return tensor.header_root(rows, cols, rows_root, dtype)


@external
@pure
def rows_root(data: Bytes[tensor.MAX_TENSOR_BYTES], rows: uint256, cols: uint256, dtype: uint256) -> bytes32:
    """
    @dev Returns `tensor.rows_root(data, rows, cols, dtype)`.
    @param data The packed tensor, row-major.
    @param rows The row count.
    @param cols The column count.
    @param dtype The dtype code.
    @return bytes32 The rows root.
    """
    return tensor.rows_root(data, rows, cols, dtype)


@external
@pure
def tensor_root(data: Bytes[tensor.MAX_TENSOR_BYTES], rows: uint256, cols: uint256, dtype: uint256) -> bytes32:
    """
    @dev Returns `tensor.tensor_root(data, rows, cols, dtype)`.
    @param data The packed tensor, row-major.
    @param rows The row count.
    @param cols The column count.
    @param dtype The dtype code.
    @return bytes32 The tensor root.
    """
    return tensor.tensor_root(data, rows, cols, dtype)


@external
@pure
def word_root(row: Bytes[tensor.MAX_COLS]) -> bytes32:
    """
    @dev Returns `tensor.word_root(row)`.
    @param row The packed row, 1 to MAX_COLS bytes.
    @return bytes32 The row's word-tree root.
    """
    return tensor.word_root(row)


@external
@view
def tensor_root_gas(data: Bytes[tensor.MAX_TENSOR_BYTES], rows: uint256, cols: uint256) -> (bytes32, uint256):
    """
    @dev Computes `tensor.tensor_root(data, rows, cols, 0)` (int8) and the gas it
         took, measured with `msg.gas` around the call (including the
         copy of `data` into the module's frame and its memory
         expansion, excluding calldata and ABI decoding).
    @param data The packed tensor, row-major.
    @param rows The row count.
    @param cols The column count.
    @return (bytes32, uint256) The tensor root and the gas used.
    """
    before: uint256 = msg.gas
    root: bytes32 = tensor.tensor_root(data, rows, cols, 0)
    return root, before - msg.gas


@external
@view
def word_root_gas(row: Bytes[tensor.MAX_COLS]) -> (bytes32, uint256):
    """
    @dev Computes `tensor.word_root(row)` and the gas it took, measured
         with `msg.gas` around the call.
    @param row The packed row, 1 to MAX_COLS bytes.
    @return (bytes32, uint256) The word-tree root and the gas used.
    """
    before: uint256 = msg.gas
    root: bytes32 = tensor.word_root(row)
    return root, before - msg.gas
