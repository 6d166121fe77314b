"""The transformer op kinds of protocol sections 5.1-5.8: parameters, ranges, params headers
and descriptors.

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

KIND_MATMUL, KIND_TRANSPOSE, KIND_ADD, KIND_LUT, KIND_SOFTMAX, KIND_NORM, KIND_EMBED, KIND_ARGMAX = range(2, 10)
FLAG_CAUSAL = 1  # matmul, softmax
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
    """5.1: y[r, h*Rb + j] = rq(sum_k A[r, h*K + k] * B[g*Rb + j, h*K + k]); -128 where causal masks."""

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
    kind = KIND_MATMUL

    def _bits(self) -> int:
        return FLAG_CAUSAL if self.causal else 0

    def params_header(self) -> bytes:
        return enc(self.heads, self.seq, self.multiplier, self.shift)

    def check(self, where: str) -> None:
        _divides(where, "heads", self.heads, self.in_cols, "in_cols")
        _divides(where, "heads", self.heads, self.out_cols, "out_cols")
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
    """5.8: y[r, 0] = the lowest index of the row's maximum (int32)."""

    input_slot: int
    in_cols: int
    kind = KIND_ARGMAX
    input_b = 0
    out_cols = 1

    def params_header(self) -> bytes:
        raise NotImplementedError("argmax has no params header")

    @property
    def params_root(self) -> bytes:
        return ZERO32

    def check(self, where: str) -> None:
        pass
