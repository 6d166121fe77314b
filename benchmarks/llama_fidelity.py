"""Fidelity of the byte-level Moby-Dick Llama (models/moby-llama) compiled to the exact kinds
(referee.llama_compile) against its float model, on the held-out split of referee.corpus.

Text: the corpus's ``val`` split (chapters 124-135 and the epilogue), as bytes = token ids, cut
into consecutive non-overlapping windows of T + 1 ids (T = the model's context,
max_position_embeddings): each window's T inputs predict its T next bytes, as training measured
its validation loss. Calibration: ``--calibration`` (32) windows of T ids spread evenly over the
``train`` split (disjoint from the evaluated text).

Measured per variant, float against exact integer:

* validation loss (nats per token = per byte) and perplexity of each: the float logits, and the
  exact logits = the wide int32 logits slot(s) times their scale, both through a float64 softmax;
* agreement: the share of positions where the exact greedy next token (the model's argmax slot)
  equals the float model's argmax.

Variants (``VARIANTS``): SmoothQuant on (alpha 0.5, the default) and off, each with the default
16-bit groups (residual, norm, softmax, silu, up, prod), with the SwiGLU MLP at int8 (silu, up,
prod off) and with the norm outputs at int8; the default with the two optional groups on (att:
P.V's output; q: q and its rotation). A small byte-level model has no outlier channels to
speak of, so the ``outliers-*`` variants first inject some, exactly (``inject_outliers``: the
float function is unchanged, only where its range sits), as large pretrained models have them.

Prints a table and writes ``benchmarks/llama_fidelity.json`` (``--out``). Needs the corpus
(``make corpus``). Run: ``python benchmarks/llama_fidelity.py [--model DIR] [--windows N]
[--calibration N] [--out PATH]``.
"""

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "offchain"))  # runnable without an install

from referee import corpus  # noqa: E402
from referee.llama import FloatLlama, load_llama  # noqa: E402
from referee.llama_compile import DEFAULT_WIDE16, compile_llama, fidelity, windows  # noqa: E402

MLP16 = {"silu", "up", "prod"}
OUTLIER_CHANNELS, OUTLIER_FACTOR = (3, 17, 40, 99), 30.0
VARIANTS = {  # name: (SmoothQuant alpha or None, 16-bit groups, outliers injected)
    "smooth": (0.5, DEFAULT_WIDE16, False),               # the compiler's default
    "no-smooth": (None, DEFAULT_WIDE16, False),
    "smooth-mlp8": (0.5, DEFAULT_WIDE16 - MLP16, False),  # SiLU, up and the product at int8
    "no-smooth-mlp8": (None, DEFAULT_WIDE16 - MLP16, False),
    "smooth-norm8": (0.5, DEFAULT_WIDE16 - {"norm"}, False),  # the norm outputs at int8
    "no-smooth-norm8": (None, DEFAULT_WIDE16 - {"norm"}, False),
    "smooth-att16-q16": (0.5, DEFAULT_WIDE16 | {"att", "q"}, False),  # the two optional groups on
    "outliers-smooth": (0.5, DEFAULT_WIDE16, True),
    "outliers-no-smooth": (None, DEFAULT_WIDE16, True),
    "outliers-smooth-norm8": (0.5, DEFAULT_WIDE16 - {"norm"}, True),
    "outliers-no-smooth-norm8": (None, DEFAULT_WIDE16 - {"norm"}, True),
}


def inject_outliers(model: FloatLlama) -> FloatLlama:
    """A copy computing the same function with outlier channels in every norm's output: gamma of
    OUTLIER_CHANNELS times OUTLIER_FACTOR, the following linears' columns divided by it (the
    inverse of SmoothQuant: what a large pretrained model's norms look like)."""
    out = copy.deepcopy(model)
    chans = [c for c in OUTLIER_CHANNELS if c < model.cfg.hidden_size]
    with torch.no_grad():
        for layer in out.layers:
            for norm, linears in ((layer.input_layernorm, (layer.q_proj, layer.k_proj, layer.v_proj)),
                                  (layer.post_attention_layernorm, (layer.gate_proj, layer.up_proj))):
                norm.weight[chans] *= OUTLIER_FACTOR
                for lin in linears:
                    lin.weight[:, chans] /= OUTLIER_FACTOR
    return out


def spread_windows(ids: torch.Tensor, t: int, count: int) -> torch.Tensor:
    """``count`` windows (count, t) of ids spread evenly over the sequence."""
    starts = torch.linspace(0, len(ids) - t, count).round().long()
    return ids[starts[:, None] + torch.arange(t)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "moby-llama")
    p.add_argument("--windows", type=int, default=None, help="held-out windows to evaluate (default: all)")
    p.add_argument("--calibration", type=int, default=32)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "llama_fidelity.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_llama(args.model)
    t = model.cfg.max_position_embeddings
    val = torch.tensor(list(corpus.split_bytes("val")), dtype=torch.int64)
    train = torch.tensor(list(corpus.split_bytes("train")), dtype=torch.int64)
    rows, calib = windows(val, t, args.windows), spread_windows(train, t, args.calibration)
    print(f"{args.model.name}: {model.cfg.num_hidden_layers} layers, width {model.cfg.hidden_size}, "
          f"{model.cfg.num_attention_heads} heads / {model.cfg.num_key_value_heads} kv, T = {t}; "
          f"{len(rows)} held-out windows ({len(rows) * t:,} positions), {len(calib)} calibration windows")
    results = {}
    print(f"{'variant':24} {'agree':>7} {'float loss':>10} {'exact loss':>10} {'float ppl':>9} {'exact ppl':>9} "
          f"{'s':>6}")
    for name in args.variants.split(","):
        alpha, wide16, outliers = VARIANTS[name]
        started = time.perf_counter()
        source = inject_outliers(model) if outliers else model
        compiled = compile_llama(source, calib, name=args.model.name, wide16=wide16, smooth_alpha=alpha)
        r = fidelity(source, compiled, rows)
        r |= {"smoothquant_alpha": alpha, "wide16": sorted(wide16), "outliers_injected": outliers,
              "ops": len(compiled.ops), "seconds": round(time.perf_counter() - started, 1)}
        results[name] = r
        print(f"{name:24} {r['agreement']:7.2%} {r['float_loss']:10.4f} {r['exact_loss']:10.4f} "
              f"{r['float_ppl']:9.3f} {r['exact_ppl']:9.3f} {r['seconds']:6.1f}")
    out = {"model": str(args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model),
           "context": t, "windows": len(rows), "positions": len(rows) * t, "calibration_windows": len(calib),
           "corpus": corpus.NAME, "torch": torch.__version__, "python": platform.python_version(),
           "variants": results}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
