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
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 6
FLAG_CAUSAL: constant(uint256) = 1
FLAG_KEYMASK: constant(uint256) = 2
FLAG_I16: constant(uint256) = 128
MAX_COLS: constant(uint256) = 16384
MAX_WITNESS: constant(uint256) = rows.MAX_WITNESS


@external
@view
def element(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2], row: uint256,
            column: uint256, witness: Bytes[MAX_WITNESS]) -> int256:
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
    short_x: bytes32 = empty(bytes32)
    short_m: bytes32 = empty(bytes32)
    if nx < 32:
        short_x = rows.short_word(x)
    if keymask and nm < 32:
        short_m = rows.short_word(mask)
    base: uint256 = column - column % seg
    u_c: uint256 = column % seg
    # Pass 1: validity (a bit per key, packed in words) and the maximum.
    best: int256 = min_value(int256)
    for u: uint256 in range(seg, bound=MAX_COLS):
        if causal and u > i:
            break
        if keymask:
            mv: int256 = 0
            if nm >= 32:
                st: uint256 = min(u, nm - 32)
                mv = rows.lane(extract32(mask, st), u - st, 1)
            else:
                mv = rows.lane(short_m, u, 1)
            if mv == 0:
                continue
        xv: int256 = 0
        o: uint256 = base + u
        if nx >= 32:
            st: uint256 = min(o, nx - 32)
            xv = rows.lane(extract32(x, st), o - st, 1)
        else:
            xv = rows.lane(short_x, o, 1)
        best = max(best, xv)
    # Pass 2: S and e_c.
    total: uint256 = 0
    e_c: uint256 = 0
    for u: uint256 in range(seg, bound=MAX_COLS):
        if causal and u > i:
            break
        if keymask:
            mv: int256 = 0
            if nm >= 32:
                st: uint256 = min(u, nm - 32)
                mv = rows.lane(extract32(mask, st), u - st, 1)
            else:
                mv = rows.lane(short_m, u, 1)
            if mv == 0:
                continue
        xv: int256 = 0
        o: uint256 = base + u
        if nx >= 32:
            st: uint256 = min(o, nx - 32)
            xv = rows.lane(extract32(x, st), o - st, 1)
        else:
            xv = rows.lane(short_x, o, 1)
        at: uint256 = convert(best - xv, uint256) * 4
        st: uint256 = min(at, 992)
        e: uint256 = convert(rows.lane(extract32(table, st), at - st, 4), uint256)
        total += e
        if u == u_c:
            e_c = e
    if total == 0:
        return 0
    one: uint256 = 127
    if desc.flags & FLAG_I16 != 0:
        one = 32767
    return convert(one * e_c // total, int256)
