"""``torchrun --nproc-per-node N [--nnodes M ...] -m referee.parallel_main MODEL_DIR INPUT_FILE``:
one rank of a tensor-parallel run (referee.parallel_runtime), for a cluster. torchrun sets RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT; every rank reads the
model directory and the input itself (the same files on every node).

The commitment is split (referee.parallel_commit): every rank hashes the full rows it holds and
saves them, with the index of every root, in ``--store`` on its own node
(``TraceStore.save_rank``: directory ``rank{r}`` of the job's split trace); no rank gathers the
trace. After a barrier every rank reaches, rank 0 prints what ``referee run`` prints (the same
output and trace roots as one process) from its commitment. A failed rank prints one ``Error:``
line and exits 1, torchrun ends the others, and a rank that saved before the failure removes
its directory when it can (a rank killed outright leaves one; with another rank's directory
missing, ``TraceStore.load`` refuses the trace).
"""

import functools
import os
import shutil
import time
from pathlib import Path

import click
import torch.distributed as dist

from .cli import DEFAULT_STORE, _device, _print_run
from .errors import RefereeError
from .executor import check_input
from .inputs import load_input, save_rows
from .modelfile import load_model
from .parallel import plan
from .parallel_launch import set_threads
from .parallel_commit import commit_and_output
from .parallel_runtime import DEFAULT_TIMEOUT, fault_point, init, rank_device, run_rank
from .trace import SplitTrace, TraceStore


def _env(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        raise RefereeError(f"{name} is not set: start this module with torchrun (README, tensor parallel)") from None


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("input_file", type=click.Path(path_type=Path))
@click.option("--store", type=click.Path(path_type=Path), default=DEFAULT_STORE, show_default=True,
              envvar="REFEREE_STORE",
              help="Trace store directory on each rank's node, where it saves its rows (env REFEREE_STORE).")
@click.option("--no-store", is_flag=True, help="Do not save the trace.")
@click.option("--device", default="auto", show_default=True, callback=_device,
              help="auto (each rank its LOCAL_RANK's GPU where there are GPUs), cpu or cuda[:N].")
@click.option("--backend", type=click.Choice(["auto", "float", "int_mm", "int64"]), default="auto", show_default=True)
@click.option("--output", "output_file", type=click.Path(path_type=Path), help="Rank 0 writes the output rows here.")
@click.option("--collective-timeout", type=click.FloatRange(min=0.1), default=DEFAULT_TIMEOUT, show_default=True)
def main(model_dir: Path, input_file: Path, store: Path, no_store: bool, device: str, backend: str,
         output_file: Path | None, collective_timeout: float) -> None:
    """One rank of ``referee run MODEL_DIR INPUT_FILE`` split over torchrun's world."""
    saved = None  # this rank's directory of the split trace, once written
    try:
        rank, world = _env("RANK"), _env("WORLD_SIZE")
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        set_threads(local_world)
        model = load_model(model_dir)
        x = load_input(input_file, model.input_dtype)
        check_input(model, x)  # on every rank, before any of them waits for the others
        dev = rank_device(device, local_rank, local_world)
        init(rank, world, dev, collective_timeout)
        started = time.perf_counter()
        split = plan(model, world)
        if rank == 0:
            click.echo(f"split        {split.describe()}", err=True)
        (commit, output), _ = run_rank(model, x, split, rank, dev, backend,
                                       finish=functools.partial(commit_and_output, group=None))
        fault_point(rank, "save")
        if not no_store:
            saved = TraceStore(store).save_rank(model.root, commit)
        dist.barrier()  # every rank committed and saved: only now does rank 0 report the run
        if rank == 0:
            trace = SplitTrace.of_commit(model.root, commit, output)
            if output_file:
                save_rows(trace.output, output_file)
            path = None if no_store else TraceStore(store).split_path(model.root, trace.input_root)
            _print_run(model, trace, path, time.perf_counter() - started)
        dist.destroy_process_group()
    except (RefereeError, RuntimeError) as exc:  # a collective's timeout or a lost peer is a RuntimeError
        if saved is not None:
            shutil.rmtree(saved, ignore_errors=True)  # a part of a job that failed: not held
        last = str(exc).strip().splitlines()
        raise click.ClickException(f"rank {os.environ.get('RANK', '?')}: {last[-1] if last else exc}") from None

if __name__ == "__main__":
    main()
