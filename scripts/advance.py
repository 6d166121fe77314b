"""``ape run advance``: move a local chain's clock forward (anvil; a real chain's time is its own).

On a local chain nothing happens between transactions, so a job's windows and a game's clocks
never run out by themselves (the demo and the tests jump the clock; an operator trying the
agents out by hand does it with this). It mines one block at the later time:

    ape run advance --network http://127.0.0.1:8545 --seconds 130   # 130 s from the last block
    ape run advance --network http://127.0.0.1:8545 --job 1         # just past job 1's open window
    ape run advance --network http://127.0.0.1:8545 --game 1        # just past game 1's mover's clock
"""

from pathlib import Path

import click

from scripts._shared import OperatorCommand
from referee.agents.cli import resolve_deployment, user_errors
from referee.agents.client import IN_PLAY, JOB_STATUS, ChainClient, open_window
from referee.agents.inspect import game_state
from referee.agents.localchain import advance_clock
from referee.agents.logs import seconds as span
from referee.errors import RefereeError


@click.command(cls=OperatorCommand, short_help="Move a local chain's clock forward")
@click.option("--seconds", type=click.IntRange(1), help="Move the clock this many seconds past the last block.")
@click.option("--job", "job_id", type=click.IntRange(1), help="Move the clock just past this job's open window.")
@click.option("--game", "game_id", type=click.IntRange(1), help="Move the clock just past this game's mover's clock.")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file, for --job and --game [default: deployments/<ecosystem>-<network>.json].")
def cli(seconds, job_id, game_id, deployment):
    """Mine one block later in time on a local chain: --seconds N, or just past --job's window
    or --game's clock."""
    import ape

    with user_errors():
        if sum(v is not None for v in (seconds, job_id, game_id)) != 1:
            raise RefereeError("give exactly one of --seconds, --job and --game")
        now = ape.chain.blocks.head.timestamp
        if seconds is not None:
            target, why = now + seconds, f"{span(seconds)} later"
        else:
            client = ChainClient(resolve_deployment(deployment), None)
            if job_id is not None:
                if not 1 <= job_id <= client.market.job_count():
                    raise RefereeError(f"there is no job {job_id} (jobs so far: {client.market.job_count()})")
                job = client.job(job_id)
                window = open_window(job)
                if window is None:
                    raise RefereeError(f"job {job_id} is {JOB_STATUS.get(job.status, 'over')}: it has no window open")
                target, why = window[1] + 1, f"past job {job_id}'s {window[0]} window"
            else:
                if not 1 <= game_id <= client.game.game_count():
                    raise RefereeError(f"there is no game {game_id} (games so far: {client.game.game_count()})")
                if client.game.result(game_id) != IN_PLAY:
                    raise RefereeError(f"game {game_id} is over: it has no clock running")
                state = game_state(client, game_id)
                target, why = state.deadline + 1, f"past the {state.to_move}'s clock in game {game_id}"
            if target <= now:
                raise RefereeError(f"the chain's clock is already {why} "
                                   f"({span(now - target + 1)} ago): nothing to advance")
        block = advance_clock(target)
        click.echo(f"clock moved {span(target - now)} forward, {why}: block {block:,} at {target}")
