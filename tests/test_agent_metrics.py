"""The agents keep their Prometheus metrics current: scraped over HTTP on loopback mid-game.

A solver and a lying challenger play one game on anvil; each agent has its own
``AgentMetrics`` endpoint (``referee.agents.metrics``, wired into ``Agent.tick``). The endpoint
is scraped while the game is in play and again after it: games in play, the least clock time
left, bonds at risk, transactions sent by method, jobs served.
"""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from flood import FEE, ROWS, SOLVER_BOND, WINDOWS, job_input
from flood import agent, deployment, model  # noqa: F401 (fixtures)
from referee import commitments as cm
from referee.agents.capacity import bisection_rounds
from referee.agents.challenger import Challenger
from referee.agents.client import FINALIZED
from referee.agents.deployment import DEFAULT_PARAMS
from referee.agents.drive import drive
from referee.agents.metrics import AgentMetrics
from referee.agents.solver import Solver


def scrape(url: str) -> dict:
    """Every sample of the endpoint: {(name, frozenset(labels without role/account)): value}."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(s.name, frozenset((k, v) for k, v in s.labels.items() if k not in ("role", "account"))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_agent_metrics_scraped_during_a_game(accounts, deployment, model, agent):
    solver = agent(Solver, accounts[2], "solver")
    liar = agent(Challenger, accounts[3], "liar", cheat="wrong-output")
    solver.ensure_stake(SOLVER_BOND)
    solver.metrics, liar.metrics = AgentMetrics("solver", solver.client.address), AgentMetrics("challenger", "liar")
    servers = [solver.metrics.start_server(0), liar.metrics.start_server(0)]
    try:
        market, game = solver.client.market, solver.client.game
        market.post(1, ROWS, cm.packed(job_input(5)), SOLVER_BOND, *WINDOWS, value=FEE, sender=accounts[1])
        drive([solver, liar], lambda: game.game_count() == 1 and game.games(1).phase >= 3)  # past the bisection
        during = scrape(servers[0].url)
        assert during[("referee_games_in_play", frozenset())] == 1
        assert 0 < during[("referee_least_clock_seconds", frozenset())] <= DEFAULT_PARAMS["clock"]
        assert during[("referee_bonds_at_risk_wei", frozenset())] == SOLVER_BOND
        rounds = bisection_rounds(len(model.ops), DEFAULT_PARAMS["arity"])  # 2: 5 ops at arity 4
        assert during[("referee_transactions_sent_total", frozenset({("method", "bisect")}))] == rounds == 2
        assert during[("referee_transactions_sent_total", frozenset({("method", "commit")}))] == 1
        liar_view = scrape(servers[1].url)
        assert liar_view[("referee_games_in_play", frozenset())] == 1
        assert liar_view[("referee_bonds_at_risk_wei", frozenset())] == DEFAULT_PARAMS["challenger_bond"]

        drive([solver, liar], lambda: market.job(1).status == FINALIZED and market.credit(accounts[2]) == 0)
        after = scrape(servers[0].url)
        assert after[("referee_games_in_play", frozenset())] == 0
        assert after[("referee_bonds_at_risk_wei", frozenset())] == 0
        assert after[("referee_jobs_served_total", frozenset())] == 1
        assert after[("referee_transactions_sent_total", frozenset({("method", "settle")}))] == 1
        assert after[("referee_chain_head", frozenset())] > during[("referee_chain_head", frozenset())]
    finally:
        for server in servers:
            server.close()
