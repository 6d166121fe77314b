#pragma version ~=0.4.3
"""
@title Argmax Verifier
@custom:contract-name ArgmaxVerifier
@notice The one step of `argmax` (kind 9, `docs/protocol.md` 5.8, `pair` and
        `carry` 5.14): `M = max_c x[r, c]`, `i* = min {c : x[r, c] = M}`;
        with `carry` and the carried pair `(vb, jb)` of row `r`,
        `(v, idx) = (vb, jb)` if `vb >= M`, else `(M, offset + i*)`; without,
        `(M, i*)`. The output row is `(idx)`, or `(v, idx)` with `pair`.
@dev Witness: `abi.encode(bytes params, bytes x, bytes32[] x_proof,
     bytes carry, bytes32[] carry_proof)`: `params` the header `enc(offset)`
     (32 bytes, hashed against `params_root`) with `carry`, empty and unread
     without it (`params_root = Z[0]`); `x` row `r` of slot `input_a` (int8,
     int16 or int32, at most MAX_COLS elements) with its proof against the
     slot's rows root; with `carry`, `carry` row `r` of slot `input_b` (two
     int32, 8 bytes) with its proof. The pass over the row loads one word per
     `32 / width` elements and compares the sign-extended lanes inline: an
     int32 chunk of 8192 logits is the step's cost (docs/benchmarks.md).
     Stateless.
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 9
FLAG_PAIR: constant(uint256) = 1
FLAG_CARRY: constant(uint256) = 2
MAX_COLS: constant(uint256) = 16384
MAX_WORDS: constant(uint256) = 2048  # 32-byte words of the longest row
MAX_WITNESS: constant(uint256) = rows.MAX_WITNESS
# @dev The game's MAX_PROOF: the bound of `step`'s `row_word_proof`.
MAX_PROOF: constant(uint256) = merkle.MAX_PROOF
MAX_PARAMS: constant(uint256) = 512


@external
@view
def step(game_id: uint256, column: uint256, row_word: bytes32, row_word_proof: DynArray[bytes32, MAX_PROOF],
         desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2], row: uint256,
         witness: Bytes[MAX_WITNESS]) -> int256:
    """
    @dev `y[row, column]` of the argmax `desc`: one pass over the row.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`, and of the carried pair with
           `carry`.
    @param row The output row.
    @param column The output column (0, or 0 and 1 with `pair`).
    @param witness `(params, x, x_proof, carry, carry_proof)`, ABI-encoded.
    @return int256 The output element.
    """
    assert desc.kind == KIND, "argmax: wrong kind"
    carry: bool = desc.flags & FLAG_CARRY != 0
    n_inputs: uint256 = 1
    if carry:
        n_inputs = 2
    assert len(inputs) == n_inputs, "argmax: wrong input count"
    assert column < desc.out_cols, "argmax: element out of range"
    params: Bytes[32] = b""
    x: Bytes[rows.MAX_ROW_BYTES] = b""
    x_proof: DynArray[bytes32, 16] = []
    pair: Bytes[8] = b""
    pair_proof: DynArray[bytes32, 16] = []
    params, x, x_proof, pair, pair_proof = abi_decode(
        witness, (Bytes[32], Bytes[rows.MAX_ROW_BYTES], DynArray[bytes32, 16], Bytes[8], DynArray[bytes32, 16])
    )
    hx: IVerifier.SlotHeader = inputs[0]
    w: uint256 = rows.width(hx.dtype)
    nx: uint256 = len(x)
    assert nx == hx.cols * w and rows.verify(
        keccak256(x), row, x_proof, rows.depth(hx.rows), hx.rows_root
    ), "argmax: input row not in its slot"
    # Two passes over the row's full words, each word's lanes at once (SWAR,
    # docs/protocol.md 10.9), then lane by lane over the tail (the bytes past
    # the last full word; a row under 32 bytes is all tail). Lanes are biased
    # to unsigned (XOR of each sign bit keeps the order) and the even and the
    # odd lanes spread into slots of 2b bits with a guard bit at bit b, so a
    # slot subtraction never borrows from the next: pass 1 keeps lane-wise
    # maxima (`(e + 2^b) - m` keeps the guard iff e >= m), pass 2 finds the
    # first word holding the maximum (`((e ^ M) + 2^b) - 1` clears the guard
    # iff e = M) and scans only that word: the lowest index of the maximum.
    # Its cost does not depend on the values (an ascending row costs what a
    # random one does).
    per: uint256 = 32 // w
    b: uint256 = 8 * w
    down: uint256 = 256 - b
    lane_max: uint256 = (1 << b) - 1
    sign: uint256 = max_value(uint256) // lane_max << (b - 1)
    slots: uint256 = max_value(uint256) // ((1 << (2 * b)) - 1)
    low: uint256 = slots * lane_max
    guard: uint256 = slots << b
    half_top: int256 = convert(1 << (b - 1), int256)
    n_full: uint256 = nx // 32
    # Pass 1: lane-wise maxima of the biased lanes (0 is the dtype's minimum).
    even_max: uint256 = 0
    odd_max: uint256 = 0
    for k: uint256 in range(n_full, bound=MAX_WORDS):
        u: uint256 = convert(extract32(x, unsafe_mul(k, 32)), uint256) ^ sign
        e: uint256 = u & low
        ge: uint256 = unsafe_mul((unsafe_sub(e | guard, even_max) & guard) >> b, lane_max)
        even_max = (e & ge) | (even_max & (ge ^ low))
        e = (u >> b) & low
        ge = unsafe_mul((unsafe_sub(e | guard, odd_max) & guard) >> b, lane_max)
        odd_max = (e & ge) | (odd_max & (ge ^ low))
    best: int256 = min_value(int256)
    if n_full != 0:
        top: uint256 = 0
        for k: uint256 in range(16):
            if k == per // 2:
                break
            top = max(top, max((even_max >> (2 * b * k)) & lane_max, (odd_max >> (2 * b * k)) & lane_max))
        best = convert(top, int256) - half_top
    # The tail: from element `first_tail`, in a window ending at the row's end.
    first_tail: uint256 = n_full * per
    tail_word: uint256 = 0
    tail_pos: uint256 = 0
    if nx < 32:
        for j: uint256 in range(nx, bound=31):
            tail_word = tail_word | convert(convert(slice(x, j, 1), bytes1), uint256) << (248 - 8 * j)
    elif first_tail < hx.cols:
        tail_word = convert(extract32(x, nx - 32), uint256)
        tail_pos = 8 * (n_full * 32 + 32 - nx)
    c: uint256 = first_tail
    for _: uint256 in range(32):
        if c >= hx.cols:
            break
        best = max(best, convert(convert(tail_word << (tail_pos + b * (c - first_tail)), bytes32), int256) >> down)
        c += 1
    # Pass 2: the first column holding `best`.
    best_c: uint256 = max_value(uint256)
    if n_full != 0 and best >= -half_top:
        mb: uint256 = convert(best + half_top, uint256) * slots
        for k: uint256 in range(n_full, bound=MAX_WORDS):
            word: uint256 = convert(extract32(x, unsafe_mul(k, 32)), uint256)
            u: uint256 = word ^ sign
            hits: uint256 = unsafe_sub(((u & low) ^ mb) | guard, slots) & unsafe_sub((((u >> b) & low) ^ mb) | guard, slots)
            if hits & guard != guard:
                for j: uint256 in range(32):
                    if convert(convert(word << (b * j), bytes32), int256) >> down == best:
                        best_c = k * per + j
                        break
                break
    if best_c == max_value(uint256):
        for t: uint256 in range(32):
            if first_tail + t >= hx.cols:
                break
            if convert(convert(tail_word << (tail_pos + b * t), bytes32), int256) >> down == best:
                best_c = first_tail + t
                break
    value: int256 = best
    index: int256 = convert(best_c, int256)
    if carry:
        assert len(params) == 32 and keccak256(params) == desc.params_root, "argmax: params header does not match"
        hc: IVerifier.SlotHeader = inputs[1]
        assert len(pair) == hc.cols * rows.width(hc.dtype) and rows.verify(
            keccak256(pair), row, pair_proof, rows.depth(hc.rows), hc.rows_root
        ), "argmax: carried row not in its slot"
        # The carried row is two int32 (8 bytes, checked above): one word.
        wd: uint256 = 0
        for j: uint256 in range(len(pair), bound=8):
            wd = wd | convert(convert(slice(pair, j, 1), bytes1), uint256) << (248 - 8 * j)
        carried: int256 = rows.lane(convert(wd, bytes32), 0, 4)
        if carried >= best:
            value = carried
            index = rows.lane(convert(wd, bytes32), 4, 4)
        else:
            index += extract32(params, 0, output_type=int256)
    if desc.flags & FLAG_PAIR != 0 and column == 0:
        return value
    return index


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.8 / 5.14: `[rows, 1]` (`[rows, 2]` with
         `pair`), int32; `(0, 0, 0)` when the op breaks argmax's rules.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`, and of the carried pair with
           `carry`.
    @param params With `carry` the params header `enc(offset)`; without, empty.
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "argmax: wrong kind"
    if desc.flags & ~(FLAG_PAIR | FLAG_CARRY) != 0:
        return (0, 0, 0)
    carry: bool = desc.flags & FLAG_CARRY != 0
    if not carry and desc.input_b != 0:
        return (0, 0, 0)
    if not carry and desc.params_root != empty(bytes32):
        return (0, 0, 0)
    n_inputs: uint256 = 1
    if carry:
        n_inputs = 2
    assert len(inputs) == n_inputs, "argmax: wrong input count"
    if carry:
        assert len(params) == 32 and keccak256(params) == desc.params_root, "argmax: params header does not match"
    else:
        assert len(params) == 0, "argmax: params header does not match"
    out_cols: uint256 = 1
    if desc.flags & FLAG_PAIR != 0:
        out_cols = 2
    if not rows.valid_cols(desc.in_cols, desc.out_cols) or desc.out_cols != out_cols:
        return (0, 0, 0)
    x: IVerifier.SlotHeader = inputs[0]
    if x.dtype > rows.DTYPE_INT16:
        return (0, 0, 0)
    if x.cols != desc.in_cols:
        return (0, 0, 0)
    if carry:
        offset: uint256 = extract32(params, 0, output_type=uint256)
        if offset < 1 or offset > 2**24:
            return (0, 0, 0)
        pair: IVerifier.SlotHeader = inputs[1]
        if pair.dtype != rows.DTYPE_INT32:
            return (0, 0, 0)
        if pair.cols != 2 or pair.rows != x.rows:
            return (0, 0, 0)
    return (x.rows, out_cols, rows.DTYPE_INT32)
