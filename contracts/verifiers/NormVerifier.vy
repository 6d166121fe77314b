#pragma version ~=0.4.3
"""
@title Norm Verifier
@custom:contract-name NormVerifier
@notice The one step of `norm` (kind 7, `docs/protocol.md` 5.6), LayerNorm
        (`z_c = n·x_c - Σx`) or RMSNorm (flag `rms`, `z_c = x_c`):
        `V = Σ z²`, `ρ = isqrt(V)` (a witness, checked by `ρ² <= V < (ρ+1)²`),
        `q = ⌊z_c·2^15 / ρ⌋` (0 when `ρ = 0`),
        `y[r, c] = rq(q·γ[c] + β[c], m, s)` (`rq16` with `i16`).
@dev Witness: `abi.encode(bytes params, bytes x, bytes32[] x_proof,
     int256 gamma, int256 beta, bytes32[] column_proof, uint256 rho)`:
     `params` the header `enc(n, m, s, GR)` (128 bytes) hashed against
     `params_root`; `x` row `r` of slot `input_a` (int8 or int16, `n`
     elements) with its proof against the slot's rows root; `(γ[c], β[c])`
     with the proof of `GL[c] = H(enc(γ[c], β[c]))` against `GR` (depth
     `depth(n)`); `rho` the root of `V`. One pass gives `Σx` and `Σx²`:
     LayerNorm's `V = Σ (n·x_u - Σx)² = n·(n·Σx² - (Σx)²)`, exact.
     Division: `⌊a / ρ⌋` with `a` possibly negative; Vyper's signed `//` is
     SDIV (truncates toward zero), so 1 is subtracted when the remainder is
     non-zero and `a < 0` (5.0). Stateless.
"""

from ..interfaces import IVerifier
# @dev The game's proof bound (MAX_PROOF), so that `step` decodes its calldata.
from ..modules import merkle
from ..modules import rows

implements: IVerifier

KIND: constant(uint256) = 7
FLAG_RMS: constant(uint256) = 1
FLAG_I16: constant(uint256) = 128
NORM_ONE: constant(int256) = 32768  # 2^NORM_FRAC
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
    @dev `y[row, column]` of the norm `desc`: two sums over the row, the root
         check, one floor division.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param row The output row.
    @param column The output column.
    @param witness `(params, x, x_proof, gamma, beta, column_proof, rho)`.
    @return int256 The output element.
    """
    assert desc.kind == KIND, "norm: wrong kind"
    assert len(inputs) == 1, "norm: wrong input count"
    assert column < desc.out_cols, "norm: element out of range"
    params: Bytes[128] = b""
    x: Bytes[32768] = b""
    x_proof: DynArray[bytes32, 16] = []
    gamma: int256 = 0
    beta: int256 = 0
    column_proof: DynArray[bytes32, 16] = []
    rho: uint256 = 0
    params, x, x_proof, gamma, beta, column_proof, rho = abi_decode(
        witness, (Bytes[128], Bytes[32768], DynArray[bytes32, 16], int256, int256, DynArray[bytes32, 16], uint256)
    )
    assert keccak256(params) == desc.params_root, "norm: params header does not match"
    n: uint256 = extract32(params, 0, output_type=uint256)
    m: int256 = extract32(params, 32, output_type=int256)
    s: uint256 = extract32(params, 64, output_type=uint256)
    hx: IVerifier.SlotHeader = inputs[0]
    w: uint256 = rows.width(hx.dtype)
    assert len(x) == hx.cols * w and rows.verify(
        keccak256(x), row, x_proof, rows.depth(hx.rows), hx.rows_root
    ), "norm: input row not in its slot"
    assert rows.verify(
        keccak256(abi_encode(gamma, beta)), column, column_proof, rows.depth(n), extract32(params, 96)
    ), "norm: column leaf not in the columns"
    # Ranges behind roots (7.4): 2^15·|γ| + |β| <= 2^31 - 1 (5.6), else the
    # model is malformed and the solver loses the step.
    if gamma > 2**16 or gamma < -(2**16) or beta > 2**31 or beta < -(2**31):
        return rows.MALFORMED
    if NORM_ONE * abs(gamma) + abs(beta) > 2**31 - 1:
        return rows.MALFORMED
    # Σx and Σx² over the row, read a word at a time in place (a row passed
    # to an internal function would be copied into the callee's frame).
    nx: uint256 = len(x)
    short: uint256 = 0
    if nx < 32:
        for j: uint256 in range(nx, bound=31):
            short = short | convert(convert(slice(x, j, 1), bytes1), uint256) << (248 - 8 * j)
    down: uint256 = 256 - 8 * w
    word: uint256 = 0
    pos: uint256 = 256
    o: uint256 = 0
    s1: int256 = 0
    s2: int256 = 0
    x_c: int256 = 0
    for u: uint256 in range(hx.cols, bound=MAX_COLS):
        if pos >= 256:
            if o + 32 <= nx:
                word = convert(extract32(x, o), uint256)
                pos = 0
            elif nx >= 32:
                word = convert(extract32(x, nx - 32), uint256)
                pos = 8 * (o + 32 - nx)
            else:
                word = short
                pos = 8 * o
        e: int256 = convert(convert(word << pos, bytes32), int256) >> down
        if u == column:
            x_c = e
        s1 = unsafe_add(s1, e)
        s2 = unsafe_add(s2, unsafe_mul(e, e))
        pos = unsafe_add(pos, 8 * w)
        o = unsafe_add(o, w)
    cols: int256 = convert(hx.cols, int256)
    z: int256 = x_c
    v: int256 = s2
    if desc.flags & FLAG_RMS == 0:
        z = cols * x_c - s1
        v = cols * (cols * s2 - s1 * s1)
    r: int256 = convert(rho, int256)
    # INVARIANT: rho = isqrt(V), the witness the challenger must supply (5.6).
    assert r * r <= v and (r + 1) * (r + 1) > v, "norm: rho is not the root of V"
    q: int256 = 0
    if r > 0:
        num: int256 = z * NORM_ONE
        q = num // r
        if num % r != 0 and num < 0:
            q -= 1
    return rows.requantize(q * gamma + beta, m, s, desc.flags & FLAG_I16 != 0)


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by 5.6: `[rows, n]`, int8 (int16 with `i16`);
         `(0, 0, 0)` when the op breaks norm's rules.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param params The params header `enc(n, m, s, GR)`.
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND, "norm: wrong kind"
    if desc.flags & ~(FLAG_RMS | FLAG_I16) != 0:
        return (0, 0, 0)
    if desc.input_b != 0:
        return (0, 0, 0)
    assert len(inputs) == 1, "norm: wrong input count"
    assert len(params) == 128 and keccak256(params) == desc.params_root, "norm: params header does not match"
    if not rows.valid_cols(desc.in_cols, desc.out_cols) or desc.out_cols != desc.in_cols:
        return (0, 0, 0)
    if extract32(params, 0, output_type=uint256) != desc.in_cols:
        return (0, 0, 0)
    if not rows.valid_rq(extract32(params, 32, output_type=uint256), extract32(params, 64, output_type=uint256)):
        return (0, 0, 0)
    x: IVerifier.SlotHeader = inputs[0]
    if not rows.activation(x.dtype):
        return (0, 0, 0)
    # 5.0: an int16 LayerNorm has n <= 1024.
    if x.dtype == rows.DTYPE_INT16 and desc.flags & FLAG_RMS == 0 and desc.in_cols > 1024:
        return (0, 0, 0)
    if x.cols != desc.in_cols:
        return (0, 0, 0)
    return (x.rows, desc.out_cols, rows.out_dtype(desc.flags))
