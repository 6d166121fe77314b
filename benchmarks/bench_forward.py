"""Forward-pass benchmark: plain float32 torch vs Referee's exact integer executor.

For two models it measures, as the median of ``--repeats`` runs after 2 warm-up runs
(``time.perf_counter``):

* fp32 forward: the float model, plain torch, under ``torch.inference_mode()``;
* exact forward: ``Executor(model, device).run(x)`` with the default backend (the executor is
  prepared once, outside the timing), all slots returned as int8 CPU tensors;
* trace commit: ``Trace(model.root, slots).trace_root``, i.e. every slot's tensor root and the
  state roots S_0..S_N, what a solver computes per request;
* weights commit (once): ``[op.weights.root for op in model.ops]`` on a fresh model object,
  what is computed once per model at registration (not per request, so not in the ratios).

Ratios: exact/fp32 (target <= 1.3x) and (exact + trace commit)/fp32 (target <= 2x).

Models:

1. the digits demo MLP (64 -> 64 -> 32 -> 10) on its 450 test digits;
2. an MLP with LLM-sized layers, 4096 -> 11008 (ReLU) -> 4096, batch 16, seeded random int8
   weights in [-127, 127].

Run: ``python benchmarks/bench_forward.py [--repeats N] [--quick] [--device auto|cpu|cuda]``.
"""

import argparse
import dataclasses
import math
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch

from referee.digits import train_and_quantize
from referee.errors import RefereeError
from referee.executor import Executor, resolve_device
from referee.hashing import describe
from referee.model import IntegerModel, LinearOp
from referee.quantize import quantize_input
from referee.trace import Trace

WARMUP = 2
EXACT_TARGET = 1.3
COMMIT_TARGET = 2.0

LARGE_SEED = 1234
LARGE_BATCH = 16
LARGE_DIMS = (4096, 11008, 4096)
TARGET_OUTPUT_STD = 32.0  # requantization is calibrated so outputs spread over int8, not saturate


@dataclasses.dataclass
class Case:
    name: str
    model: IntegerModel
    x_int: torch.Tensor                   # int8 input of the exact path (CPU)
    fp32_forward: Callable[[], torch.Tensor]
    fresh_model: Callable[[], IntegerModel]  # a new object with no cached commitments
    shifts: tuple[int, ...] = ()             # per-op shifts, for the sanity lines


@dataclasses.dataclass
class Result:
    name: str
    fp32_ms: float
    exact_ms: float
    commit_ms: float
    weights_ms: float
    other_load: float  # mean CPU use of other processes during the timed runs, in cores

    @property
    def exact_ratio(self) -> float:
        return self.exact_ms / self.fp32_ms

    @property
    def commit_ratio(self) -> float:
        return (self.exact_ms + self.commit_ms) / self.fp32_ms


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = WARMUP,
              sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


class OtherLoad:
    """CPU time other processes used while the block ran (Linux /proc/stat), in cores.

    The ratios are only meaningful on an otherwise idle machine: torch's parallel regions
    wait for every thread, so a busy core stalls each element-wise op for a scheduler slice.
    """

    def _snapshot(self) -> tuple[float, float, float]:
        try:
            with open("/proc/stat") as f:
                v = [int(t) for t in f.readline().split()[1:]]
            busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            busy = math.nan
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return busy, usage.ru_utime + usage.ru_stime, time.perf_counter()

    def __enter__(self) -> "OtherLoad":
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc) -> None:
        end = self._snapshot()
        others = (end[0] - self._start[0]) - (end[1] - self._start[1])
        self.cores = max(0.0, others) / max(end[2] - self._start[2], 1e-9)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(device: torch.device) -> str:
    dev = str(device)
    if device.type == "cuda":
        dev += f" ({torch.cuda.get_device_name(device)})"
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}, device {dev}, keccak: {describe()}")


def fresh_copy(model: IntegerModel) -> IntegerModel:
    """The same model as new objects: no cached weights roots, ops tree or model root."""
    ops = [dataclasses.replace(op) for op in model.ops]
    return IntegerModel(model.input_cols, ops, name=model.name, input_scale=model.input_scale,
                        output_scale=model.output_scale, meta=dict(model.meta))


# ---- model 1: digits MLP -------------------------------------------------------------------

def digits_case(device: torch.device) -> Case:
    result = train_and_quantize()
    model = result.integer_model
    test_x = result.data.test_x
    x_int = quantize_input(test_x, model.input_scale)
    float_model = result.float_model.to(device)
    x_dev = test_x.to(device)

    def fp32_forward() -> torch.Tensor:
        with torch.inference_mode():
            return float_model(x_dev)

    label = f"digits MLP {model.input_cols}->" + "->".join(str(op.out_cols) for op in model.ops) \
        + f", batch {x_int.shape[0]}"
    return Case(label, model, x_int, fp32_forward, lambda: fresh_copy(model))


# ---- model 2: LLM-sized MLP ----------------------------------------------------------------

def _shift_for(acc: torch.Tensor, multiplier: torch.Tensor) -> int:
    """A shift s making (acc * m) >> s have a std of about TARGET_OUTPUT_STD."""
    factor = TARGET_OUTPUT_STD / float(acc.std())          # wanted m / 2^s
    mean_m = float(multiplier.to(torch.float64).mean())
    return round(math.log2(mean_m / factor))


def large_case(device: torch.device) -> Case:
    gen = torch.Generator().manual_seed(LARGE_SEED)
    k, hidden, n = LARGE_DIMS
    x_int = torch.randint(-128, 128, (LARGE_BATCH, k), generator=gen, dtype=torch.int8)

    def layer_params(out_cols: int, in_cols: int):
        weight = torch.randint(-127, 128, (out_cols, in_cols), generator=gen, dtype=torch.int8)
        bias = torch.randint(-(1 << 12), 1 << 12, (out_cols,), generator=gen, dtype=torch.int32)
        multiplier = torch.randint(1 << 30, (1 << 31) - 1, (out_cols,), generator=gen, dtype=torch.int32)
        return weight, bias, multiplier

    w1, b1, m1 = layer_params(hidden, k)
    w2, b2, m2 = layer_params(n, hidden)
    # Calibrate one shift per layer on the benchmark input (float64 is exact at these sizes).
    acc1 = x_int.double() @ w1.double().T + b1.double()
    s1 = _shift_for(acc1, m1)
    y1 = torch.floor(acc1 * m1.double() / 2.0 ** s1 + 0.5).clamp(-128, 127).clamp(min=0)
    acc2 = y1 @ w2.double().T + b2.double()
    s2 = _shift_for(acc2, m2)

    def build() -> IntegerModel:
        ops = [LinearOp(0, w1.clone(), b1.clone(), m1.clone(), torch.full((hidden,), s1, dtype=torch.int32), True),
               LinearOp(1, w2.clone(), b2.clone(), m2.clone(), torch.full((n,), s2, dtype=torch.int32), False)]
        return IntegerModel(k, ops, name="llm-sized-mlp").validate()

    model = build()
    # fp32 baseline: the same values as float32, laid out as nn.Linear holds them.
    fw1, fb1 = w1.to(torch.float32).contiguous().to(device), b1.to(torch.float32).to(device)
    fw2, fb2 = w2.to(torch.float32).contiguous().to(device), b2.to(torch.float32).to(device)
    xf = x_int.to(torch.float32).to(device)
    linear = torch.nn.functional.linear

    def fp32_forward() -> torch.Tensor:
        with torch.inference_mode():
            return linear(torch.relu(linear(xf, fw1, fb1)), fw2, fb2)

    label = f"large MLP {k}->{hidden}->{n}, batch {LARGE_BATCH}"
    return Case(label, model, x_int, fp32_forward, build, shifts=(s1, s2))


# ---- measurement ---------------------------------------------------------------------------

def measure(case: Case, device: torch.device, repeats: int) -> Result:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    executor = Executor(case.model, str(device))  # prepared once, default backend
    slots = executor.run(case.x_int)
    model_root = case.model.root  # weights/ops/model roots: registration-time, cached here

    with OtherLoad() as load:
        fp32_ms = median_ms(case.fp32_forward, repeats, sync=sync)
        exact_ms = median_ms(lambda: executor.run(case.x_int), repeats)  # run() returns CPU tensors
        commit_ms = median_ms(lambda: Trace(model_root, slots).trace_root, repeats)

    # Once per model: time it on fresh objects (no warm-up needed: nothing is cached).
    weight_times = []
    for _ in range(max(1, min(3, repeats))):
        fresh = case.fresh_model()
        start = time.perf_counter()
        [op.weights.root for op in fresh.ops]
        weight_times.append(time.perf_counter() - start)
    weights_ms = 1000.0 * statistics.median(weight_times)
    return Result(case.name, fp32_ms, exact_ms, commit_ms, weights_ms, load.cores)


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:5.2f}x {'PASS' if ratio <= target else 'MISS'}"


def print_table(results: list[Result]) -> None:
    headers = ["model", "fp32 ms", "exact ms", "trace commit ms", "weights commit (once) ms",
               f"exact/fp32 (<= {EXACT_TARGET}x)", f"(exact+commit)/fp32 (<= {COMMIT_TARGET:g}x)"]
    rows = [[r.name, f"{r.fp32_ms:.3f}", f"{r.exact_ms:.3f}", f"{r.commit_ms:.3f}", f"{r.weights_ms:.1f}",
             verdict(r.exact_ratio, EXACT_TARGET), verdict(r.commit_ratio, COMMIT_TARGET)] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    loads = ", ".join(f"{r.name.split(',')[0]} {r.other_load:.2f}" for r in results)
    print(f"other processes' CPU load during the timed runs (cores; ~0 on an idle machine): {loads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (median reported)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 repeats")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        device = resolve_device(args.device)
    except RefereeError as exc:
        parser.error(str(exc))

    print(machine_line(device))
    print(f"timing: median of {repeats} runs after {WARMUP} warm-up runs, time.perf_counter")

    results = []
    digits = digits_case(device)
    results.append(measure(digits, device, repeats))

    large = large_case(device)
    out = Executor(large.model, str(device)).run(large.x_int)
    # The obvious-by-inspection int64 path, once, outside timing (slow; CPU: torch has no CUDA int64 matmul).
    reference = Executor(large.model, "cpu", backend="int64").run(large.x_int)
    assert all(torch.equal(a, b) for a, b in zip(out, reference)), "exact path differs from the int64 path"
    print("exact: identical to int64 path")
    for j, slot in enumerate(out[1:], start=1):
        saturated = float(((slot == 127) | (slot == -128)).to(torch.float64).mean())
        print(f"large MLP slot {j}: shift {large.shifts[j - 1]}, values in [{int(slot.min())}, {int(slot.max())}], "
              f"std {float(slot.to(torch.float64).std()):.1f}, {100 * saturated:.2f}% saturated at 127/-128")
    del out, reference
    results.append(measure(large, device, repeats))

    print()
    print_table(results)


if __name__ == "__main__":
    main()
