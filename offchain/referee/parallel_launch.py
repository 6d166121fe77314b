"""Tensor-parallel exact execution, the launch: ``referee run MODEL --ranks N`` starts N local
processes itself (torch.multiprocessing spawn, a free port on 127.0.0.1), each one rank
(referee.parallel_runtime), and waits for all of them.

One set of processes serves a list of jobs (a model, or a model directory each rank loads, and
an input) at several rank counts (``run_worlds``: ranks 0..R-1 form the world of R), so a test
pays for process start-up once. Rank 0 writes each job's whole slots to a work
folder; only when every rank has exited cleanly does the caller get them, so a job whose rank
died or hung (a collective's timeout, then the others end too) gives one RefereeError and
nothing to commit or store.
"""

import logging
import os
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
from .parallel_runtime import DEFAULT_TIMEOUT, init, rank_device, run_rank


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
            timeout: float, out: str) -> None:
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
            slots, moved = run_rank(model, job.x, plan(model, size), rank, dev, backend, group=group)
            if rank == 0:
                torch.save({"slots": slots}, Path(out) / f"{size}.{i}.pt")
            torch.save(moved, Path(out) / f"{size}.{i}.moved{rank}.pt")
    dist.barrier()  # every rank got through every job: only then does any result count
    dist.destroy_process_group()


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
               timeout: float = DEFAULT_TIMEOUT) -> dict[int, list[dict]]:
    """``run_local`` at each rank count of ``sizes``, in one set of max(sizes) processes (ranks
    0..R-1 of it form the world of R): a test pays process start-up once. A rank outside a
    smaller world waits for it in its next collective, so ``timeout`` must cover the smaller
    worlds' jobs (tests and benchmarks: small jobs)."""
    ranks = max(sizes)
    if min(sizes) < 1:
        raise RefereeError(f"--ranks {min(sizes)}: at least one rank")
    if resolve_device(device).type == "cuda" and ranks > torch.cuda.device_count():
        raise RefereeError(f"--ranks {ranks} on CUDA needs a GPU per rank; this machine has "
                           f"{torch.cuda.device_count()} (--device cpu runs gloo processes on the CPU)")
    # torch logs a warning as it ends the surviving ranks of a failed world: the Error line says it all.
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="referee-tp-") as out:
        ctx = mp.start_processes(_worker, args=(ranks, free_port(), jobs, sizes, device, backend, timeout, out),
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
                result = torch.load(Path(out) / f"{size}.{i}.pt")
                result["moved"] = [torch.load(Path(out) / f"{size}.{i}.moved{r}.pt") for r in range(size)]
                results[size].append(result)
        return results


def run_and_store(model_dir: Path, model: IntegerModel, x: torch.Tensor, ranks: int, store, device: str = "auto",
                  backend: str = "auto", timeout: float = DEFAULT_TIMEOUT):
    """``referee run --ranks N``: each rank loads ``model_dir`` (its shards of the weights are
    what it keeps), the world runs ``x``; the trace (of ``model``, the caller's verified copy)
    is stored only after every rank has finished. (trace, stored path or None, seconds)."""
    from .trace import Trace

    check_input(model, x)  # a bad input is one Error line here, not N ranks' tracebacks
    started = time.perf_counter()
    result = run_local([Job(Path(model_dir), x)], ranks, device, backend, timeout)[0]
    trace = Trace(model.root, result["slots"])
    path = store.save(trace) if store else None
    return trace, path, time.perf_counter() - started
