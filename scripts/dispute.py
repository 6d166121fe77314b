"""``ape run dispute``: inspect a job's games, and make a move or claim a timeout by hand.

Without ``--move`` or ``--timeout`` it only shows each game: phase, who is to move and what
that move is, both clocks as time left. ``--timeout`` ends every game whose mover's clock has
run out. ``--move`` makes the account's next move in each game where it is to move, computed
from its trace for the job exactly as the agents do. What it needs defaults from the account,
as ``referee solve|watch`` keep it under ``--home``: the trace from
``~/.referee/<side>-<address>/traces`` (``--store``; run here when absent) and the model from
the models that agent's journal names (``--model``).

    ape run dispute 2 --network http://127.0.0.1:8545
    ape run dispute 2 --timeout --account TEST::4 --network http://127.0.0.1:8545
    ape run dispute 2 --move --account TEST::3 --network http://127.0.0.1:8545
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand, agent_dir, job_model, job_trace
from referee.agents import inspect
from referee.agents.cli import DEFAULT_HOME, resolve_deployment, user_errors
from referee.agents.client import IN_PLAY, ChainClient
from referee.agents.player import Move, next_move
from referee.errors import RefereeError


@click.command(cls=OperatorCommand, short_help="Inspect or move in a job's games")
@account_option(prompt=False)
@click.argument("job_id", type=click.IntRange(1))
@click.option("--game", "game_ids", type=int, multiple=True, help="Only this game (repeatable) [default: all].")
@click.option("--timeout", is_flag=True, help="Call timeout on each game whose mover's clock ran out.")
@click.option("--move", is_flag=True, help="Make the account's next move in each game where it is to move.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path),
              help="The job's model directory (--move) [default: the one the account's agent journal names].")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True,
              help="Where the account's agents keep their journal and traces (--move).")
@click.option("--store", type=click.Path(path_type=Path),
              help="Trace store with the account's trace (--move) [default: its agent's, under --home].")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
def cli(account, job_id, game_ids, timeout, move, model_dir, home, store, deployment):
    """Show JOB_ID's games; with --timeout or --move, act in them as --account."""
    with user_errors():
        if (timeout or move) and account is None:
            raise RefereeError("--timeout and --move need --account")
        client = ChainClient(resolve_deployment(deployment), account)
        if not 1 <= job_id <= client.market.job_count():
            raise RefereeError(f"there is no job {job_id} (jobs so far: {client.market.job_count()})")
        games = list(game_ids) or inspect.games_of(client, job_id)
        if not games:
            raise RefereeError(f"job {job_id} has no games")
        model = trace = None
        for game_id in games:
            state = inspect.game_state(client, game_id)
            for line in state.lines(client.now()):
                click.echo(line)
            if state.result != "in play" or not (timeout or move):
                continue
            if timeout and client.now() > state.deadline:
                action = Move(f"timeout:{game_id}", "timeout", (game_id,))
            elif move:
                g = client.game.games(game_id)
                if client.address not in (g.solver, g.challenger):
                    raise RefereeError(f"{client.address} plays no side of game {game_id}")
                as_solver = client.address == g.solver
                if trace is None:
                    home_dir = agent_dir(home, "solver" if as_solver else "challenger", client.address)
                    model = job_model(client, job_id, model_dir, home_dir / "state.sqlite")
                    trace = job_trace(client, job_id, model, store or home_dir / "traces", save=False)
                action = next_move(client, game_id, as_solver, model, trace)
            else:
                action = None
            if action is None:
                click.echo(f"  nothing for {client.address} to do in game {game_id} now")
                continue
            receipt = client.send(action.key, client.game, action.method, *action.args)
            click.echo(f"  sent {action.method} (gas {receipt.gas_used:,}); now: "
                       f"{inspect.game_state(client, game_id).lines(client.now())[0]}")
            if client.read(client.game.result, game_id) != IN_PLAY:
                click.echo("  the game is over: the winner settles it with the market (agents do it)")
