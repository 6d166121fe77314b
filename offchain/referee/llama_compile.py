"""Compile a float Llama (referee.llama.FloatLlama) into an exact integer token decoder.

The recipe of referee.transformer_compile (static post-training quantization through the shared
referee.compile_builder): one symmetric scale per activation slot, calibrated as max|x| over
the float model's activations on calibration token ids (B, T); per-output-channel int8 weights
(one scale per tensor for the logits, which an argmax compares); fixed-point (m, s) for every
requantization; tables for the non-linearities (SiLU for ``lut``, exp for ``softmax``).

Outliers: SmoothQuant (Xiao et al. 2023), on by default (``smooth``). In large pretrained models
RMSNorm's output has a few channels far larger than the rest, and one scale per slot spends its
range on them (docs/benchmarks.md: neutral on models/moby-llama, which has none; decisive once
such channels are put in). Per input
channel j of the linears after a norm (ln1 -> q, k, v; ln2 -> gate, up), s_j = max|X_j|^alpha /
max|W_j|^(1 - alpha); the norm's gamma is divided by s and the linears' columns multiplied by
it, which leaves the float function unchanged and moves part of the range into the weights'
per-channel scales.

The op list, per layer (the model's input is int32 ids [B, T], T the compile-time context):

    norm(rms) -> q, k, v linears -> rope(q) (H heads), rope(k) (H_kv heads)
    -> matmul(q, k, causal, kv_heads) (1/sqrt(d_h) folded into m, s) -> softmax(causal)
    -> transpose(v, H_kv heads) -> matmul(P, v', kv_heads) -> o linear -> add
    norm(rms) -> gate, up linears -> lut(SiLU) on gate -> mul(silu, up) -> down linear -> add

then the final norm(rms) and the head: a wide linear and argmax ([T, 1], the greedy next token
after each position), or for a vocabulary above HEAD_CHUNK the split head of protocol 5.14
(chunked wide linears on one weight scale, then argmax pair / carry). The rotation table holds
round(2^14 cos), round(2^14 sin) of HF's angles for the T positions; the embed op's position
table is zero (Llama has none).

16-bit activations (``wide16``, groups of LLAMA_WIDE16; DEFAULT_WIDE16 by default): the
residual stream (``residual``: embed, o and down outputs, every add), the norm outputs
(``norm``), the softmax probabilities (``softmax``, only where T <= 511: P.V then reads one int16
operand with K = T), the SiLU table (``silu``), the up projection (``up``) and the product
(``prod``): the SwiGLU groups are worth about two points of greedy agreement. Two more groups
exist and are off by default, as they measured no better (docs/benchmarks.md): ``att`` (P.V's
output, which o reads) and ``q`` (q and its rotation; the scores matmul then reads one int16
operand with K = d_h). What a table reads stays int8 (the scores, the gate), and so do k and v
(each meets an int16 operand in a matmul). A linear reading int16
must meet the accumulator bound at 2^15; where its quantized weights would not, its input is
written int8 instead (``_fits16``), so any width compiles. The residual stream stays int16 at
any width (its norms are RMSNorms, which read int16 rows of any width: protocol 5.6); the
probabilities are int8 above T = 511.
"""

import copy
import math

import torch
import torch.nn.functional as F

from . import ops as k
from .compile_builder import _Builder, _quant, _scale, _scale16
from .errors import ModelCompileError
from .llama import FloatLlama, rope_tables
from .model import INT32_MAX, MATMUL_I16_MAX_K, IntegerModel
from .quantize import fixed_point

HEAD_CHUNK = k.HEAD_CHUNK     # columns per head chunk (protocol 5.14: 32 KiB int32 rows)
ROPE_ONE = k.ROPE_ONE         # the rotation table's 1.0 (2^14)
LLAMA_WIDE16 = frozenset({"residual", "norm", "softmax", "silu", "up", "prod", "att", "q"})
DEFAULT_WIDE16 = LLAMA_WIDE16 - {"att", "q"}  # measured: those two buy nothing (docs/benchmarks.md)
SMOOTH_ALPHA = 0.5


def smooth(model: FloatLlama, tokens: torch.Tensor, alpha: float = SMOOTH_ALPHA) -> FloatLlama:
    """SmoothQuant (module doc): a copy of ``model`` computing the same function, its ln1 -> q, k, v
    and ln2 -> gate, up input channels rescaled by s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)."""
    out = copy.deepcopy(model)
    record: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        out(tokens, record=record)
        for i, layer in enumerate(out.layers):
            pairs = (("ln1", layer.input_layernorm, (layer.q_proj, layer.k_proj, layer.v_proj)),
                     ("ln2", layer.post_attention_layernorm, (layer.gate_proj, layer.up_proj)))
            for name, norm, linears in pairs:
                x_max = record[f"b{i}.{name}"].double().abs().flatten(0, -2).amax(dim=0).clamp(min=1e-5)
                w_max = torch.cat([lin.weight.double() for lin in linears]).abs().amax(dim=0).clamp(min=1e-5)
                s = (x_max ** alpha / w_max ** (1 - alpha)).clamp(min=1e-5)
                norm.weight.copy_((norm.weight.double() / s).float())
                for lin in linears:
                    lin.weight.copy_((lin.weight.double() * s[None, :]).float())
    return out


def calibrate(model: FloatLlama, tokens: torch.Tensor) -> dict[str, float]:
    """max|x| / 127 of every recorded activation on ``tokens`` (B, T); the scores over the causal
    (query >= key) entries alone: a masked score is never read, its value must not set a scale."""
    record: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        model(tokens, record=record)
    t = tokens.shape[1]
    future = torch.ones(t, t, dtype=torch.bool).triu(1)
    return {name: _scale(x.masked_fill(future, 0.0) if name.endswith("scores") else x) for name, x in record.items()}


def _fits16(*weights: torch.Tensor, per_tensor: bool = False) -> bool:
    """Whether linears of these float weights (int8 per channel, or per tensor for the head, as
    builder.linear_of quantizes) meet the accumulator bound with an int16 input:
    2^15 * sum_j |W[c, j]| < 2^31 for every channel."""
    for w in weights:
        w = w.detach().double()
        s_w = _scale(w) if per_tensor else w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
        wq = torch.round(w / s_w).abs().sum(dim=1)
        if float(wq.max()) * (1 << 15) > INT32_MAX:
            return False
    return True


def rope_table(model: FloatLlama, t: int) -> torch.Tensor:
    """The int16 [T, d_h] rotation table: row t = round(2^14 cos(t theta_i)) then round(2^14 sin(t theta_i))."""
    cos, sin = rope_tables(model.cfg, t)
    return torch.round(torch.cat([cos, sin], dim=1) * ROPE_ONE).to(torch.int16)


class _LlamaBuilder(_Builder):
    """The builder with the Llama kinds: rope, grouped matmul, mul."""

    def rope(self, x: int, heads: int, table: torch.Tensor, out: str) -> int:
        i16 = self.ops[x - 1].i16  # rope writes what it reads: int8 or int16
        s_y = self.out_scale(out, i16)
        m, s = fixed_point(self.scales[x] / (ROPE_ONE * s_y))
        # A table of its own per op: modelfile saves each op's tensors, and safetensors refuses shared memory.
        return self.add(k.RopeOp(x, heads, table.clone(), m, s, i16=i16), s_y, out)

    def mul(self, a: int, b: int, out: str, i16: bool) -> int:
        s_y = self.out_scale(out, i16)
        m, s = fixed_point(self.scales[a] * self.scales[b] / s_y)
        return self.add(k.MulOp(a, b, self.ops[a - 1].out_cols, m, s, i16=i16), s_y, out)


def _head(b: _LlamaBuilder, x: int, weight: torch.Tensor) -> list[int]:
    """The wide logits slot(s) and the argmax: one linear for a vocabulary <= HEAD_CHUNK, else
    chunks on one weight scale (their logits compare), argmax(pair) then argmax(carry) per chunk."""
    w = weight.detach().double()
    vocab, s_w = w.shape[0], _scale(w)
    starts = list(range(0, vocab, HEAD_CHUNK))
    logits = [b.linear_of(x, w[o:o + HEAD_CHUNK], None, "logits", wide=True, weight_scale=s_w) for o in starts]
    if len(logits) == 1:
        b.add(k.ArgmaxOp(logits[0], vocab), 1.0)
        return logits
    prev = b.add(k.ArgmaxOp(logits[0], HEAD_CHUNK, pair=True), 1.0)
    for i, (slot, o) in enumerate(zip(logits[1:], starts[1:]), start=2):
        prev = b.add(k.ArgmaxOp(slot, min(HEAD_CHUNK, vocab - o), pair=i < len(starts), carry=True,
                                input_b=prev, offset=o), 1.0)
    return logits


def compile_llama(model: FloatLlama, tokens: torch.Tensor, name: str = "llama", wide16=DEFAULT_WIDE16,
                  smooth_alpha: float | None = SMOOTH_ALPHA) -> IntegerModel:
    """The exact integer model of ``model`` at context T = tokens.shape[1], calibrated on ``tokens``
    (int (B, T) ids in [0, vocab)); ``wide16``: the 16-bit groups (LLAMA_WIDE16);
    ``smooth_alpha``: SmoothQuant's alpha, None for none."""
    cfg = model.cfg
    if tokens.dim() != 2 or not 1 <= tokens.shape[1] <= cfg.max_position_embeddings:
        raise ModelCompileError(f"calibration tokens must have shape (batch, T), 1 <= T <= "
                                f"{cfg.max_position_embeddings}; got {tuple(tokens.shape)}")
    if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < cfg.vocab_size:
        raise ModelCompileError(f"calibration token ids must lie in [0, {cfg.vocab_size})")
    if not set(wide16) <= LLAMA_WIDE16:
        raise ModelCompileError(f"wide16 names {sorted(set(wide16) - LLAMA_WIDE16)}; the groups are "
                                f"{sorted(LLAMA_WIDE16)}")
    tokens = tokens.long()
    t, d, h, hk, dh = tokens.shape[1], cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    work = smooth(model, tokens, smooth_alpha) if smooth_alpha is not None else model
    stats = calibrate(work, tokens)
    wide16 = set(wide16)
    if t > MATMUL_I16_MAX_K:  # P.V reads P with K = T: int16 probabilities need T <= 511
        wide16.discard("softmax")
    b = _LlamaBuilder(stats, wide16)
    res16, norm16 = b.i16("residual"), b.i16("norm")
    table = rope_table(work, t)

    tok = work.embed_tokens.weight.detach().double()
    s_tok = _scale16(_scale(tok)) if res16 else _scale(tok)
    m, s = fixed_point(1.0)  # the stream starts on the table's own scale: no calibration needed
    x = b.add(k.EmbedOp(0, _quant(tok, s_tok, 16 if res16 else 8), torch.zeros(t, d, dtype=torch.int16 if res16
                        else torch.int8), m, 1, s, i16=res16), s_tok, "embed")
    for i, layer in enumerate(work.layers):
        p = f"b{i}."
        wide = norm16 and _fits16(layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight)
        inp = b.norm(x, layer.input_layernorm, p + "ln1", rms=True, i16=wide)
        q = b.linear(inp, layer.q_proj, p + "q", i16=b.i16("q") and dh <= MATMUL_I16_MAX_K)
        kk, v = (b.linear(inp, getattr(layer, n + "_proj"), p + n) for n in ("k", "v"))
        q, kk = b.rope(q, h, table, p + "q_rot"), b.rope(kk, hk, table, p + "k_rot")
        s_sc = stats[p + "scores"]
        m, s = fixed_point(b.scales[q] * b.scales[kk] / (math.sqrt(dh) * s_sc))
        scores = b.add(k.MatmulOp(q, kk, h * dh, h * t, h, t, m, s, causal=True, kv_heads=hk), s_sc, p + "scores")
        exp = torch.round(k.EXP_MAX * torch.exp(-torch.arange(256, dtype=torch.float64) * s_sc)).to(torch.int32)
        soft = k.SoftmaxOp(scores, h * t, h, t, exp, causal=True, i16=b.i16("softmax"))
        probs = b.add(soft, 1.0 / soft.one)
        v_t = b.add(k.TransposeOp(v, hk * dh, hk * t, hk), b.scales[v])
        att16 = b.i16("att") and _fits16(layer.o_proj.weight)
        s_att = b.out_scale(p + "att", att16)
        m, s = fixed_point(b.scales[v] / (soft.one * s_att))
        att = b.add(k.MatmulOp(probs, v_t, h * t, h * dh, h, t, m, s, kv_heads=hk, i16=att16), s_att, p + "att")
        x = b.residual(x, b.linear(att, layer.o_proj, p + "attn_out", i16=res16), p + "res1")

        wide = norm16 and _fits16(layer.gate_proj.weight, layer.up_proj.weight)
        inp = b.norm(x, layer.post_attention_layernorm, p + "ln2", rms=True, i16=wide)
        gate = b.linear(inp, layer.gate_proj, p + "gate")
        silu = b.lut(gate, F.silu, p + "silu", "silu")
        up = b.linear(inp, layer.up_proj, p + "up", i16=b.i16("up"))
        prod16 = b.i16("prod") and _fits16(layer.down_proj.weight)
        prod = b.mul(silu, up, p + "prod", prod16)
        x = b.residual(x, b.linear(prod, layer.down_proj, p + "mlp_out", i16=res16), p + "res2")

    x = b.norm(x, work.norm, "ln_f", rms=True, i16=norm16 and _fits16(work.lm_head.weight, per_tensor=True))
    logits = _head(b, x, work.lm_head.weight)
    meta = {"config": cfg.to_hf(), "logits_slots": logits, "logits_scale": b.scales[logits[0]],
            "slot_scales": b.scales, "slot_names": b.names, "wide16": sorted(b.wide16),
            "smoothquant_alpha": smooth_alpha, "context": t}
    return IntegerModel(t, b.ops, input_dtype=1, name=name, meta=meta).validate()


def exact_logits(model: IntegerModel, slots: list[torch.Tensor]) -> torch.Tensor:
    """The exact model's logits in float64 (rows, vocab): its wide int32 logits slot(s), concatenated,
    times their one scale."""
    parts = [slots[s].double() for s in model.meta["logits_slots"]]
    return torch.cat(parts, dim=1) * model.meta["logits_scale"]


def greedy(model: IntegerModel, slots: list[torch.Tensor]) -> torch.Tensor:
    """The greedy next token per row (int64), the model's last slot: argmax [rows, 1]."""
    return slots[-1][:, -1].long()



def windows(ids: torch.Tensor, t: int, count: int | None = None) -> torch.Tensor:
    """Consecutive non-overlapping windows (N, t + 1) of a 1-D id sequence (each predicts its own
    t next ids from its own t inputs), the first ``count`` of them, or all."""
    n = (len(ids) - 1) // t
    n = n if count is None else min(n, count)
    return ids[torch.arange(n)[:, None] * t + torch.arange(t + 1)]


def fidelity(model: FloatLlama, compiled: IntegerModel, rows: torch.Tensor, batch: int = 32) -> dict:
    """Float against exact on ``rows`` (N, T + 1) ids (``windows``): the validation loss (nats per
    token) and perplexity of each (exact logits: the wide int32 logits slot(s) times their scale,
    softmax in float64) and the share of positions whose exact greedy token (the argmax slot)
    equals the float model's argmax."""
    from .executor import Executor

    ex = Executor(compiled, device="cpu")
    t = compiled.input_cols
    nll_f = nll_x = agree = 0.0
    count = 0
    for lo in range(0, len(rows), batch):
        chunk = rows[lo:lo + batch]
        x, target = chunk[:, :t], chunk[:, 1:t + 1].reshape(-1)
        with torch.no_grad():
            lf = model(x.long()).double().reshape(-1, model.cfg.vocab_size)
        slots = ex.run(x.to(torch.int32).contiguous())
        lx = exact_logits(compiled, slots)
        nll_f += float(F.cross_entropy(lf, target, reduction="sum"))
        nll_x += float(F.cross_entropy(lx, target, reduction="sum"))
        agree += float((greedy(compiled, slots) == lf.argmax(dim=1)).sum())
        count += target.numel()
    return {"positions": count, "float_loss": nll_f / count, "exact_loss": nll_x / count,
            "float_ppl": math.exp(nll_f / count), "exact_ppl": math.exp(nll_x / count),
            "agreement": agree / count}
