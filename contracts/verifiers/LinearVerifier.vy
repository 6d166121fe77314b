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

ALLOWED_FLAGS: constant(uint256) = linear.FLAG_RELU | linear.FLAG_WIDE | linear.FLAG_I16


@external
@view
def element(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2], row: uint256,
            column: uint256, witness: Bytes[MAX_WITNESS]) -> int256:
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

    acc: int256 = 0
    multiplier: int256 = 0
    shift_: uint256 = 0
    if inputs[0].dtype == DTYPE_INT8:
        acc, multiplier, shift_ = self._acc8(desc, inputs[0], row, column, witness)
    elif inputs[0].dtype == DTYPE_INT16:
        acc, multiplier, shift_ = self._acc16(desc, inputs[0], row, column, witness)
    else:
        raise "linear: input dtype not int8 or int16"
    return linear.finish(acc, multiplier, shift_, desc.flags)


@internal
@pure
def _acc8(desc: IVerifier.OpDescriptor, x_header: IVerifier.SlotHeader, row: uint256, column: uint256,
          witness: Bytes[MAX_WITNESS]) -> (int256, int256, uint256):
    """
    @dev The accumulator of an `int8` input row, with the witness's checks.
    """
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
    # INVARIANT: x is row `row` of the op's agreed input.
    assert len(x) == desc.in_cols, "linear: input row length differs from the op's"
    assert merkle.verify(keccak256(x), row, x_proof, merkle.depth(x_header.rows), x_header.rows_root), \
        "linear: input row not in the op's input"
    self._check_weights(desc, column, bias, multiplier, shift_, w, w_proof, wrr)
    assert bias >= linear.MIN_BIAS and bias <= linear.MAX_BIAS, "linear: bias out of range"
    return unsafe_add(bias, i8.dot(x, w)), multiplier, shift_


@internal
@pure
def _acc16(desc: IVerifier.OpDescriptor, x_header: IVerifier.SlotHeader, row: uint256, column: uint256,
           witness: Bytes[MAX_WITNESS]) -> (int256, int256, uint256):
    """
    @dev The accumulator of an `int16` input row, with the witness's checks.
    """
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
    assert len(x) == 2 * desc.in_cols, "linear: input row length differs from the op's"
    assert merkle.verify(keccak256(x), row, x_proof, merkle.depth(x_header.rows), x_header.rows_root), \
        "linear: input row not in the op's input"
    self._check_weights(desc, column, bias, multiplier, shift_, w, w_proof, wrr)
    assert bias >= linear.MIN_BIAS and bias <= linear.MAX_BIAS, "linear: bias out of range"
    return unsafe_add(bias, linear.dot16(x, w)), multiplier, shift_


@internal
@pure
def _check_weights(desc: IVerifier.OpDescriptor, column: uint256, bias: int256, multiplier: int256,
                   shift_: uint256, w: Bytes[MAX_COLS], w_proof: DynArray[bytes32, MAX_PROOF],
                   wrr: bytes32):
    """
    @dev The weight row is row `column` of the op's committed weights,
         whose header `(n = out_cols, k = in_cols)` hashes to params_root.
    """
    assert tensor.header_root(desc.out_cols, desc.in_cols, wrr) == desc.params_root, \
        "linear: weights header does not match the op"
    assert len(w) == desc.in_cols, "linear: weight row length differs from the op's"
    assert merkle.verify(linear.weight_leaf(bias, multiplier, shift_, w), column, w_proof,
                         merkle.depth(desc.out_cols), wrr), "linear: weight row not in the weights"
