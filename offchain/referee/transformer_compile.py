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
from .errors import ModelCompileError
from .model import INT32_MAX, IntegerModel, LinearOp
from .quantize import fixed_point
from .transformer import FloatTransformer

INT8_MAX = 127
INT16_MAX = 32767
WIDE16 = frozenset({"residual", "gelu", "softmax", "norm"})  # the groups that may be 16-bit (module doc)
TOP = {8: INT8_MAX, 16: INT16_MAX}


def _scale(t: torch.Tensor) -> float:
    peak = float(t.abs().max()) if t.numel() else 0.0
    return peak / INT8_MAX if peak > 0 else 1.0


def _scale16(scale8: float) -> float:
    """A calibrated int8 scale (max|x| / 127) as the 16-bit one, max|x| / 32767."""
    return scale8 * INT8_MAX / INT16_MAX


def _fixed_point_common(*reals: float) -> tuple[list[int], int]:
    """Multipliers sharing one shift: the largest real sets the shift (21-bit multiplier)."""
    m_big, s = fixed_point(max(reals))
    return [max(1, min(INT32_MAX, round(r * (1 << s)))) for r in reals], s


def _quant(t: torch.Tensor, scale, bits: int = 8) -> torch.Tensor:
    if bits == 16:
        return torch.round(t / scale).clamp(-INT16_MAX - 1, INT16_MAX).to(torch.int16)
    return torch.round(t / scale).clamp(-128, 127).to(torch.int8)


class _Builder:
    """Appends ops, tracking each slot's float scale."""

    def __init__(self, stats: dict[str, float], wide16=WIDE16):
        self.ops, self.scales, self.stats, self.names = [], {}, stats, {}
        self.wide16 = frozenset(wide16)

    def i16(self, group: str) -> bool:
        """Whether the ops of ``group`` (WIDE16) write int16."""
        return group in self.wide16

    def out_scale(self, name: str, i16: bool) -> float:
        """The calibrated scale of activation ``name`` at 8 or 16 bits."""
        return _scale16(self.stats[name]) if i16 else self.stats[name]

    def add(self, op, scale: float, name: str | None = None) -> int:
        """Append op; ``name`` is the float activation its slot approximates (kept in meta)."""
        self.ops.append(op)
        self.scales[len(self.ops)] = scale
        if name:
            self.names[len(self.ops)] = name
        return len(self.ops)

    def linear(self, x: int, layer: torch.nn.Linear, out: str, wide: bool = False, i16: bool = False) -> int:
        w = layer.weight.detach().double()
        s_x = self.scales[x]
        if wide:  # one weight scale: the int32 logits of every channel share the scale s_x * s_w
            s_w = torch.full((w.shape[0],), _scale(w), dtype=torch.float64)
        else:
            s_w = w.abs().amax(dim=1).clamp(min=1e-12) / INT8_MAX
        bias = layer.bias.detach().double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        wq = _quant(w, s_w[:, None])
        bq = torch.round(bias / (s_x * s_w)).clamp(-INT32_MAX, INT32_MAX).to(torch.int32)
        if wide:
            pairs = [(1, 1)] * w.shape[0]
            out_scale = s_x * float(s_w[0])
        else:
            out_scale = self.out_scale(out, i16)
            pairs = [fixed_point(float(s_x * s_w[c] / out_scale)) for c in range(w.shape[0])]
        op = LinearOp(x, wq, bq, torch.tensor([m for m, _ in pairs], dtype=torch.int32),
                      torch.tensor([s for _, s in pairs], dtype=torch.int32), relu=False, wide=wide, i16=i16)
        return self.add(op, out_scale, out)

    def norm(self, x: int, ln: torch.nn.LayerNorm | None, out: str | None, rms: bool = False) -> int:
        """Protocol 5.6: q ~ 2^15 * xhat / sqrt(n); acc = q * G + B; y = rq(acc, m, s) ~ (gamma xhat + beta) / s_y."""
        n = self.ops[x - 1].out_cols if x else None
        i16 = self.i16("norm")
        if ln is None:  # L2 normalisation to unit vectors at scale 1/top: y ~ top * x / |x| = top q / 2^15
            top = TOP[16 if i16 else 8]
            m, s = fixed_point(top / (1 << k.NORM_FRAC))
            op = k.NormOp(x, torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64), m, s, rms=True,
                          i16=i16)
            return self.add(op, 1.0 / top)
        gamma, beta = ln.weight.detach().double(), ln.bias.detach().double()
        s_y = self.out_scale(out, i16)
        # g = m / 2^s just large enough that 2^15 |G| + |B| stays below 2^31 (a 5% margin for rounding).
        need = float((gamma.abs() * math.sqrt(n) + beta.abs()).max()) / (s_y * INT32_MAX) * 1.05
        m, s = fixed_point(need)
        g = m / (1 << s)
        G = torch.round(gamma * math.sqrt(n) / ((1 << k.NORM_FRAC) * s_y * g)).to(torch.int64)
        B = torch.round(beta / (s_y * g)).to(torch.int64)
        return self.add(k.NormOp(x, G, B, m, s, rms=rms, i16=i16), s_y, out)

    def residual(self, a: int, b: int, out: str) -> int:
        i16 = self.i16("residual")
        s_y = self.out_scale(out, i16)
        (ma, mb), s = _fixed_point_common(self.scales[a] / s_y, self.scales[b] / s_y)
        return self.add(k.AddOp(a, b, self.ops[a - 1].out_cols, ma, mb, s, i16=i16), s_y, out)

    def gelu(self, x: int, out: str) -> int:
        i16 = self.i16("gelu")
        s_x, s_y = self.scales[x], self.out_scale(out, i16)
        v = torch.arange(-128, 128, dtype=torch.float64) * s_x
        table = _quant(F.gelu(v), s_y, 16 if i16 else 8)
        return self.add(k.LutOp(x, self.ops[x - 1].out_cols, table, i16=i16), s_y, out)


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
        hidden = b.gelu(b.linear(inp, block.fc1, p + "fc1"), p + "gelu")
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
