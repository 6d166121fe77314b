#pragma version ~=0.4.3
"""
@title Packed Rows
@custom:contract-name rows
@notice Element `c` of a packed `int8`, `int16` or `int32` row (`docs/protocol.md`
        section 3: one byte, two or four big-endian bytes per element, two's
        complement), the row leaf `H(packed row)` and its proof against a rows
        root, and the requantization `rq`/`rq16` of 5.0: what every one-step
        verifier (`contracts/verifiers/`) shares.
@dev Stateless: import it (`from ..modules import rows`); it needs no
     `initializes:`. Passing a `Bytes` to an internal function copies it into
     the callee's frame, so the verifiers' loops over a row read its words
     inline (`extract32` of a window, then `lane`) and call `element` only for
     a few reads; `lane` takes a word by value and copies nothing.
     A window is the 32 bytes at `st = min(o, n - 32)` for an element at byte
     offset `o` of a row of `n >= 32` bytes: it always lies inside the row and
     holds the whole element (`o + width <= n`), at byte `o - st` of the word.
     A row shorter than 32 bytes is read from `short_word` (the row's bytes at
     the top of a zero word).
"""

# @dev Section 3's dtype codes.
DTYPE_INT8: constant(uint256) = 0
DTYPE_INT32: constant(uint256) = 1
DTYPE_INT16: constant(uint256) = 2

# @dev The longest packed row: MAX_COLS (16384) int32 elements.
MAX_ROW_BYTES: constant(uint256) = 65536

# @dev The deepest tree a verifier checks a proof in: embed's token table
# (V <= 2^24, protocol.md 5.7); slots' trees have depth at most 16.
MAX_PROOF: constant(uint256) = 24

# @dev The longest witness (IVerifier.vyi: interface constants are not
# importable in Vyper 0.4.3, so it is repeated here).
MAX_WITNESS: constant(uint256) = 81920

# @dev The clamps of rq (int8) and rq16 (int16), protocol.md 5.0.
INT8_MIN: constant(int256) = -128
INT8_MAX: constant(int256) = 127
INT16_MIN: constant(int256) = -32768
INT16_MAX: constant(int256) = 32767


@internal
@pure
def width(dtype: uint256) -> uint256:
    """
    @dev Bytes per element of a dtype: 1 (int8), 4 (int32), 2 (int16).
         Reverts with "rows: unknown dtype" for any other code.
    @param dtype The dtype code of section 3.
    @return uint256 The element width in bytes.
    """
    assert dtype <= DTYPE_INT16, "rows: unknown dtype"
    if dtype == DTYPE_INT8:
        return 1
    if dtype == DTYPE_INT32:
        return 4
    return 2


@internal
@pure
def lane(word: bytes32, pos: uint256, width_: uint256) -> int256:
    """
    @dev The signed big-endian element of `width_` bytes at byte `pos` of
         `word` (byte 0 the most significant), `pos + width_ <= 32`: shift it
         to the top, then back down arithmetically (`>>` on int256 is SAR),
         which sign-extends it.
    @param word The 32-byte window holding the element.
    @param pos The element's first byte in the word.
    @param width_ The element width, 1, 2 or 4.
    @return int256 The element.
    """
    top: uint256 = convert(word, uint256) << (pos * 8)
    return convert(convert(top, bytes32), int256) >> (256 - width_ * 8)


@internal
@pure
def short_word(row: Bytes[MAX_ROW_BYTES]) -> bytes32:
    """
    @dev The first `min(len(row), 32)` bytes of `row` at the top of a word,
         zero below: the window of a row shorter than 32 bytes (`extract32`
         needs 32 bytes).
    @param row A packed row.
    @return bytes32 The row's leading bytes, left-aligned.
    """
    n: uint256 = len(row)
    if n >= 32:
        return extract32(row, 0)
    acc: uint256 = 0
    for j: uint256 in range(n, bound=31):
        acc = acc | convert(convert(slice(row, j, 1), bytes1), uint256) << ((31 - j) * 8)
    return convert(acc, bytes32)


@internal
@pure
def element(row: Bytes[MAX_ROW_BYTES], dtype: uint256, c: uint256) -> int256:
    """
    @dev Element `c` of a packed row of `dtype` (section 3). Reverts with
         "rows: unknown dtype" or "rows: column out of range" (the element
         does not lie inside the row).
    @param row A packed row.
    @param dtype Its dtype code.
    @param c The column.
    @return int256 The element.
    """
    w: uint256 = self.width(dtype)
    o: uint256 = c * w
    n: uint256 = len(row)
    assert o + w <= n, "rows: column out of range"
    if n < 32:
        return self.lane(self.short_word(row), o, w)
    st: uint256 = min(o, n - 32)
    return self.lane(extract32(row, st), o - st, w)


@internal
@pure
def leaf(row: Bytes[MAX_ROW_BYTES]) -> bytes32:
    """
    @dev The row leaf `L = H(packed row)` of section 3.
    @param row A packed row.
    @return bytes32 Its leaf.
    """
    return keccak256(row)


@internal
@pure
def depth(n: uint256) -> uint256:
    """
    @dev `depth(n)` of section 2: the bit length of `n - 1` (0 for `n <= 1`;
         the callers pass a committed count, at least 1).
    @param n The number of leaves.
    @return uint256 The tree depth.
    """
    m: uint256 = n
    if m != 0:
        m = m - 1
    d: uint256 = 0
    for _: uint256 in range(256):
        if m == 0:
            break
        m = m >> 1
        d += 1
    return d


@internal
@pure
def verify(leaf_: bytes32, index: uint256, proof: DynArray[bytes32, MAX_PROOF], depth_: uint256,
           root: bytes32) -> bool:
    """
    @dev Section 2's proof check, for trees up to depth 24 (the `merkle`
         module's stops at 16): exactly `depth_` siblings, `index < 2**depth_`,
         and the fold equals `root`. Never reverts.
    @param leaf_ The leaf.
    @param index Its position.
    @param proof The siblings, bottom-up.
    @param depth_ The committed depth.
    @param root The committed root.
    @return bool Whether the proof holds.
    """
    if len(proof) != depth_:
        return False
    if index >> depth_ != 0:
        return False
    node: bytes32 = leaf_
    bits: uint256 = index
    for sibling: bytes32 in proof:
        if bits & 1 == 0:
            node = keccak256(concat(node, sibling))
        else:
            node = keccak256(concat(sibling, node))
        bits = bits >> 1
    return node == root


@internal
@pure
def clamp(v: int256, i16: bool) -> int256:
    """
    @dev Clamps to int8, or to int16 with `i16` (5.0).
    @param v The value.
    @param i16 Whether the output is int16.
    @return int256 The clamped value.
    """
    if i16:
        return min(max(v, INT16_MIN), INT16_MAX)
    return min(max(v, INT8_MIN), INT8_MAX)


@internal
@pure
def requantize(acc: int256, m: int256, s: uint256, i16: bool) -> int256:
    """
    @dev `rq(acc, m, s) = clamp((acc * m + 2**(s - 1)) >> s)` of 5.0 (round
         half toward +infinity; `>>` is SAR), `rq16` with `i16`. Checked
         arithmetic: with the protocol's ranges (`s` in [1, 62], `m` in
         [1, 2**31 - 1], `|acc| <= 2**47`) nothing comes near int256's bounds;
         `s = 0` reverts on the subtraction.
    @param acc The exact accumulator.
    @param m The multiplier.
    @param s The shift.
    @param i16 Whether the output is int16.
    @return int256 The requantized value.
    """
    half: int256 = 1 << (s - 1)
    return self.clamp((acc * m + half) >> s, i16)


# ---------------------------------------------------------------------------
# Shape rules (`output_header`, protocol.md 5.0-5.14 and 10.9)

# @dev Section 8's limits of a slot (a tensor is `[rows, cols]` with
# `1 <= rows <= MAX_ROWS`, `1 <= cols <= MAX_COLS`).
MAX_ROWS: constant(uint256) = 65536
MAX_COLS: constant(uint256) = 16384

# @dev `element`'s answer when a value the one step reveals breaks its range
# (a committed table entry, column leaf or weight leaf; protocol.md 7.4): no
# claimed element (an int32 at most) equals it, so the solver loses the step.
MALFORMED: constant(int256) = min_value(int256)

# @dev 5.0's ranges of a requantization: `m` in [1, 2^31 - 1], `s` in [1, 62].
MAX_MULTIPLIER: constant(uint256) = 2**31 - 1
MAX_SHIFT: constant(uint256) = 62

# @dev Flag `i16` (bit 7) of every kind that writes activations.
FLAG_I16: constant(uint256) = 128


@internal
@pure
def valid_rq(m: uint256, s: uint256) -> bool:
    """
    @dev Whether `(m, s)` (a params header's words, unsigned) are in 5.0's
         ranges: `m` in [1, 2^31 - 1], `s` in [1, 62].
    """
    return m >= 1 and m <= MAX_MULTIPLIER and s >= 1 and s <= MAX_SHIFT


@internal
@pure
def valid_cols(in_cols: uint256, out_cols: uint256) -> bool:
    """
    @dev Whether a descriptor's column counts are those of tensors
         (section 3: `1 <= cols <= MAX_COLS`).
    """
    return in_cols >= 1 and in_cols <= MAX_COLS and out_cols >= 1 and out_cols <= MAX_COLS


@internal
@pure
def divides(h: uint256, n: uint256) -> bool:
    """
    @dev Whether `h >= 1` divides `n`.
    """
    return h >= 1 and n % h == 0


@internal
@pure
def activation(dtype: uint256) -> bool:
    """
    @dev Whether a slot of `dtype` may feed a kind that reads activations
         (5.0 "Dtypes of inputs": `int8` or `int16`).
    """
    return dtype == DTYPE_INT8 or dtype == DTYPE_INT16


@internal
@pure
def out_dtype(flags: uint256) -> uint256:
    """
    @dev The output dtype of a kind that writes activations: `int16` with
         flag `i16`, else `int8`.
    """
    if flags & FLAG_I16 != 0:
        return DTYPE_INT16
    return DTYPE_INT8
