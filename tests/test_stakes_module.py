"""The stakes module (contracts/modules/stakes.vy) through its harness (contracts/mocks/stakes_mock.vy):
deposits, withdrawals of free stake, and the lock, unlock and slash the market applies, each
bound tested at its edge, the harness's balance always equal to ``total_stake``."""

import ape
import pytest

DEPOSIT = 10**18 + 7
BOND = 4 * 10**17 + 3


@pytest.fixture(scope="module")
def stakes(project, deployer):
    return deployer.deploy(project.stakes_mock)


@pytest.fixture(scope="module")
def solver(accounts):
    return accounts[2]


@pytest.fixture(autouse=True)
def balanced(stakes):
    """The harness holds exactly the stakes, after every test."""
    yield
    assert stakes.balance == stakes.total_stake()


def test_deposit_succeeds(stakes, solver):
    tx = stakes.deposit(value=DEPOSIT, sender=solver)
    stakes.deposit(value=5, sender=solver)
    assert stakes.stake(solver) == DEPOSIT + 5 == stakes.total_stake()
    [log] = tx.decode_logs(stakes.StakeDeposited)
    assert (log.solver, log.amount, log.stake) == (solver.address, DEPOSIT, DEPOSIT)


def test_deposit_zero_reverts(stakes, solver):
    with ape.reverts("market: zero deposit"):
        stakes.deposit(value=0, sender=solver)


def test_withdraw_stake_all_free_succeeds(stakes, solver):
    stakes.deposit(value=DEPOSIT, sender=solver)
    stakes.lock(solver, BOND, sender=solver)
    free = DEPOSIT - BOND
    assert stakes.free(solver) == free
    with ape.reverts("market: insufficient free stake"):
        stakes.withdraw_stake(free + 1, sender=solver)
    before = solver.balance
    tx = stakes.withdraw_stake(free, sender=solver)
    assert solver.balance == before + free - tx.total_fees_paid
    [log] = tx.decode_logs(stakes.StakeWithdrawn)
    assert (log.amount, log.stake) == (free, BOND)
    assert stakes.stake(solver) == BOND == stakes.locked(solver)


def test_withdraw_stake_zero_reverts(stakes, solver):
    with ape.reverts("market: zero amount"):
        stakes.withdraw_stake(0, sender=solver)


def test_lock_at_free_stake_edge(stakes, solver):
    stakes.deposit(value=DEPOSIT, sender=solver)
    with ape.reverts("market: insufficient free stake"):
        stakes.lock(solver, DEPOSIT + 1, sender=solver)
    stakes.lock(solver, DEPOSIT - BOND, sender=solver)
    with ape.reverts("market: insufficient free stake"):
        stakes.lock(solver, BOND + 1, sender=solver)
    stakes.lock(solver, BOND, sender=solver)
    assert stakes.locked(solver) == DEPOSIT and stakes.free(solver) == 0


def test_unlock_frees_the_bond_succeeds(stakes, solver):
    stakes.deposit(value=DEPOSIT, sender=solver)
    stakes.lock(solver, BOND, sender=solver)
    stakes.unlock(solver, BOND, sender=solver)
    assert stakes.locked(solver) == 0 and stakes.stake(solver) == DEPOSIT
    stakes.withdraw_stake(DEPOSIT, sender=solver)


def test_slash_takes_stake_and_lock_succeeds(stakes, solver, accounts):
    stakes.deposit(value=DEPOSIT, sender=solver)
    stakes.lock(solver, BOND, sender=solver)
    taker = accounts[3]
    before = taker.balance
    tx = stakes.slash(solver, BOND, sender=taker)
    assert taker.balance == before + BOND - tx.total_fees_paid
    assert stakes.stake(solver) == DEPOSIT - BOND == stakes.total_stake()
    assert stakes.locked(solver) == 0 and stakes.free(solver) == DEPOSIT - BOND


def test_slash_more_than_locked_reverts(stakes, solver):
    stakes.deposit(value=DEPOSIT, sender=solver)
    stakes.lock(solver, BOND, sender=solver)
    with ape.reverts():  # an underflow: the market slashes only locked bonds
        stakes.slash(solver, BOND + 1, sender=solver)
