"""``ape run status``: a job and its games as a readable timeline.

First the job (its state, the open window and the time left in it), then each game (phase,
who is to move and what that move is, both clocks as time left), then every event about the
job, oldest first, in words: who moved and what the move means. The disputed op's kind is
read from the solver's transition on chain; ``--model`` names it from the model instead.
After the job's lines, what it was asked and what was committed: a generation job's prompt and
tokens (as text with ``--model``, the job's model and its tokenizer; token ids without), any
other job's input and output by shape and dtype (an encoder's texts, with ``--model``). ``--wait SECONDS`` first waits (up to that long) until the job is over:
finalized, rejected or cancelled, with every game settled.

    ape run status 2 --network http://127.0.0.1:8545
    ape run status 2 --wait 300 --network http://127.0.0.1:8545
"""

import time

from pathlib import Path

import click

from scripts._shared import OperatorCommand
from referee.agents import inspect
from referee.agents.cli import resolve_deployment, user_errors
from referee.agents.client import CANCELLED, FINALIZED, JOB_STATUS, REJECTED, ChainClient
from referee.agents.logs import seconds
from referee.errors import RefereeError

POLL = 1.0  # seconds between looks while waiting


@click.command(cls=OperatorCommand, short_help="Show a job and its games")
@click.argument("job_id", type=click.IntRange(1))
@click.option("--model", "model_dir", type=click.Path(path_type=Path),
              help="The job's model directory: op kinds from the model, not the chain.")
@click.option("--wait", "wait_for", type=click.IntRange(1), metavar="SECONDS",
              help="First wait until the job is over (every game settled), for at most SECONDS.")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
def cli(job_id, model_dir, wait_for, deployment):
    """Print JOB_ID's state, its games' clocks and every event about it, oldest first."""
    with user_errors():
        kinds = model = None
        if model_dir is not None:  # first: a model that does not load is named before any query
            from referee.model import kind_name
            from referee.modelfile import load_model

            model = load_model(model_dir)
            kinds = {j: kind_name(op) for j, op in enumerate(model.ops, start=1)}
        client = ChainClient(resolve_deployment(deployment), None)
        if not 1 <= job_id <= client.market.job_count():
            raise RefereeError(f"there is no job {job_id} (jobs so far: {client.market.job_count()})")
        if wait_for:
            _wait(client, job_id, wait_for)
        now = client.now()
        for line in inspect.job_summary(client, job_id):
            click.echo(line)
        for line in _result(client, job_id, model, model_dir):
            click.echo(line)
        for game_id in inspect.games_of(client, job_id):
            for line in inspect.game_state(client, game_id).lines(now):
                click.echo(f"  {line}")
        click.echo("timeline:")
        for line in inspect.timeline(client, job_id, kinds):
            click.echo(f"  {line}")


def _result(client: ChainClient, job_id: int, model, model_dir) -> list[str]:
    """The job's input and committed result (``inspect.job_result``): with ``--model`` the
    job's model, its texts and tokens as text through the model's tokenizer."""
    from referee.cli import model_kind

    if model is None:
        return inspect.job_result(client, job_id)
    job_model = client.job(job_id).model_id
    found = client.model_id(model)
    if found != job_model:  # another model's tokenizer would read the ids as other text
        registered = f"model {found}" if found else "not registered"
        return [*inspect.job_result(client, job_id),
                f"  (--model {model_dir} is {registered}, not this job's model {job_model}: ids not read as text)"]
    spec = model.meta.get("tokenizer") if isinstance(model.meta, dict) else None
    tokenizer = None
    if isinstance(spec, dict) and "sha256" in spec:
        from referee.text import generation_tokenizer

        tokenizer = generation_tokenizer(model, model_dir)  # the file as it is: no padding, no truncation
    return inspect.job_result(client, job_id, tokenizer, model_kind(model))


def _wait(client: ChainClient, job_id: int, limit: int) -> None:
    """Until job ``job_id`` is over (finalized, rejected or cancelled, no game open), or fail
    after ``limit`` seconds of wall time (time passes by itself only on a real chain)."""
    click.echo(f"waiting for job {job_id} to end (at most {seconds(limit)})")
    started = time.monotonic()
    while True:
        job = client.job(job_id)
        if job.status in (FINALIZED, REJECTED, CANCELLED) and job.open_games == 0:
            return
        if time.monotonic() - started > limit:
            raise RefereeError(f"job {job_id} is still {JOB_STATUS.get(job.status, 'unknown')} with {job.open_games} "
                               f"open game(s) after {seconds(limit)}: are its agents running (and, on a local "
                               "chain, past its deadlines: ape run advance)?")
        time.sleep(POLL)
