"""Prometheus metrics of one agent, for dashboards and alerts (Grafana, Alertmanager).

Operators of dispute games watch them the way Optimism's ``dispute-mon`` exports them: how
many games are in play, how close the nearest one is to losing on time, what is at stake.
``AgentMetrics`` holds one agent's figures in its own registry (several agents may share a
process, as in tests) and ``start_server`` serves them as Prometheus text on
``http://127.0.0.1:PORT/metrics`` (loopback only: put a scraper or a proxy next to it).

Every metric carries ``role`` and ``account`` labels:

- ``referee_games_in_play`` (gauge): games the agent plays that are not over;
- ``referee_least_clock_seconds`` (gauge): the least time left on the agent's own clock across
  its games in play (``+Inf`` with none): alert when it runs low;
- ``referee_opponent_least_clock_seconds`` (gauge): the same for the opponents' clocks (a
  timeout to claim when it reaches 0);
- ``referee_bonds_at_risk_wei`` (gauge): the agent's bonds locked in jobs and games not yet over;
- ``referee_jobs_served_total`` (counter): jobs finished, paid (solver) or checked (challenger);
- ``referee_transactions_sent_total`` / ``referee_transactions_reverted_total`` (counters, by
  contract ``method``; each move of a multicall counts as one, and a sub-call skipped on chain
  as reverted);
- ``referee_transactions_in_flight`` (gauge): transactions submitted and not yet mined;
  ``referee_transactions_lagging`` (gauge): those in flight for more than the transaction
  manager's ``lagging_blocks`` (``txmgr.Knobs``): alert when it stays above 0;
- ``referee_rpc_errors_total`` (counter, by ``kind``: ``unreachable``, ``other``);
- ``referee_backlog_actions`` (gauge): actions the agent decided but has not sent for more than
  a block (its sending falls behind its games: alert when it stays above 0);
- ``referee_games_lost_total``, ``referee_bonds_slashed_total`` (counters): games the agent lost,
  and solver bonds it lost (slashed on a rejected result, or taken by an expired claim);
  ``referee_wei_lost_total`` (counter): the wei those losses cost it (a challenger's bond per
  game lost, a solver's bond per slash); alert on any increase;
- ``referee_low_clock_alerts_total`` (counter): games in which the agent had to move with less
  than its low-clock threshold left (a quarter of the clock, or 3 blocks);
- ``referee_last_tick_timestamp_seconds`` (gauge): unix time of the agent's last pass over the
  chain, a stale value is a stuck agent; ``referee_chain_head`` (gauge): the block it read to.

``prometheus_client`` is imported when the first ``AgentMetrics`` is made, so the rest of the
package works without it.
"""

import math
import time
from collections.abc import Iterable

from .client import IN_PLAY
from .player import SOLVER_PHASES

DEFAULT_ADDRESS = "127.0.0.1"


class AgentMetrics:
    """One agent's gauges and counters; every update method is cheap enough to call each tick."""

    def __init__(self, role: str, account: str, registry=None):
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = registry if registry is not None else CollectorRegistry()
        self.labels = {"role": role, "account": str(account).lower()}
        names = tuple(self.labels)

        def gauge(name, doc):
            return Gauge(name, doc, names, registry=self.registry).labels(**self.labels)

        def counter(name, doc, extra=()):
            metric = Counter(name, doc, names + extra, registry=self.registry)
            return metric if extra else metric.labels(**self.labels)

        self._games = gauge("referee_games_in_play", "Games the agent plays that are not over.")
        self._least_clock = gauge("referee_least_clock_seconds",
                                  "Least time left on the agent's own clock across its games in play.")
        self._opponent_clock = gauge("referee_opponent_least_clock_seconds",
                                     "Least time left on an opponent's clock across the agent's games in play.")
        self._bonds = gauge("referee_bonds_at_risk_wei", "The agent's bonds locked in jobs and games not yet over.")
        self._served = counter("referee_jobs_served", "Jobs finished: paid (solver) or checked (challenger).")
        self._sent = counter("referee_transactions_sent", "Calls sent (each move of a multicall counts), by method.",
                             ("method",))
        self._reverted = counter("referee_transactions_reverted", "Transactions reverted, by contract method.",
                                 ("method",))
        self._in_flight = gauge("referee_transactions_in_flight", "Transactions submitted and not yet mined.")
        self._lagging = gauge("referee_transactions_lagging",
                              "Transactions in flight for more than the transaction manager's lagging_blocks.")
        self._rpc = counter("referee_rpc_errors", "Failed calls to the node, by kind.", ("kind",))
        self._games_lost = counter("referee_games_lost", "Games the agent lost.")
        self._slashed = counter("referee_bonds_slashed", "Solver bonds the agent lost (rejected or expired).")
        self._wei_lost = counter("referee_wei_lost", "Wei the agent's lost games and slashed bonds cost it.")
        self._low_clock = counter("referee_low_clock_alerts",
                                  "Games in which the agent's clock fell below its low-clock threshold.")
        self._tick = gauge("referee_last_tick_timestamp_seconds", "Unix time of the agent's last pass over the chain.")
        self._head = gauge("referee_chain_head", "The block the agent's last pass read up to.")
        self._backlog = gauge("referee_backlog_actions", "Actions decided but not sent for more than a block.")
        self.update_games([], [])

    # -- updates -------------------------------------------------------------------------

    def update_games(self, own_clocks: Iterable[int], opponent_clocks: Iterable[int] = ()) -> None:
        """The games in play now: ``own_clocks`` holds, for each, the seconds left on the
        agent's own clock; ``opponent_clocks`` the opponent's (any order, any subset)."""
        own = [int(s) for s in own_clocks]
        other = [int(s) for s in opponent_clocks]
        self._games.set(len(own))
        self._least_clock.set(min(own) if own else math.inf)
        self._opponent_clock.set(min(other) if other else math.inf)

    def observe_games(self, game, game_ids, as_solver, now: int) -> None:
        """``update_games`` from the chain: ``game`` is the DisputeGame contract, ``as_solver``
        says for each game id (a dict) or for all (a bool) whether the agent is its solver;
        games no longer in play are skipped. One call per tick keeps the gauges current."""
        own, other = [], []
        for game_id in game_ids:
            if game.result(game_id) != IN_PLAY:
                continue
            solver_side = as_solver[game_id] if isinstance(as_solver, dict) else as_solver
            mine, theirs = clocks_left(game.games(game_id), game.deadline(game_id), now, solver_side)
            own.append(mine)
            other.append(theirs)
        self.update_games(own, other)

    def set_backlog(self, actions: int) -> None:
        self._backlog.set(int(actions))

    def set_bonds_at_risk(self, wei: int) -> None:
        self._bonds.set(int(wei))

    def job_served(self, count: int = 1) -> None:
        self._served.inc(count)

    def tx_sent(self, method: str) -> None:
        self._sent.labels(**self.labels, method=method).inc()

    def tx_reverted(self, method: str) -> None:
        self._reverted.labels(**self.labels, method=method).inc()

    def update_transactions(self, in_flight: int, lagging: int) -> None:
        """The transactions in flight now, and how many of them for too long (``txmgr``)."""
        self._in_flight.set(int(in_flight))
        self._lagging.set(int(lagging))

    def rpc_error(self, kind: str = "other") -> None:
        self._rpc.labels(**self.labels, kind=kind).inc()

    def lost(self, wei: int, game: bool = False, slashed: bool = False) -> None:
        """A loss of ``wei``: a game lost (``game``) and/or a solver bond slashed (``slashed``)."""
        if game:
            self._games_lost.inc()
        if slashed:
            self._slashed.inc()
        self._wei_lost.inc(int(wei))

    def low_clock(self) -> None:
        self._low_clock.inc()

    def ticked(self, head: int, at: float | None = None) -> None:
        """A pass over the chain finished, having read up to block ``head``."""
        self._head.set(int(head))
        self._tick.set(time.time() if at is None else at)

    # -- serving -------------------------------------------------------------------------

    def text(self) -> str:
        """The metrics in Prometheus' text format (what the endpoint serves)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def start_server(self, port: int, address: str = DEFAULT_ADDRESS) -> "MetricsServer":
        """Serve ``/metrics`` on ``address:port`` from a daemon thread (port 0: any free one)."""
        from prometheus_client import start_http_server

        try:
            server, thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            from ..errors import RefereeError

            raise RefereeError(f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}") from None
        return MetricsServer(server, thread)


def clocks_left(game, deadline: int, now: int, as_solver: bool) -> tuple[int, int]:
    """(own, opponent's) seconds left in one game in play. The contract stores each side's
    seconds left as of the last move (``solver_time``, ``challenger_time``); the mover's clock
    has run since, down to its ``deadline``."""
    solver_moves = game.phase in SOLVER_PHASES
    solver_left = deadline - now if solver_moves else game.solver_time
    challenger_left = game.challenger_time if solver_moves else deadline - now
    return (solver_left, challenger_left) if as_solver else (challenger_left, solver_left)


class MetricsServer:
    """A running metrics endpoint; ``port`` is the one bound, ``close()`` stops it."""

    def __init__(self, server, thread):
        self._server = server
        self._thread = thread
        self.address, self.port = server.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
