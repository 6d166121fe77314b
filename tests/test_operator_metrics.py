"""The agents' Prometheus endpoint scraped during a dispute game on anvil: games in play and
the clocks' time left come from the chain (``AgentMetrics.observe_games``), for each side."""

import random
import urllib.request

import pytest

pytest.importorskip("prometheus_client", reason="prometheus-client is not installed (requirements.lock)")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from dispute_driver import Party, play  # noqa: E402
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model  # noqa: E402
from referee.cheats import wrong_element  # noqa: E402
from referee.executor import run_model  # noqa: E402
from referee.trace import Trace  # noqa: E402

CLOCK = 600
PICK = 5


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if not s.name.endswith("_created")}


def test_operator_metrics_scraped_during_a_game_succeeds(chain, project, accounts):
    from referee.agents.metrics import AgentMetrics
    from referee.agents.deployment import deploy_game

    rng = random.Random(12)
    model = to_integer_model(random_ref_model(rng, 6, [5, 4, 3]))
    honest = Trace(model.root, run_model(model, int8_tensor(random_input(rng, 4, 6)), "cpu"))
    # an honest solver and a challenger that believes a wrong output element (as in test_dispute_game)
    solver = Party(accounts[1], model, honest)
    challenger = Party(accounts[2], model, wrong_element(honest, 3, row=1, col=1))
    game = deploy_game(accounts[0], 4, CLOCK, project)
    owner = accounts[0].deploy(project.game_owner_mock, game.address)
    owner.open(solver.account, challenger.account, model.ops_root, len(model.ops), honest.state_roots[0],
               solver.trace.trace_root, sender=accounts[0])
    game_id = game.game_count()

    views = {"solver": AgentMetrics("solver", solver.account.address),
             "challenger": AgentMetrics("challenger", challenger.account.address)}
    servers = {role: m.start_server(0) for role, m in views.items()}
    try:
        play(chain, game, game_id, solver, challenger, stop_at=PICK)  # mid-game: the challenger to pick
        chain.mine(timestamp=chain.blocks.head.timestamp + 30)  # the challenger has been thinking 30 s
        now = chain.blocks.head.timestamp
        for role, metrics in views.items():
            metrics.observe_games(game, [game_id], role == "solver", now)
        g, deadline = game.games(game_id), game.deadline(game_id)
        solver_view, challenger_view = scrape(servers["solver"].url), scrape(servers["challenger"].url)
        assert solver_view["referee_games_in_play"] == challenger_view["referee_games_in_play"] == 1
        # the mover's clock runs down to its deadline; the other's is what the contract stored
        assert challenger_view["referee_least_clock_seconds"] == deadline - now <= CLOCK - 30
        assert solver_view["referee_least_clock_seconds"] == g.solver_time <= CLOCK
        assert solver_view["referee_opponent_least_clock_seconds"] == deadline - now

        # the challenger never picks: its clock runs out and the solver claims the game
        chain.mine(timestamp=deadline + 1)
        game.timeout(game_id, sender=solver.account)
        assert game.result(game_id) == 1  # solver won
        for role, metrics in views.items():
            metrics.observe_games(game, [game_id], role == "solver", chain.blocks.head.timestamp)
        assert scrape(servers["solver"].url)["referee_games_in_play"] == 0
        assert scrape(servers["challenger"].url)["referee_least_clock_seconds"] == float("inf")
    finally:
        for server in servers.values():
            server.close()
