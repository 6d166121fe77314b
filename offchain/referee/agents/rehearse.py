"""Fork rehearsal (``referee rehearse``): play a pending dispute on a fork before the real chain.

anvil forks the real node at its latest block; the agent for ``--account`` (the job's solver,
or else a challenger) is started on the fork with a scratch journal seeded with the job and
its games, and plays every move it would play for real, from its own trace store. The
opponent is not on the fork, so it is modelled as answering nothing: when the agent has
nothing to send, the fork's clock jumps past the next deadline, and the game ends by
``timeout`` if the opponent never moves. The report is what the agent would send (every move
accepted by the real contracts at the real state), its gas, and the outcome; the real chain
is never written to.
"""

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import click

from ..errors import RefereeError
from ..hashing import to_hex
from .client import COMMITTED, JOB_STATUS, REJECTED
from .drive import drive


@dataclass
class Rehearsal:
    role: str
    job_status: str
    games: dict = field(default_factory=dict)  # game id -> outcome
    gas: dict = field(default_factory=lambda: defaultdict(int))  # action -> gas
    note: str = ""

    @property
    def total_gas(self) -> int:
        return sum(self.gas.values())


def seed(agent, job_id: int) -> None:
    """Give a fresh journal the job and the games this agent plays in it, read from the chain."""
    client, journal = agent.client, agent.journal
    job = client.job(job_id)
    input_bytes = client.posted_input(job_id)
    if job.model_id not in agent.models:
        raise RefereeError(f"job {job_id} is on model {job.model_id}, which --model does not give")
    topics = {"job_id": job_id} if agent.is_solver else {"job_id": job_id, "challenger": client.address}
    games = [log.game_id for log in client.logs(client.market, "JobChallenged", client.deployment.block,
                                                client.head(), **topics)
             if client.read(client.market.challenge_of, log.game_id).open]
    state = "committed" if agent.is_solver else ("challenged" if games else "to check")
    journal.add_job(job_id, job.model_id, job.rows, input_bytes, state)
    for game_id in games:
        journal.add_game(game_id, job_id)
    journal.set("cursor", str(client.head()))


def rehearse(build_agent, job_id: int, log=click.echo) -> Rehearsal:
    """Play job ``job_id``'s dispute on the connected (forked) chain with the agent
    ``build_agent(kind, state_path)`` returns; ``kind`` is decided from the job's solver."""
    import ape

    with tempfile.TemporaryDirectory(prefix="referee-rehearsal-") as scratch:
        probe = build_agent("challenger", Path(scratch) / "probe.sqlite")
        if not 1 <= job_id <= probe.client.read(probe.client.market.job_count):
            raise RefereeError(f"there is no job {job_id} on this chain")
        job = probe.client.job(job_id)
        if job.status not in (COMMITTED, REJECTED):
            raise RefereeError(f"job {job_id} is {JOB_STATUS.get(job.status, 'unknown')}: no result to dispute")
        kind = "solver" if job.solver == probe.client.address else "challenger"
        agent = probe if kind == "challenger" else build_agent("solver", Path(scratch) / "solver.sqlite")
        seed(agent, job_id)
        if job.status == REJECTED and not agent.journal.active_games():
            raise RefereeError(f"job {job_id} is already rejected and {agent.client.address} has no game in it")
        log(f"rehearsing job {job_id} as its {kind} on a fork at block {ape.chain.blocks.head.number} "
            f"(S_N {to_hex(bytes(job.trace_root))[:12]}…); the opponent is modelled as not answering")
        drive([agent], lambda: not agent.journal.active_games() and not agent.journal.active_jobs(),
              on_warp=lambda old, new: log(f"  fork clock +{new - old:,} s"))
        report = Rehearsal(kind, JOB_STATUS[agent.client.job(job_id).status])
        for game_id in agent.journal.games_of(job_id):
            report.games[game_id] = agent.journal.game_note(game_id)
        for key, gas in agent.journal.gas_by_key():
            report.gas[key.split(":", 1)[0]] += gas
        report.note = agent.journal.job(job_id).note
        return report


def print_report(report: Rehearsal, gas_price: int) -> None:
    click.echo(f"outcome: job {report.job_status}; {report.note}")
    for game_id, outcome in report.games.items():
        click.echo(f"  game {game_id}: {outcome}")
    for action, gas in report.gas.items():
        click.echo(f"  {action:<16} {gas:>10,} gas")
    cost = report.total_gas * gas_price / 10**18
    click.echo(f"  {'total':<16} {report.total_gas:>10,} gas  (~{cost:.6f} ETH at {gas_price / 1e9:.2f} gwei)")
    click.echo("nothing was sent to the real chain")

