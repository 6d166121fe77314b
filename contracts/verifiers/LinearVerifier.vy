#pragma version ~=0.4.3
"""
@title Linear Verifier
@custom:contract-name LinearVerifier
@notice The one-step check of a `linear` op (kind 1, protocol.md
        sections 4, 5.0 and 7.4): one output element `y[row, column]`
        recomputed from the challenger's witness, every part of which
        is proven against the committed roots first.
@dev Stateless (no storage, no constructor), fixed at deployment; the
     dispute game calls it with `staticcall`, only for the step
     (protocol.md 10.3, 10.9).

     Witness: `abi_encode(x, x_proof, bias, multiplier, shift, w,
     w_proof, weights_rows_root)` of types `(bytes, bytes32[], int256,
     int256, uint256, bytes, bytes32[], bytes32)`:
     - `x`: packed input row `row` of slot `input_a` (`in_cols` bytes
       for an `int8` input, `2 * in_cols` for an `int16` one), proven
       by `x_proof` against the input header's rows root, depth
       `depth(rows)`;
     - `bias, multiplier, shift, w`: channel `column`'s weight leaf
       `H(enc(b, m, s) ‖ W[column, :])` (`w`: `in_cols` int8 bytes),
       proven by `w_proof` at index `column`, depth `depth(out_cols)`,
       against `weights_rows_root`, whose header
       `H(enc(out_cols, in_cols, weights_rows_root))` must be the
       descriptor's `params_root`.
     Flags: bit 0 ReLU, bit 1 `wide` (the `int32` accumulator itself),
     bit 7 `i16` (`rq16`); input dtypes `int8` (0) and `int16` (2).
"""

from ..interfaces import IVerifier

implements: IVerifier


from ..modules import merkle
from ..modules import tensor
from ..modules import linear
from ..modules import int8 as i8
from ..modules import rows


KIND_LINEAR: constant(uint256) = 1

# @dev Input dtypes (protocol.md section 3).
DTYPE_INT8: constant(uint256) = 0
DTYPE_INT16: constant(uint256) = 2

MAX_PROOF: constant(uint256) = merkle.MAX_PROOF
MAX_COLS: constant(uint256) = linear.MAX_COLS
MAX_ROW16: constant(uint256) = linear.MAX_ROW16

# @dev IVerifier's MAX_WITNESS (Vyper 0.4.3 does not export an
# interface file's constants).
MAX_WITNESS: constant(uint256) = 81920
MAX_PARAMS: constant(uint256) = 512

# @dev Loop bounds (literals: a bound may not name another module's
# constant): words of an int8 row, 16-element chunks of an int16 row.
MAX_WORDS: constant(uint256) = 512
PER_WORD16: constant(uint256) = 16
MAX_CHUNKS16: constant(uint256) = 1024

ALLOWED_FLAGS: constant(uint256) = linear.FLAG_RELU | linear.FLAG_WIDE | linear.FLAG_I16
# @dev The forbidden pairs of flags (5.0): ReLU with wide, wide with i16.
RELU_WIDE: constant(uint256) = linear.FLAG_RELU | linear.FLAG_WIDE
WIDE_I16: constant(uint256) = linear.FLAG_WIDE | linear.FLAG_I16


@external
@view
def step(game_id: uint256, column: uint256, row_word: bytes32, row_word_proof: DynArray[bytes32, MAX_PROOF],
         desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2], row: uint256,
         witness: Bytes[MAX_WITNESS]) -> int256:
    """
    @notice `y[row, column]` of the `linear` op `desc` over the input
            slot `inputs[0]`, recomputed from `witness` (see the
            contract's `@dev`). Reverts with a `linear:` reason (or a
            module's) if the witness does not verify.
    """
    # Descriptor and header sanity: the game checked them at the
    # transition; a verifier called otherwise must not decide anything.
    assert desc.kind == KIND_LINEAR, "linear: not a linear op"
    assert desc.flags & ~ALLOWED_FLAGS == 0, "linear: bad flags"
    relu_wide: uint256 = linear.FLAG_RELU | linear.FLAG_WIDE
    wide_i16: uint256 = linear.FLAG_WIDE | linear.FLAG_I16
    assert desc.flags & relu_wide != relu_wide and desc.flags & wide_i16 != wide_i16, "linear: bad flags"
    assert len(inputs) == 1, "linear: one input slot"
    assert inputs[0].cols == desc.in_cols, "linear: input cols differ from the op's"
    assert row < inputs[0].rows, "linear: row out of range"
    assert column < desc.out_cols, "linear: column out of range"

    assert inputs[0].dtype == DTYPE_INT8 or inputs[0].dtype == DTYPE_INT16, \
        "linear: input dtype not int8 or int16"
    k: uint256 = desc.in_cols
    # Everything in this frame, one block per input dtype: Vyper 0.4.3
    # places every internal function's frame below the external one, so
    # a callee taking a row would move this whole frame (and its 80 KiB
    # witness copy) up, paid as memory expansion on every call; sibling
    # blocks share their memory, so the int8 path never pays for the
    # int16 row buffer. Only small values go to `_check_rows` and
    # `_check_leaf`.
    dot: int256 = 0
    if inputs[0].dtype == DTYPE_INT8:
        x: Bytes[MAX_COLS] = b""
        x_proof: DynArray[bytes32, MAX_PROOF] = []
        bias: int256 = 0
        multiplier: int256 = 0
        shift_: uint256 = 0
        w: Bytes[MAX_COLS] = b""
        w_proof: DynArray[bytes32, MAX_PROOF] = []
        wrr: bytes32 = empty(bytes32)
        x, x_proof, bias, multiplier, shift_, w, w_proof, wrr = abi_decode(
            witness, (Bytes[MAX_COLS], DynArray[bytes32, MAX_PROOF], int256, int256, uint256,
                      Bytes[MAX_COLS], DynArray[bytes32, MAX_PROOF], bytes32))
        self._check_rows(desc, inputs[0], row, len(x), 1, keccak256(x), x_proof, wrr, len(w))
        # int8.dot's SWAR method (int8.vy's @dev, protocol.md 10.6) on x
        # len(x) == len(w) == k here.
        # sum u*v and the lane-wise byte sums S (`int8.vy`'s `@dev`).
        suv: uint256 = 0
        lanes: uint256 = 0
        n_words: uint256 = unsafe_add(k, 31) >> 5
        offset: uint256 = 0
        u: uint256 = 0
        v: uint256 = 0
        for _: uint256 in range(n_words, bound=MAX_WORDS):
            end: uint256 = unsafe_add(offset, 32)
            if end <= k:
                # A full word.
                u = convert(extract32(x, offset), uint256) ^ i8.K80
                v = convert(extract32(w, offset), uint256) ^ i8.K80
            elif k >= 32:
                # The tail, `r = k % 32` new bytes: read the last 32 bytes
                # and keep the low r bytes (the rest were counted already).
                keep: uint256 = unsafe_sub(i8.ONE << unsafe_mul(unsafe_sub(k, offset), 8), 1)
                u = (convert(extract32(x, unsafe_sub(k, 32)), uint256) ^ i8.K80) & keep
                v = (convert(extract32(w, unsafe_sub(k, 32)), uint256) ^ i8.K80) & keep
            else:
                # A row shorter than a word (k < 32, the only iteration,
                # `u = v = 0` here): assemble it byte by byte at the top of
                # the word; the bytes below stay 0.
                for j: uint256 in range(k, bound=31):
                    at: uint256 = unsafe_mul(unsafe_sub(31, j), 8)
                    u = u | (convert(convert(slice(x, j, 1), bytes1), uint256) ^ 128) << at
                    v = v | (convert(convert(slice(w, j, 1), bytes1), uint256) ^ 128) << at

            # v' = v with its eight 32-bit lanes reversed (point 2).
            v = ((v >> 32) & i8.M32) | ((v & i8.M32) << 32)
            v = ((v >> 64) & i8.M64) | ((v & i8.M64) << 64)
            v = (v >> 128) | (v << 128)

            # Each product's top lane is an 8-lane dot product < 2**20
            # (point 4); the total stays < 2**31.
            suv = unsafe_add(
                suv,
                unsafe_add(
                    unsafe_add(unsafe_mul(u & i8.M, v & i8.M) >> 224, unsafe_mul((u >> 8) & i8.M, (v >> 8) & i8.M) >> 224),
                    unsafe_add(unsafe_mul((u >> 16) & i8.M, (v >> 16) & i8.M) >> 224, unsafe_mul((u >> 24) & i8.M, (v >> 24) & i8.M) >> 224),
                ),
            )
            # Byte sums (point 5): first 16 lanes of 16 bits holding the sum
            # of two bytes of u and two of v (at most 4 * 255 = 1020), then
            # 8 lanes of 32 bits holding at most 8 * 255 = 2040 per word,
            # 1044480 over all words: no carries between lanes. Since `v`
            # is only permuted by whole lanes, its byte sum is unchanged.
            pairs: uint256 = unsafe_add(
                unsafe_add(u & i8.M16, (u >> 8) & i8.M16),
                unsafe_add(v & i8.M16, (v >> 8) & i8.M16),
            )
            lanes = unsafe_add(lanes, unsafe_add(pairs & i8.M32L, (pairs >> 16) & i8.M32L))
            offset = end

        # sum u + sum v, < 2**24 (point 5).
        byte_sum: uint256 = unsafe_mul(lanes, i8.ONES) >> 224
        # Point 7: every term below is < 2**31, so the int256 arithmetic
        # is exact.
        dot = unsafe_sub(
            unsafe_add(convert(suv, int256), convert(unsafe_mul(k, 16384), int256)),
            convert(unsafe_mul(byte_sum, 128), int256),
        )
        # The weight leaf last: its concat buffer (16 KiB) is then the
        # block's last allocation, and only its used part is paid for.
        self._check_leaf(desc, column, keccak256(concat(convert(bias, bytes32), convert(multiplier, bytes32),
                                                        convert(shift_, bytes32), w)), w_proof, wrr)
        # |dot| <= 2**28: exact in int256 for any int256 bias but the extremes.
        if self._malformed(bias, multiplier, shift_, dot):
            return rows.MALFORMED
        return linear.finish(unsafe_add(bias, dot), multiplier, shift_, desc.flags)
    else:
        x: Bytes[MAX_ROW16] = b""
        x_proof: DynArray[bytes32, MAX_PROOF] = []
        bias: int256 = 0
        multiplier: int256 = 0
        shift_: uint256 = 0
        w: Bytes[MAX_COLS] = b""
        w_proof: DynArray[bytes32, MAX_PROOF] = []
        wrr: bytes32 = empty(bytes32)
        x, x_proof, bias, multiplier, shift_, w, w_proof, wrr = abi_decode(
            witness, (Bytes[MAX_ROW16], DynArray[bytes32, MAX_PROOF], int256, int256, uint256,
                      Bytes[MAX_COLS], DynArray[bytes32, MAX_PROOF], bytes32))
        self._check_rows(desc, inputs[0], row, len(x), 2, keccak256(x), x_proof, wrr, len(w))
        # Sixteen int16 elements (one word of x, half a word of w) a
        # chunk; |x*w| <= 2**22, at most 2**14 terms: exact.
        nx: uint256 = len(x)
        for i: uint256 in range(unsafe_add(k, 15) >> 4, bound=MAX_CHUNKS16):
            xw: uint256 = 0
            ww: uint256 = 0
            ox: uint256 = i << 5
            ow: uint256 = i << 4
            if ox + 32 <= nx:
                xw = convert(extract32(x, ox), uint256)
            elif nx >= 32:
                # the last 32 bytes, moved up so that byte ox comes first
                xw = convert(extract32(x, nx - 32), uint256) << (8 * (ox + 32 - nx))
            else:
                for j: uint256 in range(nx, bound=31):
                    xw = xw | (convert(convert(slice(x, j, 1), bytes1), uint256) << (8 * (31 - j)))
            if ow + 32 <= k:
                ww = convert(extract32(w, ow), uint256)
            elif k >= 32:
                ww = convert(extract32(w, k - 32), uint256) << (8 * (ow + 32 - k))
            else:
                for j: uint256 in range(k, bound=31):
                    if j >= ow:
                        ww = ww | (convert(convert(slice(w, j, 1), bytes1), uint256) << (8 * (31 - (j - ow))))
            n: uint256 = min(PER_WORD16, unsafe_sub(k, ow))
            for j: uint256 in range(n, bound=PER_WORD16):
                # arithmetic shifts on int256 sign-extend the element
                xi: int256 = convert(convert(xw << (j << 4), bytes32), int256) >> 240
                wi: int256 = convert(convert(ww << (j << 3), bytes32), int256) >> 248
                dot = unsafe_add(dot, unsafe_mul(xi, wi))

        self._check_leaf(desc, column, keccak256(concat(convert(bias, bytes32), convert(multiplier, bytes32),
                                                        convert(shift_, bytes32), w)), w_proof, wrr)
        # |dot| <= 2**36: exact in int256.
        if self._malformed(bias, multiplier, shift_, dot):
            return rows.MALFORMED
        return linear.finish(unsafe_add(bias, dot), multiplier, shift_, desc.flags)


@internal
@pure
def _check_rows(desc: IVerifier.OpDescriptor, x_header: IVerifier.SlotHeader, row: uint256, x_len: uint256,
                width: uint256, x_leaf: bytes32, x_proof: DynArray[bytes32, MAX_PROOF], wrr: bytes32,
                w_len: uint256):
    """
    @dev The witness's rows, in the order of protocol.md 10.5: the input
         row's length and proof, the weights header, the weight row's
         length, a nonempty row.
    """
    # INVARIANT: x is row `row` of the op's agreed input.
    assert x_len == desc.in_cols * width, "linear: input row length differs from the op's"
    assert merkle.verify(x_leaf, row, x_proof, merkle.depth(x_header.rows), x_header.rows_root), \
        "linear: input row not in the op's input"
    # INVARIANT: the weight row is row `column` of the op's committed
    # weights, whose header (n = out_cols, k = in_cols) hashes to params_root.
    assert tensor.header_root(desc.out_cols, desc.in_cols, wrr, DTYPE_INT8) == desc.params_root, \
        "linear: weights header does not match the op"
    assert w_len == desc.in_cols, "linear: weight row length differs from the op's"
    assert desc.in_cols != 0, "linear: empty row"


@internal
@pure
def _check_leaf(desc: IVerifier.OpDescriptor, column: uint256, leaf: bytes32,
                w_proof: DynArray[bytes32, MAX_PROOF], wrr: bytes32):
    """
    @dev The weight leaf `H(enc(b, m, s) ‖ W[column, :])` is leaf
         `column` of the weights rows root.
    """
    assert merkle.verify(leaf, column, w_proof, merkle.depth(desc.out_cols), wrr), \
        "linear: weight row not in the weights"


@internal
@pure
def _malformed(bias: int256, multiplier: int256, shift_: uint256, dot: int256) -> bool:
    """
    @dev Whether the revealed weight leaf breaks a range of section 4
         (ranges behind roots, protocol.md 7.4): the bias not an int32,
         `m` outside [1, 2^31 - 1], `s` outside [1, 62], or the
         accumulator `b + dot` not an int32 (the accumulator bound
         broken). `step` then returns `rows.MALFORMED`.
    """
    if bias < linear.MIN_BIAS or bias > linear.MAX_BIAS:
        return True
    if multiplier < 1 or multiplier > 2**31 - 1:
        return True
    if shift_ < 1 or shift_ > 62:
        return True
    acc: int256 = bias + dot
    return acc < linear.MIN_BIAS or acc > linear.MAX_BIAS


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[MAX_PARAMS]) -> (uint256, uint256, uint256):
    """
    @dev The output header by sections 4 and 5.0: `[rows, n]`, int8 (int32
         with `wide`, int16 with `i16`); `(0, 0, 0)` when the op breaks
         linear's rules.
    @param desc The op's descriptor.
    @param inputs The header of slot `input_a`.
    @param params The weights header `enc(n, k, weight rows root)`.
    @return (uint256, uint256, uint256) The output's rows, cols and dtype.
    """
    assert desc.kind == KIND_LINEAR, "linear: wrong kind"
    if desc.flags & ~ALLOWED_FLAGS != 0:
        return (0, 0, 0)
    if desc.flags & RELU_WIDE == RELU_WIDE or desc.flags & WIDE_I16 == WIDE_I16:
        return (0, 0, 0)
    if desc.input_b != 0:
        return (0, 0, 0)
    assert len(inputs) == 1, "linear: wrong input count"
    assert len(params) == 96 and keccak256(params) == desc.params_root, "linear: params header does not match"
    if not rows.valid_cols(desc.in_cols, desc.out_cols):
        return (0, 0, 0)
    if extract32(params, 0, output_type=uint256) != desc.out_cols:
        return (0, 0, 0)
    if extract32(params, 32, output_type=uint256) != desc.in_cols:
        return (0, 0, 0)
    x: IVerifier.SlotHeader = inputs[0]
    if not rows.activation(x.dtype):
        return (0, 0, 0)
    if x.cols != desc.in_cols:
        return (0, 0, 0)
    dtype: uint256 = rows.out_dtype(desc.flags)
    if desc.flags & linear.FLAG_WIDE != 0:
        dtype = rows.DTYPE_INT32
    return (x.rows, desc.out_cols, dtype)
