"""Llama's kinds and flags (protocol 5.12-5.14) in the exact kernels, bit for bit against the
independent reference (tests/reference_llama.py): ``rope``, ``mul``, ``matmul`` with
``grouped`` and ``argmax`` with ``pair``/``carry``.

Per kind, hypothesis draws ``REFEREE_TRANSFORMER_CASES`` (default 500) random ops and inputs,
derandomized, with int8 and int16 inputs and outputs and parameters at their bounds; then a
split head equals the argmax of the whole row, rope's ``row0`` (incremental decoding) equals
the rows of a whole run, random Llama-shaped models agree slot by slot, and malformed ops and
shapes are refused naming the op and the rule.
"""

import os
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_llama as rl
import reference_models as rm
import reference_transformer as rt
from helpers import DTYPE_RANGE as RANGE
from helpers import random_matrix_of as matrix_of, random_scale as scale, run_dict
from referee import kernels, ops
from referee.errors import InputError, ModelCompileError, RefereeError
from referee.executor import run_op
from referee.graph_dict import model_from_dict, op_from_dict
from referee.model import IntegerModel

CASES = int(os.environ.get("REFEREE_TRANSFORMER_CASES", "500"))
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
I8, I16, I32 = rt.DTYPE_INT8, rt.DTYPE_INT16, rt.DTYPE_INT32
TORCH = {I8: torch.int8, I16: torch.int16, I32: torch.int32}
SETTINGS = dict(max_examples=CASES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
seeds = st.integers(0, 2**32 - 1)
dtypes = st.sampled_from([I8, I16])


def check(op, inputs, in_dtypes):
    """The kernel (every device here) and the params root equal the reference's."""
    expected = rl.run_op(op, inputs, in_dtypes)
    kernel_op = op_from_dict(op)
    for device in DEVICES:
        got = run_op(kernel_op, [torch.tensor(v, dtype=TORCH[dt], device=device) for v, dt in zip(inputs, in_dtypes)],
                     device=device)
        assert got.cpu().tolist() == expected, (op["kind"], device)
        assert got.dtype == TORCH[rl.out_dtype(op, in_dtypes[0])]
    assert kernel_op.params_root == rl.params_root(op)
    assert kernel_op.descriptor() == rl.op_descriptor(op)
    return expected


modes = st.sampled_from(["uniform", "extremes", "ties"])


@settings(**SETTINGS)
@given(seed=seeds, mode=modes, heads=st.integers(1, 4), half=st.integers(1, 4), T=st.integers(1, 5),
       G=st.integers(1, 3), in_dt=dtypes, out16=st.booleans(), extreme=st.booleans())
def test_rope_matches_reference_succeeds(seed, mode, heads, half, T, G, in_dt, out16, extreme):
    rng = random.Random(seed)
    D = 2 * half
    table = rm.rope_table(T, D) if rng.randrange(2) else matrix_of(rng, T, D, "extremes" if extreme else "uniform", I16)
    table = [[max(-rl.ROPE_ONE, min(rl.ROPE_ONE, v)) for v in row] for row in table]
    m, s = scale(rng, extreme)
    op = {"kind": rl.ROPE, "flags": rt.FLAG_I16 if out16 else 0, "input_a": 0, "input_b": 0, "in_cols": heads * D,
          "out_cols": heads * D, "heads": heads, "multiplier": m, "shift": s, "table": table}
    check(op, [matrix_of(rng, G * T, heads * D, mode, in_dt)], [in_dt])


@settings(**SETTINGS)
@given(seed=seeds, mode=modes, rows=st.integers(1, 6), n=st.sampled_from([1, 2, 7, 64]), a_dt=dtypes, b_dt=dtypes,
       out16=st.booleans(), extreme=st.booleans())
def test_mul_matches_reference_succeeds(seed, mode, rows, n, a_dt, b_dt, out16, extreme):
    rng = random.Random(seed)
    m, s = scale(rng, extreme)
    op = {"kind": rl.MUL, "flags": rt.FLAG_I16 if out16 else 0, "input_a": 0, "input_b": 1, "in_cols": n,
          "out_cols": n, "multiplier": m, "shift": s}
    check(op, [matrix_of(rng, rows, n, mode, a_dt), matrix_of(rng, rows, n, mode, b_dt)], [a_dt, b_dt])


@settings(**SETTINGS)
@given(seed=seeds, mode=modes, kv=st.sampled_from([(2, 1), (4, 1), (4, 2), (6, 2), (6, 3), (8, 4)]),
       K=st.sampled_from([1, 2, 5, 64]), seq=st.integers(1, 4), r_b=st.integers(1, 4), G=st.integers(1, 3),
       causal=st.booleans(), in16=st.sampled_from([None, 0, 1]), out16=st.booleans(), extreme=st.booleans())
def test_grouped_matmul_matches_reference_succeeds(seed, mode, kv, K, seq, r_b, G, causal, in16, out16, extreme):
    rng = random.Random(seed)
    heads, kv_heads = kv
    dts = [I16 if in16 == i else I8 for i in (0, 1)]
    m, s = scale(rng, extreme)
    flags = rl.FLAG_GROUPED | (rt.FLAG_CAUSAL if causal else 0) | (rt.FLAG_I16 if out16 else 0)
    op = {"kind": rt.MATMUL, "flags": flags, "input_a": 0, "input_b": 1, "in_cols": heads * K,
          "out_cols": heads * r_b, "heads": heads, "seq": seq, "multiplier": m, "shift": s, "kv_heads": kv_heads}
    check(op, [matrix_of(rng, G * seq, heads * K, mode, dts[0]), matrix_of(rng, G * r_b, kv_heads * K, mode, dts[1])], dts)


@settings(**SETTINGS)
@given(seed=seeds, mode=modes, rows=st.integers(1, 6), n=st.sampled_from([1, 2, 5, 300]),
       dt=st.sampled_from([I8, I16, I32]), pair=st.booleans(), carry=st.booleans(), near=st.booleans())
def test_argmax_pair_and_carry_match_reference_succeeds(seed, mode, rows, n, dt, pair, carry, near):
    rng = random.Random(seed)
    x = matrix_of(rng, rows, n, mode, dt)
    flags = (rl.FLAG_PAIR if pair else 0) | (rl.FLAG_CARRY if carry else 0)
    op = {"kind": rt.ARGMAX, "flags": flags, "input_a": 0, "input_b": 1 if carry else 0, "in_cols": n,
          "out_cols": 2 if pair else 1}
    if not carry:
        check(op, [x], [dt])
        return
    offset = rng.choice((1, n, 2**24, rng.randint(1, 2**24)))
    # carried values at, just above and just below the row's maximum, and anywhere
    carried = [[max(row) + rng.choice((0, 1, -1)) if near else rng.randint(*RANGE[I32]), rng.randrange(offset)]
               for row in x]
    carried = [[max(RANGE[I32][0], min(RANGE[I32][1], v)), j] for v, j in carried]
    check({**op, "offset": offset}, [x, carried], [dt, I32])


@pytest.mark.parametrize("widths", [[1, 1], [3, 4], [5, 5, 5], [8, 1, 7, 2]])
def test_split_head_is_the_argmax_of_the_whole_row_succeeds(widths):
    """5.14: argmax(L_1, pair), argmax(L_s, carry, offset o_s) give the whole row's lowest argmax."""
    rng = random.Random(len(widths) * 10 + widths[0])
    total = sum(widths)
    logits = [[rng.choice((-(2**31), 2**31 - 1, 0, 1, rng.randint(-3, 3))) for _ in range(total)] for _ in range(64)]
    ops_, start, best = [], 0, None
    for s, w in enumerate(widths):
        chunk = [row[start:start + w] for row in logits]
        pair = s < len(widths) - 1
        op = ops.ArgmaxOp(0, w, pair=pair, carry=best is not None, input_b=1 if best is not None else 0,
                          offset=start if best is not None else 0)
        t = torch.tensor(chunk, dtype=torch.int32)
        best_t = run_op(op, [t] if best is None else [t, best])
        best_ref = rl.argmax_chunk(chunk, pair, None if best is None else best.tolist(), start)
        assert best_t.tolist() == best_ref
        best, start = best_t, start + w
        ops_.append(op)
    assert best.tolist() == rk_argmax(logits)


def rk_argmax(rows):
    return [[row.index(max(row))] for row in rows]


@pytest.mark.parametrize("in_dtype", [torch.int8, torch.int16])
def test_rope_row0_rows_equal_the_whole_run_succeeds(in_dtype):
    """Rope.__call__(x, row0): the given rows are positions row0, row0 + 1, ... of one sequence."""
    T, heads, D = 6, 2, 4
    op = ops.RopeOp(0, heads, torch.tensor(rm.rope_table(T, D), dtype=torch.int16), 12345, 20, i16=True)
    x = torch.randint(-100, 100, (T, heads * D), generator=torch.Generator().manual_seed(1)).to(in_dtype)
    kernel = kernels.Rope(op, torch.device("cpu"), (I16 if in_dtype == torch.int16 else I8,))
    whole = kernel(x)
    for row0 in range(T):
        assert torch.equal(kernel(x[row0:row0 + 1], row0=row0), whole[row0:row0 + 1])
    assert torch.equal(kernel(x[2:], row0=2), whole[2:])


@settings(max_examples=max(CASES // 50, 4), **{k: v for k, v in SETTINGS.items() if k != "max_examples"})
@given(seed=seeds, layers=st.integers(1, 2), kv=st.sampled_from([(2, 1), (4, 2), (4, 4)]), d_h=st.sampled_from([2, 4]),
       seq=st.integers(1, 5), batch=st.integers(1, 2), chunks=st.sampled_from([[5], [4, 3], [2, 2, 3]]))
def test_random_llama_models_every_slot_succeeds(seed, layers, kv, d_h, seq, batch, chunks):
    heads, kv_heads = kv
    model, ids = rm.llama(random.Random(seed), layers, heads * d_h, heads, kv_heads, 6, seq, chunks, batch)
    slots, roots, _ = rl.trace(model, ids)
    compiled = model_from_dict(model)
    assert compiled.root == rl.model_root(model)
    assert compiled.descriptors() == [rl.op_descriptor(op) for op in model["ops"]]
    for backend in ("float", "int64", "int_mm"):
        assert run_dict(model, ids, backend=backend) == slots
    # the greedy token of the split head is the argmax over every chunk's logits at once
    heads_ = range(len(slots) - 2 * len(chunks), len(slots) - len(chunks))  # the chunks' logits slots
    logits = [sum((slots[j][r] for j in heads_), []) for r in range(len(ids) * seq)]
    assert slots[-1] == rk_argmax(logits)


# ---------------------------------------------------------------------------------------
# Malformed ops and shapes: refused, naming the op and the rule

TABLE = torch.zeros(2, 4, dtype=torch.int16)


@pytest.mark.parametrize("build, message", [
    (lambda: ops.RopeOp(0, 2, torch.full((2, 4), (1 << 14) + 1, dtype=torch.int16), 1, 1),
     r"table has an entry outside \[-16384, 16384\]"),
    (lambda: ops.RopeOp(0, 8, torch.zeros(2, 1, dtype=torch.int16), 1, 1), "D = 1 must be even"),
    (lambda: ops.RopeOp(0, 2, TABLE.to(torch.int32), 1, 1), "table must be a 2-D int16 tensor"),
    (lambda: ops.RopeOp(0, 2, TABLE, 0, 1), r"multiplier = 0 is outside \[1, 2147483647\]"),
    (lambda: ops.MulOp(0, 0, 8, 1, 63), r"shift = 63 is outside \[1, 62\]"),
    (lambda: ops.MatmulOp(0, 0, 8, 4, 4, 1, 1, 1, kv_heads=3), r"kv_heads = 3 must be in \[1, heads = 4\]"),
    (lambda: ops.MatmulOp(0, 0, 8, 4, 4, 1, 1, 1, kv_heads=8), r"kv_heads = 8 must be in \[1, heads = 4\]"),
    (lambda: ops.ArgmaxOp(0, 8, carry=True, offset=0), r"offset = 0 is outside \[1, 16777216\]"),
    (lambda: ops.ArgmaxOp(0, 8, carry=True, offset=(1 << 24) + 1), "offset = 16777217"),
    (lambda: ops.ArgmaxOp(0, 8, offset=3), "input_b = 0 and offset = 3 need the carry flag"),
])
def test_llama_ranges_are_enforced_with_the_op_named_fails(build, message):
    with pytest.raises(ModelCompileError, match="op 1.*" + message):
        IntegerModel(8, [build()]).validate()


def test_llama_slot_columns_and_dtypes_fails():
    grouped = ops.MatmulOp(0, 0, 8, 4, 4, 1, 1, 1, kv_heads=2)  # B must have 2 * K = 4 columns
    with pytest.raises(ModelCompileError, match="op 1: takes 4 columns but slot 0 has 8"):
        IntegerModel(8, [grouped]).validate()
    pair = ops.ArgmaxOp(0, 8, pair=True)
    with pytest.raises(ModelCompileError, match="op 2: takes 2 columns but slot 0 has 8"):
        IntegerModel(8, [pair, ops.ArgmaxOp(1, 2, carry=True, input_b=0, offset=8)]).validate()
    with pytest.raises(ModelCompileError, match="op 1: cannot read slot 0 of dtype int8"):  # the pair is int32
        IntegerModel(2, [ops.ArgmaxOp(0, 2, carry=True, input_b=0, offset=1)]).validate()
    with pytest.raises(ModelCompileError, match="op: an argmax's carried pair .* is int32"):
        run_op(ops.ArgmaxOp(0, 3, carry=True, input_b=1, offset=1),
               [torch.zeros(2, 3, dtype=torch.int8), torch.zeros(2, 2, dtype=torch.int8)])
    with pytest.raises(ModelCompileError, match="op 1: cannot read slot 0 of dtype int32"):
        IntegerModel(4, [ops.MulOp(0, 0, 4, 1, 1)], input_dtype=1).validate()


def test_llama_shape_rules_fails():
    rope = IntegerModel(8, [ops.RopeOp(0, 2, torch.zeros(3, 4, dtype=torch.int16), 1, 1)]).validate()
    assert rope.slot_shapes(6)[-1] == (6, 8, I8)
    with pytest.raises(InputError, match="op 1 cannot run on an input of 4 rows: the input has 4 rows, "
                                         "not a multiple of seq = 3"):
        rope.slot_shapes(4)
    with pytest.raises(InputError, match="its inputs have 2 and 3 rows"):
        run_op(ops.MulOp(0, 1, 4, 1, 1), [torch.zeros(2, 4, dtype=torch.int8), torch.zeros(3, 4, dtype=torch.int8)])
    with pytest.raises(InputError, match="its inputs have 2 and 1 rows"):
        run_op(ops.ArgmaxOp(0, 4, carry=True, input_b=1, offset=4),
               [torch.zeros(2, 4, dtype=torch.int8), torch.zeros(1, 2, dtype=torch.int32)])
    with pytest.raises(InputError, match="B has 3 rows; 2 sequences of 1 rows need 2"):
        run_op(ops.MatmulOp(0, 1, 8, 4, 4, 1, 1, 1, kv_heads=2),
               [torch.zeros(2, 8, dtype=torch.int8), torch.zeros(3, 4, dtype=torch.int8)])


BAD_DICTS = [
    ({"kind": 2, "flags": 2, "input_a": 0, "input_b": 0, "in_cols": 4, "out_cols": 4, "heads": 2, "seq": 1,
      "multiplier": 1, "shift": 1, "kv_heads": 2}, "kv_heads"),
    ({"kind": 10, "flags": 1, "input_a": 0, "input_b": 0, "in_cols": 4, "out_cols": 4, "heads": 1,
      "multiplier": 1, "shift": 1, "table": [[0] * 4]}, "flags"),
    ({"kind": 10, "flags": 0, "input_a": 0, "input_b": 0, "in_cols": 4, "out_cols": 4, "heads": 1,
      "multiplier": 1, "shift": 1, "table": [[0, 0, 0, 2**14 + 1]]}, "table"),
    ({"kind": 11, "flags": 0, "input_a": 0, "input_b": 0, "in_cols": 4, "out_cols": 4, "multiplier": 1,
      "shift": 0}, "shift"),
    ({"kind": 9, "flags": 2, "input_a": 0, "input_b": 0, "in_cols": 4, "out_cols": 1, "offset": 1}, "columns"),
    ({"kind": 9, "flags": 1, "input_a": 0, "input_b": 0, "in_cols": 4, "out_cols": 1}, "out_cols"),
    ({"kind": 9, "flags": 4, "input_a": 0, "input_b": 0, "in_cols": 4, "out_cols": 1}, "flags"),
]


@pytest.mark.parametrize("op, message", BAD_DICTS)
def test_both_refuse_the_same_bad_llama_ops_fails(op, message):
    model = {"input_cols": 4, "input_dtype": 0, "ops": [op]}
    with pytest.raises(ValueError, match=message):
        rl.validate_model(model)
    with pytest.raises(RefereeError):
        model_from_dict(model)


# ---------------------------------------------------------------------------------------
# The reference itself against hand-worked values (the working is in the comments)


def test_reference_hand_worked_succeeds():
    import reference as ref

    # rope at t = 0 with (c, s) = (2^14, 0) is the identity after rq(., 1, 14); at t = 1 with
    # (0, 2^14) a quarter turn: (a, b) -> (-b, a). Rows 2, 3 are positions 0, 1 again (T = 2).
    table = [[2**14, 0], [0, 2**14]]
    assert rl.rope([[3, -5], [3, -5], [7, 1], [7, 1]], 1, table, 1, 14) == [[3, -5], [5, 3], [7, 1], [-1, 7]]
    # CR: the rows root of the int16 table, leaves H(two big-endian bytes per entry)
    leaves = [ref.keccak256(bytes.fromhex("40000000")), ref.keccak256(bytes.fromhex("00004000"))]
    op = {"kind": rl.ROPE, "flags": 0, "input_a": 0, "input_b": 0, "in_cols": 2, "out_cols": 2, "heads": 1,
          "multiplier": 1, "shift": 14, "table": table}
    assert rl.params_header(op) == ref.enc(1, 2, 1, 14, ref.keccak256(leaves[0] + leaves[1]))
    # mul: 3 * -5 = -15, (-15 + 1) >> 1 = -7; 5 * 5 = 25 -> 13 (the half tie goes up); 127 * 127 clamps
    assert rl.mul([[3, 5, 127]], [[-5, 5, 127]], 1, 1) == [[-7, 13, 127]]
    assert rl.params_header({"kind": rl.MUL, "flags": 0, "multiplier": 3, "shift": 2}) == ref.enc(3, 2)
    # grouped: H = 2 query heads of K = 1 over H_b = 1 key head: both read B's only column
    assert rl.matmul_grouped([[2, 3]], [[5]], 2, 1, 1, 2, 1, 1, False) == [[5, 8]]  # rq(10) = 5, rq(15) = 8
    # argmax: chunk max 7 at index 1; a carried 7 keeps its index 0, a carried 6 loses to 10 + 1
    assert rl.argmax_chunk([[0, 7, 7]], True) == [[7, 1]]
    assert rl.argmax_chunk([[0, 7, 7], [0, 7, 7]], True, [[7, 0], [6, 0]], 10) == [[7, 0], [7, 11]]
    assert rl.params_root({"kind": rt.ARGMAX, "flags": 1}) == bytes(32)
    assert rl.params_root({"kind": rt.ARGMAX, "flags": 2, "offset": 10}) == ref.keccak256(ref.enc(10))
