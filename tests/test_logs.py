"""Agent log lines (referee.agents.logs): their format, levels, the log file, and the periodic
lines (waiting, heartbeat) kept rare enough to read."""

import io
import logging
import re

import pytest

from referee.agents import logs

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO |WARNING|ERROR|DEBUG) (\S+) +(.*)$")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def captured(tmp_path):
    stream = io.StringIO()
    logger = logs.setup_logging("info", tmp_path / "logs" / "agent.log", stream=stream)
    yield stream, tmp_path / "logs" / "agent.log"
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def test_logs_lines_timestamped_with_level_and_agent_succeeds(captured):
    stream, path = captured
    log = logs.line_logger(logs.agent_logger("solver"), prefix="solver: ")
    log("solver: job 1: claimed (gas 132,743)")
    log("solver: error: commit reverted: market: commit deadline passed")
    log("solver: node unreachable (ConnectionError); retrying in 0.25 s")
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line).groups() for line in lines] == [
        ("INFO ", "solver", "job 1: claimed (gas 132,743)"),
        ("ERROR", "solver", "error: commit reverted: market: commit deadline passed"),
        ("WARNING", "solver", "node unreachable (ConnectionError); retrying in 0.25 s"),
    ]
    assert path.read_text().splitlines() == lines  # the file gets the same lines


def test_logs_level_filters_lines_succeeds(tmp_path):
    stream = io.StringIO()
    logs.setup_logging("WARNING", stream=stream)
    log = logs.line_logger(logs.agent_logger("challenger"))
    log("job 2: checked: the result is right")
    log("error: challenge reverted: market: challenge deadline passed")
    assert len(stream.getvalue().splitlines()) == 1 and " ERROR challenger " in stream.getvalue()
    logs.setup_logging("info", stream=io.StringIO())  # a second setup replaces the handlers
    assert len(logging.getLogger(logs.ROOT).handlers) == 1


def test_logs_unknown_level_reverts():
    with pytest.raises(ValueError, match="unknown log level 'loud'; use one of debug, info, warning, error"):
        logs.setup_logging("loud")


@pytest.mark.parametrize("left, text", [(0, "0 s"), (97, "97 s"), (119, "119 s"), (120, "2 min 00 s"),
                                        (3599, "59 min 59 s"), (3725, "1 h 02 min"), (7200, "2 h 00 min"), (86_400, "24 h 00 min"),
                                        (3 * 86_400 + 4 * 3600 + 5, "3 d 4 h"), (-30, "-30 s")])
def test_logs_seconds_readable_succeeds(left, text):
    assert logs.seconds(left) == text


def test_logs_waiting_and_resuming_lines_succeeds():
    assert logs.waiting_line("job 1's challenge window", 97) == "waiting: job 1's challenge window, 97 s left"
    assert logs.waiting_line("game 3: the challenger's clock", -4) == \
        "waiting: game 3: the challenger's clock, passed 4 s ago"
    assert logs.resuming_line(3, "transition", "solver", 512) == \
        "resuming game 3 at transition (solver to move, 8 min 32 s left)"
    assert logs.resuming_line(3, "pick", "challenger") == "resuming game 3 at pick (challenger to move)"
    assert logs.resuming_job_line(7, "committed") == "resuming job 7 (committed)"


def test_logs_wait_notes_once_then_every_interval_succeeds():
    clock, lines = FakeClock(), []
    notes = logs.WaitNotes(lines.append, every=300, clock=clock)
    assert notes.note(("challenge", 1), "job 1's challenge window", 600) is not None
    clock.now += 299
    assert notes.note(("challenge", 1), "job 1's challenge window", 301) is None  # quiet within the interval
    assert notes.note(("clock", 3), "game 3: the solver's clock", 40) is not None  # another wait is its own
    clock.now += 1
    assert notes.note(("challenge", 1), "job 1's challenge window", 300) == \
        "waiting: job 1's challenge window, 5 min 00 s left"
    notes.forget(("challenge", 1))
    assert notes.note(("challenge", 1), "job 1's challenge window", 299) is not None  # a new wait speaks at once
    assert len(lines) == 4


def test_logs_heartbeat_every_interval_succeeds():
    clock, lines = FakeClock(), []
    heart = logs.Heartbeat(lines.append, every=60, clock=clock)
    assert heart.beat(1204, 1, 1, 62) == "alive: head 1,204, 1 job, 1 game in play, next deadline in 62 s"
    clock.now += 59
    assert heart.beat(1205, 1, 1) is None
    clock.now += 1
    assert heart.beat(1206, 0, 2) == "alive: head 1,206, 0 jobs, 2 games in play"
    assert len(lines) == 2


def test_logs_quiet_ape_silences_revert_trace_and_warning_succeeds():
    """In a fresh process, as `ape run` and the agents start: after quiet_ape the call trace Ape
    prints on every revert (raw input bytes) prints nothing, and the pydantic warning is filtered."""
    import subprocess
    import sys

    code = (
        "import io, warnings, contextlib\n"
        "from referee.agents.logs import quiet_ape\n"
        "quiet_ape()\n"
        "import ape_ethereum.trace\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('default')\n"
        "    quiet_ape()\n"
        "    ape_ethereum.trace.Trace.show(object())\n"
        "    warnings.warn(\"Field 'import_remapping' has an incomplete definition: ...\", UserWarning)\n"
        "print(repr(out.getvalue()), len(caught))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["''", "0"], result.stdout + result.stderr
