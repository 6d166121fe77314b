"""Commitments of protocol sections 3-6: tensor roots, weight leaves, op descriptors, model
root and the state roots S_0..S_N.

Tensors arrive as int8, int16 or int32 torch tensors (section 3's dtypes). int8 bytes are the
packed encoding as they lie in memory (two's complement, row-major), so hashing reads the
tensor's own memory (a numpy view, no copy) and hashes all its rows in one ``keccak256_many``
call; int16 and int32 elements are packed big-endian, as the EVM reads them (one byte-swapped
copy).
An int8 tensor's root is the three-word header hash it always was; any other dtype appends
its code as a fourth word.
"""

import sys
from dataclasses import dataclass

import torch

from .hashing import WORD, ZERO32, enc, keccak256, keccak256_many  # noqa: F401 (enc is re-exported)
from .merkle import MerkleTree, depth_for, hash_pair, zero_hash

KIND_LINEAR = 1
FLAG_RELU = 1
FLAG_WIDE = 2  # linear: the output is the int32 accumulator (protocol 5.0)
FLAG_I16 = 128  # every kind that writes activations: the output slot is int16 (protocol 5.0)
EMPTY_SLOT = ZERO32  # an unfilled state slot (Z[0])

DTYPE_INT8, DTYPE_INT32, DTYPE_INT16 = 0, 1, 2
DTYPES = {torch.int8: DTYPE_INT8, torch.int32: DTYPE_INT32, torch.int16: DTYPE_INT16}
WIDTHS = {DTYPE_INT8: 1, DTYPE_INT32: 4, DTYPE_INT16: 2}
# The largest |value| of each activation dtype: what bounds an accumulator reading it.
DTYPE_ABS_MAX = {DTYPE_INT8: 1 << 7, DTYPE_INT16: 1 << 15, DTYPE_INT32: 1 << 31}


def dtype_code(tensor: torch.Tensor) -> int:
    """Section 3's dtype code of a torch tensor (ValueError for any other dtype)."""
    if tensor.dtype not in DTYPES:
        raise ValueError(f"tensors are int8, int16 or int32, got {tensor.dtype}")
    return DTYPES[tensor.dtype]


def _packed_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The packed tensor as a flat contiguous CPU uint8 tensor (int8: the tensor's own memory)."""
    if tensor.dtype not in DTYPES or tensor.dim() != 2:
        raise ValueError(f"expected a 2-D int8, int16 or int32 tensor, got {tensor.dtype} of shape "
                         f"{tuple(tensor.shape)}")
    t = tensor.detach().cpu().contiguous()
    width = WIDTHS[DTYPES[t.dtype]]
    if width == 1 or sys.byteorder != "little":
        return t.view(torch.uint8).reshape(-1)
    # Big-endian: each element's bytes reversed (x86 and CUDA hosts are little-endian). numpy's
    # converting copy does it six times faster than a strided flip (151 MB of int16: 13 ms
    # against 81 ms), which had made an int16 MiniLM trace's commitment 4 times an int8 one's.
    try:
        return torch.from_numpy(t.numpy().astype(f">i{width}").view("u1").reshape(-1))
    except RuntimeError:  # torch without numpy (a bare GPU host)
        return t.view(torch.uint8).view(-1, width).flip(1).reshape(-1)


def _buffer(data: torch.Tensor):
    """A buffer over a CPU uint8 tensor for hashing: a numpy view (no copy), or bytes."""
    try:
        return data.numpy()
    except RuntimeError:  # torch built or installed without numpy (a bare GPU host)
        return bytes(data.tolist())


def packed(tensor: torch.Tensor) -> bytes:
    """Packed bytes of a 2-D int8, int16 or int32 tensor, row-major; wider elements big-endian."""
    return bytes(_buffer(_packed_bytes(tensor)))


def _split(digests: bytes) -> list[bytes]:
    return [digests[i:i + WORD] for i in range(0, len(digests), WORD)]


def row_leaf_bytes(tensor: torch.Tensor) -> bytes:
    """keccak256 of each packed row, concatenated: the leaves of the rows tree, in one call."""
    return keccak256_many(_buffer(_packed_bytes(tensor)), tensor.shape[1] * WIDTHS[dtype_code(tensor)], tensor.shape[0])


def row_leaves(tensor: torch.Tensor) -> list[bytes]:
    """keccak256 of each packed row."""
    return _split(row_leaf_bytes(tensor))


def header_root(rows: int, cols: int, rows_root: bytes, dtype: int = DTYPE_INT8) -> bytes:
    """The root of a tensor (or of a weights matrix): H(enc(rows, cols, rows_root)) for int8,
    H(enc(rows, cols, rows_root, dtype)) for any other dtype."""
    if dtype == DTYPE_INT8:
        return keccak256(enc(rows, cols, rows_root))
    return keccak256(enc(rows, cols, rows_root, dtype))


@dataclass(frozen=True)
class TensorCommitment:
    """A tensor's header, its root, and its row tree (for row-descent moves and row proofs)."""

    rows: int
    cols: int
    tree: MerkleTree
    dtype: int = DTYPE_INT8

    @property
    def rows_root(self) -> bytes:
        return self.tree.root

    @property
    def root(self) -> bytes:
        return header_root(self.rows, self.cols, self.rows_root, self.dtype)

    @property
    def header(self) -> tuple[int, int, bytes]:
        """(rows, cols, rows_root): the three words the linear-only contracts take."""
        return self.rows, self.cols, self.rows_root

    @property
    def full_header(self) -> tuple[int, int, bytes, int]:
        """(rows, cols, rows_root, dtype): section 3's header of any tensor."""
        return self.rows, self.cols, self.rows_root, self.dtype


def commit_tensor(tensor: torch.Tensor) -> TensorCommitment:
    rows, cols = tensor.shape
    return TensorCommitment(rows, cols, MerkleTree(row_leaf_bytes(tensor), depth_for(rows)), dtype_code(tensor))


def _weight_leaf_bytes(weight: torch.Tensor, bias: torch.Tensor, multiplier: torch.Tensor,
                       shift: torch.Tensor) -> bytes:
    """Every weight leaf, concatenated: each preimage laid out as one row of an (n, 96 + k)
    buffer, hashed in one call."""
    n, k = weight.shape
    heads = b"".join(enc(b, m, s) for b, m, s in zip(bias.tolist(), multiplier.tolist(), shift.tolist()))
    rows = torch.cat([torch.frombuffer(bytearray(heads), dtype=torch.uint8).view(n, 3 * WORD),
                      _packed_bytes(weight).view(n, k)], dim=1)
    return keccak256_many(_buffer(rows.reshape(-1)), 3 * WORD + k, n)


def weight_leaves(weight: torch.Tensor, bias: torch.Tensor, multiplier: torch.Tensor,
                  shift: torch.Tensor) -> list[bytes]:
    """WL[c] = H(enc(b[c], m[c], s[c]) || packed W[c, :]) for every output channel c."""
    return _split(_weight_leaf_bytes(weight, bias, multiplier, shift))


def commit_weights(weight: torch.Tensor, bias: torch.Tensor, multiplier: torch.Tensor,
                   shift: torch.Tensor) -> TensorCommitment:
    """The weights' header (n, k, weight rows root) and tree; ``.root`` is the weights root."""
    n, k = weight.shape
    return TensorCommitment(n, k, MerkleTree(_weight_leaf_bytes(weight, bias, multiplier, shift), depth_for(n)))


def descriptor(kind: int, flags: int, input_a: int, input_b: int, in_cols: int, out_cols: int,
               params_root: bytes) -> bytes:
    """The seven-word op descriptor of protocol section 5."""
    return enc(kind, flags, input_a, input_b, in_cols, out_cols, params_root)


def op_leaf(desc: bytes) -> bytes:
    """OL[j] = H(desc_j); op j sits at leaf index j - 1 of the ops tree."""
    return keccak256(desc)


def model_root(op_count: int, input_cols: int, output_cols: int, ops_root: bytes,
               input_dtype: int = DTYPE_INT8) -> bytes:
    """MR of section 5; a model whose input is not int8 (a token model) appends its dtype."""
    if input_dtype == DTYPE_INT8:
        return keccak256(enc(op_count, input_cols, output_cols, ops_root))
    return keccak256(enc(op_count, input_cols, output_cols, ops_root, input_dtype))


def state_depth(op_count: int) -> int:
    """Depth of the state tree over slots 0..N."""
    return depth_for(op_count + 1)


def state_roots(slot_roots: list[bytes]) -> list[bytes]:
    """S_0..S_N from the slot roots T_0..T_N: S_j has slots 0..j filled, the rest zero."""
    depth = state_depth(len(slot_roots) - 1)
    # Fill the slots one by one, rehashing only the filled slot's path: D hashes per step.
    levels = [[zero_hash(h)] * (1 << (depth - h)) for h in range(depth + 1)]
    roots = []
    for slot, slot_root in enumerate(slot_roots):
        levels[0][slot] = slot_root
        index = slot
        for height in range(depth):
            index >>= 1
            levels[height + 1][index] = hash_pair(levels[height][2 * index], levels[height][2 * index + 1])
        roots.append(levels[depth][0])
    return roots


def state_tree(slot_roots: list[bytes], filled_through: int) -> MerkleTree:
    """The state tree S_j (slots 0..j filled), for slot proofs against it."""
    return MerkleTree(slot_roots[:filled_through + 1], state_depth(len(slot_roots) - 1))

