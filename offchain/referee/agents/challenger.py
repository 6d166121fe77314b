"""The challenger agent (``referee watch``): re-executes committed results, disputes wrong ones.

For each result committed on a model it watches: read the job's input from its ``JobPosted``
log, run the model exactly (the trace is stored before anything depends on it), compare the
final state root with the committed ``S_N``, and challenge on a difference while the window
is open and the bond is within ``max_bond``. Then it plays each of its games to the end
(choosing the disputed part and child, building the one-step proof), settles the games it
won, and withdraws its credit. A game is played out even after another challenger's win has
rejected the job: every winning game is refunded its gas and shares the bonus pool (protocol
10.2), which a ``reclaim`` would give up. It takes on no game beyond its capacity
(``capacity.py``) or ``max_bond``, and logs why it declined.
"""

from ..hashing import to_hex
from .agent import Agent
from .client import COMMITTED, JOB_STATUS
from .journal import JobRow
from .terms import challenger_refusal, ether


class Challenger(Agent):
    role = "challenger"
    is_solver = False

    def on_logs(self, start: int, stop: int) -> None:
        client, me = self.client, self.client.address
        for log in client.logs(client.market, "JobCommitted", start, stop):
            job = self.job(log.job_id)
            if job.model_id not in self.models or job.solver == me:
                continue
            if self.journal.add_job(log.job_id, job.model_id, job.rows, client.posted_input(log.job_id), "to check"):
                self.log(f"job {log.job_id}: result committed by {log.solver}, S_N {to_hex(bytes(log.trace_root))[:12]}…")
        for log in client.logs(client.market, "JobChallenged", start, stop, challenger=me):
            self.journal.add_game(log.game_id, log.job_id)
            self.journal.set_job(log.job_id, "challenged")

    def advance_job(self, row: JobRow):
        client = self.client
        job = self.job(row.job_id)
        if row.state == "challenged":
            if any(j == row.job_id for _, j in self.journal.active_games()):
                return None
            return self.finish(row, f"every game over; job {JOB_STATUS[job.status]}", served=True)
        if job.status != COMMITTED:
            return self.finish(row, f"job {JOB_STATUS[job.status]} before it was checked")
        trace = self.trace_for(row)
        if trace.trace_root == bytes(job.trace_root):
            return self.finish(row, "checked: the result is right", served=True)
        if client.now() >= job.challenge_deadline:
            return self.finish(row, "wrong result, but the challenge window has passed")
        refusal = challenger_refusal(client.challenger_bond, self.limits, self.games_in_play(),
                                     self.capacity(self.models[row.model_id], row.rows).games)
        if refusal is not None:
            return self.finish(row, f"wrong result; not challenged: {refusal}")
        # the game is recorded from the JobChallenged log (on_logs), once the challenge is mined
        return self.send(f"challenge:{row.job_id}", "challenge", row.job_id, value=client.challenger_bond,
                         what=f"job {row.job_id}: wrong S_N, challenged with {ether(client.challenger_bond)}",
                         deadline=job.challenge_deadline)

    def bonds_at_risk(self) -> int:
        return self.client.challenger_bond * len(self.journal.active_games())
