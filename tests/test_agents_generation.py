"""The solver agent on a generation job (protocol 5.15), on anvil: it decodes the tokens with the
KV cache (``referee.decode.Decoder``), computes the teacher-forced verifying pass as the job's
trace, claims, commits the tokens with ``commit_generation`` and is paid after the window.
The client's ``post_generation`` posts it; ``register`` and ``model_id`` find the model's true
entry. The dispute game does not step a transformer's kinds yet, so no challenger plays here.
"""

import pytest

from accounting import assert_accounting
from helpers import small_transformer
from referee import decode
from referee.agents.client import FINALIZED, ChainClient, pack_ids
from referee.agents.deployment import deploy
from referee.agents.drive import drive
from referee.agents.journal import Journal
from referee.agents.solver import Solver
from referee.errors import RefereeError
from referee.trace import TraceStore

FEE = 3 * 10**16
SOLVER_BOND = 10**18
WINDOWS = (600, 600, 1800)


@pytest.fixture(scope="module")
def decoder():
    return small_transformer("decoder")


@pytest.fixture(scope="module")
def roles(accounts):
    return dict(zip(("requester", "solver", "sink", "squatter"), accounts[1:5]))


@pytest.fixture(scope="module")
def deployment(deployer, roles, decoder):
    d = deploy(deployer, sink=str(roles["sink"].address))
    client = ChainClient(d, deployer)
    facts = list(decoder.registry_facts())
    facts[2] = 2  # a squatter's entry of the same root and a wrong row step, registered first
    client.registry.register(len(decoder.ops), decoder.input_cols, decoder.output_cols, decoder.ops_root,
                             facts[0], facts[1], 2, 8192, facts[4], facts[5], sender=roles["squatter"])
    assert client.register(decoder).gas_used > 0 and client.register(decoder) is None  # once
    return d


def test_client_finds_true_entry_and_refuses_squatted_one_succeeds(deployment, deployer, decoder):
    client = ChainClient(deployment, deployer)
    assert client.model_id(decoder) == 2
    client.check_entry(2, decoder)
    with pytest.raises(RefereeError, match="row_step is 2"):
        client.check_entry(1, decoder)


def test_solver_agent_generation_job_committed_and_paid_succeeds(deployment, roles, decoder, tmp_path):
    requester = ChainClient(deployment, roles["requester"])
    model_id = requester.model_id(decoder)
    prompt, n = [4, 9, 1], 3
    receipt = requester.post_generation(model_id, prompt, n, FEE, SOLVER_BOND, WINDOWS)
    [posted] = receipt.decode_logs(requester.market.JobPosted)
    job_id = posted.job_id
    journal = Journal(tmp_path / "state.sqlite")
    client = ChainClient(deployment, roles["solver"], journal, patience=30)
    lines = []
    solver = Solver(client, journal, [decoder], TraceStore(tmp_path / "traces"), name="solver", log=lines.append,
                    device="cpu")
    solver.ensure_stake(SOLVER_BOND)
    market = client.market
    drive([solver], lambda: market.job(job_id).status == FINALIZED and market.credit(roles["solver"]) == 0)
    tokens = decode.Decoder(decoder, "cpu").generate(prompt, n)
    [generated] = market.TokensGenerated.range(posted.block_number, client.head() + 1,
                                                search_topics={"job_id": job_id})
    assert bytes(generated.tokens) == pack_ids(tokens)
    x = decode.verified_input(decoder, prompt, tokens)
    from referee import commitments as cm
    assert market.job(job_id).input_root == cm.commit_tensor(x).root
    assert any(f"job {job_id}: decoded {n} tokens" in line for line in lines), lines
    assert any(f"committed {n} tokens" in line for line in lines), lines
    assert_accounting(market)
