"""An agent's traces: one per job, computed off the tick by a worker thread, kept in the store.

A trace is what an agent stands by for a job: the model run exactly on the job's input (CUDA
when present), with the agent's cheat applied, saved in the trace store before anything
depends on it, so a restarted agent plays from the trace it committed or challenged with.

A new job's trace is handed to one worker thread (``ready``); the tick goes on and sends its
game moves while the model runs (torch releases the GIL). A trace the worker has finished is
taken up at the start of the next tick (``collect``), and its job acts then. A game in play
or a commit needs its trace at once (``now``): it was ready before the claim or the challenge,
or it is loaded from the store.
"""

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import torch

from .. import cheats
from .. import commitments as cm
from ..errors import TraceStoreError
from ..executor import Executor
from ..hashing import to_hex
from ..model import IntegerModel
from ..trace import Trace, TraceStore
from .client import unpack_ids
from .journal import JobRow, Journal


def job_rows(data: bytes, rows: int, cols: int, dtype: int = cm.DTYPE_INT8) -> torch.Tensor:
    """A job's packed input (from its ``JobPosted`` log) as a (rows, cols) tensor of its model's
    input dtype: int8, or int32 token ids (four bytes each, big-endian: protocol section 3)."""
    if dtype == cm.DTYPE_INT8:
        return torch.frombuffer(bytearray(data), dtype=torch.int8).reshape(rows, cols)
    if dtype != cm.DTYPE_INT32:  # section 3: a model's input is int8 or int32
        raise ValueError(f"a job's input is int8 or int32, not dtype {dtype}")
    return torch.tensor(unpack_ids(data), dtype=torch.int32).reshape(rows, cols)


class Traces:
    """The traces of one agent's jobs, by job id; ``log`` takes the agent's lines."""

    def __init__(self, models: dict[int, IntegerModel], store: TraceStore, cheat: str | None, device: str,
                 journal: Journal, log: Callable[[str], None], name: str = "agent"):
        self.models, self.store, self.cheat, self.device = models, store, cheat, device
        self.journal, self.log, self.name = journal, log, name
        self._traces: dict[int, Trace] = {}
        self._executors: dict[int, Executor] = {}  # weights prepared for the device once per model
        self._executor_lock = threading.Lock()
        self._worker: ThreadPoolExecutor | None = None  # started by the first new job
        self._pending: dict[int, Future] = {}  # job id -> its trace being computed

    def now(self, row: JobRow) -> Trace:
        """The job's trace, now: from memory, from the worker (waited for), or loaded or run here."""
        if row.job_id in self._pending:
            self._take(row.job_id, self._pending.pop(row.job_id))
        if row.job_id not in self._traces:
            self._traces[row.job_id], ran = self._load_or_run(row, self._generation(row))
            self._log_run(row, ran)
        return self._traces[row.job_id]

    def ready(self, row: JobRow) -> Trace | None:
        """The job's trace if it is ready, else None, with its computation handed to the worker."""
        if row.job_id in self._traces:
            return self._traces[row.job_id]
        if row.job_id not in self._pending:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-trace")
            # the journal is read here: its connection belongs to this thread, not the worker's
            self._pending[row.job_id] = self._worker.submit(self._load_or_run, row, self._generation(row))
        return None

    def pending(self) -> list[int]:
        """The jobs whose trace the worker is computing (or has finished, not yet taken up)."""
        return list(self._pending)

    def wait(self, timeout: float = 600.0) -> bool:
        """Waits for the traces being computed; True if there were any."""
        pending = list(self._pending.values())
        wait(pending, timeout=timeout)
        return bool(pending)

    def collect(self) -> None:
        """Takes up the traces the worker has finished (their jobs act on this tick)."""
        for job_id, future in list(self._pending.items()):
            if future.done():
                del self._pending[job_id]
                self._take(job_id, future)

    def _take(self, job_id: int, future: Future) -> None:
        try:
            trace, ran = future.result()
        except Exception as exc:  # noqa: BLE001 - reported, and tried again on the job's next pass
            self.log(f"error: job {job_id}: its trace failed ({type(exc).__name__}: {exc}); will try again")
            return
        self._traces[job_id] = trace
        self._log_run(self.journal.job(job_id), ran)

    def _generation(self, row: JobRow) -> tuple[int, int] | None:
        """(prompt length, token count) of a generation job, for a cheat that lies in its tokens."""
        generation = self.journal.generation(row.job_id) if self.cheat == "wrong-token" else None
        return None if generation is None else (len(generation[0]) // 4, generation[1])

    def _load_or_run(self, row: JobRow, generation: tuple[int, int] | None = None
                     ) -> tuple[Trace, tuple[str, float] | None]:
        """The job's trace from the store, or run with the cheat and stored; with the device and
        milliseconds of the run (None when loaded). Runs on the worker, or in ``now``."""
        model = self.models[row.model_id]
        x = job_rows(row.input, row.rows, model.input_cols, model.input_dtype)
        try:
            return self.store.load(model.root, cm.commit_tensor(x).root), None
        except TraceStoreError:
            pass
        with self._executor_lock:
            if row.model_id not in self._executors:
                self._executors[row.model_id] = Executor(model, self.device)
            executor = self._executors[row.model_id]
        started = time.perf_counter()
        trace = cheats.apply(self.cheat, Trace(model.root, executor.run(x)), model, generation)
        self.store.save(trace)
        return trace, (executor.device.type, (time.perf_counter() - started) * 1000)

    def _log_run(self, row: JobRow, ran: tuple[str, float] | None) -> None:
        if ran is not None:
            trace, model = self._traces[row.job_id], self.models[row.model_id]
            self.log(f"job {row.job_id}: ran {model.name} on {row.rows} rows on {ran[0]} in {ran[1]:.0f} ms, "
                     f"S_N {to_hex(trace.trace_root)[:12]}…")
