"""``ape run status``: a job and its games as a readable timeline.

First the job (its state, the open window and the time left in it), then each game (phase,
who is to move and what that move is, both clocks as time left), then every event about the
job, oldest first, in words: who moved and what the move means. ``--model`` names each op's
kind in the game lines.

    ape run status 2 --network http://127.0.0.1:8545
"""

from pathlib import Path

import click

from scripts._shared import OperatorCommand
from referee.agents import inspect
from referee.agents.cli import resolve_deployment, user_errors
from referee.agents.client import ChainClient
from referee.errors import RefereeError


@click.command(cls=OperatorCommand, short_help="Show a job and its games")
@click.argument("job_id", type=click.IntRange(1))
@click.option("--model", "model_dir", type=click.Path(path_type=Path),
              help="The job's model directory: names each op's kind in the timeline.")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
def cli(job_id, model_dir, deployment):
    """Print JOB_ID's state, its games' clocks and every event about it, oldest first."""
    with user_errors():
        client = ChainClient(resolve_deployment(deployment), None)
        if not 1 <= job_id <= client.market.job_count():
            raise RefereeError(f"there is no job {job_id} (jobs so far: {client.market.job_count()})")
        now = client.now()
        for line in inspect.job_summary(client, job_id):
            click.echo(line)
        for game_id in inspect.games_of(client, job_id):
            for line in inspect.game_state(client, game_id).lines(now):
                click.echo(f"  {line}")
        kinds = None
        if model_dir is not None:
            from referee.modelfile import load_model

            kinds = {j: getattr(op, "kind", "linear") for j, op in enumerate(load_model(model_dir).ops, start=1)}
        click.echo("timeline:")
        for line in inspect.timeline(client, job_id, kinds):
            click.echo(f"  {line}")
