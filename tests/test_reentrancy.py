"""Reentrancy by a malicious contract acting as requester, solver and challenger.

``contracts/mocks/reentrant_receiver.vy`` is an account contract: it deposits, posts, claims,
commits, challenges and plays through ``execute``, and when it is paid it calls back into the
market with calldata armed beforehand. The market pays out only in ``withdraw``,
``withdraw_stake`` and ``release_to_sink``, all ``@nonreentrant`` and updating state before
sending; so here the receiver earns a credit in each role, is paid, and tries to re-enter the
market from inside the payment: to be paid again, to take out stake, to settle a game, to
sweep the sink (the last two would succeed outside the payment). Every attempt must fail while the outer payment goes through exactly once,
and the money invariant holds after every transaction (tests/accounting.py).
"""


import pytest

from market_world import WINDOWS, World, model_and_traces
from referee import commitments as cm
from referee.cheats import wrong_element
from rpc import Abi


@pytest.fixture(scope="module")
def world(project, accounts):
    return World(project, accounts)


@pytest.fixture(scope="module")
def job_model():
    return model_and_traces(12, 6, [5, 4], rows=3)


@pytest.fixture
def receiver(world, project, accounts):
    snapshot = world.node.snapshot()
    contract = accounts[0].deploy(project.reentrant_receiver)
    yield Abi(world.node, contract.address, contract.contract_type.abi)
    world.node.revert(snapshot)


def act(w: World, receiver: Abi, name: str, *args, value: int = 0):
    """The receiver calls the market as its own account."""
    receiver.transact(w.referee, "execute", w.market.address, w.market.data(name, *args), value=value)
    w.check()


def register(w: World, model) -> int:
    if w.registry.view("model_id", model.entry) == 0:
        w.registry.transact(w.requester, "register", *model.registration())
    return w.registry.view("model_id", model.entry)


def earn_as_requester(w, receiver, job_model) -> int:
    """Posts a job and cancels it: the fee comes back as credit."""
    model, honest, _ = job_model
    act(w, receiver, "post", register(w, model), 3, cm.packed(honest.slots[0]), w.solver_bond, *WINDOWS,
        value=w.fee)
    act(w, receiver, "cancel", w.market.view("job_count"))
    return w.fee


def earn_as_solver(w, receiver, job_model) -> int:
    """Stakes, claims, commits the honest result and is finalized: the fee is its credit."""
    model, honest, _ = job_model
    w.market.transact(w.requester, "post", register(w, model), 3, cm.packed(honest.slots[0]), w.solver_bond,
                      *WINDOWS, value=w.fee)
    job_id = w.market.view("job_count")
    act(w, receiver, "deposit", value=w.solver_bond)
    act(w, receiver, "claim", job_id)
    n = honest.op_count
    act(w, receiver, "commit", job_id, cm.packed(honest.output), honest.trace_root, honest.state_tree(n).proof(n))
    w.node.mine(w.market.view("job", job_id)["challenge_deadline"] + 1)
    w.market.transact(w.referee, "finalize", job_id)
    w.check()
    return w.fee


def earn_as_challenger(w, receiver, job_model) -> int:
    """Challenges a wrong result and wins on time: its bond, gas refund and bonus are its credit."""
    model, honest, _ = job_model
    lie = wrong_element(honest, honest.op_count, row=2, col=1)
    job_id = w.post_and_commit(model, honest, lie)
    act(w, receiver, "challenge", job_id, value=w.challenger_bond)
    game_id = w.game.view("game_count")
    # the cheater never answers; the receiver wins on time and settles
    receiver.transact(w.referee, "execute", w.game.address, w.game.data("timeout", game_id),
                      at=w.game.view("deadline", game_id) + 1)
    assert w.game.view("result", game_id) == 2  # challenger won
    refund = w.market.view("refund_of", game_id)
    act(w, receiver, "settle", game_id)
    # its bond, its gas (the challenge, the timeout and, settling its own game, the settle) and
    # the sole winner's bonus
    credit = w.market.view("credit", receiver.address)
    assert credit > w.challenger_bond + refund + w.reward
    return credit


EARN = {"requester": earn_as_requester, "solver": earn_as_solver, "challenger": earn_as_challenger}
REENTRIES = {
    "withdraw again": lambda w: w.market.data("withdraw"),
    "withdraw stake": lambda w: w.market.data("withdraw_stake", 1),
    "sweep the sink": lambda w: w.market.data("release_to_sink"),
    "settle a game": lambda w: w.market.data("settle", max(w.game.view("game_count"), 1)),
}


@pytest.mark.parametrize("reentry", REENTRIES)
@pytest.mark.parametrize("role", EARN)
def test_reentrant_receiver_paid_exactly_once_in_every_role(world, receiver, job_model, role, reentry):
    w = world
    owed = EARN[role](w, receiver, job_model)
    assert w.market.view("credit", receiver.address) == owed
    stake = w.market.view("stake", receiver.address)
    receiver.transact(w.referee, "arm", w.market.address, REENTRIES[reentry](w))
    balance = w.node.balance(w.market.address)
    act(w, receiver, "withdraw")
    assert receiver.view("attempts") == 1 and receiver.view("successes") == 0
    assert receiver.view("received") == owed == w.node.balance(receiver.address)
    assert w.node.balance(w.market.address) == balance - owed
    assert w.market.view("credit", receiver.address) == 0 and w.market.view("stake", receiver.address) == stake
    if reentry == "sweep the sink" and w.market.view("sink_pending"):
        # outside the payment the same call goes through: it was the lock that refused it
        act(w, receiver, "release_to_sink")
        assert w.market.view("sink_pending") == 0
    if stake:  # the solver's stake comes out once too, through the same armed callback
        receiver.transact(w.referee, "arm", w.market.address, REENTRIES[reentry](w))
        act(w, receiver, "withdraw_stake", stake)
        assert receiver.view("attempts") == 2 and receiver.view("successes") == 0
        assert receiver.view("received") == owed + stake
        assert w.market.view("stake", receiver.address) == 0
