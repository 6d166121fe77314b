"""The split commitment, measured: bytes each rank moves per token and hashing time per rank.

For moby-llama (models/moby-llama, compiled as tests/test_llama_compile.py does) over one
128-token sequence and an encoder with all-MiniLM-L6-v2's shapes (random weights, batch 8 x
128 tokens), each rank's slots as the tensor-parallel runtime leaves them
(``parallel_runtime.simulate``: the plan's column blocks, the rest whole) are committed by 2
and 4 gloo processes (``commit_worlds.launch``); each checks its roots against
the single-process ``trace_commitment``. Per rank: the bytes it sends in the row exchange (it
receives as many, to within a rank's share) and the seconds of that exchange (gloo over
loopback), both from the real processes; and its hashing time (``parallel_commit.chunk_roots``
over its rows of every slot), timed rank after rank in this process on one keccak thread
(REFEREE_KECCAK_THREADS=1), so that ranks sharing a small machine's cores do not slow each
other's figure, against one process hashing the whole trace (``trace_commitment``) on one
thread, in turns (a shared machine's load drifts): each figure the best of 7 rounds.

Run: ``python benchmarks/bench_parallel_commit.py [--ranks 2,4] [--json FILE]``.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "offchain"))
os.environ["REFEREE_KECCAK_THREADS"] = "1"

from safetensors.torch import save_file  # noqa: E402

from referee.executor import Executor, trace_commitment  # noqa: E402
from referee.hashing import to_hex  # noqa: E402
from referee.commit_worlds import launch  # noqa: E402
from referee.parallel_commit import Layout, chunk_roots, shards_of  # noqa: E402
from referee.parallel_runtime import simulate  # noqa: E402


def hash_seconds(slots: list[torch.Tensor], ranks: int, repeats: int = 7) -> tuple[float, list[float]]:
    """(one process committing the whole trace, each rank hashing its rows of every slot alone):
    the best of ``repeats`` rounds, each round timing all of them in turn, so that a shared
    machine's load hits both sides alike."""
    work = [lambda: trace_commitment(slots)]
    for rank in range(ranks):
        mine = [(Layout(s.shape[0], ranks), s[slice(*Layout(s.shape[0], ranks).rows_of(rank))].contiguous())
                for s in slots]
        work.append(lambda rank=rank, mine=mine: [chunk_roots(layout, rank, rows) for layout, rows in mine])
    times = [float("inf")] * len(work)
    for _ in range(repeats):
        for i, fn in enumerate(work):
            started = time.perf_counter()
            fn()
            times[i] = min(times[i], time.perf_counter() - started)
    return times[0], times[1:]


def moby():
    from referee.llama import load_llama
    from referee.llama_compile import compile_llama

    model = load_llama(ROOT / "models" / "moby-llama")
    t = model.cfg.max_position_embeddings
    ids = torch.randint(0, model.cfg.vocab_size, (4, t), generator=torch.Generator().manual_seed(0))
    compiled = compile_llama(model, ids)
    return "moby-llama", compiled, ids[:1].to(torch.int32), t


def minilm():
    from referee.transformer import MINILM, FloatTransformer
    from referee.transformer_compile import compile_transformer

    gen = torch.Generator().manual_seed(7)
    compiled = compile_transformer(FloatTransformer(MINILM, seed=0).eval(),
                                   torch.randint(0, MINILM.vocab, (2, MINILM.seq), generator=gen))
    ids = torch.randint(0, MINILM.vocab, (8, MINILM.seq), generator=gen).to(torch.int32)
    return "MiniLM-shaped encoder", compiled, ids, 8 * MINILM.seq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", default="2,4")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for name, model, ids, tokens in (moby(), minilm()):
        slots = Executor(model, "cpu").run(ids)
        roots, states = trace_commitment(slots)
        trace_bytes = sum(s.numel() * s.element_size() for s in slots)
        for ranks in map(int, args.ranks.split(",")):
            work = tempfile.mkdtemp(prefix="pc-")
            ranked = simulate(model, ids, ranks)
            save_file({f"m.r{r.rank}.{j}": t.contiguous().clone() for r in ranked for j, t in enumerate(r.shards)},
                      os.path.join(work, "slots.safetensors"))
            blocks = [[[shard.col0, shard.cols] for shard in shards_of(r)] for r in ranked]
            split = sum(p == "cols" for p in ranked[0].plan.split)
            Path(work, "plan.json").write_text(json.dumps({"m": {"blocks": blocks, "model_root": to_hex(model.root),
                                                                 "repeats": 3}}))
            del ranked
            results = [r["m"] for r in launch(work, ranks)]
            assert all(r["slot_roots"] == [to_hex(x) for x in roots] for r in results), "roots differ"
            assert all(r["trace_root"] == to_hex(states[-1]) for r in results)
            single, per_rank = hash_seconds(slots, ranks)
            rows.append({"model": name, "ranks": ranks, "tokens": tokens, "slots": len(slots), "split_slots": split,
                         "trace_bytes": trace_bytes, "single_hash_s": single,
                         "sent": [r["sent"] for r in results], "received": [r["received"] for r in results],
                         "exchange_s": [r["exchange_s"] for r in results], "hash_s": per_rank,
                         "hash_s_concurrent": [r["hash_s"] for r in results],
                         "trace_root": results[0]["trace_root"]})
            print(json.dumps(rows[-1]), flush=True)
    print()
    print("| model | ranks | tokens | split slots | sent per token, per rank (max) | exchange per rank (max) "
          "| hashing per rank (max / mean) | hashing, one process | trace root (all ranks = single) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['ranks']} | {r['tokens']} | {r['split_slots']} of {r['slots']} "
              f"| {max(r['sent']) / r['tokens']:,.0f} B | {max(r['exchange_s']) * 1000:,.0f} ms "
              f"| {max(r['hash_s']) * 1000:,.1f} / {sum(r['hash_s']) / r['ranks'] * 1000:,.1f} ms "
              f"| {r['single_hash_s'] * 1000:,.1f} ms "
              f"| `{r['trace_root'][:14]}…` |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
