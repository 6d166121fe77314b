"""Exact kernels for the transformer kinds of protocol 5.1-5.8 and 5.12-5.14, on CPU or CUDA.

Every kernel is bit-identical to the spec (tests compare each with the independent
pure-integer reference). Where a float is used, the comment next to it says why it is exact:
int8 values and their products are exact in float32, so float32 GEMMs are exact while every
partial sum stays within 2^24 (here K * 2^14 <= 2^24, i.e. K <= 1024 per block); a float64
operation on integers is exact while every intermediate stays below 2^53; and the float64
quotient of two integers a, b below 2^53 with b > 0 and |a / b| < 2^e floors to floor(a / b)
whenever b * 2^e <= 2^52: an integer quotient is exact, and a non-integer one lies at least
1 / b from every integer, more than the rounding error 2^(e - 53) (the "quotient rule" cited
below). Everything else is int64 with the protocol's arithmetic shift.

Int16 slots (protocol 5.0, flag ``i16``): a kernel is prepared with the dtypes of its inputs,
so each path's bound is checked for the values it can meet (|x| <= 2^15 instead of 128), and
writes int16 where its op has ``i16`` (``rq16``: the clamp to [-2^15, 2^15 - 1]).
"""

import torch

from . import commitments as cm
from . import ops as k
from .requant_f64 import FLOAT64_EXACT, fits, requant_scalar_

FLOAT32_EXACT_K = 1024  # K * 128 * 128 <= 2^24
INT8 = cm.DTYPE_INT8
ABS_MAX = cm.DTYPE_ABS_MAX  # dtype code -> the largest |value| (128, 2^15)
SPAN = {cm.DTYPE_INT8: 255, cm.DTYPE_INT16: 65535}  # max - min of a dtype: |n x_c - sum x| <= (n - 1) span


def bits_of(op) -> int:
    """The output width of an op that requantizes: 16 with flag i16, else 8."""
    return 16 if op.i16 else 8


def _clamp(t: torch.Tensor, bits: int = 8) -> torch.Tensor:
    if bits == 16:
        return t.clamp_(-(1 << 15), (1 << 15) - 1).to(torch.int16)
    return t.clamp_(-128, 127).to(torch.int8)


def _rq_(acc: torch.Tensor, m: int, s: int, bits: int = 8) -> torch.Tensor:
    """rq (or rq16) in place on int64: |acc| < 2^31 (or < 2^48 for two-input sums), m < 2^31."""
    return _clamp(acc.mul_(m).add_(1 << (s - 1)).bitwise_right_shift_(s), bits)


def dot_blocks(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact sum_k a[..., i, k] * b[..., j, k] of int8 batches as float64 (|sum| <= K * 2^14 <= 2^28).

    Float32 batched GEMMs over blocks of at most 1024 along k: every partial sum, in any order,
    is an integer of magnitude <= 1024 * 2^14 = 2^24, exact in float32; blocks add in float64.
    """
    kk = a.shape[-1]
    af, bf = a.to(torch.float32), b.to(torch.float32)
    if kk <= FLOAT32_EXACT_K:
        return (af @ bf.transpose(-1, -2)).to(torch.float64)
    acc = None
    for start in range(0, kk, FLOAT32_EXACT_K):
        part = af[..., start:start + FLOAT32_EXACT_K] @ bf[..., start:start + FLOAT32_EXACT_K].transpose(-1, -2)
        acc = part.to(torch.float64) if acc is None else acc.add_(part)
    return acc


def split16(x: torch.Tensor) -> torch.Tensor:
    """An int16 tensor as the int8 stack [hi, lo] (a new leading dim) with x = 256 hi + lo + 128:
    hi = x >> 8 and lo = (x mod 256) - 128 both lie in [-128, 127]."""
    hi = torch.bitwise_right_shift(x, 8).to(torch.int8)
    lo = x.bitwise_and(255).sub_(128).to(torch.int8)
    return torch.stack([hi, lo])


def dot16(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dot_blocks with one int16 operand, exact: its two int8 halves (split16) through the int8
    GEMM, joined as 256 dot(hi) + dot(lo) + 128 sum_k(other) in float64 (every term < 2^40)."""
    if a.dtype == torch.int16:
        acc2 = dot_blocks(split16(a), b.unsqueeze(0))
        other = b.to(torch.float64).sum(dim=-1).unsqueeze(-2)  # (..., 1, j): sum_k B[j, k]
    else:
        acc2 = dot_blocks(a.unsqueeze(0), split16(b))
        other = a.to(torch.float64).sum(dim=-1).unsqueeze(-1)  # (..., i, 1): sum_k A[i, k]
    return acc2[0].mul_(256.0).add_(acc2[1]).add_(other.mul_(128.0))


def seq_rows(rows: int, seq: int, row0: int) -> int:
    """Rows per sequence of a kernel's input: ``seq`` (whole sequences, row0 = 0), or all the
    rows when they are positions row0, row0 + 1, ... of one sequence (referee.decode)."""
    return seq if row0 == 0 and rows % seq == 0 else rows


class Matmul:
    """5.1 on a batch of sequences and heads: one batched GEMM, then rq and the causal mask.

    With an int16 operand (``P·V``) the GEMM is dot16: two int8 GEMMs of its halves, each exact
    as dot_blocks is, joined in float64 (|acc| < K * 2^15 * 2^7 < 2^31, the model's bound, 5.1).
    """

    def __init__(self, op: k.MatmulOp, device: torch.device, in_dtypes=(INT8, INT8)):
        self.op, self.bits = op, bits_of(op)
        kk = op.in_cols // op.heads
        self.wide_in = any(dt != INT8 for dt in in_dtypes)
        worst = kk * ABS_MAX[in_dtypes[0]] * ABS_MAX[in_dtypes[1]]  # |acc| <= K max|A| max|B|
        self.fused = fits(worst, op.multiplier, op.shift, self.bits)  # requant_f64
        self.mask = None

    def _causal_mask(self, ta: int, rb: int, device: torch.device, row0: int = 0) -> torch.Tensor:
        if row0 or ta != self.op.seq:  # rows row0.. of one sequence (decode.py): not cached
            i = torch.arange(row0, row0 + ta, device=device)[:, None]
            return torch.arange(rb, device=device)[None, :] > i
        if self.mask is None or self.mask.device != device:
            i = torch.arange(ta, device=device)[:, None]
            j = torch.arange(rb, device=device)[None, :]
            self.mask = j > i  # (ta, rb): key j after query i
        return self.mask

    def __call__(self, a: torch.Tensor, b: torch.Tensor, row0: int = 0) -> torch.Tensor:
        """``row0``: A's rows are positions row0, row0 + 1, ... of ONE sequence (B whole), as an
        incremental decoder gives them; with row0 = 0 and whole sequences, the batch of 5.1."""
        op, h = self.op, self.op.heads
        ta, kk, rb = seq_rows(a.shape[0], op.seq, row0), op.in_cols // h, op.out_cols // h
        g = a.shape[0] // ta
        hb = op.kv_heads
        a4 = a.reshape(g, ta, h, kk).transpose(1, 2)  # (g, h, ta, K)
        b4 = b.reshape(g, rb, hb, kk).transpose(1, 2)  # (g, hb, rb, K)
        if hb != h:  # grouped (5.14): the H / H_b query heads of kv head hb as one GEMM's rows
            a4 = a4.reshape(g, hb, (h // hb) * ta, kk)
        if self.wide_in:  # two int8 GEMMs joined in float64 (class doc)
            acc = dot16(a4, b4)
        else:
            acc = dot_blocks(a4, b4)               # (g, h, ta, rb), exact integers
        acc = acc.reshape(g, h, ta, rb)
        if self.fused:
            y = requant_scalar_(acc, op.multiplier, op.shift, self.bits)
        else:
            y = _rq_(acc.to(torch.int64), op.multiplier, op.shift, self.bits)
        if op.causal:  # the masked value is the output dtype's minimum (5.1)
            y.masked_fill_(self._causal_mask(ta, rb, y.device, row0), torch.iinfo(y.dtype).min)
        return y.transpose(1, 2).reshape(g * ta, h * rb)


class Transpose:
    """5.2: a view and a copy; out[g*C + c, h*Rin + i] = in[g*Rin + i, h*C + c] (any dtype)."""

    def __init__(self, op: k.TransposeOp, device: torch.device, in_dtypes=(INT8,)):
        self.op = op

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = self.op.heads
        c, r_in = self.op.in_cols // h, self.op.out_cols // h
        g = x.shape[0] // r_in
        return x.reshape(g, r_in, h, c).permute(0, 3, 2, 1).reshape(g * c, h * r_in)


class Add:
    """5.3. Float64 when X_a m_a + X_b m_b + 2^(s-1) + 2^(s+bits-1) < 2^53 (X the inputs'
    largest |value|; requant_f64: every product and sum is an exact float64), else int64
    (|a m_a + b m_b| <= 2^47, + 2^(s-1) < 2^63)."""

    def __init__(self, op: k.AddOp, device: torch.device, in_dtypes=(INT8, INT8)):
        self.op, self.bits = op, bits_of(op)
        s, top = op.shift, 1 << (self.bits - 1)
        worst = ABS_MAX[in_dtypes[0]] * op.multiplier_a + ABS_MAX[in_dtypes[1]] * op.multiplier_b
        self.fused = worst + (1 << (s - 1)) + (top << s) < FLOAT64_EXACT
        self.scale_a, self.scale_b = op.multiplier_a * 2.0 ** -s, op.multiplier_b * 2.0 ** -s
        self.offset = 0.5 + top  # (2^(s-1) + top * 2^s) * 2^-s

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        op = self.op
        if self.fused:
            acc = a.to(torch.float64).mul_(self.scale_a).add_(b.to(torch.float64), alpha=self.scale_b)
            if self.bits == 16:  # [0, 65535] after the offset: truncation is the floor
                return acc.add_(self.offset).clamp_(0.0, 65535.0).to(torch.int32).sub_(1 << 15).to(torch.int16)
            v = acc.add_(self.offset).clamp_(0.0, 255.0)
            return v.to(torch.uint8).bitwise_xor_(0x80).view(torch.int8)
        acc = a.to(torch.int64).mul_(op.multiplier_a).add_(b.to(torch.int64).mul_(op.multiplier_b))
        return _clamp(acc.add_(1 << (op.shift - 1)).bitwise_right_shift_(op.shift), self.bits)


class Lut:
    """5.4: one gather. The table is re-indexed by the byte's unsigned value u = x mod 256;
    an int16 table (i16) gathers int16 values the same way."""

    def __init__(self, op: k.LutOp, device: torch.device, in_dtypes=(INT8,)):
        order = (torch.arange(256) + 128) % 256  # u -> index x + 128 of the signed value x
        self.by_byte = op.table[order].to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # index_select with int32 indices: measured 6x faster than advanced indexing with int64.
        flat = x.reshape(-1).view(torch.uint8).to(torch.int32)
        return self.by_byte.index_select(0, flat).view(x.shape)


class Softmax:
    """5.5: max over valid keys, exp by table, sums and one floor division, all in float64.

    ``E[d] <= 2^23`` and ``S <= L * 2^23 <= 2^37`` (``L <= MAX_COLS = 2^14``) are exact float64
    integers (any summation order); the quotient rule (module doc) makes the float64
    ``one * e / S`` floor exactly (``one`` = 127, or 32767 with i16), and the quotient is
    non-negative, so the integer conversion's truncation is that floor. A key is valid where
    the causal rule and the key mask (one row per sequence) both allow it.
    """

    def __init__(self, op: k.SoftmaxOp, device: torch.device, in_dtypes=(INT8,)):
        self.op = op
        self.table = op.exp_table.to(torch.float64).to(device)
        self.causal = None

    def _causal(self, length: int, device: torch.device) -> torch.Tensor:
        if self.causal is None or self.causal.device != device:
            i = torch.arange(self.op.seq, device=device)  # the row's position in its sequence
            self.causal = torch.arange(length, device=device)[None, None, :] <= i[:, None, None]
        return self.causal  # (T, 1, L)

    def _valid(self, mask: torch.Tensor | None, length: int, device: torch.device, row0: int = 0,
               seq: int | None = None) -> torch.Tensor | None:
        """(G or 1, T or 1, 1, L) bool, broadcast over the rows (G, T) and heads; None: all valid.
        Rows row0 .. row0 + seq - 1 of the sequence (all T by default)."""
        seq = self.op.seq if seq is None else seq
        valid = self._causal(length, device)[None, row0:row0 + seq] if self.op.causal else None
        if mask is not None:
            keys = (mask != 0)[:, None, None, :]  # (G, 1, 1, L): row g masks every row of sequence g
            valid = keys if valid is None else valid & keys
        return valid

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None = None, row0: int = 0) -> torch.Tensor:
        """``row0``: x's rows are positions row0, row0 + 1, ... of ONE sequence (decode.py)."""
        op, rows = self.op, x.shape[0]
        length = op.cols // op.heads
        seq = seq_rows(rows, op.seq, row0)
        x4 = x.reshape(rows // seq, seq, op.heads, length)  # (G, T, H, L)
        valid = self._valid(mask, length, x.device, row0, seq)
        if valid is not None:
            x4 = x4.masked_fill(~valid, -128)  # cannot raise the max: every valid x >= -128
        top = x4.max(dim=3, keepdim=True).values
        # d = M - x is in [0, 255] on every key (masked ones were set to -128 <= M), so the
        # uint8 difference, which wraps modulo 256, is d itself. A segment with no valid key
        # has M = -128 and e = 0 everywhere after the fill below: S = 0, a zero segment.
        d = top.view(torch.uint8) - x4.view(torch.uint8)
        e = self.table.index_select(0, d.reshape(-1).to(torch.int32)).view(d.shape)
        if valid is not None:
            e.masked_fill_(~valid, 0.0)
        total = e.sum(dim=3, keepdim=True).clamp_(min=1.0)  # S = 0 only if every e = 0: 0 / 1 = 0
        # Quotient rule: one * e / S <= one < 2^15 and S <= 2^37, so S * 2^15 <= 2^52.
        q = e.mul_(op.one).div_(total)
        if op.i16:
            return q.to(torch.int16).reshape(rows, op.cols)
        return q.to(torch.uint8).view(torch.int8).reshape(rows, op.cols)


def isqrt_(v: torch.Tensor) -> torch.Tensor:
    """Floor square root of integers in [0, 2^62] (int64) or [0, 2^52) (float64), same dtype back.

    float64(v) is v to 53 bits and sqrt is correctly rounded, so the float root is within far
    less than 1 of the true root (< 2^31): its floor is off by at most one, fixed below with
    exact products (int64: (r+1)^2 <= 2^62 + 2^32 + 1; float64: r < 2^26, so r^2 and
    (r+1)^2 <= 2^52).
    """
    r = v.to(torch.float64).sqrt().floor_().to(v.dtype)
    r = r - (r * r > v).to(v.dtype)
    return r + ((r + 1) * (r + 1) <= v).to(v.dtype)


class Norm:
    """5.6: exact integer centring and variance, floor root, one floor division, rq.

    The statistics are float64 when n (n span)^2 < 2^52 (span = 255 for int8, so n <= 4096;
    65535 for int16, so n <= 101): then |z| <= span n, V = sum z^2 and every partial sum are
    exact float64 integers, and sqrt is correctly rounded (isqrt_ corrects its floor); wider
    rows take them in int64 (an int16 LayerNorm row has n <= 1024, 5.6, so V < n^3 2^32 <= 2^62;
    an int16 RMSNorm row has z = x, so V <= n 2^30 <= 2^44 at n <= MAX_COLS). The
    requantization goes through requant_f64 whenever its bound holds (it does not depend on
    the input: |q gamma + beta| < 2^31), else int64.
    """

    def __init__(self, op: k.NormOp, device: torch.device, in_dtypes=(INT8,)):
        self.op, self.bits = op, bits_of(op)
        worst = int(((op.gamma.abs() << k.NORM_FRAC) + op.beta.abs()).max())
        n = op.cols
        self.stats_f64 = n * (n * SPAN[in_dtypes[0]]) ** 2 < 1 << 52
        self.f64 = fits(worst, op.multiplier, op.shift, self.bits)  # the float64 requantization
        dtype = torch.float64 if self.f64 else torch.int64
        self.gamma, self.beta = op.gamma.to(dtype).to(device), op.beta.to(dtype).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        op = self.op
        z = x.to(torch.float64 if self.stats_f64 else torch.int64)
        if not op.rms:
            total = z.sum(dim=1, keepdim=True)  # before z changes in place
            z = z.mul_(op.cols).sub_(total)     # n * x - sum x, |z| <= span n <= 2^26
        v = (z * z).sum(dim=1, keepdim=True)    # <= 2^62 (int64), < 2^52 (float64 path)
        rho = isqrt_(v)
        # Quotient rule: |z| <= rho, so |z * 2^15 / rho| <= 2^15 < 2^16, and rho < 2^31:
        # rho * 2^16 < 2^47 <= 2^52, so the float64 floor is the exact floor (negative z too);
        # |z * 2^15| < 2^41 is an exact float64 integer.
        q = z.to(torch.float64).mul_(1 << k.NORM_FRAC).div_(rho.clamp(min=1).to(torch.float64)).floor_()
        q.masked_fill_(rho == 0, 0)
        if self.f64:  # |q gamma + beta| < 2^31: exact; then requant_f64 (fits checked above)
            return requant_scalar_(q.mul_(self.gamma).add_(self.beta), op.multiplier, op.shift, self.bits)
        return _rq_(q.to(torch.int64).mul_(self.gamma).add_(self.beta), op.multiplier, op.shift, self.bits)


class Embed:
    """5.7: two gathers, one rescaled sum, one rounding; ids outside [0, V) embed as zero."""

    def __init__(self, op: k.EmbedOp, device: torch.device, in_dtypes=(cm.DTYPE_INT32,)):
        self.op = op
        # Row V is all zero: where ids outside the vocabulary point. Kept int8 or int16 (a GPT
        # vocabulary in int64 would be 4-8x the table); rescaled after the gather.
        zero = torch.zeros(1, op.out_cols, dtype=op.token_table.dtype)
        self.tokens = torch.cat([op.token_table, zero]).to(device)
        self.positions = op.position_table.to(torch.int64).mul_(op.multiplier_b).add_(1 << (op.shift - 1)).to(device)

    def __call__(self, ids: torch.Tensor, row0: int = 0) -> torch.Tensor:
        """``row0``: ids [1, n] are positions row0 .. row0 + n - 1 of one sequence (decode.py)."""
        op = self.op
        v = ids.to(torch.int64)
        v = torch.where((v >= 0) & (v < op.vocab), v, op.vocab)
        positions = self.positions[row0:row0 + ids.shape[1]]  # the whole table for row0 = 0, n = T
        acc = self.tokens[v].to(torch.int64).mul_(op.multiplier_a).add_(positions)  # (B, T, d)
        # |tok * m_a + pos * m_b| <= 2^39 (int8 tables) or 2^47 (int16), plus 2^(s-1) <= 2^61: int64.
        return _clamp(acc.bitwise_right_shift_(op.shift), bits_of(op)).view(-1, op.out_cols)


class Argmax:
    """5.8: the lowest index attaining the row maximum; 5.14: with ``pair`` (max, index), with
    ``carry`` merged with an earlier chunk's pair (a tie keeps the carried, lower index).

    On CPU, ``torch.argmax``, which torch documents to return the first maximal index (3x
    faster than where + min here; the tie vectors check it). Elsewhere the lowest index is
    computed explicitly, exact by construction whatever the device's reduction order. The
    maximum is gathered at that index and compared in int32 (every input dtype fits), and
    offset + index <= 2^24 + 2^14 is an int32 too.
    """

    def __init__(self, op: k.ArgmaxOp, device: torch.device, in_dtypes=(INT8,)):
        self.op = op

    def __call__(self, x: torch.Tensor, carry: torch.Tensor | None = None) -> torch.Tensor:
        op = self.op
        if x.device.type == "cpu":
            index = x.argmax(dim=1, keepdim=True).to(torch.int32)
        else:
            index = lowest_argmax(x)
        if not (op.pair or op.carry):
            return index
        top = x.gather(1, index.to(torch.int64)).to(torch.int32)  # (rows, 1): M
        if op.carry:
            index = index.add_(op.offset)
            keep = carry[:, :1] >= top  # vb >= M: the earlier chunk's (lower) index stands
            top = torch.where(keep, carry[:, :1], top)
            index = torch.where(keep, carry[:, 1:], index)
        return torch.cat([top, index], dim=1) if op.pair else index


def lowest_argmax(x: torch.Tensor) -> torch.Tensor:
    """(rows, 1) int32: min { c : x[r, c] = max_c' x[r, c'] }, by construction."""
    top = x.max(dim=1, keepdim=True).values
    index = torch.arange(x.shape[1], device=x.device, dtype=torch.int32).expand_as(x)
    return torch.where(x == top, index, x.shape[1]).min(dim=1, keepdim=True).values.to(torch.int32)


class Rope:
    """5.12: each head's column pairs (i, i + D/2) times their row's (c_i, s_i), rq.

    Exact in float64: |x| <= 2^15 and |c|, |s| <= 2^14, so each product is below 2^29 and each
    acc = a c - b s or b c + a s at most 2^30 in magnitude, exact float64 integers; the
    requantization goes through requant_f64 where its bound holds (fits), else int64.
    """

    def __init__(self, op: k.RopeOp, device: torch.device, in_dtypes=(INT8,)):
        self.op, self.bits = op, bits_of(op)
        worst = 2 * ABS_MAX[in_dtypes[0]] * k.ROPE_ONE
        self.f64 = fits(worst, op.multiplier, op.shift, self.bits)
        dtype = torch.float64 if self.f64 else torch.int64
        table = op.table.to(dtype).to(device)
        half = op.head_dim // 2
        self.cos, self.sin = table[:, :half], table[:, half:]  # (T, D/2) each

    def __call__(self, x: torch.Tensor, row0: int = 0) -> torch.Tensor:
        """``x`` holds rows row0, row0 + 1, ... (a row's position is its row number mod T)."""
        op, rows = self.op, x.shape[0]
        half = op.head_dim // 2
        pos = torch.arange(row0, row0 + rows, device=x.device).remainder_(op.seq)
        c, s = self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)  # (rows, 1, D/2)
        x3 = x.reshape(rows, op.heads, op.head_dim).to(self.cos.dtype)
        a, b = x3[..., :half], x3[..., half:]
        acc = torch.cat([a * c - b * s, b * c + a * s], dim=2)  # (rows, H, D)
        if self.f64:
            y = requant_scalar_(acc, op.multiplier, op.shift, self.bits)
        else:
            y = _rq_(acc, op.multiplier, op.shift, self.bits)
        return y.reshape(rows, op.cols)


class Mul:
    """5.13: y = rq(a * b) elementwise. |a b| <= 2^30; float64 (exact products, requant_f64)
    where fits holds for the inputs' worst product, else int64."""

    def __init__(self, op: k.MulOp, device: torch.device, in_dtypes=(INT8, INT8)):
        self.op, self.bits = op, bits_of(op)
        worst = ABS_MAX[in_dtypes[0]] * ABS_MAX[in_dtypes[1]]
        self.f64 = fits(worst, op.multiplier, op.shift, self.bits)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        op = self.op
        if self.f64:
            return requant_scalar_(a.to(torch.float64).mul_(b.to(torch.float64)), op.multiplier, op.shift,
                                   self.bits)
        return _rq_(a.to(torch.int64).mul_(b.to(torch.int64)), op.multiplier, op.shift, self.bits)


KERNELS = {k.MatmulOp: Matmul, k.TransposeOp: Transpose, k.AddOp: Add, k.LutOp: Lut, k.SoftmaxOp: Softmax,
           k.NormOp: Norm, k.EmbedOp: Embed, k.ArgmaxOp: Argmax, k.RopeOp: Rope, k.MulOp: Mul}
