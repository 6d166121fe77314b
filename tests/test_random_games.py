"""Randomized dispute games on anvil: honest and lying solvers and challengers, every wei checked.

Each hypothesis example is one job on the real ModelRegistry, JobMarket and DisputeGame:

- a random small MLP (1-5 ops, 1-40 columns, so rows of more than one 32-byte word) and a
  random input of 1-6 rows (so row trees with padding leaves); or, in about a third of the
  jobs, a transformer-shaped model (tests/token_jobs.py: encoders with and without the key
  mask, causal decoders, 16-bit variants, a Llama-shaped decoder; every op kind) with 1-4
  sequences of token ids, or on a decoder a generation job (a prompt and 1..T tokens);
- a solver that tells the truth, or commits a lying trace: one element of any slot (the input
  slot included; in a transformer, a slot of the kind lied in least so far), a hidden slot of
  the wrong shape, or garbage in a padding leaf; a generation job's solver commits the tokens
  its trace gives, or changes the first token and generates on from it;
- one to three challengers, honest or lying (a lying one believes the honest trace or a lying
  one), all challenging within the window; a liar also lies at random moves
  (tests/game_bots.py: forged roots and proofs, wrong sub-interval, child or column, forged
  witnesses of every kind, input or weight rows of a linear step, proofs replayed from another
  job, moves after its clock ran out);
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

``REFEREE_RANDOM_JOBS`` sets the number of jobs (default 220, a third of them token jobs, about
440 games, 65 s here under load); ``make test-long`` runs more with a fresh seed. The counts
are printed at the end of the run, with the token jobs' lies and catches per op kind.
"""

import copy
import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from accounting import REJECTED
from game_bots import CHALLENGER_WON, CLOSED, SOLVER_WON, STATS, Arena, Chooser, Match, Party
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from market_world import ARITY, CHALLENGER_BOND, CLOCK, Ledger, World, caller_refund, challenge
import token_jobs as tokens
from referee.cheats import garbage_padding, wrong_element, wrong_shape
from referee.commitments import DTYPE_INT32
from referee.executor import run_model
from referee.model import IntegerModel, kind_name
from referee.trace import Trace

JOBS = int(os.environ.get("REFEREE_RANDOM_JOBS", "220"))
FRESH_SEED = os.environ.get("REFEREE_RANDOM_SEED") == "fresh"  # make test-long
TOKEN_JOBS = 35  # percent of the jobs on transformer-shaped models (token_jobs.py)


@pytest.fixture(scope="module")
def setup(project, accounts):
    return World(project, accounts)


# ---------------------------------------------------------------------------
# A random job and the lies told about it
# ---------------------------------------------------------------------------


@dataclass
class Job:
    """A job to post: its model, the trace an honest solver commits and another input's trace
    of the same model (for replayed proofs); a generation job's prompt and token count."""

    model: IntegerModel
    honest: Trace
    other: Trace
    generation: tuple[list[int], int] | None = None


def random_job(choose: Chooser) -> Job:
    """An MLP job, or (TOKEN_JOBS percent of the time) a token job on a transformer-shaped model:
    1-4 sequences of ids, or on a decoder a generation job."""
    if choose.chance(TOKEN_JOBS, "token job"):
        return random_token_job(choose)
    rng = choose.rng
    input_cols = choose.integer(1, 40, "input cols")
    widths = [choose.integer(1, 40, "op width") for _ in range(choose.integer(1, 5, "ops"))]
    rows = choose.integer(1, 6, "rows")
    model = to_integer_model(random_ref_model(rng, input_cols, widths))
    honest, other = (Trace(model.root, run_model(model, int8_tensor(random_input(rng, rows, input_cols)), "cpu"))
                     for _ in range(2))
    return Job(model, honest, other)


def random_token_job(choose: Chooser) -> Job:
    # the Llama-shaped decoder, the only one with rope and mul, three times as often as the rest
    pool = list(tokens.token_models())
    tm = choose.pick(pool + [p for p in pool if "llama" in p.name] * 2, "token model")
    rng, model = choose.rng, tm.model
    other = tokens.run(model, tokens.random_ids(rng, tm, 1))
    if tm.generates and choose.chance(50, "generation job"):
        prompt, n = tokens.random_generation(rng, tm)
        honest = tokens.generation_trace(model, prompt, tokens.greedy(model, prompt, n))
        return Job(model, honest, other, (prompt, n))
    return Job(model, tokens.run(model, tokens.random_ids(rng, tm, choose.integer(1, 4, "sequences"))), other)


def lie_slot(choose: Chooser, model: IntegerModel, n: int, label: str) -> tuple[int, str | None]:
    """The slot of an element lie, and its kind in a token model: any slot, in an MLP; in a token
    model, a slot of the kind whose lies were caught least so far, then lied in least (the input
    counts as a kind), so every kind's lie is reached and caught within a short run."""
    if model.input_dtype != DTYPE_INT32:
        return choose.integer(0, n, f"{label} slot"), None
    kinds = {"input": [0]}
    for j, op in enumerate(model.ops, start=1):
        kinds.setdefault(kind_name(op), []).append(j)
    kind = min(kinds, key=lambda name: (STATS.kinds_caught[name], STATS.kind_lies[name], name))
    STATS.kind_lies[kind] += 1
    return choose.pick(kinds[kind], f"{label} slot"), kind


def lying_trace(choose: Chooser, job: Job, honest: Trace, label: str) -> tuple[str, Trace, str | None]:
    """A wrong trace: one element of any slot, a hidden slot's shape, or a padding leaf; with
    the lie's name, and the kind of the slot an element lie in a token model is in."""
    n, rng = honest.op_count, choose.rng
    kinds = ["element"] + (["shape"] if n > 1 else [])
    padded = [k for k in range(n) if honest.slots[k].shape[0] & (honest.slots[k].shape[0] - 1)]
    kinds += ["padding"] if padded else []
    kind = choose.pick(kinds, f"{label} lie")
    if kind == "element":
        slot, slot_kind = lie_slot(choose, job.model, n, label)
        rows, cols = honest.slots[slot].shape
        name = "input element" if slot == 0 else "output element" if slot == n else "hidden element"
        return name, wrong_element(honest, slot, rng.randrange(rows), rng.randrange(cols)), slot_kind
    if kind == "shape":
        slot = choose.integer(1, n - 1, f"{label} slot")
        grow = choose.pick([(1, 0), (0, 1), (2, 3)], f"{label} growth")
        return "hidden slot shape", wrong_shape(honest, slot, *grow), None
    return "padding leaf", garbage_padding(honest, choose.pick(padded, f"{label} slot"), rng.randbytes(32)), None


def solver_lie(choose: Chooser, job: Job) -> tuple[str, Trace, Trace, str | None]:
    """(the lie, the lying solver's trace, the trace the game is played over, the kind of slot
    an element lie in a token model is in). A generation job's
    lying solver commits the tokens its trace gives, so the truth is the teacher-forced pass
    over those tokens (what the market's S_0 and an honest challenger hold); or it tells the
    wrong-token lie (referee.cheats): the first token changed and the text generated on."""
    if job.generation is None:
        lie, believed, kind = lying_trace(choose, job, job.honest, "solver")
        return lie, believed, job.honest, kind
    prompt, n = job.generation
    if choose.chance(30, "wrong token"):
        truth, believed = tokens.wrong_token(job.model, prompt, n)
        STATS.kind_lies["argmax"] += 1  # one element of the head's argmax output changed
        return "wrong token", believed, truth, "argmax"
    lie, believed, kind = lying_trace(choose, job, job.honest, "solver")
    committed = tokens.committed_tokens(believed, prompt, n)
    if committed == tokens.committed_tokens(job.honest, prompt, n):
        return lie, believed, job.honest, kind
    return lie, believed, tokens.generation_trace(job.model, prompt, committed), kind


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
    job = random_job(choose)
    model, honest, other = job.model, job.honest, job.other
    # Hypothesis draws the shapes (its edge cases: one column, one row, one op, 40 columns);
    # every other choice, from the lies to the last delay, comes from the seeded generator, so
    # lies are spread evenly over slots and moves, and no long game of liars runs out of
    # hypothesis data and is dropped. Shrinking is off; the seed reproduces a failing job.
    choose.data = None
    STATS.jobs += 1
    if job.generation:
        STATS.token_jobs["generation"] += 1
    elif model.input_dtype == DTYPE_INT32:
        STATS.token_jobs[f"{honest.slots[0].shape[0]} sequences"] += 1

    solver_lies = choose.chance(60, "solver lies")
    believed, lied_kind = honest, None
    if solver_lies:
        lie, believed, honest, lied_kind = solver_lie(choose, job)
        STATS.trace_lies[f"solver: {lie}"] += 1
    solver = Party("solver", s.solver, model, believed, not solver_lies, other, lie_odds(choose, "solver"))

    challengers = []
    for i, address in enumerate(s.challengers[:choose.integer(1, 3, "challengers")]):
        is_honest = solver_lies and choose.chance(60, "challenger honest")
        mind = honest
        if not is_honest and choose.chance(50, "liar believes a wrong trace"):
            lie, mind, _ = lying_trace(choose, job, honest, f"challenger {i}")
            STATS.trace_lies[f"challenger: {lie}"] += 1
        challengers.append(Party(f"challenger {i}", address, model, mind, is_honest, other,
                                 lie_odds(choose, f"challenger {i}")))

    accounts = s.open_books([s.requester, s.solver, *s.challengers])
    job_id = s.post_and_commit(model, honest, believed, job.generation)

    committed = market.view("job", job_id)["trace_root"]
    assert all(party.trace.trace_root != committed for party in challengers if party.honest)
    matches = [challenge(s, job_id, party, solver) for party in challengers]

    ledger = Ledger(s, games=len(matches))

    def on_end(m: Match):
        STATS.games += 1
        if m.result == CLOSED:
            return
        STATS.outcomes[f"{'solver' if m.result == SOLVER_WON else 'challenger'} won: {m.reason}"] += 1
        if model.input_dtype == DTYPE_INT32 and m.reason == "element differs":
            op = game.view("games", m.gid)["hi"]
            STATS.kinds_decided[kind_name(model.ops[op - 1])] += 1
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
        if lied_kind:
            STATS.kinds_caught[lied_kind] += 1


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


def test_random_dispute_games_reached_every_kind():
    """The token jobs lied in a slot of every op kind, and a solver's lie in every kind was caught:
    an honest challenger won against it (with the default number of jobs)."""
    from referee.model import KIND_NAMES

    if JOBS < 100 or not STATS.jobs:
        pytest.skip("a short or partial run need not reach every kind")
    every = set(KIND_NAMES.values())
    assert every <= set(STATS.kind_lies), f"never lied in: {sorted(every - set(STATS.kind_lies))}"
    assert every <= set(STATS.kinds_caught), f"no lie caught in: {sorted(every - set(STATS.kinds_caught))}"
