"""The exact transformer kernels (``referee.kernels``, ``referee.executor``) against the
independent pure-integer reference (tests/reference_transformer.py), bit for bit.

Only the public API is used: ``op_from_dict`` / ``run_op`` for one op, ``model_from_dict`` /
``run_dict`` (tests/helpers.py) for whole models, ``commit_tensor`` / ``state_roots`` for
roots. Per kind, hypothesis draws ``REFEREE_TRANSFORMER_CASES`` (default 500) random ops and
inputs — shapes, heads, sequences, masks, and value modes that hit the edges: -128/127 only,
constant rows, tiny ranges full of ties, parameters at their bounds — derandomized, so a run
repeats; whole random transformer-shaped models are compared slot by slot and root by root;
then every golden vector runs through the kernels. Every kind that reads or writes int16
(5.0, flag ``i16``) draws its input and output widths too, and the random models are drawn
with and without 16-bit activations.
"""

import os
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_cases as rc
import reference_llama as rl
import reference_models as rm
import reference_transformer as rt
from helpers import load_vectors, run_dict
from helpers import random_matrix as matrix, random_matrix_of as matrix_of, random_scale as scale
from referee.commitments import commit_tensor, packed, state_roots
from referee.errors import RefereeError
from referee.executor import run_op
from referee.graph_dict import model_from_dict, model_to_dict, op_from_dict

CASES = int(os.environ.get("REFEREE_TRANSFORMER_CASES", "500"))
MODELS = int(os.environ.get("REFEREE_TRANSFORMER_MODELS", "25"))
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BACKENDS = ["float", "int64", "int_mm"]
M_MAX, I32_MIN, I32_MAX = 2**31 - 1, -(2**31), 2**31 - 1
I16_MIN, I16_MAX = -(2**15), 2**15 - 1
I8, I16 = rt.DTYPE_INT8, rt.DTYPE_INT16
TORCH = {rt.DTYPE_INT8: torch.int8, rt.DTYPE_INT16: torch.int16, rt.DTYPE_INT32: torch.int32}

SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------------------------------
# Random values: one seeded generator per example, hypothesis picks shapes, modes and seed

MODES = ("uniform", "extremes", "constant_rows", "ties", "one_value", "small_positive")


def tensor(values, dtype=rt.DTYPE_INT8, device="cpu"):
    return torch.tensor(values, dtype=TORCH[dtype], device=device)


def i16(flags, wide_out):
    """``flags`` with bit 7 (i16) set when ``wide_out``."""
    return flags | (rt.FLAG_I16 if wide_out else 0)


def check_op(op, inputs, in_dtypes=None, backends=("auto",)):
    """T1's kernel (on every device here, with every backend named) and commitments equal the
    reference's for one op on given inputs."""
    in_dtypes = in_dtypes or [rt.DTYPE_INT8] * len(inputs)
    expected = rt.run_op(op, inputs, in_dtypes)
    kernel_op = op_from_dict(op)
    for device in DEVICES:
        for backend in backends:
            got = run_op(kernel_op, [tensor(v, dt, device) for v, dt in zip(inputs, in_dtypes)],
                         device=device, backend=backend)
            assert got.cpu().tolist() == expected, (op["kind"], device, backend)
            assert got.dtype == TORCH[rt.out_dtype(op, in_dtypes[0])]
    header = rt.params_header(op)  # once: the reference's Merkle roots are slow at MAX_COLS
    assert kernel_op.params_root == (bytes(32) if op["kind"] == rt.ARGMAX else rt.keccak256(header))
    if op["kind"] != rt.ARGMAX:
        assert kernel_op.params_header() == header


kind_settings = settings(max_examples=CASES, **SETTINGS)
seeds = st.integers(0, 2**32 - 1)
modes = st.sampled_from(MODES)

# ---------------------------------------------------------------------------------------
# One op per kind, >= 500 random cases each


@kind_settings
@given(seed=seeds, mode=modes, rows=st.integers(1, 8), k=st.sampled_from([1, 2, 3, 8, 31, 64, 200, 1500]),
       n=st.integers(1, 9), extreme=st.booleans(), wide=st.booleans(), in16=st.booleans(), out16=st.booleans())
def test_linear_wide_and_plain_match_reference_succeeds(seed, mode, rows, k, n, extreme, wide, in16, out16):
    rng = random.Random(seed)
    in_dtype, x_max = (I16, 2**15) if in16 else (I8, 128)
    W = matrix(rng, n, k, mode)
    if in16:  # the int16 accumulator bound: 2^15 * sum|W[c]| <= 2^31 - 1
        W = [[v // max(1, -(-sum(abs(u) for u in row) // 60000)) for v in row] for row in W]  # sum <= 60000 + k
    room = [2**31 - 1 - x_max * sum(abs(v) for v in row) for row in W]
    b = [rng.choice((r, -r, 0)) if extreme else rng.randint(-min(r, 10**6), min(r, 10**6)) for r in room]
    m, s = zip(*(scale(rng, extreme) for _ in range(n)))
    flags = rt.FLAG_WIDE if wide else i16(rng.choice((0, rt.FLAG_RELU)), out16)
    check_op(rc.linear(W, b, list(m), list(s), flags), [matrix_of(rng, rows, k, rng.choice(MODES), in_dtype)],
             [in_dtype], backends=BACKENDS)


@kind_settings
@given(seed=seeds, mode=modes, heads=st.integers(1, 4), K=st.sampled_from([1, 2, 5, 16, 300]),
       seq=st.integers(1, 6), groups=st.integers(1, 3), r_b=st.integers(1, 6), causal=st.booleans(),
       extreme=st.booleans(), same=st.booleans(), in16=st.sampled_from([None, 0, 1]), out16=st.booleans())
def test_matmul_matches_reference_succeeds(seed, mode, heads, K, seq, groups, r_b, causal, extreme, same, in16,
                                           out16):
    rng = random.Random(seed)
    dtypes = [I16 if in16 == i else I8 for i in (0, 1)]  # at most one int16 operand (K <= 511 here)
    A = matrix_of(rng, groups * seq, heads * K, mode, dtypes[0])
    if same and in16 is None:  # Q·Kᵀ of one slot with itself: R_b = T_a
        r_b, B = seq, A
    else:
        B = matrix_of(rng, groups * r_b, heads * K, rng.choice(MODES), dtypes[1])
    m, s = scale(rng, extreme)
    op = rc.matmul(heads * K, heads * r_b, heads, seq, m, s, causal)
    check_op({**op, "flags": i16(op["flags"], out16)}, [A, B], dtypes, backends=BACKENDS)


@kind_settings
@given(seed=seeds, mode=modes, heads=st.integers(1, 4), C=st.integers(1, 9), r_in=st.integers(1, 9),
       groups=st.integers(1, 4), in16=st.booleans())
def test_transpose_matches_reference_succeeds(seed, mode, heads, C, r_in, groups, in16):
    rng = random.Random(seed)
    dtype = I16 if in16 else I8  # the output keeps it
    x = matrix_of(rng, groups * r_in, heads * C, mode, dtype)
    check_op(rc.transpose(heads * C, heads * r_in, heads), [x], [dtype])


@kind_settings
@given(seed=seeds, mode=modes, rows=st.integers(1, 8), n=st.sampled_from([1, 2, 7, 64, 384]),
       extreme=st.booleans(), same=st.booleans(), a16=st.booleans(), b16=st.booleans(), out16=st.booleans())
def test_add_matches_reference_succeeds(seed, mode, rows, n, extreme, same, a16, b16, out16):
    rng = random.Random(seed)
    dtypes = [I16 if a16 else I8, I16 if b16 else I8]
    a = matrix_of(rng, rows, n, mode, dtypes[0])
    if same:
        dtypes[1] = dtypes[0]
    b = a if same else matrix_of(rng, rows, n, rng.choice(MODES), dtypes[1])
    if extreme:
        m_a, m_b, s = rng.choice(((M_MAX, M_MAX, 62), (M_MAX, M_MAX, 1), (1, 1, 1), (1, M_MAX, 31)))
    else:
        s = rng.randint(1, 30)
        m_a, m_b = rng.randint(1, 2 ** (s + 1)), rng.randint(1, 2 ** (s + 1))
    op = rc.add(n, m_a, m_b, s)
    check_op({**op, "flags": i16(0, out16)}, [a, b], dtypes)


@kind_settings
@given(seed=seeds, mode=modes, table_mode=modes, rows=st.integers(1, 8), n=st.sampled_from([1, 3, 64, 256]),
       out16=st.booleans())
def test_lut_matches_reference_succeeds(seed, mode, table_mode, rows, n, out16):
    rng = random.Random(seed)
    table = matrix_of(rng, 1, 256, table_mode, I16 if out16 else I8)[0]  # int16 entries with i16
    x = [list(range(-128, 128))][:rows] if n == 256 and rng.randrange(2) else matrix(rng, rows, n, mode)
    check_op({**rc.lut(len(x[0]), table), "flags": i16(0, out16)}, [x])


EXP_TABLES = {
    "halving": rc.E_HALVING, "flat": rc.E_FLAT, "zero0": rc.E_ZERO0,
    "exp3": rm.exp_table(3), "exp6": rm.exp_table(6), "all_zero": [0] * 256,
}


def exp_table(rng, name):
    if name == "random":
        return [rng.randint(0, 2**23) for _ in range(256)]
    if name == "tiny":
        return [rng.randint(0, 3) for _ in range(256)]
    return EXP_TABLES[name]


@kind_settings
@given(seed=seeds, mode=modes, table=st.sampled_from(sorted(EXP_TABLES) + ["random", "tiny"]),
       heads=st.integers(1, 4), L=st.sampled_from([1, 2, 5, 16, 200]), seq=st.integers(1, 6),
       groups=st.integers(1, 3), causal=st.booleans(), keymask=st.sampled_from([None, "random", "bits", "none"]),
       out16=st.booleans())
def test_softmax_matches_reference_succeeds(seed, mode, table, heads, L, seq, groups, causal, keymask, out16):
    rng = random.Random(seed)
    x = matrix(rng, groups * seq, heads * L, mode)
    op = rc.softmax(heads * L, heads, seq, exp_table(rng, table), causal, keymask is not None)
    op = {**op, "flags": i16(op["flags"], out16)}
    if keymask is None:
        check_op(op, [x])
        return
    # The mask: any int8 (non-zero = valid), 0/1 bits, or every key masked (zero segments).
    lo = {"random": -128, "bits": 0, "none": 0}[keymask]
    mask = matrix(rng, groups, L, "uniform", lo, 0 if keymask == "none" else 1 if keymask == "bits" else 127)
    check_op(op, [x, mask])


def check_norm(seed, mode, rows, n, rms, extreme, in16=False, out16=False):
    rng = random.Random(seed)
    gmax = (2**31 - 1) // 2**15
    gamma, beta = [], []
    for _ in range(n):
        g = rng.choice((gmax, -gmax, 1, -1)) if extreme else rng.randint(-2000, 2000)
        room = 2**31 - 1 - 2**15 * abs(g)
        gamma.append(g)
        beta.append(rng.choice((room, -room)) if extreme else rng.randint(-min(room, 10**6), min(room, 10**6)))
    m, s = scale(rng, extreme)
    op = rc.norm(gamma, beta, m, s, rms)
    dtype = I16 if in16 else I8
    check_op({**op, "flags": i16(op["flags"], out16)}, [matrix_of(rng, rows, n, mode, dtype)], [dtype])


@kind_settings
@given(seed=seeds, mode=modes, rows=st.integers(1, 6), n=st.sampled_from([1, 2, 3, 8, 64, 101, 102, 384]),
       rms=st.booleans(), extreme=st.booleans(), in16=st.booleans(), out16=st.booleans())
def test_norm_matches_reference_succeeds(seed, mode, rows, n, rms, extreme, in16, out16):
    # int16 rows take the float64 path up to n = 101 and int64 beyond
    check_norm(seed, mode, rows, n, rms, extreme, in16, out16)


@settings(max_examples=max(CASES // 50, 6), **SETTINGS)
@given(seed=seeds, mode=st.sampled_from(["uniform", "extremes", "constant_rows"]), rms=st.booleans(),
       extreme=st.booleans(), out16=st.booleans())
def test_norm_int16_at_1024_cols_matches_reference_succeeds(seed, mode, rms, extreme, out16):
    # n = 1024 with -2^15/2^15-1 rows: V near 2^62, the int64 bound of 5.6
    check_norm(seed, mode, 1, 1024, rms, extreme, True, out16)


@settings(max_examples=max(CASES // 50, 6), **SETTINGS)
@given(seed=seeds, mode=st.sampled_from(["uniform", "extremes", "constant_rows"]), rms=st.booleans(),
       extreme=st.booleans())
def test_norm_at_max_cols_matches_reference_succeeds(seed, mode, rms, extreme):
    # n = MAX_COLS with -128/127 rows: V passes 2^53, where a float64 variance is inexact.
    check_norm(seed, mode, 1, 16384, rms, extreme)


def same_sign_rows(rng, k):
    """Two int8 rows whose products mostly share a sign: their dot product passes 2^24."""
    a = [rng.choice((-128, 127, -127, 125)) for _ in range(k)]
    return a, [v if rng.randrange(10) else -v - 1 for v in a]


@settings(max_examples=max(CASES // 25, 8), **SETTINGS)
@given(seed=seeds, kind=st.sampled_from(["matmul", "linear", "softmax"]), heads=st.sampled_from([1, 2, 4]),
       extreme=st.booleans())
def test_max_cols_match_reference_succeeds(seed, kind, heads, extreme):
    # k = MAX_COLS: sums up to 2^28 (matmul, wide linear) and S up to 2^37 (softmax), past
    # float32's exact range; one or two rows keep the pure-Python reference quick.
    rng = random.Random(seed)
    n = 16384
    if kind == "matmul":
        a, b = same_sign_rows(rng, n)
        m, s = scale(rng, extreme) if extreme else (1, 24)
        check_op(rc.matmul(n, heads, heads, 1, m, s), [[a], [b]], backends=BACKENDS)
    elif kind == "linear":
        a, w = same_sign_rows(rng, n)
        bias = rng.choice((0, 2**31 - 1 - 128 * sum(abs(v) for v in w)))
        check_op(rc.linear([w, a[::-1]], [bias, -5], [1, 7], [1, 9], rt.FLAG_WIDE), [[a]], backends=BACKENDS)
    else:
        table = rc.E_FLAT if extreme else exp_table(rng, "random")
        x = matrix(rng, 1, n, rng.choice(("uniform", "ties", "one_value")))
        check_op(rc.softmax(n, heads, 1, table), [x])


@kind_settings
@given(seed=seeds, mode=modes, batch=st.integers(1, 4), T=st.integers(1, 8), V=st.sampled_from([1, 2, 17, 300]),
       d=st.integers(1, 12), extreme=st.booleans(), out16=st.booleans())
def test_embed_matches_reference_succeeds(seed, mode, batch, T, V, d, extreme, out16):
    rng = random.Random(seed)
    specials = (-1, V, V + 1, I32_MIN, I32_MAX, 0, V - 1)
    ids = [[rng.choice(specials) if rng.randrange(3) == 0 else rng.randrange(V) for _ in range(T)]
           for _ in range(batch)]
    if extreme:
        m_a, m_b, s = rng.choice(((M_MAX, M_MAX, 62), (M_MAX, M_MAX, 1), (1, 1, 1), (M_MAX, 1, 31)))
    else:
        s = rng.randint(1, 20)
        m_a, m_b = rng.randint(1, 2**s), rng.randint(1, 2**s)
    table = I16 if out16 else I8  # with i16 the tables are int16 (5.7)
    op = rc.embed(matrix_of(rng, V, d, mode, table), matrix_of(rng, T, d, rng.choice(MODES), table), m_a, m_b, s)
    check_op({**op, "flags": i16(0, out16)}, [ids], [rt.DTYPE_INT32])


@kind_settings
@given(seed=seeds, mode=modes, rows=st.integers(1, 8), n=st.sampled_from([1, 2, 5, 64, 1000]),
       int32=st.booleans(), near=st.booleans(), int16=st.booleans())
def test_argmax_matches_reference_succeeds(seed, mode, rows, n, int32, near, int16):
    rng = random.Random(seed)
    if int16 and not int32:
        check_op(rc.argmax(n), [matrix_of(rng, rows, n, mode, I16)], [I16])
    elif int32:
        base = rng.choice((I32_MIN, 2**30, I32_MAX - 3, 0, -(2**24) - 3))
        x = [[base + v for v in row] for row in matrix(rng, rows, n, "ties", 0, 2)] if near else \
            matrix(rng, rows, n, mode, I32_MIN, I32_MAX)
        check_op(rc.argmax(n), [x], [rt.DTYPE_INT32])
    else:
        check_op(rc.argmax(n), [matrix(rng, rows, n, mode)])


# ---------------------------------------------------------------------------------------
# Whole models: every slot, every root


def check_model(model, x, backends=BACKENDS):
    slots, roots, s_roots = rt.trace(model, x)
    compiled = model_from_dict(model)
    assert compiled.root == rt.model_root(model)
    assert compiled.ops_root == rt.ops_root(model)
    assert compiled.descriptors() == [rt.op_descriptor(op) for op in model["ops"]]
    for device in DEVICES:
        for backend in backends:
            assert run_dict(model, x, device=device, backend=backend) == slots, (device, backend)
    _, dtypes = rt.validate_model(model)
    tensors = [tensor(v, dt) for v, dt in zip(slots, dtypes)]
    assert [commit_tensor(t).root for t in tensors] == roots
    assert state_roots(roots) == s_roots


@settings(max_examples=MODELS, **SETTINGS)
@given(seed=seeds, kind=st.sampled_from(["encoder", "decoder"]), layers=st.integers(1, 2),
       heads=st.integers(1, 4), d_h=st.integers(1, 4), ffn=st.integers(1, 16), seq=st.integers(1, 6),
       vocab=st.integers(1, 20), batch=st.integers(1, 3), extreme=st.booleans(), masked=st.booleans(),
       wide16=st.booleans())
def test_random_transformers_every_slot_and_root_succeeds(seed, kind, layers, heads, d_h, ffn, seq,
                                                          vocab, batch, extreme, masked, wide16):
    pad = 0 if masked and kind == "encoder" else None  # keymask softmax and masked pooling (5.9)
    model, ids = rm.transformer(random.Random(seed), kind, layers, heads * d_h, heads, ffn, seq,
                                vocab, batch, extreme, pad=pad, i16=wide16)
    check_model(model, ids)


@pytest.mark.parametrize("kind, pad_id", [("encoder", None), ("encoder", 0), ("decoder", None)])
def test_builder_models_run_on_the_reference_succeeds(kind, pad_id):
    """T1's graph builder emits models the reference accepts, and the kernels agree on them
    (an encoder with a pad id: the key-mask slot, keymask softmax and masked pooling)."""
    from referee.transformer import FloatTransformer, TransformerConfig
    try:  # API.md names referee.transformer; the compiler lives in its own module
        from referee.transformer import compile_transformer
    except ImportError:
        from referee.transformer_compile import compile_transformer
    cfg = TransformerConfig(kind=kind, layers=2, width=16, heads=4, ffn=32, seq=6, vocab=24, pad_id=pad_id)
    tokens = torch.randint(1, 24, (3, 6), generator=torch.Generator().manual_seed(7))
    if pad_id is not None:
        tokens[0, 4:], tokens[1, 1:] = pad_id, pad_id
    model = model_to_dict(compile_transformer(FloatTransformer(cfg, seed=0), tokens))
    check_model(model, tokens.tolist())


@pytest.mark.parametrize("op, input_dtype, message", rc.bad_ops())
def test_both_refuse_the_same_bad_models_fails(op, input_dtype, message):
    """A one-op model that breaks a rule of 5.1-5.10 is refused by the reference and by
    ``model_from_dict`` alike (one compile error, not a crash or an accepted model)."""
    model = {"input_cols": 4, "input_dtype": input_dtype, "ops": [op]}
    with pytest.raises(ValueError, match=message):
        rt.validate_model(model)
    with pytest.raises(RefereeError):
        model_from_dict(model)


@pytest.mark.parametrize("ops, message", rc.bad_int16_models())
def test_both_refuse_the_same_bad_int16_models_fails(ops, message):
    """The bounds an int16 input adds (5.0) refuse the same models in both, each naming the rule."""
    model = {"input_cols": 4, "input_dtype": rt.DTYPE_INT32, "ops": ops}
    with pytest.raises(ValueError, match=message):
        rt.validate_model(model)
    with pytest.raises(RefereeError):
        model_from_dict(model)


# ---------------------------------------------------------------------------------------
# The golden vectors through the kernels


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["transformer_ops", "transformer_large"])
def test_op_vectors_through_kernels_succeeds(name, device):
    for case in load_vectors(name)["cases"]:
        inputs = [i["values"] for i in case["inputs"]]
        kernel_op = op_from_dict(case["op"])
        got = run_op(kernel_op, [tensor(i["values"], i["dtype"], device) for i in case["inputs"]],
                     device=device)
        assert got.cpu().tolist() == case["output"]["values"], case["name"]
        assert "0x" + kernel_op.params_root.hex() == case["params_root"], case["name"]
        assert rl.run_op(case["op"], inputs, [i["dtype"] for i in case["inputs"]]) == case["output"]["values"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_vectors_through_kernels_succeeds(backend):
    for vec in load_vectors("transformer_models")["models"]:
        model = {"input_cols": vec["input_cols"], "input_dtype": vec["input_dtype"], "ops": vec["ops"]}
        compiled = model_from_dict(model)
        assert "0x" + compiled.root.hex() == vec["model_root"]
        assert ["0x" + d.hex() for d in compiled.descriptors()] == [op["descriptor"] for op in vec["ops"]]
        slots = run_dict(model, vec["input"], backend=backend)  # CPU; CUDA in the op vectors
        assert slots == [s["values"] for s in vec["slots"]], vec["name"]
        roots = [commit_tensor(tensor(s["values"], s["dtype"])).root for s in vec["slots"]]
        assert ["0x" + r.hex() for r in roots] == [s["tensor_root"] for s in vec["slots"]]
        assert ["0x" + r.hex() for r in state_roots(roots)] == vec["state_roots"]


def test_tensor_vectors_through_commitments_succeeds():
    for case in load_vectors("transformer_tensors")["cases"]:
        t = tensor(case["values"], case["dtype"])
        assert "0x" + packed(t).hex() == case["packed"], case["name"]
        c = commit_tensor(t)
        assert "0x" + c.root.hex() == case["tensor_root"], case["name"]
        assert c.full_header[3] == case["dtype"]

