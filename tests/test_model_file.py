"""Integer models on disk: round trip, and clear refusals of corrupt, truncated or tampered files."""

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import random_ref_model, small_transformer, to_integer_model, token_ids
from referee.errors import ModelCompileError, ModelFormatError
from referee.executor import Executor
from referee.hashing import to_hex
from referee.modelfile import MANIFEST, WEIGHTS, load_model, save_model


@pytest.fixture
def model_dir(tmp_path):
    model = to_integer_model(random_ref_model(random.Random(7), 12, [9, 5, 4]))
    model.name = "roundtrip"
    return save_model(model, tmp_path / "m"), model


def test_save_load_roundtrip_succeeds(model_dir):
    path, model = model_dir
    loaded = load_model(path)
    assert loaded.root == model.root and loaded.name == "roundtrip"
    for a, b in zip(loaded.ops, model.ops):
        assert a.input_slot == b.input_slot and a.relu == b.relu
        for field in ("weight", "bias", "multiplier", "shift"):
            assert getattr(a, field).equal(getattr(b, field))


def test_load_missing_directory_fails(tmp_path):
    with pytest.raises(ModelFormatError, match="not a directory"):
        load_model(tmp_path / "nope")


def test_load_missing_manifest_fails(model_dir):
    path, _ = model_dir
    (path / MANIFEST).unlink()
    with pytest.raises(ModelFormatError, match="model.json not found"):
        load_model(path)


@pytest.mark.parametrize("keep", [0, 7, 100, -1])
def test_load_truncated_weights_fails(model_dir, keep):
    path, _ = model_dir
    data = (path / WEIGHTS).read_bytes()
    (path / WEIGHTS).write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        load_model(path)


def test_load_truncated_manifest_fails(model_dir):
    path, _ = model_dir
    text = (path / MANIFEST).read_text()
    (path / MANIFEST).write_text(text[: len(text) // 2])
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        load_model(path)


def _bump_weight(tensors):
    tensors["op2.weight"][1, 2] += 1


def _bad_shift(tensors):
    tensors["op1.shift"][0] = 63


def _drop_bias(tensors):
    del tensors["op3.bias"]


def _widen_bias(tensors):
    tensors["op1.bias"] = tensors["op1.bias"].to(torch.int64)


@pytest.mark.parametrize("tamper, message", [
    (_bump_weight, "op 2: the weights do not match weights_root"),
    (_bad_shift, r"op 1: shift\[0\] = 63 is outside \[1, 62\]"),
    (_drop_bias, "'op3.bias' is missing"),
    (_widen_bias, "op 1: bias must be int32"),
])
def test_load_tampered_weights_file_fails(model_dir, tamper, message):
    path, _ = model_dir
    tensors = load_file(path / WEIGHTS)
    tamper(tensors)
    save_file(tensors, path / WEIGHTS)
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


def test_load_manifest_shape_mismatch_fails(model_dir):
    path, _ = model_dir
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["ops"][2]["in_cols"] = 6
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=r"op 3: weight has shape \(4, \d+\), manifest says \(4, 6\)"):
        load_model(path)


def test_load_manifest_model_root_mismatch_fails(model_dir):
    path, _ = model_dir
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["model_root"] = "0x" + "00" * 32
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="model root recomputed"):
        load_model(path)


@pytest.mark.parametrize("key, value", [("ops_root", "0x" + "11" * 32), ("output_cols", 5), ("state_depth", 9)])
def test_load_manifest_stated_figure_mismatch_fails(model_dir, key, value):
    # Found by the hostile-input review: an edited ops_root was once ignored (only model_root
    # was compared). Every stated figure must match the weights.
    path, _ = model_dir
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest[key] != value
    manifest[key] = value
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=f"{key} is .*, the weights give .*tampered or mixed up"):
        load_model(path)


def test_validate_accumulator_bound_broken_fails():
    ref_model = random_ref_model(random.Random(2), 4, [2])
    ref_model["ops"][0]["weights"][1] = [127, 127, 127, 127]
    ref_model["ops"][0]["bias"][1] = (1 << 31) - 1 - 128 * 127 * 4 + 1  # one past the bound
    with pytest.raises(ModelCompileError, match="op 1, output channel 1: worst-case"):
        to_integer_model(ref_model)
    ref_model["ops"][0]["bias"][1] -= 1  # exactly at the bound is allowed
    assert to_integer_model(ref_model).ops[0].accumulator_bounds()[1] == (1 << 31) - 1


def test_validate_input_slot_not_earlier_fails():
    ref_model = random_ref_model(random.Random(3), 4, [4, 4])
    ref_model["ops"][0]["input_a"] = 1
    with pytest.raises(ModelCompileError, match="op 1: input slot 1 is not an earlier slot"):
        to_integer_model(ref_model)


# ---------------------------------------------------------------------------------------
# One format for every kind: transformer models, and version-1 MLP directories

V1_ROOT = "0x334e7daeb3f5c7ab00c2a3064c923f3b1f4894e0baf58ee4f9f500b182065484"  # written by the v1 save_model
V1_DIR = Path(__file__).parent / "fixtures" / "mlp_v1"


def test_transformer_roundtrip_every_root_equal_succeeds(token_model):
    path, model = token_model
    loaded = load_model(path)
    assert loaded.input_dtype == model.input_dtype == 1 and loaded.kinds() == model.kinds()
    assert (loaded.root, loaded.ops_root) == (model.root, model.ops_root)
    assert loaded.descriptors() == model.descriptors()
    assert [op.params_root for op in loaded.ops] == [op.params_root for op in model.ops]
    assert loaded.meta["config"]["kind"] == model.meta["config"].kind  # the compiler's config, as JSON
    x = token_ids(model, 3)
    assert [s.tolist() for s in Executor(loaded, "cpu").run(x)] == [s.tolist() for s in Executor(model, "cpu").run(x)]
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["input_dtype"] == "int32" and {op["kind"] for op in manifest["ops"]} >= {"embed", "norm", "softmax"}
    # 16-bit activations (protocol 5.0): "i16": true where set; a lut's table is then int16
    assert {op["kind"] for op in manifest["ops"] if op.get("i16")} == {"embed", "add", "linear", "norm", "lut", "softmax"}
    assert all(op.get("i16", True) is True for op in manifest["ops"])  # written only when true
    lut = _first(path, "lut")
    assert load_file(path / WEIGHTS)[f"op{lut}.table"].dtype == torch.int16


def _first(path, kind):
    manifest = json.loads((path / MANIFEST).read_text())
    return next(j for j, op in enumerate(manifest["ops"], start=1) if op["kind"] == kind)


@pytest.mark.parametrize("kind, field", [("softmax", "exp_table"), ("embed", "token_table"), ("lut", "table"),
                                         ("norm", "gamma")])
def test_load_tampered_table_fails(token_model, tmp_path, kind, field):
    source, _ = token_model
    path = shutil.copytree(source, tmp_path / "m")
    j = _first(path, kind)
    tensors = load_file(path / WEIGHTS)
    tensors[f"op{j}.{field}"].view(-1)[3] += 1
    save_file(tensors, path / WEIGHTS)
    with pytest.raises(ModelFormatError, match=f"op {j}: the {kind} params do not match params_root"):
        load_model(path)


def _edit_manifest(path, edit):
    manifest = json.loads((path / MANIFEST).read_text())
    edit(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


def _edit_tensors(path, edit):
    tensors = load_file(path / WEIGHTS)
    edit(tensors)
    save_file(tensors, path / WEIGHTS)


def test_load_unknown_kind_fails(token_model, tmp_path):
    path = shutil.copytree(token_model[0], tmp_path / "m")
    _edit_manifest(path, lambda m: m["ops"][1].update(kind="conv"))  # rope is a kind now (5.12)
    with pytest.raises(ModelFormatError, match="model.json op 2: unsupported op kind 'conv'"):
        load_model(path)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("op1.position_table"), "'op1.position_table' is missing"),
    (lambda t: t.update({"op1.extra": torch.zeros(2, dtype=torch.int8)}), r"unexpected tensors \['op1.extra'\]"),
    (lambda t: t.update({"op1.token_table": t["op1.token_table"].to(torch.int32)}),
     "op 1: token_table must be int16, tensor 'op1.token_table' in weights.safetensors is int32"),  # i16: int16
    (lambda t: t.update({k: v.to(torch.int8) for k, v in t.items() if k.endswith(".table")}),
     r"op \d+: table must be int16, tensor 'op\d+.table' in weights.safetensors is int8"),
])
def test_load_bad_table_tensor_fails(token_model, tmp_path, edit, message):
    path = shutil.copytree(token_model[0], tmp_path / "m")
    _edit_tensors(path, edit)
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(input_dtype="int16"), "input_dtype 'int16' is neither"),
    (lambda m: m["ops"][0].update(multiplier_a=True), "op 1: field 'multiplier_a' must be an integer"),
    (lambda m: m["ops"][0].update(causal=True), r"op 1: fields \['causal'\] are not fields of kind 'embed'"),
    (lambda m: m.pop("input_dtype"), "op 1: cannot read slot 0 of dtype int8"),  # absent: int8
    (lambda m: m["ops"][0].update(i16=1), "op 1: field 'i16' must be bool"),
    (lambda m: m["ops"][0].pop("i16"), "op 1: token_table must be int8, tensor .* is int16"),  # int16 tables only with i16
])
def test_load_bad_transformer_manifest_fails(token_model, tmp_path, edit, message):
    path = shutil.copytree(token_model[0], tmp_path / "m")
    _edit_manifest(path, edit)
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


def test_v1_mlp_directory_loads_with_same_root_succeeds(tmp_path):
    model = load_model(V1_DIR)
    assert to_hex(model.root) == V1_ROOT and model.input_dtype == 0 and model.kinds() == {"linear": 2}
    # what the one format writes for an MLP is, byte for byte, what version 1 wrote
    save_model(model, tmp_path / "again")
    for name in (MANIFEST, WEIGHTS):
        assert (tmp_path / "again" / name).read_bytes() == (V1_DIR / name).read_bytes(), name


@pytest.fixture(scope="module")
def masked_model(tmp_path_factory):
    """A saved one-block encoder whose pad id 0 is masked (keymask softmax, masked pooling)."""
    model = small_transformer("encoder", pad_id=0)
    return save_model(model, tmp_path_factory.mktemp("masked") / "model"), model


def test_keymask_roundtrip_succeeds(masked_model):
    path, model = masked_model
    loaded = load_model(path)
    assert (loaded.root, loaded.descriptors()) == (model.root, model.descriptors())
    softmax = [op for op in json.loads((path / MANIFEST).read_text())["ops"] if op["kind"] == "softmax"]
    assert softmax and all(op["keymask"] is True and op["input_b"] == 2 for op in softmax)  # slot 2: the mask
    x = token_ids(model, 3)
    x[1, 3:] = 0
    assert [s.tolist() for s in Executor(loaded, "cpu").run(x)] == [s.tolist() for s in Executor(model, "cpu").run(x)]


def test_softmax_without_keymask_writes_no_new_field_succeeds(token_model):
    """A softmax without keymask is written as before the flag existed (no input_b, no
    keymask), so directories written earlier load with the same roots."""
    path, _ = token_model
    softmax = [op for op in json.loads((path / MANIFEST).read_text())["ops"] if op["kind"] == "softmax"]
    assert softmax and all("keymask" not in op and "input_b" not in op for op in softmax)


@pytest.mark.parametrize("edit, message", [
    (lambda op: (op.pop("keymask"), op.pop("input_b")), "ops_root is"),  # the descriptor changes
    (lambda op: op.update(keymask=1), "field 'keymask' must be bool"),
    (lambda op: op.update(input_b=99), "input slot 99 is not an earlier slot"),
    (lambda op: op.update(input_b=0), "cannot read slot 0 of dtype int32"),  # the ids: L = 6 columns too
    (lambda op: op.update(input_b=1), "takes 6 columns but slot 1 has 1"),
    (lambda op: op.update(keymask=False), "input_b = 2 names a mask slot, but the softmax has no keymask flag"),
])
def test_load_bad_keymask_manifest_fails(masked_model, tmp_path, edit, message):
    path = shutil.copytree(masked_model[0], tmp_path / "m")
    j = _first(path, "softmax")
    _edit_manifest(path, lambda m: edit(m["ops"][j - 1]))
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


# ---------------------------------------------------------------------------------------
# Llama's kinds and flags (protocol 5.12-5.14): rope, mul, grouped matmul, argmax pair/carry


@pytest.fixture(scope="module")
def llama_model(tmp_path_factory):
    """A saved 2-layer Llama-shaped decoder (tests/reference_models.llama): 4 query heads over
    2 key/value heads, rope, SwiGLU, a head split into chunks of 5 and 4 ids."""
    import reference_models as rm
    from referee.graph_dict import model_from_dict

    ref_model, ids = rm.llama(random.Random(3), 2, 8, 4, 2, 12, 3, [5, 4], 2)
    model = model_from_dict(ref_model)
    model.name = "llama"
    return save_model(model, tmp_path_factory.mktemp("llama") / "model"), model, ids


def test_llama_roundtrip_every_root_equal_succeeds(llama_model):
    path, model, ids = llama_model
    loaded = load_model(path)
    assert (loaded.root, loaded.descriptors()) == (model.root, model.descriptors())
    assert loaded.kinds() == model.kinds() and {"rope", "mul"} <= set(loaded.kinds())
    x = torch.tensor(ids, dtype=torch.int32)
    assert [s.tolist() for s in Executor(loaded, "cpu").run(x)] == [s.tolist() for s in Executor(model, "cpu").run(x)]
    manifest = json.loads((path / MANIFEST).read_text())["ops"]
    matmuls = [op for op in manifest if op["kind"] == "matmul"]
    assert matmuls and all(op["kv_heads"] == 2 and op["heads"] == 4 for op in matmuls)
    argmaxes = [op for op in manifest if op["kind"] == "argmax"]
    assert argmaxes == [{**argmaxes[0], "pair": True}, {**argmaxes[1], "carry": True, "input_b": argmaxes[1]["input_b"],
                                                         "offset": 5}]
    assert "carry" not in argmaxes[0] and "pair" not in argmaxes[1]  # written only when set
    rope = _first(path, "rope")
    assert load_file(path / WEIGHTS)[f"op{rope}.table"].dtype == torch.int16


def test_matmul_and_argmax_without_new_flags_write_no_new_field_succeeds(token_model):
    """kv_heads is written only when it differs from heads, argmax's pair/carry/offset only when
    set: directories written before 5.12-5.14 load with the same roots."""
    path, _ = token_model
    manifest = json.loads((path / MANIFEST).read_text())["ops"]
    assert all("kv_heads" not in op for op in manifest if op["kind"] == "matmul")
    assert all(set(op) == {"kind", "input_slot", "in_cols", "out_cols", "params_root"}
               for op in manifest if op["kind"] == "argmax")


@pytest.mark.parametrize("kind, edit, message", [
    ("matmul", lambda op: op.pop("kv_heads"), r"takes 12 columns but slot \d+ has 6"),  # H_b = H: B too narrow
    ("matmul", lambda op: op.update(kv_heads=3), r"kv_heads = 3 must be in \[1, heads = 4\]"),
    ("matmul", lambda op: op.update(kv_heads=True), "field 'kv_heads' must be an integer"),
    ("rope", lambda op: op.update(heads=1), r"its tables give \(in_cols, out_cols\) = \(2, 2\), manifest says \(4, 4\)"),
    ("rope", lambda op: op.update(shift=0), r"shift = 0 is outside \[1, 62\]"),
    ("mul", lambda op: op.update(input_b=0), "takes 12 columns but slot 0 has 3"),
    ("argmax", lambda op: op.update(offset=0), r"offset = 0 is outside \[1, 16777216\]"),
    ("argmax", lambda op: op.update(carry=False), "need the carry flag"),
])
def test_load_bad_llama_manifest_fails(llama_model, tmp_path, kind, edit, message):
    path = shutil.copytree(llama_model[0], tmp_path / "m")
    manifest = json.loads((path / MANIFEST).read_text())
    j = max(i for i, op in enumerate(manifest["ops"], start=1) if op["kind"] == kind)  # the last: carry argmax
    _edit_manifest(path, lambda m: edit(m["ops"][j - 1]))
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


def test_load_tampered_rope_table_fails(llama_model, tmp_path):
    path = shutil.copytree(llama_model[0], tmp_path / "m")
    j = _first(path, "rope")
    _edit_tensors(path, lambda t: t[f"op{j}.table"].view(-1)[1].add_(1))
    with pytest.raises(ModelFormatError, match=f"op {j}: the rope params do not match params_root"):
        load_model(path)
