"""An agent's local state in SQLite: what it follows, how far it has read, what it has sent.

The chain is the source of truth; the journal only remembers what the chain cannot tell an
agent cheaply after a restart:

- ``meta``: the market, account and chain the journal belongs to (another is refused), and
  the block up to which logs have been read.
- ``jobs``: every job the agent follows, with its role in it and the job's input bytes (so a
  restarted solver re-runs a job without rescanning history).
- ``games``: every game the agent plays, by id, with its job.
- ``txs``: every transaction, keyed by what it does (``claim:7``, ``move:3:2:0:5``), with the
  account nonce it was sent at, its status and gas, and its hash (a pipelined one's is known
  before it is sent). A key still ``sent`` after a restart is never sent again while its hash
  is mined or in the node's pool (without a hash: until the account's nonce shows it mined or
  dropped); one the node does not know is forgotten and sent again.

Every write is its own transaction (autocommit), so a kill at any moment loses at most the
step in flight, which the next run redoes from the chain; ``batch()`` groups the writes of one
step (the keys of one multicall, the receipts of one pass) into one SQLite transaction: one
commit, all or nothing.

One agent at a time: a journal is locked (``flock`` on ``<journal>.lock``, which the kernel
releases when the process dies, even by SIGKILL) for as long as it is open, so a second agent
started on the same journal refuses to run instead of sending the same transactions twice.
Readers (``ape run dispute``, an operator's ``sqlite3`` shell) open it without the lock.
"""

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import RefereeError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL, rows INTEGER NOT NULL,
    input BLOB NOT NULL, state TEXT NOT NULL, note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS games (
    game_id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, state TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS txs (
    key TEXT PRIMARY KEY, nonce INTEGER NOT NULL, status TEXT NOT NULL,
    gas INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '', tx_hash TEXT NOT NULL DEFAULT '');
"""

DONE = "done"  # a job or game the agent no longer acts on


@dataclass(frozen=True)
class JobRow:
    job_id: int
    model_id: int
    rows: int
    input: bytes
    state: str
    note: str


@dataclass(frozen=True)
class TxRow:
    key: str
    nonce: int
    status: str  # sent | mined | reverted
    gas: int
    reason: str
    tx_hash: str = ""  # known before sending for pipelined transactions; "" for the scripts' waited ones


def _take_lock(path: Path):
    """The open lock file next to ``path``, locked for this process; a clear error if another
    process holds it."""
    lock_path = path.with_name(path.name + ".lock")
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RefereeError(f"agent state {path} is in use by another agent (pid {holder}): stop that one first, "
                           "or give this one its own --state (or --home)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class Journal:
    """One agent's SQLite journal at ``path`` (created on first use), locked while open unless
    ``lock=False`` (a reader)."""

    def __init__(self, path: Path, lock: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _take_lock(self.path) if lock else None
        self._depth = 0  # open batch() blocks; the outermost commits
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            columns = [row[1] for row in self._db.execute("PRAGMA table_info(txs)")]
            if "tx_hash" not in columns:  # a journal written before pipelined transactions
                self._db.execute("ALTER TABLE txs ADD COLUMN tx_hash TEXT NOT NULL DEFAULT ''")
        except sqlite3.DatabaseError as exc:
            self._unlock()
            raise RefereeError(f"agent state {self.path} is not a usable SQLite database: {exc}") from None

    @contextmanager
    def batch(self) -> Iterator["Journal"]:
        """Every write inside is one SQLite transaction, committed when the outermost ``batch``
        ends (rolled back if it raises); nested blocks join the outer one."""
        if self._depth == 0:
            self._db.execute("BEGIN")
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # -- identity ------------------------------------------------------------------------

    def bind(self, **identity: str) -> None:
        """Tie the journal to one market/account/chain; refuse one written for another, saying
        what happened and what to do."""
        for key, value in identity.items():
            stored = self.get(key)
            if stored is None:
                self.set(key, str(value))
            elif stored != str(value):
                raise RefereeError(self._mismatch(key, stored, str(value)))

    def _mismatch(self, key: str, stored: str, value: str) -> str:
        fresh = (f"move {self.path} aside (or delete it) to start afresh, or pass --state (or --home) "
                 "for another journal")
        if key == "deployed_in":
            return (f"agent state {self.path} is from an earlier deployment at the same address (its deployment "
                    f"block's hash was {stored[:10]}…, the chain's is now {value[:10]}…): the chain was reset or "
                    f"the contracts deployed again, so the jobs and games it remembers no longer exist; {fresh}")
        if key in ("market", "chain_id"):
            return (f"agent state {self.path} belongs to {key} {stored}, not {value}: it is another deployment's "
                    f"journal; {fresh}")
        return (f"agent state {self.path} belongs to {key} {stored}, not {value}: each account and role keeps its "
                f"own journal; {fresh}")

    def remember_models(self, model_dirs) -> None:
        """The model directories the agent serves or watches, for the commands that act for it
        by hand (``ape run dispute --move`` defaults its ``--model`` from them)."""
        self.set("model_dirs", json.dumps([str(Path(d).resolve()) for d in model_dirs]))

    def model_dirs(self) -> list[Path]:
        return [Path(d) for d in json.loads(self.get("model_dirs") or "[]")]

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- jobs and games ------------------------------------------------------------------

    def add_job(self, job_id: int, model_id: int, rows: int, input_bytes: bytes, state: str) -> bool:
        """Follow a job; False if it was already followed."""
        cursor = self._db.execute("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, '')",
                                  (job_id, model_id, rows, input_bytes, state))
        return cursor.rowcount == 1

    def job(self, job_id: int) -> JobRow | None:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return JobRow(*row) if row else None

    def active_jobs(self) -> list[JobRow]:
        rows = self._db.execute("SELECT * FROM jobs WHERE state != ? ORDER BY job_id", (DONE,))
        return [JobRow(*row) for row in rows]

    def set_job(self, job_id: int, state: str, note: str = "") -> None:
        self._db.execute("UPDATE jobs SET state = ?, note = ? WHERE job_id = ?", (state, note, job_id))

    def add_game(self, game_id: int, job_id: int) -> bool:
        cursor = self._db.execute("INSERT OR IGNORE INTO games VALUES (?, ?, 'playing', '')", (game_id, job_id))
        return cursor.rowcount == 1

    def active_games(self) -> list[tuple[int, int]]:
        rows = self._db.execute("SELECT game_id, job_id FROM games WHERE state != ? ORDER BY game_id", (DONE,))
        return list(rows)

    def games_of(self, job_id: int) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT game_id FROM games WHERE job_id = ?", (job_id,))]

    def game_note(self, game_id: int) -> str:
        row = self._db.execute("SELECT note FROM games WHERE game_id = ?", (game_id,)).fetchone()
        return row[0] if row else ""

    def set_game(self, game_id: int, state: str, note: str = "") -> None:
        self._db.execute("UPDATE games SET state = ?, note = ? WHERE game_id = ?", (state, note, game_id))

    # -- transactions --------------------------------------------------------------------

    def tx(self, key: str) -> TxRow | None:
        row = self._db.execute("SELECT * FROM txs WHERE key = ?", (key,)).fetchone()
        return TxRow(*row) if row else None

    def tx_sent(self, key: str, nonce: int, tx_hash: str = "") -> None:
        self._db.execute("INSERT OR REPLACE INTO txs VALUES (?, ?, 'sent', 0, '', ?)", (key, nonce, tx_hash))

    def txs_sent(self, keys, nonce: int, tx_hash: str) -> None:
        """The keys one transaction carries (a multicall's moves, in its order), in one commit."""
        with self.batch():
            for key in keys:
                self.tx_sent(key, nonce, tx_hash)

    def keys_of(self, tx_hash: str) -> list[str]:
        """The keys journaled with transaction ``tx_hash``, in the order it carries them."""
        return [r[0] for r in self._db.execute("SELECT key FROM txs WHERE tx_hash = ? ORDER BY rowid", (tx_hash,))]

    def tx_done(self, key: str, status: str, gas: int = 0, reason: str = "") -> None:
        self._db.execute("UPDATE txs SET status = ?, gas = ?, reason = ? WHERE key = ?", (status, gas, reason, key))

    def forget_tx(self, key: str) -> None:
        self._db.execute("DELETE FROM txs WHERE key = ?", (key,))

    def keys(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT key FROM txs ORDER BY rowid")]

    def gas_by_key(self) -> list[tuple[str, int]]:
        return list(self._db.execute("SELECT key, gas FROM txs WHERE status = 'mined' ORDER BY rowid"))
