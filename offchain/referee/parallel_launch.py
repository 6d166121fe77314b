"""Tensor-parallel exact execution, the launch: ``referee run MODEL --ranks N`` starts N local
processes itself (torch.multiprocessing spawn, a free port on 127.0.0.1), each one rank
(referee.parallel_runtime), and waits for all of them.

``run_and_store`` (``referee run --ranks``) commits split (referee.parallel_commit): every rank
hashes the full rows it holds, saves them in its part of the trace store
(``TraceStore.save_rank``), and rank 0 hands back the roots and the output (a ``SplitTrace``
of its commitment); no rank gathers the whole trace. A job whose rank died or hung (mid-run,
mid-commit or before its save: a collective's timeout, then the others end too) gives one
RefereeError, and its split directory is removed, so the store holds nothing for it.

``run_worlds`` (tests, benchmarks) serves a list of jobs (a model, or a model directory each
rank loads, and an input) at several rank counts (ranks 0..R-1 form the world of R) in one set
of processes, so a test pays for process start-up once; rank 0 gathers each job's whole slots
(``parallel_runtime.gather_all``) to compare them with one process's.
"""

import functools
import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .errors import RefereeError
from .executor import check_input, resolve_device
from .model import IntegerModel
from .parallel import plan
from .parallel_commit import commit_and_output
from .parallel_runtime import DEFAULT_TIMEOUT, fault_point, init, rank_device, run_rank


@dataclass
class Job:
    """A model (an IntegerModel, or a model directory each rank loads) and its whole input."""

    model: IntegerModel | Path
    x: torch.Tensor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_threads(local_world: int) -> None:
    """Share the machine's cores among the local ranks (unless OMP_NUM_THREADS says otherwise):
    R processes of all-core thread pools on one host would thrash."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))


def load_job_model(model) -> IntegerModel:
    if isinstance(model, IntegerModel):
        return model
    from .modelfile import load_model

    return load_model(Path(model))


def _worker(rank: int, world: int, port: int, jobs: list[Job], sizes: list[int], device: str, backend: str,
            timeout: float, out: str, store: str | None = None, split_commit: bool = False) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    set_threads(world)
    dev = rank_device(device, rank, world)
    init(rank, world, dev, timeout)
    # Ranks 0..size-1 form a world of their own for each size. new_group is collective: every
    # rank makes every group, members or not, before any job.
    groups = {size: dist.new_group(list(range(size))) if size < world else None for size in sizes}
    for size in sizes:
        if rank >= size:
            continue
        group = groups[size]
        for i, job in enumerate(jobs):
            model = load_job_model(job.model)
            if split_commit:
                kept = _commit_job(model, job.x, plan(model, size), rank, dev, backend, group, store)
            else:
                kept, moved = run_rank(model, job.x, plan(model, size), rank, dev, backend, group=group)
                kept = {"slots": kept, "moved": moved}
            torch.save(kept.pop("moved"), Path(out) / f"{size}.{i}.moved{rank}.pt")
            if rank == 0:
                torch.save(kept, Path(out) / f"{size}.{i}.pt")
    dist.barrier()  # every rank got through every job: only then does any result count
    dist.destroy_process_group()


def _commit_job(model: IntegerModel, x: torch.Tensor, split, rank: int, dev, backend: str, group,
                store: str | None) -> dict:
    """One rank of ``run_and_store``: run, commit split, save this rank's rows (if a store)."""
    (commit, output), moved = run_rank(model, x, split, rank, dev, backend,
                                       finish=functools.partial(commit_and_output, group=group), group=group)
    moved = {**moved, "commit_sent": commit.bytes_sent, "commit_received": commit.bytes_received}
    fault_point(rank, "save")
    if store:
        from .trace import TraceStore

        TraceStore(store).save_rank(model.root, commit)
    commit.rows = []  # rank 0 hands back roots and the output, not its rows
    return {"commit": commit, "output": output, "moved": moved}


def _describe(exc: Exception, timeout: float) -> str:
    """One line for a failed world: which rank, and how."""
    if isinstance(exc, mp.ProcessExitedException):
        how = f"killed by {exc.signal_name}" if exc.signal_name else f"exit code {exc.exit_code}"
        return f"rank {exc.error_index} died mid-run ({how}); the job is abandoned and nothing was stored"
    text = str(exc)
    last = [line for line in text.strip().splitlines() if line.strip()]
    if "timed out" in text.lower() or "timeout" in text.lower():
        return (f"rank {exc.error_index}: a collective waited {timeout:g} s for the other ranks (one hung or "
                "died); the job is abandoned and nothing was stored")
    if "connection closed" in text.lower() or "connection reset" in text.lower():
        return (f"rank {exc.error_index} lost its peers (another rank died); the job is abandoned and "
                "nothing was stored")
    return f"rank {exc.error_index} failed: {last[-1] if last else type(exc).__name__}; nothing was stored"


def run_local(jobs: list[Job], ranks: int, device: str = "auto", backend: str = "auto",
              timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    """Run ``jobs`` on ``ranks`` local processes; per job {"slots": the whole slots, "moved":
    [payload bytes per collective kind, per rank]}. RefereeError (one line) if a rank fails."""
    return run_worlds(jobs, [ranks], device, backend, timeout)[ranks]


def run_worlds(jobs: list[Job], sizes: list[int], device: str = "auto", backend: str = "auto",
               timeout: float = DEFAULT_TIMEOUT, store: str | None = None,
               split_commit: bool = False) -> dict[int, list[dict]]:
    """``run_local`` at each rank count of ``sizes``, in one set of max(sizes) processes (ranks
    0..R-1 of it form the world of R): a test pays process start-up once. A rank outside a
    smaller world waits for it in its next collective, so ``timeout`` must cover the smaller
    worlds' jobs (tests and benchmarks: small jobs). With ``split_commit`` each job's result is
    {"commit": rank 0's RankCommit less its rows, "output", "moved"}, and with ``store`` every
    rank saves its part of the trace there."""
    ranks = max(sizes)
    if min(sizes) < 1:
        raise RefereeError(f"--ranks {min(sizes)}: at least one rank")
    if resolve_device(device).type == "cuda" and ranks > torch.cuda.device_count():
        raise RefereeError(f"--ranks {ranks} on CUDA needs a GPU per rank; this machine has "
                           f"{torch.cuda.device_count()} (--device cpu runs gloo processes on the CPU)")
    # torch logs a warning as it ends the surviving ranks of a failed world: the Error line says it all.
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="referee-tp-") as out:
        ctx = mp.start_processes(_worker, args=(ranks, free_port(), jobs, sizes, device, backend, timeout, out,
                                                         store and str(store), split_commit),
                                 nprocs=ranks, join=False, start_method="spawn")
        try:
            while not ctx.join():
                pass
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            raise RefereeError(_describe(exc, timeout)) from None
        finally:  # an interrupted wait (Ctrl-C) must not leave ranks behind
            for process in ctx.processes:
                if process.is_alive():
                    process.terminate()
        results = {}
        for size in sizes:
            results[size] = []
            for i in range(len(jobs)):
                # our own ranks' file (a RankCommit in it): not weights only
                result = torch.load(Path(out) / f"{size}.{i}.pt", weights_only=False)
                result["moved"] = [torch.load(Path(out) / f"{size}.{i}.moved{r}.pt") for r in range(size)]
                results[size].append(result)
        return results


def run_and_store(model_dir: Path, model: IntegerModel, x: torch.Tensor, ranks: int, store, device: str = "auto",
                  backend: str = "auto", timeout: float = DEFAULT_TIMEOUT):
    """``referee run --ranks N``: each rank loads ``model_dir`` (its shards of the weights are
    what it keeps), the world runs ``x`` and commits split, each rank saving its rows in
    ``store`` (a TraceStore or None); rank 0's roots and output come back as a ``SplitTrace``
    (of ``model``, the caller's verified copy). (trace, the split directory or None, seconds)."""
    from . import commitments as cm
    from .trace import SplitTrace

    check_input(model, x)  # a bad input is one Error line here, not N ranks' tracebacks
    directory = store.split_path(model.root, cm.commit_tensor(x).root) if store else None
    if directory is not None and directory.exists():
        shutil.rmtree(directory)  # an older split of this job (another rank count): not mixed in
    started = time.perf_counter()
    try:
        result = run_worlds([Job(Path(model_dir), x)], [ranks], device, backend, timeout,
                            store.root if store else None, split_commit=True)[ranks][0]
    except RefereeError:
        if directory is not None and directory.exists():
            shutil.rmtree(directory)  # the ranks that saved before the failure: nothing is held
        raise
    trace = SplitTrace.of_commit(model.root, result["commit"], result["output"])
    if store and (model.root, trace.input_root) not in store:
        raise RefereeError(f"the ranks finished but {directory} is incomplete; nothing was stored")
    return trace, directory, time.perf_counter() - started
