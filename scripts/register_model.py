"""``ape run register_model``: register a model's commitments (its ops root and shape) and the
facts the market sizes its jobs by (dtypes and row rule, ``IntegerModel.registry_facts``).

The model directory is loaded and verified first (``referee quantize`` writes one); a model
already registered is reported with its id, not registered twice.

    ape run register_model build/demo/digits-model --network http://127.0.0.1:8545 --account TEST::0
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand
from referee.agents.cli import resolve_deployment, user_errors
from referee.agents.client import ChainClient
from referee.hashing import to_hex
from referee.modelfile import load_model


@click.command(cls=OperatorCommand, short_help="Register a model")
@account_option()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
def cli(account, model_dir, deployment):
    """Register MODEL_DIR's model in the registry and print its id."""
    with user_errors():
        model = load_model(model_dir)
        client = ChainClient(resolve_deployment(deployment), account)
        model_id = client.model_id(model)
        if model_id:
            click.echo(f"{model.name} is already model {model_id} (root {to_hex(model.root)})")
            return
        receipt = client.send(f"register:{to_hex(model.entry)}", client.registry, "register", *model.registration())
        click.echo(f"registered {model.name} as model {client.model_id(model)} "
                   f"(root {to_hex(model.root)}, gas {receipt.gas_used:,})")
