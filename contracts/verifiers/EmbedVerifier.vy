#pragma version ~=0.4.3
"""
@title Embed Verifier
@custom:contract-name EmbedVerifier
@notice The one step of `embed` (kind 8, `docs/protocol.md` 5.7): with
        `b = ⌊r / T⌋`, `t = r - b·T` and the id `v = x[b, t]`,
        `y[r, c] = clamp((tok·m_a + E_pos[t, c]·m_b + 2^(s-1)) >> s)`,
        `tok = E_tok[v, c]` for `0 <= v < V` and 0 for an id outside the
        vocabulary; the clamp is int16's with `i16` (int16 tables).
@dev Witness: `abi.encode(bytes params, bytes ids, bytes32[] ids_proof,
     bytes tok, bytes32[] tok_proof, bytes pos, bytes32[] pos_proof)`:
     `params` the header `enc(V, T, d, m_a, m_b, s, TR, PR)` (256 bytes)
     hashed against `params_root`; `ids` row `b` of slot `input_a` (int32,
     `T` ids, at most 4096 here) with its proof against the slot's rows root;
     `tok` row `v` of `E_tok` (`d` entries of the tables' dtype) with its proof
     against `TR` (depth `depth(V)`, up to 24), empty (and not read) when `v`
     is outside `[0, V)`; `pos` row `t` of `E_pos` with its proof against `PR`
     (depth `depth(T)`). A table row is at most 30720 bytes here (`d <= 15360`
     int16 entries): the witness is at most MAX_WITNESS bytes. Stateless.
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 8
FLAG_I16: constant(uint256) = 128
MAX_WITNESS: constant(uint256) = rows.MAX_WITNESS
# @dev The game's MAX_PROOF: the bound of `step`'s `row_word_proof`.
MAX_PROOF: constant(uint256) = merkle.MAX_PROOF
MAX_PARAMS: constant(uint256) = 512
MAX_IDS: constant(uint256) = 16384
MAX_TABLE_ROW: constant(uint256) = 30720


@external
@view
def step(game_id: uint256, column: uint256, row_word: bytes32, row_word_proof: DynArray[bytes32, MAX_PROOF],
         desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2], row: uint256,
         witness: Bytes[MAX_WITNESS]) -> int256:
    """
    @dev `y[row, column]` of the embed `desc`: one id, one row of each table.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a` (the ids).
    @param row The output row.
    @param column The output column.
    @param witness `(params, ids, ids_proof, tok, tok_proof, pos, pos_proof)`.
    @return int256 The output element.
    """
    assert desc.kind == KIND, "embed: wrong kind"
    assert len(inputs) == 1, "embed: wrong input count"
    assert column < desc.out_cols, "embed: element out of range"
    params: Bytes[256] = b""
    ids: Bytes[MAX_IDS] = b""
    ids_proof: DynArray[bytes32, 16] = []
    tok: Bytes[MAX_TABLE_ROW] = b""
    tok_proof: DynArray[bytes32, 24] = []
    pos: Bytes[MAX_TABLE_ROW] = b""
    pos_proof: DynArray[bytes32, 16] = []
    params, ids, ids_proof, tok, tok_proof, pos, pos_proof = abi_decode(
        witness,
        (Bytes[256], Bytes[MAX_IDS], DynArray[bytes32, 16], Bytes[MAX_TABLE_ROW], DynArray[bytes32, 24],
         Bytes[MAX_TABLE_ROW], DynArray[bytes32, 16]),
    )
    assert keccak256(params) == desc.params_root, "embed: params header does not match"
    vocab: uint256 = extract32(params, 0, output_type=uint256)
    t_len: uint256 = extract32(params, 32, output_type=uint256)
    d: uint256 = extract32(params, 64, output_type=uint256)
    m_a: int256 = extract32(params, 96, output_type=int256)
    m_b: int256 = extract32(params, 128, output_type=int256)
    s: uint256 = extract32(params, 160, output_type=uint256)
    b: uint256 = row // t_len
    t: uint256 = row % t_len
    hx: IVerifier.SlotHeader = inputs[0]
    assert len(ids) == hx.cols * rows.width(hx.dtype) and rows.verify(
        keccak256(ids), b, ids_proof, rows.depth(hx.rows), hx.rows_root
    ), "embed: input row not in its slot"
    i16: bool = desc.flags & FLAG_I16 != 0
    table: uint256 = rows.DTYPE_INT8
    if i16:
        table = rows.DTYPE_INT16
    row_len: uint256 = d * rows.width(table)
    n_ids: uint256 = len(ids)
    o_id: uint256 = t * rows.width(hx.dtype)
    # v: the element at byte o_id of `ids`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd_v: uint256 = 0
    sh_v: uint256 = 0
    if n_ids >= 32:
        st_v: uint256 = min(o_id, n_ids - 32)
        wd_v = convert(extract32(ids, st_v), uint256)
        sh_v = 8 * (o_id - st_v)
    else:
        for j: uint256 in range(n_ids, bound=31):
            wd_v = wd_v | convert(convert(slice(ids, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh_v = 8 * o_id
    v: int256 = rows.lane(convert(wd_v, bytes32), sh_v // 8, rows.width(hx.dtype))
    tok_c: int256 = 0
    if v >= 0 and v < convert(vocab, int256):
        assert len(tok) == row_len and rows.verify(
            keccak256(tok), convert(v, uint256), tok_proof, rows.depth(vocab), extract32(params, 192)
        ), "embed: token row not in the table"
        n_tok: uint256 = len(tok)
        o_tok: uint256 = column * rows.width(table)
        # e_tok: the element at byte o_tok of `tok`, read in place (a row passed
        # to an internal function would be copied into the callee's frame).
        wd_t: uint256 = 0
        sh_t: uint256 = 0
        if n_tok >= 32:
            st_t: uint256 = min(o_tok, n_tok - 32)
            wd_t = convert(extract32(tok, st_t), uint256)
            sh_t = 8 * (o_tok - st_t)
        else:
            for j: uint256 in range(n_tok, bound=31):
                wd_t = wd_t | convert(convert(slice(tok, j, 1), bytes1), uint256) << (248 - 8 * j)
            sh_t = 8 * o_tok
        e_tok: int256 = rows.lane(convert(wd_t, bytes32), sh_t // 8, rows.width(table))
        tok_c = e_tok
    assert len(pos) == row_len and rows.verify(
        keccak256(pos), t, pos_proof, rows.depth(t_len), extract32(params, 224)
    ), "embed: position row not in the table"
    half: int256 = 1 << (s - 1)
    n_pos: uint256 = len(pos)
    o_pos: uint256 = column * rows.width(table)
    # e_pos: the element at byte o_pos of `pos`, read in place (a row passed
    # to an internal function would be copied into the callee's frame).
    wd_p: uint256 = 0
    sh_p: uint256 = 0
    if n_pos >= 32:
        st_p: uint256 = min(o_pos, n_pos - 32)
        wd_p = convert(extract32(pos, st_p), uint256)
        sh_p = 8 * (o_pos - st_p)
    else:
        for j: uint256 in range(n_pos, bound=31):
            wd_p = wd_p | convert(convert(slice(pos, j, 1), bytes1), uint256) << (248 - 8 * j)
        sh_p = 8 * o_pos
    e_pos: int256 = rows.lane(convert(wd_p, bytes32), sh_p // 8, rows.width(table))
    acc: int256 = tok_c * m_a + e_pos * m_b
    return rows.clamp((acc + half) >> s, i16)


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.7: `[B·T, d]`, int8 (int16 with `i16`);
         `(0, 0, 0)` when the op breaks embed's rules.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a` (the ids).
    @param params The params header `enc(V, T, d, m_a, m_b, s, TR, PR)`.
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "embed: wrong kind"
    if desc.flags & ~FLAG_I16 != 0:
        return (0, 0, 0)
    if desc.input_b != 0:
        return (0, 0, 0)
    assert len(inputs) == 1, "embed: wrong input count"
    assert len(params) == 256 and keccak256(params) == desc.params_root, "embed: params header does not match"
    vocab: uint256 = extract32(params, 0, output_type=uint256)
    if vocab < 1 or vocab > 2**24:
        return (0, 0, 0)
    if not rows.valid_cols(desc.in_cols, desc.out_cols):
        return (0, 0, 0)
    if extract32(params, 32, output_type=uint256) != desc.in_cols:
        return (0, 0, 0)
    if extract32(params, 64, output_type=uint256) != desc.out_cols:
        return (0, 0, 0)
    s: uint256 = extract32(params, 160, output_type=uint256)
    if not rows.valid_rq(extract32(params, 96, output_type=uint256), s):
        return (0, 0, 0)
    if not rows.valid_rq(extract32(params, 128, output_type=uint256), s):
        return (0, 0, 0)
    ids: IVerifier.SlotHeader = inputs[0]
    if ids.dtype != rows.DTYPE_INT32:
        return (0, 0, 0)
    if ids.cols != desc.in_cols:
        return (0, 0, 0)
    return (ids.rows * desc.in_cols, desc.out_cols, rows.out_dtype(desc.flags))
