"""Llama-2-7B and -70B on paper: what an exact Referee job over one 4096-token pass would cost.

Everything is computed from a Llama ``config.json`` alone (the two Llama-2 configs are built in;
``--config DIR`` adds any other, e.g. models/moby-llama): the op plan is the one
``referee.llama_compile`` emits (``op_plan`` below; tests/test_llama_paper.py checks it against
the compiler on small configs, kind by kind and dtype by dtype), and from it

* **ops** per forward (the bisection's ``N``) and the **moves** of a whole dispute: bisection
  rounds at the deployment's arity (two moves each), the transition, the row descent over the
  disputed slot's rows (two moves a level), the row and the step;
* the **largest one step**: every op's step calldata (rows it reads, proofs, params, tables,
  as protocol 7.4 and each kind's "One step" list them) and its gas, and the largest
  ``reveal_row`` (an output row). Gas model: ``21,000 + max(16 B + 30 E, 40 B)`` for ``B``
  calldata bytes and ``E`` elements of work — the second term is EIP-7623's floor, which sets
  the price of every large step (protocol 10.7 measures 1,331,640 for a linear step at
  k = 16384; this model gives 1,38x,xxx there, printed below as its calibration);
* the **trace bytes** a solver holds (every slot, plus one 32-byte leaf per row and as many
  inner nodes), and the **commit time** at the keccak rate measured here, now, with the
  native batch keccak (rows hashed at the measured rate for their size, Merkle pairs at the
  64-byte rate);
* **memory**: int8 weights (int16 tables where the compiler writes int16) and the activations
  of the pass (the trace itself: a solver keeps it to answer a dispute);
* the **limits** the plan breaks, op by op: what would break first at that scale;
* **tensor-parallel splits** (8- and 16-way, ``SPLITS``; issue 20), under the plan the runtime
  makes (``referee.parallel``): attention is split by heads only where R divides the KV heads
  (and the query heads), else replicated on every rank (Llama-2-70B at 16-way: 8 KV heads);
  the FFN is split where R divides its width. Figures: the all-reduce bytes per token (each
  row-parallel linear, o_proj where attention is split and down where the FFN is, all-reduces
  an int32 partial accumulator of width d per token: the accumulator bound keeps every partial
  sum inside int32), what one rank sends of them in a ring all-reduce (2 (R-1)/R of it), the
  bytes a rank sends per token in the commitment's row exchange (``parallel_commit``: it holds
  1/R of the columns of every column-split slot and sends the other ranks their rows of it,
  (R-1)/R^2 of those slots), the commitment time per rank (the trace bytes / R at the measured
  keccak rate), the trace bytes per rank (its rows of every slot, and their nodes) and the int8
  linear weights a rank holds (1/R of each split linear, a replicated one whole).

Run: ``python benchmarks/llama_paper.py [--tokens 4096] [--arity 4] [--config DIR] [--markdown]``.
"""

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "offchain"))

from referee.hashing import describe, keccak256_many  # noqa: E402
from referee.model import MATMUL_I16_MAX_K, MAX_COLS, MAX_ROWS  # noqa: E402

SPLITS = (8, 16)  # tensor-parallel ranks of the split rows
# The slots a Megatron split leaves column-split (a rank's heads or FFN share); the rest is replicated.
ATTENTION_SPLIT = {"q", "k", "v", "q_rot", "k_rot", "scores", "probs", "v_t", "att"}
FFN_SPLIT = {"gate", "silu", "up", "prod"}
HEAD_CHUNK = 8192  # the split head's chunk (protocol: argmax pair/carry); one step <= 32 KiB of int32
MATMUL_I16_T = 511  # the compiler writes int8 probabilities above T = 511 (P.V's K <= 511 with int16)
# A linear reads int16 only where 2^15 sum_k |W[c, k]| < 2^31 (protocol 5.0), i.e. sum |W| < 2^16 in
# int8 units; the compiler checks the real weights and otherwise feeds it int8 (llama_compile's
# _fits16). On paper: per-channel int8 weights of a trained layer average about 22 of 127 in
# magnitude (moby-llama: 19-24), so int16 inputs are kept while k * 22 < 2^16 (k < ~2,980).
MEAN_ABS_WQ = 22
WIDTH = {"int8": 1, "int16": 2, "int32": 4}
WORD = 32
ABI_OVERHEAD = 4 + 16 * WORD  # selector, offsets and lengths of a step's dynamic arguments

LLAMA2 = {
    "Llama-2-7B": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096},
    "Llama-2-70B": {"vocab_size": 32000, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                    "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 4096},
}


def depth(n: int) -> int:
    """Protocol section 2: the smallest d with 2^d >= n (0 for n <= 1)."""
    return max(0, (n - 1).bit_length())


@dataclass
class PlannedOp:
    """One op of the plan: its kind, output shape and dtype, the slots it reads, its one step's extras."""

    name: str
    kind: str
    rows: int
    cols: int
    dtype: str
    inputs: list          # [(rows, cols, dtype)] of the slots it reads
    params: int = 0       # params header bytes the step reveals
    table: int = 0        # table bytes hashed whole (lut, softmax E) or one table row with its proof
    table_depth: int = 0  # depth of the proof of that table row / column leaf (0: hashed whole)
    work: int = 0         # elements the contract computes over


def op_plan(cfg: dict, tokens: int, head_chunk: int = HEAD_CHUNK) -> list[PlannedOp]:
    """The ops referee.llama_compile emits for ``cfg`` over one sequence of ``tokens`` positions."""
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    h, hk = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    dh, t = d // h, tokens
    ops: list[PlannedOp] = []

    def add(name, kind, rows, cols, dtype, inputs, **extra):
        ops.append(PlannedOp(name, kind, rows, cols, dtype, inputs, **extra))
        return (rows, cols, dtype)

    def linear(name, x, n, dtype):
        return add(name, "linear", x[0], n, dtype, [x], table=x[1] + 3 * WORD, table_depth=depth(n), params=3 * WORD,
                   work=x[1])

    def fits16(k: int) -> str:
        """The dtype a slot read by linears over k inputs gets: int16 where the bound holds."""
        return "int16" if k * MEAN_ABS_WQ < 1 << 16 else "int8"

    def norm(name, x):
        return add(name, "norm", x[0], x[1], fits16(x[1]), [x], params=4 * WORD, table=2 * WORD + WORD,
                   table_depth=depth(x[1]), work=2 * x[1])

    ids = (1, t, "int32")
    x = add("embed", "embed", t, d, "int16", [ids], params=8 * WORD, table=2 * d * 2,
            table_depth=depth(v) + depth(t), work=1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"b{i}."
        ln1 = norm(p + "ln1", x)
        q, k, val = (linear(p + n, ln1, c, "int8") for n, c in (("q", h * dh), ("k", hk * dh), ("v", hk * dh)))
        q = add(p + "q_rot", "rope", t, h * dh, "int8", [q], params=5 * WORD, table=dh * 2, table_depth=depth(t), work=2)
        k = add(p + "k_rot", "rope", t, hk * dh, "int8", [k], params=5 * WORD, table=dh * 2, table_depth=depth(t),
                work=2)
        grouped = hk < h
        scores = add(p + "scores", "matmul", t, h * t, "int8", [q, k], params=(5 if grouped else 4) * WORD, work=dh)
        probs = add(p + "probs", "softmax", t, h * t, "int16" if t <= MATMUL_I16_T else "int8", [scores],
                    params=3 * WORD, table=1024, work=h * t)
        v_t = add(p + "v_t", "transpose", dh, hk * t, "int8", [val], params=WORD, work=1)
        att = add(p + "att", "matmul", t, h * dh, "int8", [probs, v_t], params=(5 if grouped else 4) * WORD, work=t)
        o = linear(p + "attn_out", att, d, "int16")
        x = add(p + "res1", "add", t, d, "int16", [x, o], params=3 * WORD, work=1)
        ln2 = norm(p + "ln2", x)
        gate = linear(p + "gate", ln2, f, "int8")
        silu = add(p + "silu", "lut", t, f, "int16", [gate], table=512, work=1)
        up = linear(p + "up", ln2, f, "int16")
        prod = add(p + "prod", "mul", t, f, fits16(f), [silu, up], params=2 * WORD, work=1)
        down = linear(p + "mlp_out", prod, d, "int16")
        x = add(p + "res2", "add", t, d, "int16", [x, down], params=3 * WORD, work=1)
    x = norm("ln_f", x)
    chunks = [(o, min(head_chunk, v - o)) for o in range(0, v, head_chunk)]
    if len(chunks) == 1:
        logits = linear("logits", x, v, "int32")
        add("argmax", "argmax", t, 1, "int32", [logits], work=v)
        return ops
    logits = [linear(f"logits{s}", x, width, "int32") for s, (_, width) in enumerate(chunks)]
    carry = None
    for s, ((offset, width), chunk) in enumerate(zip(chunks, logits)):
        last = s == len(chunks) - 1
        inputs = [chunk] + ([carry] if carry else [])
        carry = add(f"argmax{s}", "argmax", t, 1 if last else 2, "int32", inputs, params=WORD if s else 0, work=width)
    return ops


def step_bytes(op: PlannedOp) -> int:
    """Calldata of the op's one step: the output row's word with its proof, each input row with
    its proof, the params header, the table (or table row and proof)."""
    out_row = op.cols * WIDTH[op.dtype]
    total = ABI_OVERHEAD + WORD + WORD * (1 + depth(math.ceil(out_row / WORD)))  # column, word, its proof
    for rows, cols, dtype in op.inputs:
        total += cols * WIDTH[dtype] + WORD * depth(rows)
    return total + op.params + op.table + WORD * op.table_depth


def gas(calldata: int, work: int) -> int:
    """21,000 + max(16 B + 30 E, 40 B): standard calldata plus work, or EIP-7623's floor."""
    return 21000 + max(16 * calldata + 30 * work, 40 * calldata)


def bisection_rounds(n: int, arity: int) -> int:
    """Worst-case rounds of protocol 7.1 from (0, n) to an interval of one op."""
    rounds, length = 0, n
    while length > 1:
        p = min(arity, length)
        length = max((i + 1) * length // p - i * length // p for i in range(p))
        rounds += 1
    return rounds


def hash_rates(seconds: float = 0.5) -> dict[int, float]:
    """Bytes per second of the batch keccak here, for messages of 64 B (Merkle pairs) and 8 KiB (rows)."""
    rates = {}
    for length, count in ((64, 1 << 16), (8192, 1 << 10)):
        data = bytes(range(256)) * (length * count // 256)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            keccak256_many(data, length, count)
            done += length * count
        rates[length] = done / (time.perf_counter() - start)
    return rates


def limits_broken(ops: list[PlannedOp]) -> list[str]:
    """Every protocol limit the plan breaks: one line per limit, naming the ops (by role) that break it."""
    breaches: dict[str, list[str]] = {}

    def breach(limit: str, op: PlannedOp) -> None:
        role = op.name.split(".")[-1]
        names = breaches.setdefault(limit, [])
        if role not in names:
            names.append(role)

    for op in ops:
        if op.cols > MAX_COLS:
            breach(f"more than MAX_COLS = {MAX_COLS} columns", op)
        if op.rows > MAX_ROWS:
            breach(f"more than MAX_ROWS = {MAX_ROWS} rows", op)
        if op.kind == "matmul" and any(dt == "int16" for _, _, dt in op.inputs) and op.work > MATMUL_I16_MAX_K:
            breach(f"a matmul with an int16 operand and K = {op.work} > {MATMUL_I16_MAX_K}", op)
        if op.kind == "linear" and op.inputs[0][2] == "int16" and op.inputs[0][1] * 127 >= 1 << 16:
            breach(f"int16 inputs at k = {op.inputs[0][1]}: the 2^15 accumulator bound needs a mean |W| "
                   f"below {(1 << 16) / op.inputs[0][1]:.1f} of 127", op)
    return [f"{limit}: {', '.join(names)}" for limit, names in breaches.items()]


def report(name: str, cfg: dict, tokens: int, arity: int, rates: dict[int, float]) -> dict:
    ops = op_plan(cfg, tokens)
    steps = [(gas(step_bytes(op), op.work), step_bytes(op), op) for op in ops]
    worst_gas, worst_bytes, worst = max(steps, key=lambda s: s[0])
    reveal = max(ops, key=lambda op: op.cols * WIDTH[op.dtype])
    reveal_bytes = reveal.cols * WIDTH[reveal.dtype]
    rows_max = max(op.rows for op in ops)
    moves = 2 * bisection_rounds(len(ops), arity) + 1 + 2 * depth(rows_max) + 2
    slot_bytes = sum(op.rows * op.cols * WIDTH[op.dtype] for op in ops) + tokens * 4
    row_count = sum(op.rows for op in ops) + 1
    node_bytes = 2 * WORD * row_count  # a leaf per row and about as many inner nodes
    commit_s = slot_bytes / rates[8192] + row_count * 64 / rates[64]
    d, f, v, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    hk = cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    kv = hk * (d // cfg["num_attention_heads"])
    weights = layers * (d * d + 2 * d * kv + d * d + 3 * d * f) + d * v  # int8 linears and head
    weights += v * d * 2 + layers * 2 * d * 8 + tokens * (d // cfg["num_attention_heads"]) * 2  # int16 tables
    splits = [split_figures(cfg, ops, tokens, slot_bytes + node_bytes, commit_s, ranks) for ranks in SPLITS]
    return {"model": name, "config": cfg, "tokens": tokens, "ops": len(ops), "moves": moves, "arity": arity,
            "splits": splits,
            "bisection_rounds": bisection_rounds(len(ops), arity), "row_descent_levels": depth(rows_max),
            "largest_step": {"op": worst.name, "kind": worst.kind, "calldata": worst_bytes, "gas": worst_gas},
            "largest_row": {"op": reveal.name, "bytes": reveal_bytes, "gas": gas(reveal_bytes + ABI_OVERHEAD, 0)},
            "trace_bytes": slot_bytes + node_bytes, "commit_seconds": commit_s,
            "weights_bytes": weights, "activation_bytes": slot_bytes, "limits_broken": limits_broken(ops)}


def split_plan(cfg: dict, ranks: int) -> tuple[bool, bool]:
    """(attention split, FFN split) as ``referee.parallel.plan`` decides them for a Llama: a head
    region splits when R divides its query heads and its KV heads (GQA: a rank's query heads
    with their KV groups), else it is replicated; the SwiGLU region when R divides its width."""
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    return heads % ranks == 0 and kv_heads % ranks == 0, cfg["intermediate_size"] % ranks == 0


def split_figures(cfg: dict, ops: list[PlannedOp], tokens: int, trace_bytes: int, commit_s: float, ranks: int) -> dict:
    """An R-way tensor-parallel split of the pass (module doc), under the runtime's plan
    (``split_plan``). The trace and commitment per rank do not depend on the plan: a rank holds
    and hashes its 1 / R of every slot's rows."""
    attention, ffn = split_plan(cfg, ranks)
    d, f, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv = (cfg.get("num_key_value_heads") or cfg["num_attention_heads"]) * (d // cfg["num_attention_heads"])
    allreduce = (attention + ffn) * layers * d * 4  # int32 partials: one per row-parallel linear
    names = (ATTENTION_SPLIT if attention else set()) | (FFN_SPLIT if ffn else set())
    split = sum(op.rows * op.cols * WIDTH[op.dtype] for op in ops if op.name.split(".")[-1] in names)
    attn_w, ffn_w = 2 * d * d + 2 * d * kv, 3 * d * f
    weights = layers * (attn_w / (ranks if attention else 1) + ffn_w / (ranks if ffn else 1)) + d * cfg["vocab_size"]
    return {"ranks": ranks, "attention_split": attention, "ffn_split": ffn, "allreduce_bytes_per_token": allreduce,
            "allreduce_rank_bytes_per_token": allreduce * 2 * (ranks - 1) / ranks,
            "exchange_rank_bytes_per_token": split * (ranks - 1) / ranks ** 2 / tokens,
            "commit_seconds_per_rank": commit_s / ranks, "trace_bytes_per_rank": trace_bytes / ranks,
            "weights_bytes_per_rank": weights}


def plan_text(cfg: dict, split: dict) -> str:
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    groups = f"{heads} heads" + (f", {kv_heads} KV heads" if kv_heads != heads else "")
    attention = "attention by heads" if split["attention_split"] else f"attention replicated ({groups})"
    return f"{attention}, FFN {'split' if split['ffn_split'] else 'replicated'}"


def fine_seconds(t: float) -> str:
    return seconds(t) if t >= 0.1 else f"{t * 1000:.2f} ms"


def mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def seconds(t: float) -> str:
    return f"{t:,.0f} s" if t >= 10 else f"{t * 1000:,.0f} ms"


def markdown(rows: list[dict], rates: dict[int, float]) -> str:
    lines = [f"Keccak here: {describe()}; {rates[8192] / 1e6:,.0f} MB/s for 8 KiB rows, "
             f"{rates[64] / 1e6:,.0f} MB/s for 64-byte pairs.", "",
             "| | " + " | ".join(r["model"] for r in rows) + " |", "|---" * (len(rows) + 1) + "|"]

    def row(label, fn):
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in rows) + " |")

    row("ops per forward", lambda r: f"{r['ops']:,}")
    row(f"moves of a dispute (arity {rows[0]['arity']})",
        lambda r: f"{r['moves']} ({r['bisection_rounds']} rounds, {r['row_descent_levels']} levels)")
    row("largest one step", lambda r: f"{r['largest_step']['op']} ({r['largest_step']['kind']}): "
                                      f"{r['largest_step']['calldata']:,} B, {r['largest_step']['gas']:,} gas")
    row("largest revealed row", lambda r: f"{r['largest_row']['op']}: {r['largest_row']['bytes']:,} B, "
                                          f"{r['largest_row']['gas']:,} gas")
    row("trace bytes held by the solver", lambda r: gib(r["trace_bytes"]))
    row("commit time (the keccak rate measured here)", lambda r: seconds(r["commit_seconds"]))
    row("memory: int8 weights", lambda r: gib(r["weights_bytes"]))
    row("memory: activations (the trace)", lambda r: gib(r["activation_bytes"]))
    for i, ranks in enumerate(SPLITS):
        row(f"{ranks}-way: the runtime's plan", lambda r: plan_text(r["config"], r["splits"][i]))
        row(f"{ranks}-way: all-reduce bytes per token, int32 (each rank sends, ring)",
            lambda r: f"{mib(r['splits'][i]['allreduce_bytes_per_token'])} "
                      f"({mib(r['splits'][i]['allreduce_rank_bytes_per_token'])})")
        row(f"{ranks}-way: commitment row exchange, bytes per token per rank",
            lambda r: mib(r["splits"][i]["exchange_rank_bytes_per_token"]))
        row(f"{ranks}-way: commitment time per rank", lambda r: fine_seconds(r["splits"][i]["commit_seconds_per_rank"]))
        row(f"{ranks}-way: trace bytes per rank", lambda r: gib(r["splits"][i]["trace_bytes_per_rank"]))
        row(f"{ranks}-way: int8 linear weights per rank", lambda r: gib(r["splits"][i]["weights_bytes_per_rank"]))
    lines.append("")
    for r in rows:
        lines.append(f"Limits {r['model']} breaks at {r['tokens']} tokens:")
        lines += [f"- {text}" for text in r["limits_broken"]] or ["- none"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=4096, help="positions of the pass (default 4096)")
    ap.add_argument("--arity", type=int, default=4, help="bisection arity (the deployment default, 4)")
    ap.add_argument("--config", action="append", default=[], help="a Llama checkpoint directory to add")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    configs = dict(LLAMA2)
    for directory in args.config:
        configs[Path(directory).name] = json.loads((Path(directory) / "config.json").read_text())
    rates = hash_rates()
    rows = []
    for name, cfg in configs.items():
        tokens = min(args.tokens, cfg["max_position_embeddings"])
        rows.append(report(name, cfg, tokens, args.arity, rates))
    print(markdown(rows, rates))
    calib = gas(ABI_OVERHEAD + 2 * 16384 + 3 * 16 * WORD + 4 * WORD, 16384)
    print(f"\nGas model calibration: a linear step at k = 16384 -> {calib:,} (measured, protocol 10.7: 1,331,640)")
    if args.json:
        args.json.write_text(json.dumps({"rates": rates, "models": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
