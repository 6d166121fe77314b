"""Compile a float transformer (referee.transformer) into an exact integer model.

Static post-training quantization, the usual recipe (gemmlowp / TFLite, I-BERT's integer-only
inference): every activation gets one symmetric int8 scale, calibrated as max|x| / 127 over
the float model's activations on calibration tokens; weights get one scale per output channel
(per tensor for the logits, whose argmax must compare channels on one scale); every
requantization factor becomes a fixed-point (m, s) (referee.quantize.fixed_point). The
non-linearities become tables built from the float functions (GELU for ``lut``, exp for
``softmax``), LayerNorm becomes ``norm`` with gamma/beta folded as protocol 5.6 describes.
``IntegerModel.validate`` then checks every range, including the int32 accumulator bound, and
raises ModelCompileError naming the op and channel that breaks one.

The op list per block follows protocol 5.9 (seven attention ops whatever the heads and batch).
An encoder with a pad id (``TransformerConfig.pad_id``) also gets 5.9's key-mask slot from the
ids, a ``keymask`` softmax in every layer and masked sum pooling; its scales are then
calibrated on the real tokens alone and none depends on the sequence length (the position
table's comes from the whole table), so the same weights compiled at two lengths give the same
bits for a sentence that fits both.

16-bit activations (protocol 5.0, flag ``i16``) go where the fidelity study of
docs/benchmarks.md found the loss, in four groups (``WIDE16``, all on by default):

* ``residual``: the residual stream: ``embed`` (its tables int16 too), every ``add``, the linears that feed an add
  (attention output, FFN2) and the pooling;
* ``gelu``: GELU's ``lut`` writes int16 (a table of int16 entries), so FFN2 reads int16;
* ``softmax``: the probabilities at 15 bits (scale 1/32767); ``P·V`` reads them;
* ``norm``: every ``norm`` output (in a post-LN encoder the residual itself; Q, K, V and FFN1
  read them), the final L2 normalisation included.

What a table reads stays int8 (the scores into ``softmax``, FFN1's output into GELU's table),
as do Q, K and V (``P·V`` takes at most one int16 operand). A 16-bit slot's scale is
max|x| / 32767. A linear reading int16 must meet the accumulator bound at 2^15
(``2^15 · Σ|W[c]| + |b[c]| < 2^31``, ``IntegerModel.validate`` refuses the model naming the
op and channel otherwise); MiniLM's largest is FFN2's, at 0.79 of 2^31.
"""

import math

import torch
import torch.nn.functional as F

from . import ops as k
from .compile_builder import _Builder, _fixed_point_common, _quant, _scale, _scale16
from .errors import ModelCompileError
from .model import IntegerModel, LinearOp
from .quantize import fixed_point
from .transformer import FloatTransformer

WIDE16 = frozenset({"residual", "gelu", "softmax", "norm"})  # the groups that may be 16-bit (module doc)


def key_mask(b: _Builder, cfg) -> int:
    """5.9's mask slot [B, T] from the ids (slot 0): an embed of width 1 whose token table is 1
    but for the pad id's 0 (ids outside the vocabulary embed as 0 too), with zero positions and
    (m_a, m_b, s) = (2, 1, 1), so y = (2 v + 1) >> 1 = v; then a transpose of [B T, 1] to [B, T]."""
    table = torch.ones(cfg.vocab, 1, dtype=torch.int8)
    table[cfg.pad_id] = 0
    ids = b.add(k.EmbedOp(0, table, torch.zeros(cfg.seq, 1, dtype=torch.int8), 2, 1, 1), 1.0)
    return b.add(k.TransposeOp(ids, 1, cfg.seq, 1), 1.0)


def calibrate(model: FloatTransformer, tokens: torch.Tensor) -> dict[str, float]:
    """max|x| / 127 of every recorded activation of the float model on ``tokens`` (B, T); with
    a pad id, over the real tokens' rows only (and their keys, for the attention scores): a
    pad row is never read by a real one, and its values must not set a scale."""
    record: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        model(tokens, record=record)
    pad = model.cfg.pad_id
    if pad is None:
        return {name: _scale(t) for name, t in record.items()}
    real = tokens != pad  # (B, T)
    b, t = real.shape
    stats = {}
    for name, x in record.items():
        if name.endswith("scores"):    # (B, H, T, T): real queries and real keys
            x = x.masked_fill(~(real[:, None, :, None] & real[:, None, None, :]), 0.0)
        elif x.dim() == 3 and x.shape[:2] == (b, t):  # (B, T, width): a row per token
            x = x[real]
        stats[name] = _scale(x)        # "pool" (B, d) is over real tokens already
    return stats


def compile_transformer(model: FloatTransformer, tokens: torch.Tensor, name: str = "transformer",
                        wide16=WIDE16) -> IntegerModel:
    """The exact integer model of ``model``, calibrated on ``tokens`` (int (B, T) in [0, vocab));
    ``wide16`` names the groups of activations written at 16 bits (module doc; empty: all int8)."""
    cfg = model.cfg
    if tokens.dim() != 2 or tokens.shape[1] != cfg.seq:
        raise ModelCompileError(f"calibration tokens must have shape (batch, {cfg.seq}), got {tuple(tokens.shape)}")
    if not set(wide16) <= WIDE16:
        raise ModelCompileError(f"wide16 names {sorted(set(wide16) - WIDE16)}; the groups are {sorted(WIDE16)}")
    stats = calibrate(model, tokens)
    b = _Builder(stats, wide16)
    d, h, t, dh = cfg.width, cfg.heads, cfg.seq, cfg.head_width
    causal = cfg.kind == "decoder"

    res16 = b.i16("residual")
    tok, pos = model.tok.detach().double(), model.pos.detach().double()
    # Both scales from the whole tables (every position row, not the first T): no scale
    # depends on the sequence length.
    bits = 16 if res16 else 8  # with i16 the tables are int16 too (5.7): max|E| / 32767
    s_tok, s_pos, s_e = _scale(tok), _scale(pos), b.out_scale("embed", res16)
    if res16:
        s_tok, s_pos = _scale16(s_tok), _scale16(s_pos)
    (ma, mb), s = _fixed_point_common(s_tok / s_e, s_pos / s_e)
    masked = cfg.pad_id is not None
    mask = key_mask(b, cfg) if masked else 0
    x = b.add(k.EmbedOp(0, _quant(tok, s_tok, bits), _quant(pos[:t], s_pos, bits), ma, mb, s, i16=res16), s_e,
              "embed")
    if cfg.kind == "encoder":
        x = b.norm(x, model.ln_e, "ln_e")

    for i, block in enumerate(model.blocks):
        p = f"b{i}."
        inp = b.norm(x, block.ln1, p + "ln1") if causal else x
        q, kk, v = (b.linear(inp, getattr(block, n), p + n) for n in ("q", "k", "v"))
        s_sc = stats[p + "scores"]
        m, s = fixed_point(b.scales[q] * b.scales[kk] / (math.sqrt(dh) * s_sc))
        scores = b.add(k.MatmulOp(q, kk, d, h * t, h, t, m, s, causal=causal), s_sc, p + "scores")
        exp = torch.round((1 << 23) * torch.exp(-torch.arange(256, dtype=torch.float64) * s_sc)).to(torch.int32)
        soft = k.SoftmaxOp(scores, h * t, h, t, exp, causal=causal, keymask=masked, input_b=mask,
                           i16=b.i16("softmax"))
        probs = b.add(soft, 1.0 / soft.one)
        v_t = b.add(k.TransposeOp(v, d, h * t, h), b.scales[v])
        m, s = fixed_point(b.scales[v] / (soft.one * stats[p + "att"]))
        att = b.add(k.MatmulOp(probs, v_t, h * t, d, h, t, m, s), stats[p + "att"], p + "att")
        attn_out = b.linear(att, block.o, p + "attn_out", i16=res16)
        x = b.residual(x, attn_out, p + "res1")
        if not causal:
            x = b.norm(x, block.ln1, p + "ln1")
        inp = b.norm(x, block.ln2, p + "ln2") if causal else x
        hidden = b.lut(b.linear(inp, block.fc1, p + "fc1"), F.gelu, p + "gelu", "gelu")
        x = b.residual(x, b.linear(hidden, block.fc2, p + "mlp_out", i16=res16), p + "res2")
        if not causal:
            x = b.norm(x, block.ln2, p + "ln2")

    if causal:
        x = b.norm(x, model.ln_e, "ln_f")
        x = b.linear(x, model.head, "logits", wide=True)
        b.add(k.ArgmaxOp(x, cfg.vocab), 1.0)
    elif masked:
        # Masked sum pooling (5.9): matmul(mask [G, T], transpose(h) [G d, T]) = [G, d], the sum
        # over the real tokens at the float masked sum's scale; the L2 norm follows.
        x_t = b.add(k.TransposeOp(x, d, t, 1), b.scales[x])
        s_pool = b.out_scale("pool", res16)
        m, s = fixed_point(b.scales[x] / s_pool)
        pooled = b.add(k.MatmulOp(mask, x_t, t, d, 1, 1, m, s, i16=res16), s_pool, "pool")
        b.norm(pooled, None, None)
    else:
        # Mean pooling as protocol 5.9: transpose, a linear of ones (1/T in m, s), transpose back.
        x_t = b.add(k.TransposeOp(x, d, t, 1), b.scales[x])
        s_pool = b.out_scale("pool", res16)
        m, s = fixed_point(b.scales[x] / (t * s_pool))
        ones = LinearOp(x_t, torch.ones(1, t, dtype=torch.int8), torch.zeros(1, dtype=torch.int32),
                        torch.tensor([m], dtype=torch.int32), torch.tensor([s], dtype=torch.int32), relu=False,
                        i16=res16)
        pooled = b.add(ones, s_pool)
        pooled = b.add(k.TransposeOp(pooled, 1, d, 1), s_pool)
        b.norm(pooled, None, None)
    graph = IntegerModel(cfg.seq, b.ops, input_dtype=1, name=name,
                       meta={"config": cfg, "output_scale": b.scales[len(b.ops)],
                             "slot_scales": b.scales, "slot_names": b.names, "wide16": sorted(b.wide16)})
    return graph.validate()
