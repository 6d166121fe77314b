"""The agents' Prometheus metrics (referee.agents.metrics), scraped over HTTP on loopback and
parsed with prometheus_client's own text parser."""

import math
import urllib.request

import pytest

pytest.importorskip("prometheus_client", reason="prometheus-client is not installed (requirements.lock)")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from referee.agents.metrics import AgentMetrics  # noqa: E402
from referee.errors import RefereeError  # noqa: E402

ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def scrape(url: str) -> dict:
    """{(name, frozenset(labels)): value} for every sample the endpoint serves."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_served_on_loopback_and_updated_succeeds():
    metrics = AgentMetrics("solver", ACCOUNT)
    server = metrics.start_server(0)
    try:
        assert server.address == "127.0.0.1" and server.port > 0
        labels = {"role": "solver", "account": ACCOUNT.lower()}
        key = lambda name, **extra: (name, frozenset({**labels, **extra}.items()))  # noqa: E731

        first = scrape(server.url)
        assert first[key("referee_games_in_play")] == 0
        assert first[key("referee_least_clock_seconds")] == math.inf  # no game: nothing close to running out

        metrics.update_games([512, 40, 3600], [100, 7])
        metrics.set_bonds_at_risk(3 * 10**17)
        metrics.job_served()
        for method in ("claim", "commit", "bisect", "bisect"):
            metrics.tx_sent(method)
        metrics.tx_reverted("commit")
        metrics.rpc_error("unreachable")
        metrics.rpc_error("unreachable")
        metrics.ticked(1204, at=1_700_000_000)

        now = scrape(server.url)
        assert now[key("referee_games_in_play")] == 3
        assert now[key("referee_least_clock_seconds")] == 40
        assert now[key("referee_opponent_least_clock_seconds")] == 7
        assert now[key("referee_bonds_at_risk_wei")] == 3 * 10**17
        assert now[key("referee_jobs_served_total")] == 1
        assert now[key("referee_transactions_sent_total", method="bisect")] == 2
        assert now[key("referee_transactions_sent_total", method="claim")] == 1
        assert now[key("referee_transactions_reverted_total", method="commit")] == 1
        assert now[key("referee_rpc_errors_total", kind="unreachable")] == 2
        assert now[key("referee_chain_head")] == 1204
        assert now[key("referee_last_tick_timestamp_seconds")] == 1_700_000_000

        metrics.update_games([], [])  # every game over
        assert scrape(server.url)[key("referee_games_in_play")] == 0
    finally:
        server.close()


def test_metrics_two_agents_one_process_kept_apart_succeeds():
    solver, challenger = AgentMetrics("solver", ACCOUNT), AgentMetrics("challenger", ACCOUNT)
    solver.tx_sent("claim")
    assert "referee_transactions_sent_total" in solver.text()
    assert 'method="claim"' not in challenger.text()


def test_metrics_port_in_use_reverts():
    first = AgentMetrics("solver", ACCOUNT).start_server(0)
    try:
        with pytest.raises(RefereeError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            AgentMetrics("challenger", ACCOUNT).start_server(first.port)
    finally:
        first.close()
