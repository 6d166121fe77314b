"""Gloo worlds that commit given shards: the harness of the split commitment's tests and benchmark.

``launch(work, ranks)`` starts ``ranks`` CPU processes (``python -m referee.commit_worlds
--worker``), each of which commits the cases that ``work/plan.json`` names with
``parallel_commit.commit_distributed`` (whole slots cut in column blocks, the tensor-parallel
runtime's own shards, or a model run by the runtime itself) and writes its roots, bytes moved and
times to ``work/rankR.json``. ``referee run --ranks`` does not use it (referee.parallel_launch
starts its ranks); this module exists so that one world per rank count can serve a whole test
module or benchmark.
"""

import time

import torch
import torch.distributed as dist

from .parallel_commit import RankCommit, Shard, commit_distributed, commit_result
from .parallel_launch import free_port


def simulated_shard(slot: torch.Tensor, parts: int, rank: int, ranks: int) -> Shard:
    """Rank ``rank``'s block of a slot cut into ``parts`` column blocks (rank r holds block
    floor(r * parts / ranks): with fewer blocks than ranks, neighbouring ranks share one)."""
    if parts <= 1:
        return Shard.full(slot)
    width = slot.shape[1] // parts
    block = rank * parts // ranks
    return Shard.columns(slot[:, block * width:(block + 1) * width].contiguous(), block * width, slot.shape[1])


def _commit_case(case: str, entry: dict, tensors: dict, rank: int, ranks: int) -> tuple[RankCommit, float]:
    """One case of ``launch`` on this rank: its commitment and the best seconds of its repeats."""
    if "model_dir" in entry:  # the tensor-parallel runtime itself, in this world
        from .modelfile import load_model
        from .parallel import plan
        from .parallel_runtime import run_rank

        model = load_model(entry["model_dir"])
        started = time.perf_counter()
        commit, _ = run_rank(model, tensors[f"{case}.input"], plan(model, ranks), rank, torch.device("cpu"),
                             finish=commit_result)
        return commit, time.perf_counter() - started
    if "blocks" in entry:  # the runtime's shards (parallel_runtime.simulate), each rank its own
        shards = [Shard.columns(tensors[f"{case}.r{rank}.{j}"], lo, cols)
                  for j, (lo, cols) in enumerate(entry["blocks"][rank])]
    else:  # whole slots cut in column blocks
        shards = [simulated_shard(tensors[f"{case}.{j}"], p, rank, ranks) for j, p in enumerate(entry["parts"])]
    best = None
    for _ in range(entry.get("repeats", 1)):  # the first call warms up
        dist.barrier()
        started = time.perf_counter()
        commit = commit_distributed(shards)
        if best is None or time.perf_counter() - started < best[1]:
            best = commit, time.perf_counter() - started
    return best


def _worker() -> None:
    """One rank of ``launch``: commits each case, saves its rows where asked, writes its results."""
    import json
    import os
    import sys

    from safetensors.torch import load_file

    from .hashing import to_hex
    from .trace import TraceStore

    work, store = sys.argv[2], os.environ.get("REFEREE_SPLIT_STORE")
    dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    rank, ranks = dist.get_rank(), dist.get_world_size()
    tensors = load_file(os.path.join(work, "slots.safetensors"))
    results = {}
    for case, entry in json.loads(open(os.path.join(work, "plan.json")).read()).items():
        commit, total = _commit_case(case, entry, tensors, rank, ranks)
        results[case] = {"slot_roots": [to_hex(r) for r in commit.slot_roots], "trace_root": to_hex(commit.trace_root),
                         "sent": commit.bytes_sent, "received": commit.bytes_received,
                         "exchange_s": commit.exchange_seconds, "hash_s": commit.hash_seconds, "total_s": total}
        if store:
            TraceStore(store).save_rank(bytes.fromhex(entry["model_root"][2:]), commit)
    with open(os.path.join(work, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
    dist.destroy_process_group()


def launch(work: str, ranks: int, port: int | None = None, env: dict | None = None, timeout: float = 300) -> list[dict]:
    """Runs ``ranks`` gloo processes over the cases in ``work``; returns each rank's results.
    plan.json: CASE -> {"model_root": hex, and "model_dir": a model each rank runs with the
    tensor-parallel runtime on input ``CASE.input`` of slots.safetensors; or "blocks": per rank,
    per slot [first column, columns], its shard being tensor ``CASE.rRANK.j``; or "parts": column
    blocks per slot of the whole slots ``CASE.j``}. With REFEREE_SPLIT_STORE set, each rank
    saves its rows in that trace store."""
    import json
    import os
    import subprocess
    import sys

    if port is None:  # a free one: tests of several checkouts may share the host
        port = free_port()
    base = {"OMP_NUM_THREADS": "1", **os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "WORLD_SIZE": str(ranks), **(env or {})}  # one torch thread a rank: ranks share the cores
    procs = [subprocess.Popen([sys.executable, "-m", "referee.commit_worlds", "--worker", work],
                              env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(ranks)]
    try:
        codes = [p.wait(timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if any(codes):
        raise RuntimeError(f"a rank failed: exit codes {codes}")
    return [json.loads(open(os.path.join(work, f"rank{r}.json")).read()) for r in range(ranks)]


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["--worker"]:
        _worker()
