"""Generate the transformer golden vectors of docs/protocol.md section 9 (kinds 5.1-5.9).

    python tests/vectors/generate_transformer.py           write tests/vectors/transformer_*.json
    python tests/vectors/generate_transformer.py --check   regenerate in memory; exit 1 naming
                                                           every file that differs or is missing

(``--dir PATH`` writes or checks PATH instead of this script's directory.)

Every value comes from the independent reference (``tests/reference_transformer.py``,
``tests/reference_kinds.py``, ``tests/reference_llama.py``, ``tests/reference.py``: plain
Python integers, no code shared with ``offchain/referee/``); the per-kind edge cases are in
``tests/reference_cases.py`` and (Llama's kinds and flags, 5.12-5.14) ``llama_cases.py``, the
random models from ``tests/reference_models.py``. Randomness comes only from
``random.Random`` instances with fixed seeds, one per file. Hashes and byte strings are
``0x``-prefixed lowercase hex, integers JSON numbers. Files are ``json.dumps(indent=1)`` with
every list of numbers collapsed onto one line, plus a trailing newline.
"""

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for the reference modules

import reference as ref  # noqa: E402
import reference_kinds as rk  # noqa: E402
import reference_models as rm  # noqa: E402
import reference_transformer as rt  # noqa: E402
import reference_cases as tc  # noqa: E402
import reference_llama as rl  # noqa: E402
from llama_cases import llama_cases  # noqa: E402

SEED = 0x7EA5_F0E1  # base seed; each file adds its own offset


def hx(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def hxs(items) -> list:
    return [hx(x) for x in items]


# ---------------------------------------------------------------------------------------
# transformer_tensors.json


def tensor_entry(name, values, dtype):
    rows, cols, rows_root, _ = rt.tensor_header(values, dtype)
    return {"name": name, "dtype": dtype, "rows": rows, "cols": cols, "values": values,
            "packed": hx(rt.pack_tensor(values, dtype)),
            "row_leaves": hxs(rt.row_leaves(values, dtype)), "rows_root": hx(rows_root),
            "tensor_root": hx(rt.tensor_root(values, dtype))}


def gen_tensors():
    rng = random.Random(SEED + 1)
    i32 = rt.DTYPE_INT32
    big = [[rng.randrange(-2**31, 2**31) for _ in range(5)] for _ in range(3)]
    cases = [
        tensor_entry("int8_1x3_same_root_as_section3", [[1, -1, 0]], rt.DTYPE_INT8),
        tensor_entry("int32_1x3_same_values", [[1, -1, 0]], i32),
        tensor_entry("int32_1x1_zero", [[0]], i32),
        tensor_entry("int32_1x1_minus_one", [[-1]], i32),
        tensor_entry("int32_extremes", [[-2**31, 2**31 - 1], [-2**31 + 1, 2**31 - 2]], i32),
        tensor_entry("int32_256_257_byte_order", [[256, 257, 65536, -256]], i32),
        tensor_entry("int32_3x5_random_padding", big, i32),
        tensor_entry("int32_token_ids_2x4", [[0, 1, 2, 3], [15, 14, 13, 12]], i32),
        tensor_entry("int32_argmax_column_5x1", [[0], [4], [4], [2], [0]], i32),
    ]
    i16 = rt.DTYPE_INT16  # appended after the int8 and int32 cases, which stay unchanged
    rng16 = random.Random(SEED + 5)
    cases += [
        tensor_entry("int16_1x3_same_values", [[1, -1, 0]], i16),
        tensor_entry("int16_extremes", [[-2**15, 2**15 - 1], [-2**15 + 1, 2**15 - 2]], i16),
        tensor_entry("int16_256_257_byte_order", [[256, 257, -256, 255]], i16),
        tensor_entry("int16_3x5_random_padding", [[rng16.randrange(-2**15, 2**15) for _ in range(5)]
                                                  for _ in range(3)], i16),
    ]
    return {
        "description": "Tensors with a dtype (docs/protocol.md section 3): dtype 0 = int8 "
                       "(one byte), 1 = int32 (four bytes, big-endian two's complement), 2 = int16 "
                       "(two bytes, big-endian two's complement); row "
                       "leaf H(packed row); rows_root at depth(rows), padded with Z[0]; "
                       "tensor_root = H(enc(rows, cols, rows_root)) for int8 and "
                       "H(enc(rows, cols, rows_root, dtype)) otherwise.",
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------
# transformer_ops.json and transformer_large.json


def op_entry(name, op, inputs, in_dtypes=None, r=rt):
    """One op on given inputs: the op dict, its commitments, inputs, output, table roots. ``r``
    is the reference module: reference_llama for the kinds and flags of 5.12-5.14."""
    in_dtypes = in_dtypes or [rt.DTYPE_INT8] * len(inputs)
    # The inputs are slots 0 (and 1): op j = len(inputs) is validated against them.
    (rl.validate_op if r is rl else rt._validate_op)(op, len(inputs), [len(v[0]) for v in inputs], in_dtypes)
    out = r.run_op(op, inputs, in_dtypes)
    entry = {"name": name, "op": op,
             "inputs": [{"dtype": dt, "values": v} for v, dt in zip(inputs, in_dtypes)],
             "output": {"dtype": r.out_dtype(op, in_dtypes[0]), "values": out},
             "params_header": hx(r.params_header(op)), "params_root": hx(r.params_root(op)),
             "descriptor": hx(r.op_descriptor(op))}
    if op["kind"] == rl.ROPE:  # CR, the rows root of the int16 rotation table
        entry["rotation_rows_root"] = hx(rt.table_rows_root(op["table"], rt.DTYPE_INT16))
    if op["kind"] == rt.NORM:  # the one step's witness and the column leaves' root
        entry["rho"] = [rk.norm_stats(row, op["flags"] & 1)[2] for row in inputs[0]]
        entry["columns_root"] = hx(rt.norm_columns_root(op["gamma"], op["beta"]))
    if op["kind"] == rt.SOFTMAX:
        entry["exp_table_root"] = hx(rt.exp_table_root(op["exp_table"]))
    if op["kind"] == rt.EMBED:
        entry["token_rows_root"] = hx(rt.table_rows_root(op["token_table"], rt.embed_table_dtype(op)))
        entry["position_rows_root"] = hx(rt.table_rows_root(op["position_table"], rt.embed_table_dtype(op)))
    return entry


def gen_ops():
    rng = random.Random(SEED + 2)
    return {
        "description": "One transformer op on given inputs (docs/protocol.md 5.0-5.8): op is "
                       "the op (kind, flags, input_a, input_b and the kind's fields; inputs "
                       "are slot input_a, and slot input_b for matmul, add and a keymask softmax); output = the "
                       "kind's semantics; params_header is hashed into params_root (argmax: "
                       "empty header, params_root Z[0]); descriptor = enc(kind, flags, "
                       "input_a, input_b, in_cols, out_cols, params_root). norm cases give "
                       "rho (isqrt(V)) per row and columns_root GR; softmax cases ER; embed "
                       "cases TR and PR. Edge cases: ties, negative sums at every division "
                       "and shift, saturation, constant rows, causal masks, S = 0; softmax "
                       "with keymask (slot 1 the mask, [rows / T, L]) including fully masked "
                       "segments, the key-mask embed and masked sum pooling; then the same "
                       "at 16 bits (flag i16 = 128: int16 outputs, rq16; int16 inputs); then "
                       "Llama's 5.12-5.14: rope (kind 10; rotation_rows_root CR), mul (kind 11), "
                       "matmul with grouped (flag 2, kv_heads) and argmax with pair (flag 1, "
                       "[rows, 2] = (max, index)) and carry (flag 2, slot 1 the carried pair, "
                       "offset).",
        "cases": [op_entry(*c) for c in tc.edge_cases(rng)]
        + [op_entry(*c) for c in tc.int16_cases(random.Random(SEED + 6))]
        + [op_entry(*c, r=rl) for c in llama_cases(random.Random(SEED + 8))],
    }


def gen_large():
    rng = random.Random(SEED + 3)
    return {
        "description": "The largest sizes (same fields as transformer_ops.json): norm at "
                       "n = MAX_COLS with V > 2^53 (not exact in float64), matmul and wide "
                       "linear whose sums pass 2^24 (not exact in float32), a long softmax row; "
                       "norm of int16 rows at n = 1024 (V near 2^60) and matmul of an int16 "
                       "operand at K = 511.",
        "cases": [op_entry(*c) for c in tc.large_cases(rng)] + [op_entry(*c) for c in tc.large_int16_cases()],
    }


# ---------------------------------------------------------------------------------------
# transformer_models.json


def model_entry(name, model, x, r=rt):
    slots, roots, s_roots = r.trace(model, x)
    _, dtypes = r.validate_model(model)
    n_ops = len(model["ops"])
    d = ref.depth(n_ops + 1)
    o_root, o_leaves = r.ops_root(model), r.op_leaves(model)
    ops = []
    for j, op in enumerate(model["ops"], start=1):
        proof = r.op_proof(model, j)
        assert ref.merkle_verify(o_leaves[j - 1], j - 1, proof, o_root, depth=ref.depth(n_ops))
        in_cols, out_cols = r.op_cols(op)
        ops.append({**op, "in_cols": in_cols, "out_cols": out_cols,
                    "params_root": hx(r.params_root(op)), "descriptor": hx(r.op_descriptor(op)),
                    "op_leaf": hx(o_leaves[j - 1]), "op_proof": hxs(proof)})
    updates = []
    for j in range(1, n_ops + 1):
        sib = ref.slot_update_proof(roots, d, j)
        assert ref.merkle_verify(bytes(32), j, sib, s_roots[j - 1], depth=d)
        assert ref.merkle_verify(roots[j], j, sib, s_roots[j], depth=d)
        updates.append({"step": j, "siblings": hxs(sib)})
    return {
        "name": name, "input_dtype": dtypes[0], "input_cols": model["input_cols"],
        "output_cols": len(slots[-1][0]), "state_depth": d, "ops": ops, "ops_root": hx(o_root),
        "model_root": hx(r.model_root(model)), "input": x,
        "slots": [{"dtype": dt, "values": v, "rows_root": hx(rt.tensor_header(v, dt)[2]),
                   "tensor_root": hx(r)} for v, dt, r in zip(slots, dtypes, roots)],
        "state_roots": hxs(s_roots), "slot_update_proofs": updates,
    }


MODELS = [  # name, kind, layers, width, heads, ffn, seq, vocab, batch[, pad id]
    ("encoder_2_layers_2_heads", "encoder", 2, 8, 2, 16, 5, 20, 2),
    ("decoder_2_layers_4_heads", "decoder", 2, 8, 4, 16, 4, 16, 2),
    # Last, so that the models above keep their draws: pad keys masked, masked sum pooling.
    ("encoder_keymask_2_layers_2_heads", "encoder", 2, 8, 2, 16, 5, 20, 3, 0),
]
MODELS_I16 = [  # the same shapes with 16-bit activations (reference_models: i16), appended
    ("encoder_i16_2_layers_2_heads", "encoder", 2, 8, 2, 16, 5, 20, 2),
    ("decoder_i16_2_layers_4_heads", "decoder", 2, 8, 4, 16, 4, 16, 2),
]


# name, layers, width, query heads, kv heads, ffn, seq, head chunk widths, batch (appended last)
LLAMA = ("llama_2_layers_4_heads_2_kv_heads", 2, 16, 4, 2, 24, 4, [8, 6], 2)


def gen_models():
    rng = random.Random(SEED + 4)
    models = []
    for name, kind, *shape in MODELS:
        model, ids = rm.transformer(rng, kind, *shape[:7], pad=shape[7] if len(shape) > 7 else None)
        models.append(model_entry(name, model, ids))
    rng16 = random.Random(SEED + 7)
    for name, kind, *shape in MODELS_I16:
        model, ids = rm.transformer(rng16, kind, *shape, i16=True)
        models.append(model_entry(name, model, ids))
    model, ids = rm.llama(random.Random(SEED + 9), *LLAMA[1:])
    models.append(model_entry(LLAMA[0], model, ids, r=rl))
    return {
        "description": "Whole traces of a small multi-head encoder (BERT-style: embed, "
                       "LayerNorm, post-norm blocks, mean pooling, L2 norm) and decoder "
                       "(GPT-style: pre-norm causal blocks, wide head, argmax), and an encoder "
                       "whose pad id 0 is masked (a key-mask slot from the ids, keymask softmax, "
                       "masked sum pooling; its last sequence is all padding), docs/protocol.md "
                       "5.9 and section 6; then an encoder and a decoder with 16-bit activations "
                       "(flag i16: the residual stream, norm, GELU and softmax outputs int16); "
                       "then a Llama-shaped decoder (5.9, 5.12-5.14: RMSNorm, rope, 4 query heads "
                       "over 2 key/value heads, SwiGLU with mul, a head split into two vocabulary "
                       "chunks of 8 and 6 ids, argmax pair then carry). "
                       "ops[j-1] is op j with its kind's fields; slots[] "
                       "are slots 0 ... N with their dtype; state_roots S_0 ... S_N at "
                       "state_depth; slot_update_proofs as in models.json.",
        "models": models,
    }


# ---------------------------------------------------------------------------------------

GENERATORS = {
    "transformer_tensors.json": gen_tensors,
    "transformer_ops.json": gen_ops,
    "transformer_large.json": gen_large,
    "transformer_models.json": gen_models,
}

_NUMBER_LIST = re.compile(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]")


def render(obj) -> str:
    text = json.dumps(obj, indent=1)
    # Lists of numbers on one line: the files stay small and a matrix reads row by row.
    text = _NUMBER_LIST.sub(lambda m: "[" + ",".join(re.split(r",\s*", m.group(1))) + "]", text)
    return text + "\n"


def main(argv=None) -> int:
    from generate import write_or_check  # this folder is on sys.path when run as a script

    return write_or_check(GENERATORS, render, "generate_transformer.py", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
