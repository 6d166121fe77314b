"""The agents' SQLite journal on its own: identity binding, jobs and games, the transaction keys."""

import sqlite3
from pathlib import Path

import pytest

from referee.agents.journal import DONE, Journal
from referee.errors import RefereeError


def test_journal_bind_other_market_reverts(tmp_path):
    journal = Journal(tmp_path / "state.sqlite")
    journal.bind(market="0xabc", account="0x1")
    journal.bind(market="0xabc", account="0x1")  # the same identity again is fine
    journal.close()
    reopened = Journal(tmp_path / "state.sqlite")
    with pytest.raises(RefereeError, match="belongs to market 0xabc, not 0xdef"):
        reopened.bind(market="0xdef", account="0x1")


def test_journal_jobs_games_and_txs_survive_reopen_succeeds(tmp_path):
    journal = Journal(tmp_path / "state.sqlite")
    assert journal.add_job(7, 1, 2, b"\x01\x02", "seen")
    assert not journal.add_job(7, 1, 2, b"\x01\x02", "seen")  # followed once
    assert journal.add_game(3, 7) and not journal.add_game(3, 7)
    journal.tx_sent("claim:7", nonce=4)
    journal.set_job(7, "committed")
    journal.close()

    journal = Journal(tmp_path / "state.sqlite")
    assert journal.job(7).input == b"\x01\x02" and journal.job(7).state == "committed"
    assert journal.active_games() == [(3, 7)]
    assert journal.tx("claim:7").status == "sent" and journal.tx("claim:7").nonce == 4
    journal.tx_done("claim:7", "mined", gas=1000)
    journal.set_game(3, DONE, "solver won")
    journal.set_job(7, DONE)
    assert journal.active_jobs() == [] and journal.active_games() == []
    assert journal.gas_by_key() == [("claim:7", 1000)] and journal.game_note(3) == "solver won"


def test_journal_not_a_database_reverts(tmp_path):
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RefereeError, match="not a usable SQLite database"):
        Journal(path)


def test_journal_survives_sqlite_readers_succeeds(tmp_path):
    journal = Journal(tmp_path / "state.sqlite")
    journal.add_job(1, 1, 1, b"\x00", "seen")
    # another process (an operator's sqlite3 shell) reads while the agent runs: WAL allows it
    other = sqlite3.connect(tmp_path / "state.sqlite")
    assert other.execute("SELECT job_id, state FROM jobs").fetchall() == [(1, "seen")]
    other.close()


def test_journal_second_agent_on_one_journal_reverts(tmp_path):
    import os

    first = Journal(tmp_path / "state.sqlite")
    with pytest.raises(RefereeError, match=rf"agent state .*state.sqlite is in use by another agent "
                                           rf"\(pid {os.getpid()}\): stop that one first, or give this one "
                                           r"its own --state"):
        Journal(tmp_path / "state.sqlite")
    reader = Journal(tmp_path / "state.sqlite", lock=False)  # a reader needs no lock
    first.add_job(1, 1, 1, b"\x00", "seen")
    assert reader.job(1).state == "seen"
    reader.close()
    first.close()
    Journal(tmp_path / "state.sqlite").close()  # closed: the next agent may take it


def test_journal_lock_freed_when_holder_killed_succeeds(tmp_path):
    """A SIGKILLed agent leaves no stale lock: the kernel drops a flock with its process."""
    import signal
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from referee.agents.journal import Journal; "
                               f"j = Journal({str(tmp_path / 'state.sqlite')!r}); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RefereeError, match=f"in use by another agent \\(pid {holder.pid}\\)"):
            Journal(tmp_path / "state.sqlite")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    Journal(tmp_path / "state.sqlite").close()


def test_journal_from_earlier_deployment_says_what_to_do_reverts(tmp_path):
    journal = Journal(tmp_path / "state.sqlite")
    journal.bind(market="0xabc", deployed_in="0x8d39" + "0" * 60)
    journal.close()
    reopened = Journal(tmp_path / "state.sqlite")
    with pytest.raises(RefereeError) as caught:
        reopened.bind(market="0xabc", deployed_in="0xc692" + "0" * 60)
    message = str(caught.value)
    assert "is from an earlier deployment at the same address" in message
    assert "the chain was reset or the contracts deployed again" in message
    assert "move" in message and "aside (or delete it) to start afresh, or pass --state" in message
    with pytest.raises(RefereeError, match="belongs to account 0x1, not 0x2: each account and role keeps its own"):
        reopened.bind(account="0x1")
        reopened.bind(account="0x2")


def test_journal_remembers_model_dirs_succeeds(tmp_path):
    journal = Journal(tmp_path / "state.sqlite")
    assert journal.model_dirs() == []
    journal.remember_models([tmp_path / "a", "b"])
    journal.close()
    reader = Journal(tmp_path / "state.sqlite", lock=False)
    assert reader.model_dirs() == [(tmp_path / "a").resolve(), Path("b").resolve()]


def test_journal_recorded_logs_and_inputs_survive_reopen_succeeds(tmp_path):
    journal = Journal(tmp_path / "state.sqlite")
    assert journal.cursor() is None and journal.game_log(3, "Bisected") is None
    journal.set("cursor", "41")
    journal.record_game_log(3, "Bisected", {"game_id": 3, "lo": 0, "hi": 4, "roots": [b"\x01" * 32, b"\x02" * 32]})
    journal.record_game_log(3, "Bisected", {"game_id": 3, "lo": 0, "hi": 2, "roots": [b"\x03" * 32]})  # the latest
    journal.record_game_log(3, "GameResolved", {"game_id": 3, "solver_won": False, "reason": "0xff timeout"})
    journal.add_posted(7, 1, 2, b"\x05\x06")
    journal.close()
    journal = Journal(tmp_path / "state.sqlite")
    assert journal.cursor() == 41
    assert journal.game_log(3, "Bisected") == {"game_id": 3, "lo": 0, "hi": 2, "roots": [b"\x03" * 32]}
    assert journal.game_log(3, "GameResolved")["reason"] == "0xff timeout"  # a string stays a string
    assert journal.take_posted(7) == b"\x05\x06" and journal.take_posted(7) is None  # taken once


def test_journal_batch_is_one_commit_all_or_nothing_succeeds(tmp_path):
    """A batch's writes are seen by another connection only once it ends; one that raises
    leaves nothing; nested batches join the outermost."""
    path = tmp_path / "state.sqlite"
    journal = Journal(path)
    reader = sqlite3.connect(path)
    with journal.batch():
        journal.txs_sent(["bisect:1", "choose:2", "step:3"], nonce=5, tx_hash="0xaa")  # nested
        journal.set("cursor", "9")
        assert reader.execute("SELECT count(*) FROM txs").fetchone()[0] == 0  # not committed yet
    assert reader.execute("SELECT count(*) FROM txs").fetchone()[0] == 3
    assert journal.keys_of("0xaa") == ["bisect:1", "choose:2", "step:3"]  # the batch's order

    with pytest.raises(RuntimeError):
        with journal.batch():
            journal.forget_tx("choose:2")
            journal.set("cursor", "10")
            raise RuntimeError("killed mid-batch")
    assert journal.keys_of("0xaa") == ["bisect:1", "choose:2", "step:3"] and journal.get("cursor") == "9"
    journal.tx_sent("claim:7", nonce=6)  # autocommit again after a batch
    assert reader.execute("SELECT count(*) FROM txs").fetchone()[0] == 4


def test_journal_challenges_and_inflight_survive_reopen_succeeds(tmp_path):
    journal = Journal(tmp_path / "state.sqlite")
    journal.add_challenge(4, 1, "0xother")
    journal.add_challenge(2, 1, "0xours")
    journal.add_challenge(3, 2, "0xours")
    journal.track(7, {"nonce": 7, "hashes": ["0xab"], "max_fee": 2**70})  # fees above 2^63 kept whole
    journal.track(5, {"nonce": 5, "hashes": []})
    journal.untrack(5)
    journal.close()
    journal = Journal(tmp_path / "state.sqlite")
    assert journal.challenges_of(1) == [2, 4] and journal.challenges_of(2) == [3]
    assert journal.tracked() == [{"nonce": 7, "hashes": ["0xab"], "max_fee": 2**70}]
    assert journal.get("challenges_from") is None  # recorded from the first scan on


def test_journal_from_before_challenges_notes_where_they_start_succeeds(tmp_path):
    journal = Journal(tmp_path / "state.sqlite")
    journal.set("cursor", "41")
    journal._db.execute("DROP TABLE challenges")  # as a journal written before the table
    journal.close()
    journal = Journal(tmp_path / "state.sqlite")
    assert journal.get("challenges_from") == "42"  # the challenger reads the games before it once
