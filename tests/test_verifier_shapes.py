"""The transition's shape check of every kind (``IVerifier.output_header``, docs/protocol.md 7.2
and 10.9) and the ranges behind roots of the one step (``element`` returns ``rows.MALFORMED``,
7.4).

``output_header(desc, inputs, params)`` must give the output's ``(rows, cols, dtype)`` for every
op of the golden vectors (transformer_ops.json, transformer_large.json, every op of
transformer_models.json's and models.json's models, read unchanged) from its own input headers
and params header; ``(0, 0, 0)`` for an op that breaks its kind's rules (a flag bit the kind does
not define, a forbidden flag pair, a nonzero unused field, a wrong input dtype, column or row
count, a small word of the params header out of its range, a shape word it repeats that
differs); and revert (a rejected move) for a wrong kind, a wrong input count or a params header
that does not hash to ``params_root``.
"""

import random

import ape
import pytest
from helpers import load_vectors

import reference as ref
import reference_kinds as rk
import reference_llama as rl
import reference_transformer as rt
import verifier_witness as vw

LINEAR = 1
NAMES = {LINEAR: "Linear", **vw.NAMES}
REASON = {k: v.lower() for k, v in NAMES.items()}
ZERO = (0, 0, 0)
MALFORMED = -(2**255)
MAX_ROWS, MAX_COLS = 65536, 16384
M_BAD, S_BAD = (0, 2**31, 2**256 - 1), (0, 63)  # 2^256 - 1: a negative signed word
# Flag bits each kind defines (5.10).
DEFINED = {1: 0b10000011, 2: 0b10000011, 3: 0, 4: 128, 5: 128, 6: 0b10000011, 7: 0b10000001, 8: 128,
           9: 0b11, 10: 128, 11: 128}
FLAG_BITS = list(range(16)) + [64, 128, 255]


@pytest.fixture(scope="module")
def verifiers(project, deployer):
    return {kind: deployer.deploy(getattr(project, f"{name}Verifier")) for kind, name in NAMES.items()}


# ---------------------------------------------------------------------------
# The cases: (desc, input headers, params header, expected output header)


def _call(op, inputs):
    """``(desc, inputs, params)`` of ``output_header`` for an op over input slots given as
    ``(values, dtype, rows_root or None)``."""
    desc = list(vw.descriptor({"op": op}))
    headers = []
    for values, dtype, root in inputs[: 2 if rl.reads_b(op) else 1]:
        if root is None:
            headers.append(list(rt.tensor_header(values, dtype)))
        else:
            headers.append([len(values), len(values[0]), vw.h(root), dtype])
    params = b"" if op["kind"] == vw.ARGMAX and not op["flags"] & vw.CARRY else rl.params_header(op)
    return desc, headers, params


def _golden():
    out = []
    for name in ("transformer_ops", "transformer_large"):
        for case in load_vectors(name)["cases"]:
            ins = [(i["values"], i["dtype"], None) for i in case["inputs"]]
            y = case["output"]
            out.append((f"{name}/{case['name']}", case["op"], ins,
                        (len(y["values"]), len(y["values"][0]), y["dtype"])))
    for name in ("transformer_models", "models"):
        for model in load_vectors(name)["models"]:
            slots = model["slots"]
            dtypes = [model.get("input_dtype", 0)] + [None] * (len(slots) - 1)
            for j, op in enumerate(model["ops"], start=1):
                op = {k: (int(v) if k in ("kind", "flags", "input_a", "input_b") else v) for k, v in op.items()}
                slot = lambda i: (slots[i]["values"], slots[i].get("dtype", dtypes[i]), slots[i]["rows_root"])
                ins = [slot(op["input_a"])] + ([slot(op["input_b"])] if rl.reads_b(op) else [])
                y = slots[j]
                dt = y.get("dtype", rl.out_dtype(op, ins[0][1]))
                dtypes[j] = dt
                out.append((f"{model['name']}/op{j}", op, ins, (len(y["values"]), len(y["values"][0]), dt)))
    return out


GOLDEN = _golden()


def test_every_kind_and_flag_is_covered():
    seen = {(op["kind"], op["flags"]) for _, op, _, _ in GOLDEN}
    assert {k for k, _ in seen} == set(NAMES)
    assert {(9, 2), (9, 3), (2, 2), (6, 2), (1, 2), (1, 129), (7, 129)} <= seen


# ---------------------------------------------------------------------------
# Breaking each rule: one base op per kind and flag set (the one with the most input rows)

BASES = {}
for _name, _op, _ins, _want in GOLDEN:
    if not _name.startswith("transformer_ops") and not _name.startswith("models"):
        continue
    _key = (_op["kind"], _op["flags"])
    if _key not in BASES or len(_ins[0][0]) > len(BASES[_key][1][0][0]):
        BASES[_key] = (_op, _ins, _want)
BASE_IDS = sorted(BASES)


def _base(key):
    op, ins, want = BASES[key]
    desc, headers, params = _call(op, ins)
    return op, desc, headers, params, want


def _word(params, i, value):
    return params[: 32 * i] + (value % 2**256).to_bytes(32, "big") + params[32 * i + 32:]


def _rehash(desc, params):
    d = list(desc)
    d[6] = ref.keccak256(params)
    return d


def _oh(verifiers, desc, headers, params):
    return verifiers[desc[0]].output_header(desc, headers, params)


def _zero_cases(key):
    """(label, desc, headers, params) of every rule broken on the base op of ``key``."""
    op, desc, headers, params, want = _base(key)
    kind, flags = key
    cases = []

    def add(label, d=None, hs=None, p=None, rehash=False):
        d = list(desc if d is None else d)
        p = params if p is None else p
        if rehash:
            d = _rehash(d, p)
        cases.append((label, d, [list(x) for x in (headers if hs is None else hs)], p))

    def desc_with(**kw):
        d = list(desc)
        for k, v in kw.items():
            d[["kind", "flags", "input_a", "input_b", "in_cols", "out_cols", "params_root"].index(k)] = v
        return d

    def header_with(i, field, value):
        hs = [list(x) for x in headers]
        hs[i][["rows", "cols", "root", "dtype"].index(field)] = value
        return hs

    for bit in FLAG_BITS:
        if not DEFINED[kind] >> bit & 1:
            add(f"flag bit {bit}", desc_with(flags=flags | 1 << bit))
    if kind == LINEAR:
        if not flags & 1 and not flags & 128:
            add("relu with wide", desc_with(flags=flags | 3))
        if not flags & 1:
            add("wide with i16", desc_with(flags=flags | 130))
    one_input = len(headers) == 1
    if one_input:
        add("input_b nonzero", desc_with(input_b=1))
    if kind == vw.ARGMAX and not flags & vw.CARRY:
        add("params_root nonzero", desc_with(params_root=b"\x01" * 32))
    # input dtypes
    allowed = {vw.LUT: {0}, vw.SOFTMAX: {0}, vw.EMBED: {1}, vw.ARGMAX: {0, 1, 2}}.get(kind, {0, 2})
    for d in {0, 1, 2, 3} - allowed:
        add(f"input a dtype {d}", hs=header_with(0, "dtype", d))
    if len(headers) == 2:
        allowed_b = {vw.SOFTMAX: {0}, vw.ARGMAX: {1}}.get(kind, {0, 2})
        if kind == vw.MATMUL and headers[0][3] == 2:
            allowed_b = {0}  # at most one int16 operand
        for d in {0, 1, 2, 3} - allowed_b:
            add(f"input b dtype {d}", hs=header_with(1, "dtype", d))
    # columns
    for i in range(len(headers)):
        add(f"input {i} cols + 1", hs=header_with(i, "cols", headers[i][1] + 1))
        if headers[i][1] > 1:
            add(f"input {i} cols - 1", hs=header_with(i, "cols", headers[i][1] - 1))
    add("out_cols 0", desc_with(out_cols=0))
    add("out_cols past MAX_COLS", desc_with(out_cols=MAX_COLS + desc[5]))
    if kind in (vw.ADD, vw.MUL, vw.LUT, vw.SOFTMAX, vw.NORM, vw.ROPE, vw.ARGMAX):
        add("out_cols + 1", desc_with(out_cols=desc[5] + 1))
    # rows (the shape rule)
    rows = headers[0][0]
    if kind in (vw.ADD, vw.MUL):
        add("rows differ", hs=header_with(1, "rows", rows + 1))
        add("rows differ (a)", hs=header_with(0, "rows", rows + 1))
    if kind == vw.ARGMAX and flags & vw.CARRY:
        add("carried rows differ", hs=header_with(1, "rows", rows + 1))
    if kind == vw.MATMUL:
        add("rows_b + 1", hs=header_with(1, "rows", headers[1][0] + 1))
        if op["seq"] > 1:
            add("rows_a not a multiple of T_a", hs=header_with(0, "rows", rows + 1))
    if kind == vw.SOFTMAX:
        if op["seq"] > 1:
            add("rows not a multiple of T", hs=header_with(0, "rows", rows + 1))
        if flags & vw.KEYMASK:
            add("mask rows + 1", hs=header_with(1, "rows", headers[1][0] + 1))
    if kind == vw.ROPE and len(op["table"]) > 1:
        add("rows not a multiple of T", hs=header_with(0, "rows", rows + 1))
    if kind == vw.TRANSPOSE and op["out_cols"] // op["heads"] > 1:
        add("rows not a multiple of R_in", hs=header_with(0, "rows", rows + 1))
    # the params header's small words
    n_in = desc[4]
    words = {
        LINEAR: lambda: [(0, desc[5] + 1), (1, n_in + 1)],
        vw.MATMUL: lambda: [(0, 0), (0, n_in + 1), (1, 0), (1, MAX_ROWS + 1)] + [(2, v) for v in M_BAD]
        + [(3, v) for v in S_BAD] + ([(4, 0), (4, op["heads"])] if flags & vw.GROUPED else []),
        vw.TRANSPOSE: lambda: [(0, 0), (0, n_in + 1)],
        vw.ADD: lambda: [(0, v) for v in M_BAD] + [(1, v) for v in M_BAD] + [(2, v) for v in S_BAD],
        vw.SOFTMAX: lambda: [(0, 0), (0, n_in + 1), (1, 0), (1, MAX_ROWS + 1)],
        vw.NORM: lambda: [(0, n_in + 1), (0, n_in - 1)] + [(1, v) for v in M_BAD] + [(2, v) for v in S_BAD],
        vw.EMBED: lambda: [(0, 0), (0, 2**24 + 1), (1, n_in + 1), (2, desc[5] + 1)] + [(3, v) for v in M_BAD]
        + [(4, v) for v in M_BAD] + [(5, v) for v in S_BAD],
        vw.ARGMAX: lambda: [(0, 0), (0, 2**24 + 1)] if flags & vw.CARRY else [],
        vw.ROPE: lambda: [(0, 0), (0, n_in + 1), (1, 0), (1, MAX_ROWS + 1)] + [(2, v) for v in M_BAD]
        + [(3, v) for v in S_BAD],
        vw.MUL: lambda: [(0, v) for v in M_BAD] + [(1, v) for v in S_BAD],
    }.get(kind, lambda: [])()
    for i, v in words:
        add(f"word {i} = {v}", p=_word(params, i, v), rehash=True)
    if kind == vw.ROPE:  # D = in_cols / H odd
        odd = next((hh for hh in range(1, n_in + 1) if n_in % hh == 0 and (n_in // hh) % 2), None)
        if odd:
            add(f"H = {odd}: D odd", p=_word(params, 0, odd), rehash=True)
    if kind == vw.MATMUL and flags & vw.GROUPED:
        H = op["heads"]
        bad = next((b for b in range(2, H) if H % b), None)
        if bad:
            add(f"H_b = {bad} does not divide H", p=_word(params, 4, bad), rehash=True)
        # The same H_b with input b's columns made H_b * K, so that only the H_b rule is broken
        # (with b's columns as they were, its column check answers first).
        k_len = n_in // H
        for kv in (0, H, 2 * H) + ((bad,) if bad else ()):
            add(f"H_b = {kv} and input b cols {kv * k_len}", hs=header_with(1, "cols", kv * k_len),
                p=_word(params, 4, kv), rehash=True)
    return cases


ZERO_CASES = [(key, c) for key in BASE_IDS for c in _zero_cases(key)]


@pytest.mark.parametrize("key", BASE_IDS, ids=lambda k: f"{REASON[k[0]]}-{k[1]}")
def test_broken_rules_give_zeros_succeeds(verifiers, key):
    op, desc, headers, params, want = _base(key)
    assert _oh(verifiers, desc, headers, params) == want
    failures = []
    for label, d, hs, p in _zero_cases(key):
        got = _oh(verifiers, d, hs, p)
        if got != ZERO:
            failures.append(f"{label}: {got}")
    assert not failures, failures


def test_broken_rules_count():
    assert len(ZERO_CASES) > 300


@pytest.mark.parametrize("key", BASE_IDS, ids=lambda k: f"{REASON[k[0]]}-{k[1]}")
def test_hash_and_count_failures_revert(verifiers, key):
    op, desc, headers, params, want = _base(key)
    kind = key[0]
    name = REASON[kind]
    v = verifiers[kind]
    with ape.reverts(f"{name}: wrong kind"):
        v.output_header([kind % 11 + 1] + desc[1:], headers, params)
    with ape.reverts(f"{name}: wrong input count"):
        v.output_header(desc, headers + [headers[0]] if len(headers) == 1 else headers[:1], params)
    with ape.reverts(f"{name}: wrong input count"):
        v.output_header(desc, [], params)
    bad = params[:-1] + bytes([params[-1] ^ 1]) if params else b"\x00" * 32
    with ape.reverts(f"{name}: params header does not match"):
        v.output_header(desc, headers, bad)
    if params:  # a header of another length whose hash is the root (past 512 bytes: no ABI)
        for other in [params[:-32]] + ([params + bytes(32)] if len(params) <= 480 else []):
            with ape.reverts(f"{name}: params header does not match"):
                v.output_header(_rehash(desc, other), headers, other)


# ---------------------------------------------------------------------------
# The edges of each range are inside it


def _edge_cases(key):
    op, desc, headers, params, want = _base(key)
    kind, flags = key
    out = []
    rq = {vw.MATMUL: (2, 3), vw.NORM: (1, 2), vw.ROPE: (2, 3), vw.MUL: (0, 1)}.get(kind)
    if rq:
        for m, s in ((1, 1), (2**31 - 1, 62)):
            out.append(_word(_word(params, rq[0], m), rq[1], s))
    if kind == vw.ADD:
        out += [_word(_word(_word(params, 0, m), 1, m), 2, s) for m, s in ((1, 1), (2**31 - 1, 62))]
    if kind == vw.EMBED:
        out += [_word(params, 0, 2**24)]
        out += [_word(_word(_word(params, 3, m), 4, m), 5, s) for m, s in ((1, 1), (2**31 - 1, 62))]
    if kind == vw.ARGMAX and flags & vw.CARRY:
        out += [_word(params, 0, 1), _word(params, 0, 2**24)]
    return [(_rehash(desc, p), headers, p, want) for p in out]


EDGES = [(key, e) for key in BASE_IDS for e in _edge_cases(key)]


@pytest.mark.parametrize("key, edge", EDGES, ids=[f"{REASON[k[0]]}-{k[1]}-{i}" for i, (k, _) in enumerate(EDGES)])
def test_range_edges_succeed(verifiers, key, edge):
    desc, headers, params, want = edge
    assert _oh(verifiers, desc, headers, params) == want


def _matmul_call(K, da, db, H=1, T_a=2, R_b=3):
    params = ref.enc(H, T_a, 1, 1)
    desc = [vw.MATMUL, 0, 0, 1, H * K, H * R_b, ref.keccak256(params)]
    return desc, [[2 * T_a, H * K, bytes(32), da], [2 * R_b, H * K, bytes(32), db]], params


@pytest.mark.parametrize("K, da, db, want", [
    (511, 2, 0, (4, 3, 0)), (511, 0, 2, (4, 3, 0)), (512, 2, 0, ZERO), (512, 0, 2, ZERO),
    (512, 0, 0, (4, 3, 0)), (1, 2, 2, ZERO), (16384, 0, 0, (4, 3, 0)),
])
def test_matmul_int16_operand_bound(verifiers, K, da, db, want):
    """5.0: at most one int16 operand, and then K <= 511 (K = in_cols / H)."""
    assert _oh(verifiers, *_matmul_call(K, da, db)) == want


@pytest.mark.parametrize("n, flags, dtype, ok", [
    (1024, 0, 2, True), (1025, 0, 2, False), (1025, 1, 2, True), (1025, 0, 0, True), (16384, 129, 2, True),
])
def test_norm_int16_layernorm_bound(verifiers, n, flags, dtype, ok):
    """5.0: an int16 LayerNorm has n <= 1024; an RMSNorm or an int8 input has no bound."""
    params = ref.enc(n, 1, 1, bytes(32))
    desc = [vw.NORM, flags, 0, 0, n, n, ref.keccak256(params)]
    want = (3, n, 2 if flags & 128 else 0) if ok else ZERO
    assert _oh(verifiers, desc, [[3, n, bytes(32), dtype]], params) == want


def test_argmax_without_carry_takes_empty_params(verifiers):
    desc = [vw.ARGMAX, 1, 0, 0, 5, 2, bytes(32)]
    assert _oh(verifiers, desc, [[4, 5, bytes(32), 1]], b"") == (4, 2, 1)
    with ape.reverts("argmax: params header does not match"):
        _oh(verifiers, desc, [[4, 5, bytes(32), 1]], bytes(32))


# ---------------------------------------------------------------------------
# Ranges behind roots: the one step answers MALFORMED


def _element(verifiers, case, r, c):
    return verifiers[case["op"]["kind"]].step(*vw.step_call(case, r, c))


@pytest.mark.parametrize("entry, malformed", [(2**23, False), (2**23 + 1, True), (-1, True), (2**31 - 1, True),
                                              (-(2**31), True), (0, False)])
@pytest.mark.parametrize("at", [0, 137, 255])
def test_softmax_exp_entry_out_of_range_is_malformed(verifiers, monkeypatch, entry, malformed, at):
    monkeypatch.setattr(rk, "check_exp_table", lambda E: None)
    rng = random.Random(at)
    case = vw.random_case(vw.SOFTMAX, rng)
    case["op"]["exp_table"][at] = entry
    got = _element(verifiers, case, 0, 0)
    if malformed:
        assert got == MALFORMED
    else:
        assert got != MALFORMED and 0 <= got <= 32767


@pytest.mark.parametrize("entry, malformed", [(2**14, False), (-(2**14), False), (2**14 + 1, True),
                                              (-(2**14) - 1, True), (32767, True), (-32768, True)])
def test_rope_table_entry_out_of_range_is_malformed(verifiers, monkeypatch, entry, malformed):
    monkeypatch.setattr(rl, "check_rope_table", lambda table, D: len(table))
    for seed in range(3):
        case = vw.random_case(vw.ROPE, random.Random(seed))
        op = case["op"]
        T, D = len(op["table"]), len(op["table"][0])
        r = len(case["inputs"][0]["values"]) - 1
        op["table"][r % T][(seed * 5) % D] = entry  # any entry of the revealed row, used or not
        got = _element(verifiers, case, r, 0)
        assert (got == MALFORMED) == malformed, (seed, got)


@pytest.mark.parametrize("gamma, beta, malformed", [
    (2**15, 2**31 - 1 - 2**30, False), (-(2**15), -(2**31 - 1 - 2**30), False), (0, 2**31 - 1, False),
    (2**15, 2**30, True), (0, 2**31, True), (0, -(2**31), True), (2**16 - 1, 2**15 - 1, False), (2**16, 0, True), (2**16 + 1, 0, True),
    (-(2**16) - 1, 0, True), (2**200, 0, True), (0, -(2**255), True), (-(2**255), 0, True),
    # each bound of the first check keeps the second's 2^15·|γ| + |β| from overflowing (a revert)
    (2**255 - 1, 0, True), (2**16, 2**255 - 1, True),
])
def test_norm_column_out_of_range_is_malformed(verifiers, gamma, beta, malformed):
    case = vw.random_case(vw.NORM, random.Random(7))
    case["op"]["gamma"][0], case["op"]["beta"][0] = gamma, beta
    got = _element(verifiers, case, 0, 0)
    assert (got == MALFORMED) == malformed, got


# ---------------------------------------------------------------------------
# Every golden op (last: the rule tests above kill a mutant sooner, benchmarks/mutate_contracts.py)


@pytest.mark.parametrize("name, op, inputs, want", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_output_header_succeeds(verifiers, name, op, inputs, want):
    desc, headers, params = _call(op, inputs)
    assert verifiers[op["kind"]].output_header(desc, headers, params) == want


# ---------------------------------------------------------------------------
# Column counts of tensors (section 3: 1 <= cols <= MAX_COLS), on synthetic headers


def _synthetic(kind, n):
    """(desc, headers, params, want) of a valid op of ``kind`` with in_cols = out_cols = n (argmax:
    in_cols = n); the headers' roots are never read by output_header."""
    z = bytes(32)
    x = [[3, n, z, 0]]
    want = (3, n, 0)
    params = {LINEAR: ref.enc(n, n, z), vw.MATMUL: ref.enc(1, 1, 1, 1), vw.TRANSPOSE: ref.enc(1),
              vw.ADD: ref.enc(1, 1, 1), vw.LUT: bytes(256), vw.SOFTMAX: ref.enc(1, 1, z),
              vw.NORM: ref.enc(n, 1, 1, z), vw.EMBED: ref.enc(1, n, n, 1, 1, 1, z, z), vw.ARGMAX: b"",
              vw.ROPE: ref.enc(1, 1, 1, 1, z), vw.MUL: ref.enc(1, 1)}[kind]
    out_cols, input_b = n, 0
    if kind == vw.MATMUL:
        x, input_b = [[2, n, z, 0], [2 * n, n, z, 0]], 1
        want = (2, n, 0)
    if kind in (vw.ADD, vw.MUL):
        x, input_b = x + x, 1
    if kind == vw.TRANSPOSE:
        x, want = [[n, n, z, 0]], (n, n, 0)
    if kind == vw.EMBED:
        x, want = [[2, n, z, 1]], (2 * n, n, 0)
    if kind == vw.ARGMAX:
        x, out_cols, want = [[3, n, z, 1]], 1, (3, 1, 1)
    root = z if kind == vw.ARGMAX else ref.keccak256(params)
    return [kind, 0, 0, input_b, n, out_cols, root], x, params, want


@pytest.mark.parametrize("kind", sorted(NAMES), ids=lambda k: REASON[k])
def test_columns_of_a_tensor(verifiers, kind):
    for n in (2, MAX_COLS) if kind == vw.ROPE else (1, 2, MAX_COLS):  # rope: D = n even
        assert _oh(verifiers, *_synthetic(kind, n)[:3]) == _synthetic(kind, n)[3], n
    for n in (0, MAX_COLS + 2):
        assert _oh(verifiers, *_synthetic(kind, n)[:3]) == ZERO, n
