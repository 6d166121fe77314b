"""Exact executor: runs an integer model of any kinds on a batch and returns every slot tensor.

Each op gets a prepared kernel once per device and backend: ``linear`` ops one of the exact
kernels of referee.linear_kernels (fused float64, float32 blocks or ``torch._int_mm`` with a
float64 requantization, int64), the transformer kinds those of referee.kernels. Every kernel
is bit-identical to the spec; tests compare each with the independent pure-integer reference.
``run_op`` runs one op on given tensors (for tests that fuzz one kernel); ``trace_commitment``
is what a solver commits for one run.
"""

import contextlib
import re
from collections.abc import Callable

import torch

from . import commitments as cm
from . import heap
from .errors import InputError, RefereeError
from .kernels import KERNELS
from .linear_kernels import FUSED64_MAX_K, int_mm_exact_on_cpu, linear_kernel
from .model import (DTYPE_NAMES, MAX_ROWS, IntegerModel, LinearOp, accepted_dtypes, check_input_bounds, check_op,
                    input_cols, input_slots, output_rows)
from .ops import EmbedOp

BACKENDS = ("float", "int_mm", "int64")
TORCH_DTYPES = {code: dtype for dtype, code in cm.DTYPES.items()}  # dtype code -> torch dtype
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@contextlib.contextmanager
def _ieee_float32_matmul():
    """Float32 GEMMs must not drop to TF32/bf16: exactness rests on true float32 sums."""
    saved = torch.get_float32_matmul_precision()
    saved_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)
        torch.backends.cuda.matmul.allow_tf32 = saved_tf32


def check_device(device: str) -> str:
    """A ``--device`` value (auto, cpu, cuda or cuda:N), or one RefereeError line: torch itself
    would raise a RuntimeError. Every command that takes ``--device`` checks it here."""
    if not DEVICE.fullmatch(device):
        raise RefereeError(f"--device {device}: not a device; use auto, cpu, cuda or cuda:N")
    return device


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RefereeError("CUDA was requested but this machine has no usable CUDA device")
    return torch.device(device)


def default_backend(device: torch.device) -> str:
    """int_mm on CUDA and on CPUs where it is exact and fast (VNNI), float elsewhere."""
    if device.type == "cuda" or int_mm_exact_on_cpu():
        return "int_mm"
    return "float"


def _resolve_backend(backend: str, device: torch.device) -> str:
    backend = default_backend(device) if backend == "auto" else backend
    if backend not in BACKENDS:
        raise RefereeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def check_input(model: IntegerModel, x: torch.Tensor) -> None:
    """The input's dtype, columns and every op's shape rule for its row count; InputError otherwise."""
    want = TORCH_DTYPES[model.input_dtype]
    if not isinstance(x, torch.Tensor) or x.dtype != want:
        raise InputError(f"input must be an {DTYPE_NAMES[model.input_dtype]} tensor, "
                         f"got {getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() != 2 or x.shape[1] != model.input_cols:
        raise InputError(f"input has shape {tuple(x.shape)}; the model expects (rows, {model.input_cols})")
    model.slot_shapes(x.shape[0])  # every shape rule, before any work


def prepare(op, device: torch.device, backend: str, fused64_max_k: int = FUSED64_MAX_K,
            in_dtypes: list[int] | None = None):
    """The kernel of one op on one device: a callable taking its input tensors of ``in_dtypes``
    (section 3's codes, one per input slot; int8 where not given): a kernel's exact paths are
    chosen from the values its inputs can hold."""
    in_dtypes = in_dtypes or [cm.DTYPE_INT32 if isinstance(op, EmbedOp) else cm.DTYPE_INT8] * len(input_slots(op))
    if isinstance(op, LinearOp):
        return linear_kernel(op, device, backend, fused64_max_k, in_dtypes[0])
    return KERNELS[type(op)](op, device, tuple(in_dtypes))


class Executor:
    """Prepares a model for one device and backend once, then runs inputs exactly.

    ``fused64_max_k`` bounds k for the fused float64 linear kernel (a speed choice only: every
    kernel is exact); tests set it to force one kernel or another.
    """

    def __init__(self, model: IntegerModel, device: str = "auto", backend: str = "auto",
                 fused64_max_k: int = FUSED64_MAX_K):
        heap.tune()  # keep freed temporaries in the process: each forward reuses them (heap.py)
        self.model = model
        self.device = resolve_device(device)
        self.backend = _resolve_backend(backend, self.device)
        self.kernels = [prepare(op, self.device, self.backend, fused64_max_k,
                                [model.slot_dtype(s) for s in input_slots(op)]) for op in model.ops]

    def check_input(self, x: torch.Tensor) -> None:
        check_input(self.model, x)

    def run(self, x: torch.Tensor, on_op: Callable[[int], None] | None = None,
            keep_on_device: bool = False) -> list[torch.Tensor]:
        """All slot tensors [x, y_1, ..., y_N] (CPU unless ``keep_on_device``); ``on_op(j)`` after op j."""
        self.check_input(x)
        # A view (a slice, a transpose) is copied once here: kernels may assume row-major rows.
        slots = [x.to(self.device).contiguous()]
        with torch.inference_mode(), _ieee_float32_matmul():
            for j, (op, kernel) in enumerate(zip(self.model.ops, self.kernels), start=1):
                slots.append(kernel(*[slots[s] for s in input_slots(op)]))
                if on_op:
                    on_op(j)
        return slots if keep_on_device else [s.cpu() for s in slots]


def run_model(model: IntegerModel, x: torch.Tensor, device: str = "auto", backend: str = "auto") -> list[torch.Tensor]:
    """One-shot convenience: prepare and run."""
    return Executor(model, device, backend).run(x)


def run_op(op, inputs: list[torch.Tensor], device: str = "cpu", backend: str = "auto") -> torch.Tensor:
    """One op on given input tensors (as slot ``input_a`` [and ``input_b``]), checked like a model would be."""
    check_op(op, "op")  # ModelCompileError, as a model holding it would raise
    if len(inputs) != len(input_slots(op)):
        raise InputError(f"{type(op).__name__} takes {len(input_slots(op))} inputs, got {len(inputs)}")
    for t, cols in zip(inputs, input_cols(op)):
        if t.dim() != 2 or t.dtype not in cm.DTYPES or t.shape[1] != cols:
            raise InputError(f"input of shape {tuple(t.shape)} and dtype {t.dtype} does not fit its {cols} columns")
        if cm.DTYPES[t.dtype] not in accepted_dtypes(op):
            raise InputError(f"{type(op).__name__} cannot read {t.dtype}")
        if not 1 <= t.shape[0] <= MAX_ROWS:
            raise InputError(f"an input has {t.shape[0]} rows; allowed are 1 to {MAX_ROWS}")
    in_dtypes = [cm.DTYPES[t.dtype] for t in inputs]
    check_input_bounds(op, "op", in_dtypes)  # ModelCompileError, as a model holding it would raise
    try:
        out = output_rows(op, [t.shape[0] for t in inputs])
    except ValueError as e:
        raise InputError(str(e)) from None
    if out > MAX_ROWS:
        raise InputError(f"the output would have {out} rows; at most {MAX_ROWS}")
    dev = resolve_device(device)
    kernel = prepare(op, dev, _resolve_backend(backend, dev), in_dtypes=in_dtypes)
    with torch.inference_mode(), _ieee_float32_matmul():
        return kernel(*[t.to(dev).contiguous() for t in inputs]).cpu()


def trace_commitment(slots: list[torch.Tensor]) -> tuple[list[bytes], list[bytes]]:
    """(slot roots T_0..T_N, state roots S_0..S_N) of one run: what a solver commits per job."""
    roots = [cm.commit_tensor(s).root for s in slots]
    return roots, cm.state_roots(roots)
