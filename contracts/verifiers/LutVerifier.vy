#pragma version ~=0.4.3
"""
@title Lut Verifier
@custom:contract-name LutVerifier
@notice The one step of `lut` (kind 5, `docs/protocol.md` 5.4):
        `y[r, c] = τ[x[r, c] + 128]`, `τ` 256 int8 entries (int16 with `i16`).
@dev Witness: `abi.encode(bytes table, bytes x, bytes32[] x_proof)`: `table`
     the packed `τ` (256 bytes, or 512 with `i16`: the params header itself,
     hashed against `params_root`), `x` row `r` of slot `input_a` (int8,
     `in_cols` elements) with its proof against the slot's rows root.
     Stateless.
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 5
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
    @dev `y[row, column]` of the lut `desc`: one lookup.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param row The output row.
    @param column The output column.
    @param witness `(table, x, x_proof)`, ABI-encoded.
    @return int256 The output element.
    """
    assert desc.kind == KIND, "lut: wrong kind"
    assert len(inputs) == 1, "lut: wrong input count"
    assert column < desc.out_cols, "lut: element out of range"
    table: Bytes[512] = b""
    x: Bytes[16384] = b""
    x_proof: DynArray[bytes32, 16] = []
    table, x, x_proof = abi_decode(witness, (Bytes[512], Bytes[16384], DynArray[bytes32, 16]))
    entry: uint256 = rows.DTYPE_INT8
    if desc.flags & FLAG_I16 != 0:
        entry = rows.DTYPE_INT16
    # INVARIANT: 256 entries of the output dtype, hashing to params_root.
    assert len(table) == 256 * rows.width(entry) and keccak256(table) == desc.params_root, \
        "lut: table does not match"
    a: IVerifier.SlotHeader = inputs[0]
    assert len(x) == a.cols * rows.width(a.dtype) and rows.verify(
        keccak256(x), row, x_proof, rows.depth(a.rows), a.rows_root
    ), "lut: input row not in its slot"
    w: uint256 = rows.width(a.dtype)
    n: uint256 = len(x)
    o: uint256 = column * w
    # v: the element at byte o of `x`, read in place (a row passed
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
    v: int256 = rows.lane(convert(wd, bytes32), sh // 8, w)
    # The table is at least 256 bytes: its window is read directly.
    we: uint256 = rows.width(entry)
    at: uint256 = convert(v + 128, uint256) * we
    st: uint256 = min(at, len(table) - 32)
    return rows.lane(extract32(table, st), at - st, we)


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.4: `[rows, n]`, int8 (int16 with `i16`);
         `(0, 0, 0)` when the op breaks lut's rules.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param params The params header: the packed table (256 bytes, 512 with `i16`).
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "lut: wrong kind"
    if desc.flags & ~FLAG_I16 != 0:
        return (0, 0, 0)
    if desc.input_b != 0:
        return (0, 0, 0)
    assert len(inputs) == 1, "lut: wrong input count"
    table_len: uint256 = 256
    if desc.flags & FLAG_I16 != 0:
        table_len = 512
    assert len(params) == table_len and keccak256(params) == desc.params_root, "lut: params header does not match"
    if not rows.valid_cols(desc.in_cols, desc.out_cols) or desc.out_cols != desc.in_cols:
        return (0, 0, 0)
    a: IVerifier.SlotHeader = inputs[0]
    if a.dtype != rows.DTYPE_INT8:
        return (0, 0, 0)
    if a.cols != desc.in_cols:
        return (0, 0, 0)
    return (a.rows, desc.out_cols, rows.out_dtype(desc.flags))
