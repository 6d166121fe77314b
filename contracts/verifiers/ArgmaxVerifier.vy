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
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 9
FLAG_PAIR: constant(uint256) = 1
FLAG_CARRY: constant(uint256) = 2
MAX_COLS: constant(uint256) = 16384
MAX_WITNESS: constant(uint256) = rows.MAX_WITNESS


@external
@view
def element(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2], row: uint256,
            column: uint256, witness: Bytes[MAX_WITNESS]) -> int256:
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
    # One pass in row order. A full word of `per` lanes is first tested at once
    # (SWAR): lanes biased to unsigned (XOR of each sign bit keeps the order),
    # the even and the odd lanes spread into slots of 2b bits with a guard bit
    # at bit b; `(lane + 2^b) - (best' + 1)` keeps the guard iff lane > best'
    # (no borrow crosses a slot: lane < 2^b and best' + 1 <= 2^b). Only a word
    # with a lane above the running maximum is scanned lane by lane (the
    # first word, the tail and a row under 32 bytes always are), so ties keep
    # the lowest index.
    per: uint256 = 32 // w
    b: uint256 = 8 * w
    down: uint256 = 256 - b
    lane_max: uint256 = (1 << b) - 1
    ones: uint256 = max_value(uint256) // lane_max
    sign: uint256 = ones << (b - 1)
    slots: uint256 = max_value(uint256) // ((1 << (2 * b)) - 1)
    low: uint256 = slots * lane_max
    guard: uint256 = slots << b
    half_top: uint256 = 1 << (b - 1)
    short: uint256 = 0
    if nx < 32:
        for j: uint256 in range(nx, bound=31):
            short = short | convert(convert(slice(x, j, 1), bytes1), uint256) << (248 - 8 * j)
    best: int256 = min_value(int256)
    best_c: uint256 = 0
    threshold: uint256 = 0  # (best biased + 1) in every slot
    c: uint256 = 0
    for _: uint256 in range(MAX_COLS):
        if c >= hx.cols:
            break
        o: uint256 = unsafe_mul(c, w)
        word: uint256 = 0
        pos: uint256 = 0
        full: bool = unsafe_add(o, 32) <= nx
        if full:
            word = convert(extract32(x, o), uint256)
            if c != 0:
                u: uint256 = word ^ sign
                above: uint256 = (unsafe_sub((u & low) | guard, threshold) | unsafe_sub(((u >> b) & low) | guard, threshold)) & guard
                if above == 0:
                    c = unsafe_add(c, per)
                    continue
        elif nx >= 32:
            word = convert(extract32(x, unsafe_sub(nx, 32)), uint256)
            pos = unsafe_mul(unsafe_sub(o, unsafe_sub(nx, 32)), 8)
        else:
            word = short
            pos = unsafe_mul(o, 8)
        # Lane by lane, to the end of the word or of the row.
        for _j: uint256 in range(32):
            if pos >= 256 or c >= hx.cols:
                break
            e: int256 = convert(convert(word << pos, bytes32), int256) >> down
            if e > best:
                best = e
                best_c = c
            pos = unsafe_add(pos, b)
            c = unsafe_add(c, 1)
        if best == convert(half_top - 1, int256):
            break  # the dtype's maximum: nothing later is greater
        threshold = unsafe_mul(unsafe_add(convert(best + convert(half_top, int256), uint256), 1), slots)
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
