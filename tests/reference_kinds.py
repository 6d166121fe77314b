"""Reference semantics of the transformer op kinds (docs/protocol.md sections 5.0-5.8).

Plain Python ``int`` only, written from the spec's formulas and sharing no code with
``offchain/referee/``; it builds on ``tests/reference.py`` (sections 1-6) for ``requantize``
and ``linear``. Every op is computed the way its **One step** paragraph reads it: each output
element (or row segment) is a function of the one row of each input that the step reveals, so
these functions are also a check that the spec's one steps suffice. Every range the spec states
is checked and a violation raises ``ValueError``.

16-bit activations (5.0, flag ``i16``): every kind that writes activations takes ``bits`` (8 or
16), the width of its output and of its requantization's clamp; every kind that reads int16
takes the width of each input (``in_bits``, ``a_bits``, ``b_bits``), which sets the range its
input elements are checked against.

A matrix is a list of rows of ``int``; ``[rows, cols]`` shapes in the comments.
"""

import reference as ref

INT8_MIN, INT8_MAX = ref.INT8_MIN, ref.INT8_MAX
INT32_MIN, INT32_MAX = ref.INT32_MIN, ref.INT32_MAX
NORM_FRAC = 15
EXP_MAX = 2**23          # softmax table entries lie in [0, 2^23]
VOCAB_MAX = 2**24        # embed: 1 <= V <= 2^24
NORM_PARAM_BOUND = 2**31 - 1  # 2^15 * |gamma| + |beta| <= 2^31 - 1
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
RANGES = {8: (INT8_MIN, INT8_MAX), 16: (INT16_MIN, INT16_MAX)}  # bits -> [lo, hi]

_check_int = ref._check_int


# ---------------------------------------------------------------------------------------
# Shared conventions (5.0)


def floor_div(a: int, b: int) -> int:
    """``⌊a / b⌋`` for ``b > 0``: the mathematical floor (``⌊-7/2⌋ = -4``), never truncation."""
    _check_int("divisor", b, 1, 2**256)
    q = abs(a) // b  # non-negative operands: floor is truncation
    if a < 0:
        q = -q if abs(a) % b == 0 else -q - 1
    return q


def isqrt(v: int) -> int:
    """The unique ``r >= 0`` with ``r^2 <= v < (r+1)^2``, by bisection over the bits of ``r``."""
    _check_int("isqrt argument", v, 0, 2**256)
    r = 0
    for bit in range((v.bit_length() + 1) // 2, -1, -1):
        if (r + (1 << bit)) ** 2 <= v:
            r += 1 << bit
    assert r * r <= v < (r + 1) * (r + 1)
    return r


def clamp8(v: int) -> int:
    return max(INT8_MIN, min(INT8_MAX, v))


def clamp(v: int, bits: int = 8) -> int:
    """Clamp to int8 (``bits = 8``) or int16 (``bits = 16``)."""
    lo, hi = RANGES[bits]
    return max(lo, min(hi, v))


def rq(acc: int, m: int, s: int, bits: int = 8) -> int:
    """``clamp((acc * m + 2^(s-1)) >> s, -128, 127)`` with ``|acc| < 2^31`` (section 4); with
    ``bits = 16`` the clamp is to ``[-2^15, 2^15 - 1]`` (``rq16``, 5.0)."""
    if bits == 8:
        return ref.requantize(acc, m, s, False)
    _check_int("acc", acc, INT32_MIN, INT32_MAX)
    ref._check_requant_params(m, s)
    return clamp((acc * m + (1 << (s - 1))) >> s, 16)


def rescale2(a: int, m_a: int, b: int, m_b: int, s: int, bits: int = 8) -> int:
    """``clamp((a*m_a + b*m_b + 2^(s-1)) >> s)`` to ``bits``: two rescales, one rounding."""
    _check_int("m_a", m_a, ref.MULTIPLIER_MIN, ref.MULTIPLIER_MAX)
    _check_int("m_b", m_b, ref.MULTIPLIER_MIN, ref.MULTIPLIER_MAX)
    _check_int("shift", s, ref.SHIFT_MIN, ref.SHIFT_MAX)
    return clamp((a * m_a + b * m_b + (1 << (s - 1))) >> s, bits)


def shape(name, matrix, lo=INT8_MIN, hi=INT8_MAX):
    """``(rows, cols)`` of a non-empty rectangular matrix whose elements lie in ``[lo, hi]``."""
    if not isinstance(matrix, (list, tuple)) or not matrix:
        raise ValueError(f"{name} must be a non-empty list of rows")
    if len(matrix) > ref.MAX_ROWS:
        raise ValueError(f"{name} has {len(matrix)} rows, more than {ref.MAX_ROWS}")
    cols = len(matrix[0])
    if not 1 <= cols <= ref.MAX_COLS:
        raise ValueError(f"{name} has {cols} columns, outside [1, {ref.MAX_COLS}]")
    for r, row in enumerate(matrix):
        if len(row) != cols:
            raise ValueError(f"{name} row {r} has {len(row)} columns, expected {cols}")
        for v in row:
            _check_int(f"{name}[{r}] element", v, lo, hi)
    return len(matrix), cols


def _split(name, total, parts):
    """``total / parts`` when ``parts >= 1`` divides ``total``."""
    _check_int(name, parts, 1, 2**256 - 1)
    if total % parts:
        raise ValueError(f"{name} = {parts} does not divide {total}")
    return total // parts


def _check_out_rows(rows):
    if not 1 <= rows <= ref.MAX_ROWS:
        raise ValueError(f"output has {rows} rows, outside [1, {ref.MAX_ROWS}]")


# ---------------------------------------------------------------------------------------
# linear with flag wide (5.0): the int32 accumulator itself


def linear_wide(x, W, b, m, s):
    """``y[r, c] = acc[r, c]`` (int32); ``m``, ``s`` must be in range but are not used."""
    shape("input", x)
    n, k = shape("weights", W)
    if not len(b) == len(m) == len(s) == n:
        raise ValueError("bias, multiplier and shift need one entry per output column")
    if len(x[0]) != k:
        raise ValueError(f"input has {len(x[0])} columns, weights expect {k}")
    return [[ref.linear_element(row, W[c], b[c], m[c], s[c], False)[0] for c in range(n)]
            for row in x]


def linear16(x, W, b, m, s, relu, bits, in_bits, wide=False):
    """``linear`` (section 4) with an int16 input (``in_bits = 16``) or an int16 output
    (``bits = 16``, 5.0): ``acc = b + sum x*W`` under the accumulator bound for the input's
    dtype (``X * sum|W[c]| + |b[c]| <= 2^31 - 1``, ``X = 2^(in_bits - 1)``), then ``rq`` to
    ``bits`` and ReLU; with ``wide`` the int32 ``acc`` itself."""
    shape("input", x, *RANGES[in_bits])
    n, k = shape("weights", W)
    if not len(b) == len(m) == len(s) == n:
        raise ValueError("bias, multiplier and shift need one entry per output column")
    if len(x[0]) != k:
        raise ValueError(f"input has {len(x[0])} columns, weights expect {k}")
    x_max = 2 ** (in_bits - 1)
    for c in range(n):
        if x_max * sum(abs(w) for w in W[c]) + abs(b[c]) > INT32_MAX:
            raise ValueError(f"channel {c}: accumulator bound for a {in_bits}-bit input exceeds 2^31 - 1")
        ref._check_requant_params(m[c], s[c])
    out = []
    for row in x:
        y = []
        for c in range(n):
            acc = b[c] + sum(xv * wv for xv, wv in zip(row, W[c]))
            if wide:
                y.append(acc)
                continue
            v = rq(acc, m[c], s[c], bits)
            y.append(max(v, 0) if relu else v)
        out.append(y)
    return out


# ---------------------------------------------------------------------------------------
# matmul (5.1)


def matmul_element(a_row, b_row, h, K, i, j, m, s, causal, bits=8):
    """``y[r, c]`` from row ``r`` of ``A`` and row ``g*R_b + j`` of ``B`` (the one step); a
    masked element is the output dtype's minimum (-128, or -2^15 with ``bits = 16``)."""
    if causal and j > i:
        return RANGES[bits][0]
    acc = 0
    for k in range(K):
        acc += a_row[h * K + k] * b_row[h * K + k]
    return rq(acc, m, s, bits)


def matmul_bound(K, a_bits, b_bits):
    """5.1: at most one int16 operand, and ``K * max|A| * max|B| < 2^31``."""
    if a_bits == b_bits == 16:
        raise ValueError("matmul reads at most one int16 operand")
    if K * 2 ** (a_bits - 1) * 2 ** (b_bits - 1) >= 2**31:
        raise ValueError(f"K = {K}: K * max|A| * max|B| reaches 2^31")


def matmul(A, B, heads, seq, out_cols, m, s, causal, bits=8, a_bits=8, b_bits=8):
    """``A [G*T_a, H*K]``, ``B [G*R_b, H*K]`` -> ``[G*T_a, H*R_b]``."""
    rows_a, in_cols = shape("A", A, *RANGES[a_bits])
    rows_b, cols_b = shape("B", B, *RANGES[b_bits])
    if cols_b != in_cols:
        raise ValueError(f"A has {in_cols} columns, B {cols_b}: both must be in_cols")
    _check_int("out_cols", out_cols, 1, ref.MAX_COLS)
    K = _split("heads", in_cols, heads)
    matmul_bound(K, a_bits, b_bits)
    R_b = _split("heads", out_cols, heads)
    G = _split("T_a", rows_a, seq)
    if rows_b != G * R_b:
        raise ValueError(f"B has {rows_b} rows, the shape rule needs G * R_b = {G * R_b}")
    ref._check_requant_params(m, s)
    out = []
    for r in range(rows_a):
        g = r // seq
        i = r - g * seq
        row = []
        for c in range(out_cols):
            h = c // R_b
            j = c - h * R_b
            row.append(matmul_element(A[r], B[g * R_b + j], h, K, i, j, m, s, causal, bits))
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------
# transpose (5.2)


def transpose(x, heads, out_cols, in_bits=8):
    """``[G*R_in, H*C]`` -> ``[G*C, H*R_in]``: ``out[g*C + c, h*R_in + i] = in[g*R_in + i, h*C + c]``;
    the output has the input's dtype."""
    rows_in, in_cols = shape("input", x, *RANGES[in_bits])
    _check_int("out_cols", out_cols, 1, ref.MAX_COLS)
    C = _split("heads", in_cols, heads)
    R_in = _split("heads", out_cols, heads)
    G = _split("R_in", rows_in, R_in)
    _check_out_rows(G * C)
    out = []
    for r in range(G * C):
        g, c = r // C, r % C
        row = []
        for col in range(out_cols):
            h, i = col // R_in, col % R_in
            row.append(x[g * R_in + i][h * C + c])  # one input row, one element of it
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------
# add (5.3) and lut (5.4)


def add(A, B, m_a, m_b, s, bits=8, a_bits=8, b_bits=8):
    """``y = clamp((a*m_a + b*m_b + 2^(s-1)) >> s)`` elementwise over two equal shapes."""
    rows, cols = shape("A", A, *RANGES[a_bits])
    if shape("B", B, *RANGES[b_bits]) != (rows, cols):
        raise ValueError("add: both inputs must have the same rows and columns")
    return [[rescale2(A[r][c], m_a, B[r][c], m_b, s, bits) for c in range(cols)] for r in range(rows)]


def check_table(table, bits=8):
    """256 entries of the output dtype (int8, or int16 with ``bits = 16``)."""
    if not isinstance(table, (list, tuple)) or len(table) != 256:
        raise ValueError("a lut table has exactly 256 entries")
    for v in table:
        _check_int("table entry", v, *RANGES[bits])


def lut(x, table, bits=8):
    """``y[r, c] = table[x[r, c] + 128]``; the input is int8 whatever the table's width."""
    shape("input", x)
    check_table(table, bits)
    return [[table[v + 128] for v in row] for row in x]


# ---------------------------------------------------------------------------------------
# softmax (5.5)


def check_exp_table(E):
    if not isinstance(E, (list, tuple)) or len(E) != 256:
        raise ValueError("a softmax exp table has exactly 256 entries")
    for v in E:
        _check_int("exp table entry", v, 0, EXP_MAX)


def softmax_segment(x_row, h, L, i, E, causal, mask_row=None, bits=8):
    """Head ``h``'s ``L`` outputs of one row; ``i`` is the row's position in its sequence and
    ``mask_row`` (keymask) the row ``g`` of the mask slot, ``L`` entries, non-zero = valid key.
    The output's one is 127, or 32767 with ``bits = 16``."""
    seg = x_row[h * L:(h + 1) * L]
    valid = [((not causal) or u <= i) and (mask_row is None or mask_row[u] != 0) for u in range(L)]
    if not any(valid):  # no valid key: S = 0, the segment is zero
        return [0] * L
    M = max(v for v, ok in zip(seg, valid) if ok)
    e = [E[M - v] if ok else 0 for v, ok in zip(seg, valid)]
    S = sum(e)
    one = RANGES[bits][1]
    return [floor_div(one * eu, S) if S > 0 else 0 for eu in e]


def softmax(x, heads, seq, E, causal, mask=None, bits=8):
    """Row-wise, per head: ``⌊one * E[M - x_u] / S⌋`` over the valid ``u`` of each segment (one =
    127, or 32767 with ``bits = 16``); ``mask`` (keymask) is ``[rows / T, L]`` int8, row ``g`` for
    the rows of sequence ``g``."""
    rows, cols = shape("input", x)
    L = _split("heads", cols, heads)
    G = _split("T", rows, seq)
    check_exp_table(E)
    if mask is not None:
        m_rows, m_cols = shape("mask", mask)
        if (m_rows, m_cols) != (G, L):
            raise ValueError(f"mask is [{m_rows}, {m_cols}], the shape rule needs [rows / T, L] = [{G}, {L}]")
    out = []
    for r in range(rows):
        g = r // seq
        i = r - g * seq
        mask_row = mask[g] if mask is not None else None  # the one step's extra row
        out.append([y for h in range(heads) for y in softmax_segment(x[r], h, L, i, E, causal, mask_row, bits)])
    return out


# ---------------------------------------------------------------------------------------
# norm (5.6)


def check_norm_params(gamma, beta, m, s, n):
    if len(gamma) != n or len(beta) != n:
        raise ValueError(f"norm needs {n} gamma and beta entries, got {len(gamma)}, {len(beta)}")
    for c, (g, b) in enumerate(zip(gamma, beta)):
        _check_int(f"gamma[{c}]", g, -(2**255), 2**255 - 1)
        _check_int(f"beta[{c}]", b, -(2**255), 2**255 - 1)
        if 2**NORM_FRAC * abs(g) + abs(b) > NORM_PARAM_BOUND:
            raise ValueError(f"column {c}: 2^15 * |gamma| + |beta| exceeds 2^31 - 1")
    ref._check_requant_params(m, s)


def norm_stats(x_row, rms):
    """``(z, V, rho)`` of one row: ``z`` is ``n*x - S1`` (LayerNorm) or ``x`` (RMSNorm)."""
    n = len(x_row)
    if rms:
        z = list(x_row)
    else:
        S1 = sum(x_row)
        z = [n * v - S1 for v in x_row]
    V = sum(zc * zc for zc in z)
    return z, V, isqrt(V)


def norm_element(zc, rho, gamma_c, beta_c, m, s, bits=8):
    """``rq(⌊z_c * 2^15 / rho⌋ * gamma_c + beta_c, m, s)`` (``q = 0`` when ``rho = 0``)."""
    q = floor_div(zc * 2**NORM_FRAC, rho) if rho > 0 else 0
    return rq(q * gamma_c + beta_c, m, s, bits)


NORM_I16_MAX_COLS = 1024  # 5.6: an int16 LayerNorm input keeps V < n^3 * 2^32 <= 2^62 (int64)


def norm(x, gamma, beta, m, s, rms, bits=8, in_bits=8):
    rows, n = shape("input", x, *RANGES[in_bits])
    if in_bits == 16 and not rms and n > NORM_I16_MAX_COLS:  # RMSNorm: z = x, V <= n 2^30 at any n
        raise ValueError(f"a LayerNorm reading int16 has at most {NORM_I16_MAX_COLS} columns, got {n}")
    check_norm_params(gamma, beta, m, s, n)
    out = []
    for row in x:
        z, V, rho = norm_stats(row, rms)
        assert V < 2**63  # the int64 bound the column limit guarantees
        out.append([norm_element(z[c], rho, gamma[c], beta[c], m, s, bits) for c in range(n)])
    return out


# ---------------------------------------------------------------------------------------
# embed (5.7) and argmax (5.8)


def check_embed_tables(tok, pos, bits=8):
    """Both tables' shapes; their entries are int8, or int16 with ``bits = 16`` (flag i16)."""
    V, d = shape("token table", tok, *RANGES[bits]) if len(tok) <= ref.MAX_ROWS else _big_table(tok, bits)
    T, d_pos = shape("position table", pos, *RANGES[bits])
    if d_pos != d:
        raise ValueError(f"position table has {d_pos} columns, token table {d}")
    _check_int("V", V, 1, VOCAB_MAX)
    return V, T, d


def _big_table(tok, bits=8):
    # A vocabulary may exceed MAX_ROWS (V <= 2^24): check it row by row.
    if len(tok) > VOCAB_MAX:
        raise ValueError(f"token table has {len(tok)} rows, more than 2^24")
    d = len(tok[0])
    for row in tok:
        if len(row) != d:
            raise ValueError("token table rows differ in length")
        for v in row:
            _check_int("token table element", v, *RANGES[bits])
    return len(tok), d


def embed(ids, tok, pos, m_a, m_b, s, bits=8):
    """``ids [B, T]`` (int32) -> ``[B*T, d]``: token row (0 outside the vocabulary) plus position."""
    B, T = shape("token ids", ids, INT32_MIN, INT32_MAX)
    V, T_pos, d = check_embed_tables(tok, pos, bits)
    if T_pos != T:
        raise ValueError(f"position table has {T_pos} rows, the input {T} columns")
    _check_out_rows(B * T)
    out = []
    for b in range(B):
        for t in range(T):
            v = ids[b][t]
            tok_row = tok[v] if 0 <= v < V else [0] * d
            out.append([rescale2(tok_row[c], m_a, pos[t][c], m_b, s, bits) for c in range(d)])
    return out


def argmax(x, dtype_min=INT32_MIN, dtype_max=INT32_MAX):
    """``[rows, n]`` -> ``[rows, 1]``: the lowest index of each row's maximum."""
    shape("input", x, dtype_min, dtype_max)
    out = []
    for row in x:
        best = 0
        for c in range(1, len(row)):
            if row[c] > row[best]:  # strictly greater: a tie keeps the lower index
                best = c
        out.append([best])
    return out
