"""Tests of tests/reference.py against facts that do not come from it.

Known Keccak-256 digests, the examples of docs/protocol.md, and values worked out by hand
(the working is in the comments). A test named ``..._fails`` checks that something is
rejected; ``..._succeeds`` that something is accepted or computed as expected.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

import reference as ref  # noqa: E402

GENERATE = TESTS / "vectors" / "generate.py"
REPO = TESTS.parent


def h(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr.removeprefix("0x"))


def u256(v: int) -> bytes:
    return v.to_bytes(32, "big")


def k(data: bytes) -> bytes:
    return ref.keccak256(data)


Z0 = bytes(32)
Z1 = h("ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5")
A, B, C, D, E = (bytes([i]) * 32 for i in range(1, 6))

# ---------------------------------------------------------------------------------------
# Keccak and zero hashes


def test_keccak256_empty_input_succeeds():
    assert ref.keccak256(b"") == h(
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


def test_keccak256_known_digests_succeeds():
    # keccak256(bytes32(0)): the EVM's well-known storage slot of a dynamic array at slot 0.
    assert ref.keccak256(bytes(32)) == h(
        "290decd9548b62a8d60345a988386fc84ba6bc95484008f6362f93160ef3e563")
    assert ref.keccak256(b"abc") == h(
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45")
    # Not NIST SHA3-256, whose empty digest is a7ffc6f8...
    assert ref.keccak256(b"").hex() != (
        "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a")


def test_keccak256_matches_other_implementation_succeeds():
    sha3 = pytest.importorskip("sha3")  # pysha3, a separate Keccak implementation
    for data in (b"", b"abc", bytes(64), bytes(range(256)) * 3):
        assert ref.keccak256(data) == sha3.keccak_256(data).digest()


def test_zero_hashes_first_levels_succeeds():
    z = ref.zero_hashes(33)
    assert len(z) == 33
    assert z[0] == bytes(32)
    assert z[1] == ref.keccak256(bytes(64))
    assert z[1] == Z1
    assert z[2] == ref.keccak256(Z1 + Z1)


# ---------------------------------------------------------------------------------------
# depth


@pytest.mark.parametrize("n, d", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4),
                                  (65535, 16), (65536, 16), (65537, 17)])
def test_depth_spec_table_succeeds(n, d):
    assert ref.depth(n) == d


def test_depth_zero_fails():
    with pytest.raises(ValueError):
        ref.depth(0)


# ---------------------------------------------------------------------------------------
# requantize


@pytest.mark.parametrize("acc, m, s, relu, y", [
    # The spec's examples, m = 1, s = 1.
    (3, 1, 1, False, 2),
    (-3, 1, 1, False, -1),
    (-1, 1, 1, False, 0),
    (1, 1, 1, False, 1),
    # 10*3 = 30; (30 + 2) >> 2 = 8 (7.5 rounds up).
    (10, 3, 2, False, 8),
    # -30; (-30 + 2) >> 2 = -28 >> 2 = -7 (-7.5 rounds toward +inf).
    (-10, 3, 2, False, -7),
    # (-9 + 8) >> 4 = -1 >> 4 = -1 (floor of -1/16), i.e. -0.5625 -> -1.
    (-9, 1, 4, False, -1),
    # (1012 + 4) >> 3 = 127 (126.5 -> 127); (1020 + 4) >> 3 = 128 -> clamped to 127.
    (1012, 1, 3, False, 127),
    (1020, 1, 3, False, 127),
    # (-1028 + 4) >> 3 = -1024 >> 3 = -128 (-128.5 -> -128, not a clamp).
    (-1028, 1, 3, False, -128),
    # (-1029 + 4) >> 3 = -1025 >> 3 = -129 (floor of -128.125) -> clamped to -128.
    (-1029, 1, 3, False, -128),
    # (2^31-1)^2 = 2^62 - 2^32 + 1; + 2^61, >> 62: floor(1.4999...) = 1.
    (2**31 - 1, 2**31 - 1, 62, False, 1),
    # -2^31 * (2^31-1) = -2^62 + 2^31; + 2^61 = -2^61 + 2^31; >> 62 = -1.
    (-(2**31), 2**31 - 1, 62, False, -1),
    # -2^31 * 2^30 = -2^61; + 2^61 = 0; >> 62 = 0 (-0.5 -> 0).
    (-(2**31), 2**30, 62, False, 0),
    # ReLU after the clamp: -25 -> 0; 25 stays; -128 -> 0.
    (-100, 1, 2, True, 0),
    (100, 1, 2, True, 25),
    (-(2**31), 2**31 - 1, 1, True, 0),
    (0, 1, 1, True, 0),
])
def test_requantize_hand_worked_succeeds(acc, m, s, relu, y):
    assert ref.requantize(acc, m, s, relu) == y


@pytest.mark.parametrize("acc, m, s", [
    (1, 1, 0), (1, 1, 63), (1, 0, 1), (1, 2**31, 1), (2**31, 1, 1), (-(2**31) - 1, 1, 1),
])
def test_requantize_out_of_range_fails(acc, m, s):
    with pytest.raises(ValueError):
        ref.requantize(acc, m, s, False)


# ---------------------------------------------------------------------------------------
# Byte encodings


def test_pack_int8_twos_complement_succeeds():
    assert ref.pack_int8([-1, -128, 0, 127, 1]) == bytes([0xFF, 0x80, 0x00, 0x7F, 0x01])


@pytest.mark.parametrize("bad", [128, -129, 1.0, True])
def test_pack_int8_out_of_range_fails(bad):
    with pytest.raises(ValueError):
        ref.pack_int8([0, bad])


def test_descriptor_seven_words_succeeds():
    root = bytes(range(32))
    desc = ref.descriptor(1, 1, 0, 0, 300, 7, root)
    assert desc == u256(1) + u256(1) + u256(0) + u256(0) + u256(300) + u256(7) + root
    assert len(desc) == 224


# ---------------------------------------------------------------------------------------
# Merkle trees


def test_merkle_root_hand_built_succeeds():
    assert ref.merkle_root([A], 0) == A
    assert ref.merkle_root([A, B], 1) == k(A + B)
    # Three leaves pad with Z[0] to four.
    assert ref.merkle_root([A, B, C], 2) == k(k(A + B) + k(C + Z0))
    # One leaf in a depth-2 tree: the empty right half is Z[1].
    assert ref.merkle_root([A], 2) == k(k(A + Z0) + Z1)
    # Five leaves, depth 3: the right half is H(H(E || Z0) || Z[1]).
    left = k(k(A + B) + k(C + D))
    right = k(k(E + Z0) + Z1)
    assert ref.merkle_root([A, B, C, D, E], 3) == k(left + right)


def test_merkle_root_too_many_leaves_fails():
    with pytest.raises(ValueError):
        ref.merkle_root([A, B, C], 1)


def test_merkle_proof_hand_built_succeeds():
    # Leaf 2 (C) of [A, B, C] at depth 2: siblings Z[0] then H(A || B).
    assert ref.merkle_proof([A, B, C], 2, 2) == [Z0, k(A + B)]
    # Leaf 4 (E) of five at depth 3: Z[0], Z[1], then the left half.
    assert ref.merkle_proof([A, B, C, D, E], 3, 4) == [Z0, Z1, k(k(A + B) + k(C + D))]


def test_merkle_verify_every_leaf_succeeds():
    leaves = [A, B, C, D, E]
    root = ref.merkle_root(leaves, 3)
    for i, leaf in enumerate(leaves):
        assert ref.merkle_verify(leaf, i, ref.merkle_proof(leaves, 3, i), root)
    # A padding position proves Z[0].
    assert ref.merkle_verify(Z0, 6, ref.merkle_proof(leaves, 3, 6), root, depth=3)


def test_merkle_verify_wrong_sibling_fails():
    leaves = [A, B, C, D, E]
    root = ref.merkle_root(leaves, 3)
    sib = ref.merkle_proof(leaves, 3, 1)
    for h_ in range(3):
        bad = list(sib)
        bad[h_] = bytes([bad[h_][0] ^ 1]) + bad[h_][1:]
        assert not ref.merkle_verify(B, 1, bad, root)


def test_merkle_verify_wrong_index_fails():
    leaves = [A, B, C, D, E]
    root = ref.merkle_root(leaves, 3)
    sib = ref.merkle_proof(leaves, 3, 1)
    for i in (0, 2, 3, 5, 9, -1):
        assert not ref.merkle_verify(B, i, sib, root)


def test_merkle_verify_wrong_leaf_fails():
    leaves = [A, B, C]
    root = ref.merkle_root(leaves, 2)
    assert not ref.merkle_verify(A, 1, ref.merkle_proof(leaves, 2, 1), root)


def test_merkle_verify_wrong_proof_length_fails():
    leaves = [A, B, C, D, E]
    root = ref.merkle_root(leaves, 3)
    sib = ref.merkle_proof(leaves, 3, 1)
    assert not ref.merkle_verify(B, 1, sib[:-1], root)
    assert not ref.merkle_verify(B, 1, sib + [Z0], root)
    assert not ref.merkle_verify(B, 1, sib, root, depth=4)


def test_merkle_verify_inner_node_as_leaf_fails():
    # Without a fixed depth the inner node H(A || B) verifies at height 1 with a 2-sibling
    # proof; with the depth fixed by the shape (3) it is rejected.
    leaves = [A, B, C, D, E]
    root = ref.merkle_root(leaves, 3)
    inner = k(A + B)
    sib = [k(C + D), k(k(E + Z0) + Z1)]
    assert ref.merkle_verify(inner, 0, sib, root)
    assert not ref.merkle_verify(inner, 0, sib, root, depth=3)


# ---------------------------------------------------------------------------------------
# Tensors


def test_tensor_root_1x1_succeeds():
    # One row: the rows root is the row leaf H(0x05).
    leaf = k(b"\x05")
    assert ref.tensor_header([[5]]) == (1, 1, leaf)
    assert ref.tensor_root([[5]]) == k(u256(1) + u256(1) + leaf)


def test_tensor_root_three_rows_padding_succeeds():
    x = [[1, -1], [0, 0], [-128, 127]]
    l0, l1, l2 = k(b"\x01\xff"), k(b"\x00\x00"), k(b"\x80\x7f")
    rows_root = k(k(l0 + l1) + k(l2 + Z0))  # padding is Z[0], not H(zero row)
    assert ref.tensor_header(x) == (3, 2, rows_root)
    assert ref.tensor_root(x) == k(u256(3) + u256(2) + rows_root)


@pytest.mark.parametrize("bad", [[], [[]], [[1, 2], [3]], [[128]], [[0] * 16385]])
def test_tensor_header_bad_shape_fails(bad):
    with pytest.raises(ValueError):
        ref.tensor_header(bad)


# ---------------------------------------------------------------------------------------
# The linear op


def test_accumulator_bound_hand_worked_succeeds():
    # 128 * (128 + 5) + 7 = 17031
    assert ref.accumulator_bound([-128, 5], -7) == 17031


def test_linear_element_bound_exceeded_fails():
    # 128 * 128 + (2^31 - 1) > 2^31 - 1
    with pytest.raises(ValueError):
        ref.linear_element([1], [-128], 2**31 - 1, 1, 1, False)
    with pytest.raises(ValueError):
        ref.linear_element([0], [0], -(2**31), 1, 1, False)


def test_linear_hand_worked_succeeds():
    # Column 0: 3 + 4*1 + 5*2 = 17; (17 + 1) >> 1 = 9.
    # Column 1: -1 + 4*-3 + 5*0 = -13; (-13 + 2) >> 2 = -11 >> 2 = -3.
    assert ref.linear_element([4, 5], [1, 2], 3, 1, 1, False) == (17, 9)
    assert ref.linear_element([4, 5], [-3, 0], -1, 1, 2, False) == (-13, -3)
    assert ref.linear([[4, 5]], [[1, 2], [-3, 0]], [3, -1], [1, 1], [1, 2], False) == [[9, -3]]
    assert ref.linear([[4, 5]], [[1, 2], [-3, 0]], [3, -1], [1, 1], [1, 2], True) == [[9, 0]]


def test_linear_element_min_times_min_succeeds():
    # -128 * -128 = 16384; (16384 + 128) >> 8 = 64.
    assert ref.linear_element([-128], [-128], 0, 1, 8, False) == (16384, 64)


def test_linear_shape_mismatch_fails():
    with pytest.raises(ValueError):
        ref.linear([[1, 2, 3]], [[1, 2]], [0], [1], [1], False)


def test_weight_leaf_hand_built_succeeds():
    # b = -1 is 32 bytes of 0xff; m and s unsigned words; then the packed row.
    want = k(b"\xff" * 32 + u256(2) + u256(3) + b"\x01\xff")
    assert ref.weight_leaf([1, -1], -1, 2, 3) == want


def test_weights_root_hand_built_succeeds():
    wl0 = k(u256(0) + u256(1) + u256(1) + b"\x01\x02")
    wl1 = k(u256(5) + u256(7) + u256(9) + b"\xfe\x80")
    wl2 = k(b"\xff" * 31 + b"\xfe" + u256(1) + u256(62) + b"\x00\x7f")  # b = -2
    rows_root = k(k(wl0 + wl1) + k(wl2 + Z0))
    W = [[1, 2], [-2, -128], [0, 127]]
    assert ref.weights_header(W, [0, 5, -2], [1, 7, 1], [1, 9, 62]) == (3, 2, rows_root)
    assert ref.weights_root(W, [0, 5, -2], [1, 7, 1], [1, 9, 62]) == k(
        u256(3) + u256(2) + rows_root)


# ---------------------------------------------------------------------------------------
# Models and state


def one_op_model():
    return {"input_cols": 2, "ops": [
        {"kind": 1, "flags": 0, "input_a": 0, "input_b": 0,
         "weights": [[1, 2], [-3, 0]], "bias": [3, -1], "multiplier": [1, 1],
         "shift": [1, 2]}]}


def test_model_root_one_op_hand_built_succeeds():
    model = one_op_model()
    op = model["ops"][0]
    wr = ref.weights_root(op["weights"], op["bias"], op["multiplier"], op["shift"])
    desc = (u256(1) + u256(0) + u256(0) + u256(0) + u256(2) + u256(2) + wr)
    assert ref.op_descriptor(model, 1) == desc
    # N = 1: the ops tree has depth 0, its root is the op leaf itself.
    assert ref.ops_root(model) == k(desc)
    assert ref.model_root(model) == k(u256(1) + u256(2) + u256(2) + k(desc))


def test_run_model_and_state_roots_succeeds():
    model = one_op_model()
    x = [[4, 5]]
    slots = ref.run_model(model, x)
    assert slots == [[[4, 5]], [[9, -3]]]
    t0, t1 = ref.tensor_root(slots[0]), ref.tensor_root(slots[1])
    d = ref.state_depth(model)
    assert d == 1  # depth(N + 1) = depth(2)
    assert ref.state_roots([t0, t1], d) == [k(t0 + Z0), k(t0 + t1)]
    sib = ref.slot_update_proof([t0, t1], d, 1)
    assert sib == [t0]
    assert ref.merkle_verify(Z0, 1, sib, k(t0 + Z0), depth=1)
    assert ref.merkle_verify(t1, 1, sib, k(t0 + t1), depth=1)


def test_run_model_skip_connection_succeeds():
    # Op 2 reads slot 0, not slot 1: 1*4 + 1*5 = 9; (9 + 1) >> 1 = 5.
    model = one_op_model()
    model["ops"].append({"kind": 1, "flags": 1, "input_a": 0, "input_b": 0,
                         "weights": [[1, 1]], "bias": [0], "multiplier": [1],
                         "shift": [1]})
    assert ref.run_model(model, [[4, 5]])[2] == [[5]]


@pytest.mark.parametrize("field, value", [
    ("kind", 0), ("kind", 2), ("flags", 2), ("input_a", 1), ("input_b", 1),
])
def test_validate_model_bad_op_fails(field, value):
    model = one_op_model()
    model["ops"][0][field] = value
    with pytest.raises(ValueError):
        ref.validate_model(model)


def test_validate_model_in_cols_mismatch_fails():
    model = one_op_model()
    model["input_cols"] = 3
    with pytest.raises(ValueError):
        ref.validate_model(model)


# ---------------------------------------------------------------------------------------
# Bisection


@pytest.mark.parametrize("lo, hi, arity, points", [
    (0, 10, 4, [0, 2, 5, 7, 10]),   # floor(10/4) = 2, floor(20/4) = 5, floor(30/4) = 7
    (0, 3, 4, [0, 1, 2, 3]),        # L < arity: p = 3
    (5, 7, 8, [5, 6, 7]),           # p = 2
    (0, 8, 8, [0, 1, 2, 3, 4, 5, 6, 7, 8]),
    (0, 5, 2, [0, 2, 5]),           # floor(5/2) = 2
    (100, 165535, 2, [100, 82817, 165535]),  # 100 + floor(165435/2)
])
def test_bisection_points_hand_worked_succeeds(lo, hi, arity, points):
    assert ref.bisection_points(lo, hi, arity) == points


@pytest.mark.parametrize("lo, hi, arity", [(0, 1, 2), (3, 3, 2), (5, 2, 2), (0, 9, 3),
                                           (0, 9, 1), (0, 9, 0)])
def test_bisection_points_bad_arguments_fails(lo, hi, arity):
    with pytest.raises(ValueError):
        ref.bisection_points(lo, hi, arity)


# ---------------------------------------------------------------------------------------
# The golden vectors


def run_generate(*args):
    return subprocess.run([sys.executable, str(GENERATE), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_generate_check_committed_vectors_succeeds():
    result = run_generate("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generate_check_tampered_vectors_fails(tmp_path):
    for name in ("requant", "linear", "merkle", "tensors", "bisection", "models"):
        shutil.copy(TESTS / "vectors" / f"{name}.json", tmp_path / f"{name}.json")
    path = tmp_path / "merkle.json"
    path.write_text(path.read_text().replace('"depth": 3', '"depth": 4', 1))
    (tmp_path / "bisection.json").unlink()
    result = run_generate("--check", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "merkle.json" in result.stderr
    assert "bisection.json" in result.stderr
    assert "linear.json" not in result.stderr


# ---------------------------------------------------------------------------------------
# Encodings against an independent ABI encoder


def test_enc_matches_eth_abi_succeeds():
    eth_abi = pytest.importorskip("eth_abi")
    root = bytes(range(1, 33))
    assert ref.descriptor(1, 1, 3, 0, 16384, 7, root) == eth_abi.encode(
        ["uint256"] * 6 + ["bytes32"], [1, 1, 3, 0, 16384, 7, root])
    w = [-128, 127, 0, -1]
    for bias in (-(2**31), -1, 0, 2**31 - 1):
        want = k(eth_abi.encode(["int256", "uint256", "uint256"], [bias, 2**31 - 1, 62])
                 + bytes(v & 0xFF for v in w))
        assert ref.weight_leaf(w, bias, 2**31 - 1, 62) == want
    x = [[1, 2, 3], [-4, -5, -6]]
    rows, cols, rows_root = ref.tensor_header(x)
    assert ref.tensor_root(x) == k(eth_abi.encode(["uint256", "uint256", "bytes32"],
                                                  [rows, cols, rows_root]))


# ---------------------------------------------------------------------------------------
# The vector files carry exactly the fields of docs/protocol.md section 9

SPEC_FIELDS = {
    "requant.json": ("cases", ["name", "acc", "multiplier", "shift", "relu", "y"]),
    "linear.json": ("cases", ["name", "x", "w", "bias", "multiplier", "shift", "relu", "acc",
                              "y", "x_packed", "w_packed", "weight_leaf"]),
    "merkle.json": ("trees", ["name", "leaves", "depth", "root", "proofs"]),
    "tensors.json": ("cases", ["name", "rows", "cols", "values", "packed", "row_leaves",
                               "rows_root", "tensor_root", "row_proofs"]),
    "bisection.json": ("cases", ["lo", "hi", "arity", "points"]),
    "models.json": ("models", ["name", "input_cols", "output_cols", "state_depth", "ops",
                               "ops_root", "model_root", "input", "slots", "state_roots",
                               "slot_update_proofs"]),
}
OP_FIELDS = ["kind", "flags", "input_a", "input_b", "in_cols", "out_cols", "weights", "bias",
             "multiplier", "shift", "weight_leaves", "weights_rows_root", "weights_root",
             "descriptor", "op_leaf", "op_proof"]


def _check_hex(value):
    # Every string in the vectors other than a name or description is 0x-lowercase-hex.
    assert value.startswith("0x") and value[2:] == value[2:].lower()
    bytes.fromhex(value[2:])


def _walk(obj, key=None):
    if isinstance(obj, dict):
        for k_, v in obj.items():
            _walk(v, k_)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, key)
    elif isinstance(obj, str) and key not in ("name", "description"):
        _check_hex(obj)


@pytest.mark.parametrize("fname", sorted(SPEC_FIELDS))
def test_vectors_fields_match_spec_succeeds(fname):
    import json
    data = json.loads((TESTS / "vectors" / fname).read_text())
    list_key, fields = SPEC_FIELDS[fname]
    extra_top = {"zero_hashes"} if fname == "merkle.json" else set()
    assert set(data) == {"description", list_key} | extra_top
    assert data[list_key]
    for item in data[list_key]:
        assert list(item) == fields
    if fname == "merkle.json":
        assert len(data["zero_hashes"]) == 33
        for tree in data["trees"]:
            for p in tree["proofs"]:
                assert list(p) == ["index", "siblings"]
    if fname == "tensors.json":
        for case in data["cases"]:
            for p in case["row_proofs"]:
                assert list(p) == ["index", "siblings"]
    if fname == "models.json":
        for model in data["models"]:
            for op in model["ops"]:
                assert list(op) == OP_FIELDS
            for slot in model["slots"]:
                assert list(slot) == ["values", "packed", "rows_root", "tensor_root"]
            for p in model["slot_update_proofs"]:
                assert list(p) == ["step", "siblings"]
            assert len(model["slots"]) == len(model["state_roots"]) == len(model["ops"]) + 1
    _walk(data)
