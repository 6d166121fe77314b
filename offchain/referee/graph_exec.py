"""Exact execution of a graph model (any kinds of protocol section 5), CPU or CUDA.

``linear`` ops reuse the MLP executor's kernels (referee.executor: fused float64, blocked
float32, ``torch._int_mm``, int64), chosen the same way; the transformer kinds use
referee.kernels. ``run_op`` runs one op on given tensors, for tests that fuzz one kernel.
"""

from collections.abc import Callable

import torch

from . import commitments as cm
from . import graph_linear
from .errors import InputError, RefereeError
from .executor import BACKENDS, FUSED64_MAX_K, _ieee_float32_matmul, kernel_class, resolve_device
from .graph import GraphModel, accepted_dtypes, input_slots, output_rows
from .kernels import KERNELS
from .model import MAX_COLS, MAX_ROWS, LinearOp, check_linear

TORCH_DTYPES = {cm.DTYPE_INT8: torch.int8, cm.DTYPE_INT32: torch.int32}


def default_backend(device: torch.device) -> str:
    """int_mm on CUDA and on CPUs where it is exact and fast (VNNI), float elsewhere."""
    if device.type == "cuda" or graph_linear.int_mm_exact_on_cpu():
        return "int_mm"
    return "float"


def prepare(op, device: torch.device, backend: str = "float", fused64_max_k: int = FUSED64_MAX_K):
    """The kernel of one op on one device: a callable taking its input tensors."""
    if isinstance(op, LinearOp):
        if device.type == "cpu" and backend in ("float", "int_mm") and graph_linear.usable(op):
            return graph_linear.FastLinear(op, device, int_mm=backend == "int_mm" and graph_linear.int_mm_shape(op))
        return kernel_class(op, backend, fused64_max_k)(op, device)
    return KERNELS[type(op)](op, device)


class GraphExecutor:
    """Prepares a graph model for one device and backend once, then runs inputs exactly."""

    def __init__(self, model: GraphModel, device: str = "auto", backend: str = "auto",
                 fused64_max_k: int = FUSED64_MAX_K):
        self.model = model
        self.device = resolve_device(device)
        if backend == "auto":
            backend = default_backend(self.device)
        if backend not in BACKENDS:
            raise RefereeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.kernels = [prepare(op, self.device, backend, fused64_max_k) for op in model.ops]

    def check_input(self, x: torch.Tensor) -> None:
        want = TORCH_DTYPES[self.model.input_dtype]
        if not isinstance(x, torch.Tensor) or x.dtype != want:
            raise InputError(f"input must be an {want} tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() != 2 or x.shape[1] != self.model.input_cols:
            raise InputError(f"input has shape {tuple(x.shape)}; the model expects (rows, {self.model.input_cols})")
        self.model.slot_shapes(x.shape[0])  # every shape rule, before any work

    def run(self, x: torch.Tensor, on_op: Callable[[int], None] | None = None,
            keep_on_device: bool = False) -> list[torch.Tensor]:
        """All slot tensors [x, y_1, ..., y_N] (CPU unless ``keep_on_device``); ``on_op(j)`` after op j."""
        self.check_input(x)
        slots = [x.to(self.device)]
        with torch.inference_mode(), _ieee_float32_matmul():
            for j, (op, kernel) in enumerate(zip(self.model.ops, self.kernels), start=1):
                slots.append(kernel(*[slots[s] for s in input_slots(op)]))
                if on_op:
                    on_op(j)
        return slots if keep_on_device else [s.cpu() for s in slots]


def run_op(op, inputs: list[torch.Tensor], device: str = "cpu", backend: str = "auto") -> torch.Tensor:
    """One op on given input tensors (as slot ``input_a`` [and ``input_b``]), checked like a model would be."""
    if isinstance(op, LinearOp):
        check_linear(op, "op")
    else:
        op.check("op")
    if not (1 <= op.in_cols <= MAX_COLS and 1 <= op.out_cols <= MAX_COLS):
        raise InputError(f"op columns ({op.in_cols}, {op.out_cols}) outside [1, {MAX_COLS}]")
    if len(inputs) != len(input_slots(op)):
        raise InputError(f"{type(op).__name__} takes {len(input_slots(op))} inputs, got {len(inputs)}")
    for t in inputs:
        if t.dim() != 2 or t.dtype not in (torch.int8, torch.int32) or t.shape[1] != op.in_cols:
            raise InputError(f"input of shape {tuple(t.shape)} and dtype {t.dtype} does not fit in_cols = {op.in_cols}")
        if cm.DTYPES[t.dtype] not in accepted_dtypes(op):
            raise InputError(f"{type(op).__name__} cannot read {t.dtype}")
        if not 1 <= t.shape[0] <= MAX_ROWS:
            raise InputError(f"an input has {t.shape[0]} rows; allowed are 1 to {MAX_ROWS}")
    try:
        out = output_rows(op, [t.shape[0] for t in inputs])
    except ValueError as e:
        raise InputError(str(e)) from None
    if out > MAX_ROWS:
        raise InputError(f"the output would have {out} rows; at most {MAX_ROWS}")
    dev = resolve_device(device)
    backend = default_backend(dev) if backend == "auto" else backend
    kernel = prepare(op, dev, backend)
    with torch.inference_mode(), _ieee_float32_matmul():
        return kernel(*[t.to(dev) for t in inputs]).cpu()


def trace_commitment(slots: list[torch.Tensor]) -> tuple[list[bytes], list[bytes]]:
    """(slot roots T_0..T_N, state roots S_0..S_N) of one run: what a solver commits per job."""
    roots = [cm.commit_tensor(s).root for s in slots]
    return roots, cm.state_roots(roots)
