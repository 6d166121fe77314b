"""Test helpers: golden vectors, random models, and conversion between the reference's plain
dict models (tests/reference.py) and ``referee.model.IntegerModel``."""

import json
import math
import random
from pathlib import Path

import torch

from referee.executor import Executor
from referee.graph_dict import model_from_dict
from referee.model import IntegerModel, LinearOp

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> dict:
    return json.loads((VECTORS / f"{name}.json").read_text())


def h(text: str) -> bytes:
    """0x-hex -> bytes."""
    return bytes.fromhex(text[2:])


def to_integer_model(ref_model: dict) -> IntegerModel:
    """A reference dict model as an IntegerModel (the same numbers, typed tensors)."""
    ops = [LinearOp(op["input_a"], torch.tensor(op["weights"], dtype=torch.int8),
                    torch.tensor(op["bias"], dtype=torch.int32), torch.tensor(op["multiplier"], dtype=torch.int32),
                    torch.tensor(op["shift"], dtype=torch.int32), bool(op["flags"] & 1))
           for op in ref_model["ops"]]
    return IntegerModel(ref_model["input_cols"], ops).validate()


def linear_case_model(case: dict) -> IntegerModel:
    """The one-channel model of a ``linear.json`` golden case."""
    return to_integer_model({"input_cols": len(case["x"]), "ops": [{
        "kind": 1, "flags": int(case["relu"]), "input_a": 0, "input_b": 0, "weights": [case["w"]],
        "bias": [case["bias"]], "multiplier": [case["multiplier"]], "shift": [case["shift"]]}]})


def int8_tensor(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int8)


def random_ref_model(rng: random.Random, input_cols: int, widths: list[int], extreme: bool = False,
                     multiplier_bits: int = 31) -> dict:
    """A random valid model: op j reads a random earlier slot, weights within the acc bound.

    ``extreme`` fills weights with -128/127 and pushes bias, multiplier and shift to their ends;
    ``multiplier_bits = 21`` gives the quantizer's multipliers (and small biases).
    """
    slot_cols, ops = [input_cols], []
    for j, n in enumerate(widths, start=1):
        input_a = rng.randrange(j)
        k = slot_cols[input_a]
        if extreme:
            weights = [[rng.choice((-128, 127, -128, 0)) for _ in range(k)] for _ in range(n)]
        else:
            weights = [[rng.randint(-128, 127) for _ in range(k)] for _ in range(n)]
        bias, multiplier, shift = [], [], []
        for row in weights:
            room = (1 << 31) - 1 - 128 * sum(abs(w) for w in row)
            typical = math.isqrt(k) * 5500  # typical |acc| for random int8 x and W
            bias.append(rng.choice((room, -room, 0)) if extreme else rng.randint(-min(room, typical), min(room, typical)))
            # With m ~ 2^(bits-1) this shift lands a typical acc mid int8.
            target_shift = min(62, typical.bit_length() + multiplier_bits - 7)
            multiplier.append(rng.choice((1, (1 << multiplier_bits) - 1)) if extreme and rng.random() < 0.3
                              else rng.randint(1 << (multiplier_bits - 2), (1 << multiplier_bits) - 1))
            shift.append(rng.choice((1, 62, target_shift)) if extreme else target_shift + rng.randint(-3, 3))
        ops.append({"kind": 1, "flags": rng.randint(0, 1), "input_a": input_a, "input_b": 0,
                    "weights": weights, "bias": bias, "multiplier": multiplier, "shift": shift})
        slot_cols.append(n)
    return {"input_cols": input_cols, "ops": ops}


def random_input(rng: random.Random, rows: int, cols: int, extreme: bool = False) -> list[list[int]]:
    values = (-128, 127, 0, -1) if extreme else range(-128, 128)
    return [[rng.choice(values) for _ in range(cols)] for _ in range(rows)]


def model_and_trace(seed: int, input_cols: int, widths: list[int], rows: int):
    """(model, its Trace) of a random MLP of ``widths`` over ``rows`` random int8 rows: a game fixture."""
    from referee.executor import run_model
    from referee.trace import Trace

    rng = random.Random(seed)
    model = to_integer_model(random_ref_model(rng, input_cols, widths))
    return model, Trace(model.root, run_model(model, int8_tensor(random_input(rng, rows, input_cols)), "cpu"))


def run_dict(d: dict, x: list, device: str = "cpu", backend: str = "auto") -> list[list[list[int]]]:
    """Every slot (slot 0 included) of the model dict ``d`` on input rows ``x``, as lists of ints;
    rows outside the input dtype, or ragged, are refused (InputError) as a file's would be."""
    from referee.inputs import rows_tensor  # needs numpy, which a bare GPU host (gpu/check.py) lacks

    model = model_from_dict(d)
    return [s.tolist() for s in Executor(model, device, backend).run(rows_tensor(x, model.input_dtype))]


def small_transformer(kind: str = "decoder", seed: int = 1, seq: int = 6, vocab: int = 40,
                      pad_id: int | None = None) -> IntegerModel:
    """A compiled one-block transformer (referee.transformer_compile) small enough for unit tests;
    an encoder with ``pad_id`` masks that id's keys and pools the other tokens (protocol 5.9)."""
    from referee.transformer import FloatTransformer, TransformerConfig
    from referee.transformer_compile import compile_transformer

    cfg = TransformerConfig(kind, layers=1, width=16, heads=2, ffn=32, seq=seq, vocab=vocab, pad_id=pad_id)
    calibration = torch.randint(0, vocab, (8, seq), generator=torch.Generator().manual_seed(seed))
    return compile_transformer(FloatTransformer(cfg, seed=seed).eval(), calibration, name=f"tiny-{kind}")


def token_ids(model: IntegerModel, rows: int, seed: int = 0) -> torch.Tensor:
    """Random int32 token ids for a token model (vocabulary from its embed op)."""
    vocab = model.ops[0].vocab
    return torch.randint(0, vocab, (rows, model.input_cols), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.int32)


# Random test values in the modes hypothesis draws (int8 by default; any dtype by its range)
DTYPE_RANGE = {0: (-128, 127), 2: (-(2**15), 2**15 - 1), 1: (-(2**31), 2**31 - 1)}  # section 3's codes
M_MAX = 2**31 - 1


def random_matrix(rng: random.Random, rows: int, cols: int, mode: str, lo: int = -128, hi: int = 127) -> list:
    """A rows x cols matrix in [lo, hi]: "extremes", "constant_rows", "ties", "one_value",
    "small_positive", or else uniform."""
    if mode == "extremes":
        return [[rng.choice((lo, hi)) for _ in range(cols)] for _ in range(rows)]
    if mode == "constant_rows":
        return [[rng.randint(lo, hi)] * cols for _ in range(rows)]
    if mode == "ties":
        base = rng.randint(lo, hi - 2)
        return [[base + rng.randrange(3) for _ in range(cols)] for _ in range(rows)]
    if mode == "one_value":
        v = rng.choice((lo, hi, 0))
        return [[v] * cols for _ in range(rows)]
    if mode == "small_positive":
        return [[rng.randint(0, min(hi, 3)) for _ in range(cols)] for _ in range(rows)]
    return [[rng.randint(lo, hi) for _ in range(cols)] for _ in range(rows)]


def random_matrix_of(rng: random.Random, rows: int, cols: int, mode: str, dtype: int) -> list:
    """``random_matrix`` over the whole range of a dtype (section 3's code)."""
    return random_matrix(rng, rows, cols, mode, *DTYPE_RANGE[dtype])


def random_scale(rng: random.Random, extreme: bool) -> tuple[int, int]:
    """A ``(multiplier, shift)``: at the ends of their ranges when ``extreme``."""
    if extreme:
        return rng.choice(((M_MAX, 62), (1, 1), (M_MAX, 1), (1, 62), (M_MAX, 31), (2**30, 40)))
    s = rng.randint(1, 40)
    return rng.randint(1, min(M_MAX, 2 ** (s + 1))), s


# The parts of a linear one-step witness (referee.witness.LINEAR_WITNESS, protocol 10.9), by name
LINEAR_PARTS = ("x", "x_proof", "bias", "multiplier", "shift", "w", "w_proof", "weights_rows_root")


def linear_parts(witness_bytes: bytes) -> dict:
    """A linear step's witness decoded into its named parts."""
    from eth_abi import decode
    from referee.witness import LINEAR_WITNESS

    return dict(zip(LINEAR_PARTS, decode(LINEAR_WITNESS, witness_bytes)))


def linear_witness(witness_bytes: bytes, **changes) -> bytes:
    """A linear step's witness with some of its named parts replaced."""
    from eth_abi import encode
    from referee.witness import LINEAR_WITNESS

    parts = linear_parts(witness_bytes)
    parts.update(changes)
    return encode(LINEAR_WITNESS, tuple(parts.values()))
