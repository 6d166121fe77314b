"""The solver and challenger agents on anvil: whole jobs and disputes, restarts, a flaky RPC.

Every test runs the real agents (``referee.agents``) against the real contracts, driven by
``referee.agents.drive`` (ticks, and the chain clock moved past each deadline when all wait),
and checks the money: who was credited and withdrew what, and the market's accounting.
"""

import random
import shutil
from pathlib import Path

import ape
import pytest

from accounting import assert_accounting
from flaky_proxy import FlakyProxy
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee import commitments as cm
from referee.agents.challenger import Challenger
from referee.agents.client import COMMITTED, FINALIZED, REJECTED, ChainClient
from referee.agents.deployment import deploy
from referee.agents.drive import drive
from referee.agents.journal import Journal
from referee.agents.localchain import fork
from referee.agents.rehearse import rehearse
from referee.agents.solver import Solver
from referee.bonds import bonus
from referee.cheats import MODES
from referee.trace import TraceStore

FEE = 3 * 10**16
SOLVER_BOND = 10**18
WINDOWS = (600, 600, 1800)


class Killed(Exception):
    """Stands for SIGKILL: raised between a transaction being mined and the journal noting it."""


@pytest.fixture(scope="module")
def model():
    return to_integer_model(random_ref_model(random.Random(41), 7, [6, 5, 8, 4]))


@pytest.fixture(scope="module")
def x():
    return int8_tensor(random_input(random.Random(42), 5, 7))


@pytest.fixture(scope="module")
def roles(accounts):
    names = ("requester", "solver", "challenger", "second", "sink")
    return dict(zip(names, accounts[1:6]))


@pytest.fixture(scope="module")
def deployment(deployer, roles, model):
    d = deploy(deployer, sink=str(roles["sink"].address))
    client = ChainClient(d, deployer)
    client.registry.register(*model.registration(), sender=deployer)
    return d


@pytest.fixture
def market(deployment, deployer):
    m = ChainClient(deployment, deployer).market
    yield m
    assert_accounting(m)


@pytest.fixture
def make_agent(deployment, model, tmp_path):
    """``make_agent(cls, account, name, **options)``: an agent with its own journal and store."""
    lines = []

    def make(cls, account, name, **options):
        home = tmp_path / name
        journal = Journal(home / "state.sqlite")
        client = ChainClient(deployment, account, journal, patience=30, log=lines.append)
        agent = cls(client, journal, [model], TraceStore(home / "traces"), name=name, log=lines.append,
                    device="cpu", **options)
        if cls is Solver:
            agent.ensure_stake(SOLVER_BOND)
        return agent

    make.lines = lines
    return make


def post(market, deployment, x, requester) -> int:
    model_id = 1
    market.post(model_id, x.shape[0], cm.packed(x), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    return market.job_count()


def withdrawn(market, account) -> int:
    return sum(log.amount for log in market.CreditWithdrawn.range(0, ape.chain.blocks.height + 1,
                                                                   search_topics={"account": account.address}))


def winner_paid(market, deployment, account, game_ids, winners: int) -> int:
    """What a challenger that won ``game_ids`` (each of a job with ``winners`` winning games) is
    owed: per game its bond, its metered gas (``refund_of``) and the bonus, and the settle gas
    refunded for the games it settled itself (``SettleGasRefunded``)."""
    p = deployment.params
    per_game = market.CHALLENGER_BOND() + bonus(SOLVER_BOND, p["reward_share_bps"], p["dilution_fee_bps"], winners)
    settles = sum(log.refund for log in market.SettleGasRefunded.range(
        0, ape.chain.blocks.height + 1, search_topics={"challenger": account.address}))
    return sum(per_game + market.refund_of(g) for g in game_ids) + settles


def resolved(game, game_id: int):
    return next(iter(game.GameResolved.range(0, ape.chain.blocks.height + 1, search_topics={"game_id": game_id})))


def settled(market, job_id, challenger_withdrew_from):
    return lambda: market.job(job_id).status == REJECTED and all(
        not a.journal.active_games() and market.credit(a.client.address) == 0 for a in challenger_withdrew_from)


# ---------------------------------------------------------------------------
# Honest work is paid
# ---------------------------------------------------------------------------


def test_agents_honest_solver_paid_after_window_succeeds(market, deployment, x, roles, make_agent):
    solver = make_agent(Solver, roles["solver"], "solver")
    challenger = make_agent(Challenger, roles["challenger"], "challenger")
    job = post(market, deployment, x, roles["requester"])
    drive([solver, challenger], lambda: market.job(job).status == FINALIZED and market.credit(roles["solver"]) == 0)
    assert withdrawn(market, roles["solver"]) == FEE
    assert market.locked(roles["solver"]) == 0 and market.stake(roles["solver"]) == SOLVER_BOND
    assert challenger.journal.job(job).note == "checked: the result is right"
    assert market.CHALLENGER_BOND() and not challenger.journal.games_of(job)


# ---------------------------------------------------------------------------
# Every cheat is caught, and the cheater loses its bond
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cheat", sorted(set(MODES) - {"wrong-attention"}))  # an MLP has no attention
def test_agents_cheating_solver_loses_bond_succeeds(market, deployment, x, roles, make_agent, cheat):
    solver = make_agent(Solver, roles["solver"], "solver", cheat=cheat)
    challenger = make_agent(Challenger, roles["challenger"], "challenger")
    job = post(market, deployment, x, roles["requester"])
    drive([solver, challenger], settled(market, job, [challenger]))

    (game_id,) = challenger.journal.games_of(job)
    reason = resolved(solver.client.game, game_id).reason
    assert (reason == "timeout") == (cheat == "stall"), reason
    paid = winner_paid(market, deployment, roles["challenger"], [game_id], winners=1)
    assert withdrawn(market, roles["challenger"]) == paid
    assert market.stake(roles["solver"]) == 0 and market.locked(roles["solver"]) == 0
    assert market.credit(roles["requester"]) == FEE  # the fee is refunded
    assert market.sink_pending() == SOLVER_BOND - (paid - market.CHALLENGER_BOND())


def test_agents_lying_challenger_pays_honest_solver_succeeds(market, deployment, x, roles, make_agent):
    solver = make_agent(Solver, roles["solver"], "solver")
    liar = make_agent(Challenger, roles["challenger"], "liar", cheat="wrong-output")
    job = post(market, deployment, x, roles["requester"])
    drive([solver, liar], lambda: market.job(job).status == FINALIZED and market.credit(roles["solver"]) == 0)
    (game_id,) = liar.journal.games_of(job)
    assert resolved(solver.client.game, game_id).solver_won
    assert withdrawn(market, roles["solver"]) == FEE + market.CHALLENGER_BOND()
    assert withdrawn(market, roles["challenger"]) == 0
    assert market.stake(roles["solver"]) == SOLVER_BOND


def test_agents_two_challengers_one_wrong_result_succeeds(market, deployment, x, roles, make_agent):
    solver = make_agent(Solver, roles["solver"], "solver", cheat="wrong-intermediate")
    first = make_agent(Challenger, roles["challenger"], "first")
    second = make_agent(Challenger, roles["second"], "second")
    job = post(market, deployment, x, roles["requester"])
    drive([solver, first, second], settled(market, job, [first, second]))
    assert len(first.journal.games_of(job)) == len(second.journal.games_of(job)) == 1
    # both play their games out and win: each its bond, gas and the two-winner bonus
    for agent, account in ((first, roles["challenger"]), (second, roles["second"])):
        assert withdrawn(market, account) == winner_paid(market, deployment, account, agent.journal.games_of(job),
                                                         winners=2)
    assert market.stake(roles["solver"]) == 0


# ---------------------------------------------------------------------------
# Killed and restarted: nothing is sent twice, nothing is lost
# ---------------------------------------------------------------------------


def _kill_after(agent, prefix: str) -> None:
    """Make ``agent`` die right after its first mined transaction whose key starts with ``prefix``."""
    done = agent.journal.tx_done

    def tx_done(key, status, gas=0, reason=""):
        if key.startswith(prefix):
            raise Killed(key)
        done(key, status, gas, reason)

    agent.journal.tx_done = tx_done


def _assert_each_sent_once(journal, account, first_nonce: int, killed_at: str) -> None:
    """Every transaction the account sent is one journal key, and none reverted."""
    keys = journal.keys()
    assert any(k.startswith(killed_at) for k in keys)  # journaled before it was sent
    assert [k for k in keys if journal.tx(k).status == "reverted"] == []
    assert account.nonce - first_nonce == len(keys)


@pytest.mark.parametrize("move", ["bisect", "transition", "reveal_row"])
def test_agents_solver_killed_mid_game_still_wins_succeeds(market, deployment, x, roles, make_agent, move,
                                                           tmp_path):
    nonce = roles["solver"].nonce
    solver = make_agent(Solver, roles["solver"], "solver")
    liar = make_agent(Challenger, roles["challenger"], "liar", cheat="wrong-output")
    job = post(market, deployment, x, roles["requester"])
    _kill_after(solver, move)
    with pytest.raises(Killed):
        drive([solver, liar], lambda: False)
    solver.journal.close()
    if move == "transition":  # and the trace store lost too: the job's input is in the journal
        shutil.rmtree(tmp_path / "solver" / "traces")

    restarted = make_agent(Solver, roles["solver"], "solver")  # same journal and trace store
    drive([restarted, liar], lambda: market.job(job).status == FINALIZED and market.credit(roles["solver"]) == 0)
    (game_id,) = liar.journal.games_of(job)
    assert resolved(restarted.client.game, game_id).solver_won
    _assert_each_sent_once(restarted.journal, roles["solver"], nonce, move)
    assert withdrawn(market, roles["solver"]) == FEE + market.CHALLENGER_BOND()


@pytest.mark.parametrize("action", ["challenge", "choose", "step"])
def test_agents_challenger_killed_mid_game_still_wins_succeeds(market, deployment, x, roles, make_agent, action):
    nonce = roles["challenger"].nonce
    solver = make_agent(Solver, roles["solver"], "solver", cheat="wrong-output")
    challenger = make_agent(Challenger, roles["challenger"], "challenger")
    job = post(market, deployment, x, roles["requester"])
    _kill_after(challenger, action)
    with pytest.raises(Killed):
        drive([solver, challenger], lambda: False)
    challenger.journal.close()

    restarted = make_agent(Challenger, roles["challenger"], "challenger")
    drive([solver, restarted], settled(market, job, [restarted]))
    challenges = list(market.JobChallenged.range(0, ape.chain.blocks.height + 1, search_topics={"job_id": job}))
    assert len(challenges) == 1  # the challenge was not sent again after the restart
    _assert_each_sent_once(restarted.journal, roles["challenger"], nonce, action)
    assert withdrawn(market, roles["challenger"]) == winner_paid(
        market, deployment, roles["challenger"], [c.game_id for c in challenges], winners=1)


# ---------------------------------------------------------------------------
# A node that drops connections for a while
# ---------------------------------------------------------------------------


def test_agents_rpc_drops_connections_game_completes_succeeds(chain, deployment, x, roles, make_agent, market):
    proxy = FlakyProxy(int(chain.provider.uri.rsplit(":", 1)[1]))
    try:
        with ape.networks.parse_network_choice(proxy.url):
            solver = make_agent(Solver, roles["solver"], "solver", cheat="wrong-output")
            challenger = make_agent(Challenger, roles["challenger"], "challenger")
            job = post(market, deployment, x, roles["requester"])
            ticks = {"n": 0}

            def done():
                finished = settled(market, job, [challenger])()
                ticks["n"] += 1
                if ticks["n"] in (2, 8):  # cut the node twice during the game, under the agents
                    proxy.drop_for(1.0)
                return finished

            drive([solver, challenger], done)
    finally:
        proxy.close()
    assert proxy.dropped >= 2
    assert any("node unreachable" in line for line in make_agent.lines)
    assert withdrawn(market, roles["challenger"]) == winner_paid(
        market, deployment, roles["challenger"], challenger.journal.games_of(job), winners=1)


# ---------------------------------------------------------------------------
# Fork rehearsal
# ---------------------------------------------------------------------------


def test_agents_rehearse_on_fork_leaves_real_chain_untouched_succeeds(chain, deployment, model, x, roles,
                                                                      make_agent, market, tmp_path: Path):
    solver = make_agent(Solver, roles["solver"], "solver", cheat="wrong-output")
    job = post(market, deployment, x, roles["requester"])
    drive([solver], lambda: market.job(job).status == COMMITTED)
    head, games = chain.blocks.height, solver.client.game.game_count()

    with fork(chain.provider.uri) as url, ape.networks.parse_network_choice(url):
        def build(kind, state):
            journal = Journal(state)
            client = ChainClient(deployment, roles["challenger"], journal)
            cls = Solver if kind == "solver" else Challenger
            return cls(client, journal, [model], TraceStore(tmp_path / "rehearsal-traces"), log=lambda line: None,
                       device="cpu")

        report = rehearse(build, job, log=lambda line: None)
    assert report.role == "challenger" and report.job_status == "rejected"
    assert list(report.games.values()) == ["challenger won (timeout)"]
    assert report.gas["challenge"] > 0 and report.gas["settle"] > 0
    # the real chain: no block, no game, the job still open to challenge
    assert chain.blocks.height == head and solver.client.game.game_count() == games
    assert market.job(job).status == COMMITTED


def test_agents_solver_sigkilled_process_resumes_and_wins_succeeds(chain, market, deployment, model, x, roles,
                                                                 make_agent, tmp_path):
    """The real ``referee solve`` process, SIGKILLed in the middle of a game and started again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from referee.agents.client import IN_PLAY
    from referee.modelfile import save_model

    deployment_file = deployment.save(tmp_path / "deployment.json")
    save_model(model, tmp_path / "model")
    command = [sys.executable, "-m", "referee.cli", "solve", "--network", chain.provider.uri, "--account", "TEST::2",
               "--deployment", str(deployment_file), "--model", str(tmp_path / "model"), "--home", str(tmp_path / "home"),
               "--device", "cpu", "--poll", "0.2", "--stake", "1"]
    nonce = roles["solver"].nonce
    liar = make_agent(Challenger, roles["challenger"], "liar", cheat="wrong-output")
    job = post(market, deployment, x, roles["requester"])
    game = liar.client.game

    def tick_until(condition, seconds=120):
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "the solver process did not answer in time"
            liar.tick()
            time.sleep(0.1)

    def started():
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    solver = started()
    try:
        tick_until(lambda: game.game_count() == 1 and game.games(1).phase >= 4)  # past the transition
        os.killpg(solver.pid, signal.SIGKILL)
        first_run = solver.communicate()[0]
        liar.tick()  # the challenger waits on a dead solver
        solver = started()
        tick_until(lambda: game.result(1) != IN_PLAY and not market.challenge_of(1).open
                   and market.credit(roles["solver"]) == 0)
    finally:
        os.killpg(solver.pid, signal.SIGKILL)
    second_run = solver.communicate()[0]
    assert "game 1: transition" in first_run and "game 1: settled" in second_run, first_run + second_run
    assert resolved(game, 1).solver_won
    assert withdrawn(market, roles["solver"]) == market.CHALLENGER_BOND()  # the liar's bond, settled and paid
    journal = Journal(tmp_path / "home" / f"solver-{str(roles['solver'].address).lower()}" / "state.sqlite")
    _assert_each_sent_once(journal, roles["solver"], nonce, "transition")
    assert market.job(job).status == COMMITTED  # finalized after the window, by the next run


# ---------------------------------------------------------------------------
# Limits and other solvers
# ---------------------------------------------------------------------------


def test_agents_bond_above_max_bond_not_risked_succeeds(market, deployment, x, roles, make_agent):
    cheater = make_agent(Solver, roles["solver"], "cheater", cheat="wrong-output")
    careful = make_agent(Challenger, roles["challenger"], "careful", max_bond=market.CHALLENGER_BOND() - 1)
    frugal = make_agent(Solver, roles["second"], "frugal", max_bond=SOLVER_BOND - 1)
    job = post(market, deployment, x, roles["requester"])
    drive([frugal, cheater, careful], lambda: market.job(job).status == FINALIZED)
    assert "above --max-bond" in frugal.journal.job(job).note
    assert "not challenged" in careful.journal.job(job).note and not careful.journal.games_of(job)
    assert market.job(job).solver == roles["solver"]  # the wrong result stood: nobody risked a bond


def test_agents_lapsed_claim_expired_and_served_succeeds(market, deployment, x, roles, make_agent):
    market.deposit(value=SOLVER_BOND, sender=roles["second"])
    job = post(market, deployment, x, roles["requester"])
    market.claim(job, sender=roles["second"])  # a solver that claims and then never commits
    solver = make_agent(Solver, roles["solver"], "solver")
    drive([solver], lambda: market.job(job).status == FINALIZED and market.credit(roles["solver"]) == 0)
    assert any("expired the other solver's claim" in line for line in make_agent.lines)
    assert market.job(job).solver == roles["solver"]
    assert withdrawn(market, roles["solver"]) == FEE
    assert market.credit(roles["requester"]) == SOLVER_BOND  # the lapsed solver's bond
    assert market.stake(roles["second"]) == 0
