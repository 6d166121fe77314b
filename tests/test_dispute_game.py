"""DisputeGame on anvil: whole games between traces, every move's checks, and the clocks.

Games are opened through ``game_owner_mock`` (an owner harness) so the game is tested on its
own; ``test_disputes.py`` plays the same games through the job market. Each side plays from its
own trace with ``referee.game``; a liar is a party whose trace is wrong (``dispute_driver``).
"""


import ape
import pytest

from dispute_driver import Party, play
from game_bots import CHALLENGER_WON, SOLVER_WON
from helpers import linear_parts, linear_witness, model_and_trace
from referee import game as moves
from referee.cheats import garbage_padding, wrong_element, wrong_shape
from referee.trace import Trace
from referee.agents.deployment import deploy_game

CLOCK = 3600
ARITIES = (2, 4, 8)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_ops():
    """5 ops (state depth 3), 3 rows (one padding leaf in every row tree)."""
    return model_and_trace(41, 6, [5, 7, 4, 6, 3], rows=3)


@pytest.fixture(scope="module")
def solver(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def challenger(accounts):
    return accounts[2]


@pytest.fixture(scope="module")
def stranger(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def games(project, deployer):
    """One game contract and one owner harness per arity."""
    deployed = {}
    for arity in ARITIES:
        game = deploy_game(deployer, arity, CLOCK, project)
        deployed[arity] = (game, deployer.deploy(project.game_owner_mock, game.address))
    return deployed


def open_game(games, arity, model, honest: Trace, solver: Party, challenger: Party, sender):
    """Open a game over the solver's committed S_N; S_0 is the honest input state."""
    game, owner = games[arity]
    owner.open(solver.account, challenger.account, model.ops_root, len(model.ops), honest.state_roots[0],
               solver.trace.trace_root, sender=sender)
    return game, owner, game.game_count()


# ---------------------------------------------------------------------------
# Whole games
# ---------------------------------------------------------------------------


SOLVER_LIES = {
    # name: (lie applied to the honest trace, reason the solver loses)
    "wrong output element": (lambda t: wrong_element(t, 5, row=2, col=1), "element differs"),
    "wrong intermediate slot, right output": (lambda t: wrong_element(t, 2, row=1, col=3), "element differs"),
    "wrong output cols in a slot": (lambda t: wrong_shape(t, 1, extra_cols=1), "output header differs from the shape rule"),
    "wrong rows in a slot": (lambda t: wrong_shape(t, 3, extra_rows=1), "output header differs from the shape rule"),
    "garbage in an output padding row": (lambda t: garbage_padding(t, 5), "padding leaf"),
    "garbage in an intermediate padding row": (lambda t: garbage_padding(t, 2), "padding leaf"),
}


def _with_arities(lies: dict) -> list[tuple[str, int]]:
    """Each lie once, the arities taken in turn (every arity meets every level)."""
    return [(lie, ARITIES[i % len(ARITIES)]) for i, lie in enumerate(lies)]


@pytest.mark.parametrize("lie, arity", _with_arities(SOLVER_LIES))
def test_play_lying_solver_vs_honest_challenger_succeeds(chain, games, five_ops, solver, challenger, stranger,
                                                          arity, lie):
    model, honest = five_ops
    make_lie, reason = SOLVER_LIES[lie]
    liar, judge = Party(solver, model, make_lie(honest)), Party(challenger, model, honest)
    assert liar.trace.trace_root != honest.trace_root
    game, owner, gid = open_game(games, arity, model, honest, liar, judge, stranger)

    outcome = play(chain, game, gid, liar, judge)

    assert outcome.phase == CHALLENGER_WON and not outcome.solver_won
    assert outcome.reason == reason
    assert game.result(gid) == 2


CHALLENGER_LIES = {
    "disputes a right element": (lambda t: wrong_element(t, 3, row=0, col=2), "element matches"),
    "disputes a right output element": (lambda t: wrong_element(t, 5, row=2, col=0), "element matches"),
    "disputes a zero padding leaf": (lambda t: garbage_padding(t, 4), "padding leaf"),
    "believes a wrong shape": (lambda t: wrong_shape(t, 2, extra_cols=1), "element matches"),
    "agrees with everything": (lambda t: t, "padding leaf"),  # picks right children into padding
}


@pytest.mark.parametrize("lie, arity", _with_arities(CHALLENGER_LIES))
def test_play_honest_solver_vs_lying_challenger_succeeds(chain, games, five_ops, solver, challenger, stranger,
                                                          arity, lie):
    model, honest = five_ops
    make_lie, reason = CHALLENGER_LIES[lie]
    judge, liar = Party(solver, model, honest), Party(challenger, model, make_lie(honest))
    game, owner, gid = open_game(games, arity, model, honest, judge, liar, stranger)

    outcome = play(chain, game, gid, judge, liar)

    assert outcome.phase == SOLVER_WON and outcome.solver_won
    assert outcome.reason == reason
    assert game.result(gid) == 1


@pytest.mark.parametrize("stalling", ["solver", "challenger"])
def test_timeout_stalling_side_loses_succeeds(chain, games, five_ops, solver, challenger, stranger, stalling):
    model, honest = five_ops
    lie = wrong_element(honest, 5, row=0, col=0)
    liar = Party(solver, model, lie, stalls=stalling == "solver")
    judge = Party(challenger, model, honest, stalls=stalling == "challenger")
    game, owner, gid = open_game(games, 2, model, honest, liar, judge, stranger)

    outcome = play(chain, game, gid, liar, judge)

    assert outcome.solver_won == (stalling == "challenger")
    assert outcome.reason == "timeout"
    assert game.result(gid) == (1 if stalling == "challenger" else 2)


def test_open_single_op_model_starts_at_transition_succeeds(chain, games, solver, challenger, stranger):
    model, honest = model_and_trace(7, 9, [4], rows=1)
    liar = Party(solver, model, wrong_element(honest, 1, row=0, col=3))
    judge = Party(challenger, model, honest)
    game, owner, gid = open_game(games, 4, model, honest, liar, judge, stranger)
    assert game.games(gid).phase == 3 and list(game.points(gid)) == []

    outcome = play(chain, game, gid, liar, judge)

    # one op, one row: transition, row, step: no bisection and no descent
    assert outcome.moves == 3 and not outcome.solver_won


def test_points_matches_offchain_bisection_succeeds(chain, games, five_ops, solver, challenger, stranger):
    model, honest = five_ops
    game, _, gid = open_game(games, 4, model, honest, Party(solver, model, wrong_element(honest, 5)),
                             Party(challenger, model, honest), stranger)
    assert list(game.points(gid)) == moves.bisection_points(0, 5, 4)


def test_bisect_spends_the_movers_clock_succeeds(chain, games, five_ops, solver, challenger, stranger):
    model, honest = five_ops
    liar = Party(solver, model, wrong_element(honest, 5))
    game, _, gid = open_game(games, 2, model, honest, liar, Party(challenger, model, honest), stranger)
    opened = game.games(gid).last_move
    chain.pending_timestamp = opened + 100
    game.bisect(gid, moves.bisection_roots(liar.trace, 0, 5, 2), sender=solver)
    g = game.games(gid)
    assert g.solver_time == CLOCK - 100 and g.challenger_time == CLOCK and g.last_move == opened + 100


# ---------------------------------------------------------------------------
# Every move's checks: a bad move reverts and changes nothing
# ---------------------------------------------------------------------------


@pytest.fixture
def at_phase(chain, games, five_ops, solver, challenger, stranger):
    """Open a game (honest solver, challenger disputing output row 2) and play it up to a phase."""
    model, honest = five_ops

    def advance(phase: int, arity: int = 2):
        judge = Party(solver, model, honest)
        liar = Party(challenger, model, wrong_element(honest, 5, row=2, col=1))
        game, _, gid = open_game(games, arity, model, honest, judge, liar, stranger)
        state = play(chain, game, gid, judge, liar, stop_at=phase)
        assert game.games(gid).phase == phase
        return game, gid, state, judge, liar

    return advance


def _reverts_unchanged(game, gid, reason, move, *args, sender):
    before = game.games(gid)
    with ape.reverts(reason) if reason is not None else ape.reverts():
        getattr(game, move)(gid, *args, sender=sender)
    assert game.games(gid) == before


def test_bisect_wrong_caller_reverts(at_phase, challenger):
    game, gid, _, judge, _ = at_phase(1)
    _reverts_unchanged(game, gid, "game: not your move", "bisect", moves.bisection_roots(judge.trace, 0, 5, 2),
                       sender=challenger)


def test_choose_wrong_phase_reverts(at_phase, challenger):
    game, gid, _, _, _ = at_phase(1)
    _reverts_unchanged(game, gid, "game: wrong phase", "choose", 0, [b"\x00" * 32], sender=challenger)


def test_bisect_unknown_game_reverts(at_phase, solver):
    game, _, _, _, _ = at_phase(1)
    with ape.reverts("game: unknown game"):
        game.bisect(10**6, [b"\x00" * 32], sender=solver)


def test_bisect_wrong_number_of_roots_reverts(at_phase, solver):
    game, gid, _, judge, _ = at_phase(1)
    roots = moves.bisection_roots(judge.trace, 0, 5, 2)
    _reverts_unchanged(game, gid, "game: wrong number of roots", "bisect", roots + roots, sender=solver)


def test_choose_roots_differ_reverts(at_phase, challenger):
    game, gid, state, _, _ = at_phase(2)
    _reverts_unchanged(game, gid, "game: roots differ from the solver's", "choose", 0,
                       [b"\x01" * 32] * len(state.roots), sender=challenger)


def test_choose_index_out_of_range_reverts(at_phase, challenger):
    game, gid, state, _, _ = at_phase(2)
    _reverts_unchanged(game, gid, "game: index out of range", "choose", 2, state.roots, sender=challenger)


def _transition(at_phase):
    game, gid, state, judge, liar = at_phase(3)
    op = game.games(gid).hi
    return game, gid, moves.transition(judge.model, judge.trace, op)


def test_transition_descriptor_not_in_model_reverts(at_phase, solver):
    game, gid, t = _transition(at_phase)
    desc = list(t.desc)
    desc[1] ^= 1  # flip ReLU
    args = list(t.args())
    args[0] = tuple(desc)
    _reverts_unchanged(game, gid, "game: descriptor not in the model", "transition", *args, sender=solver)


def test_transition_input_header_not_in_agreed_state_reverts(at_phase, solver):
    game, gid, t = _transition(at_phase)
    args = list(t.args())
    args[2] = [(t.inputs[0][0] + 1, *t.inputs[0][1:])] + list(t.inputs[1:])
    _reverts_unchanged(game, gid, "game: input header not in the agreed state", "transition", *args, sender=solver)


def test_transition_slot_not_empty_reverts(at_phase, solver):
    game, gid, t = _transition(at_phase)
    args = list(t.args())
    args[6] = [b"\x02" * 32] + list(t.output_proof[1:])
    _reverts_unchanged(game, gid, "game: output is not the one change from the agreed state", "transition", *args, sender=solver)


def test_transition_output_header_not_in_disputed_state_reverts(at_phase, solver):
    game, gid, t = _transition(at_phase)
    args = list(t.args())
    args[5] = (t.output[0], t.output[1], b"\x03" * 32, t.output[3])
    _reverts_unchanged(game, gid, "game: output is not the one change from the agreed state", "transition", *args,
                       sender=solver)


def test_transition_retry_after_bad_proof_succeeds(at_phase, solver):
    game, gid, t = _transition(at_phase)
    args = list(t.args())
    args[6] = [b"\x02" * 32] + list(t.output_proof[1:])
    with ape.reverts():
        game.transition(gid, *args, sender=solver)
    game.transition(gid, *t.args(), sender=solver)
    assert game.games(gid).phase == 4


def test_reveal_children_do_not_hash_reverts(at_phase, solver):
    game, gid, _, judge, _ = at_phase(4)
    g = game.games(gid)
    left, right = moves.row_children(judge.trace, g.hi, g.levels_left, g.node_index)
    _reverts_unchanged(game, gid, "game: children do not hash to the node", "reveal_children", right, left,
                       sender=solver)


def test_pick_children_differ_reverts(at_phase, challenger):
    game, gid, state, _, _ = at_phase(5)
    left, right = state.children
    _reverts_unchanged(game, gid, "game: children differ from the solver's", "pick", True, right, left,
                       sender=challenger)


def test_reveal_row_wrong_length_reverts(at_phase, solver):
    game, gid, _, judge, _ = at_phase(6)
    g = game.games(gid)
    row = judge.trace.row_bytes(g.hi, g.node_index)
    _reverts_unchanged(game, gid, "game: row length differs from the output's cols", "reveal_row", row[:-1],
                       sender=solver)


def test_reveal_row_wrong_bytes_reverts(at_phase, solver):
    game, gid, _, judge, _ = at_phase(6)
    g = game.games(gid)
    row = bytearray(judge.trace.row_bytes(g.hi, g.node_index))
    row[0] ^= 1
    _reverts_unchanged(game, gid, "game: row does not hash to the leaf", "reveal_row", bytes(row), sender=solver)


def _step(at_phase):
    game, gid, state, _, liar = at_phase(7)
    g = game.games(gid)
    s = moves.step(liar.model, liar.trace, g.hi, g.node_index, state.row)
    return game, gid, s, list(s.args())


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


def _witness(s, **changes) -> bytes:
    """The step's linear witness with some of its parts replaced."""
    return linear_witness(s.witness, **changes)


def _part(s, name: str):
    return linear_parts(s.witness)[name]


def _other_desc(s):
    desc = list(s.desc)
    desc[6] = b"\x04" * 32  # another params_root
    return tuple(desc)


STEP_TAMPERING = {
    # name: (argument index, tampering, revert reason); the witness (index 6) is the linear
    # verifier's, whose reasons come back through the game's staticcall
    "column out of range": (0, lambda s: 3, "game: column out of range"),
    "row word": (1, lambda s: _flip(s.row_word), "game: row word not in the revealed row"),
    "descriptor": (3, _other_desc, "game: op differs from the transition's"),
    "input headers": (4, lambda s: [(s.inputs[0][0] + 1, *s.inputs[0][1:])], "game: op differs from the transition's"),
    "input headers, one too many": (4, lambda s: [*s.inputs, s.inputs[0]], "game: op differs from the transition's"),
    "row index": (5, lambda s: s.row_index + 1, "game: not the revealed row"),
    "input row length": (6, lambda s: _witness(s, x=_part(s, "x")[:-1]), "linear: input row length differs from the op's"),
    "input row bytes": (6, lambda s: _witness(s, x=_flip(_part(s, "x"))), "linear: input row not in the op's input"),
    "weights rows root": (6, lambda s: _witness(s, weights_rows_root=b"\x04" * 32),
                          "linear: weights header does not match the op"),
    "weight row length": (6, lambda s: _witness(s, w=_part(s, "w")[:-1]), "linear: weight row length differs from the op's"),
    "weight row bias": (6, lambda s: _witness(s, bias=_part(s, "bias") + 1), "linear: weight row not in the weights"),
    "weight row bytes": (6, lambda s: _witness(s, w=_flip(_part(s, "w"))), "linear: weight row not in the weights"),
}


@pytest.mark.parametrize("tampering", STEP_TAMPERING)
def test_step_bad_proof_reverts(at_phase, challenger, tampering):
    game, gid, s, args = _step(at_phase)
    index, tamper, reason = STEP_TAMPERING[tampering]
    args[index] = tamper(s)
    _reverts_unchanged(game, gid, reason, "step", *args, sender=challenger)


def test_step_witness_not_abi_reverts(at_phase, challenger):
    """A witness the verifier cannot even decode: the verifier reverts (no reason), the move is
    rejected and nothing changes."""
    game, gid, s, args = _step(at_phase)
    args[-1] = s.witness[:100]
    _reverts_unchanged(game, gid, None, "step", *args, sender=challenger)


def test_step_after_clock_ran_out_reverts(chain, at_phase, challenger):
    game, gid, s, args = _step(at_phase)
    chain.pending_timestamp = game.deadline(gid) + 1
    _reverts_unchanged(game, gid, "game: clock ran out", "step", *args, sender=challenger)


def test_timeout_clock_not_run_out_reverts(chain, at_phase, stranger):
    game, gid, _, _, _ = at_phase(7)
    chain.pending_timestamp = game.deadline(gid)
    _reverts_unchanged(game, gid, "game: clock has not run out", "timeout", sender=stranger)


def test_timeout_finished_game_reverts(chain, at_phase, challenger, stranger):
    game, gid, s, args = _step(at_phase)
    game.step(gid, *args, sender=challenger)
    assert game.games(gid).phase == SOLVER_WON
    chain.pending_timestamp = chain.pending_timestamp + 10 * CLOCK
    _reverts_unchanged(game, gid, "game: not in play", "timeout", sender=stranger)


def test_close_not_owner_reverts(at_phase, stranger):
    game, gid, _, _, _ = at_phase(1)
    _reverts_unchanged(game, gid, "game: caller is not the owner", "close", sender=stranger)


def test_close_by_owner_ends_game_succeeds(games, at_phase, solver, stranger):
    game, gid, _, judge, _ = at_phase(1)
    games[2][1].close(gid, sender=stranger)
    assert game.games(gid).phase == 10 and game.result(gid) == 3 and game.to_move(gid) == "0x" + "00" * 20
    with ape.reverts("game: wrong phase"):
        game.bisect(gid, moves.bisection_roots(judge.trace, 0, 5, 2), sender=solver)
    with ape.reverts("game: game is over"):
        games[2][1].close(gid, sender=stranger)


@pytest.mark.parametrize("arity, clock, reason", [
    (3, 10, "game: arity must be a power of two"),
    (1, 10, "game: arity out of range"),
    (128, 10, "game: arity out of range"),
    (2, 0, "game: zero clock"),
])
def test_constructor_bad_parameters_reverts(project, deployer, arity, clock, reason):
    with ape.reverts(reason):
        deployer.deploy(project.DisputeGame, arity, clock, [])


@pytest.mark.parametrize("n_ops, same, reason", [
    (0, False, "game: op count out of range"),
    (65536, False, "game: op count out of range"),
    (3, True, "game: solver and challenger must differ"),
])
def test_open_bad_arguments_reverts(games, solver, challenger, stranger, n_ops, same, reason):
    _, owner = games[2]
    with ape.reverts(reason):
        owner.open(solver, solver if same else challenger, b"\x01" * 32, n_ops, b"\x00" * 32, b"\x02" * 32,
                   sender=stranger)
