"""The job market as a hypothesis state machine: any sequence of anyone's calls, then a full
unwind to an empty market.

Rules call every state-changing function of the market (and the game's moves and
``timeout``) with a random actor, job, game and amount, and move the chain's clock by random
steps around the windows and clocks. A call may be refused: then its reason must name the
contract (``market:``, ``game:``) and nothing may change. After every rule the money
invariant is checked (tests/accounting.py). At the end of each run, from whatever state it
reached, everything is resolved by the public functions alone (timeouts, settle, reclaim,
expire, cancel, finalize, withdraw, withdraw_stake, release_to_sink) and the market must end
at zero: no reachable state strands a wei.
"""

import os
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from accounting import CHECKS, CLAIMED, COMMITTED, OPEN, assert_accounting, assert_drained
from game_bots import SOLVER_PHASES, SOLVER_WON, Party, Seen, remember, trace_move
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from market_world import ARITY, CLOCK, World
from referee import commitments as cm
from referee.cheats import wrong_element
from referee.executor import run_model
from referee.trace import Trace
from rpc import Reverted

RUNS = int(os.environ.get("REFEREE_MARKET_RUNS", "20"))
FRESH_SEED = os.environ.get("REFEREE_RANDOM_SEED") == "fresh"  # make test-long
STEPS = 50
WINDOW_CHOICES = [1, 600, 1800]
WARPS = [0, 1, 2, 60, 599, 600, 601, 1801, CLOCK, CLOCK + 1]
TOTALS = ("total_stake", "total_escrow", "total_bonds", "total_credit", "sink_pending", "job_count")
TALLY = {"runs": 0, "calls": 0, "refused": 0}
DONE = Counter()  # calls that went through, by function (how deep the runs reached)


class Fixtures:
    """One deployment and one model; a few inputs with their honest and lying traces."""

    def __init__(self, project, accounts):
        self.w = World(project, accounts)
        rng = random.Random(44)
        self.model = to_integer_model(random_ref_model(rng, 5, [4, 3]))
        self.jobs = []
        for rows in (1, 2, 3, 3):
            honest = Trace(self.model.root, run_model(self.model, int8_tensor(random_input(rng, rows, 5)), "cpu"))
            self.jobs.append((honest, wrong_element(honest, honest.op_count, row=rows - 1, col=2)))
        w = self.w
        w.registry.transact(w.requester, "register", *self.model.registration())
        self.actors = [w.requester, w.solver, *w.challengers]


@pytest.fixture(scope="module")
def fixtures(project, accounts):
    return Fixtures(project, accounts)


class MarketMachine(RuleBasedStateMachine):
    fx: Fixtures = None  # set by the test before the run

    def __init__(self):
        super().__init__()
        self.w = self.fx.w
        self.snapshot = self.w.node.snapshot()
        self.posted = {}  # job id -> (honest trace, requester)
        self.committed = {}  # job id -> the trace the solver committed
        self.games = {}  # game id -> (job id, challenger, Seen)
        TALLY["runs"] += 1

    # -- sending ---------------------------------------------------------------------------

    def call(self, contract, sender, name, *args, value=0, at=None):
        """One call: refused calls must give a contract's reason and change nothing."""
        TALLY["calls"] += 1
        abi = getattr(self.w, contract)
        before = [self.w.market.view(v) for v in TOTALS]
        try:
            receipt = abi.transact(sender, name, *args, value=value, at=at)
            DONE[name] += 1
            return receipt
        except Reverted as exc:
            TALLY["refused"] += 1
            assert exc.reason.startswith(("market: ", "game: ")), f"{name}: {exc.reason!r}"
            assert before == [self.w.market.view(v) for v in TOTALS]
            return None

    def job_ids(self):
        return sorted(self.posted) or [1]

    # -- rules: each picks the sensible actor and arguments most of the time, anyone otherwise --

    def job_id(self, job: int, status: int | None = None) -> int:
        """The ``job``-th job; with ``status``, the ``job``-th of those in that state if any."""
        ids = self.job_ids()
        if status is not None:
            ids = [j for j in ids if self.w.market.view("job", j)["status"] == status] or ids
        return ids[job % len(ids)]

    @initialize(lie=st.booleans())
    def staked_solver_and_a_committed_job(self, lie):
        """Every run starts with a staked solver, an open job and a committed one (a lie or not),
        so the later rules reach claims, challenges and games, not only deposits and posts."""
        self.call("market", self.w.solver, "deposit", value=3 * 10**18)
        self.post(0, 2, 10**16, 10**18 + 1, (1800, 1800, 1800))
        self.post(0, 1, 10**16, 10**18 + 1, (1800, 1800, 1800))
        self.claim(1, 0, True)
        self.commit(1, 0, lie, True)

    def actor(self, fitting: str | None, other: int, sensible: bool) -> str:
        return fitting if sensible and fitting else self.fx.actors[other]

    @rule(who=st.integers(0, 4), amount=st.sampled_from([1, 10**17, 10**18 + 1, 3 * 10**18]))
    def deposit(self, who, amount):
        self.call("market", self.fx.actors[who], "deposit", value=amount)

    @rule(who=st.integers(0, 4), amount=st.sampled_from([1, 10**17, 10**18 + 1, 2**255]))
    def withdraw_stake(self, who, amount):
        self.call("market", self.fx.actors[who], "withdraw_stake", amount)

    @rule(who=st.integers(0, 4), which=st.integers(0, 3), fee=st.sampled_from([1, 10**16]),
          bond=st.sampled_from([10**17 - 1, 10**17, 10**18 + 1, 10**18 + 1]),
          windows=st.tuples(*[st.sampled_from(WINDOW_CHOICES)] * 3))
    def post(self, who, which, fee, bond, windows):
        honest, _ = self.fx.jobs[which]
        if self.call("market", self.fx.actors[who], "post", 1, honest.slots[0].shape[0], cm.packed(honest.slots[0]),
                     bond, *windows, value=fee):
            self.posted[self.w.market.view("job_count")] = (honest, which)

    @rule(who=st.integers(0, 4), job=st.integers(0, 7), sensible=st.booleans())
    def claim(self, who, job, sensible):
        """Sensibly: the actor with the most free stake claims."""
        market = self.w.market
        richest = max(self.fx.actors, key=lambda a: market.view("stake", a) - market.view("locked", a))
        self.call("market", self.actor(richest, who, sensible), "claim", self.job_id(job, OPEN if sensible else None))

    @rule(who=st.integers(0, 4), job=st.integers(0, 7), name=st.sampled_from(["cancel", "expire", "finalize"]))
    def job_call(self, who, job, name):
        self.call("market", self.fx.actors[who], name, self.job_id(job))

    @rule(who=st.integers(0, 4), job=st.integers(0, 7), lie=st.booleans(), sensible=st.booleans())
    def commit(self, who, job, lie, sensible):
        job_id = self.job_id(job, CLAIMED if sensible else None)
        if job_id not in self.posted:
            return
        honest, which = self.posted[job_id]
        trace = self.fx.jobs[which][1] if lie else honest
        n = trace.op_count
        claimer = self.w.market.view("job", job_id)["solver"]
        sender = self.actor(claimer if claimer != "0x" + "00" * 20 else None, who, sensible)
        if self.call("market", sender, "commit", job_id, cm.packed(trace.output), trace.trace_root,
                     trace.state_tree(n).proof(n)):
            self.committed[job_id] = trace

    @rule(who=st.integers(0, 4), job=st.integers(0, 7), value=st.sampled_from([10**17 + 3, 10**17 + 3, 10**17]))
    def challenge(self, who, job, value):
        job_id = self.job_id(job, COMMITTED)
        if self.call("market", self.fx.actors[who], "challenge", job_id, value=value):
            self.games[self.w.game.view("game_count")] = (job_id, self.fx.actors[who], Seen())

    @precondition(lambda self: self.games)
    @rule(game=st.integers(0, 7), by_other=st.booleans())
    def move(self, game, by_other):
        """The side to move plays from its own trace (the solver's is what it committed); or
        someone else tries the move for it."""
        gid = sorted(self.games)[game % len(self.games)]
        job_id, challenger, seen = self.games[gid]
        g = self.w.game.view("games", gid)
        if g["phase"] >= SOLVER_WON or job_id not in self.committed:
            return
        honest = self.posted[job_id][0]
        solver_moves = g["phase"] in SOLVER_PHASES
        trace = self.committed[job_id] if solver_moves else honest
        mover = Party("mover", g["solver"] if solver_moves else challenger, self.fx.model, trace, True, honest)
        method, args = trace_move(mover, g["phase"], gid, g, seen, ARITY)
        sender = self.fx.actors[0] if by_other else mover.address
        if self.call("game", sender, method, *args):
            remember(seen, method, args)

    @rule(who=st.integers(0, 4), game=st.integers(0, 7), name=st.sampled_from(["settle", "reclaim"]))
    def game_call(self, who, game, name):
        gid = sorted(self.games)[game % len(self.games)] if self.games else 1
        self.call("market", self.fx.actors[who], name, gid)

    @rule(who=st.integers(0, 4), game=st.integers(0, 7))
    def timeout(self, who, game):
        gid = sorted(self.games)[game % len(self.games)] if self.games else 1
        self.call("game", self.fx.actors[who], "timeout", gid)

    @rule(who=st.integers(0, 4), name=st.sampled_from(["withdraw", "release_to_sink"]))
    def pay_out(self, who, name):
        self.call("market", self.fx.actors[who], name)

    @rule(seconds=st.sampled_from(WARPS))
    def warp(self, seconds):
        self.w.node.mine(self.w.node.timestamp() + seconds)

    @invariant()
    def money_adds_up(self):
        assert_accounting(self.w.market.address, self.w.node)

    # -- the unwind ------------------------------------------------------------------------

    def teardown(self):
        try:
            self.unwind()
        finally:
            self.w.node.revert(self.snapshot)

    def unwind(self):
        """Resolves every job and game with public calls only, then empties the market."""
        w, market, node = self.w, self.w.market, self.w.node
        node.mine(node.timestamp() + 2 * CLOCK + 2 * max(WINDOW_CHOICES) + 2)  # every clock and window has run out
        for gid in sorted(self.games):
            if w.game.view("result", gid) == 0:
                self.call("game", w.referee, "timeout", gid)
            for name in ("settle", "reclaim"):
                if market.view("challenge_of", gid)["open"]:
                    self.call("market", w.referee, name, gid)
        for job_id in range(1, market.view("job_count") + 1):
            job = market.view("job", job_id)
            if job["status"] == CLAIMED:
                self.call("market", w.referee, "expire", job_id)
                job = market.view("job", job_id)
            if job["status"] == OPEN:
                self.call("market", job["requester"], "cancel", job_id)
            elif job["status"] == COMMITTED:
                self.call("market", w.referee, "finalize", job_id)
            assert market.view("job", job_id)["status"] not in (OPEN, CLAIMED, COMMITTED), f"job {job_id} stuck"
        for who in self.fx.actors:
            if market.view("credit", who):
                self.call("market", who, "withdraw")
            if market.view("stake", who):
                assert market.view("locked", who) == 0
                self.call("market", who, "withdraw_stake", market.view("stake", who))
        if market.view("sink_pending"):
            self.call("market", w.referee, "release_to_sink")
        assert_drained(market.address, node)


def test_market_any_call_sequence_unwinds_to_zero(fixtures):
    MarketMachine.fx = fixtures
    checks = CHECKS["accounting"]
    MarketMachine.TestCase.settings = settings(max_examples=RUNS, stateful_step_count=STEPS, deadline=None,
                                               database=None, derandomize=not FRESH_SEED,
                                               suppress_health_check=list(HealthCheck))
    MarketMachine.TestCase().runTest()
    from game_bots import STATS

    STATS.figures.append(f"market state machine: {TALLY['runs']} runs, {TALLY['calls']} calls "
                         f"({TALLY['refused']} refused with a reason), {CHECKS['accounting'] - checks} invariant checks, "
                         "every run unwound to an empty market; went through: "
                         + ", ".join(f"{name} {count}" for name, count in sorted(DONE.items())))
