"""Builds keccak.c into keccak.so beside it with the system C compiler, if there is one.

    python3 offchain/referee/native/build.py     # what `make setup` and gpu/check.py run

One command line (``cc -O3 -shared -fPIC -pthread``), no download, nothing else needed. The
library is optional: without it (no compiler, another OS) referee.hashing hashes message by
message with the same bits, only slower. Prints one line and exits 0 either way; the file is
written atomically, so a half-built library is never loaded.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "keccak.c"
LIBRARY = HERE / "keccak.so"


def stale() -> bool:
    """True when the library is missing or older than its source or this script (its flags)."""
    return not LIBRARY.exists() or LIBRARY.stat().st_mtime < max(SOURCE.stat().st_mtime, Path(__file__).stat().st_mtime)


def build(quiet: bool = False) -> bool:
    """Compile when stale; True when an up-to-date library is there afterwards."""
    if not stale():
        return True
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        print(f"native keccak: not built (no C compiler {compiler!r}); hashing row by row instead")
        return False
    partial = LIBRARY.with_name(f".keccak.{os.getpid()}.so")
    cmd = [compiler, "-O3", "-shared", "-fPIC", "-pthread", "-o", str(partial), str(SOURCE)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result = subprocess.CompletedProcess(cmd, 1, "", str(exc))
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        print(f"native keccak: not built ({' '.join(cmd[:-3])} failed: {result.stderr.strip()[-300:]}); "
              "hashing row by row instead")
        return False
    os.replace(partial, LIBRARY)
    if not quiet:
        print(f"native keccak: built {LIBRARY.relative_to(HERE.parents[2])}")
    return True


if __name__ == "__main__":
    build()
    sys.exit(0)
