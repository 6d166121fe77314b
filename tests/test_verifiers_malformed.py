"""The verifiers' checks that only a malformed commitment reaches (contracts/verifiers/, 10.5's
"Verifiers"): a header whose columns disagree with its rows, a table or params header of the
wrong length whose hash is the committed one, a rho one too small, an input dtype the kind does
not read. Each reverts with its reason; the golden and random cases never do
(tests/test_verifiers.py, tests/test_verifiers_random.py).
"""

import ape
import pytest
from eth_abi import encode
from helpers import load_vectors

import reference as ref
import reference_transformer as rt
import verifier_witness as vw

CASES = [c for c in load_vectors("transformer_ops")["cases"] if c["op"]["kind"] in vw.NAMES]
FIRST = {}
for _c in CASES:
    FIRST.setdefault(_c["op"]["kind"], _c)


@pytest.fixture(scope="module")
def verifiers(project, deployer):
    return {kind: deployer.deploy(getattr(project, f"{name}Verifier")) for kind, name in vw.NAMES.items()}


def _first(kind, flags=None, name=None):
    return next(c for c in CASES if c["op"]["kind"] == kind and (flags is None or c["op"]["flags"] == flags)
                and (name is None or c["name"] == name))


def _row_reason(kind, which):
    if which == 1:
        return {vw.SOFTMAX: "mask row not in its slot", vw.ARGMAX: "carried row not in its slot"}.get(
            kind, "row of input b not in its slot")
    return "row of input a not in its slot" if kind in (vw.MATMUL, vw.ADD, vw.MUL) else "input row not in its slot"


TWO = [c for c in CASES if vw.n_inputs(c) == 2]
HEADER_CASES = [(FIRST[k], 0) for k in sorted(FIRST)] + [
    (next(c for c in TWO if c["op"]["kind"] == k), 1) for k in sorted({c["op"]["kind"] for c in TWO})]


@pytest.mark.parametrize("case,which", HEADER_CASES, ids=lambda v: v["name"] if isinstance(v, dict) else str(v))
def test_header_cols_differ_from_row_reverts(verifiers, case, which):
    # The row is proven, but it is not `cols · width` bytes of the header's dtype.
    desc, inputs, r, c, wit = vw.call_args(case, 0, 0)
    inputs = [list(h) for h in inputs]
    inputs[which][1] += 1
    with ape.reverts(f"{vw.REASON[case['op']['kind']]}: {_row_reason(case['op']['kind'], which)}"):
        verifiers[case["op"]["kind"]].step(*vw.step_args(desc, [tuple(h) for h in inputs], r, c, wit))


def test_unknown_dtype_reverts(verifiers):
    case = FIRST[vw.TRANSPOSE]
    desc, inputs, r, c, wit = vw.call_args(case, 0, 0)
    with ape.reverts("rows: unknown dtype"):
        verifiers[vw.TRANSPOSE].step(*vw.step_args(desc, [inputs[0][:3] + (3,)], r, c, wit))


def test_softmax_int16_input_reverts(verifiers):
    case = FIRST[vw.SOFTMAX]
    desc, inputs, r, c, wit = vw.call_args(case, 0, 0)
    with ape.reverts("softmax: input is not int8"):
        verifiers[vw.SOFTMAX].step(*vw.step_args(desc, [inputs[0][:3] + (2,)], r, c, wit))


def test_lut_table_of_the_other_width_reverts(verifiers):
    # A 256-byte table committed for an i16 lut (which needs 512 bytes).
    case = _first(vw.LUT, 0)
    desc, inputs, r, c, wit = vw.call_args(case, 0, 0)
    with ape.reverts("lut: table does not match"):
        verifiers[vw.LUT].step(*vw.step_args((desc[0], 128) + tuple(desc[2:]), inputs, r, c, wit))


def test_softmax_short_exp_table_reverts(verifiers):
    case = FIRST[vw.SOFTMAX]
    op = case["op"]
    table = rt.pack_row(op["exp_table"], rt.DTYPE_INT32)[:1020]
    params = ref.enc(op["heads"], op["seq"], ref.keccak256(table))
    desc = vw.descriptor(case)[:6] + (ref.keccak256(params),)
    x, xp = vw._row(case["inputs"][0], 0)
    wit = encode(["bytes", "bytes", "bytes", vw.PROOF, "bytes", vw.PROOF], [params, table, x, xp, b"", []])
    with ape.reverts("softmax: exp table does not match"):
        verifiers[vw.SOFTMAX].step(*vw.step_args(desc, vw.headers(case), 0, 0, wit))


@pytest.mark.parametrize("flip", [vw.GROUPED, 0])
def test_matmul_header_of_the_other_length_reverts(verifiers, flip):
    # A 128-byte header committed with `grouped`, or a 160-byte one without it.
    case = _first(vw.MATMUL, 0) if flip else next(c for c in CASES if c["op"]["kind"] == vw.MATMUL
                                                  and c["op"]["flags"] & vw.GROUPED)
    desc, inputs, r, c, wit = vw.call_args(case, 0, 0)
    with ape.reverts("matmul: params header does not match"):
        verifiers[vw.MATMUL].step(*vw.step_args((desc[0], desc[1] ^ vw.GROUPED) + tuple(desc[2:]), inputs, r, c, wit))


def test_argmax_short_carry_header_reverts(verifiers):
    # An empty header committed with `carry` (a longer one than 32 bytes fails ABI decoding).
    case = _first(vw.ARGMAX, vw.CARRY)
    params = b""
    desc = vw.descriptor(case)[:6] + (ref.keccak256(params),)
    x, xp = vw._row(case["inputs"][0], 0)
    carry, cp = vw._row(case["inputs"][1], 0)
    wit = encode(["bytes", "bytes", vw.PROOF, "bytes", vw.PROOF], [params, x, xp, carry, cp])
    with ape.reverts("argmax: params header does not match"):
        verifiers[vw.ARGMAX].step(*vw.step_args(desc, vw.headers(case), 0, 0, wit))


def test_norm_rho_one_too_small_reverts(verifiers):
    case = _first(vw.NORM, name="norm_layer_negative_floor_q")
    with ape.reverts("norm: rho is not the root of V"):
        verifiers[vw.NORM].step(*vw.step_call(case, 0, 0, bad_rho=-1))


def test_rope_table_of_other_width_reverts(verifiers):
    # The table committed with one column more than the op's head width D.
    case = FIRST[vw.ROPE]
    op = case["op"]
    table = [row + [0] for row in op["table"]]
    cr = rt.table_rows_root(table, rt.DTYPE_INT16)
    params = ref.enc(op["heads"], len(table), op["multiplier"], op["shift"], cr)
    desc = vw.descriptor(case)[:6] + (ref.keccak256(params),)
    x, xp = vw._row(case["inputs"][0], 0)
    tr, tp = vw._table_row(table, rt.DTYPE_INT16, 0)
    wit = encode(["bytes", "bytes", vw.PROOF, "bytes", vw.PROOF], [params, x, xp, tr, tp])
    with ape.reverts("rope: table row not in the table"):
        verifiers[vw.ROPE].step(*vw.step_args(desc, vw.headers(case), 0, 0, wit))


@pytest.mark.parametrize("which", ["tok", "pos"])
def test_embed_table_of_other_width_reverts(verifiers, which):
    case = next(c for c in CASES if c["op"]["kind"] == vw.EMBED and c["op"]["flags"] == 0
                and all(0 <= v < len(c["op"]["token_table"]) for v in c["inputs"][0]["values"][0]))
    op = dict(case["op"])
    table = [row + [0] for row in op[f"{'token' if which == 'tok' else 'position'}_table"]]
    op["token_table" if which == "tok" else "position_table"] = table
    tok, pos = op["token_table"], op["position_table"]
    params = ref.enc(len(tok), len(pos), op["out_cols"], op["multiplier_a"], op["multiplier_b"], op["shift"],
                     rt.table_rows_root(tok), rt.table_rows_root(pos))
    desc = vw.descriptor(case)[:6] + (ref.keccak256(params),)
    ids, ip = vw._row(case["inputs"][0], 0)
    tr, tp = vw._table_row(tok, rt.DTYPE_INT8, case["inputs"][0]["values"][0][0])
    pr, pp = vw._table_row(pos, rt.DTYPE_INT8, 0)
    wit = encode(["bytes", "bytes", vw.PROOF, "bytes", vw.PROOF, "bytes", vw.PROOF], [params, ids, ip, tr, tp, pr, pp])
    reason = "token row not in the table" if which == "tok" else "position row not in the table"
    with ape.reverts(f"embed: {reason}"):
        verifiers[vw.EMBED].step(*vw.step_args(desc, vw.headers(case), 0, 0, wit))


@pytest.mark.parametrize("delta", [-1, 1])
def test_norm_rho_off_by_one_at_a_square_reverts(verifiers, delta):
    # V = 3^2 + 4^2 = 25, a square: rho = 4 has (rho + 1)^2 = V, rho = 6 has (rho - 1)^2 = V.
    op = {"kind": vw.NORM, "flags": 1, "input_a": 0, "input_b": 0, "in_cols": 2, "out_cols": 2,
          "multiplier": 1, "shift": 1, "gamma": [1, 1], "beta": [0, 0]}
    case = vw.make_case("norm_square", op, [(0, [[3, 4]])])
    assert verifiers[vw.NORM].step(*vw.step_call(case, 0, 1)) == case["output"]["values"][0][1]
    with ape.reverts("norm: rho is not the root of V"):
        verifiers[vw.NORM].step(*vw.step_call(case, 0, 1, bad_rho=delta))
