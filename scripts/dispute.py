"""``ape run dispute``: inspect a job's games, and make a move or claim a timeout by hand.

Without ``--move`` or ``--timeout`` it only shows each game: phase, who is to move, clocks.
``--timeout`` ends every game whose mover's clock has run out. ``--move`` makes the
account's next move in each game where it is to move, computed from its trace for the job
(read from ``--store``, or run here on ``--model`` when the store has none), exactly as the
agents do.

    ape run dispute 2 --network http://127.0.0.1:8545
    ape run dispute 2 --timeout --account TEST::4 --network http://127.0.0.1:8545
    ape run dispute 2 --move --model build/demo/digits-model --account TEST::4 --network ...
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand
from referee.agents import inspect
from referee.agents.cli import resolve_deployment, user_errors
from referee.agents.client import IN_PLAY, ChainClient
from referee.agents.player import Move, next_move
from referee.errors import RefereeError
from referee.trace import TraceStore


def _trace(client, job_id, model_dir, store):
    """The account's trace for the job: from its store, or run here on the model."""
    from referee import commitments as cm
    from referee.agents.agent import job_rows
    from referee.executor import Executor
    from referee.modelfile import load_model
    from referee.trace import Trace

    if model_dir is None:
        raise RefereeError("--move needs --model, the job's model directory")
    model = load_model(model_dir)
    x = job_rows(client.posted_input(job_id), client.job(job_id).rows, model.input_cols)
    key = (model.root, cm.commit_tensor(x).root)
    if store is not None and key in TraceStore(store):
        return model, TraceStore(store).load(*key)
    click.echo("no stored trace: running the model here")
    return model, Trace(model.root, Executor(model, "auto").run(x))


@click.command(cls=OperatorCommand, short_help="Inspect or move in a job's games")
@account_option(prompt=False)
@click.argument("job_id", type=click.IntRange(1))
@click.option("--game", "game_ids", type=int, multiple=True, help="Only this game (repeatable) [default: all].")
@click.option("--timeout", is_flag=True, help="Call timeout on each game whose mover's clock ran out.")
@click.option("--move", is_flag=True, help="Make the account's next move in each game where it is to move.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="The job's model directory (--move).")
@click.option("--store", type=click.Path(path_type=Path), help="Trace store with the account's trace (--move).")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
def cli(account, job_id, game_ids, timeout, move, model_dir, store, deployment):
    """Show JOB_ID's games; with --timeout or --move, act in them as --account."""
    with user_errors():
        if (timeout or move) and account is None:
            raise RefereeError("--timeout and --move need --account")
        client = ChainClient(resolve_deployment(deployment), account)
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
                if trace is None:
                    model, trace = _trace(client, job_id, model_dir, store)
                action = next_move(client, game_id, client.address == g.solver, model, trace)
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
