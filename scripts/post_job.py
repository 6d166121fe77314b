"""``ape run post_job``: post a job on a registered model, with its fee escrowed.

The input file holds int8 rows (.json or .npy, as ``referee run`` reads); it is checked
against the model before anything is sent.

    ape run post_job build/demo/digits-model build/demo/input.json --fee 0.01 \\
        --network http://127.0.0.1:8545 --account TEST::1
"""

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option

from referee import commitments as cm
from referee.agents.agent import ether
from referee.agents.cli import ETH, resolve_deployment, user_errors
from referee.agents.client import ChainClient
from referee.errors import RefereeError
from referee.executor import Executor
from referee.hashing import to_hex
from referee.inputs import load_input
from referee.modelfile import load_model

DAY = 86_400


@click.command(cls=ConnectedProviderCommand, short_help="Post a job")
@account_option()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("input_file", type=click.Path(path_type=Path))
@click.option("--fee", type=ETH, default=10**16, show_default="0.01", help="ETH paid to the solver, escrowed now.")
@click.option("--bond", type=ETH, help="Solver bond to ask for (ETH) [default: the market's minimum].")
@click.option("--claim-window", type=click.IntRange(1, 365 * DAY), default=3600, show_default=True,
              help="Seconds for a solver to claim the job.")
@click.option("--commit-window", type=click.IntRange(1, 365 * DAY), default=3600, show_default=True,
              help="Seconds for the solver to commit once it claimed.")
@click.option("--challenge-window", type=click.IntRange(1, 365 * DAY), default=DAY, show_default=True,
              help="Seconds anyone may challenge the committed result.")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
def cli(account, model_dir, input_file, fee, bond, claim_window, commit_window, challenge_window, deployment):
    """Post a job: MODEL_DIR's model on INPUT_FILE's rows; print the job id."""
    with user_errors():
        model = load_model(model_dir)
        x = load_input(input_file)
        Executor(model, "cpu").check_input(x)
        client = ChainClient(resolve_deployment(deployment), account)
        model_id = client.registry.model_id(model.root)
        if model_id == 0:
            raise RefereeError(f"{model.name} is not registered on this chain (ape run register_model)")
        bond = client.market.MIN_SOLVER_BOND() if bond is None else bond
        count = client.market.job_count()
        receipt = client.send(f"post:{count}", client.market, "post", model_id, x.shape[0], cm.packed(x), bond,
                              claim_window, commit_window, challenge_window, value=fee)
        (posted,) = receipt.decode_logs(client.market.JobPosted)
        click.echo(f"job {posted.job_id}: {model.name} on {x.shape[0]} rows, fee {ether(fee)}, bond {ether(bond)}, "
                   f"input root {to_hex(cm.commit_tensor(x).root)[:12]}… (gas {receipt.gas_used:,})")
