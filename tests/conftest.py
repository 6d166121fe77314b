"""Shared pytest fixtures for the contract tests, run by `ape test` on anvil (ape-foundry).

Keep this file small: one section per contract, session-scoped deployments.
"""

import pytest


# ---------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def deployer(accounts):
    """The first local test account; deploys every fixture contract."""
    return accounts[0]


# ---------------------------------------------------------------------------
# Requantization (contracts/modules/requant.vy via contracts/mocks/requant_mock.vy)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def requant(project, deployer):
    """The requant module's test harness, deployed once per session."""
    return deployer.deploy(project.requant_mock)
