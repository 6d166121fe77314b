"""Integer models as plain dicts of ints and lists: the form the pure-integer reference and
the golden vectors use (tests/reference.py's model dict, extended to every kind).

``{"input_cols", "input_dtype" (0 int8 / 1 int32, default 0), "ops": [...]}``; every op dict
has ``kind`` (the protocol's number), ``flags``, ``input_a``, ``input_b`` and the fields of
its kind (below). Models on disk use referee.modelfile instead; this form exists so that the
independent reference and the vectors need no torch types.
"""

import torch

from . import ops as k
from .errors import ModelCompileError
from .model import IntegerModel, LinearOp

_BITS = {k.KIND_MATMUL: k.FLAG_CAUSAL | k.FLAG_GROUPED, k.KIND_SOFTMAX: k.FLAG_CAUSAL | k.FLAG_KEYMASK,
         k.KIND_NORM: k.FLAG_RMS, k.KIND_ARGMAX: k.FLAG_PAIR | k.FLAG_CARRY}
I16 = k.FLAG_I16  # bit 7 of every kind that writes activations (protocol 5.0)
_NO_I16 = (k.KIND_TRANSPOSE, k.KIND_ARGMAX)


def _int(d: dict, key: str) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelCompileError(f"op field {key!r} must be an integer, got {value!r}")
    return value


def _tensor(d: dict, key: str, dtype: torch.dtype) -> torch.Tensor:
    try:
        wide = torch.tensor(d[key], dtype=torch.int64)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelCompileError(f"op field {key!r} is missing or not a list of integers ({e})") from None
    if dtype != torch.int64:
        info = torch.iinfo(dtype)
        if wide.numel() and (int(wide.min()) < info.min or int(wide.max()) > info.max):
            raise ModelCompileError(f"op field {key!r} has a value outside {dtype}")
    return wide.to(dtype)


def _flags(d: dict, kind: int, allowed: int) -> int:
    flags = d.get("flags", 0)
    if not isinstance(flags, int) or flags & ~allowed:
        raise ModelCompileError(f"kind {kind}: flags {flags!r} set a bit the kind does not define")
    return flags


def op_from_dict(d: dict):
    """One op dict -> a referee op, its own rules checked (its slots are IntegerModel.validate's)."""
    kind = _int(d, "kind")
    a, b = _int(d, "input_a"), d.get("input_b", 0)
    if kind == 1:
        flags = _flags(d, kind, 3 | I16)
        return LinearOp(a, _tensor(d, "weights", torch.int8), _tensor(d, "bias", torch.int32),
                        _tensor(d, "multiplier", torch.int32), _tensor(d, "shift", torch.int32),
                        relu=bool(flags & 1), wide=bool(flags & 2), i16=bool(flags & I16))
    if kind not in range(k.KIND_MATMUL, k.KIND_MUL + 1):
        raise ModelCompileError(f"unknown op kind {kind}")
    flags = _flags(d, kind, _BITS.get(kind, 0) | (0 if kind in _NO_I16 else I16))
    i16, flags = bool(flags & I16), flags & ~I16
    keymask = kind == k.KIND_SOFTMAX and bool(flags & k.FLAG_KEYMASK)
    carry = kind == k.KIND_ARGMAX and bool(flags & k.FLAG_CARRY)
    if kind not in (k.KIND_MATMUL, k.KIND_ADD, k.KIND_MUL) and not (keymask or carry) and b != 0:
        raise ModelCompileError(f"kind {kind}: input_b must be 0, got {b!r}")
    ic, oc = _int(d, "in_cols"), _int(d, "out_cols")
    if kind == k.KIND_MATMUL:
        heads, grouped = _int(d, "heads"), bool(flags & k.FLAG_GROUPED)
        kv_heads = _int(d, "kv_heads") if grouped else heads  # 5.14: H_b < H only with the flag
        if grouped and kv_heads == heads:
            raise ModelCompileError(f"kind {kind}: the grouped flag needs kv_heads < heads = {heads}")
        op = k.MatmulOp(a, _int(d, "input_b"), ic, oc, heads, _int(d, "seq"), _int(d, "multiplier"),
                        _int(d, "shift"), causal=bool(flags & k.FLAG_CAUSAL), i16=i16, kv_heads=kv_heads)
    elif kind == k.KIND_TRANSPOSE:
        op = k.TransposeOp(a, ic, oc, _int(d, "heads"))
    elif kind == k.KIND_ADD:
        op = k.AddOp(a, _int(d, "input_b"), ic, _int(d, "multiplier_a"), _int(d, "multiplier_b"), _int(d, "shift"),
                     i16=i16)
    elif kind == k.KIND_LUT:
        op = k.LutOp(a, ic, _tensor(d, "table", torch.int16 if i16 else torch.int8), i16=i16)
    elif kind == k.KIND_SOFTMAX:
        op = k.SoftmaxOp(a, ic, _int(d, "heads"), _int(d, "seq"), _tensor(d, "exp_table", torch.int32),
                         causal=bool(flags & k.FLAG_CAUSAL), keymask=keymask,
                         input_b=_int(d, "input_b") if keymask else 0, i16=i16)
    elif kind == k.KIND_NORM:
        op = k.NormOp(a, _tensor(d, "gamma", torch.int64), _tensor(d, "beta", torch.int64), _int(d, "multiplier"),
                      _int(d, "shift"), rms=bool(flags), i16=i16)
    elif kind == k.KIND_EMBED:
        table = torch.int16 if i16 else torch.int8  # 5.7: int16 tables with i16
        op = k.EmbedOp(a, _tensor(d, "token_table", table), _tensor(d, "position_table", table),
                       _int(d, "multiplier_a"), _int(d, "multiplier_b"), _int(d, "shift"), i16=i16)
    elif kind == k.KIND_ROPE:
        op = k.RopeOp(a, _int(d, "heads"), _tensor(d, "table", torch.int16), _int(d, "multiplier"), _int(d, "shift"),
                      i16=i16)
    elif kind == k.KIND_MUL:
        op = k.MulOp(a, _int(d, "input_b"), ic, _int(d, "multiplier"), _int(d, "shift"), i16=i16)
    else:
        op = k.ArgmaxOp(a, ic, pair=bool(flags & k.FLAG_PAIR), carry=carry, input_b=_int(d, "input_b") if carry else 0,
                        offset=_int(d, "offset") if carry else 0)
    op.check(f"kind {kind}")  # its tables' own shapes first: an empty table has no in_cols to compare
    if (op.in_cols, op.out_cols) != (ic, oc):
        raise ModelCompileError(f"kind {kind}: in_cols/out_cols ({ic}, {oc}) do not match its tables "
                                f"({op.in_cols}, {op.out_cols})")
    return op


def op_to_dict(op) -> dict:
    d = {"kind": 1 if isinstance(op, LinearOp) else op.kind, "flags": op.flags, "input_a": op.input_slot,
         "input_b": op.input_b if not isinstance(op, LinearOp) else 0, "in_cols": op.in_cols, "out_cols": op.out_cols}
    if isinstance(op, LinearOp):
        d.update(weights=op.weight.tolist(), bias=op.bias.tolist(), multiplier=op.multiplier.tolist(),
                 shift=op.shift.tolist())
    elif isinstance(op, k.MatmulOp):
        d.update(heads=op.heads, seq=op.seq, multiplier=op.multiplier, shift=op.shift)
        if op.grouped:
            d.update(kv_heads=op.kv_heads)
    elif isinstance(op, k.TransposeOp):
        d.update(heads=op.heads)
    elif isinstance(op, k.AddOp):
        d.update(multiplier_a=op.multiplier_a, multiplier_b=op.multiplier_b, shift=op.shift)
    elif isinstance(op, k.LutOp):
        d.update(table=op.table.tolist())
    elif isinstance(op, k.SoftmaxOp):
        d.update(heads=op.heads, seq=op.seq, exp_table=op.exp_table.tolist())
    elif isinstance(op, k.NormOp):
        d.update(multiplier=op.multiplier, shift=op.shift, gamma=op.gamma.tolist(), beta=op.beta.tolist())
    elif isinstance(op, k.EmbedOp):
        d.update(token_table=op.token_table.tolist(), position_table=op.position_table.tolist(),
                 multiplier_a=op.multiplier_a, multiplier_b=op.multiplier_b, shift=op.shift)
    elif isinstance(op, k.RopeOp):
        d.update(heads=op.heads, multiplier=op.multiplier, shift=op.shift, table=op.table.tolist())
    elif isinstance(op, k.MulOp):
        d.update(multiplier=op.multiplier, shift=op.shift)
    elif isinstance(op, k.ArgmaxOp) and op.carry:
        d.update(offset=op.offset)
    return d


def model_from_dict(d: dict) -> IntegerModel:
    """A validated IntegerModel from its dict (ModelCompileError on any broken rule)."""
    if not isinstance(d, dict) or not isinstance(d.get("ops"), list) or not d["ops"]:
        raise ModelCompileError("a model dict has input_cols and a non-empty ops list")
    model = IntegerModel(_int(d, "input_cols"), [op_from_dict(o) for o in d["ops"]], input_dtype=d.get("input_dtype", 0))
    return model.validate()


def model_to_dict(model: IntegerModel) -> dict:
    return {"input_cols": model.input_cols, "input_dtype": model.input_dtype,
            "ops": [op_to_dict(op) for op in model.ops]}

