"""Fixtures of the market tests (docs/protocol.md section 10.2).

Two markets share one registry: ``market`` runs its games on the real DisputeGame (the
end-to-end lifecycles, games won and lost by timeout on the chain's clock), ``stub_market``
on ``game_stub``, which reports outcomes at will (settlement edge cases and revert paths
without playing games). After every test the accounting invariant of both is checked
(tests/accounting.py).
"""

from dataclasses import dataclass

import pytest

from accounting import after_every_transaction, assert_accounting
from market_case import (ARITY, CHALLENGER_BOND, CLOCK, DILUTION_FEE_BPS, I8, IN_COLS, MAX_WINDOW, MIN_SOLVER_BOND,
                         MIN_WINDOW, N_OPS, OPS_ROOT, OUT_COLS, REWARD_SHARE_BPS, SINK)
from referee.agents.deployment import deploy_game

# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Actors:
    requester: object
    solver: object
    solver2: object
    challengers: list
    stranger: object


@pytest.fixture(scope="module")
def who(accounts):
    return Actors(accounts[1], accounts[2], accounts[3], [accounts[4], accounts[5], accounts[6], accounts[8]],
                  accounts[7])


@pytest.fixture(scope="module")
def registry(project, deployer):
    return deployer.deploy(project.ModelRegistry)


@pytest.fixture(scope="module")
def model_id(registry, deployer):
    registry.register(N_OPS, IN_COLS, OUT_COLS, OPS_ROOT, *I8, sender=deployer)
    return registry.model_count()


@pytest.fixture(scope="module")
def game(project, deployer):
    return deploy_game(deployer, ARITY, CLOCK, project)


@pytest.fixture(scope="module")
def market(project, deployer, registry, game):
    return deployer.deploy(project.JobMarket, registry, game, CHALLENGER_BOND, MIN_SOLVER_BOND, REWARD_SHARE_BPS,
                           DILUTION_FEE_BPS, SINK, MIN_WINDOW, MAX_WINDOW)


@pytest.fixture(scope="module")
def stub(project, deployer):
    return deployer.deploy(project.game_stub)


@pytest.fixture(scope="module")
def stub_market(project, deployer, registry, stub):
    return deployer.deploy(project.JobMarket, registry, stub, CHALLENGER_BOND, MIN_SOLVER_BOND, REWARD_SHARE_BPS,
                           DILUTION_FEE_BPS, SINK, MIN_WINDOW, MAX_WINDOW)


@pytest.fixture(autouse=True)
def _accounting_holds(market, stub_market):
    """The accounting invariant holds after every transaction of every test, whatever it did."""
    with after_every_transaction(market, stub_market):
        yield
    assert_accounting(market)
    assert_accounting(stub_market)
