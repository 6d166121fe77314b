"""gpu/check.py on a machine without CUDA, and on a bare python with nothing but torch: it
skips cleanly with a verdict line; its built-in runner runs parametrized tests and counts
failures; the pure-Python keccak it falls back to equals the C one."""

import subprocess
import sys
from pathlib import Path

import pytest
import sha3
import torch

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


def run(args: list[str], bare: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", BARE, *args] if bare else [sys.executable, "gpu/check.py", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: gpu/check.py would run for real")
@pytest.mark.parametrize("bare", [False, True])
def test_gpu_check_without_cuda_skips_with_a_verdict_succeeds(bare):
    result = run(["--no-bench"], bare=bare)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("VERDICT: SKIPPED (no CUDA device"), result.stdout
    assert ("keccak via pure Python" in result.stdout) == bare
    assert ("built-in runner" in result.stdout) == bare


def test_builtin_runner_runs_parametrized_tests_and_counts_failures_succeeds(tmp_path):
    sys.path.insert(0, str(REPO / "gpu"))
    try:
        import check
    finally:
        sys.path.pop(0)
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
