#pragma version ~=0.4.3
"""
@title Transpose Verifier
@custom:contract-name TransposeVerifier
@notice The one step of `transpose` (kind 3, `docs/protocol.md` 5.2): output
        element `(r, x)` is input row `g·R_in + i`'s column `h·C + c`, with
        `g = ⌊r / C⌋`, `c = r - g·C`, `h = ⌊x / R_in⌋`, `i = x - h·R_in`.
@dev Witness: `abi.encode(bytes params, bytes x, bytes32[] x_proof)`:
     `params` the params header `enc(H)` (32 bytes, hashed against
     `params_root`), `x` the packed input row (int8 or int16, `in_cols`
     elements), `x_proof` its proof against the input's rows root (depth
     `depth(rows_in)`). Stateless.
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 3
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
    @dev `y[row, column]` of the transpose `desc`, from one input row.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param row The output row.
    @param column The output column.
    @param witness `(params, x, x_proof)`, ABI-encoded.
    @return int256 The output element (the input's dtype).
    """
    assert desc.kind == KIND, "transpose: wrong kind"
    assert len(inputs) == 1, "transpose: wrong input count"
    assert column < desc.out_cols, "transpose: element out of range"
    params: Bytes[32] = b""
    x: Bytes[32768] = b""
    x_proof: DynArray[bytes32, 16] = []
    params, x, x_proof = abi_decode(witness, (Bytes[32], Bytes[32768], DynArray[bytes32, 16]))
    assert keccak256(params) == desc.params_root, "transpose: params header does not match"
    heads: uint256 = extract32(params, 0, output_type=uint256)
    c_in: uint256 = desc.in_cols // heads
    r_in: uint256 = desc.out_cols // heads
    g: uint256 = row // c_in
    c: uint256 = row % c_in
    h: uint256 = column // r_in
    i: uint256 = column % r_in
    a: IVerifier.SlotHeader = inputs[0]
    # INVARIANT: the row is exactly `cols` elements of the slot's dtype and is
    # leaf `g·R_in + i` of its rows root.
    assert len(x) == a.cols * rows.width(a.dtype) and rows.verify(
        keccak256(x), g * r_in + i, x_proof, rows.depth(a.rows), a.rows_root
    ), "transpose: input row not in its slot"
    w: uint256 = rows.width(a.dtype)
    o: uint256 = (h * c_in + c) * w
    n: uint256 = len(x)
    # y: the element at byte o of `x`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd: uint256 = 0
    sh: uint256 = 0
    if n >= 32:
        st: uint256 = min(o, n - 32)
        wd = convert(extract32(x, st), uint256)
        sh = 8 * (o - st)
    else:
        for j: uint256 in range(n, bound=31):
            wd = wd | convert(convert(slice(x, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh = 8 * o
    y: int256 = rows.lane(convert(wd, bytes32), sh // 8, w)
    return y


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.2: `[G·C, out_cols]` of the input's dtype;
         `(0, 0, 0)` when the op breaks transpose's rules.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param params The params header `enc(H)`.
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "transpose: wrong kind"
    if desc.flags != 0:
        return (0, 0, 0)
    if desc.input_b != 0:
        return (0, 0, 0)
    assert len(inputs) == 1, "transpose: wrong input count"
    assert len(params) == 32 and keccak256(params) == desc.params_root, "transpose: params header does not match"
    heads: uint256 = extract32(params, 0, output_type=uint256)
    if not rows.valid_cols(desc.in_cols, desc.out_cols):
        return (0, 0, 0)
    if not rows.divides(heads, desc.in_cols) or not rows.divides(heads, desc.out_cols):
        return (0, 0, 0)
    a: IVerifier.SlotHeader = inputs[0]
    if not rows.activation(a.dtype):
        return (0, 0, 0)
    if a.cols != desc.in_cols:
        return (0, 0, 0)
    r_in: uint256 = desc.out_cols // heads
    if a.rows % r_in != 0:
        return (0, 0, 0)
    return (a.rows // r_in * (desc.in_cols // heads), desc.out_cols, a.dtype)
