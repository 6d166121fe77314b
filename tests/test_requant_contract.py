"""Requantization on-chain: contracts/modules/requant.vy (through requant_mock) against
docs/protocol.md section 4 and the golden vectors in tests/vectors/requant.json.

Every vector case is checked with an eth_call (no transaction), and each revert reason of
the module is checked once.
"""

import json
from pathlib import Path

import ape
import pytest

VECTORS = Path(__file__).parent / "vectors" / "requant.json"

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _reference(acc: int, m: int, s: int, relu: bool) -> int:
    """Section 4 in plain Python integers (`>>` on int is a flooring shift)."""
    y = min(max((acc * m + (1 << (s - 1))) >> s, -128), 127)
    return max(y, 0) if relu else y


@pytest.fixture(scope="module")
def vector_cases():
    """The golden vectors' cases, loaded once."""
    cases = json.loads(VECTORS.read_text())["cases"]
    assert cases, "requant.json has no cases"
    return cases


# ---------------------------------------------------------------------------
# Golden vectors
# ---------------------------------------------------------------------------


def test_requantize_vectors_succeeds(requant, vector_cases):
    failures = []
    for case in vector_cases:
        got = requant.requantize(case["acc"], case["multiplier"], case["shift"], case["relu"])
        if got != case["y"]:
            failures.append(f"{case['name']}: got {got}, want {case['y']}")
    assert not failures, "\n".join(failures)


def test_requantize_vectors_match_reference_succeeds(vector_cases):
    # Guards the test itself: the vectors agree with section 4 as written here.
    for case in vector_cases:
        want = _reference(case["acc"], case["multiplier"], case["shift"], case["relu"])
        assert case["y"] == want, case["name"]


# ---------------------------------------------------------------------------
# Handwritten cases (section 4's examples, ties, clamps, extremes)
# ---------------------------------------------------------------------------

HANDWRITTEN = [
    # (acc, m, s, relu, y)
    # protocol.md section 4's examples (m = 1, s = 1): round half toward +inf
    (3, 1, 1, False, 2),
    (-3, 1, 1, False, -1),
    (-1, 1, 1, False, 0),
    (1, 1, 1, False, 1),
    (0, 1, 1, False, 0),
    # negative non-ties floor after the half is added: -5/4 = -1.25 -> -1, -7/4 -> -2
    (-5, 1, 2, False, -1),
    (-7, 1, 2, False, -2),
    (-6, 1, 2, False, -1),  # tie -1.5 -> -1
    (6, 1, 2, False, 2),  # tie 1.5 -> 2
    # clamps
    (255, 1, 1, False, 127),  # 127.5 -> 128 -> 127
    (253, 1, 1, False, 127),  # 126.5 -> 127
    (-257, 1, 1, False, -128),  # -128.5 -> -128
    (-259, 1, 1, False, -128),  # -129.5 -> -129 -> -128
    (INT32_MAX, INT32_MAX, 1, False, 127),
    (INT32_MIN, INT32_MAX, 1, False, -128),
    # relu after the clamp
    (-3, 1, 1, True, 0),
    (INT32_MIN, INT32_MAX, 1, True, 0),
    (255, 1, 1, True, 127),
    # s = 62 and 61: the extreme products are just inside -1, +1 (s = 62) or -2 (s = 61)
    (INT32_MAX, INT32_MAX, 62, False, 1),  # 1 - 2^-31 ... -> 1
    (INT32_MIN, INT32_MAX, 62, False, -1),  # -1 + 2^-31 -> -1
    (INT32_MIN, INT32_MAX, 61, False, -2),
    (INT32_MIN, INT32_MAX, 62, True, 0),
    # exact ties at large shifts: acc * m = -2^61 at s = 62 (-0.5 -> 0), 2^60 at s = 61 (0.5 -> 1)
    (INT32_MIN, 2**30, 62, False, 0),
    (2**30, 2**30, 61, False, 1),
    # just below a tie: 2^30 * (2^31 - 1) = 2^61 - 2^30 at s = 62 -> 0.5 - 2^-32 -> 0
    (2**30, INT32_MAX, 62, False, 0),
]


@pytest.mark.parametrize("acc,m,s,relu,want", HANDWRITTEN)
def test_requantize_handwritten_succeeds(requant, acc, m, s, relu, want):
    assert _reference(acc, m, s, relu) == want
    assert requant.requantize(acc, m, s, relu) == want


def test_requantize_range_bounds_succeeds(requant):
    # Every bound of every range is accepted.
    for s in (1, 62):
        for m in (1, INT32_MAX):
            for acc in (INT32_MIN, INT32_MAX):
                assert requant.requantize(acc, m, s, False) == _reference(acc, m, s, False)


# ---------------------------------------------------------------------------
# Reverts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("s", [0, 63, 2**256 - 1])
def test_requantize_shift_out_of_range_reverts(requant, s):
    with ape.reverts("requant: shift out of range"):
        requant.requantize(1, 1, s, False)


@pytest.mark.parametrize("m", [0, -1, INT32_MAX + 1, -(2**255)])
def test_requantize_multiplier_out_of_range_reverts(requant, m):
    with ape.reverts("requant: multiplier out of range"):
        requant.requantize(1, m, 1, False)


@pytest.mark.parametrize("acc", [INT32_MAX + 1, INT32_MIN - 1, 2**255 - 1, -(2**255)])
def test_requantize_accumulator_out_of_range_reverts(requant, acc):
    with ape.reverts("requant: accumulator out of range"):
        requant.requantize(acc, 1, 1, False)
