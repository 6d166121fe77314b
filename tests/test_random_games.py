"""Randomized dispute games on anvil: honest and lying solvers and challengers, every wei checked.

Each hypothesis example is one job on the real ModelRegistry, JobMarket and DisputeGame:

- a random small model (1-5 ops, 1-40 columns, so rows of more than one 32-byte word) and a
  random input of 1-6 rows (so row trees with padding leaves);
- a solver that tells the truth, or commits a lying trace: one element of any slot (the input
  slot included), a hidden slot of the wrong shape, or garbage in a padding leaf;
- one to three challengers, honest or lying (a lying one believes the honest trace or a lying
  one), all challenging within the window; a liar also lies at random moves
  (tests/game_bots.py: forged roots and proofs, wrong sub-interval, child or column, forged
  input or weight rows, proofs replayed from another job, moves after its clock ran out);
- every game of the job played at once on the chain's clock, each side taking random delays up
  to its deadline (a liar sometimes past it).

After every transaction the market's balance must equal its obligations, recomputed
independently (tests/accounting.py). After each game: an honest side always wins (an honest
challenger's game may instead be closed by ``reclaim`` once another win rejected the job), an
honest move is never refused, a refused move changes nothing, and every game ends within
``2 * CLOCK + 1`` seconds of its opening. After the job: every credit, the stake and the sink
equal what protocol section 10.2 says, computed here from the outcomes; once everyone
withdraws, the market holds nothing, and each party's ETH changed by exactly what it was owed
minus what it paid (gas included): nobody is paid twice.

``REFEREE_RANDOM_JOBS`` sets the number of jobs (default 170, about 300 games, 90 s here); ``make
test-long`` runs more with a fresh seed. The counts are printed at the end of the run.
"""

import copy
import os

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from accounting import REJECTED
from game_bots import CHALLENGER_WON, CLOSED, SOLVER_WON, STATS, Arena, Chooser, Match, Party
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from market_world import ARITY, CHALLENGER_BOND, CLOCK, Ledger, World, caller_refund, challenge
from referee.cheats import garbage_padding, wrong_element, wrong_shape
from referee.executor import run_model
from referee.trace import Trace

JOBS = int(os.environ.get("REFEREE_RANDOM_JOBS", "170"))
FRESH_SEED = os.environ.get("REFEREE_RANDOM_SEED") == "fresh"  # make test-long


@pytest.fixture(scope="module")
def setup(project, accounts):
    return World(project, accounts)


# ---------------------------------------------------------------------------
# A random job and the lies told about it
# ---------------------------------------------------------------------------


def random_job(choose: Chooser):
    """A random model, its honest trace and a second job's trace (for replayed proofs)."""
    rng = choose.rng
    input_cols = choose.integer(1, 40, "input cols")
    widths = [choose.integer(1, 40, "op width") for _ in range(choose.integer(1, 5, "ops"))]
    rows = choose.integer(1, 6, "rows")
    model = to_integer_model(random_ref_model(rng, input_cols, widths))
    honest, other = (Trace(model.root, run_model(model, int8_tensor(random_input(rng, rows, input_cols)), "cpu"))
                     for _ in range(2))
    return model, honest, other


def lying_trace(choose: Chooser, honest: Trace, label: str) -> tuple[str, Trace]:
    """A wrong trace: one element of any slot, a hidden slot's shape, or a padding leaf."""
    n, rng = honest.op_count, choose.rng
    kinds = ["element"] + (["shape"] if n > 1 else [])
    padded = [k for k in range(n) if honest.slots[k].shape[0] & (honest.slots[k].shape[0] - 1)]
    kinds += ["padding"] if padded else []
    kind = choose.pick(kinds, f"{label} lie")
    if kind == "element":
        slot = choose.integer(0, n, f"{label} slot")
        rows, cols = honest.slots[slot].shape
        name = "input element" if slot == 0 else "output element" if slot == n else "hidden element"
        return name, wrong_element(honest, slot, rng.randrange(rows), rng.randrange(cols))
    if kind == "shape":
        slot = choose.integer(1, n - 1, f"{label} slot")
        grow = choose.pick([(1, 0), (0, 1), (2, 3)], f"{label} growth")
        return "hidden slot shape", wrong_shape(honest, slot, *grow)
    return "padding leaf", garbage_padding(honest, choose.pick(padded, f"{label} slot"), rng.randbytes(32))


def lie_odds(choose: Chooser, label: str) -> int:
    """Percent odds of a move-level lie at each move: a quarter of the time none (the trace lie
    alone is tested to the end), else 10-70%."""
    return 0 if choose.chance(25, f"{label} plays its trace straight") else choose.integer(10, 70, f"{label} lie odds")


# ---------------------------------------------------------------------------
# The money, by protocol section 10.2, from the outcomes
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# One job, played out
# ---------------------------------------------------------------------------


def play_job(s: World, choose: Chooser):
    node, market, game = s.node, s.market, s.game
    model, honest, other = random_job(choose)
    # Hypothesis draws the shapes (its edge cases: one column, one row, one op, 40 columns);
    # every other choice, from the lies to the last delay, comes from the seeded generator, so
    # lies are spread evenly over slots and moves, and no long game of liars runs out of
    # hypothesis data and is dropped. Shrinking is off; the seed reproduces a failing job.
    choose.data = None
    STATS.jobs += 1

    solver_lies = choose.chance(60, "solver lies")
    believed = honest
    if solver_lies:
        lie, believed = lying_trace(choose, honest, "solver")
        STATS.trace_lies[f"solver: {lie}"] += 1
    solver = Party("solver", s.solver, model, believed, not solver_lies, other, lie_odds(choose, "solver"))

    challengers = []
    for i, address in enumerate(s.challengers[:choose.integer(1, 3, "challengers")]):
        is_honest = solver_lies and choose.chance(60, "challenger honest")
        mind = honest
        if not is_honest and choose.chance(50, "liar believes a wrong trace"):
            lie, mind = lying_trace(choose, honest, f"challenger {i}")
            STATS.trace_lies[f"challenger: {lie}"] += 1
        challengers.append(Party(f"challenger {i}", address, model, mind, is_honest, other,
                                 lie_odds(choose, f"challenger {i}")))

    accounts = s.open_books([s.requester, s.solver, *s.challengers])
    job_id = s.post_and_commit(model, honest, believed)

    committed = market.view("job", job_id)["trace_root"]
    assert all(party.trace.trace_root != committed for party in challengers if party.honest)
    matches = [challenge(s, job_id, party, solver) for party in challengers]

    ledger = Ledger(s, games=len(matches))

    def on_end(m: Match):
        STATS.games += 1
        if m.result == CLOSED:
            return
        STATS.outcomes[f"{'solver' if m.result == SOLVER_WON else 'challenger'} won: {m.reason}"] += 1
        receipt = market.transact(choose.pick([s.referee, m.solver.address, m.challenger.address], "settler"),
                                  "settle", m.gid)
        ledger.settle(m, caller_refund(s, receipt))
        s.check()
        if market.view("job", job_id)["status"] != REJECTED:
            return
        for other_match in matches:
            # any open game's challenger may close it early: its bond and gas back, no bonus
            if not other_match.result and choose.chance(70, "reclaim"):
                receipt = market.transact(other_match.challenger.address, "reclaim", other_match.gid)
                ledger.reclaim(other_match, caller_refund(s, receipt))
                s.check()
                other_match.result, other_match.ended = CLOSED, node.timestamp()
                STATS.games += 1
                STATS.outcomes["closed by reclaim after the job was rejected"] += 1

    arena = Arena(node, game, choose, STATS, s.check, CLOCK, ARITY, s.referee)
    arena.play(matches, on_end)

    for m in matches:
        assert m.ended - m.opened <= 2 * CLOCK + 1, f"game {m.gid} took {m.ended - m.opened} s"
        if m.solver.honest:
            assert m.result == SOLVER_WON, f"honest solver lost game {m.gid}: {m.reason}"
        if m.challenger.honest:
            assert m.result in (CHALLENGER_WON, CLOSED), f"honest challenger lost game {m.gid}: {m.reason}"

    status = s.close_out(job_id, ledger, accounts, {c.address: CHALLENGER_BOND for c in challengers})
    if solver_lies and any(c.honest for c in challengers):
        assert status == REJECTED


# No shrinking: an example is a whole job on a chain, and the failing one is printed draw by draw
# (its seed draws the rest).
@settings(max_examples=JOBS, deadline=None, database=None, derandomize=not FRESH_SEED,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_dispute_games_honest_side_wins_and_money_adds_up(setup, data):
    snapshot = setup.node.snapshot()
    counted = copy.deepcopy(STATS)
    try:
        play_job(setup, Chooser(data, st))
    except BaseException:
        # an example hypothesis stops early (its data ran out) or that fails is not counted
        STATS.__dict__.update(counted.__dict__)
        raise
    finally:
        setup.node.revert(snapshot)


def test_random_dispute_games_tried_every_lie():
    """The run above told every kind of lie at least once (with the default number of jobs)."""
    from game_bots import CHALLENGER_TRICKS, SOLVER_TRICKS

    if JOBS < 100 or not STATS.jobs:
        pytest.skip("a short or partial run need not reach every lie")
    untried = sorted((set(SOLVER_TRICKS) | set(CHALLENGER_TRICKS)) - set(STATS.lies_tried))
    assert not untried, f"never tried: {untried}"
