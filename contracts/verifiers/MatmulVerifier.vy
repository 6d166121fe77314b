#pragma version ~=0.4.3
"""
@title Matmul Verifier
@custom:contract-name MatmulVerifier
@notice The one step of `matmul` (kind 2, `docs/protocol.md` 5.1, `grouped`
        5.14): with `g = ⌊r / T_a⌋`, `i = r - g·T_a`, `h = ⌊c / R_b⌋`,
        `j = c - h·R_b` and `hb = ⌊h·H_b / H⌋` (`hb = h` without `grouped`),
        `y[r, c] = rq(Σ_k A[r, h·K + k]·B[g·R_b + j, hb·K + k], m, s)`, or the
        dtype's minimum where `causal` masks `j > i`; `rq16` with `i16`.
@dev Witness: `abi.encode(bytes params, bytes a, bytes32[] a_proof, bytes b,
     bytes32[] b_proof)`: `params` the header `enc(H, T_a, m, s)` (128 bytes;
     `enc(H, T_a, m, s, H_b)`, 160 bytes, with `grouped`) hashed against
     `params_root`; `a` row `r` of slot `input_a`, `b` row `g·R_b + j` of slot
     `input_b` (int8 or int16 each), with their proofs against the slots' rows
     roots. Both rows are checked even where `causal` masks the element.
     Stateless. The dot product reads each operand's window inline (passing a
     row to an internal function would copy it at every element).
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 2
FLAG_CAUSAL: constant(uint256) = 1
FLAG_GROUPED: constant(uint256) = 2
FLAG_I16: constant(uint256) = 128
MAX_COLS: constant(uint256) = 16384
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
    @dev `y[row, column]` of the matmul `desc`: one dot product of `K` pairs.
    @param desc The op's descriptor.
    @param inputs The headers of slots `input_a` and `input_b`.
    @param row The output row.
    @param column The output column.
    @param witness `(params, a, a_proof, b, b_proof)`, ABI-encoded.
    @return int256 The output element.
    """
    assert desc.kind == KIND, "matmul: wrong kind"
    assert len(inputs) == 2, "matmul: wrong input count"
    assert column < desc.out_cols, "matmul: element out of range"
    params: Bytes[160] = b""
    a: Bytes[32768] = b""
    a_proof: DynArray[bytes32, 16] = []
    b: Bytes[32768] = b""
    b_proof: DynArray[bytes32, 16] = []
    params, a, a_proof, b, b_proof = abi_decode(
        witness, (Bytes[160], Bytes[32768], DynArray[bytes32, 16], Bytes[32768], DynArray[bytes32, 16])
    )
    grouped: bool = desc.flags & FLAG_GROUPED != 0
    header_len: uint256 = 128
    if grouped:
        header_len = 160
    assert len(params) == header_len and keccak256(params) == desc.params_root, \
        "matmul: params header does not match"
    heads: uint256 = extract32(params, 0, output_type=uint256)
    t_a: uint256 = extract32(params, 32, output_type=uint256)
    m: int256 = extract32(params, 64, output_type=int256)
    s: uint256 = extract32(params, 96, output_type=uint256)
    k_len: uint256 = desc.in_cols // heads
    r_b: uint256 = desc.out_cols // heads
    g: uint256 = row // t_a
    i: uint256 = row % t_a
    h: uint256 = column // r_b
    j: uint256 = column % r_b
    hb: uint256 = h
    if grouped:
        hb = h * extract32(params, 128, output_type=uint256) // heads
    ha: IVerifier.SlotHeader = inputs[0]
    hdr_b: IVerifier.SlotHeader = inputs[1]
    wa: uint256 = rows.width(ha.dtype)
    wb: uint256 = rows.width(hdr_b.dtype)
    assert len(a) == ha.cols * wa and rows.verify(
        keccak256(a), row, a_proof, rows.depth(ha.rows), ha.rows_root
    ), "matmul: row of input a not in its slot"
    assert len(b) == hdr_b.cols * wb and rows.verify(
        keccak256(b), g * r_b + j, b_proof, rows.depth(hdr_b.rows), hdr_b.rows_root
    ), "matmul: row of input b not in its slot"
    i16: bool = desc.flags & FLAG_I16 != 0
    if desc.flags & FLAG_CAUSAL != 0 and j > i:
        if i16:
            return rows.INT16_MIN
        return rows.INT8_MIN
    # The K pairs, each operand read a word at a time in place: a row passed
    # to an internal function would be copied into the callee's frame.
    na: uint256 = len(a)
    nb: uint256 = len(b)
    short_a: uint256 = 0
    if na < 32:
        for q: uint256 in range(na, bound=31):
            short_a = short_a | convert(convert(slice(a, q, 1), bytes1), uint256) << (248 - 8 * q)
    short_b: uint256 = 0
    if nb < 32:
        for q: uint256 in range(nb, bound=31):
            short_b = short_b | convert(convert(slice(b, q, 1), bytes1), uint256) << (248 - 8 * q)
    oa: uint256 = h * k_len * wa
    ob: uint256 = hb * k_len * wb
    down_a: uint256 = 256 - 8 * wa
    down_b: uint256 = 256 - 8 * wb
    word_a: uint256 = 0
    word_b: uint256 = 0
    pos_a: uint256 = 256
    pos_b: uint256 = 256
    acc: int256 = 0
    for _: uint256 in range(k_len, bound=MAX_COLS):
        if pos_a >= 256:
            if oa + 32 <= na:
                word_a = convert(extract32(a, oa), uint256)
                pos_a = 0
            elif na >= 32:
                word_a = convert(extract32(a, na - 32), uint256)
                pos_a = 8 * (oa + 32 - na)
            else:
                word_a = short_a
                pos_a = 8 * oa
        if pos_b >= 256:
            if ob + 32 <= nb:
                word_b = convert(extract32(b, ob), uint256)
                pos_b = 0
            elif nb >= 32:
                word_b = convert(extract32(b, nb - 32), uint256)
                pos_b = 8 * (ob + 32 - nb)
            else:
                word_b = short_b
                pos_b = 8 * ob
        ea: int256 = convert(convert(word_a << pos_a, bytes32), int256) >> down_a
        eb: int256 = convert(convert(word_b << pos_b, bytes32), int256) >> down_b
        acc = unsafe_add(acc, unsafe_mul(ea, eb))
        pos_a = unsafe_add(pos_a, 8 * wa)
        pos_b = unsafe_add(pos_b, 8 * wb)
        oa = unsafe_add(oa, wa)
        ob = unsafe_add(ob, wb)
    return rows.requantize(acc, m, s, i16)


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.1 / 5.14: `[rows_a, out_cols]`, int8 (int16
         with `i16`); `(0, 0, 0)` when the op breaks matmul's rules.
    @param desc The op's descriptor.
    @param inputs The headers of slots `input_a` and `input_b`.
    @param params The params header `enc(H, T_a, m, s)` (with `grouped`
           `enc(H, T_a, m, s, H_b)`).
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "matmul: wrong kind"
    if desc.flags & ~(FLAG_CAUSAL | FLAG_GROUPED | FLAG_I16) != 0:
        return (0, 0, 0)
    assert len(inputs) == 2, "matmul: wrong input count"
    grouped: bool = desc.flags & FLAG_GROUPED != 0
    header_len: uint256 = 128
    if grouped:
        header_len = 160
    assert len(params) == header_len and keccak256(params) == desc.params_root, \
        "matmul: params header does not match"
    heads: uint256 = extract32(params, 0, output_type=uint256)
    t_a: uint256 = extract32(params, 32, output_type=uint256)
    if not rows.valid_cols(desc.in_cols, desc.out_cols):
        return (0, 0, 0)
    if not rows.divides(heads, desc.in_cols) or not rows.divides(heads, desc.out_cols):
        return (0, 0, 0)
    if t_a < 1 or t_a > rows.MAX_ROWS:
        return (0, 0, 0)
    if not rows.valid_rq(extract32(params, 64, output_type=uint256), extract32(params, 96, output_type=uint256)):
        return (0, 0, 0)
    k_len: uint256 = desc.in_cols // heads
    b_cols: uint256 = desc.in_cols
    if grouped:
        kv: uint256 = extract32(params, 128, output_type=uint256)
        if kv < 1 or kv >= heads or heads % kv != 0:
            return (0, 0, 0)
        b_cols = kv * k_len
    ha: IVerifier.SlotHeader = inputs[0]
    hb: IVerifier.SlotHeader = inputs[1]
    if not rows.activation(ha.dtype) or not rows.activation(hb.dtype):
        return (0, 0, 0)
    # 5.0: at most one int16 operand, and then K <= 511.
    if ha.dtype == rows.DTYPE_INT16 and hb.dtype == rows.DTYPE_INT16:
        return (0, 0, 0)
    if (ha.dtype == rows.DTYPE_INT16 or hb.dtype == rows.DTYPE_INT16) and k_len > 511:
        return (0, 0, 0)
    if ha.cols != desc.in_cols or hb.cols != b_cols:
        return (0, 0, 0)
    if ha.rows % t_a != 0 or hb.rows != ha.rows // t_a * (desc.out_cols // heads):
        return (0, 0, 0)
    return (ha.rows, desc.out_cols, rows.out_dtype(desc.flags))
