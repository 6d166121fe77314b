"""Random transformer-shaped models built on the reference (docs/protocol.md 5.9), for the
golden traces (``tests/vectors/generate_transformer.py``) and the exact-kernel tests.

An encoder (BERT-style: embed, LayerNorm, post-norm blocks, mean pooling, L2 normalisation)
or a decoder (GPT-style: embed, pre-norm causal blocks, final norm, a ``wide`` head and
``argmax``), each block being multi-head attention in seven ops (5.9) and an MLP with a GELU
``lut``, with ``add`` residuals. Weights come from a ``random.Random``; every multiplier and
shift is calibrated from the reference's own values on the given input (so outputs are
varied, some saturated). Tables are built with integer or ``Fraction`` arithmetic only, so
the result is byte-for-byte the same on every machine. Nothing here comes from
``offchain/``.

With ``i16`` the models carry 16-bit activations where the compiler puts them (5.0): the
residual stream (embed, add, the linears feeding an add), the norm outputs, GELU's and
softmax's outputs; the slots that feed a table (scores into softmax, FFN1 into GELU) and the
attention's Q, K, V stay int8.

``llama`` builds a Llama-shaped decoder (5.9's Llama block: RMSNorm, rope, grouped-query
attention, SwiGLU, a head split into vocabulary chunks, 5.12-5.14) on the reference of
``tests/reference_llama.py``.
"""

from fractions import Fraction

import reference_kinds as rk
import reference_llama as rl
import reference_transformer as rt

M_MAX = 2**31 - 1


def pick_scale(acc_mag, target, max_shift=40):
    """A ``(multiplier, shift)`` mapping ``acc_mag`` to about ``target`` (largest shift that fits)."""
    acc_mag = max(acc_mag, 1)
    for s in range(max_shift, 0, -1):
        m = (target * 2**s + acc_mag // 2) // acc_mag
        if 1 <= m <= M_MAX:
            return m, s
    return 1, 1


def exp_table(k):
    """``E[d] ≈ 2^23 · (1 - 2^-k)^d``: an integer exp(-d / 2^k), non-increasing, ``E[0] = 2^23``."""
    E = [2**23]
    for _ in range(255):
        E.append(E[-1] - (E[-1] >> k))
    return E


def gelu_table(in_scale, out_scale, bits=8):
    """I-BERT's i-GELU as an int8 (or int16) table: ``x·½(1 + L(x/√2))``, ``L`` its
    second-order erf, ``x = v · in_scale``, output rounded half up to ``out_scale`` and clamped."""
    a, b, sqrt2 = Fraction("-0.2888"), Fraction("-1.769"), Fraction("1.41421356")
    table = []
    for v in range(-128, 128):
        x = v * in_scale
        u = abs(x / sqrt2)
        erf = a * (min(u, -b) + b) ** 2 + 1
        erf = erf if x >= 0 else -erf
        y = x * (1 + erf) / 2 / out_scale
        table.append(rk.clamp(int((y + Fraction(1, 2)).__floor__()), bits))
    return table


def silu_table(in_scale, out_scale, bits=8):
    """A SiLU stand-in as an int8 (or int16) table, exact in ``Fraction``s: hard-swish,
    ``x · clamp((x + 3) / 6, 0, 1)``, ``x = v · in_scale``, rounded half up to ``out_scale``."""
    table = []
    for v in range(-128, 128):
        x = v * in_scale
        y = x * min(max((x + 3) / 6, Fraction(0)), Fraction(1)) / out_scale
        table.append(rk.clamp(int((y + Fraction(1, 2)).__floor__()), bits))
    return table


def _cos_sin(x):
    """cos and sin of a ``Fraction`` by their Taylor series, to well below 2^-40."""
    c = s = Fraction(0)
    term, n = Fraction(1), 0  # x^n / n!
    while n < 8 or abs(term) > Fraction(1, 2**50):
        if n % 2 == 0:
            c += term if n % 4 == 0 else -term
        else:
            s += term if n % 4 == 1 else -term
        n += 1
        term = term * x / n
    return c, s


def rope_table(T, D):
    """5.12's table ``[T, D]``: row t = (round(2^14 cos(t θ_i)), round(2^14 sin(t θ_i))),
    ``θ_i = 10^(-⌊8i / D⌋)`` (Llama's ``10000^(-2i/D)`` where ``8i / D`` is whole, e.g. D = 4),
    in ``Fraction``s so that the table is the same on every machine."""
    half = D // 2
    table = []
    for t in range(T):
        cs = [_cos_sin(Fraction(t, 10 ** (8 * i // D))) for i in range(half)]
        table.append([int((2**14 * v + Fraction(1, 2)).__floor__()) for v in [c for c, _ in cs] + [s for _, s in cs]])
    return table


class Builder:
    """Appends ops to a model and runs each on the reference at once, to calibrate the next."""

    def __init__(self, rng, x, input_dtype, extreme=False):
        self.rng, self.extreme = rng, extreme
        self.model = {"input_cols": len(x[0]), "input_dtype": input_dtype, "ops": []}
        self.slots, self.dtypes = [x], [input_dtype]

    def _push(self, op):
        # reference_llama runs 5.12-5.14 and hands every other op to reference_transformer
        self.model["ops"].append(op)
        names = [op["input_a"]] + ([op["input_b"]] if rl.reads_b(op) else [])
        self.slots.append(rl.run_op(op, [self.slots[i] for i in names], [self.dtypes[i] for i in names]))
        self.dtypes.append(rl.out_dtype(op, self.dtypes[op["input_a"]]))
        return len(self.slots) - 1

    def _int8(self, scale=128):
        if self.extreme and self.rng.randrange(3) == 0:
            return self.rng.choice((-128, 127))
        return self.rng.randrange(-scale, scale)

    def _target(self, i16=False):
        if i16:
            return self.rng.randrange(40000, 100000) if self.extreme else self.rng.randrange(8000, 32767)
        return self.rng.randrange(150, 400) if self.extreme else self.rng.randrange(60, 127)

    def linear(self, src, n, relu=False, wide=False, i16=False):
        x = self.slots[src]
        k = len(x[0])
        W = [[self._int8(64) for _ in range(k)] for _ in range(n)]
        b = [self.rng.randrange(-500, 501) for _ in range(n)]
        m, s = [], []
        for c in range(n):
            acc = max(abs(b[c] + sum(xv * wv for xv, wv in zip(row, W[c]))) for row in x)
            mc, sc = pick_scale(acc, self._target(i16), self.rng.randrange(20, 40))
            m.append(mc)
            s.append(sc)
        flags = (rt.FLAG_RELU if relu else 0) | (rt.FLAG_WIDE if wide else 0) | (rt.FLAG_I16 if i16 else 0)
        return self._push({"kind": rt.LINEAR, "flags": flags, "input_a": src, "input_b": 0,
                           "weights": W, "bias": b, "multiplier": m, "shift": s})

    def matmul(self, a, b, heads, seq, out_cols, causal, i16=False, kv_heads=None):
        """``kv_heads < heads``: grouped (5.14), query head h reading B's head h * H_b // H."""
        A, B = self.slots[a], self.slots[b]
        K, R_b = len(A[0]) // heads, out_cols // heads
        kv = kv_heads or heads
        acc = 1
        for r, row in enumerate(A):
            for c in range(out_cols):
                h, j = divmod(c, R_b)
                brow, hb = B[(r // seq) * R_b + j], h * kv // heads
                acc = max(acc, abs(sum(row[h * K + k] * brow[hb * K + k] for k in range(K))))
        m, s = pick_scale(acc, self._target(i16), 30)
        flags = (rt.FLAG_CAUSAL if causal else 0) | (rt.FLAG_I16 if i16 else 0) | (rl.FLAG_GROUPED if kv < heads else 0)
        op = {"kind": rt.MATMUL, "flags": flags, "input_a": a, "input_b": b, "in_cols": len(A[0]),
              "out_cols": out_cols, "heads": heads, "seq": seq, "multiplier": m, "shift": s}
        return self._push({**op, "kv_heads": kv} if kv < heads else op)

    def softmax(self, src, heads, seq, causal, mask=0, i16=False):
        n = len(self.slots[src][0])
        flags = (rt.FLAG_CAUSAL if causal else 0) | (rt.FLAG_KEYMASK if mask else 0) | (rt.FLAG_I16 if i16 else 0)
        return self._push({"kind": rt.SOFTMAX, "flags": flags,
                           "input_a": src, "input_b": mask, "in_cols": n, "out_cols": n,
                           "heads": heads, "seq": seq, "exp_table": exp_table(self.rng.randrange(3, 6))})

    def key_mask(self, vocab, pad):
        """The mask slot of 5.9, ``[B, T]``: 1 where the id is not ``pad``, else 0. An embed of
        width 1 (token table 1 but for the pad row, zero positions, ``(1·2 + 1) >> 1 = 1``), then
        a transpose of each sequence's ``[T, 1]`` to ``[1, T]``."""
        T = len(self.slots[0][0])
        e = self._push({"kind": rt.EMBED, "flags": 0, "input_a": 0, "input_b": 0, "in_cols": T,
                        "out_cols": 1, "token_table": [[int(v != pad)] for v in range(vocab)],
                        "position_table": [[0]] * T, "multiplier_a": 2, "multiplier_b": 1, "shift": 1})
        return self.transpose(e, 1, T)

    def transpose(self, src, heads, out_cols):
        return self._push({"kind": rt.TRANSPOSE, "flags": 0, "input_a": src, "input_b": 0,
                           "in_cols": len(self.slots[src][0]), "out_cols": out_cols, "heads": heads})

    def add(self, a, b, i16=False):
        s = self.rng.randrange(6, 20)
        hi = 2 ** (s + 1) if self.extreme else 2 ** (s - 1)
        m_a, m_b = self.rng.randrange(2 ** (s - 2), hi), self.rng.randrange(2 ** (s - 2), hi)
        if i16:  # an int8 summand is scaled up to the 16-bit stream's units
            m_a <<= 8 * (self.dtypes[a] == rt.DTYPE_INT8)
            m_b <<= 8 * (self.dtypes[b] == rt.DTYPE_INT8)
        n = len(self.slots[a][0])
        return self._push({"kind": rt.ADD, "flags": rt.FLAG_I16 if i16 else 0, "input_a": a, "input_b": b, "in_cols": n,
                           "out_cols": n, "multiplier_a": m_a, "multiplier_b": m_b, "shift": s})

    def gelu(self, src, i16=False):
        n = len(self.slots[src][0])
        out_scale = Fraction(1, 32 * 256) if i16 else Fraction(1, 32)
        table = gelu_table(Fraction(1, self.rng.randrange(16, 48)), out_scale, 16 if i16 else 8)
        return self._push({"kind": rt.LUT, "flags": rt.FLAG_I16 if i16 else 0, "input_a": src, "input_b": 0,
                           "in_cols": n, "out_cols": n, "table": table})

    def norm(self, src, rms, i16=False):
        x = self.slots[src]
        n = len(x[0])
        gamma = [self.rng.choice((-1, 1, 1, 1)) * self.rng.randrange(1, 400) for _ in range(n)]
        beta = [self.rng.randrange(-20000, 20001) for _ in range(n)]
        acc = 1
        for row in x:
            z, _, rho = rk.norm_stats(row, rms)
            for c in range(n):
                q = rk.floor_div(z[c] * 2**rk.NORM_FRAC, rho) if rho else 0
                acc = max(acc, abs(q * gamma[c] + beta[c]))
        m, s = pick_scale(acc, self._target(i16), 40)
        return self._push({"kind": rt.NORM, "flags": (rt.FLAG_RMS if rms else 0) | (rt.FLAG_I16 if i16 else 0),
                           "input_a": src,
                           "input_b": 0, "in_cols": n, "out_cols": n, "multiplier": m,
                           "shift": s, "gamma": gamma, "beta": beta})

    def embed(self, vocab, width, i16=False, positions=True):
        T = len(self.slots[0][0])
        s = self.rng.randrange(4, 12)
        # with i16 the tables are int16 (5.7): 2^8 finer entries, each an int8 draw times 256 plus low bits
        low = (lambda: self.rng.randrange(256)) if i16 else (lambda: 0)
        entry = (lambda scale=128: self._int8(scale) * 256 + low()) if i16 else self._int8
        return self._push({
            "kind": rt.EMBED, "flags": rt.FLAG_I16 if i16 else 0, "input_a": 0, "input_b": 0, "in_cols": T,
            "out_cols": width,
            "token_table": [[entry() for _ in range(width)] for _ in range(vocab)],
            "position_table": [[entry(64) if positions else 0 for _ in range(width)] for _ in range(T)],
            "multiplier_a": self.rng.randrange(2 ** (s - 1), 2**s),
            "multiplier_b": self.rng.randrange(2 ** (s - 2), 2**s), "shift": s})

    def argmax(self, src, pair=False, carry=0, offset=0):
        """With ``carry`` (the slot of an earlier pair) and ``offset``: one chunk of a split head (5.14)."""
        n = len(self.slots[src][0])
        op = {"kind": rt.ARGMAX, "flags": (rl.FLAG_PAIR if pair else 0) | (rl.FLAG_CARRY if carry else 0),
              "input_a": src, "input_b": carry, "in_cols": n, "out_cols": 2 if pair else 1}
        return self._push({**op, "offset": offset} if carry else op)

    def rope(self, src, heads, table, i16=False):
        x = self.slots[src]
        half = len(table[0]) // 2
        acc = 1
        for r, row in enumerate(x):
            cs = table[r % len(table)]
            for c, v in enumerate(row):
                i = c % (2 * half)
                mate, sign = (row[c + half], -1) if i < half else (row[c - half], 1)
                acc = max(acc, abs(v * cs[i % half] + sign * mate * cs[half + i % half]))
        m, s = pick_scale(acc, self._target(i16), 36)
        return self._push({"kind": rl.ROPE, "flags": rt.FLAG_I16 if i16 else 0, "input_a": src, "input_b": 0,
                           "in_cols": len(x[0]), "out_cols": len(x[0]), "heads": heads, "multiplier": m,
                           "shift": s, "table": table})

    def mul(self, a, b, i16=False):
        acc = max(1, max(abs(u * v) for ra, rb in zip(self.slots[a], self.slots[b]) for u, v in zip(ra, rb)))
        m, s = pick_scale(acc, self._target(i16), 40)
        n = len(self.slots[a][0])
        return self._push({"kind": rl.MUL, "flags": rt.FLAG_I16 if i16 else 0, "input_a": a, "input_b": b,
                           "in_cols": n, "out_cols": n, "multiplier": m, "shift": s})

    def silu(self, src, i16=False):
        n = len(self.slots[src][0])
        table = silu_table(Fraction(1, self.rng.randrange(8, 24)), Fraction(1, 32 * 256) if i16 else Fraction(1, 32),
                           16 if i16 else 8)
        return self._push({"kind": rt.LUT, "flags": rt.FLAG_I16 if i16 else 0, "input_a": src, "input_b": 0,
                           "in_cols": n, "out_cols": n, "table": table})

    def attention(self, x, heads, seq, causal, mask=0, i16=False):
        """Seven ops (5.9): Q, K, V, Q·Kᵀ, softmax (keymask when ``mask`` names the mask slot),
        transpose(V), P·V', and the projection (with ``i16``: 16-bit probabilities and
        projection, which feeds the residual add)."""
        d = len(self.slots[x][0])
        q, k, v = self.linear(x, d), self.linear(x, d), self.linear(x, d)
        scores = self.matmul(q, k, heads, seq, heads * seq, causal)
        p = self.softmax(scores, heads, seq, causal, mask, i16)
        vt = self.transpose(v, heads, heads * seq)
        o = self.matmul(p, vt, heads, seq, d, False)
        return self.linear(o, d, i16=i16)

    def mlp(self, x, ffn, i16=False):
        return self.linear(self.gelu(self.linear(x, ffn), i16), len(self.slots[x][0]), i16=i16)


def transformer(rng, kind, layers, width, heads, ffn, seq, vocab, batch, extreme=False, pad=None, i16=False):
    """``(model, token ids)`` of a random ``"encoder"`` or ``"decoder"`` over ``batch``
    sequences of ``seq`` tokens (the ids include out-of-vocabulary ones when ``extreme``).
    An encoder with a ``pad`` id masks the keys holding it and pools the other tokens only
    (5.9); its sequences get random lengths, and the last one is all padding. ``i16``: 16-bit
    activations where the compiler puts them (module doc)."""
    if width % heads:
        raise ValueError("width must be a multiple of heads")
    hi = vocab + 2 if extreme else vocab
    ids = [[rng.randrange(-1 if extreme else 0, hi) for _ in range(seq)] for _ in range(batch)]
    if pad is not None:
        for row in ids:
            n = rng.randrange(1, seq + 1) if row is not ids[-1] else 0
            row[n:] = [pad] * (seq - n)
    b = Builder(rng, ids, rt.DTYPE_INT32, extreme)
    mask = b.key_mask(vocab, pad) if pad is not None else 0
    x = b.embed(vocab, width, i16)
    causal = kind == "decoder"
    if not causal:
        x = b.norm(x, rms=False, i16=i16)
    for _ in range(layers):
        if causal:  # pre-norm (GPT-2)
            x = b.add(x, b.attention(b.norm(x, False, i16), heads, seq, True, i16=i16), i16)
            x = b.add(x, b.mlp(b.norm(x, False, i16), ffn, i16), i16)
        else:       # post-norm (BERT)
            x = b.norm(b.add(x, b.attention(x, heads, seq, False, mask, i16), i16), False, i16)
            x = b.norm(b.add(x, b.mlp(x, ffn, i16), i16), False, i16)
    if causal:
        x = b.linear(b.norm(x, False, i16), vocab, wide=True)
        b.argmax(x)
    elif mask:  # masked sum pooling: matmul(mask, transpose(h)), T_a = 1, K = T, R_b = width
        t = b.transpose(x, 1, seq)
        pooled = b.matmul(mask, t, 1, 1, width, False, i16)
        b.norm(pooled, rms=True, i16=i16)
    else:  # mean pooling as transpose, a ones linear and transpose (5.9), then L2 norm
        t = b.transpose(x, 1, seq)
        m, s = pick_scale(seq, 1, 30)
        b._push({"kind": rt.LINEAR, "flags": rt.FLAG_I16 if i16 else 0, "input_a": t, "input_b": 0,
                 "weights": [[1] * seq], "bias": [0], "multiplier": [m], "shift": [s]})
        pooled = b.transpose(len(b.slots) - 1, 1, width)
        b.norm(pooled, rms=True, i16=i16)
    return b.model, ids


def llama(rng, layers, width, heads, kv_heads, ffn, seq, chunks, batch):
    """``(model, token ids)`` of a Llama-shaped decoder (5.9): embed without positions, then per
    layer RMSNorm, Q, K, V (K and V of ``kv_heads`` heads), rope on Q and K, grouped causal
    scores, softmax, transpose(V), grouped P·V, the output linear, add; RMSNorm, gate and up
    linears, SiLU on the gate, mul, down, add; a final RMSNorm and a head split into ``chunks``
    (their widths: one wide linear each, argmax with pair, then with carry, 5.14). 16-bit
    activations where the compiler puts them (module doc); Q, K, V and the scores int8."""
    vocab, d_h = sum(chunks), width // heads
    ids = [[rng.randrange(vocab) for _ in range(seq)] for _ in range(batch)]
    b = Builder(rng, ids, rt.DTYPE_INT32)
    x = b.embed(vocab, width, True, positions=False)
    table = rope_table(seq, d_h)
    for _ in range(layers):
        h = b.norm(x, True, True)
        q, k, v = b.linear(h, width), b.linear(h, kv_heads * d_h), b.linear(h, kv_heads * d_h)
        q, k = b.rope(q, heads, table), b.rope(k, kv_heads, table)
        scores = b.matmul(q, k, heads, seq, heads * seq, True, kv_heads=kv_heads)
        p = b.softmax(scores, heads, seq, True, i16=True)
        vt = b.transpose(v, kv_heads, kv_heads * seq)
        o = b.matmul(p, vt, heads, seq, width, False, kv_heads=kv_heads)
        x = b.add(x, b.linear(o, width, i16=True), True)
        h = b.norm(x, True, True)
        gate, up = b.silu(b.linear(h, ffn), True), b.linear(h, ffn, i16=True)
        x = b.add(x, b.linear(b.mul(gate, up, True), width, i16=True), True)
    h = b.norm(x, True, True)
    logits = [b.linear(h, n, wide=True) for n in chunks]
    best = b.argmax(logits[0], pair=len(chunks) > 1)
    for s, n in enumerate(chunks[1:], start=1):
        best = b.argmax(logits[s], pair=s < len(chunks) - 1, carry=best, offset=sum(chunks[:s]))
    return b.model, ids
