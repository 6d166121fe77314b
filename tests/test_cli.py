"""The ``referee`` CLI: clear one-line errors, no tracebacks; commitments equal the reference's.

Most cases run in-process (click's runner); the demo and one run go through a real process,
the way a user calls the installed command.
"""

import json
import random
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import reference as ref
from helpers import random_ref_model, to_integer_model, token_ids
from referee.cli import main
from referee.executor import Executor
from referee.hashing import to_hex
from referee.modelfile import load_model, save_model
from referee.trace import Trace, TraceStore


def referee(*args):
    result = CliRunner(mix_stderr=False).invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug: let pytest show its traceback
    return result


def referee_process(*args):
    return subprocess.run([sys.executable, "-m", "referee.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    rng = random.Random(21)
    ref_model = random_ref_model(rng, 6, [5, 4])
    path = save_model(to_integer_model(ref_model), tmp_path_factory.mktemp("cli") / "model")
    return path, ref_model


def _assert_one_line_error(result, fragment):
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr


def test_run_prints_commitments_and_stores_trace_succeeds(tmp_path, small_model):
    path, ref_model = small_model
    x = [[1, -2, 3, -128, 127, 0], [5, 5, 5, 5, 5, 5]]
    (tmp_path / "x.json").write_text(json.dumps(x))
    result = referee_process("run", path, tmp_path / "x.json", "--store", tmp_path / "store",
                             "--output", tmp_path / "y.json")
    assert result.returncode == 0, result.stderr
    slots = ref.run_model(ref_model, x)
    assert json.loads((tmp_path / "y.json").read_text()) == slots[-1]
    slot_roots = [ref.tensor_root(s) for s in slots]
    trace_root = ref.state_root(slot_roots, ref.depth(len(slots)))
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line and not line.startswith("output"))
    assert f"output root  {to_hex(slot_roots[-1])}" in result.stdout
    assert lines["trace"].split()[1] == to_hex(trace_root)
    assert lines["prediction"].split() == [str(max(range(4), key=lambda c: (row[c], -c))) for row in slots[-1]]
    model = load_model(path)
    assert TraceStore(tmp_path / "store").load(model.root, slot_roots[0]).trace_root == trace_root


def test_run_long_batch_prints_first_predictions_succeeds(tmp_path, small_model):
    path, _ = small_model
    (tmp_path / "x.json").write_text(json.dumps([[r % 7, 1, 2, 3, 4, -r % 128] for r in range(40)]))
    result = referee("run", path, tmp_path / "x.json", "--no-store")
    line = next(line for line in result.stdout.splitlines() if line.startswith("prediction"))
    assert len(line.split()) == 1 + 32 + 2 and line.endswith("(+8 more)")


def test_run_accepts_npy_input_succeeds(tmp_path, small_model):
    path, _ = small_model
    np.save(tmp_path / "x.npy", np.array([[1, 2, 3, 4, 5, 6]], dtype=np.int16))
    result = referee("run", path, tmp_path / "x.npy", "--no-store")
    assert result.exit_code == 0 and "prediction" in result.stdout, result.stderr


@pytest.mark.parametrize("content, fragment", [
    ([[1, 2, 3]], "input has shape (1, 3); the model expects (rows, 6)"),
    ([[1, 2, 3, 4, 5, 0.5]], "row 0, column 5 is 0.5; inputs must be integers"),
    ([[1, 2, 3, 4, 5, 128]], "row 0, column 5 is 128; inputs must be integers in [-128, 127]"),
    ([[1, 2, 3, 4, 5, 6], [1]], "rows have different lengths"),
    ({"x": 1}, "expected a list of rows"),
])
def test_run_bad_input_fails(tmp_path, small_model, content, fragment):
    path, _ = small_model
    (tmp_path / "x.json").write_text(json.dumps(content))
    _assert_one_line_error(referee("run", path, tmp_path / "x.json", "--no-store"), fragment)


def test_run_float_npy_input_fails(tmp_path, small_model):
    path, _ = small_model
    np.save(tmp_path / "x.npy", np.zeros((1, 6), dtype=np.float32))
    _assert_one_line_error(referee("run", path, tmp_path / "x.npy", "--no-store"), "holds float32 values")


def test_run_missing_files_fails(tmp_path, small_model):
    path, _ = small_model
    _assert_one_line_error(referee("run", path, tmp_path / "absent.json"), "input file")
    _assert_one_line_error(referee("run", tmp_path / "nomodel", tmp_path / "absent.json"), "is not a directory")


def test_run_unknown_input_format_fails(tmp_path, small_model):
    path, _ = small_model
    (tmp_path / "x.csv").write_text("1,2,3,4,5,6\n")
    _assert_one_line_error(referee("run", path, tmp_path / "x.csv"), "unknown input format '.csv'")


def test_run_cuda_without_cuda_fails(tmp_path, small_model):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path is for machines without it")
    path, _ = small_model
    (tmp_path / "x.json").write_text("[[1, 2, 3, 4, 5, 6]]")
    _assert_one_line_error(referee("run", path, tmp_path / "x.json", "--device", "cuda"), "no usable CUDA device")


def test_info_corrupt_model_fails(tmp_path, small_model):
    path, _ = small_model
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((path / "model.json").read_text())
    (broken / "weights.safetensors").write_bytes((path / "weights.safetensors").read_bytes()[:40])
    _assert_one_line_error(referee("info", broken), "corrupt or truncated")


def test_info_shows_roots_succeeds(small_model):
    path, ref_model = small_model
    result = referee("info", path)
    assert result.exit_code == 0
    assert to_hex(ref.model_root(ref_model)) in result.stdout


def test_quantize_torch_model_succeeds(tmp_path):
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    torch.save(net, tmp_path / "net.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32))
    result = referee("quantize", tmp_path / "net.pt", "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "q")
    assert result.exit_code == 0, result.stderr
    model = load_model(tmp_path / "q")
    assert [(op.in_cols, op.out_cols, op.relu) for op in model.ops] == [(5, 7, True), (7, 3, False)]
    again = ("quantize", tmp_path / "net.pt", "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "q")
    _assert_one_line_error(referee(*again), "already holds a model; pass --force")
    assert referee(*again, "--force").exit_code == 0


def test_quantize_unsupported_layer_fails(tmp_path):
    import torch
    torch.save(torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh()), tmp_path / "net.pt")
    np.save(tmp_path / "cal.npy", np.zeros((4, 5), dtype=np.float32))
    result = referee("quantize", tmp_path / "net.pt", "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "q")
    _assert_one_line_error(result, "layer 1 (Tanh) is not supported")


def test_demo_lm_story_generates_pays_and_catches_the_changed_token_succeeds(tmp_path):
    """make demo's story: moby-llama continues a prompt off chain and verifies it; on chain the
    honest generation is paid, and the changed first token is caught at the head's argmax."""
    result = referee_process("demo", "--workdir", tmp_path / "demo", "--tokens", "6")
    assert result.returncode == 0, result.stderr
    story = result.stdout
    assert "verified     every token is the model's greedy choice" in story
    assert "challenger: job 1: checked: the result is right" in story and "honest solver: job 1: paid" in story
    assert "the generated text, paid for: " in story and "the cheater's text, rejected: " in story
    assert "game 1 ended at op 80 of 80 (argmax)" in story and "cheating solver: job 2: rejected" in story
    assert "market balance 0 ETH, obligations 0 ETH" in story and ": sent" not in story


def test_demo_prints_correct_predictions_succeeds(tmp_path):
    result = referee_process("demo", "--story", "digits", "--workdir", tmp_path / "demo", "--samples", "8")
    assert result.returncode == 0, result.stderr
    fields = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()
              if line and not line[0].isdigit()}
    labels, predictions = fields["labels"].split(), fields["prediction"].split()
    assert len(predictions) == 8 and sum(a == b for a, b in zip(labels, predictions)) >= 7
    assert (tmp_path / "demo" / "digits-model" / "model.json").is_file()
    # the chain story: the dispute move by move, each transaction once (mined, with its gas), no
    # heartbeat, and an empty market at the end
    story = result.stdout
    assert "challenger: game 1: step (gas" in story and "cheating solver: job 2: rejected" in story
    assert ": sent" not in story and "alive:" not in story
    assert "market balance 0 ETH, obligations 0 ETH" in story


# ---------------------------------------------------------------------------
# Float inputs, and the mistakes an independent check of the CLI found
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scaled_model(tmp_path_factory):
    """A quantized float net: its manifest records the input scale."""
    import torch

    from referee.quantize import quantize_sequential
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4))
    model = quantize_sequential(net, torch.randn(64, 6) * 3, name="scaled")
    return save_model(model, tmp_path_factory.mktemp("scaled") / "model"), None


def test_quantize_input_matches_pure_python_rounding_succeeds(tmp_path, scaled_model):
    """Float rows -> int8 bit for bit as docs/formats.md says: round(x / input_scale) in float64,
    half to even (Python's round), clamped to [-128, 127]; through the installed command."""
    path, _ = scaled_model
    scale = load_model(path).input_scale
    rng = random.Random(5)
    rows = [[rng.uniform(-200, 200) * scale for _ in range(6)] for _ in range(40)]
    rows[0][:4] = [2.5 * scale, -2.5 * scale, 0.5 * scale, 1000.0 * scale]  # ties to even; a clamp
    rows[1][:2] = [3.5 * scale, -128.5 * scale]
    (tmp_path / "x.json").write_text(json.dumps(rows))
    result = referee_process("quantize-input", path, tmp_path / "x.json", "-o", tmp_path / "q.json")
    assert result.returncode == 0, result.stderr
    expected = [[max(-128, min(127, round(v / scale))) for v in row] for row in rows]
    assert json.loads((tmp_path / "q.json").read_text()) == expected
    assert "40 x 6 floats at input scale" in result.stdout and "values clamped to [-128, 127]" in result.stdout
    # the same floats from .npy give the same rows, which `referee run` takes
    np.save(tmp_path / "x.npy", np.array(rows, dtype=np.float64))
    assert referee("quantize-input", path, tmp_path / "x.npy", "-o", tmp_path / "q2.json").exit_code == 0
    assert json.loads((tmp_path / "q2.json").read_text()) == expected
    assert referee("run", path, tmp_path / "q.json", "--no-store").exit_code == 0


@pytest.mark.parametrize("content, fragment", [
    ([[1.0, 2.0, float("nan"), 0.0, 0.0, 0.0]], "row 0, column 2 is nan; float inputs must be finite"),
    ([[1.0, 2.0, 3.0]], "has rows of 3 values; operator-free takes 6"),
    ([[1, "a", 3, 4, 5, 6]], "row 0, column 1 is 'a'; float inputs must be numbers"),
])
def test_quantize_input_bad_floats_fails(tmp_path, scaled_model, content, fragment):
    path, _ = scaled_model
    (tmp_path / "x.json").write_text(json.dumps(content))
    fragment = fragment.replace("operator-free", load_model(path).name)
    _assert_one_line_error(referee("quantize-input", path, tmp_path / "x.json", "-o", tmp_path / "q.json"), fragment)


def test_quantize_input_model_without_scale_fails(tmp_path, small_model):
    path, _ = small_model
    (tmp_path / "x.json").write_text("[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]")
    _assert_one_line_error(referee("quantize-input", path, tmp_path / "x.json", "-o", tmp_path / "q.json"),
                           "records no input_scale")


def test_info_shows_input_scale_succeeds(scaled_model):
    path, _ = scaled_model
    line = next(line for line in referee("info", path).stdout.splitlines() if line.startswith("input scale"))
    assert repr(load_model(path).input_scale) in line and "referee quantize-input" in line


def test_run_output_folder_missing_fails(tmp_path, small_model):
    path, _ = small_model
    (tmp_path / "x.json").write_text("[[1, 2, 3, 4, 5, 6]]")
    _assert_one_line_error(referee("run", path, tmp_path / "x.json", "--no-store", "--output",
                                   tmp_path / "no" / "such" / "o.json"), "folder")
    assert not (tmp_path / "no").exists()


def test_run_unknown_device_fails(tmp_path, small_model):
    path, _ = small_model
    (tmp_path / "x.json").write_text("[[1, 2, 3, 4, 5, 6]]")
    _assert_one_line_error(referee("run", path, tmp_path / "x.json", "--device", "tpu"),
                           "--device tpu: not a device; use auto, cpu, cuda or cuda:N")


def _quantize(tmp_path, net, calibration):
    import torch
    torch.save(net, tmp_path / "net.pt")
    np.save(tmp_path / "cal.npy", calibration)
    return referee("quantize", tmp_path / "net.pt", "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "q")


def test_quantize_layers_that_do_not_chain_fails(tmp_path):
    import torch
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(5, 2))
    _assert_one_line_error(_quantize(tmp_path, net, np.ones((8, 4), dtype=np.float32)),
                           "Linear layer 2 takes 5 features, but Linear layer 1 gives 3: the layers do not chain")


@pytest.mark.parametrize("calibration, fragment", [
    (np.zeros((0, 4), dtype=np.float32), "calibration data has 0 samples"),
    (np.array([[1.0, np.nan, 0.0, 0.0]] * 3, dtype=np.float32), "calibration data holds nan at [0, 1]"),
    (np.array([[1.0, 0.0, np.inf, 0.0]] * 3, dtype=np.float32), "calibration data holds inf at [0, 2]"),
    (np.zeros((5, 4), dtype=np.float32), "calibration data is all zeros"),
])
def test_quantize_bad_calibration_fails(tmp_path, calibration, fragment):
    import torch
    torch.manual_seed(0)
    _assert_one_line_error(_quantize(tmp_path, torch.nn.Sequential(torch.nn.Linear(4, 3)), calibration), fragment)


def test_quantize_non_finite_weight_fails(tmp_path):
    import torch
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        net[2].weight[1, 0] = float("nan")
    _assert_one_line_error(_quantize(tmp_path, net, np.ones((8, 4), dtype=np.float32)),
                           "Linear layer 2's weight holds nan at [1, 0]: every value must be finite")


def test_quantize_tiny_calibration_names_the_cause_fails(tmp_path):
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    tiny = (np.random.default_rng(0).normal(size=(64, 4)) * 1e-7).astype(np.float32)
    result = _quantize(tmp_path, net, tiny)
    _assert_one_line_error(result, "past int32, because the calibration inputs are tiny")
    assert "calibrate on data at the scale the model will really see" in result.stderr
    assert "scale down its weights" not in result.stderr


# ---------------------------------------------------------------------------------------
# A transformer model directory is taken like an MLP one; the chain commands name the gap
# (token_model: tests/conftest.py)


def test_info_transformer_shows_kind_dtype_and_kinds_succeeds(token_model):
    path, model = token_model
    result = referee("info", path)
    assert result.exit_code == 0, result.stderr
    lines = {line[:13].strip(): line[13:] for line in result.stdout.splitlines()}
    assert lines["model"] == f"{model.name} ({model.meta['config'].kind})"
    assert lines["model root"] == to_hex(model.root) and lines["ops root"] == to_hex(model.ops_root)
    assert lines["input"] == f"int32 token ids, sequence length {model.input_cols} (one sequence per row)"
    assert lines["ops"] == ", ".join(f"{n} {kind}" for kind, n in model.kinds().items())
    facts = model.registry_facts()
    assert lines["on chain"].startswith("every op has a one-step verifier; rows posted: a multiple of "
                                        f"{facts.row_step}, at most {facts.max_input_rows:,}")
    assert lines["op 1"].startswith("embed slot 0 (6) -> 16 + i16, params 0x")


@pytest.mark.parametrize("suffix", [".json", ".npy"])
def test_run_transformer_token_ids_stores_trace_succeeds(tmp_path, token_model, suffix):
    path, model = token_model
    ids = token_ids(model, 2, seed=3)
    if suffix == ".json":
        (tmp_path / "ids.json").write_text(json.dumps(ids.tolist()))
    else:
        np.save(tmp_path / "ids.npy", ids.numpy())
    result = referee("run", path, tmp_path / f"ids{suffix}", "--store", tmp_path / "store", "--output",
                     tmp_path / "y.json")
    assert result.exit_code == 0, result.stderr
    slots = Executor(model, "cpu").run(ids)
    trace = TraceStore(tmp_path / "store").load(model.root, Trace(model.root, slots).input_root)
    assert trace.trace_root == Trace(model.root, slots).trace_root
    assert json.loads((tmp_path / "y.json").read_text()) == slots[-1].tolist()
    if model.meta["config"].kind == "decoder":  # the argmax op's ids are the predictions
        shown = next(line for line in result.stdout.splitlines() if line.startswith("prediction")).split()[1:]
        assert shown[:12] == [str(v) for v in slots[-1][:12, 0].tolist()]


def test_run_transformer_refuses_int8_range_breach_and_wide_ids_fails(tmp_path, token_model):
    path, _ = token_model
    (tmp_path / "ids.json").write_text(json.dumps([[1, 2, 3, 4, 5, 2**31]]))
    _assert_one_line_error(referee("run", path, tmp_path / "ids.json", "--no-store"), "row 0, column 5 is 2147483648")
    (tmp_path / "short.json").write_text(json.dumps([[1, 2, 3]]))
    _assert_one_line_error(referee("run", path, tmp_path / "short.json", "--no-store"), "the model expects (rows, 6)")
