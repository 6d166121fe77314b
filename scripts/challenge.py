"""``ape run challenge``: challenge a committed result by hand, after seeing what it risks.

The job is run here exactly (or its trace read from the account's store) and its ``S_N``
compared with the committed one: a right result is never challenged (the bond would be lost).
For a wrong one it shows the bond at risk, what winning pays (the bond back plus the reward
share of the solver's bond), and the gas at the node's current price, then asks (``--yes``
sends without asking). The trace is kept in the account's challenger store, so
``referee watch`` (same ``--home``) plays the game on from the chain, or ``ape run dispute
JOB --move`` moves by hand.

    ape run challenge 2 --model build/demo/digits-model --account TEST::3 \\
        --network http://127.0.0.1:8545 --yes
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand, agent_dir, confirm_cost, eth, gas_price, job_model, job_trace, yes_option
from referee.agents.cli import DEFAULT_HOME, resolve_deployment, user_errors
from referee.agents.client import COMMITTED, JOB_STATUS, ChainClient
from referee.agents.logs import seconds
from referee.bonds import bonus
from referee.errors import RefereeError
from referee.hashing import to_hex


@click.command(cls=OperatorCommand, short_help="Challenge a committed result by hand")
@account_option()
@click.argument("job_id", type=click.IntRange(1))
@click.option("--model", "model_dir", type=click.Path(path_type=Path),
              help="The job's model directory [default: the one the account's watch journal names].")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True,
              help="Where the account's agents keep their journal and traces.")
@click.option("--store", type=click.Path(path_type=Path),
              help="Trace store [default: the account's challenger store under --home].")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
@yes_option
def cli(account, job_id, model_dir, home, store, deployment, yes):
    """Check JOB_ID's committed result here and, if it is wrong, challenge it as --account."""
    with user_errors():
        client = ChainClient(resolve_deployment(deployment), account)
        if not 1 <= job_id <= client.market.job_count():
            raise RefereeError(f"there is no job {job_id} (jobs so far: {client.market.job_count()})")
        job = client.job(job_id)
        if job.status != COMMITTED:
            raise RefereeError(f"job {job_id} is {JOB_STATUS.get(job.status, 'unknown')}: only a committed result "
                               "can be challenged")
        left = job.challenge_deadline - client.now()
        if left < 0:
            raise RefereeError(f"job {job_id}'s challenge window closed {seconds(-left)} ago: its result is final")
        if job.solver == client.address:
            raise RefereeError(f"{client.address} is job {job_id}'s solver: a solver cannot challenge itself")
        home_dir = agent_dir(home, "challenger", client.address)
        model = job_model(client, job_id, model_dir, home_dir / "state.sqlite")
        trace = job_trace(client, job_id, model, store or home_dir / "traces")
        bond = client.challenger_bond
        if trace.trace_root == bytes(job.trace_root):
            raise RefereeError(f"job {job_id}'s result is right (S_N {to_hex(trace.trace_root)[:12]}… here too): a "
                               f"challenge would lose its bond of {eth(bond)}; nothing sent")
        balance, price = int(account.balance), gas_price()
        if balance < bond:
            raise RefereeError(f"{account.address} has {eth(balance)}, less than the challenger bond {eth(bond)}")
        gas = client.market.challenge.estimate_gas_cost(job_id, sender=account, value=bond)
        reward = bonus(job.solver_bond, client.market.REWARD_SHARE_BPS(), client.market.DILUTION_FEE_BPS(), 1)
        confirm_cost([
            f"challenge job {job_id}: S_N here {to_hex(trace.trace_root)[:12]}…, committed "
            f"{to_hex(bytes(job.trace_root))[:12]}… ({seconds(left)} left to challenge)",
            f"  bond         {eth(bond)} at risk: lost if the result proves right, back if it proves wrong",
            f"  if it wins   the bond back, its gas refunded, and up to {eth(reward)} (the bonus of a sole winner, "
            f"out of the solver's {eth(job.solver_bond)} bond; less when other games win too)",
            f"  gas          about {gas:,} at {price / 1e9:.4g} gwei = {eth(gas * price)} now, then one transaction "
            f"per move of the game",
            f"  total now    {eth(bond + gas * price)} of {account.address}'s {eth(balance)}",
        ], yes, "send the challenge")
        receipt = client.send(f"challenge:{job_id}", client.market, "challenge", job_id, value=bond)
        (opened,) = receipt.decode_logs(client.market.JobChallenged)
        click.echo(f"job {job_id}: challenged, game {opened.game_id} opened (gas {receipt.gas_used:,}); "
                   f"play it on with "
                   f"`referee watch` (same --home) or `ape run dispute {job_id} --move`")
