"""Griefing, collusion and liveness (issue 5, part 4), played on the real contracts.

- Sybil challengers who open games against an honest result and abandon them (or play as
  slowly as their clocks allow) delay the solver's payment by at most one clock past the
  challenge deadline, and each one pays the solver more than defending cost it in gas.
- A cheating solver who challenges its own wrong result from a second account loses at least
  90% of its bond whichever game ends first, and the honest challenger gets its bond, its gas
  and a bonus in every order: the pool is shared equally by the winning games, so an accomplice
  that opened first takes only half of it less the dilution fee (tests/test_accomplice.py
  measures it in wei).
- A solver who stops answering loses by timeout, exactly one second after its clock runs out.
- Bond sizing: the gas of full games measured here gives the minimum bonds
  (``referee.bonds``); a market deployed with exactly those bonds, played at the gas price they
  were sized for, leaves each honest winner whole.

Every transaction is followed by the money invariant; every job ends with exact payouts and
an empty market (``market_world.World.close_out``).
"""


import pytest

from game_bots import CHALLENGER_WON, SOLVER_WON, STATS, Match
from market_world import (ARITY, CHALLENGER_BOND, CLOCK, SHARE_BPS, SOLVER_BOND, Ledger, World, challenge,
                          model_and_traces, party, play)
from referee.bonds import HEADROOM_PCT, minimum_bonds
from referee.cheats import wrong_element


@pytest.fixture(scope="module")
def world(project, accounts):
    return World(project, accounts)


@pytest.fixture(scope="module")
def job_model():
    """4 ops, 5 rows (a row tree with padding), a 40-column hidden slot (two row words)."""
    return model_and_traces(5, 10, [12, 40, 8, 6], rows=5)


@pytest.fixture(autouse=True)
def fresh(world):
    """Each test on the chain as the module found it."""
    snapshot = world.node.snapshot()
    yield
    world.node.revert(snapshot)


def settle(w: World, m: Match, ledger: Ledger):
    w.market.transact(w.referee, "settle", m.gid)
    ledger.settle(m)
    w.check()


# ---------------------------------------------------------------------------
# Sybil challengers against an honest solver
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sybil", ["abandons", "plays slowly"])
def test_sybil_challengers_delay_payment_one_clock_at_most_and_pay_for_it(world, job_model, sybil):
    w = world
    books = w.open_books([w.requester, w.solver, *w.challengers])
    solver = party("solver", w.solver, job_model)
    job_id = w.post_and_commit(job_model[0], job_model[1], job_model[1])
    deadline = w.market.view("job", job_id)["challenge_deadline"]
    sybils = [party(f"sybil {i}", address, job_model) for i, address in enumerate(w.challengers)]
    gas_before = w.node.gas_used[w.solver.lower()]
    stalls, slow = (sybils, ()) if sybil == "abandons" else ((), sybils)
    # two Sybils at once, the solver answering each at once; the third in the window's last second
    matches = [challenge(w, job_id, s, solver) for s in sybils[:2]]
    play(w, matches, pause_at_challenger=True)
    matches.append(challenge(w, job_id, sybils[2], solver, at=deadline))
    play(w, matches[2:], pause_at_challenger=True)
    ledger = Ledger(w, games=len(matches))
    play(w, matches, stalls=stalls, slow=slow)
    assert all(m.result == SOLVER_WON for m in matches), [m.reason for m in matches]
    for m in matches:
        settle(w, m, ledger)

    # the solver is paid as soon as the last Sybil's game is over: at most one clock late
    paid_at = w.node.timestamp()
    assert paid_at - deadline <= CLOCK + 1
    w.market.transact(w.referee, "finalize", job_id)
    ledger.finalize()
    defend_gas = (w.node.gas_used[w.solver.lower()] - gas_before) // len(matches)
    w.close_out(job_id, ledger, books, {s.address: CHALLENGER_BOND for s in sybils})

    # each Sybil paid its whole bond to the solver; defending cost the solver less than that
    assert ledger.credit[w.solver] == w.fee + 3 * CHALLENGER_BOND
    price = CHALLENGER_BOND // defend_gas  # the highest gas price at which the bond repays the defence
    assert CHALLENGER_BOND > defend_gas * gas_price(w)
    STATS.figures.append(f"Sybil who {sybil}: payment {paid_at - deadline} s after the challenge deadline "
                         f"(clock {CLOCK} s); the solver's gas per game {defend_gas:,}; its bond repays it up to "
                         f"{price / 1e9:,.0f} gwei")


def test_finalize_waits_for_the_last_game(world, job_model):
    # The other side of the bound: while a Sybil's game is open, the job cannot be finalized.
    w = world
    solver = party("solver", w.solver, job_model)
    job_id = w.post_and_commit(job_model[0], job_model[1], job_model[1])
    deadline = w.market.view("job", job_id)["challenge_deadline"]
    m = challenge(w, job_id, party("sybil", w.challengers[0], job_model), solver, at=deadline)
    play(w, [m], pause_at_challenger=True)  # the solver answers at once
    w.node.mine(deadline + CLOCK)
    with pytest.raises(Exception, match="market: game still open"):
        w.market.transact(w.referee, "finalize", job_id)
    play(w, [m], stalls=[m.challenger])
    assert m.result == SOLVER_WON and m.ended == deadline + CLOCK + 1


def gas_price(w: World) -> int:
    return int(w.node.request("eth_gasPrice", []), 16)


# ---------------------------------------------------------------------------
# A cheating solver that challenges itself from a second account
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["accomplice wins first", "accomplice forfeits", "honest challenger wins first"])
def test_self_challenge_still_costs_the_cheater_and_never_the_honest_challenger(world, job_model, order):
    w = world
    model, honest, _ = job_model
    lie = wrong_element(honest, honest.op_count, row=4, col=2)
    accomplice_address, honest_address = w.challengers[:2]
    books = w.open_books([w.requester, w.solver, *w.challengers])
    solver = party("cheater", w.solver, job_model, trace=lie, honest=False)
    accomplice = party("accomplice", accomplice_address, job_model, honest=False)
    judge = party("honest challenger", honest_address, job_model)
    job_id = w.post_and_commit(model, honest, lie)
    ours = challenge(w, job_id, accomplice, solver)  # the accomplice is first in line
    theirs = challenge(w, job_id, judge, solver)
    ledger = Ledger(w, games=2)

    if order == "accomplice wins first":
        # the cheater plays its lie against its accomplice (who plays the honest trace and wins
        # in seconds) and ignores the honest challenger, who wins on time, after the rejection
        play(w, [ours])
        settle(w, ours, ledger)
        play(w, [theirs], stalls=[solver])
        settle(w, theirs, ledger)
    elif order == "accomplice forfeits":
        # the accomplice abandons its game (the cheater wins it on time, and its bond) while
        # the cheater still loses to the honest challenger
        play(w, [theirs])
        settle(w, theirs, ledger)
        play(w, [ours], stalls=[accomplice])
        settle(w, ours, ledger)
    else:
        # the honest challenger wins first; no one but the accomplice may take the accomplice's
        # game out of the pool, and it is played out: the accomplice wins it
        play(w, [theirs])
        settle(w, theirs, ledger)
        with pytest.raises(Exception, match="market: caller is not the challenger"):
            w.market.transact(honest_address, "reclaim", ours.gid)
        play(w, [ours])
        settle(w, ours, ledger)
    w.close_out(job_id, ledger, books, {accomplice_address: CHALLENGER_BOND, honest_address: CHALLENGER_BOND})

    assert theirs.result == CHALLENGER_WON
    pair = ledger.credit.get(w.solver, 0) + ledger.credit.get(accomplice_address, 0) + ledger.stake
    pair_in = SOLVER_BOND + CHALLENGER_BOND
    # the accomplice's gas refund repays gas it burned; beyond it, the pair loses 90% of the bond
    ours_refund = w.market.view("refund_of", ours.gid) if ours.result == CHALLENGER_WON else 0
    assert pair_in - (pair - ours_refund) >= SOLVER_BOND * 9 // 10
    honest_refund = w.market.view("refund_of", theirs.gid)
    assert ledger.credit[w.requester] == ledger.fee
    if order != "accomplice forfeits":
        # two winning games, whatever the settle order: each its bond, refund and half the pool less the fee
        two = w.pool // 2 - w.fee_each
        assert two > 0
        assert ledger.credit[accomplice_address] == CHALLENGER_BOND + ours_refund + two
        assert ledger.credit[honest_address] == CHALLENGER_BOND + honest_refund + two
    else:
        assert ledger.credit[honest_address] == CHALLENGER_BOND + honest_refund + w.reward


# ---------------------------------------------------------------------------
# Liveness: a solver who stops answering
# ---------------------------------------------------------------------------


def test_silent_solver_loses_one_second_after_its_clock(world, job_model):
    w = world
    model, honest, _ = job_model
    lie = wrong_element(honest, 2, row=0, col=0)
    books = w.open_books([w.requester, w.solver, *w.challengers])
    solver = party("silent solver", w.solver, job_model, trace=lie, honest=False)
    m = challenge(w, w.post_and_commit(model, honest, lie), party("challenger", w.challengers[0], job_model), solver)
    with pytest.raises(Exception, match="game: clock has not run out"):
        w.game.transact(w.challengers[0], "timeout", m.gid, at=m.opened + CLOCK)
    play(w, [m], stalls=[solver])
    assert (m.result, m.reason, m.ended) == (CHALLENGER_WON, "timeout", m.opened + CLOCK + 1)
    ledger = Ledger(w)
    settle(w, m, ledger)
    w.close_out(w.market.view("job_count"), ledger, books, {w.challengers[0]: CHALLENGER_BOND})
    assert ledger.credit[w.challengers[0]] == CHALLENGER_BOND + w.market.view("refund_of", m.gid) + w.reward


# ---------------------------------------------------------------------------
# Bond sizing from measured full games
# ---------------------------------------------------------------------------


def full_games(w: World, job_model) -> tuple[int, int]:
    """Gas of an honest solver defending a full game against a liar who loses at the last step,
    and of an honest challenger winning a full game at the last step (settle and withdraw
    included)."""
    model, honest, _ = job_model
    used = w.node.gas_used
    # the solver's defence: a liar who believes a wrong last element plays to the one step
    liar = party("liar", w.challengers[0], job_model, trace=wrong_element(honest, honest.op_count, row=4, col=5),
                 honest=False)
    solver = party("solver", w.solver, job_model)
    job_id = w.post_and_commit(model, honest, honest)
    start = used[w.solver.lower()]
    m = challenge(w, job_id, liar, solver)
    play(w, [m])
    assert m.result == SOLVER_WON and m.reason == "element matches"
    w.market.transact(w.solver, "settle", m.gid)
    defend = used[w.solver.lower()] - start

    # the challenger's win: the solver lies in the last element of the last row
    lie = wrong_element(honest, honest.op_count, row=4, col=5)
    solver = party("cheater", w.solver, job_model, trace=lie, honest=False)
    job_id = w.post_and_commit(model, honest, lie)
    judge = party("challenger", w.challengers[1], job_model)
    start = used[judge.address.lower()]
    m = challenge(w, job_id, judge, solver)
    play(w, [m])
    assert m.result == CHALLENGER_WON and m.reason == "element differs"
    w.market.transact(judge.address, "settle", m.gid)
    w.market.transact(judge.address, "withdraw")
    return defend, used[judge.address.lower()] - start


def test_minimum_bonds_from_measured_games_keep_honest_winners_whole(world, job_model, project, accounts):
    defend, win = full_games(world, job_model)
    tip = 10**9
    price = 10**12 + tip  # a 1000 gwei base fee and a 1 gwei tip: bonds sized far above today's prices
    bonds = minimum_bonds(defend, win, price, SHARE_BPS)

    # a market with exactly the minimum bonds, the same games replayed at that gas price
    w = World(project, accounts, challenger_bond=bonds.challenger_bond, min_solver_bond=bonds.min_solver_bond)
    assert w.solver_bond == bonds.min_solver_bond  # the jobs use the minimum
    judge = w.challengers[1]
    before = w.node.balance(judge)
    w.node.base_fee, w.node.tip = price - tip, tip
    try:
        replay_defend, replay_win = full_games(w, job_model)
    finally:
        w.node.base_fee = None
    # the honest challenger's real balance: bond out; bond, refund and bonus in, every gas unit at 1001 gwei
    judge_net = w.node.balance(judge) - before
    assert judge_net >= 0, f"the honest challenger lost {-judge_net} wei at the sized bonds"
    # the honest solver's defence gas at that price is repaid by the bond it won
    assert replay_defend * price <= bonds.challenger_bond
    STATS.figures.append(
        f"bond sizing (arity {ARITY}, 4-op model, 5 rows; gas +{HEADROOM_PCT}%): a full defence {defend:,} gas, "
        f"a full challenge {win:,} gas (replayed: {replay_defend:,} and {replay_win:,}); at 1001 gwei "
        f"challenger_bond >= {bonds.challenger_bond / 1e18:.4f} ETH, min_solver_bond >= "
        f"{bonds.min_solver_bond / 1e18:.4f} ETH (pool {SHARE_BPS / 100:.2f}%); the honest challenger "
        f"netted {judge_net / 1e18:.6f} ETH")
