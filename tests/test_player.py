"""``next_move`` when the node has not served the opponent's log yet (agents/player.py).

A node can answer a call at its newest block before its log queries reach that block: anvil
did, mining on a 12-second interval under load, and the flood's player read a game record in
phase ``pick`` while the ``ChildrenRevealed`` log it answers was not served yet (it crashed on
``None.left``). The move must wait for the next tick instead.
"""

from flood import Lockstep, sybil_scene
from flood import agent, deployment, model  # noqa: F401 (fixtures)
from referee.agents.client import COMMITTED
from referee.agents.player import CHOOSE, next_move
from referee.agents.solver import Solver


def test_next_move_waits_for_a_log_not_served_yet(chain, accounts, deployment, model, agent, tmp_path,
                                                  monkeypatch):
    solver = agent(Solver, accounts[2], "solver")
    market, game = solver.client.market, solver.client.game
    job, attacker = sybil_scene(solver, model, deployment, accounts[1], accounts[3], tmp_path)
    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([solver], [solver], lambda: market.job(job).status == COMMITTED)
        attacker.challenge(job, 1)
        lockstep.run([attacker], [solver], lambda: len(attacker.games) == 1)
        [game_id] = attacker.games
        lockstep.run([solver], [solver], lambda: game.games(game_id).phase == CHOOSE)  # the solver bisected

    client = attacker.client
    trace = attacker.trace_of(job)
    with monkeypatch.context() as patch:  # the record says "choose", the Bisected log is not served
        patch.setattr(client, "game_log", lambda game_id, event: None)
        assert next_move(client, game_id, False, model, trace) is None
    move = next_move(client, game_id, False, model, trace)  # served: the answer goes out
    assert move is not None and move.method == "choose", move
