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
    # One pass: a word per `per` elements; lane `j` of a word is shifted to
    # the top and back down arithmetically (sign extension).
    per: uint256 = 32 // w
    down: uint256 = 256 - 8 * w
    short: bytes32 = empty(bytes32)
    if nx < 32:
        short = rows.short_word(x)
    best: int256 = min_value(int256)
    best_c: uint256 = 0
    word: uint256 = 0
    pos: uint256 = 0
    for c: uint256 in range(hx.cols, bound=MAX_COLS):
        if c % per == 0:
            o: uint256 = unsafe_mul(c, w)
            if unsafe_add(o, 32) <= nx:
                word = convert(extract32(x, o), uint256)
                pos = 0
            elif nx >= 32:
                st: uint256 = unsafe_sub(nx, 32)
                word = convert(extract32(x, st), uint256)
                pos = unsafe_mul(unsafe_sub(o, st), 8)
            else:
                word = convert(short, uint256)
                pos = unsafe_mul(o, 8)
        e: int256 = convert(convert(word << pos, bytes32), int256) >> down
        if e > best:
            best = e
            best_c = c
        pos = unsafe_add(pos, unsafe_mul(w, 8))
    value: int256 = best
    index: int256 = convert(best_c, int256)
    if carry:
        assert len(params) == 32 and keccak256(params) == desc.params_root, "argmax: params header does not match"
        hc: IVerifier.SlotHeader = inputs[1]
        assert len(pair) == hc.cols * rows.width(hc.dtype) and rows.verify(
            keccak256(pair), row, pair_proof, rows.depth(hc.rows), hc.rows_root
        ), "argmax: carried row not in its slot"
        carried: int256 = rows.element(pair, hc.dtype, 0)
        if carried >= best:
            value = carried
            index = rows.element(pair, hc.dtype, 1)
        else:
            index += extract32(params, 0, output_type=int256)
    if desc.flags & FLAG_PAIR != 0 and column == 0:
        return value
    return index
