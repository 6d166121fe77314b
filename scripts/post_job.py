"""``ape run post_job``: post a job on a registered model, with its fee escrowed.

The input file holds int8 rows (.json or .npy, as ``referee run`` reads; ``referee
quantize-input`` makes one from float rows); it is checked against the model, and the fee, bond
and windows against the market, before anything is sent. Then the cost is shown (the fee, the
gas at the node's current price, the total against the account's balance) and confirmed;
``--yes`` sends without asking.

    ape run post_job build/demo/digits-model build/demo/input.json --fee 0.01 \\
        --network http://127.0.0.1:8545 --account TEST::1 --yes
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand, confirm_cost, eth, gas_price, yes_option
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


@click.command(cls=OperatorCommand, short_help="Post a job")
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
@yes_option
def cli(account, model_dir, input_file, fee, bond, claim_window, commit_window, challenge_window, deployment, yes):
    """Post a job: MODEL_DIR's model on INPUT_FILE's rows; print the job id."""
    with user_errors():
        model = load_model(model_dir)
        x = load_input(input_file)
        Executor(model, "cpu").check_input(x)
        client = ChainClient(resolve_deployment(deployment), account)
        model_id = client.model_id(model)
        if model_id == 0:
            raise RefereeError(f"{model.name} is not registered on this chain (ape run register_model)")
        minimum = client.market.MIN_SOLVER_BOND()
        bond = minimum if bond is None else bond
        windows = {"claim": claim_window, "commit": commit_window, "challenge": challenge_window}
        _check_terms(client.market, fee, bond, minimum, windows, x.shape[0])
        args = (model_id, x.shape[0], cm.packed(x), bond, claim_window, commit_window, challenge_window)
        balance = int(account.balance)
        if balance < fee:
            raise RefereeError(f"{account.address} has {eth(balance)}, less than the fee {eth(fee)}: "
                               "fund the account or lower --fee")
        # estimated with a 1 wei fee: the node caps an estimate's gas at what the balance leaves
        # after the value, so a fee that fits but leaves too little for the gas would fail the
        # estimate itself ("Out of gas ... set the gas limit manually") instead of being named
        gas, price = client.market.post.estimate_gas_cost(*args, sender=account, value=1), gas_price()
        total = fee + gas * price
        if balance < total:
            raise RefereeError(f"{account.address} has {eth(balance)}; the fee and the gas need {eth(total)} "
                               f"(short by {eth(total - balance)}): fund the account or lower --fee")
        confirm_cost([
            f"post a job: {model.name} (model {model_id}) on {x.shape[0]} rows",
            f"  fee          {eth(fee)}, escrowed now (refunded if the job is cancelled or the result rejected)",
            f"  solver bond  {eth(bond)}, asked of the solver (not yours)",
            f"  windows      claim {claim_window:,} s, commit {commit_window:,} s, challenge {challenge_window:,} s",
            f"  gas          about {gas:,} at {price / 1e9:.4g} gwei = {eth(gas * price)}",
            f"  total        {eth(total)} of {account.address}'s {eth(balance)}",
        ], yes, "post the job")
        count = client.market.job_count()
        receipt = client.send(f"post:{count}", client.market, "post", *args, value=fee)
        (posted,) = receipt.decode_logs(client.market.JobPosted)
        click.echo(f"job {posted.job_id}: {model.name} on {x.shape[0]} rows, fee {ether(fee)}, bond {ether(bond)}, "
                   f"input root {to_hex(cm.commit_tensor(x).root)[:12]}… (gas {receipt.gas_used:,})")


def _check_terms(market, fee: int, bond: int, minimum: int, windows: dict, rows: int) -> None:
    """The market's own checks, said in terms of this command's options (the contract's
    revert reasons name its parameters, not the flags)."""
    if fee <= 0:
        raise RefereeError("--fee must be more than 0: the market pays the solver from it")
    if bond < minimum:
        raise RefereeError(f"--bond {ether(bond)} is below this market's minimum solver bond {ether(minimum)}")
    low = _constant(market, "MIN_WINDOW", 1)
    high = _constant(market, "MAX_WINDOW", None) or _constant(market, "WINDOW_LIMIT", 365 * DAY)
    for name, seconds in windows.items():
        if not low <= seconds <= high:
            raise RefereeError(f"--{name}-window {seconds:,} s is outside this market's windows, {low:,} to {high:,} s")
    most = _constant(market, "MAX_ROWS", None)
    if most is not None and rows > most:
        raise RefereeError(f"the input has {rows:,} rows; this market takes at most {most:,} per job")


def _constant(market, name: str, default):
    """A market constant, or ``default`` on a market deployed before it existed (absent from
    the ABI, or from the deployed code: the call reverts)."""
    from ape.exceptions import ContractLogicError

    try:
        return int(getattr(market, name)())
    except (AttributeError, ContractLogicError):
        return default
