#pragma version ~=0.4.3
"""
@title Softmax Verifier
@custom:contract-name SoftmaxVerifier
@notice The one step of `softmax` (kind 6, `docs/protocol.md` 5.5): over the
        segment of head `h = ⌊c / L⌋` of row `r` (`g = ⌊r / T⌋`,
        `i = r - g·T`), `valid(u) = (not causal or u <= i) and (not keymask or
        mask[g, u] != 0)`, `M = max x_u` over the valid keys,
        `e_u = E[M - x_u]` (0 where not valid), `S = Σ e_u`,
        `y[r, c] = ⌊ONE·e_c / S⌋` (0 when `S = 0`), `ONE = 127`, or 32767
        with `i16`.
@dev Witness: `abi.encode(bytes params, bytes exp_table, bytes x,
     bytes32[] x_proof, bytes mask, bytes32[] mask_proof)`: `params` the header
     `enc(H, T, ER)` (96 bytes) hashed against `params_root`; `exp_table` the
     256 entries of `E` packed as big-endian int32 (1024 bytes), hashed against
     `ER`; `x` row `r` of slot `input_a` (int8) with its proof; with `keymask`,
     `mask` row `g` of slot `input_b` (int8, `L` elements) with its proof
     against that slot's rows root (empty and unread without the flag).
     Both operands of the division are non-negative: `//` is DIV. Stateless.
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 6
FLAG_CAUSAL: constant(uint256) = 1
FLAG_KEYMASK: constant(uint256) = 2
FLAG_I16: constant(uint256) = 128
MAX_COLS: constant(uint256) = 16384
# @dev Eight int32 lanes: bit 31 of each, the low 31 bits, 2^31 - 2^23 - 1.
LANES32: constant(uint256) = max_value(uint256) // (2**32 - 1)
TOP: constant(uint256) = LANES32 * 2**31
LOW31: constant(uint256) = LANES32 * (2**31 - 1)
BIAS23: constant(uint256) = LANES32 * (2**31 - 2**23 - 1)
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
    @dev `y[row, column]` of the softmax `desc`: two passes over one segment.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`, and of the mask slot with
           `keymask`.
    @param row The output row.
    @param column The output column.
    @param witness `(params, exp_table, x, x_proof, mask, mask_proof)`.
    @return int256 The output element.
    """
    assert desc.kind == KIND, "softmax: wrong kind"
    keymask: bool = desc.flags & FLAG_KEYMASK != 0
    n_inputs: uint256 = 1
    if keymask:
        n_inputs = 2
    assert len(inputs) == n_inputs, "softmax: wrong input count"
    assert column < desc.out_cols, "softmax: element out of range"
    params: Bytes[96] = b""
    table: Bytes[1024] = b""
    x: Bytes[16384] = b""
    x_proof: DynArray[bytes32, 16] = []
    mask: Bytes[16384] = b""
    mask_proof: DynArray[bytes32, 16] = []
    params, table, x, x_proof, mask, mask_proof = abi_decode(
        witness, (Bytes[96], Bytes[1024], Bytes[16384], DynArray[bytes32, 16], Bytes[16384], DynArray[bytes32, 16])
    )
    assert keccak256(params) == desc.params_root, "softmax: params header does not match"
    assert len(table) == 1024 and keccak256(table) == extract32(params, 64), "softmax: exp table does not match"
    # Ranges behind roots (7.4): every E[d] in [0, 2^23] (5.5), else the model
    # is malformed and the solver loses the step. Eight int32 lanes a word: a
    # lane's low 31 bits plus 2^31 - 2^23 - 1 reach bit 31 iff they exceed
    # 2^23 (no carry between lanes); bit 31 itself is a negative entry.
    for q: uint256 in range(32):
        wd: uint256 = convert(extract32(table, q * 32), uint256)
        if (((wd & LOW31) + BIAS23) | wd) & TOP != 0:
            return rows.MALFORMED
    heads: uint256 = extract32(params, 0, output_type=uint256)
    t_len: uint256 = extract32(params, 32, output_type=uint256)
    seg: uint256 = desc.in_cols // heads
    g: uint256 = row // t_len
    i: uint256 = row % t_len
    hx: IVerifier.SlotHeader = inputs[0]
    # INVARIANT: int8 input, so M - x_u lies in [0, 255] (5.5).
    assert hx.dtype == rows.DTYPE_INT8, "softmax: input is not int8"
    assert len(x) == hx.cols and rows.verify(
        keccak256(x), row, x_proof, rows.depth(hx.rows), hx.rows_root
    ), "softmax: input row not in its slot"
    if keymask:
        hm: IVerifier.SlotHeader = inputs[1]
        assert len(mask) == hm.cols * rows.width(hm.dtype) and rows.verify(
            keccak256(mask), g, mask_proof, rows.depth(hm.rows), hm.rows_root
        ), "softmax: mask row not in its slot"
    causal: bool = desc.flags & FLAG_CAUSAL != 0
    nx: uint256 = len(x)
    nm: uint256 = len(mask)
    # Rows under 32 bytes are read from a word holding them (extract32 needs
    # 32 bytes); longer ones a word at a time, in place (no copy).
    short_x: uint256 = 0
    short_m: uint256 = 0
    if nx < 32:
        for j: uint256 in range(nx, bound=31):
            short_x = short_x | convert(convert(slice(x, j, 1), bytes1), uint256) << (248 - 8 * j)
    if nm < 32:
        for j: uint256 in range(nm, bound=31):
            short_m = short_m | convert(convert(slice(mask, j, 1), bytes1), uint256) << (248 - 8 * j)
    base: uint256 = column - column % seg
    u_c: uint256 = column % seg
    keys: uint256 = seg
    if causal:
        keys = min(seg, i + 1)
    # Two passes over the keys: the maximum, then S and e_c.
    best: int256 = min_value(int256)
    total: uint256 = 0
    e_c: uint256 = 0
    for p: uint256 in range(2):
        xw: uint256 = 0
        xpos: uint256 = 256
        mw: uint256 = 0
        mpos: uint256 = 256
        o: uint256 = base
        for u: uint256 in range(keys, bound=MAX_COLS):
            if xpos == 256:
                if o + 32 <= nx:
                    xw = convert(extract32(x, o), uint256)
                    xpos = 0
                elif nx >= 32:
                    xw = convert(extract32(x, nx - 32), uint256)
                    xpos = 8 * (o + 32 - nx)
                else:
                    xw = short_x
                    xpos = 8 * o
            xv: int256 = convert(convert(xw << xpos, bytes32), int256) >> 248
            xpos = unsafe_add(xpos, 8)
            o = unsafe_add(o, 1)
            if keymask:
                if mpos == 256:
                    if u + 32 <= nm:
                        mw = convert(extract32(mask, u), uint256)
                        mpos = 0
                    elif nm >= 32:
                        mw = convert(extract32(mask, nm - 32), uint256)
                        mpos = 8 * (u + 32 - nm)
                    else:
                        mw = short_m
                        mpos = 8 * u
                valid: bool = (mw << mpos) >> 248 != 0
                mpos = unsafe_add(mpos, 8)
                if not valid:
                    continue
            if p == 0:
                best = max(best, xv)
                continue
            # E[M - x_u]: an int32 at byte 4·(M - x_u) of the 1024-byte table.
            at: uint256 = convert(best - xv, uint256) * 4
            st: uint256 = min(at, 992)
            e: uint256 = (convert(extract32(table, st), uint256) << (8 * (at - st))) >> 224
            total += e
            if u == u_c:
                e_c = e
    if total == 0:
        return 0
    one: uint256 = 127
    if desc.flags & FLAG_I16 != 0:
        one = 32767
    return convert(one * e_c // total, int256)


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.5: `[rows, H·L]`, int8 (int16 with `i16`);
         `(0, 0, 0)` when the op breaks softmax's rules.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`, and of the mask slot with
           `keymask`.
    @param params The params header `enc(H, T, ER)`.
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "softmax: wrong kind"
    if desc.flags & ~(FLAG_CAUSAL | FLAG_KEYMASK | FLAG_I16) != 0:
        return (0, 0, 0)
    keymask: bool = desc.flags & FLAG_KEYMASK != 0
    if not keymask and desc.input_b != 0:
        return (0, 0, 0)
    n_inputs: uint256 = 1
    if keymask:
        n_inputs = 2
    assert len(inputs) == n_inputs, "softmax: wrong input count"
    assert len(params) == 96 and keccak256(params) == desc.params_root, "softmax: params header does not match"
    heads: uint256 = extract32(params, 0, output_type=uint256)
    t_len: uint256 = extract32(params, 32, output_type=uint256)
    if not rows.valid_cols(desc.in_cols, desc.out_cols) or desc.out_cols != desc.in_cols:
        return (0, 0, 0)
    if not rows.divides(heads, desc.in_cols):
        return (0, 0, 0)
    if t_len < 1 or t_len > rows.MAX_ROWS:
        return (0, 0, 0)
    x: IVerifier.SlotHeader = inputs[0]
    if x.dtype != rows.DTYPE_INT8:
        return (0, 0, 0)
    if x.cols != desc.in_cols:
        return (0, 0, 0)
    if x.rows % t_len != 0:
        return (0, 0, 0)
    if keymask:
        mask: IVerifier.SlotHeader = inputs[1]
        if mask.dtype != rows.DTYPE_INT8:
            return (0, 0, 0)
        if mask.cols != desc.in_cols // heads or mask.rows != x.rows // t_len:
            return (0, 0, 0)
    return (x.rows, desc.out_cols, rows.out_dtype(desc.flags))
