"""The challenger agent (``referee watch``): re-executes committed results, disputes wrong ones.

For each result committed on a model it watches: take the job's input from its ``JobPosted``
log (recorded in the journal as its scan passed it), run the model exactly (the trace is
stored before anything depends on it), compare the final state root with the committed
``S_N``, and challenge on a difference while the window
is open and the bond is within ``max_bond``. Then it plays each of its games to the end
(choosing the disputed part and child, building the one-step proof), settles the games it
won, and withdraws its credit. A game is played out even after another challenger's win has
rejected the job: every winning game is refunded its gas and shares the bonus pool (protocol
10.2), which a ``reclaim`` would give up. Once its own games of a job are over and one of them
won, it also drives the job's other open games to a close (``timeout`` when their side to move
has run out, ``settle`` once they are over; anyone may call both): the pool the market pays only
when the job's last game closes is not left stranded behind a game its players let stall (the
job's games are those its scan recorded from every ``JobChallenged`` log of a job it follows). It
takes on no game beyond its capacity (``capacity.py``: its games in play and the challenges it
has sent, counted as it sends them) or ``max_bond``, and logs why it declined; a wrong result
refused only for capacity waits ("at capacity") and is challenged once games end, while its
window is open.

A generation job (protocol 5.15) is checked on its verified input: the prompt from its
``JobPosted`` log and the tokens from its ``TokensGenerated`` log (both in the journal), as
``[prompt ‖ tokens[:-1] ‖ 0 ...]``: the teacher-forced pass the solver committed. A token that
is not the model's greedy choice makes that pass's output differ from the committed one at the
token's row, so the result is challenged like any other. The input is built for any int32
tokens (``decode.teacher_forced_input``): a token outside the vocabulary is one no argmax gives,
so a solver that commits one loses its game too.
"""

from .. import commitments as cm
from ..decode import teacher_forced_input
from ..errors import RefereeError
from ..hashing import to_hex
from .agent import Agent
from .client import CHALLENGER_WON, COMMITTED, IN_PLAY, JOB_STATUS, unpack_ids
from .journal import JobRow
from .player import deadline_of
from .terms import challenger_refusal, ether

CHALLENGING = "challenging"  # a job whose challenge we sent, its game not yet seen in the logs
AT_CAPACITY = "at capacity"  # a wrong result we wait to challenge until games of ours end


class Challenger(Agent):
    role = "challenger"
    is_solver = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.watched: dict[int, int] = {}  # other players' games we wait to close -> their deadline

    def on_logs(self, start: int, stop: int) -> None:
        client, me = self.client, self.client.address
        for model_id in self.models:  # inputs recorded as they are posted: no history scan per result
            for log in client.logs(client.market, "JobPosted", start, stop, model_id=model_id):
                self.journal.add_posted(log.job_id, model_id, log.rows, bytes(log.input))
        # a generation job's tokens come in the same transaction as its JobCommitted log
        tokens = {log.job_id: bytes(log.tokens) for log in client.logs(client.market, "TokensGenerated", start, stop)}
        committed = client.logs(client.market, "JobCommitted", start, stop)
        # every committed job's record in one batch request, not one read each (245 results at once)
        self._jobs_seen.update(client.job_records([log.job_id for log in committed if log.job_id not in self._jobs_seen]))
        for log in committed:
            job = self.job(log.job_id)
            if job.model_id not in self.models:
                continue
            posted = self.journal.take_posted(log.job_id)
            if job.solver == me:
                continue
            # a journal older than the posted table lacks the input: read from the history once
            posted = posted or client.posted_input(log.job_id)
            rows = job.rows
            if int(getattr(job, "n_tokens", 0)):
                try:
                    posted, rows = self._verified_input(log.job_id, job.model_id, posted, tokens.get(log.job_id)), 1
                except RefereeError as exc:  # commit_generation refuses such tokens: never on chain
                    self.log(f"job {log.job_id}: generation not checked: {exc}")
                    continue
            if self.journal.add_job(log.job_id, job.model_id, rows, posted, "to check"):
                self.log(f"job {log.job_id}: result committed by {log.solver}, S_N {to_hex(bytes(log.trace_root))[:12]}…")
        self._record_earlier_challenges()
        for log in client.logs(client.market, "JobChallenged", start, stop):  # every challenger's
            ours = str(log.challenger).lower() == me.lower()
            if ours or self.journal.job(log.job_id) is not None:  # a job we are in: close_others reads them
                self.journal.add_challenge(log.game_id, log.job_id, log.challenger)
            if ours:
                self.journal.add_game(log.game_id, log.job_id)
                self.journal.set_job(log.job_id, "challenged")

    def _verified_input(self, job_id: int, model_id: int, prompt: bytes, tokens: bytes | None) -> bytes:
        """A generation job's verified input, packed: the prompt and the committed tokens
        (from this scan's TokensGenerated log, or found in the history)."""
        if tokens is None:
            client = self.client
            found = client.logs(client.market, "TokensGenerated", client.deployment.block, client.head(), job_id=job_id)
            if not found:
                raise RefereeError("no TokensGenerated log")
            tokens = bytes(found[0].tokens)
        x = teacher_forced_input(self.models[model_id], unpack_ids(prompt), unpack_ids(tokens))
        return cm.packed(x)

    def _record_earlier_challenges(self) -> None:
        """Once, for a journal written before the challenges were recorded: the games of its
        jobs opened before then, from one scan of the history."""
        since = self.journal.get("challenges_from")
        if not since:
            return
        client = self.client
        for log in client.logs(client.market, "JobChallenged", client.deployment.block, int(since) - 1):
            if self.journal.job(log.job_id) is not None:
                self.journal.add_challenge(log.game_id, log.job_id, log.challenger)
        self.journal.set("challenges_from", "")  # done; "" is never read as a block

    def advance_job(self, row: JobRow):
        client = self.client
        job = self.job(row.job_id)
        if row.state == "challenged":
            if any(j == row.job_id for _, j in self.journal.active_games()):
                return None
            if job.open_games and self._won_any(row.job_id):
                return self.close_others(row.job_id)
            return self.finish(row, f"every game over; job {JOB_STATUS[job.status]}", served=True)
        if job.status != COMMITTED:
            return self.finish(row, f"job {JOB_STATUS[job.status]} before it was checked")
        trace = self.trace_ready(row)
        if trace is None:
            return None  # computed in the background; checked on a later pass
        if trace.trace_root == bytes(job.trace_root):
            return self.finish(row, "checked: the result is right", served=True)
        if self.now >= job.challenge_deadline:
            return self.finish(row, "wrong result, but the challenge window has passed")
        if row.state != CHALLENGING:  # a challenge on its way is counted already
            games = self.per_tick("commitments", self.commitments)
            capacity = self.capacity(self.models[row.model_id], row.rows).games
            refusal = challenger_refusal(client.challenger_bond, self.limits, games, capacity,
                                         space=self.block_space(), clock=client.clock, block_time=self.block_time)
            if refusal is not None and games < capacity:  # the terms: never
                return self.finish(row, f"wrong result; not challenged: {refusal}")
            if refusal is not None:  # at capacity: challenged once games end, while the window is open
                if row.state != AT_CAPACITY:
                    note = f"wrong result; not challenged yet: {refusal}"
                    self.journal.set_job(row.job_id, AT_CAPACITY, note)
                    self.log(f"job {row.job_id}: {note}; waiting for games to end, until the window closes "
                             f"in {job.challenge_deadline - self.now:,} s")
                return None
            self.journal.set_job(row.job_id, CHALLENGING)
            self._reads["commitments"] += 1  # this tick's figure: counted as it is sent
        # the game is recorded from the JobChallenged log (on_logs), once the challenge is mined
        return self.send(f"challenge:{row.job_id}", "challenge", row.job_id, value=client.challenger_bond,
                         what=f"job {row.job_id}: wrong S_N, challenged with {ether(client.challenger_bond)}",
                         deadline=job.challenge_deadline, stake=client.challenger_bond)

    def _won_any(self, job_id: int) -> bool:
        client = self.client
        return any(client.read(client.game.result, g) == CHALLENGER_WON for g in self.journal.games_of(job_id))

    def close_others(self, job_id: int):
        """Queue ``timeout`` or ``settle`` on each other open game of ``job_id`` that can take
        one, so the job's last game closes and the market pays what it holds until then. The
        job's games are those the scan recorded (``on_logs``): no read of the chain's history."""
        client, ours = self.client, set(self.journal.games_of(job_id))
        for game_id in self.journal.challenges_of(job_id):
            if game_id in ours or not client.challenge_record(game_id).open:
                self.watched.pop(game_id, None)
                continue
            g = client.game_record(game_id)
            if client.read(client.game.result, game_id) != IN_PLAY:
                self.watched.pop(game_id, None)
                self.send(f"settle:{game_id}", "settle", game_id,
                          what=f"game {game_id} (job {job_id}'s, not ours): settled, so the job's last game closes")
            elif self.now > deadline_of(g):
                self.send(f"timeout:{game_id}", "timeout", game_id, contract=client.game,
                          what=f"game {game_id} (job {job_id}'s, not ours): its side to move ran out, timed out")
            else:
                self.watched[game_id] = deadline_of(g)
                self.waits.note(("other", game_id), f"game {game_id} of job {job_id} (not ours) to end, "
                                "before the job's held payout is released", deadline_of(g) - self.now)
        return None

    def bonds_at_risk(self) -> int:
        return self.client.challenger_bond * self.commitments()

    def commitments(self) -> int:
        """Games in play, plus the challenges sent whose game is not yet seen: a tick that
        challenges many results counts each one against capacity as it sends it."""
        return self.games_in_play() + sum(row.state == CHALLENGING for row in self.journal.active_jobs())
