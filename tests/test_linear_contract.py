"""The linear op on-chain: contracts/modules/int8.vy (through int8_mock) and
contracts/modules/linear.vy (through linear_mock) against docs/protocol.md section 4, the golden
vectors in tests/vectors/linear.json and requant.json, a plain Python dot product and
tests/reference.py.

`int8.dot` is a SWAR computation (32 bytes per word, see the module's @dev): it is checked bit
for bit at every length around a word boundary, at the extremes (-128 and 127 everywhere) and
at the largest length. The gas test prints the cost of a one-element check as a transaction
(run with `pytest -s`) and asserts only correctness.
"""

import random

import ape
import pytest
from helpers import h, load_vectors, random_ref_model

import reference as ref

MAX_COLS = 16384
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


@pytest.fixture(scope="module")
def linear_cases():
    """tests/vectors/linear.json's cases, loaded once."""
    cases = load_vectors("linear")["cases"]
    assert cases, "linear.json has no cases"
    return cases


def signed(data: bytes) -> list[int]:
    return [b - 256 if b >= 128 else b for b in data]


def plain_dot(x: bytes, w: bytes) -> int:
    """The dot product of two packed int8 rows, the obvious way."""
    return sum(a * b for a, b in zip(signed(x), signed(w)))


def rows_of(kind: str, k: int, rng: random.Random) -> tuple[bytes, bytes]:
    """Two packed rows of length k: random, or at the extremes of int8."""
    if kind == "random":
        return rng.randbytes(k), rng.randbytes(k)
    if kind == "all_min":
        return b"\x80" * k, b"\x80" * k
    if kind == "all_max":
        return b"\x7f" * k, b"\x7f" * k
    if kind == "min_max":
        return b"\x80" * k, b"\x7f" * k
    if kind == "mixed_extremes":
        return (bytes(rng.choice((0x80, 0x7F)) for _ in range(k)),
                bytes(rng.choice((0x80, 0x7F)) for _ in range(k)))
    if kind == "small":
        return (bytes(rng.choice((0x00, 0x01, 0xFF)) for _ in range(k)),
                bytes(rng.choice((0x00, 0x01, 0xFF)) for _ in range(k)))
    raise ValueError(kind)


# ---------------------------------------------------------------------------
# int8.element
# ---------------------------------------------------------------------------


def test_element_every_byte_value_succeeds(int8_mock):
    # Every byte value 0x00..0xff, at every position of some word.
    failures = []
    for start in range(0, 256, 32):
        word = bytes(range(start, start + 32))
        for i in range(32):
            want = signed(word[i:i + 1])[0]
            if int8_mock.element(word, i) != want:
                failures.append((start + i, i))
    assert not failures, failures


def test_element_extremes_succeeds(int8_mock):
    word = bytes([0x80, 0x7F, 0xFF, 0x00] * 8)
    assert [int8_mock.element(word, i) for i in (0, 1, 2, 3, 28, 29, 30, 31)] == [-128, 127, -1, 0] * 2


@pytest.mark.parametrize("i", [32, 33, 2**256 - 1])
def test_element_byte_index_out_of_range_reverts(int8_mock, i):
    with ape.reverts("int8: byte index out of range"):
        int8_mock.element(b"\x01" * 32, i)


# ---------------------------------------------------------------------------
# int8.dot
# ---------------------------------------------------------------------------


def test_dot_vectors_succeeds(int8_mock, linear_cases):
    failures = []
    for case in linear_cases:
        got = int8_mock.dot(h(case["x_packed"]), h(case["w_packed"]))
        if got != case["acc"] - case["bias"]:
            failures.append(f"{case['name']}: got {got}, want {case['acc'] - case['bias']}")
    assert not failures, "\n".join(failures)


def test_dot_vectors_match_plain_dot_succeeds(linear_cases):
    # Guards the test itself: the vectors' packed bytes and accumulators agree in Python.
    for case in linear_cases:
        x, w = h(case["x_packed"]), h(case["w_packed"])
        assert signed(x) == case["x"] and signed(w) == case["w"], case["name"]
        assert plain_dot(x, w) == case["acc"] - case["bias"], case["name"]


DOT_LENGTHS = [1, 2, 31, 32, 33, 63, 64, 65, 100, 511, 512, 4096, MAX_COLS]
DOT_KINDS = ["random", "all_min", "all_max", "min_max", "mixed_extremes", "small"]


@pytest.mark.parametrize("k", DOT_LENGTHS)
@pytest.mark.parametrize("kind", DOT_KINDS)
def test_dot_lengths_succeeds(int8_mock, k, kind):
    x, w = rows_of(kind, k, random.Random(k * 7 + DOT_KINDS.index(kind)))
    assert int8_mock.dot(x, w) == plain_dot(x, w)
    # The dot product is symmetric.
    assert int8_mock.dot(w, x) == plain_dot(x, w)


def test_dot_every_length_to_100_succeeds(int8_mock):
    # Every tail length, before and after each of the first word boundaries.
    rng = random.Random(100)
    failures = []
    for k in range(1, 101):
        x, w = rng.randbytes(k), rng.randbytes(k)
        if int8_mock.dot(x, w) != plain_dot(x, w):
            failures.append(k)
    assert not failures, f"dot differs at lengths {failures}"


@pytest.mark.parametrize("k", [MAX_COLS - 1, MAX_COLS - 31, MAX_COLS - 32, MAX_COLS - 33])
def test_dot_near_max_cols_succeeds(int8_mock, k):
    for kind in ("all_min", "min_max", "random"):
        x, w = rows_of(kind, k, random.Random(k))
        assert int8_mock.dot(x, w) == plain_dot(x, w), kind


def test_dot_extreme_values_succeeds(int8_mock):
    # The largest magnitudes: 16384 * 128^2 = 2^28 and -16384 * 128 * 127.
    assert int8_mock.dot(b"\x80" * MAX_COLS, b"\x80" * MAX_COLS) == 2**28
    assert int8_mock.dot(b"\x80" * MAX_COLS, b"\x7f" * MAX_COLS) == -(2**14) * 128 * 127
    assert int8_mock.dot(b"\x7f" * MAX_COLS, b"\x7f" * MAX_COLS) == 2**14 * 127 * 127
    assert int8_mock.dot(b"\x00" * MAX_COLS, b"\x80" * MAX_COLS) == 0


def test_dot_single_element_products_succeeds(int8_mock):
    # Every product of two extremes and small values, k = 1 and at the last byte of k = 33.
    values = [-128, -127, -1, 0, 1, 126, 127]
    for a in values:
        for b in values:
            assert int8_mock.dot(ref.pack_int8([a]), ref.pack_int8([b])) == a * b
    rng = random.Random(33)
    prefix_x, prefix_w = rng.randbytes(32), rng.randbytes(32)
    for a, b in [(-128, -128), (127, -128), (-1, 127)]:
        x, w = prefix_x + ref.pack_int8([a]), prefix_w + ref.pack_int8([b])
        assert int8_mock.dot(x, w) == plain_dot(x, w)


@pytest.mark.parametrize("seed", range(6))
def test_dot_random_lengths_succeeds(int8_mock, seed):
    rng = random.Random(1000 + seed)
    k = rng.randint(1, 3000)
    x = ref.pack_int8([rng.randint(-128, 127) for _ in range(k)])
    w = ref.pack_int8([rng.randint(-128, 127) for _ in range(k)])
    assert int8_mock.dot(x, w) == plain_dot(x, w)


@pytest.mark.parametrize("kx,kw", [(1, 2), (2, 1), (32, 33), (0, 1), (1, 0), (MAX_COLS, MAX_COLS - 1)])
def test_dot_length_mismatch_reverts(int8_mock, kx, kw):
    with ape.reverts("int8: length mismatch"):
        int8_mock.dot(b"\x01" * kx, b"\x01" * kw)


def test_dot_empty_row_reverts(int8_mock):
    with ape.reverts("int8: empty row"):
        int8_mock.dot(b"", b"")


# ---------------------------------------------------------------------------
# linear.weight_leaf
# ---------------------------------------------------------------------------


def test_weight_leaf_vectors_succeeds(linear_mock, linear_cases):
    failures = []
    for case in linear_cases:
        got = linear_mock.weight_leaf(case["bias"], case["multiplier"], case["shift"], h(case["w_packed"]))
        if got != h(case["weight_leaf"]):
            failures.append(case["name"])
    assert not failures, failures


@pytest.mark.parametrize("bias", [INT32_MIN, -1, 0, 1, INT32_MAX])
def test_weight_leaf_random_succeeds(linear_mock, bias):
    rng = random.Random(bias)
    w = [rng.randint(-128, 127) for _ in range(rng.randint(1, 200))]
    m, s = rng.randint(1, INT32_MAX), rng.randint(1, 62)
    assert linear_mock.weight_leaf(bias, m, s, ref.pack_int8(w)) == ref.weight_leaf(w, bias, m, s)


def test_weight_leaf_encoding_succeeds(linear_mock):
    # enc(b, m, s) || w with b as a signed word: -1 is 32 bytes of 0xff.
    w = b"\x80\x7f"
    want = ref.keccak256(b"\xff" * 32 + (5).to_bytes(32, "big") + (9).to_bytes(32, "big") + w)
    assert linear_mock.weight_leaf(-1, 5, 9, w) == want


# ---------------------------------------------------------------------------
# linear.output_element
# ---------------------------------------------------------------------------


def test_output_element_vectors_succeeds(linear_mock, linear_cases):
    failures = []
    for case in linear_cases:
        got = linear_mock.output_element(h(case["x_packed"]), h(case["w_packed"]), case["bias"],
                                         case["multiplier"], case["shift"], case["relu"])
        if got != case["y"]:
            failures.append(f"{case['name']}: got {got}, want {case['y']}")
    assert not failures, "\n".join(failures)


def test_output_element_requant_vectors_succeeds(linear_mock):
    # Every requant.json case through output_element: x = w = [0], so acc = bias.
    failures = []
    for case in load_vectors("requant")["cases"]:
        got = linear_mock.output_element(b"\x00", b"\x00", case["acc"], case["multiplier"], case["shift"],
                                         case["relu"])
        if got != case["y"]:
            failures.append(f"{case['name']}: got {got}, want {case['y']}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("seed", range(5))
def test_output_element_random_models_succeeds(linear_mock, seed):
    # Random channels of random valid models (tests/helpers.random_ref_model's ranges).
    rng = random.Random(2000 + seed)
    k = rng.choice([1, 7, 32, 33, 100, 784])
    model = random_ref_model(rng, k, [rng.randint(1, 4)], extreme=seed % 2 == 1)
    op = model["ops"][0]
    x = [rng.randint(-128, 127) for _ in range(k)]
    for c in range(len(op["weights"])):
        w, b, m, s = op["weights"][c], op["bias"][c], op["multiplier"][c], op["shift"][c]
        relu = bool(op["flags"] & 1)
        _, want = ref.linear_element(x, w, b, m, s, relu)
        assert linear_mock.output_element(ref.pack_int8(x), ref.pack_int8(w), b, m, s, relu) == want


def test_output_element_accumulator_bound_succeeds(linear_mock):
    # acc = +-(2^31 - 1) exactly: the accumulator bound's equality case.
    w = [-128] * 64
    bias = INT32_MAX - 128 * 128 * 64
    x = [-128] * 64
    acc, y = ref.linear_element(x, w, bias, 1, 25, False)
    assert acc == INT32_MAX
    assert linear_mock.output_element(ref.pack_int8(x), ref.pack_int8(w), bias, 1, 25, False) == y


def test_output_element_accumulator_out_of_range_reverts(linear_mock):
    # A weight row breaking the accumulator bound: acc = 2^31.
    with ape.reverts("requant: accumulator out of range"):
        linear_mock.output_element(b"\x01", b"\x01", INT32_MAX, 1, 1, False)
    with ape.reverts("requant: accumulator out of range"):
        linear_mock.output_element(b"\xff", b"\x01", INT32_MIN, 1, 1, False)


@pytest.mark.parametrize("bias", [INT32_MAX + 1, INT32_MIN - 1, 2**255 - 1, -(2**255)])
def test_output_element_bias_out_of_range_reverts(linear_mock, bias):
    with ape.reverts("linear: bias out of range"):
        linear_mock.output_element(b"\x00", b"\x00", bias, 1, 1, False)


def test_output_element_shift_out_of_range_reverts(linear_mock):
    with ape.reverts("requant: shift out of range"):
        linear_mock.output_element(b"\x01", b"\x01", 0, 1, 0, False)
    with ape.reverts("requant: shift out of range"):
        linear_mock.output_element(b"\x01", b"\x01", 0, 1, 63, False)


def test_output_element_multiplier_out_of_range_reverts(linear_mock):
    with ape.reverts("requant: multiplier out of range"):
        linear_mock.output_element(b"\x01", b"\x01", 0, 0, 1, False)


def test_output_element_length_mismatch_reverts(linear_mock):
    with ape.reverts("int8: length mismatch"):
        linear_mock.output_element(b"\x01\x02", b"\x01", 0, 1, 1, False)


def test_output_element_empty_row_reverts(linear_mock):
    with ape.reverts("int8: empty row"):
        linear_mock.output_element(b"", b"", 0, 1, 1, False)


# ---------------------------------------------------------------------------
# Gas of the one-element check as a transaction (printed with pytest -s)
# ---------------------------------------------------------------------------


def _intrinsic(data: bytes) -> tuple[int, int]:
    """(standard intrinsic gas, EIP-7623 floor) of a call with calldata `data`."""
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    return 21000 + 16 * nonzeros + 4 * zeros, 21000 + 10 * (zeros + 4 * nonzeros)


@pytest.mark.parametrize("k", [512, 4096, 8192, MAX_COLS])
def test_check_element_gas_succeeds(linear_mock, deployer, k):
    rng = random.Random(k)
    x = [rng.randint(-128, 127) for _ in range(k)]
    w = [rng.randint(-128, 127) for _ in range(k)]
    bias, m, s, relu = rng.randint(-(10**6), 10**6), rng.randint(2**20, 2**21), 30, False
    acc, y = ref.linear_element(x, w, bias, m, s, relu)
    xp, wp = ref.pack_int8(x), ref.pack_int8(w)

    got, exec_gas = linear_mock.output_element_gas(xp, wp, bias, m, s, relu)
    assert got == y

    receipt = linear_mock.check_element(xp, wp, bias, m, s, relu, y, sender=deployer)
    assert not receipt.failed
    logs = list(receipt.decode_logs(linear_mock.ElementChecked))
    assert len(logs) == 1 and logs[0].computed == y and logs[0].matches

    receipt_bad = linear_mock.check_element(xp, wp, bias, m, s, relu, y + 1, sender=deployer)
    logs = list(receipt_bad.decode_logs(linear_mock.ElementChecked))
    assert logs[0].computed == y and not logs[0].matches

    data = bytes.fromhex(receipt.transaction.data.hex().removeprefix("0x"))
    standard, floor = _intrinsic(data)
    execution = "calldata floor binds" if receipt.gas_used == floor else f"execution {receipt.gas_used - standard}"
    print(f"\ncheck_element k={k}: gas_used {receipt.gas_used} ({execution}); calldata {len(data)} bytes, "
          f"intrinsic {standard}, EIP-7623 floor {floor}; "
          f"output_element alone {exec_gas} ({exec_gas / k:.1f}/element)")
