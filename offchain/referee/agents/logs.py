"""Agent logs an operator can read and grep: timestamped lines, levels, an optional log file.

Every line has the same four fields, so ``grep 'game 3:'`` or ``grep ' ERROR '`` finds what
an operator looks for::

    2026-12-01T20:14:35Z INFO  solver     job 1: claimed (gas 132,743)
    2026-12-01T20:14:37Z INFO  solver     waiting: job 1's challenge window, 97 s left
    2026-12-01T20:15:05Z INFO  solver     alive: head 1,204, 1 job, 1 game in play, next deadline in 62 s
    2026-12-01T20:16:11Z INFO  solver     resuming game 3 at transition (solver to move, 512 s left)
    2026-12-01T20:16:12Z ERROR solver     error: commit reverted: market: commit deadline passed

Times are UTC (what block explorers show) with a ``Z``. ``setup_logging`` configures the
``referee`` logger once per process (a second call replaces its handlers); ``line_logger``
turns a logger into the ``log(line)`` callable the agents take, choosing each line's level
from its words; ``WaitNotes`` and ``Heartbeat`` keep the periodic lines rare enough to read.
Ape's own noise (its INFO line per transaction, the call trace it prints on every revert) is
turned off by ``quiet_ape``.
"""

import logging
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = "referee"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMAT = "%(asctime)s %(levelname)-5s %(agent)-10s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class _AgentField(logging.Filter):
    """Every record gets an ``agent`` field: the logger's last name (``referee.solver`` -> solver)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "agent"):
            record.agent = record.name.rsplit(".", 1)[-1] if record.name != ROOT else "-"
        return True


def level_of(name: str | int) -> int:
    """``"info"`` (any case) or a logging level number -> the number; a clear error otherwise."""
    if isinstance(name, int):
        return name
    try:
        return LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}; use one of {', '.join(LEVELS)}") from None


def setup_logging(level: str | int = "info", log_file: Path | None = None, stream=None) -> logging.Logger:
    """Send the ``referee`` logger's lines at ``level`` and above to ``stream`` (stderr by
    default) and, when given, appended to ``log_file`` (its folder is created)."""
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime  # UTC, as the Z says
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_AgentField())
        logger.addHandler(handler)
    logger.setLevel(level_of(level))
    logger.propagate = False  # the lines are ours; a root handler would print them twice
    return logger


def agent_logger(name: str) -> logging.Logger:
    """The logger of one agent (``referee.<name>``): its name is the line's third field."""
    return logging.getLogger(f"{ROOT}.{name}")


# words that make a line a warning or an error (the agents' lines are plain text today); a
# line saying we lost money is an ERROR, one saying we may soon is a WARNING (docs/agents.md)
_ERROR_WORDS = ("error:", "reverted", "stuck", "we lost", "slashed", "forfeit")
_WARNING_WORDS = ("warning:", "unreachable", "connection lost", "still trying", "retrying", "not challenged", "skipped",
                  "low clock", "still in play", "in flight (", "backlog", "beyond capacity")


def line_level(line: str) -> int:
    """The level a plain agent line deserves, from its words."""
    lowered = line.lower()
    if any(word in lowered for word in _ERROR_WORDS):
        return logging.ERROR
    if any(word in lowered for word in _WARNING_WORDS):
        return logging.WARNING
    return logging.INFO


def line_logger(logger: logging.Logger, prefix: str = "") -> Callable[[str], None]:
    """A ``log(line)`` callable for the agents: each line at the level its words call for.

    ``prefix`` is dropped from the front of a line (``"solver: "``): the logger's name already
    says which agent speaks."""

    def log(line: str) -> None:
        if prefix and line.startswith(prefix):
            line = line[len(prefix):]
        logger.log(line_level(line), line)

    return log


def seconds(left: int) -> str:
    """``97 s``, ``8 min 32 s``, ``1 h 02 min``, ``3 d 4 h``: a span read at a glance."""
    left = int(left)
    if left < 0:
        return f"-{seconds(-left)}"
    if left < 120:
        return f"{left} s"
    if left < 3600:
        return f"{left // 60} min {left % 60:02d} s"
    if left < 2 * 86400:
        return f"{left // 3600} h {left % 3600 // 60:02d} min"
    return f"{left // 86400} d {left % 86400 // 3600} h"


def waiting_line(what: str, left: int) -> str:
    """``waiting: job 1's challenge window, 97 s left`` (or ``... passed 3 s ago``)."""
    if left >= 0:
        return f"waiting: {what}, {seconds(left)} left"
    return f"waiting: {what}, passed {seconds(-left)} ago"


def resuming_line(game_id: int, phase: str, mover: str, left: int | None = None) -> str:
    """``resuming game 3 at transition (solver to move, 512 s left)``: the first line about a
    game an agent found in its journal on start."""
    clock = f", {seconds(left)} left" if left is not None else ""
    return f"resuming game {game_id} at {phase} ({mover} to move{clock})"


def low_clock_line(game_id: int, left: int, clock: int) -> str:
    """``game 3: low clock, our move with 41 s of 600 s left``: the alert before a loss on time."""
    return f"game {game_id}: low clock, our move with {seconds(left)} of {seconds(clock)} left"


def low_clock_threshold(clock: int, block_time: float) -> int:
    """Seconds left on our clock below which a move of ours is alarming: a quarter of the
    clock, or 3 blocks when that is more."""
    return max(clock // 4, int(3 * block_time))


def stopped_game_line(game_id: int, job_id: int, phase: str, ours: bool, deadline: int, now: int) -> str:
    """``stopped: game 3 (job 1) still in play at bisect, our move, 8 min 32 s left (deadline
    2026-12-02T06:30:00Z)``: what an agent leaves behind when stopped."""
    at = time.strftime(DATE_FORMAT, time.gmtime(deadline))
    mover = "our move" if ours else "the opponent's move"
    return f"stopped: game {game_id} (job {job_id}) still in play at {phase}, {mover}, {seconds(deadline - now)} left " \
           f"(deadline {at})"


def resuming_job_line(job_id: int, state: str) -> str:
    return f"resuming job {job_id} ({state})"


class WaitNotes:
    """Say ``waiting: ...`` once when a wait starts, then at most every ``every`` seconds.

    ``note(key, what, left)`` is called on every tick for each thing the agent waits for
    (``key`` names it: ``("challenge", 1)``); ``forget(key)`` when the wait is over. Returns the
    line it logged, or None when it stayed quiet."""

    def __init__(self, log: Callable[[str], None], every: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self._log = log
        self.every = every
        self._clock = clock
        self._last: dict = {}

    def note(self, key, what: str, left: int) -> str | None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return None
        self._last[key] = now
        line = waiting_line(what, left)
        self._log(line)
        return line

    def forget(self, key) -> None:
        self._last.pop(key, None)


class Heartbeat:
    """An ``alive: ...`` line every ``every`` seconds, so a silent agent is a dead one.

    ``beat(head, jobs, games, next_deadline_in)`` is called on every tick; it logs only when
    ``every`` seconds have passed since the last line (the first call always logs)."""

    def __init__(self, log: Callable[[str], None], every: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._log = log
        self.every = every
        self._clock = clock
        self._last: float | None = None

    def beat(self, head: int, jobs: int, games: int, next_deadline_in: int | None = None) -> str | None:
        now = self._clock()
        if self._last is not None and now - self._last < self.every:
            return None
        self._last = now
        plural = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")  # noqa: E731
        line = f"alive: head {head:,}, {plural(jobs, 'job')}, {plural(games, 'game')} in play"
        if next_deadline_in is not None:
            line += f", next deadline in {seconds(next_deadline_in)}"
        self._log(line)
        return line


def quiet_ape() -> None:
    """Ape's noise off, for the operator commands (idempotent):

    - its INFO line per confirmed transaction (the agents log their own, with the gas);
    - the call trace ape-foundry prints on every revert, which dumps the raw input bytes (the
      ``Error:`` line names the contract's reason) and the source traceback Ape builds for it,
      which replays the transaction with a full step trace (tests/conftest.py does the same);
    - pydantic-settings' IncompleteFieldDefinitionWarning, raised inside the pinned Ape stack
      whenever it loads its config (pyproject's pytest filterwarnings silences it in tests).
    """
    warnings.filterwarnings("ignore", message="Field 'import_remapping' has an incomplete definition")
    import ape.exceptions
    import ape_ethereum.trace
    from ape.logging import LogLevel, logger

    logger.set_level(LogLevel.WARNING)
    ape_ethereum.trace.Trace.show = lambda self, *args, **kwargs: None
    ape.exceptions._get_ape_traceback_from_tx = lambda txn: None
    try:
        import ape_vyper.compiler.api

        ape_vyper.compiler.api.enrich_error = lambda err: err
    except ImportError:  # ape-vyper is pinned; without it there is nothing to enrich
        pass
