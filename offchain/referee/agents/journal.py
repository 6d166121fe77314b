"""An agent's local state in SQLite: what it follows, how far it has read, what it has sent.

The chain is the source of truth; the journal only remembers what the chain cannot tell an
agent cheaply after a restart:

- ``meta``: the market, account and chain the journal belongs to (another is refused), and
  the block up to which logs have been read.
- ``jobs``: every job the agent follows, with its role in it and the job's input bytes (so a
  restarted solver re-runs a job without rescanning history).
- ``games``: every game the agent plays, by id, with its job.
- ``game_logs``: the latest log of each kind a move answers (``Bisected``, ``ChildrenRevealed``,
  ``RowRevealed``) and the ``GameResolved`` of every game the agent plays, as its log scan
  passes them, so a move reads what the opponent revealed here, not from the chain's history.
- ``challenges``: every game opened on a job the agent follows (any challenger's), from its
  ``JobChallenged`` log as the scan passes it, so a challenger closing a job's other games
  finds them here, not in a scan of the chain's history. A journal from before this table
  notes the block its records start at (``challenges_from``), read from the chain once.
- ``move_gas``: the gas of the agent's latest moves in each model's games (the last
  ``MOVE_GAS_WINDOW``), which refine that model's capacity and no other's.
- ``posted``: the input of each job posted on a model the agent follows, from its ``JobPosted``
  log, until the agent follows the job (a challenger sees the input long before the result).
- ``txs``: every transaction, keyed by what it does (``claim:7``, ``move:3:2:0:5``), with the
  account nonce it was sent at, its status and gas, and its hashes (a pipelined one's are
  known before it is sent; a fee bump adds one, space-separated, and either may be mined). A
  transaction carrying many actions (a multicall) has one row per key, all with its nonce and
  hashes, written together. A key still ``sent`` after a restart is never sent again while a
  hash of it is mined or in the node's pool (without a hash: until the account's nonce shows
  it mined or dropped); one the node does not know is forgotten and sent again.
- ``inflight``: each transaction the transaction manager follows, by nonce, with all it needs
  to go on following it (keys, calldata, fees, deadline, stake, hashes): a restarted agent
  re-adopts them, bumps them as before and notices them mined, dropped or replaced, instead of
  leaving them stuck in the pool. A row goes when its transaction is mined or forgotten.

Every write is its own transaction (autocommit), so a kill at any moment loses at most the
step in flight, which the next run redoes from the chain; ``batch()`` groups the writes of one
step (the rows of one multi-key transaction, the receipts of one pass) into one SQLite
transaction: one commit, all or nothing.

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
CREATE TABLE IF NOT EXISTS game_logs (
    game_id INTEGER NOT NULL, event TEXT NOT NULL, fields TEXT NOT NULL, PRIMARY KEY (game_id, event));
CREATE TABLE IF NOT EXISTS move_gas (
    id INTEGER PRIMARY KEY AUTOINCREMENT, model_id INTEGER NOT NULL, method TEXT NOT NULL, gas INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS posted (
    job_id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL, rows INTEGER NOT NULL, input BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    key TEXT PRIMARY KEY, nonce INTEGER NOT NULL, status TEXT NOT NULL,
    gas INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '', tx_hash TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS challenges (
    game_id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, challenger TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inflight (nonce INTEGER PRIMARY KEY, fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    job_id INTEGER PRIMARY KEY, prompt BLOB NOT NULL, n_tokens INTEGER NOT NULL);
"""

DONE = "done"  # a job or game the agent no longer acts on
MOVE_GAS_WINDOW = 64  # moves per model whose gas is kept: an old outlier ages out


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

    @property
    def hashes(self) -> list[str]:
        """Every hash the transaction was signed with, oldest first (a fee bump adds one)."""
        return self.tx_hash.split()


def _plain(value):
    """A log field as JSON: bytes as ``{"hex": ...}`` (a string field stays a string)."""
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _typed(value):
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return value


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
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            self._db.executescript(SCHEMA)
            if "challenges" not in tables and self.cursor() is not None:  # older: the challenges before are not here
                self.set("challenges_from", str(self.cursor() + 1))
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

    def add_generation(self, job_id: int, prompt: bytes, n_tokens: int) -> None:
        """A generation job's prompt (packed int32 ids) and token count (protocol 5.15)."""
        self._db.execute("INSERT OR IGNORE INTO generations VALUES (?, ?, ?)", (job_id, prompt, n_tokens))

    def generation(self, job_id: int) -> tuple[bytes, int] | None:
        """(prompt, n_tokens) of a generation job, None for any other job."""
        row = self._db.execute("SELECT prompt, n_tokens FROM generations WHERE job_id = ?", (job_id,)).fetchone()
        return (bytes(row[0]), row[1]) if row else None

    def set_job_input(self, job_id: int, input_bytes: bytes) -> None:
        """Replace a job's input: a generation job's verified input once its tokens are known."""
        self._db.execute("UPDATE jobs SET input = ? WHERE job_id = ?", (input_bytes, job_id))

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

    # -- logs the scan recorded ------------------------------------------------------------

    def cursor(self) -> int | None:
        """The last block whose logs the agent has read (None before its first scan)."""
        value = self.get("cursor")
        return int(value) if value is not None else None

    def record_game_log(self, game_id: int, event: str, fields: dict) -> None:
        """Keep ``event``'s fields as the latest of its kind in ``game_id`` (a later one replaces it)."""
        self._db.execute("INSERT OR REPLACE INTO game_logs VALUES (?, ?, ?)",
                         (game_id, event, json.dumps({k: _plain(v) for k, v in fields.items()})))

    def game_log(self, game_id: int, event: str) -> dict | None:
        """The fields of the latest ``event`` recorded for ``game_id`` (bytes as bytes), or None."""
        row = self._db.execute("SELECT fields FROM game_logs WHERE game_id = ? AND event = ?",
                               (game_id, event)).fetchone()
        return {k: _typed(v) for k, v in json.loads(row[0]).items()} if row else None

    def add_challenge(self, game_id: int, job_id: int, challenger: str) -> None:
        """Game ``game_id`` was opened on ``job_id`` by ``challenger`` (ours or another's)."""
        self._db.execute("INSERT OR IGNORE INTO challenges VALUES (?, ?, ?)", (game_id, job_id, challenger))

    def challenges_of(self, job_id: int) -> list[int]:
        """The ids of every game recorded as opened on ``job_id``, in order."""
        rows = self._db.execute("SELECT game_id FROM challenges WHERE job_id = ? ORDER BY game_id", (job_id,))
        return [row[0] for row in rows]

    def model_of_game(self, game_id: int) -> int | None:
        row = self._db.execute("SELECT model_id FROM games JOIN jobs USING (job_id) WHERE game_id = ?",
                               (game_id,)).fetchone()
        return row[0] if row else None

    def add_move_gas(self, model_id: int, method: str, gas: int) -> None:
        """Note one mined move's gas in a game of ``model_id``; only the last ``MOVE_GAS_WINDOW`` are kept."""
        self._db.execute("INSERT INTO move_gas (model_id, method, gas) VALUES (?, ?, ?)", (model_id, method, gas))
        self._db.execute("DELETE FROM move_gas WHERE model_id = ? AND id NOT IN (SELECT id FROM move_gas "
                         "WHERE model_id = ? ORDER BY id DESC LIMIT ?)", (model_id, model_id, MOVE_GAS_WINDOW))

    def move_gas(self, model_id: int) -> list[int]:
        """The gas of the latest moves in games of ``model_id``, oldest first."""
        rows = self._db.execute("SELECT gas FROM move_gas WHERE model_id = ? ORDER BY id", (model_id,))
        return [row[0] for row in rows]

    def add_posted(self, job_id: int, model_id: int, rows: int, input_bytes: bytes) -> None:
        self._db.execute("INSERT OR IGNORE INTO posted VALUES (?, ?, ?, ?)", (job_id, model_id, rows, input_bytes))

    def take_posted(self, job_id: int) -> bytes | None:
        """The input recorded from job ``job_id``'s ``JobPosted`` log, forgotten as it is taken."""
        row = self._db.execute("SELECT input FROM posted WHERE job_id = ?", (job_id,)).fetchone()
        self._db.execute("DELETE FROM posted WHERE job_id = ?", (job_id,))
        return bytes(row[0]) if row else None

    # -- transactions --------------------------------------------------------------------

    def tx(self, key: str) -> TxRow | None:
        row = self._db.execute("SELECT * FROM txs WHERE key = ?", (key,)).fetchone()
        return TxRow(*row) if row else None

    def tx_sent(self, key: str, nonce: int, tx_hash: str = "") -> None:
        self.txs_sent((key,), nonce, tx_hash)

    def txs_sent(self, keys, nonce: int, tx_hash: str = "") -> None:
        """One transaction carrying ``keys``: a row each, same nonce and hash, in one commit."""
        with self.batch():
            self._db.executemany("INSERT OR REPLACE INTO txs VALUES (?, ?, 'sent', 0, '', ?)",
                                 [(key, nonce, tx_hash) for key in keys])

    def tx_rehash(self, keys, hashes: list[str]) -> None:
        """The transaction of ``keys`` signed again (a fee bump): every hash it may be mined by."""
        with self.batch():
            self._db.executemany("UPDATE txs SET tx_hash = ? WHERE key = ?", [(" ".join(hashes), key) for key in keys])

    def keys_of(self, tx_hash: str) -> list[str]:
        """The keys journaled with transaction ``tx_hash``, in the order it carries them."""
        return [r[0] for r in self._db.execute("SELECT key FROM txs WHERE tx_hash = ? ORDER BY rowid", (tx_hash,))]

    def tx_done(self, key: str, status: str, gas: int = 0, reason: str = "") -> None:
        self._db.execute("UPDATE txs SET status = ?, gas = ?, reason = ? WHERE key = ?", (status, gas, reason, key))

    def has_nonce(self, nonce: int) -> bool:
        """Whether a transaction of ours was journaled at ``nonce`` (any key, any status)."""
        return self._db.execute("SELECT 1 FROM txs WHERE nonce = ? LIMIT 1", (nonce,)).fetchone() is not None

    def forget_tx(self, key: str) -> None:
        self._db.execute("DELETE FROM txs WHERE key = ?", (key,))

    def keys(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT key FROM txs ORDER BY rowid")]

    def gas_by_key(self) -> list[tuple[str, int]]:
        return list(self._db.execute("SELECT key, gas FROM txs WHERE status = 'mined' ORDER BY rowid"))

    # -- transactions in flight (the transaction manager's) --------------------------------

    def track(self, nonce: int, fields: dict) -> None:
        """The transaction in flight at ``nonce``, as the transaction manager follows it."""
        self._db.execute("INSERT OR REPLACE INTO inflight VALUES (?, ?)", (nonce, json.dumps(fields)))

    def untrack(self, nonce: int) -> None:
        self._db.execute("DELETE FROM inflight WHERE nonce = ?", (nonce,))

    def tracked(self) -> list[dict]:
        """Every transaction left in flight, lowest nonce first."""
        return [json.loads(row[0]) for row in self._db.execute("SELECT fields FROM inflight ORDER BY nonce")]
