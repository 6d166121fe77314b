"""The transformer op kinds of protocol sections 5.1-5.8 and Llama's 5.12-5.14 (``rope``,
``mul``, ``matmul`` with ``grouped``, ``argmax`` with ``pair``/``carry``): parameters, ranges,
params headers and descriptors.

Every kind that writes activations has the flag ``i16`` (bit 7, protocol 5.0): its output slot
is int16 and its requantization clamps to [-2^15, 2^15 - 1] (``softmax`` writes
floor(32767 e / S), ``lut`` holds a table of int16 entries).

Each op is a small dataclass holding Python ints and torch tensors. ``params_header()`` is
the exact byte string whose keccak256 is ``params_root`` (5.0), ``descriptor()`` the seven
words of section 5, and ``check(where)`` every range rule of the op's own section (slots and
shapes are checked by ``referee.model``, which sees the whole model). The kernels live in
``referee.kernels``; nothing here computes a value.
"""

from dataclasses import dataclass
from functools import cached_property

import torch

from . import commitments as cm
from .errors import ModelCompileError
from .hashing import ZERO32, enc, keccak256
from .merkle import MerkleTree, depth_for

(KIND_MATMUL, KIND_TRANSPOSE, KIND_ADD, KIND_LUT, KIND_SOFTMAX, KIND_NORM, KIND_EMBED, KIND_ARGMAX, KIND_ROPE,
 KIND_MUL) = range(2, 12)
FLAG_CAUSAL = 1  # matmul, softmax
FLAG_GROUPED = 2  # matmul: B has kv_heads < heads heads (grouped-query attention, 5.14)
FLAG_PAIR = 1    # argmax: the output is (max value, index), [rows, 2] (5.14)
FLAG_CARRY = 2   # argmax: input_b is an earlier [rows, 2] pair; indices start at offset (5.14)
FLAG_KEYMASK = 2  # softmax: input_b is a [rows / T, L] int8 mask of the valid keys
FLAG_RMS = 1     # norm
FLAG_I16 = cm.FLAG_I16  # every kind that writes activations: an int16 output slot (5.0)
INT32_MAX = (1 << 31) - 1
NORM_FRAC = 15
EXP_MAX = 1 << 23
VOCAB_MAX = 1 << 24
SOFTMAX_ONE = 127  # softmax outputs are floor(127 * e / S): scale 1/127
SOFTMAX_ONE_I16 = 32767  # with i16: floor(32767 * e / S), scale 1/32767
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
ROPE_ONE = 1 << 14  # rope table entries lie in [-2^14, 2^14] (cos and sin times 2^14)
OFFSET_MAX = 1 << 24  # argmax carry: 1 <= offset <= 2^24 (a vocabulary's ids, like embed's V)
HEAD_CHUNK = 8192  # the compiler's widest head chunk (5.14): a 32 KiB int32 row per one step, not a protocol limit


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ModelCompileError(message)


def _in_range(where: str, name: str, value: int, low: int, high: int) -> None:
    _require(isinstance(value, int) and low <= value <= high, f"{where}: {name} = {value} is outside [{low}, {high}]")


def _requant_params(where: str, **named: int) -> None:
    for name, value in named.items():
        if name.startswith("m"):
            _in_range(where, name, value, 1, INT32_MAX)
        else:
            _in_range(where, name, value, 1, 62)


def _divides(where: str, name: str, heads: int, cols: int, what: str) -> None:
    _require(isinstance(heads, int) and heads >= 1 and cols % heads == 0,
             f"{where}: {name} = {heads} must be >= 1 and divide {what} = {cols}")


def _table(where: str, name: str, table: torch.Tensor, dtype: torch.dtype, shape: tuple, low: int, high: int) -> None:
    _require(isinstance(table, torch.Tensor) and table.dtype == dtype and tuple(table.shape) == shape,
             f"{where}: {name} must be {dtype} of shape {shape}, got "
             f"{getattr(table, 'dtype', type(table).__name__)} {tuple(getattr(table, 'shape', ()))}")
    bad = ((table < low) | (table > high)).nonzero()
    _require(len(bad) == 0, f"{where}: {name} has an entry outside [{low}, {high}]")


class _Op:
    """What every kind shares: the descriptor and the cached params root. ``flags`` is the
    kind's own bits (``_bits``) plus ``i16`` where the kind has that field."""

    kind = 0
    i16 = False  # a dataclass field of the kinds that write activations (not transpose, argmax)

    def _bits(self) -> int:
        return 0

    @property
    def flags(self) -> int:
        return self._bits() | (FLAG_I16 if self.i16 else 0)
    # input_b: a dataclass field of the two-input kinds, a class constant 0 of the others (set
    # per class: a default here would become the two-input kinds' field default).

    def params_header(self) -> bytes:
        raise NotImplementedError

    @cached_property
    def params_root(self) -> bytes:
        return keccak256(self.params_header())

    def descriptor(self) -> bytes:
        return cm.descriptor(self.kind, self.flags, self.input_slot, self.input_b, self.in_cols,
                             self.out_cols, self.params_root)

    def check(self, where: str) -> None:
        raise NotImplementedError


@dataclass(eq=False)
class MatmulOp(_Op):
    """5.1: y[r, h*Rb + j] = rq(sum_k A[r, h*K + k] * B[g*Rb + j, hb*K + k]); -128 where causal masks.

    ``kv_heads`` (H_b, default ``heads``): B holds H_b heads, query head h reading head
    hb = h // (H / H_b) (5.14, grouped-query attention); H_b < H sets the flag ``grouped``."""

    input_slot: int   # A
    input_b: int      # B
    in_cols: int      # H * K
    out_cols: int     # H * Rb
    heads: int
    seq: int          # T_a: rows of A per sequence
    multiplier: int
    shift: int
    causal: bool = False
    i16: bool = False
    kv_heads: int | None = None  # H_b; None: heads
    kind = KIND_MATMUL

    def __post_init__(self):
        if self.kv_heads is None:
            self.kv_heads = self.heads

    @property
    def grouped(self) -> bool:
        return self.kv_heads != self.heads

    @property
    def b_cols(self) -> int:
        """B's column count: H_b * K (in_cols without the flag)."""
        return self.kv_heads * (self.in_cols // self.heads)

    def _bits(self) -> int:
        return (FLAG_CAUSAL if self.causal else 0) | (FLAG_GROUPED if self.grouped else 0)

    def params_header(self) -> bytes:
        if self.grouped:  # 160 bytes; without the flag the header (and every root) is 5.1's
            return enc(self.heads, self.seq, self.multiplier, self.shift, self.kv_heads)
        return enc(self.heads, self.seq, self.multiplier, self.shift)

    def check(self, where: str) -> None:
        _divides(where, "heads", self.heads, self.in_cols, "in_cols")
        _divides(where, "heads", self.heads, self.out_cols, "out_cols")
        _require(isinstance(self.kv_heads, int) and 1 <= self.kv_heads <= self.heads
                 and self.heads % self.kv_heads == 0,
                 f"{where}: kv_heads = {self.kv_heads} must be in [1, heads = {self.heads}] and divide it")
        _in_range(where, "seq", self.seq, 1, 1 << 16)
        _requant_params(where, multiplier=self.multiplier, shift=self.shift)


@dataclass(eq=False)
class TransposeOp(_Op):
    """5.2: out[g*C + c, h*Rin + i] = in[g*Rin + i, h*C + c]."""

    input_slot: int
    in_cols: int   # H * C
    out_cols: int  # H * Rin
    heads: int = 1
    kind = KIND_TRANSPOSE
    input_b = 0

    def params_header(self) -> bytes:
        return enc(self.heads)

    def check(self, where: str) -> None:
        _divides(where, "heads", self.heads, self.in_cols, "in_cols")
        _divides(where, "heads", self.heads, self.out_cols, "out_cols")


@dataclass(eq=False)
class AddOp(_Op):
    """5.3: y = clamp((a*m_a + b*m_b + 2^(s-1)) >> s, -128, 127): two rescales, one rounding."""

    input_slot: int
    input_b: int
    cols: int
    multiplier_a: int
    multiplier_b: int
    shift: int
    i16: bool = False
    kind = KIND_ADD

    @property
    def in_cols(self) -> int:
        return self.cols

    @property
    def out_cols(self) -> int:
        return self.cols

    def params_header(self) -> bytes:
        return enc(self.multiplier_a, self.multiplier_b, self.shift)

    def check(self, where: str) -> None:
        _requant_params(where, multiplier_a=self.multiplier_a, multiplier_b=self.multiplier_b, shift=self.shift)


@dataclass(eq=False)
class LutOp(_Op):
    """5.4: y = table[x + 128], one table of 256 int8 entries (int16 with ``i16``)."""

    input_slot: int
    cols: int
    table: torch.Tensor  # (256,) int8 (int16 with i16), entry for -128 first
    i16: bool = False
    kind = KIND_LUT
    input_b = 0

    @property
    def in_cols(self) -> int:
        return self.cols

    @property
    def out_cols(self) -> int:
        return self.cols

    def params_header(self) -> bytes:
        """The packed table: 256 bytes, or with i16 512 bytes (int16 big-endian, section 3)."""
        return cm.packed(self.table.reshape(1, 256))

    def check(self, where: str) -> None:
        if self.i16:
            _table(where, "table", self.table, torch.int16, (256,), INT16_MIN, INT16_MAX)
        else:
            _table(where, "table", self.table, torch.int8, (256,), -128, 127)


@dataclass(eq=False)
class SoftmaxOp(_Op):
    """5.5: per row and head, e = E[max - x] over valid keys, y = floor(127 * e / sum e).

    With ``keymask``, ``input_b`` is an int8 slot [rows / T, L]: key u of a row of sequence g
    is valid only where mask[g, u] != 0 (a padded key is never attended to)."""

    input_slot: int
    cols: int            # H * L
    heads: int
    seq: int             # T: rows per sequence (the causal position is row mod T)
    exp_table: torch.Tensor  # (256,) int32, E[d] in [0, 2^23]
    causal: bool = False
    keymask: bool = False
    input_b: int = 0     # the mask slot with keymask; 0 otherwise
    i16: bool = False    # outputs floor(32767 * e / S)
    kind = KIND_SOFTMAX

    @property
    def in_cols(self) -> int:
        return self.cols

    @property
    def out_cols(self) -> int:
        return self.cols

    @property
    def keys(self) -> int:
        """L, the keys per head: the mask slot's column count."""
        return self.cols // self.heads

    @property
    def one(self) -> int:
        """The output's 1.0: 127, or 32767 with i16."""
        return SOFTMAX_ONE_I16 if self.i16 else SOFTMAX_ONE

    def _bits(self) -> int:
        return (FLAG_CAUSAL if self.causal else 0) | (FLAG_KEYMASK if self.keymask else 0)

    @cached_property
    def exp_root(self) -> bytes:
        """ER = H(E packed as 256 big-endian int32)."""
        return keccak256(cm.packed(self.exp_table.reshape(1, 256)))

    def params_header(self) -> bytes:
        return enc(self.heads, self.seq, self.exp_root)

    def check(self, where: str) -> None:
        _divides(where, "heads", self.heads, self.cols, "cols")
        _in_range(where, "seq", self.seq, 1, 1 << 16)
        _table(where, "exp_table", self.exp_table, torch.int32, (256,), 0, EXP_MAX)
        _require(self.keymask or self.input_b == 0,
                 f"{where}: input_b = {self.input_b} names a mask slot, but the softmax has no keymask flag")


@dataclass(eq=False)
class NormOp(_Op):
    """5.6: LayerNorm (z = n*x - sum x) or RMSNorm (z = x); q = floor(z * 2^15 / isqrt(sum z^2));
    y = rq(q * gamma + beta, m, s)."""

    input_slot: int
    gamma: torch.Tensor  # (n,) int64
    beta: torch.Tensor   # (n,) int64
    multiplier: int
    shift: int
    rms: bool = False
    i16: bool = False
    kind = KIND_NORM
    input_b = 0

    @property
    def cols(self) -> int:
        return self.gamma.shape[0]

    in_cols = out_cols = cols

    def _bits(self) -> int:
        return FLAG_RMS if self.rms else 0

    @cached_property
    def column_tree(self) -> MerkleTree:
        """Leaves GL[c] = H(enc(gamma[c], beta[c]))."""
        leaves = [keccak256(enc(g, b)) for g, b in zip(self.gamma.tolist(), self.beta.tolist())]
        return MerkleTree(leaves, depth_for(len(leaves)))

    def params_header(self) -> bytes:
        return enc(self.cols, self.multiplier, self.shift, self.column_tree.root)

    def check(self, where: str) -> None:
        n = self.gamma.shape[0] if isinstance(self.gamma, torch.Tensor) and self.gamma.dim() == 1 else 0
        for name in ("gamma", "beta"):
            _table(where, name, getattr(self, name), torch.int64, (n,), -INT32_MAX, INT32_MAX)
        _require(n >= 1, f"{where}: a norm has at least one column")
        bound = (self.gamma.abs() << NORM_FRAC) + self.beta.abs()
        worst = int(bound.argmax())
        _require(int(bound[worst]) <= INT32_MAX,
                 f"{where}, column {worst}: 2^15 * |gamma| + |beta| = {int(bound[worst])} reaches 2^31")
        _requant_params(where, multiplier=self.multiplier, shift=self.shift)


@dataclass(eq=False)
class EmbedOp(_Op):
    """5.7: y[b*T + t] = clamp((E_tok[id] * m_a + E_pos[t] * m_b + 2^(s-1)) >> s); unknown ids embed as 0.
    With ``i16`` the tables are int16 and the clamp is the 16-bit one."""

    input_slot: int
    token_table: torch.Tensor     # (V, d) int8 (int16 with i16)
    position_table: torch.Tensor  # (T, d) int8 (int16 with i16)
    multiplier_a: int
    multiplier_b: int
    shift: int
    i16: bool = False
    kind = KIND_EMBED
    input_b = 0

    @property
    def vocab(self) -> int:
        return self.token_table.shape[0]

    @property
    def in_cols(self) -> int:
        return self.position_table.shape[0]

    @property
    def out_cols(self) -> int:
        return self.token_table.shape[1]

    def params_header(self) -> bytes:
        token_root = cm.commit_tensor(self.token_table).rows_root
        position_root = cm.commit_tensor(self.position_table).rows_root
        return enc(self.vocab, self.in_cols, self.out_cols, self.multiplier_a, self.multiplier_b, self.shift,
                   token_root, position_root)

    def check(self, where: str) -> None:
        dtype = torch.int16 if self.i16 else torch.int8
        for name in ("token_table", "position_table"):
            table = getattr(self, name)
            _require(isinstance(table, torch.Tensor) and table.dtype == dtype and table.dim() == 2,
                     f"{where}: {name} must be a 2-D {str(dtype).removeprefix('torch.')} tensor")
        _require(1 <= self.vocab <= VOCAB_MAX, f"{where}: vocabulary {self.vocab} is outside [1, 2^24]")
        _require(self.position_table.shape[1] == self.out_cols and self.position_table.shape[0] >= 1,
                 f"{where}: position table {tuple(self.position_table.shape)} does not match width {self.out_cols}")
        _requant_params(where, multiplier_a=self.multiplier_a, multiplier_b=self.multiplier_b, shift=self.shift)


@dataclass(eq=False)
class ArgmaxOp(_Op):
    """5.8: y[r, 0] = the lowest index of the row's maximum (int32).

    5.14, a vocabulary split into chunks: with ``pair`` the output is [rows, 2], (max value,
    index); with ``carry`` input_b is an earlier pair slot (vb, jb) and the result is (vb, jb)
    where vb >= this chunk's max M (ties keep the earlier, lower index), else
    (M, offset + the lowest index of M)."""

    input_slot: int
    in_cols: int
    pair: bool = False
    carry: bool = False
    input_b: int = 0   # the carried pair's slot with carry; 0 otherwise
    offset: int = 0    # the chunk's first id with carry, in [1, 2^24]; 0 otherwise
    kind = KIND_ARGMAX

    @property
    def out_cols(self) -> int:
        return 2 if self.pair else 1

    def _bits(self) -> int:
        return (FLAG_PAIR if self.pair else 0) | (FLAG_CARRY if self.carry else 0)

    def params_header(self) -> bytes:
        if not self.carry:
            raise NotImplementedError("argmax without carry has no params header")
        return enc(self.offset)

    @property
    def params_root(self) -> bytes:
        return keccak256(enc(self.offset)) if self.carry else ZERO32

    def check(self, where: str) -> None:
        if self.carry:
            _in_range(where, "offset", self.offset, 1, OFFSET_MAX)
        else:
            _require(self.input_b == 0 and self.offset == 0,
                     f"{where}: input_b = {self.input_b} and offset = {self.offset} need the carry flag")


@dataclass(eq=False)
class RopeOp(_Op):
    """5.12: per head, the column pairs (i, i + D/2) rotated by row t = r mod T of the table:
    y_i = rq(a c_i - b s_i), y_{i+D/2} = rq(b c_i + a s_i) (HF Llama's rotate_half)."""

    input_slot: int
    heads: int
    table: torch.Tensor  # (T, D) int16: row t = (c_0 .. c_{D/2-1}, s_0 .. s_{D/2-1}), |entry| <= 2^14
    multiplier: int
    shift: int
    i16: bool = False
    kind = KIND_ROPE
    input_b = 0

    @property
    def seq(self) -> int:
        return self.table.shape[0]

    @property
    def head_dim(self) -> int:
        return self.table.shape[1]

    @property
    def cols(self) -> int:
        return self.heads * self.head_dim

    in_cols = out_cols = cols

    def params_header(self) -> bytes:
        """enc(H, T, m, s, CR), CR the rows root of the int16 table (160 bytes)."""
        return enc(self.heads, self.seq, self.multiplier, self.shift, cm.commit_tensor(self.table).rows_root)

    def check(self, where: str) -> None:
        table = self.table
        _require(isinstance(table, torch.Tensor) and table.dtype == torch.int16 and table.dim() == 2,
                 f"{where}: table must be a 2-D int16 tensor")
        _table(where, "table", table, torch.int16, tuple(table.shape), -ROPE_ONE, ROPE_ONE)
        _in_range(where, "seq", self.seq, 1, 1 << 16)
        _require(self.head_dim >= 2 and self.head_dim % 2 == 0,
                 f"{where}: the head width D = {self.head_dim} must be even and >= 2")
        _require(isinstance(self.heads, int) and self.heads >= 1, f"{where}: heads = {self.heads} must be >= 1")
        _requant_params(where, multiplier=self.multiplier, shift=self.shift)


@dataclass(eq=False)
class MulOp(_Op):
    """5.13 (SwiGLU's product): y = rq(a * b, m, s) elementwise over two slots."""

    input_slot: int
    input_b: int
    cols: int
    multiplier: int
    shift: int
    i16: bool = False
    kind = KIND_MUL

    @property
    def in_cols(self) -> int:
        return self.cols

    @property
    def out_cols(self) -> int:
        return self.cols

    def params_header(self) -> bytes:
        return enc(self.multiplier, self.shift)

    def check(self, where: str) -> None:
        _requant_params(where, multiplier=self.multiplier, shift=self.shift)
