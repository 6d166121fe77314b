#pragma version ~=0.4.3
"""
@title Tensor Commitments
@custom:contract-name tensor
@notice Roots of packed tensors of every dtype (section 3 of
        `docs/protocol.md`) and of a row's word tree (section 10.3): row
        leaves `L[r] = H(packed row r)`, the rows root
        `R = root([L[0] ... L[rows - 1]], depth(rows))` padded with
        `Z[0]`, and the tensor root `T = H(enc(rows, cols, R))` for
        `int8`, `T = H(enc(rows, cols, R, dtype))` for `int32` and
        `int16`.
@dev Stateless: import it (`from ..modules import tensor`) and call
     `tensor.tensor_root(...)`; it needs no `initializes:`. A dtype's
     element width is `rows.width` (`modules/rows.vy`, section 3).

     Roots are built with an incremental frontier (one pending subtree
     root per height, `bytes32[17]`), never with every leaf in memory:
     pushing leaf `i` combines it with `frontier[h]` while bit `h` of
     `i` is 1, then stores it at the first height whose bit is 0. For
     `n` leaves with `d = depth(n)`, the root is `frontier[d]` when
     `n == 2**d`; otherwise the padding is folded in, walking up from
     the first padding position `n`: `node = Z[0]`, then for
     `h = 0 ... d - 1`, `node = H(frontier[h] ‖ node)` if bit `h` of
     `n` is 1 (a complete real left sibling) and `node = H(node ‖ Z[h])`
     if it is 0 (an all-padding right sibling).
"""


# @dev Depth of a tree over `n` leaves (section 2).
from . import merkle

# @dev A dtype's element width (section 3).
from . import rows as packed_rows


# @dev The largest packed tensor the contracts accept in one
# transaction, `rows * cols` bytes (protocol.md section 10.0).
MAX_TENSOR_BYTES: constant(uint256) = 65536


# @dev The shape limits of section 8: `1 <= cols <= MAX_COLS`,
# `1 <= rows <= MAX_ROWS`.
MAX_COLS: constant(uint256) = 16384
MAX_ROWS: constant(uint256) = 65536


# @dev Frontier size: one slot per height `0 ... 16`; a rows tree has
# depth at most 16 (`MAX_ROWS = 2**16`) and a word tree at most 9
# (`MAX_COLS / 32 = 2**9` words).
FRONTIER: constant(uint256) = 17


# @dev The longest packed row: MAX_COLS `int32` elements (section 3).
MAX_ROW_BYTES: constant(uint256) = 4 * MAX_COLS


# @dev The most words in a row: `MAX_ROW_BYTES / 32`.
MAX_WORDS: constant(uint256) = MAX_ROW_BYTES // 32


@internal
@pure
def header_root(rows: uint256, cols: uint256, rows_root: bytes32, dtype: uint256) -> bytes32:
    """
    @dev The tensor root of a header by its dtype's rule (section 3):
         `H(enc(rows, cols, R))`, 96 bytes hashed, for `int8`;
         `H(enc(rows, cols, R, dtype))` for any other dtype. Checks
         nothing: the shape is whatever the caller committed to.
    @param rows The row count.
    @param cols The column count.
    @param rows_root The rows root `R`.
    @param dtype The dtype code.
    @return bytes32 The tensor root `T`.
    """
    if dtype == packed_rows.DTYPE_INT8:
        return keccak256(concat(convert(rows, bytes32), convert(cols, bytes32), rows_root))
    return keccak256(concat(convert(rows, bytes32), convert(cols, bytes32), rows_root, convert(dtype, bytes32)))


@internal
@pure
def _frontier_root(frontier: bytes32[FRONTIER], n: uint256) -> bytes32:
    """
    @dev The root of the depth-`depth(n)` tree whose first `n` leaves
         were pushed into `frontier` (see the module's `@dev`), the rest
         being `Z[0]`.
    @param frontier The pending subtree roots after `n` pushes.
    @param n The number of leaves pushed, in [1, 2**16].
    @return bytes32 The root.
    """
    d: uint256 = merkle.depth(n)
    if n == 1 << d:
        # A full tree: the last push carried the root up to height d.
        return frontier[d]
    # INVARIANT: `node` is the root of the height-`h` subtree holding
    # position `n` (the first padding leaf); `z` is `Z[h]`.
    node: bytes32 = empty(bytes32)
    z: bytes32 = empty(bytes32)
    for h: uint256 in range(d, bound=FRONTIER):
        if (n >> h) & 1 == 1:
            node = keccak256(concat(frontier[h], node))
        else:
            node = keccak256(concat(node, z))
        z = keccak256(concat(z, z))
    return node


@internal
@pure
def rows_root(data: Bytes[MAX_TENSOR_BYTES], rows: uint256, cols: uint256, dtype: uint256) -> bytes32:
    """
    @dev The rows root `R` of a packed tensor (section 3): the Merkle
         root, depth `depth(rows)`, over the row leaves
         `H(packed row r)` of `cols * width(dtype)` bytes each, padded
         with `Z[0]` leaves (not the hash of a zero row). Reverts with
         "tensor: bad shape" if `rows` is not in [1, MAX_ROWS] or `cols`
         is not in [1, MAX_COLS], with "rows: unknown dtype" for a dtype
         other than 0, 1, 2, and with "tensor: length does not match
         shape" if `len(data) != rows * cols * width(dtype)`.
    @param data The packed tensor, row-major.
    @param rows The row count.
    @param cols The column count.
    @param dtype The dtype code.
    @return bytes32 The rows root.
    """
    assert rows >= 1 and rows <= MAX_ROWS and cols >= 1 and cols <= MAX_COLS, "tensor: bad shape"
    # The factors are at most 2**16, 2**14 and 4: the product cannot overflow.
    row_bytes: uint256 = unsafe_mul(cols, packed_rows.width(dtype))
    assert len(data) == unsafe_mul(rows, row_bytes), "tensor: length does not match shape"
    frontier: bytes32[FRONTIER] = empty(bytes32[FRONTIER])
    offset: uint256 = 0
    for i: uint256 in range(rows, bound=MAX_ROWS):
        node: bytes32 = keccak256(slice(data, offset, row_bytes))
        offset = unsafe_add(offset, row_bytes)
        # Push leaf `i`: merge with the pending subtree at each height
        # whose bit of `i` is 1 (`i < 2**16`: at most 16 merges).
        h: uint256 = 0
        bits: uint256 = i
        for _: uint256 in range(FRONTIER - 1):
            if bits & 1 == 0:
                break
            node = keccak256(concat(frontier[h], node))
            bits = bits >> 1
            h = unsafe_add(h, 1)
        frontier[h] = node
    return self._frontier_root(frontier, rows)


@internal
@pure
def tensor_root(data: Bytes[MAX_TENSOR_BYTES], rows: uint256, cols: uint256, dtype: uint256) -> bytes32:
    """
    @dev The tensor root of a packed tensor by its dtype's rule
         (`header_root`), `R` being `rows_root(data, rows, cols, dtype)`.
         Reverts as `rows_root`.
    @param data The packed tensor, row-major.
    @param rows The row count.
    @param cols The column count.
    @param dtype The dtype code.
    @return bytes32 The tensor root.
    """
    # The body of `rows_root`, repeated rather than called: an internal
    # call copies `data` into a second 64 KiB frame, and the memory
    # expansion of that frame alone costs about 48k gas on every call.
    assert rows >= 1 and rows <= MAX_ROWS and cols >= 1 and cols <= MAX_COLS, "tensor: bad shape"
    row_bytes: uint256 = unsafe_mul(cols, packed_rows.width(dtype))
    assert len(data) == unsafe_mul(rows, row_bytes), "tensor: length does not match shape"
    frontier: bytes32[FRONTIER] = empty(bytes32[FRONTIER])
    offset: uint256 = 0
    for i: uint256 in range(rows, bound=MAX_ROWS):
        node: bytes32 = keccak256(slice(data, offset, row_bytes))
        offset = unsafe_add(offset, row_bytes)
        h: uint256 = 0
        bits: uint256 = i
        for _: uint256 in range(FRONTIER - 1):
            if bits & 1 == 0:
                break
            node = keccak256(concat(frontier[h], node))
            bits = bits >> 1
            h = unsafe_add(h, 1)
        frontier[h] = node
    return self.header_root(rows, cols, self._frontier_root(frontier, rows), dtype)


@internal
@pure
def word_root(row: Bytes[MAX_ROW_BYTES]) -> bytes32:
    """
    @dev The root of a packed row's word tree (section 10.3): the row
         split into `ceil(len / 32)` 32-byte words, the last padded on
         the right with zero bytes; the leaves are the words themselves
         (not hashed); depth `depth(ceil(len / 32))`, padded with
         `Z[0]`. Column `c` is byte `c % 32` of leaf `c // 32`. Reverts
         with "tensor: empty row" if `len(row) == 0`.
    @param row The packed row, 1 to MAX_ROW_BYTES bytes.
    @return bytes32 The word-tree root.
    """
    n_bytes: uint256 = len(row)
    assert n_bytes != 0, "tensor: empty row"
    n_words: uint256 = unsafe_add(n_bytes, 31) >> 5
    last: uint256 = unsafe_sub(n_words, 1)
    # Bytes of the last word that belong to the row, in [1, 32].
    rem: uint256 = unsafe_sub(n_bytes, last << 5)

    frontier: bytes32[FRONTIER] = empty(bytes32[FRONTIER])
    for i: uint256 in range(n_words, bound=MAX_WORDS):
        node: bytes32 = empty(bytes32)
        if i < last or rem == 32:
            node = extract32(row, i << 5)
        elif n_bytes >= 32:
            # The tail word overlaps the previous one: read the last 32
            # bytes and shift the row's `rem` tail bytes to the top,
            # zero bytes coming in on the right.
            tail: uint256 = convert(extract32(row, unsafe_sub(n_bytes, 32)), uint256)
            node = convert(tail << unsafe_mul(8, unsafe_sub(32, rem)), bytes32)
        else:
            # A row shorter than one word (the only leaf): its bytes at
            # the top, zero bytes below. Assembled byte by byte rather
            # than through `concat`, whose 16 KiB temporary would cost
            # memory expansion on every call.
            short: uint256 = 0
            for j: uint256 in range(n_bytes, bound=31):
                byte: uint256 = convert(convert(slice(row, j, 1), bytes1), uint256)
                short = short | (byte << unsafe_mul(unsafe_sub(31, j), 8))
            node = convert(short, bytes32)
        # Push leaf `i` (`i < 2**11`: at most 11 merges).
        h: uint256 = 0
        bits: uint256 = i
        for _: uint256 in range(FRONTIER - 1):
            if bits & 1 == 0:
                break
            node = keccak256(concat(frontier[h], node))
            bits = bits >> 1
            h = unsafe_add(h, 1)
        frontier[h] = node
    return self._frontier_root(frontier, n_words)
