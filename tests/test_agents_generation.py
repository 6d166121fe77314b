"""The solver agent on a generation job (protocol 5.15), on anvil: it decodes the tokens with the
KV cache (``referee.decode.Decoder``), computes the teacher-forced verifying pass as the job's
trace, claims, commits the tokens with ``commit_generation`` and is paid after the window.
The client's ``post_generation`` posts it; ``register`` and ``model_id`` find the model's true
entry. The challenger agent checks it on the verified input (the prompt and the committed
tokens), agrees with an honest solver, and wins the game against a solver that changed the
first token (the game ends at the head's argmax) or one value of an attention op (it ends at
that softmax).
"""

import pytest

from accounting import assert_accounting
from helpers import small_transformer
from referee import decode
from referee.agents.challenger import Challenger
from referee.agents.client import FINALIZED, REJECTED, ChainClient, pack_ids
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


def _agent(cls, deployment, account, decoder, tmp_path, name, lines, cheat=None):
    journal = Journal(tmp_path / f"{name}.sqlite")
    client = ChainClient(deployment, account, journal, patience=30)
    return cls(client, journal, [decoder], TraceStore(tmp_path / f"{name}-traces"), name=name,
               log=lambda line: lines.append(f"{name}: {line}"), device="cpu", cheat=cheat)


def _generation_job(deployment, roles, decoder, prompt, n) -> int:
    requester = ChainClient(deployment, roles["requester"])
    receipt = requester.post_generation(requester.model_id(decoder), prompt, n, FEE, SOLVER_BOND, WINDOWS)
    [posted] = receipt.decode_logs(requester.market.JobPosted)
    return posted.job_id


def test_challenger_agrees_with_an_honest_generation_succeeds(deployment, roles, accounts, decoder, tmp_path):
    lines = []
    solver = _agent(Solver, deployment, roles["solver"], decoder, tmp_path, "solver", lines)
    challenger = _agent(Challenger, deployment, accounts[6], decoder, tmp_path, "challenger", lines)
    solver.ensure_stake(SOLVER_BOND)
    job_id = _generation_job(deployment, roles, decoder, [7, 3], 4)
    market = solver.client.market
    drive([solver, challenger], lambda: market.job(job_id).status == FINALIZED and market.credit(roles["solver"]) == 0)
    assert any(f"challenger: job {job_id}: checked: the result is right" in line for line in lines), lines
    assert market.job(job_id).open_games == 0
    assert_accounting(market)


@pytest.mark.parametrize("cheat, kind", [("wrong-token", "argmax"), ("wrong-attention", "softmax")])
def test_challenger_catches_a_cheating_generation_succeeds(deployment, roles, accounts, decoder, tmp_path, cheat, kind):
    from referee.model import kind_name

    lines = []
    solver = _agent(Solver, deployment, roles["solver"], decoder, tmp_path, "cheater", lines, cheat=cheat)
    challenger = _agent(Challenger, deployment, accounts[6], decoder, tmp_path, "challenger", lines)
    solver.ensure_stake(SOLVER_BOND)
    prompt, n = [5, 2, 8], 3
    job_id = _generation_job(deployment, roles, decoder, prompt, n)
    market, game = solver.client.market, solver.client.game
    drive([solver, challenger], lambda: market.job(job_id).status == REJECTED
          and not challenger.journal.active_games() and market.credit(accounts[6]) == 0)
    (game_id,) = challenger.journal.games_of(job_id)
    g = game.games(game_id)
    assert game.result(game_id) == 2 and kind_name(decoder.ops[g.hi - 1]) == kind
    honest = decode.Decoder(decoder, "cpu").generate(prompt, n)
    [generated] = market.TokensGenerated.range(0, solver.client.head() + 1, search_topics={"job_id": job_id})
    committed = [int.from_bytes(bytes(generated.tokens)[i:i + 4], "big") for i in range(0, 4 * n, 4)]
    assert (committed != honest) == (cheat == "wrong-token")
    assert_accounting(market)
