"""LinearVerifier (kind 1's one step, protocol 7.4 and 10.9) on the golden vectors and random cases.

Every output element of every `linear` case of ``tests/vectors/transformer_ops.json`` and of the
models of ``tests/vectors/models.json`` (int8 and int16 inputs, ReLU, ``wide``, ``i16``) is
recomputed by the deployed verifier from a witness proven against the case's own roots; the
vectors are read unchanged and the commitments built here must reproduce their ``params_root``
and descriptor. Random cases are checked against the pure-integer reference
(``tests/reference_transformer.run_op``), and every kind of bad witness is refused.
"""

import random

import ape
import pytest
import torch
from eth_abi import encode

from helpers import h, load_vectors
import verifier_witness as vw
from reference_transformer import run_op
from referee import commitments as cm

LINEAR_WITNESS = ("bytes", "bytes32[]", "int256", "int256", "uint256", "bytes", "bytes32[]", "bytes32")
TORCH = {0: torch.int8, 1: torch.int32, 2: torch.int16}
ZERO = bytes(32)


@pytest.fixture(scope="module")
def verifier(project, deployer):
    return deployer.deploy(project.LinearVerifier)


class Case:
    """One linear op over one input: its commitments, and the witness of any element."""

    def __init__(self, op: dict, x_values, x_dtype: int):
        self.op = op
        self.W = torch.tensor(op["weights"], dtype=torch.int8)
        n, k = self.W.shape
        self.bias, self.m, self.s = op["bias"], op["multiplier"], op["shift"]
        self.weights = cm.commit_weights(self.W, torch.tensor(self.bias, dtype=torch.int64),
                                         torch.tensor(self.m, dtype=torch.int64),
                                         torch.tensor(self.s, dtype=torch.int64))
        self.x = torch.tensor(x_values, dtype=TORCH[x_dtype])
        self.xc = cm.commit_tensor(self.x)
        self.desc = (1, op["flags"], op["input_a"], 0, k, n, self.weights.root)
        self.inputs = [self.xc.full_header]

    def witness(self, r: int, c: int, **override) -> bytes:
        parts = {"x": cm.packed(self.x[r:r + 1]), "x_proof": self.xc.tree.proof(r), "bias": self.bias[c],
                 "m": self.m[c], "s": self.s[c], "w": cm.packed(self.W[c:c + 1]),
                 "w_proof": self.weights.tree.proof(c), "root": self.weights.rows_root, **override}
        return encode(LINEAR_WITNESS, tuple(parts.values()))

    def element(self, verifier, r: int, c: int, **override) -> int:
        return verifier.step(*vw.step_args(self.desc, self.inputs, r, c, self.witness(r, c, **override)))


def _vector_cases():
    for case in load_vectors("transformer_ops")["cases"]:
        if case["op"]["kind"] == 1:
            yield case["name"], case
    for model in load_vectors("models")["models"]:
        for j, op in enumerate(model["ops"], start=1):
            x = model["slots"][op["input_a"]]["values"]
            out = model["slots"][j]["values"]
            yield f"{model['name']} op {j}", {"op": op, "inputs": [{"dtype": 0, "values": x}],
                                              "output": {"values": out}, "params_root": op["weights_root"],
                                              "descriptor": op["descriptor"]}


VECTORS = dict(_vector_cases())


@pytest.mark.parametrize("name", VECTORS)
def test_element_golden_vectors_succeeds(verifier, name):
    case = VECTORS[name]
    inp = case["inputs"][0]
    c = Case(case["op"], inp["values"], inp["dtype"])
    assert c.weights.root == h(case["params_root"])
    assert cm.descriptor(*c.desc) == h(case["descriptor"])
    out = case["output"]["values"]
    for r in range(len(out)):
        for col in range(len(out[0])):
            assert c.element(verifier, r, col) == out[r][col], (r, col)


def _random_op(rng, k, n, flags, x_bits):
    """Weights that keep the accumulator bound of section 4 for an input of ``x_bits``."""
    big = 2**15 if x_bits == 16 else 128
    limit = (2**31 - 1 - 1000) // big  # sum |W[c, :]| for every channel
    cap = max(1, min(127, limit // k))
    W = [[rng.randint(-cap, cap) for _ in range(k)] for _ in range(n)]
    return {"kind": 1, "flags": flags, "input_a": 0, "input_b": 0, "in_cols": k, "out_cols": n, "weights": W,
            "bias": [rng.randint(-1000, 1000) for _ in range(n)],
            "multiplier": [rng.randint(1, 2**31 - 1) for _ in range(n)],
            "shift": [rng.randint(20, 40) for _ in range(n)]}


@pytest.mark.parametrize("seed, flags, x_dtype, k", [
    (1, 0, 0, 33), (2, 1, 0, 64), (3, 2, 0, 100), (4, 128, 0, 17),
    (5, 128, 2, 31), (6, 129, 2, 48), (7, 2, 2, 65), (8, 0, 2, 5), (9, 1, 2, 1),
])
def test_element_random_cases_match_reference_succeeds(verifier, seed, flags, x_dtype, k):
    rng = random.Random(seed)
    n, rows = 3, 3
    op = _random_op(rng, k, n, flags, 16 if x_dtype == 2 else 8)
    lo, hi = (-2**15, 2**15 - 1) if x_dtype == 2 else (-128, 127)
    x = [[rng.choice([lo, hi, rng.randint(lo, hi)]) for _ in range(k)] for _ in range(rows)]
    expected = run_op(op, [x], [x_dtype])
    c = Case(op, x, x_dtype)
    for r in range(rows):
        for col in range(n):
            assert c.element(verifier, r, col) == expected[r][col], (r, col)


@pytest.fixture(scope="module")
def case16():
    rng = random.Random(11)
    op = _random_op(rng, 40, 3, 128, 16)
    return Case(op, [[rng.randint(-2**15, 2**15 - 1) for _ in range(40)] for _ in range(3)], 2)


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


@pytest.mark.parametrize("override, reason", [
    (lambda c: {"x": cm.packed(c.x[0:1])[:-2]}, "linear: input row length differs from the op's"),
    (lambda c: {"x": _flip(cm.packed(c.x[1:2]))}, "linear: input row not in the op's input"),
    (lambda c: {"x_proof": c.xc.tree.proof(0)}, "linear: input row not in the op's input"),
    (lambda c: {"root": ZERO}, "linear: weights header does not match the op"),
    (lambda c: {"w": cm.packed(c.W[1:2])[:-1]}, "linear: weight row length differs from the op's"),
    (lambda c: {"w": _flip(cm.packed(c.W[1:2]))}, "linear: weight row not in the weights"),
    (lambda c: {"bias": c.bias[1] + 1}, "linear: weight row not in the weights"),
    (lambda c: {"m": c.m[1] + 1}, "linear: weight row not in the weights"),
    (lambda c: {"s": c.s[1] + 1}, "linear: weight row not in the weights"),
    (lambda c: {"w_proof": c.weights.tree.proof(0)}, "linear: weight row not in the weights"),
])
def test_element_bad_witness_reverts(verifier, case16, override, reason):
    """Row 1, column 1 of an int16-input op with each part of the witness wrong."""
    with ape.reverts(reason):
        case16.element(verifier, 1, 1, **override(case16))


@pytest.mark.parametrize("change, reason", [
    (lambda d, i: ((2, *d[1:]), i), "linear: not a linear op"),
    (lambda d, i: ((1, d[1] | 4, *d[2:]), i), "linear: bad flags"),
    (lambda d, i: ((1, 3, *d[2:]), i), "linear: bad flags"),
    (lambda d, i: ((1, 130, *d[2:]), i), "linear: bad flags"),
    (lambda d, i: (d, [i[0], i[0]]), "linear: one input slot"),
    (lambda d, i: (d, [(i[0][0], i[0][1] + 1, *i[0][2:])]), "linear: input cols differ from the op's"),
    (lambda d, i: (d, [(*i[0][:3], 1)]), "linear: input dtype not int8 or int16"),
])
def test_element_bad_descriptor_or_header_reverts(verifier, case16, change, reason):
    desc, inputs = change(case16.desc, case16.inputs)
    with ape.reverts(reason):
        verifier.step(*vw.step_args(desc, inputs, 1, 1, case16.witness(1, 1)))


def test_element_row_or_column_out_of_range_reverts(verifier, case16):
    with ape.reverts("linear: row out of range"):
        verifier.step(*vw.step_args(case16.desc, case16.inputs, 3, 1, case16.witness(1, 1)))
    with ape.reverts("linear: column out of range"):
        verifier.step(*vw.step_args(case16.desc, case16.inputs, 1, 3, case16.witness(1, 1)))


def test_element_int8_witness_for_int16_header_reverts(verifier, case16):
    """An int16 header with an int8-length row: refused on the length, never read as int8."""
    with ape.reverts("linear: input row length differs from the op's"):
        case16.element(verifier, 1, 1, x=bytes(40))


def _hand_case(k: int, bias: int, x_row: bytes, w_row: bytes):
    """One row, one channel, committed by hand (for shapes and values the helpers refuse):
    the descriptor, the input header and the witness of element (0, 0)."""
    from referee.hashing import enc, keccak256
    from referee.merkle import MerkleTree

    x_tree = MerkleTree([keccak256(x_row)], 0)
    w_tree = MerkleTree([keccak256(enc(bias, 1, 1) + w_row)], 0)
    params_root = keccak256(enc(1, k, w_tree.root))
    desc = (1, 0, 0, 0, k, 1, params_root)
    witness = encode(LINEAR_WITNESS, (x_row, x_tree.proof(0), bias, 1, 1, w_row, w_tree.proof(0), w_tree.root))
    return desc, [(1, k, x_tree.root, 0)], witness


def test_element_empty_rows_reverts(verifier):
    """in_cols = 0 (section 8 has cols >= 1): every hash verifies, yet no element is returned."""
    desc, inputs, witness = _hand_case(0, 5, b"", b"")
    with ape.reverts("linear: empty row"):
        verifier.step(*vw.step_args(desc, inputs, 0, 0, witness))


MALFORMED = -(2**255)  # rows.MALFORMED: a revealed value breaks its range (protocol 7.4)


def test_element_bias_past_int32_is_malformed(verifier):
    """A bias of 2^31 whose sum with the dot product is back in the int32 range: still refused
    (section 4: b is an int32), not requantized: the step answers MALFORMED (the solver loses)."""
    desc, inputs, witness = _hand_case(1, 2**31, bytes([0x80]), bytes([0x7F]))  # -128 * 127
    assert verifier.step(*vw.step_args(desc, inputs, 0, 0, witness)) == MALFORMED
    desc, inputs, witness = _hand_case(1, -(2**31) - 1, bytes([0x80]), bytes([0x80]))  # + 128 * 128
    assert verifier.step(*vw.step_args(desc, inputs, 0, 0, witness)) == MALFORMED
    desc, inputs, witness = _hand_case(1, 2**31 - 1, bytes([0x80]), bytes([0x7F]))
    assert verifier.step(*vw.step_args(desc, inputs, 0, 0, witness)) == 127  # the int32 maximum is fine: clamped


def _hand_leaf(bias: int, m: int, s: int, x_row: bytes, w_row: bytes, x_dtype: int = 0):
    """As ``_hand_case`` with the leaf's m and s chosen (and the input's dtype: 0 int8, 2 int16)."""
    from referee.hashing import enc, keccak256
    from referee.merkle import MerkleTree

    k = len(w_row)
    x_tree = MerkleTree([keccak256(x_row)], 0)
    w_tree = MerkleTree([keccak256(enc(bias, m, s) + w_row)], 0)
    desc = (1, 0, 0, 0, k, 1, keccak256(enc(1, k, w_tree.root)))
    witness = encode(LINEAR_WITNESS, (x_row, x_tree.proof(0), bias, m, s, w_row, w_tree.proof(0), w_tree.root))
    return desc, [(1, k, x_tree.root, x_dtype)], witness


@pytest.mark.parametrize("bias, m, s", [
    (0, 0, 1), (0, 2**31, 1), (0, -1, 1), (0, 1, 0), (0, 1, 63),
    (2**31 - 1, 1, 1), (-(2**31), 1, 1),  # the accumulator leaves int32 (bound broken)
])
def test_element_leaf_out_of_range_is_malformed(verifier, bias, m, s):
    """m, s or the accumulator out of section 4's ranges in a leaf that verifies: MALFORMED."""
    x, w = (bytes([0x7F]), bytes([0x7F])) if bias > 0 else (bytes([0x80]), bytes([0x7F]))
    desc, inputs, witness = _hand_leaf(bias, m, s, x, w)
    assert verifier.step(*vw.step_args(desc, inputs, 0, 0, witness)) == MALFORMED


@pytest.mark.parametrize("bias, m, s", [(0, 1, 1), (0, 2**31 - 1, 62), (2**31 - 1 - 16129, 2**31 - 1, 1),
                                        (-(2**31), 1, 62)])
def test_element_leaf_range_edges_succeed(verifier, bias, m, s):
    """The edges of each range are in it (the accumulator's too: 2^31 - 1 and, with x = w = 127,
    -2^31 + 16129)."""
    desc, inputs, witness = _hand_leaf(bias, m, s, bytes([0x7F]), bytes([0x7F]))
    acc = bias + 127 * 127
    y = max(-128, min(127, (acc * m + 2 ** (s - 1)) >> s))
    assert verifier.step(*vw.step_args(desc, inputs, 0, 0, witness)) == y


@pytest.mark.parametrize("bias, m, s, malformed", [
    (0, 1, 1, False), (2**31 - 1 - 300 * 127, 2**31 - 1, 62, False),  # in range, the accumulator's edge too
    (0, 0, 1, True), (0, 1, 63, True), (2**31, 1, 1, True), (2**31 - 300 * 127, 1, 1, True),
])
def test_element_int16_leaf_out_of_range_is_malformed(verifier, bias, m, s, malformed):
    """An int16 input takes element's other block, which has its own range check of the leaf:
    the same leaves are MALFORMED there (x = 300, w = 127), and the in-range ones are requantized."""
    desc, inputs, witness = _hand_leaf(bias, m, s, (300).to_bytes(2, "big", signed=True), bytes([0x7F]), 2)
    acc = bias + 300 * 127
    want = MALFORMED if malformed else max(-128, min(127, (acc * m + 2 ** (s - 1)) >> s))
    assert verifier.step(*vw.step_args(desc, inputs, 0, 0, witness)) == want
