"""``ape run cancel JOB``: take back a job nobody has claimed; its fee is credited to you.

Only the job's requester may cancel it, and only while it is OPEN (once claimed, the solver's
work is protected until its commit deadline; ``expire`` then reopens it). The checks are made
before anything is sent, and each refusal is one ``Error:`` line; then the cost (the gas at the
node's current price) and the refund are shown and confirmed (``--yes`` sends without asking).
The fee becomes credit in the market: ``ape run withdraw`` sends it to the account.

    ape run cancel 2 --network http://127.0.0.1:8545 --account TEST::1 --yes
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand, confirm_cost, eth, gas_within_balance, yes_option
from referee.agents.cli import resolve_deployment, user_errors
from referee.agents.client import JOB_STATUS, OPEN, ChainClient
from referee.errors import RefereeError


@click.command(cls=OperatorCommand, short_help="Cancel an unclaimed job")
@account_option()
@click.argument("job_id", type=click.IntRange(1))
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
@yes_option
def cli(account, job_id, deployment, yes):
    """Cancel JOB_ID, an OPEN job the account posted: its fee becomes the account's credit."""
    with user_errors():
        client = ChainClient(resolve_deployment(deployment), account)
        if job_id > client.market.job_count():
            raise RefereeError(f"job {job_id} does not exist on this chain (ape run status lists what there is)")
        job = client.job(job_id)
        if str(job.requester) != str(account.address):
            raise RefereeError(f"job {job_id} was posted by {job.requester}, not {account.address}: only its "
                               "requester may cancel it")
        if job.status != OPEN:
            after = (" (a claimed job reopens if its solver misses the commit deadline: then cancel it)"
                     if JOB_STATUS[job.status] == "claimed" else "")
            raise RefereeError(f"job {job_id} is {JOB_STATUS[job.status]}: only an open job can be cancelled{after}")
        gas, price = gas_within_balance(account, client.market.cancel.estimate_gas_cost(job_id, sender=account))
        confirm_cost([
            f"cancel job {job_id} (open, posted by {account.address})",
            f"  refund       {eth(job.fee)}, credited in the market (ape run withdraw sends it)",
            f"  gas          about {gas:,} at {price / 1e9:.4g} gwei = {eth(gas * price)}",
        ], yes, "cancel the job")
        receipt = client.send(f"cancel:{job_id}", client.market, "cancel", job_id)
        click.echo(f"job {job_id}: cancelled, {eth(job.fee)} credited to {account.address}; "
                   f"credit now {eth(client.credit())} (gas {receipt.gas_used:,}): ape run withdraw sends it")
