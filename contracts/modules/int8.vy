#pragma version ~=0.4.3
"""
@title Packed Int8 Arithmetic
@custom:contract-name int8
@notice Reads signed bytes out of words and computes the exact dot
        product of two packed int8 rows (`docs/protocol.md` sections 1
        and 4), the arithmetic core of the one-step check.
@dev Stateless; it needs no `initializes:`. Import it UNDER AN ALIAS:
     `int8` is a builtin type name, and Vyper 0.4.3 rejects
     `from ..modules import int8` with "NamespaceCollision: 'int8' has
     already been declared". Write `from ..modules import int8 as i8`
     and call `i8.dot(x, w)`, `i8.element(word, i)`.

     `dot` works on 32-byte words with SWAR arithmetic (SIMD within a
     register): about 23 gas per multiply-add, all included (measured
     at k = 4096 ... 16384), instead of about 500 for a byte loop.
     The method, and the bounds that make its unchecked arithmetic
     exact (also in protocol.md, "Libraries"):

     1. Bias. `u = word_x XOR 0x8080..80` maps every signed byte `x` to
        the unsigned byte `x + 128` in [0, 255] (flipping the sign bit
        of a two's-complement byte adds 128 modulo 256); likewise `v`
        from `word_w`. Over the whole row, with `k` elements,
        `sum x*w = sum (u-128)(v-128)
                 = sum u*v - 128*sum u - 128*sum v + 16384*k`.
     2. Lanes. Number the bytes of a word 0 ... 31 from the least
        significant; byte `b` lies in 32-bit lane `b // 4` at bit
        `8 * (b % 4)` of the lane. `M = 0x000000ff` repeated 8 times
        masks the low byte of every lane, so for `g = 0 ... 3`,
        `A_g = (u >> 8g) & M` holds byte `4i + g` of `u` in lane `i`;
        the four `A_g` hold all 32 bytes, each once. `v'` is `v` with
        its eight lanes in reverse order (three swaps: adjacent lanes,
        64-bit pairs, 128-bit halves): lane `i` of `v'` is lane `7 - i`
        of `v`. So `C_g = (v' >> 8g) & M` holds byte `4(7 - i) + g` of
        `v` in lane `i`.
     3. Product. Read as polynomials in `B = 2**32`,
        `A_g = sum_i a_i B**i` and `C_g = sum_i c_i B**i` with
        `a_i = u[4i + g]` and `c_i = v[4(7 - i) + g]`, all in [0, 255].
        The coefficient of `B**7` of their product is
        `sum_{i=0..7} a_i * c_{7-i} = sum_i u[4i + g] * v[4i + g]`;
        summed over `g` it is `sum_b u[b] * v[b]` over the word.
     4. No carries. Each coefficient of the product is a sum of at
        most 8 terms, each at most `255**2 = 65025`, so it is at most
        `8 * 65025 = 520200 < 2**32`: no coefficient spills into the
        next lane, and the 32 bits at 224...255 of the product hold
        exactly coefficient 7. Coefficients 8...14 lie at bit 256 and
        above and vanish modulo `2**256`, which is what `unsafe_mul`
        computes. So `unsafe_mul(A_g, C_g) >> 224` is the 8-lane dot
        product, and the sum over `g` is `sum u*v` for the word.
     5. Byte sums. Per word, `P = (u & M16) + ((u >> 8) & M16) +
        (v & M16) + ((v >> 8) & M16)` with `M16 = 0x00ff` repeated 16
        times has 16 lanes of 16 bits, each the sum of two bytes of `u`
        and two of `v`, at most `4 * 255 = 1020 < 2**16`; then
        `(P & M32L) + ((P >> 16) & M32L)` with `M32L = 0x0000ffff`
        repeated 8 times has 8 lanes of 32 bits, at most
        `8 * 255 = 2040` each, and is added lane-wise into `S`. The
        lane reversal of `v` only permutes whole bytes, so the byte sum
        of `v'` is that of `v`; every byte of `u` and `v` is counted
        once, and the total over all lanes of `S` is `sum u + sum v`.
        A row has at most `MAX_COLS / 32 = 512` words (a partial tail
        word replaces, not adds to, a full one: `ceil(k/32) <= 512`),
        so a lane of `S` never exceeds `512 * 2040 = 1044480 < 2**32`:
        no lane overflows into the next. The total is reduced once
        with `unsafe_mul(S, ONES) >> 224`, `ONES = 0x00000001` repeated
        8 times: by the argument of 4, coefficient 7 of `S * ONES` is
        the sum of the 8 lanes, and every coefficient 0...7 is a sum of
        at most 8 lanes, at most `2 * 16384 * 255 = 8355840 < 2**32` in
        total (no carries).
     6. Tail. When `k % 32 = r != 0` and `k >= 32`, the last word is
        read at byte offset `k - 32` (overlapping the previous word)
        and, after the XOR, its leading `32 - r` bytes (counted
        already) are masked to zero in both `u` and `v`. When `k < 32`
        the `k` biased bytes are placed at the top of `u` and `v` one
        by one, the other `32 - k` bytes staying zero. A zero byte adds
        0 to `sum u*v`, `sum u` and `sum v`, and the constant term uses
        the true `k`.
     7. Final. `sum u*v <= 16384 * 65025 < 2**31`,
        `sum u + sum v <= 8355840 < 2**24`, `16384 * k <= 2**28`: the
        final signed combination is far inside int256, and the result
        is the exact `sum x*w`, `|sum x*w| <= 16384 * 128**2 = 2**28`.
"""


# @dev The longest packed row (protocol.md section 8).
MAX_COLS: constant(uint256) = 16384


# @dev The most full 32-byte words in a row: `MAX_COLS / 32`.
MAX_WORDS: constant(uint256) = 512


# @dev The unsigned one, for masks `(ONE << n) - 1`.
ONE: constant(uint256) = 1


# @dev 0x80 in every byte: XOR maps a signed byte x to x + 128.
K80: constant(uint256) = max_value(uint256) // 255 * 128


# @dev 0x00000001 in every 32-bit lane: multiplying by it sums the
# lanes into the top lane.
ONES: constant(uint256) = max_value(uint256) // 4294967295


# @dev 0x000000ff in every 32-bit lane: the low byte of each lane.
M: constant(uint256) = ONES * 255


# @dev 0x00ff in every 16-bit lane: the low byte of each lane.
M16: constant(uint256) = max_value(uint256) // 65535 * 255


# @dev 0x0000ffff in every 32-bit lane: the low 16 bits of each lane.
M32L: constant(uint256) = ONES * 65535


# @dev 0x00000000ffffffff in every 64-bit unit: the low 32-bit lane of
# each pair.
M32: constant(uint256) = max_value(uint256) // 18446744073709551615 * 4294967295


# @dev The low 64 bits of each 128-bit half.
M64: constant(uint256) = max_value(uint256) // 340282366920938463463374607431768211455 * 18446744073709551615


@internal
@pure
def element(word: bytes32, i: uint256) -> int256:
    """
    @dev Byte `i` of `word` (0 = the first, most significant byte) as a
         signed int8 (two's complement, protocol.md section 1). Reverts
         with "int8: byte index out of range" if `i > 31`.
    @param word The word, e.g. a leaf of a row's word tree.
    @param i The byte index, in [0, 31].
    @return int256 The element, in [-128, 127].
    """
    assert i < 32, "int8: byte index out of range"
    # Move byte `i` to the top, then shift it back down arithmetically
    # (`>>` on int256 is SAR), which sign-extends it.
    top: uint256 = convert(word, uint256) << unsafe_mul(i, 8)
    return convert(convert(top, bytes32), int256) >> 248


@internal
@pure
def dot(x: Bytes[MAX_COLS], w: Bytes[MAX_COLS]) -> int256:
    """
    @dev The exact dot product `sum_j x[j] * w[j]` of two packed int8
         rows of equal length `k` (protocol.md section 4), by the SWAR
         method of the module's `@dev`. Reverts with
         "int8: length mismatch" if the lengths differ and with
         "int8: empty row" if `k == 0`.
    @param x A packed int8 row, 1 to MAX_COLS bytes.
    @param w A packed int8 row of the same length.
    @return int256 The exact dot product, `|result| <= 2**28`.
    """
    k: uint256 = len(x)
    assert k == len(w), "int8: length mismatch"
    assert k != 0, "int8: empty row"

    # sum u*v and the lane-wise byte sums S (the module's `@dev`).
    suv: uint256 = 0
    lanes: uint256 = 0
    n_words: uint256 = unsafe_add(k, 31) >> 5
    offset: uint256 = 0
    u: uint256 = 0
    v: uint256 = 0
    for _: uint256 in range(n_words, bound=MAX_WORDS):
        end: uint256 = unsafe_add(offset, 32)
        if end <= k:
            # A full word.
            u = convert(extract32(x, offset), uint256) ^ K80
            v = convert(extract32(w, offset), uint256) ^ K80
        elif k >= 32:
            # The tail, `r = k % 32` new bytes: read the last 32 bytes
            # and keep the low r bytes (the rest were counted already).
            keep: uint256 = unsafe_sub(ONE << unsafe_mul(unsafe_sub(k, offset), 8), 1)
            u = (convert(extract32(x, unsafe_sub(k, 32)), uint256) ^ K80) & keep
            v = (convert(extract32(w, unsafe_sub(k, 32)), uint256) ^ K80) & keep
        else:
            # A row shorter than a word (k < 32, the only iteration,
            # `u = v = 0` here): assemble it byte by byte at the top of
            # the word; the bytes below stay 0.
            for j: uint256 in range(k, bound=31):
                at: uint256 = unsafe_mul(unsafe_sub(31, j), 8)
                u = u | (convert(convert(slice(x, j, 1), bytes1), uint256) ^ 128) << at
                v = v | (convert(convert(slice(w, j, 1), bytes1), uint256) ^ 128) << at

        # v' = v with its eight 32-bit lanes reversed (point 2).
        v = ((v >> 32) & M32) | ((v & M32) << 32)
        v = ((v >> 64) & M64) | ((v & M64) << 64)
        v = (v >> 128) | (v << 128)

        # Each product's top lane is an 8-lane dot product < 2**20
        # (point 4); the total stays < 2**31.
        suv = unsafe_add(
            suv,
            unsafe_add(
                unsafe_add(unsafe_mul(u & M, v & M) >> 224, unsafe_mul((u >> 8) & M, (v >> 8) & M) >> 224),
                unsafe_add(unsafe_mul((u >> 16) & M, (v >> 16) & M) >> 224, unsafe_mul((u >> 24) & M, (v >> 24) & M) >> 224),
            ),
        )
        # Byte sums (point 5): first 16 lanes of 16 bits holding the sum
        # of two bytes of u and two of v (at most 4 * 255 = 1020), then
        # 8 lanes of 32 bits holding at most 8 * 255 = 2040 per word,
        # 1044480 over all words: no carries between lanes. Since `v`
        # is only permuted by whole lanes, its byte sum is unchanged.
        pairs: uint256 = unsafe_add(
            unsafe_add(u & M16, (u >> 8) & M16),
            unsafe_add(v & M16, (v >> 8) & M16),
        )
        lanes = unsafe_add(lanes, unsafe_add(pairs & M32L, (pairs >> 16) & M32L))
        offset = end

    # sum u + sum v, < 2**24 (point 5).
    byte_sum: uint256 = unsafe_mul(lanes, ONES) >> 224
    # Point 7: every term below is < 2**31, so the int256 arithmetic
    # is exact.
    return unsafe_sub(
        unsafe_add(convert(suv, int256), convert(unsafe_mul(k, 16384), int256)),
        convert(unsafe_mul(byte_sum, 128), int256),
    )
