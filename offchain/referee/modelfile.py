"""Integer models on disk: a directory with ``model.json`` (manifest) and ``weights.safetensors``.

One format for every kind of protocol section 5 (docs/formats.md section 1): each op object
in the manifest names its kind, its slots, its scalar fields as JSON integers and booleans,
and its params root; its tables are safetensors tensors ``op{j}.<name>`` of one fixed dtype
per field. An MLP directory written before the transformer kinds existed (version 1, linear
ops over int8 inputs) is a directory of this same format, read by the same code with the
same roots. Loading recomputes every commitment from the tensors and refuses a file whose
tensors no longer match its manifest (tampered, truncated or mixed up), naming what is wrong;
a text model's tokenizer file must match the digest its manifest records.
"""

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import ops as k
from .atomic import write_atomic
from .commitments import DTYPE_INT8
from .errors import ModelCompileError, ModelFormatError
from .hashing import to_hex
from .model import DTYPE_NAMES, IntegerModel, LinearOp, check_op, kind_name

FORMAT = "referee-model"
VERSION = 1  # a superset of what version 1 held: every version-1 directory stays valid
MANIFEST = "model.json"
WEIGHTS = "weights.safetensors"
COMMON = ("kind", "input_slot", "in_cols", "out_cols")
I8, I16, I32 = torch.int8, torch.int16, torch.int32


I16_OPTIONAL = ("i16", False)  # protocol 5.0's int16 outputs: absent in every model without them


@dataclasses.dataclass(frozen=True)
class Kind:
    """How one kind sits in the manifest and the weights file."""

    ints: tuple[str, ...]                      # JSON integer fields besides input_slot, in_cols, out_cols
    bools: tuple[str, ...]                     # JSON boolean fields
    tables: tuple[tuple[str, torch.dtype], ...]  # tensors op{j}.<name> and their one dtype
    build: Callable[[dict], object]            # every field and table by name -> the op
    root_field: str = "params_root"
    # Fields added after version 1 (among ints/bools): absent means the default, and they are
    # written only when they differ from it, so older directories load with the same roots. A
    # callable default takes a getter of the op's other fields (matmul's kv_heads: its heads).
    optional: tuple[tuple[str, object], ...] = (I16_OPTIONAL,)


KINDS = {
    "linear": Kind((), ("relu", "wide", "i16"), (("weight", I8), ("bias", I32), ("multiplier", I32), ("shift", I32)),
                   lambda v: LinearOp(v["input_slot"], v["weight"], v["bias"], v["multiplier"], v["shift"],
                                      v["relu"], v["wide"], v["i16"]),
                   root_field="weights_root",  # version 1's name for a linear op's params root
                   optional=(("wide", False), I16_OPTIONAL)),
    "matmul": Kind(("input_b", "heads", "seq", "multiplier", "shift", "kv_heads"), ("causal", "i16"), (),
                   lambda v: k.MatmulOp(v["input_slot"], v["input_b"], v["in_cols"], v["out_cols"], v["heads"],
                                        v["seq"], v["multiplier"], v["shift"], v["causal"], v["i16"], v["kv_heads"]),
                   optional=(("kv_heads", lambda get: get("heads")), I16_OPTIONAL)),  # 5.14: grouped
    "transpose": Kind(("heads",), (), (),
                      lambda v: k.TransposeOp(v["input_slot"], v["in_cols"], v["out_cols"], v["heads"])),
    "add": Kind(("input_b", "multiplier_a", "multiplier_b", "shift"), ("i16",), (),
                lambda v: k.AddOp(v["input_slot"], v["input_b"], v["in_cols"], v["multiplier_a"], v["multiplier_b"],
                                  v["shift"], v["i16"])),
    # the table is int8, or int16 with i16 (_table_dtype); so are embed's
    "lut": Kind((), ("i16",), (("table", I8),), lambda v: k.LutOp(v["input_slot"], v["in_cols"], v["table"], v["i16"])),
    "softmax": Kind(("input_b", "heads", "seq"), ("causal", "keymask", "i16"), (("exp_table", I32),),
                    lambda v: k.SoftmaxOp(v["input_slot"], v["in_cols"], v["heads"], v["seq"], v["exp_table"],
                                          v["causal"], v["keymask"], v["input_b"], v["i16"]),
                    optional=(("input_b", 0), ("keymask", False), I16_OPTIONAL)),  # protocol 5.5's key mask
    # gamma and beta lie in [-(2^31 - 1), 2^31 - 1] (5.6): stored int32, held int64 for the kernel
    "norm": Kind(("multiplier", "shift"), ("rms", "i16"), (("gamma", I32), ("beta", I32)),
                 lambda v: k.NormOp(v["input_slot"], v["gamma"].to(torch.int64), v["beta"].to(torch.int64),
                                    v["multiplier"], v["shift"], v["rms"], v["i16"])),
    "embed": Kind(("multiplier_a", "multiplier_b", "shift"), ("i16",), (("token_table", I8), ("position_table", I8)),
                  lambda v: k.EmbedOp(v["input_slot"], v["token_table"], v["position_table"], v["multiplier_a"],
                                      v["multiplier_b"], v["shift"], v["i16"])),
    "argmax": Kind(("input_b", "offset"), ("pair", "carry"), (),
                   lambda v: k.ArgmaxOp(v["input_slot"], v["in_cols"], v["pair"], v["carry"], v["input_b"],
                                        v["offset"]),
                   optional=(("input_b", 0), ("offset", 0), ("pair", False), ("carry", False))),  # 5.14
    # 5.12: the rotation table is int16 [T, D]; in_cols = heads * D
    "rope": Kind(("heads", "multiplier", "shift"), ("i16",), (("table", I16),),
                 lambda v: k.RopeOp(v["input_slot"], v["heads"], v["table"], v["multiplier"], v["shift"], v["i16"])),
    "mul": Kind(("input_b", "multiplier", "shift"), ("i16",), (),
                lambda v: k.MulOp(v["input_slot"], v["input_b"], v["in_cols"], v["multiplier"], v["shift"], v["i16"])),
}
DTYPE_CODES = {name: code for code, name in DTYPE_NAMES.items()}


def _tensor_name(op_number: int, field: str) -> str:
    return f"op{op_number}.{field}"


def _table_dtype(kind: str, field: str, dtype: torch.dtype, i16: bool) -> torch.dtype:
    """A tensor's one dtype: the kind's, except the tables of a lut or embed with i16, which
    are int16 (5.4, 5.7)."""
    return I16 if i16 and kind in ("lut", "embed") and dtype == I8 else dtype


def _meta_json(value):
    """json.dumps ``default``: dataclasses in ``meta`` (a compiler's config) become objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _default(kind: Kind, field: str, get: Callable[[str], object]):
    """An optional field's default (a callable one asks ``get`` for another field's value)."""
    default = dict(kind.optional)[field]
    return default(get) if callable(default) else default


def _op_entry(j: int, op, tensors: dict) -> dict:
    name = kind_name(op)
    kind = KINDS[name]
    entry = {"kind": name, "input_slot": op.input_slot, "in_cols": op.in_cols, "out_cols": op.out_cols}
    optional = dict(kind.optional)

    def written(field: str) -> bool:
        return field not in optional or getattr(op, field) != _default(kind, field, lambda f: getattr(op, f))

    entry.update({field: getattr(op, field) for field in kind.ints if written(field)})
    entry.update({field: bool(getattr(op, field)) for field in kind.bools if written(field)})
    for field, dtype in kind.tables:
        tensors[_tensor_name(j, field)] = getattr(op, field).to(_table_dtype(name, field, dtype, op.i16)).contiguous()
    entry[kind.root_field] = to_hex(op.params_root)
    return entry


def save_model(model: IntegerModel, directory: Path) -> Path:
    """Write the model atomically (weights first, manifest last); return the directory."""
    model.validate()
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    ops = [_op_entry(j, op, tensors) for j, op in enumerate(model.ops, start=1)]
    manifest = {
        "format": FORMAT, "version": VERSION, "name": model.name,
        "input_cols": model.input_cols, "output_cols": model.output_cols,
        "input_scale": model.input_scale, "output_scale": model.output_scale,
        "state_depth": model.state_depth, "ops": ops,
        "ops_root": to_hex(model.ops_root), "model_root": to_hex(model.root), "meta": model.meta,
    }
    if model.input_dtype != DTYPE_INT8:  # absent means int8, so an MLP's manifest is version 1's
        manifest["input_dtype"] = DTYPE_NAMES[model.input_dtype]
    try:
        text = json.dumps(manifest, indent=2, default=_meta_json) + "\n"
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"the model's meta cannot be written as JSON: {exc}") from None
    write_atomic(directory / WEIGHTS, save_safetensors(tensors))
    write_atomic(directory / MANIFEST, text.encode())
    return directory


def _field(obj: dict, key: str, kind: type, where: str):
    if key not in obj:
        raise ModelFormatError(f"{where}: missing field {key!r}")
    value = obj[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ModelFormatError(f"{where}: field {key!r} must be an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise ModelFormatError(f"{where}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFormatError(f"{path} not found: is {path.parent} a Referee model directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path} is not valid JSON (corrupt or truncated): {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFormatError(f"{path} is not a Referee model manifest")
    if manifest.get("version") != VERSION:
        raise ModelFormatError(f"{path}: unsupported manifest version {manifest.get('version')!r}")
    return manifest


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(path.read_bytes())
    except FileNotFoundError:
        raise ModelFormatError(f"{path} not found") from None
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"{path} is corrupt or truncated: {exc}") from None


def _read_op(j: int, spec, tensors: dict, directory: Path):
    """Op j from its manifest object and its tensors (popped from ``tensors``); ModelFormatError naming a flaw."""
    where = f"{MANIFEST} op {j}"
    name = spec.get("kind") if isinstance(spec, dict) else spec
    if not isinstance(spec, dict) or name not in KINDS:
        raise ModelFormatError(f"{where}: unsupported op kind {name!r} (known: {', '.join(KINDS)})")
    kind = KINDS[name]
    known = set(COMMON) | set(kind.ints) | set(kind.bools) | {kind.root_field}
    if set(spec) - known:
        raise ModelFormatError(f"{where}: fields {sorted(set(spec) - known)} are not fields of kind {name!r}")
    optional = dict(kind.optional)
    values = {}
    for key, kind_of in [(key, int) for key in COMMON[1:] + kind.ints] + [(key, bool) for key in kind.bools]:
        # a callable default reads a field listed before it (kv_heads: heads)
        values[key] = (_field(spec, key, kind_of, where) if key in spec or key not in optional
                       else _default(kind, key, values.__getitem__))
    for field, dtype in kind.tables:
        dtype = _table_dtype(name, field, dtype, values.get("i16", False))
        tensor_name = _tensor_name(j, field)
        if tensor_name not in tensors:
            raise ModelFormatError(f"{WEIGHTS}: tensor {tensor_name!r} is missing")
        values[field] = tensors.pop(tensor_name)
        if values[field].dtype != dtype:  # the dtype is part of the format, even where a wider one holds the values
            raise ModelFormatError(f"op {j}: {field} must be {str(dtype).removeprefix('torch.')}, tensor "
                                   f"{tensor_name!r} in {WEIGHTS} is {str(values[field].dtype).removeprefix('torch.')}")
    op = kind.build(values)
    if name == "linear":
        shape = (values["out_cols"], values["in_cols"])
        if tuple(op.weight.shape) != shape:
            raise ModelFormatError(f"{where}: weight has shape {tuple(op.weight.shape)}, manifest says {shape}")
    try:
        check_op(op, f"op {j}")
    except ModelCompileError as exc:
        raise ModelFormatError(f"{directory}: {exc}") from None
    stated = (values["in_cols"], values["out_cols"])
    if (op.in_cols, op.out_cols) != stated:
        raise ModelFormatError(f"{where}: its tables give (in_cols, out_cols) = {(op.in_cols, op.out_cols)}, "
                               f"manifest says {stated}")
    return op


def _check_roots(model: IntegerModel, manifest: dict, op_specs: list) -> None:
    """Every root and figure the manifest states against the ones the tensors give."""
    for j, (op, spec) in enumerate(zip(model.ops, op_specs), start=1):
        kind = KINDS[spec["kind"]]
        if to_hex(op.params_root) != _field(spec, kind.root_field, str, f"{MANIFEST} op {j}"):
            what = "weights" if kind.root_field == "weights_root" else f"{spec['kind']} params"
            raise ModelFormatError(f"op {j}: the {what} do not match {kind.root_field} in {MANIFEST} "
                                   "(tampered or mixed up)")
    # every figure the manifest states is checked, not only the model root: a stated ops root or
    # shape that disagrees with the weights means the manifest was edited or mixed up
    for key, actual in (("ops_root", to_hex(model.ops_root)), ("output_cols", model.output_cols),
                        ("state_depth", model.state_depth)):
        if _field(manifest, key, type(actual), MANIFEST) != actual:
            raise ModelFormatError(f"{MANIFEST}: {key} is {manifest[key]!r}, the weights give {actual!r} "
                                   "(tampered or mixed up)")
    if to_hex(model.root) != _field(manifest, "model_root", str, MANIFEST):
        raise ModelFormatError(f"the model root recomputed from the weights does not match {MANIFEST}")


def _check_tokenizer(directory: Path, meta: dict) -> None:
    """A text model's tokenizer file against the sha256 its manifest records (docs/formats.md
    section 1, "Tokenizers"): the ids a text becomes are the input, so a swapped or edited
    tokenizer would silently commit to other inputs. Models without a recorded digest (token
    ids only) have nothing to check."""
    spec = meta.get("tokenizer") if isinstance(meta, dict) else None
    if not isinstance(spec, dict) or "sha256" not in spec:
        return
    name = spec.get("tokenizer")
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ModelFormatError(f"{MANIFEST}: meta.tokenizer.tokenizer must be a file name in the model directory, "
                               f"got {name!r}")
    path = directory / name
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ModelFormatError(f"{path} is missing: {MANIFEST} names it as the model's tokenizer") from None
    if digest != spec["sha256"]:
        raise ModelFormatError(f"{path} does not match the sha256 {MANIFEST} records for it (swapped or edited); "
                               "copy the checkpoint's tokenizer back or quantize the checkpoint again")


def load_model(directory: Path) -> IntegerModel:
    """Load and fully verify a model directory; raise ModelFormatError naming any problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFormatError(f"{directory} is not a directory (a model is a directory with {MANIFEST})")
    manifest = _read_manifest(directory / MANIFEST)
    tensors = _read_tensors(directory / WEIGHTS)
    op_specs = _field(manifest, "ops", list, MANIFEST)
    if not op_specs:
        raise ModelFormatError(f"{MANIFEST}: the model has no ops")
    input_dtype = manifest.get("input_dtype", "int8")
    if input_dtype not in ("int8", "int32"):  # a model's input is never int16 (protocol 5)
        raise ModelFormatError(f"{MANIFEST}: input_dtype {input_dtype!r} is neither \"int8\" nor \"int32\"")
    ops = [_read_op(j, spec, tensors, directory) for j, spec in enumerate(op_specs, start=1)]
    if tensors:
        raise ModelFormatError(f"{WEIGHTS}: unexpected tensors {sorted(tensors)}")
    model = IntegerModel(_field(manifest, "input_cols", int, MANIFEST), ops,
                         name=str(manifest.get("name", "model")),
                         input_scale=manifest.get("input_scale"), output_scale=manifest.get("output_scale"),
                         meta=manifest.get("meta") or {}, input_dtype=DTYPE_CODES[input_dtype])
    try:
        model.validate()
    except ModelCompileError as exc:
        raise ModelFormatError(f"{directory}: {exc}") from None
    _check_roots(model, manifest, op_specs)
    _check_tokenizer(directory, model.meta)
    return model
