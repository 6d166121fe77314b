"""Integer models on disk: a directory with ``model.json`` (manifest) and ``weights.safetensors``.

The manifest names the ops, their shapes and their weights roots, plus the ops root and model
root; loading recomputes every commitment from the tensors and refuses a file whose tensors no
longer match its manifest (tampered, truncated or mixed up), naming what is wrong.
"""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .atomic import write_atomic
from .errors import ModelCompileError, ModelFormatError
from .hashing import to_hex
from .model import IntegerModel, LinearOp

FORMAT = "referee-model"
VERSION = 1
MANIFEST = "model.json"
WEIGHTS = "weights.safetensors"
TENSOR_FIELDS = ("weight", "bias", "multiplier", "shift")


def _tensor_name(op_number: int, field: str) -> str:
    return f"op{op_number}.{field}"


def save_model(model: IntegerModel, directory: Path) -> Path:
    """Write the model atomically (weights first, manifest last); return the directory."""
    model.validate()
    directory = Path(directory)
    tensors = {}
    ops = []
    for j, op in enumerate(model.ops, start=1):
        for field in TENSOR_FIELDS:
            tensors[_tensor_name(j, field)] = getattr(op, field).contiguous()
        ops.append({"kind": "linear", "input_slot": op.input_slot, "in_cols": op.in_cols,
                    "out_cols": op.out_cols, "relu": op.relu, "weights_root": to_hex(op.weights.root)})
    manifest = {
        "format": FORMAT, "version": VERSION, "name": model.name,
        "input_cols": model.input_cols, "output_cols": model.output_cols,
        "input_scale": model.input_scale, "output_scale": model.output_scale,
        "state_depth": model.state_depth, "ops": ops,
        "ops_root": to_hex(model.ops_root), "model_root": to_hex(model.root), "meta": model.meta,
    }
    write_atomic(directory / WEIGHTS, save_safetensors(tensors))
    write_atomic(directory / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
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
    ops = []
    for j, spec in enumerate(op_specs, start=1):
        where = f"{MANIFEST} op {j}"
        if not isinstance(spec, dict) or spec.get("kind") != "linear":
            raise ModelFormatError(f"{where}: unsupported op kind {spec.get('kind') if isinstance(spec, dict) else spec!r}")
        found = {}
        for field in TENSOR_FIELDS:
            name = _tensor_name(j, field)
            if name not in tensors:
                raise ModelFormatError(f"{WEIGHTS}: tensor {name!r} is missing")
            found[field] = tensors.pop(name)
        op = LinearOp(_field(spec, "input_slot", int, where), found["weight"], found["bias"],
                      found["multiplier"], found["shift"], _field(spec, "relu", bool, where))
        shape = (_field(spec, "out_cols", int, where), _field(spec, "in_cols", int, where))
        if tuple(op.weight.shape) != shape:
            raise ModelFormatError(f"{where}: weight has shape {tuple(op.weight.shape)}, manifest says {shape}")
        ops.append(op)
    if tensors:
        raise ModelFormatError(f"{WEIGHTS}: unexpected tensors {sorted(tensors)}")
    model = IntegerModel(_field(manifest, "input_cols", int, MANIFEST), ops,
                         name=str(manifest.get("name", "model")),
                         input_scale=manifest.get("input_scale"), output_scale=manifest.get("output_scale"),
                         meta=manifest.get("meta") or {})
    try:
        model.validate()
    except ModelCompileError as exc:
        raise ModelFormatError(f"{directory}: {exc}") from None
    for j, (op, spec) in enumerate(zip(ops, op_specs), start=1):
        if to_hex(op.weights.root) != _field(spec, "weights_root", str, f"{MANIFEST} op {j}"):
            raise ModelFormatError(f"op {j}: the weights do not match weights_root in {MANIFEST} (tampered or mixed up)")
    # every figure the manifest states is checked, not only the model root: a stated ops root or
    # shape that disagrees with the weights means the manifest was edited or mixed up
    for key, actual in (("ops_root", to_hex(model.ops_root)), ("output_cols", model.output_cols),
                        ("state_depth", model.state_depth)):
        if _field(manifest, key, type(actual), MANIFEST) != actual:
            raise ModelFormatError(f"{MANIFEST}: {key} is {manifest[key]!r}, the weights give {actual!r} "
                                   "(tampered or mixed up)")
    if to_hex(model.root) != _field(manifest, "model_root", str, MANIFEST):
        raise ModelFormatError(f"the model root recomputed from the weights does not match {MANIFEST}")
    return model
