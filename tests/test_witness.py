"""referee.witness: the product's one-step witnesses (protocol 7.4, 10.9) for every kind.

Every op of every golden model of tests/vectors/transformer_models.json (the Llama-shaped
decoder's rope, grouped matmul, mul and split-head argmax pair / carry included) is loaded into
an IntegerModel and run by the Executor on its vector input with two ids moved out of the
vocabulary; for a few elements of each op (corners, one random, a causally masked one, an
element whose id is out of the vocabulary):

- ``step_witness`` equals, byte for byte, what tests/verifier_witness.py builds from the
  independent reference's trees over the same slots (linear: the reference's weight leaves), and
  ``step_inputs`` the reference's slot headers;
- a split trace (rows held by ranks) gives the same bytes;
- on anvil, the kind's verifier (``LinearVerifier`` for linear) given ``(descriptor,
  step_inputs, row, column, step_witness)`` returns the trace's element.

Then the committed models/moby-llama (compiled at its whole context of 128, a short prompt
padded as a generation job's) and a random MiniLM-shaped encoder (MiniLM's widths and context,
one layer, the key mask, an out-of-vocabulary id) at a handful of
elements of every (kind, flags) they hold, on the verifiers, every witness within the
verifiers' MAX_WITNESS.
"""

import random
from pathlib import Path

import pytest
import torch
from helpers import load_vectors

import reference as ref
import reference_transformer as rt
import verifier_witness as vw
from referee.executor import Executor
from referee.graph_dict import model_from_dict
from referee.model import LinearOp
from referee.ops import EmbedOp, MatmulOp
from referee.parallel_commit import commit_local
from referee.trace import SplitTrace, Trace
from referee.witness import descriptor, step_inputs, step_witness

ROOT = Path(__file__).resolve().parents[1]
MOBY = ROOT / "models" / "moby-llama"
MAX_WITNESS = 81920  # contracts/modules/rows.vy: the witness's Bytes bound
NAMES = {1: "Linear", **vw.NAMES}


def _run(model, x: torch.Tensor) -> Trace:
    return Trace(model.root, Executor(model, "cpu").run(x))


def _vector_runs():
    """(name, model, trace) of every golden model, two of its input ids out of the vocabulary
    (-1 and V): an out-of-vocabulary id embeds as its position row alone (5.7)."""
    out = []
    for vec in load_vectors("transformer_models")["models"]:
        model = model_from_dict({"input_cols": vec["input_cols"], "input_dtype": vec["input_dtype"],
                                 "ops": vec["ops"]})
        assert "0x" + model.root.hex() == vec["model_root"]
        x = torch.tensor(vec["input"], dtype=torch.int32)
        x[0, 1], x[-1, -1] = -1, model.ops[0].vocab
        out.append((vec["name"], vec, model, _run(model, x)))
    return out


RUNS = _vector_runs()


def _elements(model, trace, j, rng, extra=1):
    """(row, column) pairs of op j's output: the corners, ``extra`` random ones, a causally masked
    one of a causal matmul, and for embed the elements of out-of-vocabulary ids."""
    op, out = model.ops[j - 1], trace.slots[j]
    rows, cols = out.shape
    picks = {(0, 0), (rows - 1, cols - 1)}
    picks |= {(rng.randrange(rows), rng.randrange(cols)) for _ in range(extra)}
    if isinstance(op, MatmulOp) and op.causal:
        r_b = op.out_cols // op.heads
        masked = [(r, c) for r in range(min(rows, op.seq)) for c in range(cols) if c % r_b > r % op.seq]
        picks.add(rng.choice(masked))
    if isinstance(op, EmbedOp):
        ids = trace.slots[op.input_slot]
        t_len = op.in_cols
        oov = [(b * t_len + t, rng.randrange(cols)) for b in range(ids.shape[0]) for t in range(t_len)
               if not 0 <= int(ids[b, t]) < op.vocab]
        picks |= set(oov[:2])
    return sorted(picks)


def _case(vec, trace, j):
    """The golden model's op j as a tests/verifier_witness.py case over this trace's slots."""
    op = vec["ops"][j - 1]
    slots = [op["input_a"]] + ([op["input_b"]] if vw.rl.reads_b(op) else [])
    return {"op": op, "inputs": [{"dtype": trace.slot_commitments[s].dtype, "values": trace.slots[s].tolist()}
                                 for s in slots]}


def _linear_reference(op, inp, row, column) -> bytes:
    """The linear witness from the reference's weight leaves (LinearVerifier's tuple)."""
    W, b, m, s = op["weights"], op["bias"], op["multiplier"], op["shift"]
    leaves = ref.weight_leaves(W, b, m, s)
    d = ref.depth(len(W))
    return vw.encode(("bytes", "bytes32[]", "int256", "int256", "uint256", "bytes", "bytes32[]", "bytes32"),
                     (rt.pack_row(inp["values"][row], inp["dtype"]), rt.row_proof(inp["values"], inp["dtype"], row),
                      b[column], m[column], s[column], ref.pack_int8(W[column]), ref.merkle_proof(leaves, d, column),
                      ref.merkle_root(leaves, d)))


@pytest.mark.parametrize("run", RUNS, ids=[r[0] for r in RUNS])
def test_witness_equals_the_reference_witness_succeeds(run):
    name, vec, model, trace = run
    rng = random.Random(name)
    failures = []
    for j, op in enumerate(model.ops, start=1):
        case = _case(vec, trace, j)
        if list(descriptor(model, j)) != list(vw.descriptor(case)):
            failures.append(f"op {j}: descriptor")
        if step_inputs(model, trace, j) != [tuple(h) for h in vw.headers(case)]:
            failures.append(f"op {j}: inputs")
        for r, c in _elements(model, trace, j, rng, extra=2):
            want = (_linear_reference(case["op"], case["inputs"][0], r, c) if isinstance(op, LinearOp)
                    else vw.witness(case, r, c))
            if step_witness(model, trace, j, r, c) != want:
                failures.append(f"op {j} ({type(op).__name__}) y[{r}, {c}]")
    assert not failures, failures


@pytest.mark.parametrize("ranks", [2, 3])
def test_split_trace_gives_the_same_witnesses_succeeds(ranks):
    # A tensor-parallel run's trace (rows held by ranks) answers with the same bytes.
    name, _, model, trace = RUNS[-1]
    split = SplitTrace.from_commits(trace.model_root, commit_local(trace.slots, ranks))
    rng = random.Random(name)
    for j in range(1, len(model.ops) + 1):
        assert step_inputs(model, split, j) == step_inputs(model, trace, j)
        for r, c in _elements(model, trace, j, rng):
            assert step_witness(model, split, j, r, c) == step_witness(model, trace, j, r, c), (j, r, c)


def test_out_of_range_element_fails():
    _, _, model, trace = RUNS[0]
    rows, cols = trace.slots[1].shape
    for r, c in ((rows, 0), (0, cols), (-1, 0)):
        with pytest.raises(IndexError):
            step_witness(model, trace, 1, r, c)


# ---------------------------------------------------------------------------------------
# On the verifiers (anvil)


@pytest.fixture(scope="module")
def verifiers(project, deployer):
    """One deployed verifier per kind, linear's included."""
    return {kind: deployer.deploy(getattr(project, f"{name}Verifier")) for kind, name in NAMES.items()}


def _on_chain(verifiers, model, trace, j, elements):
    """The elements of op j whose verifier result differs from the trace's, and the largest witness."""
    op = model.ops[j - 1]
    desc, inputs = descriptor(model, j), step_inputs(model, trace, j)
    failures, largest = [], 0
    for r, c in elements:
        witness = step_witness(model, trace, j, r, c)
        largest = max(largest, len(witness))
        got = verifiers[op.kind].step(*vw.step_args(desc, inputs, r, c, witness))
        want = int(trace.slots[j][r, c])
        if got != want:
            failures.append(f"op {j} ({type(op).__name__}) y[{r}, {c}]: got {got}, want {want}")
    return failures, largest


@pytest.mark.parametrize("run", RUNS, ids=[r[0] for r in RUNS])
def test_every_op_of_the_golden_models_on_its_verifier_succeeds(verifiers, run):
    name, _, model, trace = run
    rng = random.Random(name)
    failures = []
    for j in range(1, len(model.ops) + 1):
        failures += _on_chain(verifiers, model, trace, j, _elements(model, trace, j, rng))[0]
    assert not failures, failures


def _kinds_and_flags(model):
    """The first op of each (kind, flags) a model holds."""
    first = {}
    for j, op in enumerate(model.ops, start=1):
        first.setdefault((op.kind, op.flags), j)
    return sorted(first.items())


@pytest.fixture(scope="module")
def moby():
    from referee.llama import load_llama
    from referee.llama_compile import compile_llama

    t = 128  # its whole context: the real row widths, so the real witness sizes
    calibration = torch.randint(0, 256, (2, t), generator=torch.Generator().manual_seed(1))
    model = compile_llama(load_llama(MOBY), calibration, name="moby-llama")
    prompt = list(b"Call me Ishmael.")  # a generation job's input: the prompt, then id-0 padding (5.15)
    x = torch.tensor([prompt + [0] * (t - len(prompt))], dtype=torch.int32)
    return model, _run(model, x)


@pytest.fixture(scope="module")
def minilm():
    from referee.transformer import MINILM, FloatTransformer
    from referee.transformer_compile import compile_transformer

    from dataclasses import replace
    cfg = replace(MINILM, layers=1, pad_id=0)  # MiniLM's widths and context (128), one layer
    ids = torch.randint(1, cfg.vocab, (2, cfg.seq), generator=torch.Generator().manual_seed(2), dtype=torch.int32)
    model = compile_transformer(FloatTransformer(cfg, seed=2).eval(), ids, name="minilm-shaped")
    x = ids.clone()
    x[0, 40:] = 0  # padding: the key mask's work
    x[1, 3] = -5  # an id out of the vocabulary
    return model, _run(model, x)


# (kind, flags) each model must hold: moby-llama's every kind (its 256 ids need no split head),
# the encoder's key-masked softmax and its two embeds (the tokens' at i16, the mask's at int8).
HOLDS = {"moby": {(2, 2), (2, 3), (6, 129), (7, 129), (8, 128), (9, 0), (10, 0), (11, 128), (1, 2)},
         "minilm": {(6, 130), (7, 128), (7, 129), (8, 0), (8, 128), (3, 0), (4, 128), (5, 128)}}


@pytest.mark.parametrize("name", ["moby", "minilm"])
def test_real_shaped_models_on_the_verifiers_succeeds(verifiers, request, name):
    model, trace = request.getfixturevalue(name)
    rng = random.Random(name)
    failures, sizes = [], {}
    held = _kinds_and_flags(model)
    assert HOLDS[name] <= {key for key, _ in held}
    for (kind, flags), j in held:
        bad, largest = _on_chain(verifiers, model, trace, j, _elements(model, trace, j, rng))
        failures += bad
        sizes[(kind, flags)] = largest
    assert not failures, failures
    assert max(sizes.values()) <= MAX_WITNESS, sizes
