"""``ape run status``: a job and its games as a readable timeline.

    ape run status 2 --network http://127.0.0.1:8545
"""

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from referee.agents import inspect
from referee.agents.cli import resolve_deployment, user_errors
from referee.agents.client import ChainClient
from referee.errors import RefereeError


@click.command(cls=ConnectedProviderCommand, short_help="Show a job and its games")
@click.argument("job_id", type=click.IntRange(1))
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
def cli(job_id, deployment):
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
        click.echo("timeline:")
        for line in inspect.timeline(client, job_id):
            click.echo(f"  {line}")
