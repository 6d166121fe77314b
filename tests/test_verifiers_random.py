"""The one-step verifiers (contracts/verifiers/) against the independent reference on random
ops of every kind, flag and input dtype (tests/verifier_witness.py's ``random_case``), and on
the ops of tests/vectors/transformer_models.json's traces and transformer_large.json.

``REFEREE_VERIFIER_CASES`` sets the random ops per kind (default 4); each checks up to
ELEMENTS of its output elements.
"""

import os
import random

import pytest
from helpers import load_vectors

import verifier_witness as vw

CASES_PER_KIND = int(os.environ.get("REFEREE_VERIFIER_CASES", "4"))
ELEMENTS = 6


@pytest.fixture(scope="module")
def verifiers(project, deployer):
    return {kind: deployer.deploy(getattr(project, f"{name}Verifier")) for kind, name in vw.NAMES.items()}


def _check(verifier, case, limit, rng):
    values = case["output"]["values"]
    failures = []
    for r, c in vw.elements(case, limit, rng):
        got = verifier.step(*vw.step_call(case, r, c))
        if got != values[r][c]:
            failures.append(f"{case['name']} y[{r}, {c}]: got {got}, want {values[r][c]}")
    return failures


@pytest.mark.parametrize("kind", sorted(vw.NAMES), ids=lambda k: vw.REASON[k])
def test_random_cases_match_reference_succeeds(verifiers, kind):
    rng = random.Random(1900 + kind)
    failures = []
    for n in range(CASES_PER_KIND):
        case = vw.random_case(kind, rng, f"{vw.REASON[kind]}-{n}")
        failures += _check(verifiers[kind], case, ELEMENTS, rng)
    assert not failures, failures


def _model_cases():
    """Every op of kinds 2-11 of the golden models' traces, as a case over its input slots."""
    out = []
    for model in load_vectors("transformer_models")["models"]:
        slots = model["slots"]
        for j, op in enumerate(model["ops"], start=1):
            if op["kind"] not in vw.NAMES:
                continue
            inputs = [slots[op["input_a"]]] + ([slots[op["input_b"]]] if vw.rl.reads_b(op) else [])
            out.append({"name": f"{model['name']}/op{j}", "op": op,
                        "inputs": [{"dtype": s["dtype"], "values": s["values"]} for s in inputs],
                        "output": {"values": slots[j]["values"]}})
    return out


MODEL_CASES = _model_cases()


@pytest.mark.parametrize("case", MODEL_CASES, ids=[c["name"] for c in MODEL_CASES])
def test_model_slot_elements_succeeds(verifiers, case):
    assert not _check(verifiers[case["op"]["kind"]], case, 3, random.Random(case["name"]))


LARGE = [c for c in load_vectors("transformer_large")["cases"] if c["op"]["kind"] in vw.NAMES]


@pytest.mark.parametrize("case", LARGE, ids=[c["name"] for c in LARGE])
def test_large_case_elements_succeeds(verifiers, case):
    assert not _check(verifiers[case["op"]["kind"]], case, 3, random.Random(case["name"]))


def _argmax_case(dtype, values, flags=0, carry=None):
    op = {"kind": vw.ARGMAX, "flags": flags, "input_a": 0, "input_b": 1 if carry else 0,
          "in_cols": len(values[0]), "out_cols": 2 if flags & 1 else 1, **({"offset": 7} if carry else {})}
    inputs = [(dtype, values)] + ([(1, carry)] if carry else [])
    return vw.make_case("argmax", op, inputs)


@pytest.mark.parametrize("dtype", [0, 1, 2])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 200])
def test_argmax_orders_succeeds(verifiers, dtype, n):
    # The SWAR passes at every word boundary: ascending, descending, constant, the maximum
    # last and first, the dtype's extremes, ties in several words.
    lo, hi = vw.RANGE[dtype]
    up = [max(lo, min(hi, c - n // 2)) for c in range(n)]
    rows = [up, up[::-1], [lo] * n, [hi] * n, [lo] * (n - 1) + [hi],
            [hi] + [lo] * (n - 1), [(c * 7) % 5 for c in range(n)], [lo + 1] * n]
    case = _argmax_case(dtype, rows, flags=1)
    assert not _check(verifiers[vw.ARGMAX], case, None, random.Random(n))
