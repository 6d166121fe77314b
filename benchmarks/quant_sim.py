"""Fake-quantization study of all-MiniLM-L6-v2 (float torch, cheap): which precision change makes
the exact model track the float one? Same corpus, calibration and metrics as fidelity.py.

The simulation mirrors transformer_compile's recipe in float: weights int8 per output channel;
every activation rounded to its calibrated grid (max|x| / 127 over the calibration set; per
tensor unless a change makes it per channel); softmax outputs ⌊127 p⌋ / 127; LayerNorm exact on
its rounded input. The changes, each on top of the row above it:

* ``int8``: today's compiler (per-tensor int8 everywhere);
* ``+pc_ln`` (compiler only): a norm whose output feeds a linear writes it per channel (the
  scales folded into γ[c], β[c] and into the linear's weight columns); in a post-LN encoder the
  residual branch reads a second, per-tensor norm of the same input (one more op per norm);
* ``+wide_res`` (protocol): the linears that feed an ``add`` are ``wide`` (int32, exact), ``add``
  writes the residual at 16 bits and ``norm`` reads it;
* ``+pc_ffn`` (protocol): FFN1's output and GELU's output per channel (a per-column GELU table);

and ``wide_res`` alone, ``wide_res`` + ``pc_ln``, with the residual at 16 and at 24 bits.

Measured (1,000 sentences, 32 tokens; the exact model of today's compiler: 0.530 / 0.177 /
0.153): int8 0.461 mean / 0.129 worst / 0.133 top-10; +pc_ln 0.469 / 0.116 / 0.136; a 16-bit
residual 0.958 / 0.924 / 0.723 (24 bits: the same); with pc_ln 0.956 / 0.887 / 0.696; with
pc_ln and pc_ffn 0.907 / 0.561 / 0.544 (per-channel scales from 64 calibration sentences clip on
unseen ones). The residual is necessary, not sufficient: ``exempt`` (activations left unrounded)
shows GELU's and softmax's outputs and the norm outputs as the rest of the gap.

Run: ``python benchmarks/quant_sim.py [--n 1000] [--seq 32]``; prints a table, writes
``benchmarks/quant_sim.json``.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "offchain"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fidelity import TARGETS, corpus, top_k_overlap  # noqa: E402
from referee.checkpoint import load_bert, minilm_dir, tokenize  # noqa: E402


def calibrate(model, ids):
    rec = {}
    with torch.no_grad():
        model(ids, record=rec)
    per_t = {n: max(float(t.abs().max()), 1e-12) for n, t in rec.items()}
    per_c = {n: t.abs().reshape(-1, t.shape[-1]).amax(0).clamp(min=1e-12) for n, t in rec.items() if n != "scores"}
    return per_t, per_c


def simulate(model, ids, stats, pc_ln=False, wide_res=False, res_bits=16, pc_ffn=False, exempt=(), margin=1.0):
    per_t, per_c = stats
    cfg = model.cfg

    def fq(x, name, bits=8, channel=False):
        if any(name.endswith(e) for e in exempt):
            return x
        top = (1 << (bits - 1)) - 1
        s = (per_c[name] * margin if channel else torch.tensor(per_t[name])) / top
        return torch.round(x / s).clamp(-top - 1, top) * s

    def lin(x, layer, in_scale=None):
        w = layer.weight.double()
        cols = in_scale if in_scale is not None else torch.ones(w.shape[1], dtype=torch.float64)
        wc = w * cols[None, :]
        sw = wc.abs().amax(1, keepdim=True).clamp(min=1e-12) / 127
        wq = torch.round(wc / sw).clamp(-128, 127) * sw / cols[None, :]
        return x @ wq.T + layer.bias.double()

    def norm_out(x, ln, name):
        y = F.layer_norm(x, x.shape[-1:], ln.weight.double(), ln.bias.double(), cfg.eps)
        res = fq(y, name)  # the per-tensor copy: residual branch (and pooling)
        if pc_ln:
            return fq(y, name, channel=True), res, per_c[name] / 127
        return res, res, None

    def residual(a, b, name):
        return fq(a + b, name, bits=res_bits) if wide_res else fq(a + b, name)

    b, t = ids.shape
    x = fq(model.tok.double()[ids] + model.pos.double()[:t], "embed")
    xl, xr, sc = norm_out(x, model.ln_e, "ln_e")
    for i, blk in enumerate(model.blocks):
        p = f"b{i}."
        split = lambda z: z.view(b, t, cfg.heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = (fq(lin(xl, getattr(blk, n), sc), p + n) for n in ("q", "k", "v"))
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(cfg.head_width)
        scores = fq(scores, p + "scores")
        probs = scores.softmax(-1) if "probs" in exempt else torch.floor(127 * scores.softmax(-1)) / 127
        att = fq((probs @ split(v)).transpose(1, 2).reshape(b, t, -1), p + "att")
        attn_out = lin(att, blk.o)
        attn_out = attn_out if wide_res else fq(attn_out, p + "attn_out")
        xl, xr, sc = norm_out(residual(xr, attn_out, p + "res1"), blk.ln1, p + "ln1")
        h = fq(lin(xl, blk.fc1, sc), p + "fc1", channel=pc_ffn)
        g = fq(F.gelu(h), p + "gelu", channel=pc_ffn)
        mlp = lin(g, blk.fc2, per_c[p + "gelu"] / 127 if pc_ffn else None)
        mlp = mlp if wide_res else fq(mlp, p + "mlp_out")
        xl, xr, sc = norm_out(residual(xr, mlp, p + "res2"), blk.ln2, p + "ln2")
    pooled = fq(xr.mean(1), "pool")
    return F.normalize(pooled, dim=-1)


CONFIGS = [
    ("int8 (today)", {}),
    ("+pc_ln", {"pc_ln": True}),
    ("wide_res16", {"wide_res": True}),
    ("wide_res16 +pc_ln", {"wide_res": True, "pc_ln": True}),
    ("wide_res16 +pc_ln +pc_ffn", {"wide_res": True, "pc_ln": True, "pc_ffn": True}),
    ("wide_res24", {"wide_res": True, "res_bits": 24}),
    ("wide_res24 +pc_ln", {"wide_res": True, "res_bits": 24, "pc_ln": True}),
    ("int8 +pc_ffn", {"pc_ffn": True}),
]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--out", default=str(Path(__file__).with_name("quant_sim.json")))
    args = ap.parse_args(argv)
    calib, texts, digest = corpus(args.n)
    model, tok, _ = load_bert(minilm_dir(), seq=args.seq)
    model = model.double()
    stats = calibrate(model, tokenize(tok, calib))
    ids = tokenize(tok, texts)
    with torch.no_grad():
        ref = model(ids)
    rows = []
    print(f"{'change':<28}{'mean cos':>9}{'worst':>8}{'top-10':>8}")
    for label, kw in CONFIGS:
        with torch.no_grad():
            emb = torch.cat([simulate(model, ids[i:i + 100], stats, **kw) for i in range(0, len(ids), 100)])
        cos = (emb * ref).sum(-1)
        r = {"change": label, **kw, "mean_cos": float(cos.mean()), "worst_cos": float(cos.min()),
             "top10": top_k_overlap(emb, ref)}
        rows.append(r)
        print(f"{label:<28}{r['mean_cos']:>9.4f}{r['worst_cos']:>8.3f}{r['top10']:>8.3f}", flush=True)
    print(f"{'targets':<28}{TARGETS['mean_cos']:>9.2f}{TARGETS['worst_cos']:>8.2f}{TARGETS['top10']:>8.2f}")
    Path(args.out).write_text(json.dumps({"n": args.n, "seq": args.seq, "corpus_sha256": digest, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
