"""The escrow module (contracts/modules/escrow.vy) through its harness (contracts/mocks/escrow_mock.vy):
credits withdrawn whole and once, the sink's share and any ETH forced in released to the sink, and
the obligations (with the stakes module's total) equal to the balance after every test."""

import ape
import pytest
from ape import chain

SINK = "0x000000000000000000000000000000000000dEaD"
ZERO = "0x0000000000000000000000000000000000000000"
AMOUNT = 3 * 10**17 + 11


@pytest.fixture(scope="module")
def escrow(project, deployer):
    return deployer.deploy(project.escrow_mock, SINK)


@pytest.fixture(autouse=True)
def owed(escrow):
    """The harness holds exactly what it owes, after every test."""
    yield
    assert chain.provider.get_balance(escrow.address) == escrow.obligations()


def test_constructor_zero_sink_reverts(project, deployer):
    with ape.reverts("market: zero sink"):
        deployer.deploy(project.escrow_mock, ZERO)


def test_withdraw_whole_credit_once_succeeds(escrow, accounts):
    who = accounts[4]
    escrow.fund_credit(who, value=AMOUNT, sender=accounts[1])
    escrow.fund_credit(who, value=5, sender=accounts[1])
    assert escrow.credit(who) == AMOUNT + 5 == escrow.total_credit()
    before = who.balance
    tx = escrow.withdraw(sender=who)
    assert who.balance == before + AMOUNT + 5 - tx.total_fees_paid
    [log] = tx.decode_logs(escrow.CreditWithdrawn)
    assert (log.account, log.amount) == (who.address, AMOUNT + 5)
    with ape.reverts("market: nothing to withdraw"):
        escrow.withdraw(sender=who)


def test_obligations_include_stakes_succeeds(escrow, accounts):
    escrow.deposit(value=AMOUNT, sender=accounts[2])
    escrow.fund_credit(accounts[4], value=7, sender=accounts[1])
    assert escrow.obligations() == AMOUNT + 7 == escrow.total_stake() + escrow.total_credit()


@pytest.mark.parametrize("forced", [0, 10**15 + 9])
def test_release_to_sink_succeeds(escrow, accounts, forced):
    escrow.fund_sink(value=AMOUNT, sender=accounts[1])
    balance = chain.provider.get_balance(escrow.address)
    chain.provider.set_balance(escrow.address, balance + forced)
    before = chain.provider.get_balance(SINK)
    tx = escrow.release_to_sink(sender=accounts[3])
    [log] = tx.decode_logs(escrow.SinkReleased)
    assert (log.sink, log.amount) == (SINK, AMOUNT + forced)
    assert chain.provider.get_balance(SINK) == before + AMOUNT + forced and escrow.sink_pending() == 0
    with ape.reverts("market: nothing to release"):
        escrow.release_to_sink(sender=accounts[3])


def test_release_to_sink_only_surplus_succeeds(escrow, accounts):
    # ETH forced in alone is released, and no credit is touched
    escrow.fund_credit(accounts[4], value=AMOUNT, sender=accounts[1])
    chain.provider.set_balance(escrow.address, chain.provider.get_balance(escrow.address) + 1)
    escrow.release_to_sink(sender=accounts[3])
    assert escrow.credit(accounts[4]) == AMOUNT


def test_release_to_sink_nothing_reverts(escrow, accounts):
    with ape.reverts("market: nothing to release"):
        escrow.release_to_sink(sender=accounts[3])
