"""A requester gets its money back with the shipped tools: ``ape run cancel JOB`` takes back
an open job (its fee becomes credit) and ``ape run withdraw`` sends the credit. Both show the
cost before sending, ask (``--yes``: no), and end a mistake in one ``Error:`` line with nothing
sent: another account's job, a job that does not exist or is no longer open, no credit.
``post_job`` with a fee the balance holds but not with the gas names the shortfall. The
commands run in-process, as tests/test_operator_errors.py runs them."""

import random
from decimal import Decimal

import pytest
from click.testing import CliRunner

from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee.inputs import save_rows
from referee.modelfile import save_model
from test_operator_errors import one_error_line, script

FEE = 2 * 10**16


@pytest.fixture(scope="module")
def world(chain, tmp_path_factory):
    base = tmp_path_factory.mktemp("money-back")
    save_model(to_integer_model(random_ref_model(random.Random(41), 6, [5, 3])), base / "model")
    save_rows(int8_tensor(random_input(random.Random(42), 2, 6)), base / "input.json")
    network = ["--network", chain.provider.uri]
    for name, args in (("deploy", ["--account", "TEST::0", "--out", str(base / "deployment.json")]),
                       ("register_model", ["--account", "TEST::0", str(base / "model")])):
        result = CliRunner().invoke(script(name), [*network, *args, "--deployment", str(base / "deployment.json")]
                                    if name != "deploy" else [*network, *args])
        assert result.exit_code == 0, result.output
    return base


def market_of(world):
    from ape import accounts

    from referee.agents.client import ChainClient
    from referee.agents.deployment import Deployment

    return ChainClient(Deployment.load(world / "deployment.json"), accounts.test_accounts[0]).market


def invoke(chain, world, name: str, *args: str):
    return CliRunner().invoke(script(name), [*args, "--network", chain.provider.uri, "--deployment",
                                             str(world / "deployment.json")])


def post(chain, world, account: str = "TEST::1", fee: str = "0.02"):
    result = invoke(chain, world, "post_job", str(world / "model"), str(world / "input.json"), "--account", account,
                    "--fee", fee, "--yes")
    assert result.exit_code == 0, result.output
    return int(result.output.strip().splitlines()[-1].split()[1].rstrip(":"))


def refused(chain, world, fragment: str, name: str, *args: str) -> str:
    head = chain.blocks.height
    result = invoke(chain, world, name, *args)
    assert result.exit_code == 1, result.output
    assert chain.blocks.height == head  # nothing sent
    return one_error_line(result.output, fragment)


def test_operator_cancel_then_withdraw_returns_the_fee_succeeds(chain, accounts, world):
    market = market_of(world)
    requester = accounts[1]
    refused(chain, world, "has no credit in this market: nothing to withdraw", "withdraw", "--account", "TEST::1",
            "--yes")
    job = post(chain, world)
    refused(chain, world, f"job {job} was posted by {requester.address}, not {accounts[2].address}: only its "
            "requester may cancel it", "cancel", str(job), "--account", "TEST::2", "--yes")
    refused(chain, world, "job 99 does not exist on this chain", "cancel", "99", "--account", "TEST::1", "--yes")
    head = chain.blocks.height
    unasked = invoke(chain, world, "cancel", str(job), "--account", "TEST::1")  # no terminal to answer
    assert unasked.exit_code == 1 and "refund       0.02 ETH, credited in the market" in unasked.output
    assert unasked.output.strip().splitlines()[-1].startswith("Error: nothing sent: ")
    assert chain.blocks.height == head

    result = invoke(chain, world, "cancel", str(job), "--account", "TEST::1", "--yes")
    assert result.exit_code == 0, result.output
    assert f"job {job}: cancelled, 0.02 ETH credited to {requester.address}; credit now 0.02 ETH" in result.output
    assert market.credit(requester) == FEE
    refused(chain, world, f"job {job} is cancelled: only an open job can be cancelled", "cancel", str(job),
            "--account", "TEST::1", "--yes")

    before, start = int(requester.balance), chain.blocks.height
    result = invoke(chain, world, "withdraw", "--account", "TEST::1", "--yes")
    assert result.exit_code == 0, result.output
    assert "withdraw 0.02 ETH of credit to" in result.output and f"withdrew 0.02 ETH to {requester.address}" in result.output
    [withdrawn] = list(market.CreditWithdrawn.range(start, chain.blocks.height + 1))
    assert (withdrawn.account, withdrawn.amount) == (requester.address, FEE)
    assert market.credit(requester) == 0 and FEE - 10**15 < int(requester.balance) - before < FEE  # less the gas
    refused(chain, world, "has no credit in this market", "withdraw", "--account", "TEST::1", "--yes")


def test_operator_cancel_a_claimed_job_says_why_reverts(chain, accounts, world):
    market = market_of(world)
    job = post(chain, world)
    solver = accounts[2]
    market.deposit(value=market.job(job).solver_bond, sender=solver)
    market.claim(job, sender=solver)
    refused(chain, world, f"job {job} is claimed: only an open job can be cancelled (a claimed job reopens if its "
            "solver misses the commit deadline", "cancel", str(job), "--account", "TEST::1", "--yes")


def test_operator_post_job_fee_without_the_gas_names_the_shortfall_reverts(chain, accounts, world):
    balance = int(accounts[4].balance)
    fee = Decimal(balance - 10**9) / 10**18  # a fee the balance holds, with a gwei left for the gas
    line = refused(chain, world, "the fee and the gas need", "post_job", str(world / "model"),
                   str(world / "input.json"), "--account", "TEST::4", "--fee", f"{fee:f}", "--yes")
    assert "short by" in line and "fund the account or lower --fee" in line and "Out of gas" not in line
