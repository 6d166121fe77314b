"""The one-step verifiers of kinds 2-11 (contracts/verifiers/, docs/protocol.md 10.9) on the
golden vectors of tests/vectors/transformer_ops.json, unchanged: every element of a small
output (at most ELEMENTS per case, corners included) recomputed on-chain from the witness that
tests/verifier_witness.py builds from the independent reference's trees; and every hash check
(a wrong proof, table, params header or rho) reverting with the kind's reason.

The module `rows` (contracts/modules/rows.vy) is tested through rows_mock on section 3's
packing. Random cases against the reference: tests/test_verifiers_random.py.
"""

import random

import ape
import pytest
from helpers import load_vectors

import reference_transformer as rt
import verifier_witness as vw

ELEMENTS = 64  # elements checked per golden case: every one for 89 of the 95 cases


@pytest.fixture(scope="module")
def verifiers(project, deployer):
    """One deployed verifier per kind."""
    return {kind: deployer.deploy(getattr(project, f"{name}Verifier")) for kind, name in vw.NAMES.items()}


@pytest.fixture(scope="module")
def rows_mock(project, deployer):
    return deployer.deploy(project.rows_mock)


OPS = load_vectors("transformer_ops")["cases"]
CASES = [c for c in OPS if c["op"]["kind"] in vw.NAMES]


# ---------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [0, 1, 2])
@pytest.mark.parametrize("cols", [1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 100])
def test_rows_element_every_column_succeeds(rows_mock, dtype, cols):
    _, lo, hi = rt.DTYPES[dtype]
    rng = random.Random(cols * 3 + dtype)
    values = [rng.choice((lo, hi, -1, 0, 1, rng.randint(lo, hi))) for _ in range(cols)]
    packed = rt.pack_row(values, dtype)
    assert [rows_mock.element(packed, dtype, c) for c in range(cols)] == values
    assert rows_mock.leaf(packed) == rt.keccak256(packed)


def test_rows_element_out_of_range_reverts(rows_mock):
    with ape.reverts("rows: column out of range"):
        rows_mock.element(bytes(8), 1, 2)
    with ape.reverts("rows: unknown dtype"):
        rows_mock.element(bytes(8), 3, 0)


def test_rows_width_and_depth_succeeds(rows_mock):
    assert [rows_mock.width(d) for d in (0, 1, 2)] == [1, 4, 2]
    assert [rows_mock.depth(n) for n in (1, 2, 3, 4, 5, 2**16, 2**24)] == [0, 1, 2, 2, 3, 16, 24]


def test_rows_vectors_succeeds(rows_mock):
    # tests/vectors/transformer_tensors.json: packed rows of every dtype, their leaves and roots.
    failures = []
    for case in load_vectors("transformer_tensors")["cases"]:
        width = rt.DTYPES[case["dtype"]][0]
        packed = vw.h(case["packed"])
        step = case["cols"] * width
        for r, values in enumerate(case["values"]):
            row = packed[r * step:(r + 1) * step]
            if rows_mock.leaf(row) != vw.h(case["row_leaves"][r]):
                failures.append(f"{case['name']} leaf {r}")
            got = [rows_mock.element(row, case["dtype"], c) for c in range(min(case["cols"], 9))]
            if got != values[:9]:
                failures.append(f"{case['name']} row {r}: {got}")
    assert not failures, failures


def test_rows_verify_depth_24_succeeds(rows_mock):
    leaves = [rt.keccak256(bytes([i])) for i in range(5)]
    root = rt.ref.merkle_root(leaves, 24)
    proof = rt.ref.merkle_proof(leaves, 24, 3)
    assert rows_mock.verify(leaves[3], 3, proof, 24, root)
    assert not rows_mock.verify(leaves[3], 3, proof[:-1], 24, root)
    assert not rows_mock.verify(leaves[3], 2**24 + 3, proof, 24, root)
    assert not rows_mock.verify(leaves[2], 3, proof, 24, root)


@pytest.mark.parametrize("acc,m,s,i16,want", [
    (3, 1, 1, False, 2), (-3, 1, 1, False, -1), (-1, 1, 1, False, 0), (1, 1, 1, False, 1),
    (2**31 - 1, 2**31 - 1, 1, False, 127), (-(2**31), 2**31 - 1, 1, False, -128),
    (2**47, 2**31 - 1, 62, True, 32767), (-(2**47), 2**31 - 1, 62, True, -32768),
    (2**47, 2**14, 62, True, 1), (-(2**47), 2**14, 62, True, 0),
    (10**6, 1, 1, True, 32767), (-(10**6), 1, 1, True, -32768), (-65537, 1, 1, True, -32768),
])
def test_rows_requantize_succeeds(rows_mock, acc, m, s, i16, want):
    lo, hi = rt.rk.RANGES[16 if i16 else 8]
    assert rows_mock.requantize(acc, m, s, i16) == want == min(max((acc * m + 2 ** (s - 1)) >> s, lo), hi)


def test_rows_shape_helpers_succeeds(rows_mock):
    # rows.vy's checks of output_header (protocol 10.9), at the edges of each range.
    for m, s, ok in [(1, 1, True), (2**31 - 1, 62, True), (0, 1, False), (2**31, 1, False), (1, 0, False),
                     (1, 63, False), (2**256 - 1, 1, False), (1, 2**256 - 1, False)]:
        assert rows_mock.valid_rq(m, s) == ok, (m, s)
    for i, o, ok in [(1, 1, True), (16384, 16384, True), (0, 1, False), (1, 0, False), (16385, 1, False),
                     (1, 16385, False)]:
        assert rows_mock.valid_cols(i, o) == ok, (i, o)
    for h, n, ok in [(1, 0, True), (1, 7, True), (3, 6, True), (3, 7, False), (0, 0, False), (0, 5, False), (8, 4, False)]:
        assert rows_mock.divides(h, n) == ok, (h, n)
    assert [rows_mock.activation(d) for d in range(4)] == [True, False, True, False]
    assert [rows_mock.out_dtype(f) for f in (0, 1, 127, 128, 129, 2**255 + 128, 2**255)] == [0, 0, 0, 2, 2, 2, 0]


# ---------------------------------------------------------------------------
# The golden vectors through the verifiers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case_every_element_succeeds(verifiers, case):
    verifier = verifiers[case["op"]["kind"]]
    values = case["output"]["values"]
    failures = []
    for r, c in vw.elements(case, ELEMENTS, random.Random(case["name"])):
        got = verifier.step(*vw.step_call(case, r, c))
        if got != values[r][c]:
            failures.append(f"y[{r}, {c}]: got {got}, want {values[r][c]}")
    assert not failures, failures


# ---------------------------------------------------------------------------
# Every hash check reverts with the kind's reason
# ---------------------------------------------------------------------------

FIRST = {}
for _c in CASES:  # the first golden case of each kind and flag set
    FIRST.setdefault((_c["op"]["kind"], _c["op"]["flags"]), _c)
HASHED = sorted(FIRST.values(), key=lambda c: (c["op"]["kind"], c["op"]["flags"]))


def _revert(verifier, case, reason, r=0, c=0, **tamper):
    with ape.reverts(f"{vw.REASON[case['op']['kind']]}: {reason}"):
        verifier.step(*vw.step_call(case, r, c, **tamper))


WITH_PARAMS = [c for c in HASHED if c["op"]["kind"] != vw.ARGMAX or c["op"]["flags"] & vw.CARRY]


@pytest.mark.parametrize("case", WITH_PARAMS, ids=[c["name"] for c in WITH_PARAMS])
def test_wrong_params_header_reverts(verifiers, case):
    # (argmax without carry has no params header)
    kind = case["op"]["kind"]
    reason = "table does not match" if kind == vw.LUT else "params header does not match"
    _revert(verifiers[kind], case, reason, bad_params=True)


@pytest.mark.parametrize("case", HASHED, ids=[c["name"] for c in HASHED])
def test_wrong_input_proof_reverts(verifiers, case):
    kind = case["op"]["kind"]
    name = {vw.EMBED: "input row", vw.TRANSPOSE: "input row", vw.LUT: "input row",
            vw.SOFTMAX: "input row", vw.NORM: "input row", vw.ARGMAX: "input row",
            vw.ROPE: "input row"}.get(kind, "row of input a")
    _revert(verifiers[kind], case, f"{name} not in its slot", bad_a=True)


@pytest.mark.parametrize("case", [c for c in HASHED if vw.n_inputs(c) == 2 or c["op"]["kind"] == vw.EMBED],
                         ids=lambda c: c["name"])
def test_wrong_second_proof_reverts(verifiers, case):
    kind = case["op"]["kind"]
    reason = {vw.SOFTMAX: "mask row not in its slot", vw.ARGMAX: "carried row not in its slot",
              vw.EMBED: "position row not in the table"}.get(kind, "row of input b not in its slot")
    _revert(verifiers[kind], case, reason, bad_b=True)


@pytest.mark.parametrize("case", [c for c in HASHED if c["op"]["kind"] in
                                  (vw.LUT, vw.SOFTMAX, vw.NORM, vw.EMBED, vw.ROPE)],
                         ids=lambda c: c["name"])
def test_wrong_table_reverts(verifiers, case):
    kind = case["op"]["kind"]
    reason = {vw.LUT: "table does not match", vw.SOFTMAX: "exp table does not match",
              vw.NORM: "column leaf not in the columns", vw.EMBED: "token row not in the table",
              vw.ROPE: "table row not in the table"}[kind]
    r = 0
    if kind == vw.EMBED:  # an element whose id is in the vocabulary
        T = case["op"]["in_cols"]
        r = next(b * T + t for b, ids in enumerate(case["inputs"][0]["values"]) for t, v in enumerate(ids)
                 if 0 <= v < len(case["op"]["token_table"]))
    _revert(verifiers[kind], case, reason, r=r, bad_table=True)


@pytest.mark.parametrize("case", [c for c in HASHED if c["op"]["kind"] == vw.NORM], ids=lambda c: c["name"])
def test_wrong_rho_reverts(verifiers, case):
    _revert(verifiers[vw.NORM], case, "rho is not the root of V", bad_rho=True)


@pytest.mark.parametrize("kind", sorted(vw.NAMES), ids=lambda k: vw.REASON[k])
def test_descriptor_guards_revert(verifiers, kind):
    case = next(c for c in HASHED if c["op"]["kind"] == kind)
    desc, inputs, r, c, wit = vw.call_args(case, 0, 0)
    name = vw.REASON[kind]
    with ape.reverts(f"{name}: wrong kind"):
        verifiers[kind].step(*vw.step_args((kind + 1,) + tuple(desc[1:]), inputs, r, c, wit))
    with ape.reverts(f"{name}: wrong input count"):
        verifiers[kind].step(*vw.step_args(desc, inputs + [inputs[0]] if len(inputs) == 1 else inputs[:1], r, c, wit))
    with ape.reverts(f"{name}: element out of range"):
        verifiers[kind].step(*vw.step_args(desc, inputs, r, desc[5], wit))
