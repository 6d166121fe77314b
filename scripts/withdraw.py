"""``ape run withdraw``: send the account its credit in the market.

Credit is what the market owes an account: a cancelled job's fee, a rejected result's refund,
a solver's fee, a challenger's bond and reward (the agents withdraw their own as they go; a
requester uses this). With no credit the command says so in one ``Error:`` line and sends
nothing; otherwise the amount and the gas are shown and confirmed (``--yes`` sends without
asking).

    ape run withdraw --network http://127.0.0.1:8545 --account TEST::1 --yes
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand, confirm_cost, eth, gas_within_balance, yes_option
from referee.agents.cli import resolve_deployment, user_errors
from referee.agents.client import ChainClient
from referee.errors import RefereeError


@click.command(cls=OperatorCommand, short_help="Withdraw the account's credit")
@account_option()
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
@yes_option
def cli(account, deployment, yes):
    """Send the account its whole credit in the market."""
    with user_errors():
        client = ChainClient(resolve_deployment(deployment), account)
        credit = client.credit()
        if credit == 0:
            raise RefereeError(f"{account.address} has no credit in this market: nothing to withdraw")
        gas, price = gas_within_balance(account, client.market.withdraw.estimate_gas_cost(sender=account))
        confirm_cost([
            f"withdraw {eth(credit)} of credit to {account.address}",
            f"  gas          about {gas:,} at {price / 1e9:.4g} gwei = {eth(gas * price)}",
        ], yes, "withdraw the credit")
        receipt = client.send(f"withdraw:{client.head()}", client.market, "withdraw")
        click.echo(f"withdrew {eth(credit)} to {account.address} (gas {receipt.gas_used:,})")
