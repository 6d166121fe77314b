#pragma version ~=0.4.3
"""
@title Mul Verifier
@custom:contract-name MulVerifier
@notice The one step of `mul` (kind 11, `docs/protocol.md` 5.13):
        `y[r, c] = rq(a[r, c]·b[r, c], m, s)` (`rq16` with flag `i16`).
@dev Witness: `abi.encode(bytes params, bytes a, bytes32[] a_proof, bytes b,
     bytes32[] b_proof)`: `params` the header `enc(m, s)` (64 bytes,
     hashed against `params_root`); `a`, `b` row `r` of slots `input_a` and
     `input_b` (int8 or int16, `in_cols` elements each) with their proofs
     against the slots' rows roots. Stateless.
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 11
FLAG_I16: constant(uint256) = 128
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
    @dev `y[row, column]` of the mul `desc`, from row `row` of each input.
    @param desc The op's descriptor.
    @param inputs The headers of slots `input_a` and `input_b`.
    @param row The output row.
    @param column The output column.
    @param witness `(params, a, a_proof, b, b_proof)`, ABI-encoded.
    @return int256 The output element.
    """
    assert desc.kind == KIND, "mul: wrong kind"
    assert len(inputs) == 2, "mul: wrong input count"
    assert column < desc.out_cols, "mul: element out of range"
    params: Bytes[64] = b""
    a: Bytes[32768] = b""
    a_proof: DynArray[bytes32, 16] = []
    b: Bytes[32768] = b""
    b_proof: DynArray[bytes32, 16] = []
    params, a, a_proof, b, b_proof = abi_decode(
        witness, (Bytes[64], Bytes[32768], DynArray[bytes32, 16], Bytes[32768], DynArray[bytes32, 16])
    )
    assert keccak256(params) == desc.params_root, "mul: params header does not match"
    ha: IVerifier.SlotHeader = inputs[0]
    hb: IVerifier.SlotHeader = inputs[1]
    assert len(a) == ha.cols * rows.width(ha.dtype) and rows.verify(
        keccak256(a), row, a_proof, rows.depth(ha.rows), ha.rows_root
    ), "mul: row of input a not in its slot"
    assert len(b) == hb.cols * rows.width(hb.dtype) and rows.verify(
        keccak256(b), row, b_proof, rows.depth(hb.rows), hb.rows_root
    ), "mul: row of input b not in its slot"
    m: int256 = extract32(params, 0, output_type=int256)
    s: uint256 = extract32(params, 32, output_type=uint256)
    # |a·b| <= 2^30 (two int16 inputs): rq fits in int64 (5.13).
    wa: uint256 = rows.width(ha.dtype)
    wb: uint256 = rows.width(hb.dtype)
    na: uint256 = len(a)
    nb: uint256 = len(b)
    oa: uint256 = column * wa
    ob: uint256 = column * wb
    # ea: the element at byte oa of `a`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd_a: uint256 = 0
    sh_a: uint256 = 0
    if na >= 32:
        st_a: uint256 = min(oa, na - 32)
        wd_a = convert(extract32(a, st_a), uint256)
        sh_a = 8 * (oa - st_a)
    else:
        for j: uint256 in range(na, bound=31):
            wd_a = wd_a | convert(convert(slice(a, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh_a = 8 * oa
    ea: int256 = rows.lane(convert(wd_a, bytes32), sh_a // 8, wa)
    # eb: the element at byte ob of `b`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd_b: uint256 = 0
    sh_b: uint256 = 0
    if nb >= 32:
        st_b: uint256 = min(ob, nb - 32)
        wd_b = convert(extract32(b, st_b), uint256)
        sh_b = 8 * (ob - st_b)
    else:
        for j: uint256 in range(nb, bound=31):
            wd_b = wd_b | convert(convert(slice(b, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh_b = 8 * ob
    eb: int256 = rows.lane(convert(wd_b, bytes32), sh_b // 8, wb)
    acc: int256 = ea * eb
    return rows.requantize(acc, m, s, desc.flags & FLAG_I16 != 0)


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.13: `[rows, n]`, int8 (int16 with `i16`);
         `(0, 0, 0)` when the op breaks mul's rules.
    @param desc The op's descriptor.
    @param inputs The headers of slots `input_a` and `input_b`.
    @param params The params header `enc(m, s)`.
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "mul: wrong kind"
    if desc.flags & ~FLAG_I16 != 0:
        return (0, 0, 0)
    assert len(inputs) == 2, "mul: wrong input count"
    assert len(params) == 64 and keccak256(params) == desc.params_root, "mul: params header does not match"
    if not rows.valid_rq(extract32(params, 0, output_type=uint256), extract32(params, 32, output_type=uint256)):
        return (0, 0, 0)
    if not rows.valid_cols(desc.in_cols, desc.out_cols) or desc.out_cols != desc.in_cols:
        return (0, 0, 0)
    ha: IVerifier.SlotHeader = inputs[0]
    hb: IVerifier.SlotHeader = inputs[1]
    if not rows.activation(ha.dtype) or not rows.activation(hb.dtype):
        return (0, 0, 0)
    if ha.cols != desc.in_cols or hb.cols != desc.in_cols:
        return (0, 0, 0)
    if hb.rows != ha.rows:
        return (0, 0, 0)
    return (ha.rows, desc.out_cols, rows.out_dtype(desc.flags))
