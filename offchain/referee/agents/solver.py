"""The solver agent (``referee solve``): claims jobs on its models, commits, defends, is paid.

For each job posted on a model it serves, within its free stake and whose terms it can honour
(``terms.solver_refusal``: output size, bond, fee, windows, and its games in play and jobs
claimed, each of which may draw a game, against its capacity): run the model exactly and
store the trace (before claiming, so a slow run never costs the bond), claim, commit the
output with ``S_N`` and its slot proof, then answer every game opened against the result
until each is over, settle the games it won, finalize the job once the challenge window has
passed, and withdraw what it is owed.

A generation job (protocol 5.15) is first decoded (``referee.decode.Decoder``: the tokens with a
KV cache); its journal input becomes the verified input [prompt ‖ tokens[:-1] ‖ 0 ...], whose
ordinary trace (the teacher-forced pass) is computed, claimed on, committed with the tokens
(``commit_generation``, which checks them against the output's rows) and defended as any.

With ``cheat`` (``referee.cheats``) it commits and defends a lie instead: for demonstrations
and tests of the challenger, never for real use.
"""

from .. import cheats
from .. import commitments as cm
from .. import decode
from ..errors import RefereeError
from .agent import Agent
from .client import (CANCELLED, CLAIMED, COMMITTED, FINALIZED, JOB_STATUS, OPEN, REJECTED, commit_generation_args,
                     unpack_ids)
from .journal import JobRow
from .terms import ether, solver_refusal

CLAIMING = "claiming"  # a job whose claim we sent: ours once it is mined


class Solver(Agent):
    role = "solver"
    is_solver = True

    def ensure_stake(self, target: int):
        """Top the stake up to ``target`` wei (a no-op when it is already there)."""
        stake = self.client.read(self.client.market.stake, self.client.address)
        if stake >= target:
            return None
        balance = self.client.read(lambda: int(self.client.account.balance))
        if balance <= target - stake:  # the deposit, and gas on top of it
            raise RefereeError(f"{self.client.address} has {ether(balance)}; --stake {ether(target)} needs a deposit "
                               f"of {ether(target - stake)} (staked now: {ether(stake)}) and its gas: fund the account "
                               "or lower --stake")
        return self.send_now(f"deposit:{target}:{stake}", "deposit", value=target - stake,
                             what=f"staked {ether(target - stake)} (stake now {ether(target)})")

    def withdraw_stake(self):
        """Take all free stake (not locked by a claimed or committed job) out of the market."""
        free = self.client.free_stake()
        if free == 0:
            return None
        return self.send_now(f"unstake:{self.client.head()}", "withdraw_stake", free,
                             what=f"withdrew {ether(free)} of free stake")

    def on_logs(self, start: int, stop: int) -> None:
        client = self.client
        for model_id in self.models:
            for log in client.logs(client.market, "JobPosted", start, stop, model_id=model_id):
                n_tokens = int(getattr(log, "n_tokens", 0))
                if n_tokens:  # before the job row: a job row always finds its generation
                    self.journal.add_generation(log.job_id, bytes(log.input), n_tokens)
                if self.journal.add_job(log.job_id, model_id, log.rows, bytes(log.input), "seen"):
                    self.log(f"job {log.job_id}: posted ({log.rows} rows, fee {ether(log.fee)}, "
                             f"bond {ether(log.solver_bond)})")
        for log in client.logs(client.market, "JobChallenged", start, stop):
            if self.journal.job(log.job_id) is None or self.job(log.job_id).solver != client.address:
                continue
            if self.journal.add_game(log.game_id, log.job_id):
                self.log(f"job {log.job_id}: challenged by {log.challenger} (game {log.game_id})")
        for log in client.logs(client.market, "JobExpired", start, stop, solver=client.address):
            self.log(f"job {log.job_id}: our claim expired uncommitted: our bond of {ether(log.slashed)} was "
                     "slashed to the requester")
            if self.metrics:
                self.metrics.lost(log.slashed, slashed=True)

    def advance_job(self, row: JobRow):
        client, me = self.client, self.client.address
        job = self.job(row.job_id)
        now = self.now
        if job.status == OPEN:
            if now >= job.claim_deadline:
                return self.finish(row, "claim window passed")
            model = self.models[row.model_id]
            if row.state == CLAIMING:  # our claim is on its way: counted already, never dropped
                return self.send(f"claim:{row.job_id}:{job.claim_deadline}", "claim", row.job_id,
                                 what=f"job {row.job_id}: claimed", deadline=job.claim_deadline, stake=job.fee)
            games, capacity = self.per_tick("commitments", self.commitments), self.capacity(model, job.rows).games
            refusal = solver_refusal(job, model.output_cols, self.limits, self.per_tick("gas", client.gas_price),
                                     self.block_time,
                                     games, capacity, space=self.block_space(), clock=client.clock)
            if refusal is not None and games < capacity:
                return self.finish(row, f"skipped: {refusal}")
            if refusal is not None:  # games end: this one may be claimed once some have
                if row.state != "at capacity":
                    self.journal.set_job(row.job_id, "at capacity")
                    self.log(f"job {row.job_id}: waiting, {refusal}")
                return None
            if self.per_tick("free stake", client.free_stake) < job.solver_bond:
                if row.state != "short of stake":
                    self.journal.set_job(row.job_id, "short of stake")
                    self.log(f"job {row.job_id}: waiting, free stake below the bond {ether(job.solver_bond)}")
                return None
            generation = self.journal.generation(row.job_id)
            # decoded once: the journal input is then the verified input, T ids (a prompt of T
            # ids and one token is its own verified input, and needs no decoding)
            if generation is not None and len(row.input) != 4 * model.input_cols:
                refused = self.decode_generation(row, *generation)
                if refused is not None:
                    return self.finish(row, f"skipped: {refused}")
                row = self.journal.job(row.job_id)
            if self.trace_ready(row) is None:  # before the claim: the commit window never waits on it
                return None
            self.journal.set_job(row.job_id, CLAIMING)  # counts against capacity from now on
            self._reads["commitments"] += 1  # and against this tick's figures: the claim is not yet mined
            self._reads["free stake"] -= job.solver_bond
            return self.send(f"claim:{row.job_id}:{job.claim_deadline}", "claim", row.job_id,
                             what=f"job {row.job_id}: claimed", deadline=job.claim_deadline, stake=job.fee)
        if job.status == CLAIMED and job.solver != me:
            if now > job.commit_deadline:
                # the claimant let its commit window pass: expiring reopens the job (its bond
                # goes to the requester) and we may claim it on the next pass
                return self.send(f"expire:{row.job_id}:{job.commit_deadline}", "expire", row.job_id,
                                 what=f"job {row.job_id}: expired the other solver's claim")
            if row.state != "claimed by another":
                self.journal.set_job(row.job_id, "claimed by another")
            return None
        if job.solver != me or job.status == CANCELLED:
            return self.finish(row, f"{JOB_STATUS[job.status]} by another solver" if job.solver != me
                              else "cancelled")
        if job.status == CLAIMED:
            if now >= job.commit_deadline:
                return self.finish(row, f"commit deadline passed: our bond of {ether(job.solver_bond)} is forfeit "
                                        "(slashed when anyone calls expire)")
            trace = self.trace_for(row)
            n = trace.op_count
            generation = self.journal.generation(row.job_id)
            if generation is not None:
                prompt, tokens = generation_tokens(generation, trace)
                action = self.send(f"commit:{row.job_id}:{job.commit_deadline}", "commit_generation",
                                   *commit_generation_args(row.job_id, prompt, tokens, trace),
                                   what=f"job {row.job_id}: committed {len(tokens)} tokens",
                                   deadline=job.commit_deadline, stake=job.solver_bond)
            else:
                action = self.send(f"commit:{row.job_id}:{job.commit_deadline}", "commit", row.job_id,
                                   cm.packed(trace.output), trace.trace_root, trace.state_tree(n).proof(n),
                                   what=f"job {row.job_id}: committed", deadline=job.commit_deadline,
                                   stake=job.solver_bond)
            self.journal.set_job(row.job_id, "committed")
            return action
        if row.state != "committed":
            self.journal.set_job(row.job_id, "committed")  # restarted after the commit went out
        if job.status == COMMITTED:
            if now > job.challenge_deadline and job.open_games == 0:
                self.waits.forget(("challenge", row.job_id))
                return self.send(f"finalize:{row.job_id}", "finalize", row.job_id,
                                 what=f"job {row.job_id}: finalized, fee {ether(job.fee)} credited", stake=job.fee)
            if now <= job.challenge_deadline:
                self.waits.note(("challenge", row.job_id), f"job {row.job_id}'s challenge window",
                                job.challenge_deadline - now)
            return None
        if any(j == row.job_id for _, j in self.journal.active_games()):
            return None  # its games end first (each settled by its winner)
        if job.status == REJECTED:
            if self.metrics:
                self.metrics.lost(job.solver_bond, slashed=True)
            return self.finish(row, f"rejected: our bond of {ether(job.solver_bond)} was slashed")
        return self.finish(row, "paid" if job.status == FINALIZED else JOB_STATUS[job.status],
                           served=job.status == FINALIZED)

    def decode_generation(self, row: JobRow, prompt_bytes: bytes, n_tokens: int) -> str | None:
        """Decode a generation job's tokens (KV-cached, ``decode.Decoder``) and make its journal
        input the verified input, whose trace is then computed as any job's; the reason it is
        refused (the prompt or the model breaks 5.15's rules), or None."""
        model = self.models[row.model_id]
        prompt = unpack_ids(prompt_bytes)
        try:
            tokens = decode.Decoder(model, self.device).generate(prompt, n_tokens)
            if self.cheat == "wrong-token" and n_tokens >= 2:  # a lie: another first token, text on from it
                first = cheats.changed_token(tokens[0], decode.vocab(model))
                tokens = [first] + decode.Decoder(model, self.device).generate(prompt + [first], n_tokens - 1)
            x = decode.verified_input(model, prompt, tokens)
        except RefereeError as exc:
            return str(exc)
        self.journal.set_job_input(row.job_id, cm.packed(x))
        self.log(f"job {row.job_id}: decoded {n_tokens} tokens after a prompt of {len(prompt)}")
        return None

    def bonds_at_risk(self) -> int:
        return self.client.read(self.client.market.locked, self.client.address)

    def commitments(self) -> int:
        """Games in play, plus every job we claimed (or are claiming) that has none yet: each may
        draw a game while its bond is locked, so a claim counts against capacity as a game does."""
        with_games = {job_id for _, job_id in self.journal.active_games()}
        claims = [row for row in self.journal.active_jobs()
                  if row.state in (CLAIMING, "committed") and row.job_id not in with_games]
        return self.games_in_play() + len(claims)

    def play(self, game_id: int, job_id: int, g):
        job = self.job(job_id)
        if job.status == REJECTED and game_id > job.best_game:
            return None  # opened after the game that rejected the result: its challenger reclaims it
        return super().play(game_id, job_id, g)  # an earlier game is played out: its bond may still be ours


def generation_tokens(generation: tuple[bytes, int], trace) -> tuple[list[int], list[int]]:
    """(prompt, tokens) of a generation job from its teacher-forced trace: the tokens are the
    output's rows P-1 .. P+n-2 (``decode.generated_tokens``), and every one but the last must be
    the verified input's id after the prompt (``decode.GenerationMismatch`` otherwise: the trace
    is not of the tokens it would commit)."""
    prompt_bytes, n_tokens = generation
    prompt = unpack_ids(prompt_bytes)
    tokens = decode.generated_tokens(trace.output, len(prompt), n_tokens)
    fed = [int(v) for v in trace.slots[0][0, len(prompt):len(prompt) + n_tokens - 1]]
    if fed != tokens[:-1]:
        raise decode.GenerationMismatch(f"the verifying pass gives tokens {tokens}, but its input holds {fed}")
    return prompt, tokens
