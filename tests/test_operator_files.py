"""Files the tools write are readable as a plain ``open`` would leave them: 0644 under the usual
umask 022 (a model directory served to others, a trace store backed up), 0600 under 077. They
were 0600 whatever the umask (``mkstemp``'s mode, kept by the atomic rename)."""

import os
import random
import stat

import pytest

from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee.atomic import write_atomic
from referee.executor import Executor
from referee.modelfile import MANIFEST, WEIGHTS, save_model
from referee.trace import Trace, TraceStore


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_write_atomic_mode_honours_umask_succeeds(tmp_path, umask, mask, expected):
    umask(mask)
    write_atomic(tmp_path / "f.bin", b"x")
    assert mode(tmp_path / "f.bin") == expected
    write_atomic(tmp_path / "f.bin", b"y")  # replacing keeps the same rule
    assert mode(tmp_path / "f.bin") == expected and (tmp_path / "f.bin").read_bytes() == b"y"


def test_model_and_trace_files_are_0644_under_umask_022_succeeds(tmp_path, umask):
    umask(0o022)
    model = to_integer_model(random_ref_model(random.Random(3), 5, [4, 3]))
    save_model(model, tmp_path / "model")
    assert mode(tmp_path / "model" / WEIGHTS) == mode(tmp_path / "model" / MANIFEST) == 0o644
    x = int8_tensor(random_input(random.Random(4), 2, 5))
    path = TraceStore(tmp_path / "traces").save(Trace(model.root, Executor(model, "cpu").run(x)))
    assert mode(path) == 0o644
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary left
