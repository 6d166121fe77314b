"""Tensor parallel (issue 20): the bytes each rank moves per token, and the same roots, for
models/moby-llama (compiled at its 128 positions) and a MiniLM-sized encoder (all-MiniLM-L6-v2
compiled by ``referee quantize --minilm``: 6 layers, width 384, 12 heads, FFN 1536, 128 tokens
with the key mask), at 1, 2 and 4 local gloo ranks.

``linear weights/rank`` is the int8 weight bytes rank 0's linear kernels hold (its shards
of the split linears, the replicated ones whole). Bytes are counted at the collective calls (referee.parallel_runtime): ``all_reduce`` is the
payload each rank passes to its all-reduces (int32 [rows, width], one per row-parallel linear),
``sent (ring)`` what a ring all-reduce sends per rank, 2 (R - 1) / R times the payload;
``gather`` is what a rank other than 0 sends for the interim commitment (its column blocks of
every split slot, gathered whole on rank 0; the split commitment replaces it). Per token: over
the input's rows x T token positions. Times are wall clock of the whole world (process start
included) on this machine, shown as measured.

Run: ``python benchmarks/bench_tensor_parallel.py [--minilm DIR] [--rows N]``
"""

import argparse
import time
from pathlib import Path

import torch

from referee.executor import Executor
from referee.hashing import to_hex
from referee.llama import load_llama
from referee.llama_compile import compile_llama
from referee.modelfile import load_model
from referee.parallel import plan
from referee.parallel_launch import Job, run_local
from referee.parallel_runtime import RankRun
from referee.trace import Trace

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", type=Path, help="a compiled MiniLM model directory (referee quantize --minilm)")
    ap.add_argument("--rows", type=int, default=4, help="sequences per job")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    moby = compile_llama(load_llama(ROOT / "models" / "moby-llama"), torch.randint(0, 256, (8, 128), generator=g),
                         name="moby-llama")
    jobs = {"moby-llama": Job(moby, torch.randint(0, 256, (args.rows, 128), generator=g, dtype=torch.int32))}
    if args.minilm:
        minilm = load_model(args.minilm)
        x = torch.randint(1000, 30000, (args.rows, minilm.input_cols), generator=g, dtype=torch.int32)
        x[1:, minilm.input_cols // 2:] = 0  # padded sentences: the key mask at work
        jobs["MiniLM"] = Job(minilm, x)
    want = {name: Trace(job.model.root, Executor(job.model, "cpu").run(job.x)) for name, job in jobs.items()}
    print("| model | ranks | plan | linear weights/rank KiB | all-reduce B/token/rank | sent (ring) B/token/rank "
          "| gather B/token/rank | roots equal | trace root | world wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    roots = [f"{name} single process: output root {to_hex(t.output_root)} trace root {to_hex(t.trace_root)}"
             for name, t in want.items()]
    for ranks in (1, 2, 4):
        started = time.perf_counter()
        results = run_local(list(jobs.values()), ranks, device="cpu")  # a world of its own: its wall time
        wall = time.perf_counter() - started
        for (name, job), result in zip(jobs.items(), results):
            tokens = job.x.numel()
            got = Trace(job.model.root, result["slots"])
            same = got.slot_roots == want[name].slot_roots and got.trace_root == want[name].trace_root
            reduce = max(m["all_reduce"] for m in result["moved"]) / tokens
            gather = max(m["gather"] for m in result["moved"]) / tokens
            weights = RankRun(job.model, plan(job.model, ranks), 0, "cpu").linear_weights / 1024
            print(f"| {name} | {ranks} | {plan(job.model, ranks).describe()} | {weights:,.1f} | {reduce:,.0f} "
                  f"| {reduce * 2 * (ranks - 1) / ranks:,.0f} | {gather:,.0f} | {same} "
                  f"| {to_hex(got.trace_root)[:18]}… | {wall:.1f} |")
            roots.append(f"{name} ranks {ranks}: output root {to_hex(got.output_root)} "
                         f"trace root {to_hex(got.trace_root)}")
    print("\n".join(roots))


if __name__ == "__main__":
    main()
