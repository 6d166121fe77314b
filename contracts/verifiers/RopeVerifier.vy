#pragma version ~=0.4.3
"""
@title Rope Verifier
@custom:contract-name RopeVerifier
@notice The one step of `rope` (kind 10, `docs/protocol.md` 5.12): with
        `h = ⌊c / D⌋`, `i = c - h·D`, `t = r mod T` and row `t` of the
        rotation table `(c_0 … c_{D/2-1}, s_0 … s_{D/2-1})`, column `c` pairs
        with `c + D/2` (`i < D/2`: `rq(a·c_i - b·s_i, m, s)`) or `c - D/2`
        (`rq(b·c_i + a·s_i, m, s)`), `a = x[r, h·D + i mod D/2]`,
        `b = x[r, h·D + i mod D/2 + D/2]`; `rq16` with `i16`.
@dev Witness: `abi.encode(bytes params, bytes x, bytes32[] x_proof,
     bytes table_row, bytes32[] table_proof)`: `params` the header
     `enc(H, T, m, s, CR)` (160 bytes) hashed against `params_root`; `x` row
     `r` of slot `input_a` (int8 or int16) with its proof against the slot's
     rows root; `table_row` row `t` of `R` (`D` int16 entries) with its proof
     against `CR` (depth `depth(T)`). Stateless.
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 10
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
    @dev `y[row, column]` of the rope `desc`: two products, one rq.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param row The output row.
    @param column The output column.
    @param witness `(params, x, x_proof, table_row, table_proof)`, ABI-encoded.
    @return int256 The output element.
    """
    assert desc.kind == KIND, "rope: wrong kind"
    assert len(inputs) == 1, "rope: wrong input count"
    assert column < desc.out_cols, "rope: element out of range"
    params: Bytes[160] = b""
    x: Bytes[32768] = b""
    x_proof: DynArray[bytes32, 16] = []
    table_row: Bytes[32768] = b""
    table_proof: DynArray[bytes32, 16] = []
    params, x, x_proof, table_row, table_proof = abi_decode(
        witness, (Bytes[160], Bytes[32768], DynArray[bytes32, 16], Bytes[32768], DynArray[bytes32, 16])
    )
    assert keccak256(params) == desc.params_root, "rope: params header does not match"
    heads: uint256 = extract32(params, 0, output_type=uint256)
    t_rows: uint256 = extract32(params, 32, output_type=uint256)
    m: int256 = extract32(params, 64, output_type=int256)
    s: uint256 = extract32(params, 96, output_type=uint256)
    d: uint256 = desc.in_cols // heads
    half: uint256 = d // 2
    ha: IVerifier.SlotHeader = inputs[0]
    assert len(x) == ha.cols * rows.width(ha.dtype) and rows.verify(
        keccak256(x), row, x_proof, rows.depth(ha.rows), ha.rows_root
    ), "rope: input row not in its slot"
    assert len(table_row) == d * 2 and rows.verify(
        keccak256(table_row), row % t_rows, table_proof, rows.depth(t_rows), extract32(params, 128)
    ), "rope: table row not in the table"
    # Ranges behind roots (7.4): every entry of the table row in
    # [-2^14, 2^14] (5.12), else the model is malformed and the solver loses
    # the step. Sixteen int16 lanes a word (a short row from a zero-padded
    # word; the last window may re-read entries).
    n_tab: uint256 = len(table_row)
    for k: uint256 in range((n_tab + 31) // 32, bound=1024):
        tw: uint256 = 0
        if n_tab < 32:
            for j: uint256 in range(n_tab, bound=31):
                tw = tw | convert(convert(slice(table_row, j, 1), bytes1), uint256) << (248 - 8 * j)
        else:
            tw = convert(extract32(table_row, min(k * 32, n_tab - 32)), uint256)
        for j: uint256 in range(16):
            e: int256 = convert(convert(tw << (16 * j), bytes32), int256) >> 240
            if e > 2**14 or e < -(2**14):
                return rows.MALFORMED
    base: uint256 = column - column % d
    i: uint256 = column % d
    first: bool = i < half
    if not first:
        i -= half
    w: uint256 = rows.width(ha.dtype)
    nx: uint256 = len(x)
    nt: uint256 = len(table_row)
    oa: uint256 = (base + i) * w
    ob: uint256 = (base + i + half) * w
    oc: uint256 = i * 2
    os: uint256 = (half + i) * 2
    # a: the element at byte oa of `x`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd_a: uint256 = 0
    sh_a: uint256 = 0
    if nx >= 32:
        st_a: uint256 = min(oa, nx - 32)
        wd_a = convert(extract32(x, st_a), uint256)
        sh_a = 8 * (oa - st_a)
    else:
        for j: uint256 in range(nx, bound=31):
            wd_a = wd_a | convert(convert(slice(x, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh_a = 8 * oa
    a: int256 = rows.lane(convert(wd_a, bytes32), sh_a // 8, w)
    # b: the element at byte ob of `x`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd_b: uint256 = 0
    sh_b: uint256 = 0
    if nx >= 32:
        st_b: uint256 = min(ob, nx - 32)
        wd_b = convert(extract32(x, st_b), uint256)
        sh_b = 8 * (ob - st_b)
    else:
        for j: uint256 in range(nx, bound=31):
            wd_b = wd_b | convert(convert(slice(x, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh_b = 8 * ob
    b: int256 = rows.lane(convert(wd_b, bytes32), sh_b // 8, w)
    # cos_i: the element at byte oc of `table_row`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd_c: uint256 = 0
    sh_c: uint256 = 0
    if nt >= 32:
        st_c: uint256 = min(oc, nt - 32)
        wd_c = convert(extract32(table_row, st_c), uint256)
        sh_c = 8 * (oc - st_c)
    else:
        for j: uint256 in range(nt, bound=31):
            wd_c = wd_c | convert(convert(slice(table_row, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh_c = 8 * oc
    cos_i: int256 = rows.lane(convert(wd_c, bytes32), sh_c // 8, 2)
    # sin_i: the element at byte os of `table_row`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd_s: uint256 = 0
    sh_s: uint256 = 0
    if nt >= 32:
        st_s: uint256 = min(os, nt - 32)
        wd_s = convert(extract32(table_row, st_s), uint256)
        sh_s = 8 * (os - st_s)
    else:
        for j: uint256 in range(nt, bound=31):
            wd_s = wd_s | convert(convert(slice(table_row, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh_s = 8 * os
    sin_i: int256 = rows.lane(convert(wd_s, bytes32), sh_s // 8, 2)
    # |acc| <= 2 · 2^15 · 2^14 = 2^30 (5.12).
    acc: int256 = b * cos_i + a * sin_i
    if first:
        acc = a * cos_i - b * sin_i
    return rows.requantize(acc, m, s, desc.flags & FLAG_I16 != 0)


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.12: `[rows, H·D]`, int8 (int16 with `i16`);
         `(0, 0, 0)` when the op breaks rope's rules.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param params The params header `enc(H, T, m, s, CR)`.
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "rope: wrong kind"
    if desc.flags & ~FLAG_I16 != 0:
        return (0, 0, 0)
    if desc.input_b != 0:
        return (0, 0, 0)
    assert len(inputs) == 1, "rope: wrong input count"
    assert len(params) == 160 and keccak256(params) == desc.params_root, "rope: params header does not match"
    heads: uint256 = extract32(params, 0, output_type=uint256)
    t_rows: uint256 = extract32(params, 32, output_type=uint256)
    if not rows.valid_cols(desc.in_cols, desc.out_cols) or desc.out_cols != desc.in_cols:
        return (0, 0, 0)
    if not rows.divides(heads, desc.in_cols) or (desc.in_cols // heads) % 2 != 0:
        return (0, 0, 0)
    if t_rows < 1 or t_rows > rows.MAX_ROWS:
        return (0, 0, 0)
    if not rows.valid_rq(extract32(params, 64, output_type=uint256), extract32(params, 96, output_type=uint256)):
        return (0, 0, 0)
    x: IVerifier.SlotHeader = inputs[0]
    if not rows.activation(x.dtype):
        return (0, 0, 0)
    if x.cols != desc.in_cols:
        return (0, 0, 0)
    if x.rows % t_rows != 0:
        return (0, 0, 0)
    return (x.rows, desc.out_cols, rows.out_dtype(desc.flags))
