"""Tensor commitments on-chain: contracts/modules/tensor.vy (through tensor_mock) against
docs/protocol.md section 3 (rows root, tensor root, header root of every dtype), the golden
vectors in tests/vectors/tensors.json (int8) and transformer_tensors.json (int32, int16),
random tensors built by tests/reference.py, and section 10.3's row word tree (computed here
in Python from its definition).

Every check is an eth_call (no transaction).
"""

import random

import ape
import pytest
from helpers import h, load_vectors

import reference as ref

MAX_COLS = 16384
MAX_ROWS = 65536
MAX_TENSOR_BYTES = 65536
INT8, INT32, INT16 = 0, 1, 2  # section 3's dtype codes


@pytest.fixture(scope="module")
def vector_cases():
    """tests/vectors/tensors.json's cases, loaded once."""
    cases = load_vectors("tensors")["cases"]
    assert cases, "tensors.json has no cases"
    return cases


def word_root_py(row: bytes) -> bytes:
    """Section 10.3 from its definition: ceil(len/32) words, the last right-padded with zero
    bytes, the words themselves as leaves, depth(ceil(len/32)), padded with Z[0]."""
    n = (len(row) + 31) // 32
    words = [row[32 * i:32 * i + 32].ljust(32, b"\x00") for i in range(n)]
    return ref.merkle_root(words, ref.depth(n))


def random_tensor(rng: random.Random, rows: int, cols: int) -> list[list[int]]:
    return [[rng.randint(-128, 127) for _ in range(cols)] for _ in range(rows)]


# ---------------------------------------------------------------------------
# Golden vectors
# ---------------------------------------------------------------------------


def test_rows_root_vectors_succeeds(tensor_mock, vector_cases):
    failures = []
    for case in vector_cases:
        got = tensor_mock.rows_root(h(case["packed"]), case["rows"], case["cols"], INT8)
        if got != h(case["rows_root"]):
            failures.append(case["name"])
    assert not failures, failures


def test_tensor_root_vectors_succeeds(tensor_mock, vector_cases):
    failures = []
    for case in vector_cases:
        got = tensor_mock.tensor_root(h(case["packed"]), case["rows"], case["cols"], INT8)
        if got != h(case["tensor_root"]):
            failures.append(case["name"])
    assert not failures, failures


def test_header_root_vectors_succeeds(tensor_mock, vector_cases):
    for case in vector_cases:
        got = tensor_mock.header_root(case["rows"], case["cols"], h(case["rows_root"]), INT8)
        assert got == h(case["tensor_root"]), case["name"]


def test_every_dtype_vectors_succeeds(tensor_mock):
    """transformer_tensors.json: int32 and int16 tensors (and an int8 one) by their dtype's rule."""
    cases = load_vectors("transformer_tensors")["cases"]
    assert {c["dtype"] for c in cases} == {INT8, INT32, INT16}
    for case in cases:
        packed, rows, cols, dtype = h(case["packed"]), case["rows"], case["cols"], case["dtype"]
        assert tensor_mock.rows_root(packed, rows, cols, dtype) == h(case["rows_root"]), case["name"]
        assert tensor_mock.tensor_root(packed, rows, cols, dtype) == h(case["tensor_root"]), case["name"]
        assert tensor_mock.header_root(rows, cols, h(case["rows_root"]), dtype) == h(case["tensor_root"]), case["name"]


@pytest.mark.parametrize("dtype, width", [(INT32, 4), (INT16, 2)])
def test_wide_tensor_root_random_succeeds(tensor_mock, dtype, width):
    # rows of cols * width bytes; the header's fourth word is the dtype
    rng = random.Random(dtype)
    for rows, cols in [(1, 1), (3, 5), (4, 8), (9, 33), (64, 16)]:
        packed = rng.randbytes(rows * cols * width)
        row_bytes = cols * width
        leaves = [ref.keccak256(packed[r * row_bytes:(r + 1) * row_bytes]) for r in range(rows)]
        rows_root = ref.merkle_root(leaves, ref.depth(rows))
        assert tensor_mock.rows_root(packed, rows, cols, dtype) == rows_root
        assert tensor_mock.tensor_root(packed, rows, cols, dtype) == ref.keccak256(ref.enc(rows, cols, rows_root, dtype))


@pytest.mark.parametrize("dtype, length", [(INT32, 2 * 3), (INT32, 2 * 3 * 2), (INT16, 2 * 3), (INT16, 2 * 3 * 4)])
def test_wide_length_is_rows_cols_width_reverts(tensor_mock, dtype, length):
    with ape.reverts("tensor: length does not match shape"):
        tensor_mock.tensor_root(b"\x01" * length, 2, 3, dtype)


@pytest.mark.parametrize("dtype", [3, 2**256 - 1])
def test_unknown_dtype_reverts(tensor_mock, dtype):
    with ape.reverts("rows: unknown dtype"):
        tensor_mock.tensor_root(b"\x01" * 6, 2, 3, dtype)
    with ape.reverts("rows: unknown dtype"):
        tensor_mock.rows_root(b"\x01" * 6, 2, 3, dtype)


def test_rows_root_vectors_match_leaves_succeeds(vector_cases):
    # Guards the test itself: packed bytes, row leaves and roots agree in plain Python.
    for case in vector_cases:
        packed, cols = h(case["packed"]), case["cols"]
        leaves = [ref.keccak256(packed[r * cols:(r + 1) * cols]) for r in range(case["rows"])]
        assert [h(x) for x in case["row_leaves"]] == leaves, case["name"]
        assert ref.merkle_root(leaves, ref.depth(case["rows"])) == h(case["rows_root"]), case["name"]


def test_header_root_any_values_succeeds(tensor_mock):
    # No range checks: the header hash binds whatever shape the caller committed to.
    for rows, cols in [(0, 0), (1, 1), (2**256 - 1, 7), (MAX_ROWS + 1, MAX_COLS + 1)]:
        root = bytes(range(32))
        assert tensor_mock.header_root(rows, cols, root, INT8) == ref.keccak256(ref.enc(rows, cols, root))
        for dtype in (1, 2):
            assert tensor_mock.header_root(rows, cols, root, dtype) == ref.keccak256(ref.enc(rows, cols, root, dtype))


# ---------------------------------------------------------------------------
# Random tensors against tests/reference.py
# ---------------------------------------------------------------------------

RANDOM_SHAPES = [(1, 1), (1, 33), (2, 2), (3, 5), (4, 32), (5, 7), (7, 3), (8, 8), (9, 1), (16, 4),
                 (17, 2), (31, 3), (33, 1), (64, 2), (100, 5)]


@pytest.mark.parametrize("rows,cols", RANDOM_SHAPES)
def test_tensor_root_random_succeeds(tensor_mock, rows, cols):
    rng = random.Random(rows * 1000 + cols)
    matrix = random_tensor(rng, rows, cols)
    packed = ref.pack_tensor(matrix)
    _, _, rows_root = ref.tensor_header(matrix)
    assert tensor_mock.rows_root(packed, rows, cols, INT8) == rows_root
    assert tensor_mock.tensor_root(packed, rows, cols, INT8) == ref.tensor_root(matrix)


@pytest.mark.parametrize("rows,cols", [(1, MAX_COLS), (4, MAX_COLS), (1024, 64), (2048, 32)])
def test_tensor_root_largest_succeeds(tensor_mock, rows, cols):
    # The largest tensors: MAX_COLS columns and MAX_TENSOR_BYTES bytes.
    rng = random.Random(rows + cols)
    packed = rng.randbytes(rows * cols)
    leaves = [ref.keccak256(packed[r * cols:(r + 1) * cols]) for r in range(rows)]
    rows_root = ref.merkle_root(leaves, ref.depth(rows))
    assert tensor_mock.rows_root(packed, rows, cols, INT8) == rows_root
    assert tensor_mock.tensor_root(packed, rows, cols, INT8) == ref.header_root(rows, cols, rows_root)


# ---------------------------------------------------------------------------
# Reverts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows,cols",
    [(0, 1), (1, 0), (0, 0), (MAX_ROWS + 1, 1), (1, MAX_COLS + 1), (2**256 - 1, 1), (1, 2**256 - 1)],
)
def test_rows_root_bad_shape_reverts(tensor_mock, rows, cols):
    with ape.reverts("tensor: bad shape"):
        tensor_mock.rows_root(b"\x01", rows, cols, INT8)


@pytest.mark.parametrize("rows,cols", [(0, 1), (1, MAX_COLS + 1)])
def test_tensor_root_bad_shape_reverts(tensor_mock, rows, cols):
    with ape.reverts("tensor: bad shape"):
        tensor_mock.tensor_root(b"\x01", rows, cols, INT8)


@pytest.mark.parametrize("length", [0, 5, 7, 12])
def test_rows_root_length_does_not_match_shape_reverts(tensor_mock, length):
    with ape.reverts("tensor: length does not match shape"):
        tensor_mock.rows_root(b"\x01" * length, 2, 3, INT8)


def test_tensor_root_length_does_not_match_shape_reverts(tensor_mock):
    with ape.reverts("tensor: length does not match shape"):
        tensor_mock.tensor_root(b"\x01" * 7, 2, 4, INT8)


def test_rows_root_max_rows_length_does_not_match_shape_reverts(tensor_mock):
    # MAX_ROWS rows of MAX_COLS columns is a valid shape but far beyond MAX_TENSOR_BYTES.
    with ape.reverts("tensor: length does not match shape"):
        tensor_mock.rows_root(b"\x01" * 64, MAX_ROWS, MAX_COLS, INT8)


# ---------------------------------------------------------------------------
# word_root (section 10.3)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 2, 31, 32, 33, 63, 64, 65, 96, 100, 128, 129, 1000, 4096, MAX_COLS - 1, MAX_COLS])
def test_word_root_lengths_succeeds(tensor_mock, length):
    rng = random.Random(length)
    # Nonzero bytes everywhere, so a missing zero pad of the tail word would show.
    row = bytes(rng.randint(1, 255) for _ in range(length))
    assert tensor_mock.word_root(row) == word_root_py(row)


def test_word_root_every_short_length_succeeds(tensor_mock):
    # Every tail length 1..32 with and without a full word before it.
    failures = []
    for length in list(range(1, 66)):
        row = bytes((0x80 + i) % 256 or 0xFF for i in range(length))
        if tensor_mock.word_root(row) != word_root_py(row):
            failures.append(length)
    assert not failures, f"word_root differs at lengths {failures}"


def test_word_root_single_word_is_padded_row_succeeds(tensor_mock):
    # Depth 0: the root is the row itself, right-padded with zero bytes.
    assert tensor_mock.word_root(b"\xff") == b"\xff" + b"\x00" * 31
    assert tensor_mock.word_root(b"\x01" * 32) == b"\x01" * 32


@pytest.mark.parametrize("seed", range(4))
def test_word_root_random_succeeds(tensor_mock, seed):
    rng = random.Random(100 + seed)
    row = ref.pack_int8([rng.randint(-128, 127) for _ in range(rng.randint(1, 2000))])
    assert tensor_mock.word_root(row) == word_root_py(row)


def test_word_root_empty_row_reverts(tensor_mock):
    with ape.reverts("tensor: empty row"):
        tensor_mock.word_root(b"")


# ---------------------------------------------------------------------------
# Gas (printed with pytest -s; asserts only correctness)
# ---------------------------------------------------------------------------


def test_tensor_root_gas_succeeds(tensor_mock):
    # The module's execution gas alone (msg.gas around the call, in the mock): a transaction
    # also pays 21000 and its calldata (EIP-7623: at least 10 per zero byte, 40 per other).
    rng = random.Random(7)
    for rows, cols in [(1, 784), (16, 784), (1, MAX_COLS), (4, MAX_COLS), (1024, 64), (16384, 4)]:
        packed = rng.randbytes(rows * cols)
        want = ref.header_root(rows, cols, ref.merkle_root(
            [ref.keccak256(packed[r * cols:(r + 1) * cols]) for r in range(rows)], ref.depth(rows)))
        root, gas = tensor_mock.tensor_root_gas(packed, rows, cols)
        assert root == want
        print(f"\ntensor_root rows={rows} cols={cols}: execution gas {gas}")
    for length in (1, 32, 784, MAX_COLS):
        row = rng.randbytes(length)
        root, gas = tensor_mock.word_root_gas(row)
        assert root == word_root_py(row)
        print(f"word_root len={length}: execution gas {gas}")
