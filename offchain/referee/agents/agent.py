"""What the solver and the challenger share: the watch loop, traces, games and payouts.

An agent is a loop of ``tick``s. Each tick collects the receipts of what it sent, reads the
market's and its games' logs from where the last one stopped (the cursor lives in the journal,
and so do the logs a later move needs: no read scans the chain's history), then decides
what to do on every job and game it follows, from their state on chain: a move when it is its
turn, ``timeout`` when the opponent's clock has run out, ``settle`` for a game it won,
``withdraw`` when it has credit. The actions of all its games are then sent together, most
urgent clock first (``_flush``, ``sending.py``): the moves and timeouts of many games in each
``DisputeGame.multicall`` transaction, packed by a table of gas per kind of move
(``batching.py``), the market calls one transaction each, all pipelined (no transaction waits
for another's receipt) and within the agent's share of a block's gas: with K games in play every
move still goes out in the next block (docs/agents.md). What does not fit waits for the next
block, and the loop ticks as soon as it sees one. The agent measures its own sending (send
rate, tick length) into its capacity, and warns when decided actions wait for more than a block
(a backlog) or when it plays more games than its capacity (``capacity_watch.py``).
Because each action is decided from the chain and sent once per key, an agent killed at any
moment and started again with the same journal and trace store picks up every job and game
where they stand.

Traces are computed once per job (CUDA when present), with the agent's cheat applied, and
kept in the trace store before anything depends on them: a restarted agent plays from the
same trace it committed or challenged with. A new job's trace is computed by a worker thread
(``trace_ready``), off the tick: its game moves go out while the model runs.
"""

import time
from collections import deque
from collections.abc import Callable

from .. import cheats
from ..errors import RefereeError
from ..hashing import to_hex
from ..model import IntegerModel
from ..trace import Trace, TraceStore
from . import batching
from . import capacity as cap
from .capacity_watch import CapacityLines, CapacityWatch
from .client import (CHALLENGER_WON, CLOSED, IN_PLAY, RECORDED_GAME_EVENTS, RESULT_OF_PHASE, SOLVER_WON, ChainClient,
                     ChainUnavailable)
from .journal import DONE, MOVE_GAS_WINDOW, JobRow, Journal
from .logs import (Heartbeat, WaitNotes, low_clock_line, low_clock_threshold, resuming_job_line, resuming_line,
                   stopped_game_line)
from .player import PHASE_NAMES, SOLVER_PHASES, deadline_of, next_move
from .reset import ChainReset, ResetWatch
from .sending import GAME_CALLS, NO_DEADLINE, Action, Sending  # noqa: F401 - NO_DEADLINE, Action: importable here
from .terms import Limits, ether
from .traces import Traces, job_rows  # noqa: F401 - job_rows: the scripts' import

LOG_CHUNK = 2000  # blocks per log query


class Agent(CapacityWatch, Sending):
    """Base of ``Solver`` and ``Challenger``; subclasses read their logs and act on jobs."""

    role = "agent"
    is_solver = False

    def __init__(self, client: ChainClient, journal: Journal, models: list[IntegerModel], store: TraceStore, *,
                 cheat: str | None = None, device: str = "auto", name: str | None = None,
                 max_bond: int | None = None, min_fee: int | None = None, max_window: int | None = None,
                 block_time: float | None = None, confirmations: int = 0, log: Callable[[str], None] = print):
        self.client = client
        defaults = Limits()
        self.limits = Limits(max_bond=defaults.max_bond if max_bond is None else max_bond, min_fee=min_fee,
                             max_window=defaults.max_window if max_window is None else max_window)
        self.journal = journal
        self.store = store
        self.cheat = cheat
        self.device = device
        self.name = name or self.role
        self.confirmations = confirmations  # logs are read this many blocks behind the head
        self._log = log
        # the deployment block's hash tells a restarted local chain (same addresses) from the old one
        journal.bind(chain_id=client.deployment.chain_id, market=client.deployment.market,
                     deployed_in=client.block_hash(client.deployment.block), account=client.address, role=self.role)
        self.models: dict[int, IntegerModel] = {}
        for model in models:
            cheats.check_mode(cheat, model)
            # the entry whose key covers every fact the model file gives: a job on an entry of
            # the same root with other facts (dtypes, row rule) is never this agent's
            model_id = client.model_id(model)
            if model_id == 0:
                raise RefereeError(f"model {model.name} ({to_hex(model.root)}) is not registered on this chain "
                                   "with the facts its model file gives; register it first (ape run register_model)")
            client.check_entry(model_id, model)
            self.models[model_id] = model
        if not self.models:
            raise RefereeError("no models given: pass --model DIR for each model to serve or watch")
        self.traces = Traces(self.models, store, cheat, device, journal, self.log, name=self.name)
        self.block_time_source = "given"
        self.block_time = block_time or self._measured_block_time()
        self.block_gas = client.block_gas_limit()  # read again at every tick
        client.txmgr.block_time = self.block_time  # how near a deadline is, in blocks
        # the gas of our latest moves per model (journal, then each receipt): one model's large
        # moves do not cut another's capacity, and an old outlier ages out of the window
        self._move_gas = {model_id: deque(journal.move_gas(model_id), maxlen=MOVE_GAS_WINDOW)
                          for model_id in self.models}
        # gas per kind of game call, for packing batches (an unseen kind: the largest move's bound)
        widest = max(cap.move_gas_bound(cap.widest_row_bytes(m)) for m in self.models.values())
        measured = max((gas for window in self._move_gas.values() for gas in window), default=0)
        self.gas_table = batching.GasTable(default=max(widest, measured))
        for key, gas in journal.gas_by_key():
            if key.split(":")[0] in GAME_CALLS:
                self.gas_table.seed(key.split(":")[0], gas)
        self.throughput = cap.Throughput()  # the agent's own send rate and tick length
        self._sending = (0, 0.0)  # (transactions, seconds) of this tick's flush
        self._trace_seconds = 0.0  # of this tick, spent computing new jobs' traces
        self._backlog: dict[str, int] = {}  # key -> the head it was first decided at, still unsent
        self._alarms: dict[str, int] = {}  # what was last logged: backlog, shortfall
        self.capacity_lines = CapacityLines()  # the capacity figures last logged, per model
        self._games_seen: dict[int, object] = {}  # game records read this tick (one batch request)
        self._queue: list[Action] = []
        self._whats: dict[str, str] = {}  # what each submitted key does, for its receipt's log line
        self._methods: dict[str, str] = {}  # the method of each submitted key, for the gas table
        self._budget = (-1, 0)  # (block, gas submitted in it): the agent's share is per block
        self._jobs_seen: dict[int, object] = {}  # job records read this tick
        self._reads: dict[str, object] = {}  # chain figures read once this tick (``per_tick``)
        self.now = 0  # the latest block's time, as the tick read it
        self._clocks: list[tuple[int, int]] = []  # (own, opponent's) seconds left, per game in play
        self._movers_left: list[int] = []  # seconds until each game's side to move runs out
        self.waits = WaitNotes(self.log, every=300)  # "waiting: ..." once, then every 5 minutes
        self.heartbeat = Heartbeat(self.log, every=60)  # "alive: ..." every minute
        self._alarmed: set[int] = set()  # games a low clock of ours was reported in
        self.metrics = None  # an AgentMetrics (referee.agents.metrics) to keep current, or None
        self.reset_watch = ResetWatch(client, journal.get("deployed_in"))
        client.on_unreachable = self._unreachable  # every failed read counts at once

    def log(self, line: str) -> None:
        self._log(f"{self.name}: {line}")


    def _prefetch(self, games: list[tuple[int, int]]) -> None:
        """Every game's record and its job's, and every followed job's, in batch requests."""
        self._games_seen = self.client.game_records([g for g, _ in games])
        jobs = sorted({j for _, j in games} | {row.job_id for row in self.journal.active_jobs()})
        self._jobs_seen.update(self.client.job_records(jobs))

    def per_tick(self, name: str, read: Callable):
        """``read()`` once per tick, however many jobs ask: a tick weighing 250 new jobs' terms
        made four reads each (22 s here), and the tick is the unit of the agent's capacity."""
        if name not in self._reads:
            self._reads[name] = read()
        return self._reads[name]

    def job(self, job_id: int):
        """The job's record, read once per tick."""
        if job_id not in self._jobs_seen:
            self._jobs_seen[job_id] = self.client.job_record(job_id)
        return self._jobs_seen[job_id]

    def finish(self, row: JobRow, note: str, served: bool = False) -> None:
        """Stop following a job, with a note saying why; ``served``: the agent did its work on
        it (a solver was paid, a challenger checked the result or played its games out)."""
        self.journal.set_job(row.job_id, DONE, note)
        self.log(f"job {row.job_id}: {note}")
        if self.metrics and served:
            self.metrics.job_served()

    # -- the loop ------------------------------------------------------------------------

    def tick(self) -> int:
        """One pass over receipts, logs, jobs, games and credit; returns the number of
        transactions submitted (they are mined by the next block, not waited for)."""
        started, self._trace_seconds = time.perf_counter(), 0.0
        self._queue, self._jobs_seen, self._games_seen, self._clocks, self._movers_left = [], {}, {}, [], []
        self._reads = {}
        self.reset_watch.check()  # a restarted local chain stops the agent (reset.py)
        with self.journal.batch():  # one commit for every receipt of the pass
            self._guarded(self._receipts)
        with self.journal.batch():  # and one for what the logs and the decisions write
            self._scan()
            self.traces.collect()
            self.now = self.client.now()  # the latest block's time, which every deadline is compared with
            self.block_gas = self.client.block_gas_limit()
            games = self.journal.active_games()
            self._guarded(self._prefetch, games)
            # games first: a job is done only once its games are
            for game_id, job_id in games:
                self._guarded(self.advance_game, game_id, job_id)
            for row in self.journal.active_jobs():
                self._guarded(self.advance_job, row)
            self._guarded(self._withdraw)
        sent = self._flush()  # each transaction's keys are committed before it leaves
        self._guarded(self._report)
        self.throughput.record(*self._sending, time.perf_counter() - started - self._trace_seconds)
        self._watch_capacity()
        return sent

    def _report(self) -> None:
        """The heartbeat line and the metrics, from what this tick read."""
        games, head = len(self.journal.active_games()), self.client.head()
        ahead = self._movers_left  # each game's next deadline: the side to move runs out then
        self.heartbeat.beat(head, len(self.journal.active_jobs()), games, min(ahead) if ahead else None)
        if self.metrics:
            self.metrics.update_games([own for own, _ in self._clocks], [other for _, other in self._clocks])
            self.metrics.set_bonds_at_risk(self.bonds_at_risk())
            self.metrics.update_transactions(len(self.client.in_flight()), self.client.txmgr.lagging)
            self.metrics.ticked(head)

    def bonds_at_risk(self) -> int:
        """Wei of this agent's bonds locked in jobs and games not yet over."""
        raise NotImplementedError

    def resume_notes(self) -> None:
        """On start: what the journal says this agent was doing, game by game and job by job."""
        for game_id, _ in self.journal.active_games():
            g = self.client.game_record(game_id)
            if g.phase in PHASE_NAMES:
                mover = "solver" if g.phase in SOLVER_PHASES else "challenger"
                self.log(resuming_line(game_id, PHASE_NAMES[g.phase], mover, deadline_of(g) - self.client.now()))
        for row in self.journal.active_jobs():
            self.log(resuming_job_line(row.job_id, row.state))

    def run(self, poll: float = 2.0, once: bool = False) -> None:
        """Tick until interrupted (Ctrl-C stops between ticks; state is always saved)."""
        self.log(f"{self.client.address} watching market {self.client.deployment.market} "
                 f"for {len(self.models)} model(s); blocks of {self.block_time:g} s ({self.block_time_source})")
        self.describe_capacity()
        self.resume_notes()
        try:
            while True:
                try:
                    sent = self.tick()
                except ChainReset as exc:
                    self.log(f"error: {exc}")
                    raise
                except ChainUnavailable as exc:  # its failed attempts were counted as they came
                    self.log(f"error: {exc}; still trying")
                    sent = 0
                if once:
                    self.await_receipts()
                    if not sent and not self.await_traces():
                        return  # --once: every pass that sent or computed something is followed by another
                else:
                    self._await_block(poll)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the command line turns it into one)
            self.stop_notes()

    def stop_notes(self, wait: float = 3.0) -> None:
        """On stop: the receipts that come within ``wait`` s (their journal rows closed), then what
        is still in flight and every game still in play with its deadline, so an operator knows
        what a long stop would lose on time."""
        try:
            self.await_receipts(timeout=wait)
            pending = [tx.key for tx in self.client.in_flight()]
            if pending:
                self.log(f"stopped with {len(pending)} transaction(s) in flight ({', '.join(pending[:5])}"
                         f"{', ...' if len(pending) > 5 else ''}): the next start re-adopts each")
            now = self.client.now()
            for game_id, job_id in self.journal.active_games():
                g = self.client.game_record(game_id)
                if g.phase in PHASE_NAMES:
                    ours = (g.phase in SOLVER_PHASES) == self.is_solver
                    self.log(stopped_game_line(game_id, job_id, PHASE_NAMES[g.phase], ours, deadline_of(g), now))
        except Exception as exc:  # the node may be what stopped us: the last line is said anyway
            self.log(f"stopped without reading the games in play ({type(exc).__name__})")
        self.log("stopped; start again with the same --state to resume")

    def _unreachable(self) -> None:
        if self.metrics:
            self.metrics.rpc_error("unreachable")

    def _scan(self) -> None:
        """Reads the logs of the blocks since the cursor (the journal's), so each tick costs the
        same requests however long the chain: the subclass's market logs (``on_logs``), then
        the game logs a move or a game's end is read from later (``_record_game_logs``)."""
        cursor = self.journal.cursor()
        cursor = self.client.deployment.block - 1 if cursor is None else cursor
        head = self.client.head() - self.confirmations
        while cursor < head:
            stop = min(cursor + LOG_CHUNK, head)
            self.on_logs(cursor + 1, stop)
            self._record_game_logs(cursor + 1, stop)
            cursor = stop
            self.journal.set("cursor", str(cursor))

    def _record_game_logs(self, start: int, stop: int) -> None:
        """Keeps, for each game we play, the latest log of each kind in ``RECORDED_GAME_EVENTS``
        (one request for all of them), so no move scans the chain's history for them."""
        ours = {game_id for game_id, _ in self.journal.active_games()}
        if not ours:
            return
        for log in self.client.events(self.client.game, RECORDED_GAME_EVENTS, start, stop):
            if log.game_id in ours:
                self.journal.record_game_log(log.game_id, log.event_name, dict(log.event_arguments))

    # -- subclass hooks ------------------------------------------------------------------

    def on_logs(self, start: int, stop: int) -> None:
        raise NotImplementedError

    def advance_job(self, row: JobRow):
        raise NotImplementedError

    # -- traces --------------------------------------------------------------------------

    def trace_for(self, row: JobRow) -> Trace:
        """The trace this agent stands by for a job, now (a game in play, a commit): the time it
        waits for one being computed is not the tick's own (``_trace_seconds``)."""
        started = time.perf_counter()
        try:
            return self.traces.now(row)
        finally:
            self._trace_seconds += time.perf_counter() - started

    def trace_ready(self, row: JobRow) -> Trace | None:
        """A new job's trace if ready, else None while the trace worker computes it."""
        return self.traces.ready(row)

    def await_traces(self, timeout: float = 600.0) -> bool:
        """Waits for the traces being computed (``drive`` and ``--once`` act on them next);
        True if there were any."""
        return self.traces.wait(timeout)

    # -- games ---------------------------------------------------------------------------

    def advance_game(self, game_id: int, job_id: int):
        client = self.client
        g = self._games_seen.get(game_id) or client.game_record(game_id)  # the phase says whether it is over
        result = RESULT_OF_PHASE.get(g.phase, IN_PLAY)
        if result == IN_PLAY:
            return self.play(game_id, job_id, g)
        challenge = client.challenge_record(game_id)
        won = (result == SOLVER_WON) == self.is_solver and result in (SOLVER_WON, CHALLENGER_WON)
        if challenge.open and won:
            return self.send(f"settle:{game_id}", "settle", game_id, what=f"game {game_id}: settled",
                             stake=self.game_stake(job_id))
        if challenge.open:
            return None  # the winner settles; nothing for the loser to do
        resolved = client.game_log(game_id, "GameResolved")
        outcome = {SOLVER_WON: "solver won", CHALLENGER_WON: "challenger won"}.get(result, "closed")
        note = f"{outcome} ({resolved.reason})" if resolved is not None else outcome
        self.journal.set_game(game_id, DONE, note)
        if won or result == CLOSED:
            self.log(f"game {game_id}: over, {note}; {'we won' if won else 'no winner'}")
            return None
        # a challenger's bond goes to the solver; a solver's bond is counted when its job is rejected
        lost = 0 if self.is_solver else challenge.bond
        self.log(f"game {game_id}: over, {note}; we lost" + (f" our bond of {ether(lost)}" if lost else ""))
        if self.metrics:
            self.metrics.lost(lost, game=True)
        return None

    def play(self, game_id: int, job_id: int, g):
        # each side's seconds left as of the last move; the mover's clock has run since
        left = deadline_of(g) - self.now
        solver_left, challenger_left = ((left, g.challenger_time) if g.phase in SOLVER_PHASES
                                        else (g.solver_time, left))
        self._clocks.append((solver_left, challenger_left) if self.is_solver else (challenger_left, solver_left))
        self._movers_left.append(left)
        if (g.phase in SOLVER_PHASES) != self.is_solver:
            self.waits.note(("clock", game_id), f"game {game_id}: the opponent's move", left)
        else:
            self.waits.forget(("clock", game_id))
            self._alarm_low_clock(game_id, left)
        row = self.journal.job(job_id)
        move = next_move(self.client, game_id, self.is_solver, self.models[row.model_id], self.trace_for(row),
                         answer=self.cheat != "stall", g=g, now=self.now)
        if move is None:
            return None
        return self.send(move.key, move.method, *move.args, contract=self.client.game,
                         what=f"game {game_id}: {move.method}", deadline=move.deadline, stake=self.game_stake(job_id))

    def game_stake(self, job_id: int) -> int:
        """Wei a game of this job puts at risk for us: the solver's bond, or the challenger's."""
        return self.job(job_id).solver_bond if self.is_solver else self.client.challenger_bond

    def _alarm_low_clock(self, game_id: int, left: int) -> None:
        """A WARNING line (and the metric), once per game, when our clock is low at our move."""
        if left >= low_clock_threshold(self.client.clock, self.block_time) or game_id in self._alarmed:
            return
        self._alarmed.add(game_id)
        self.log(low_clock_line(game_id, left, self.client.clock))
        if self.metrics:
            self.metrics.low_clock()

    def _withdraw(self):
        credit = self.client.credit()
        if credit == 0:
            return None
        in_flight = [key for tx in self.client.in_flight() for key in tx.keys]  # a restart's too
        if any(key.startswith("withdraw:") for key in [*self._whats, *in_flight]):
            return None  # one withdrawal in flight at a time
        return self.send(f"withdraw:{self.client.head()}", "withdraw", what=f"withdrew {ether(credit)}", stake=credit)


