"""Integer models on disk: round trip, and clear refusals of corrupt, truncated or tampered files."""

import json
import random

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import random_ref_model, to_integer_model
from referee.errors import ModelCompileError, ModelFormatError
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
