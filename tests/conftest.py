"""Shared pytest fixtures for the contract tests, run by `ape test` on anvil (ape-foundry).

Keep this file small: one section per contract; deployments shared per session or module.
"""

import ape
import pytest

from referee.agents.localchain import lean_anvil


# ---------------------------------------------------------------------------
# Reverts
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _no_revert_traces():
    """Reverted transactions without ape's source tracebacks.

    On every revert ape replays the transaction with a full struct-log trace (anvil's
    ``--steps-tracing``, memory included) to map it to source lines and ``# dev:`` comments,
    which this project does not use (shared/style.md). The market's 64 KiB byte buffers put
    its memory at a few hundred KiB, so one such trace is gigabytes and ~30 s. The revert
    reason itself comes from the replayed call and is unaffected.

    ape-foundry also prints the call trace of every reverted transaction (``Trace.show``,
    about 0.5 s each, to a log nobody reads); that is turned off too.
    """
    import ape_ethereum.trace
    import ape_vyper.compiler.api

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ape.exceptions, "_get_ape_traceback_from_tx", lambda txn: None)
        patch.setattr(ape_vyper.compiler.api, "enrich_error", lambda err: err)
        patch.setattr(ape_ethereum.trace.Trace, "show", lambda self, *args, **kwargs: None)
        yield


# ---------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def deployer(accounts):
    """The first local test account; deploys every fixture contract."""
    return accounts[0]


# ---------------------------------------------------------------------------
# The stateless modules' test harnesses (contracts/mocks/*_mock.vy), deployed once per module
# ---------------------------------------------------------------------------


def _harness(contract_name: str):
    # module scope: a session fixture first asked for mid-session makes ape rebase its snapshots
    @pytest.fixture(scope="module")
    def deployed(project, deployer):
        return deployer.deploy(getattr(project, contract_name))
    return deployed


requant = _harness("requant_mock")
merkle_mock = _harness("merkle_mock")
tensor_mock = _harness("tensor_mock")
int8_mock = _harness("int8_mock")
linear_mock = _harness("linear_mock")



# ---------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------

# anvil without --steps-tracing (nothing here reads step traces: revert reasons come from the
# error data, and keeping them costs memory on every transaction) and without states on disk
# (gigabytes a session, left behind when the node is killed): referee.agents.localchain.
lean_anvil()


# ---------------------------------------------------------------------------
# What the randomized games and the money checks did (tests/test_random_games.py)
# ---------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter):
    from accounting import CHECKS
    from game_bots import STATS

    if STATS.jobs or STATS.figures:
        terminalreporter.section("adversarial suites (docs/security.md)")
        for line in STATS.report().splitlines():
            terminalreporter.write_line(line)
    if CHECKS["accounting"]:
        terminalreporter.write_line(f"money invariant (tests/accounting.py) checked {CHECKS['accounting']} times")


@pytest.fixture(scope="module", params=["decoder", "encoder"])
def token_model(request, tmp_path_factory):
    """A saved one-block transformer, decoder then encoder: (its directory, the model)."""
    from helpers import small_transformer
    from referee.modelfile import save_model

    model = small_transformer(request.param)
    return save_model(model, tmp_path_factory.mktemp(request.param) / "model"), model
