"""The op builder the float-to-integer compilers share (referee.transformer_compile for the
GPT-2 and BERT shapes, referee.llama_compile for Llama).

Static post-training quantization: every activation slot gets one symmetric scale, calibrated
as max|x| / 127 (int8) or max|x| / 32767 (int16, protocol 5.0's ``i16``) over the float
model's activations; weights get one scale per output channel, or one per tensor for a wide
(int32 logits) linear whose channels an argmax compares; every requantization factor becomes
a fixed-point (m, s) (referee.quantize.fixed_point). ``_Builder`` appends ops and remembers
each slot's float scale, so each op's (m, s) follows from its inputs' scales and its own.
"""

import math

import torch

from . import ops as k
from .model import INT32_MAX, LinearOp
from .quantize import fixed_point

INT8_MAX = 127
INT16_MAX = 32767
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
    """Appends ops, tracking each slot's float scale. ``stats`` maps an activation's name to its
    calibrated int8 scale; ``wide16`` names the groups of activations written at 16 bits."""

    def __init__(self, stats: dict[str, float], wide16=frozenset()):
        self.ops, self.scales, self.stats, self.names = [], {}, stats, {}
        self.wide16 = frozenset(wide16)

    def i16(self, group: str) -> bool:
        """Whether the ops of ``group`` write int16."""
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
        bias = layer.bias.detach().double() if layer.bias is not None else None
        return self.linear_of(x, layer.weight.detach().double(), bias, out, wide=wide, i16=i16)

    def linear_of(self, x: int, w: torch.Tensor, bias: torch.Tensor | None, out: str, wide: bool = False,
                  i16: bool = False, weight_scale: float | None = None) -> int:
        """A linear op of the float weight ``w`` (n, k) and ``bias`` (n,) or None. Wide: one weight
        scale, ``weight_scale`` if given (chunks of one head share it), else max|w| / 127."""
        s_x = self.scales[x]
        if wide:  # one weight scale: the int32 logits of every channel share the scale s_x * s_w
            s_w = torch.full((w.shape[0],), weight_scale or _scale(w), dtype=torch.float64)
        else:
            s_w = w.abs().amax(dim=1).clamp(min=1e-12) / INT8_MAX
        bias = bias if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
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

    def norm(self, x: int, ln: torch.nn.Module | None, out: str | None, rms: bool = False,
             i16: bool | None = None) -> int:
        """Protocol 5.6: q ~ 2^15 * xhat / sqrt(n); acc = q * G + B; y = rq(acc, m, s) ~ (gamma xhat + beta) / s_y.
        ``ln`` has ``weight`` (gamma) and a ``bias`` (beta) that may be absent or None (RMSNorm);
        ``i16``: the output's width, by default the group ``norm``'s."""
        n = self.ops[x - 1].out_cols if x else None
        i16 = self.i16("norm") if i16 is None else i16
        if ln is None:  # L2 normalisation to unit vectors at scale 1/top: y ~ top * x / |x| = top q / 2^15
            top = TOP[16 if i16 else 8]
            m, s = fixed_point(top / (1 << k.NORM_FRAC))
            op = k.NormOp(x, torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64), m, s, rms=True,
                          i16=i16)
            return self.add(op, 1.0 / top)
        gamma = ln.weight.detach().double()
        bias = getattr(ln, "bias", None)
        beta = bias.detach().double() if bias is not None else torch.zeros_like(gamma)
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

    def lut(self, x: int, fn, out: str, group: str) -> int:
        """A ``lut`` of the float function ``fn`` on the int8 slot ``x`` (int16 entries if ``group`` is wide)."""
        i16 = self.i16(group)
        s_x, s_y = self.scales[x], self.out_scale(out, i16)
        v = torch.arange(-128, 128, dtype=torch.float64) * s_x
        table = _quant(fn(v), s_y, 16 if i16 else 8)
        return self.add(k.LutOp(x, self.ops[x - 1].out_cols, table, i16=i16), s_y, out)
