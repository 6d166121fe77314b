"""referee.heap: the executor applies its malloc settings once, at its first Executor, on glibc,
unless REFEREE_MALLOC_TUNING=0 (docs/benchmarks.md measures what they buy)."""

import os
import subprocess
import sys

import pytest

from referee import heap

ON_GLIBC = sys.platform.startswith("linux") and heap._apply()

# A fresh process: heap's state before and after the first Executor, then two calls of tune.
SCRIPT = """
import torch
from referee import heap
from referee.executor import Executor
from referee.model import IntegerModel, LinearOp
one = lambda dtype: torch.ones(1, dtype=dtype)
op = LinearOp(0, torch.ones(1, 1, dtype=torch.int8), torch.zeros(1, dtype=torch.int32), one(torch.int32), one(torch.int32), False)
print(heap._state)
Executor(IntegerModel(1, [op]).validate(), "cpu")
print(heap._state, heap.tune())
"""


def _states(tuning: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "REFEREE_MALLOC_TUNING"}
    if tuning is not None:
        env["REFEREE_MALLOC_TUNING"] = tuning
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(not ON_GLIBC, reason="glibc's mallopt is not available here")
def test_heap_tuned_at_the_first_executor_succeeds():
    assert _states(None) == ["None", "True", "True"]


def test_heap_tuning_turned_off_succeeds():
    assert _states("0") == ["None", "False", "False"]
