"""DisputeGame's verifier table, its descriptor checks at the transition, and moves at the deadline.

The one step is the op kind's verifier's (``contracts/verifiers/``), called with ``staticcall``:
its revert is a rejected move (nothing changes, the clock keeps running), a kind without a
verifier is refused, and the table is fixed when the game is deployed (protocol 10.3).
The descriptor tests give the game descriptors whose hashes all verify but which break
section 5 (an unknown flag bit, a nonzero ``input_b``): the solver must lose at the transition.
"""


import ape
import pytest

from dispute_driver import Party, play
from game_bots import CHALLENGER_WON, SOLVER_WON
from helpers import linear_parts, linear_witness, model_and_trace
from referee import commitments as cm
from referee import game as moves
from referee.agents.deployment import VERIFIER_CONTRACTS, ZERO_ADDRESS, deploy_game, deploy_verifiers
from referee.cheats import wrong_element
from referee.hashing import keccak256

CLOCK = 3600
TRANSITION, ROW, STEP = 3, 6, 7

# The game's state-changing functions: the moves, open/close and the batch. No function sets
# the verifier table.
GAME_FUNCTIONS = {"open", "close", "bisect", "choose", "transition", "reveal_children", "pick", "reveal_row",
                  "step", "timeout", "multicall"}


@pytest.fixture(scope="module")
def three_ops():
    return model_and_trace(23, 6, [5, 7, 4], rows=3)


@pytest.fixture(scope="module")
def one_op():
    return model_and_trace(7, 9, [4], rows=1)


@pytest.fixture(scope="module")
def game(project, deployer):
    g = deploy_game(deployer, 2, CLOCK, project)
    return g, deployer.deploy(project.game_owner_mock, g.address)


@pytest.fixture(scope="module")
def bare_game(project, deployer):
    """A game deployed with an empty verifier table: every kind lacks a verifier."""
    g = deployer.deploy(project.DisputeGame, 2, CLOCK, [])
    return g, deployer.deploy(project.game_owner_mock, g.address)


def _open(pair, model, honest, solver: Party, challenger: Party, sender, ops_root=None, s_n=None):
    g, owner = pair
    owner.open(solver.account, challenger.account, ops_root or model.ops_root, len(model.ops),
               honest.state_roots[0], s_n or solver.trace.trace_root, sender=sender)
    return g, g.game_count()


def _at_step(chain, pair, three_ops, accounts):
    """A game whose honest solver revealed output row 2; the challenger disputes a right element."""
    model, honest = three_ops
    judge = Party(accounts[1], model, honest)
    liar = Party(accounts[2], model, wrong_element(honest, 3, row=2, col=1))
    g, gid = _open(pair, model, honest, judge, liar, accounts[3])
    state = play(chain, g, gid, judge, liar, stop_at=STEP)
    rec = g.games(gid)
    return g, gid, moves.step(model, liar.trace, rec.hi, rec.node_index, state.row)


# ---------------------------------------------------------------------------
# The verifier table
# ---------------------------------------------------------------------------


def test_verifier_table_fixed_at_deployment_succeeds(project, game, deployer):
    g, _ = game
    table = [g.verifier(kind) for kind in range(1, len(VERIFIER_CONTRACTS) + 1)]
    assert table[0] != ZERO_ADDRESS and project.LinearVerifier.at(table[0]).address == table[0]
    for kind, address in enumerate(table, start=1):  # the kinds whose contract the project lacks
        has = VERIFIER_CONTRACTS[kind - 1] in project.contracts
        assert (address != ZERO_ADDRESS) == has
    assert g.verifier(0) == ZERO_ADDRESS and g.verifier(17) == ZERO_ADDRESS and g.verifier(2**256 - 1) == ZERO_ADDRESS
    # no function but the moves can change state, and none takes an address to install
    changing = {e.name for e in g.contract_type.abi if e.type == "function"
                and e.stateMutability in ("nonpayable", "payable")}
    assert changing == GAME_FUNCTIONS
    # the table lives in the code (an immutable), not in storage: two games deployed with
    # different tables have different runtime code
    other = deployer.deploy(project.DisputeGame, 2, CLOCK, [])
    assert other.verifier(1) == ZERO_ADDRESS
    assert ape.chain.provider.get_code(other.address) != ape.chain.provider.get_code(g.address)


def test_constructor_verifier_not_a_contract_reverts(project, deployer, accounts):
    with ape.reverts("game: verifier is not a contract"):
        deployer.deploy(project.DisputeGame, 2, CLOCK, [accounts[5].address])


def test_kind_without_verifier_loses_the_transition_succeeds(chain, bare_game, three_ops, accounts):
    """A game whose table has no verifier for the op's kind: the solver cannot defend the op (no
    step could be checked), so it loses at the transition."""
    model, honest = three_ops
    liar = Party(accounts[1], model, wrong_element(honest, 3, row=2, col=1))
    g, gid = _open(bare_game, model, honest, liar, Party(accounts[2], model, honest), accounts[3])
    outcome = play(chain, g, gid, liar, Party(accounts[2], model, honest))
    assert g.games(gid).phase == CHALLENGER_WON and outcome.reason == "unknown op"


def test_step_verifier_revert_is_a_rejected_move_clock_runs_succeeds(chain, game, three_ops, accounts):
    """A witness the verifier rejects reverts the step: nothing changes, the challenger's clock is
    not stopped (its last_move stays), and it may retry with the right witness on what is left."""
    g, gid, s = _at_step(chain, game, three_ops, accounts)
    before = g.games(gid)
    chain.pending_timestamp = before.last_move + 100
    bad = list(s.args())
    bad[-1] = linear_witness(s.witness, bias=linear_parts(s.witness)["bias"] + 1)
    with ape.reverts("linear: weight row not in the weights"):
        g.step(gid, *bad, sender=accounts[2])
    assert g.games(gid) == before and g.deadline(gid) == before.last_move + before.challenger_time
    chain.pending_timestamp = before.last_move + 200
    g.step(gid, *s.args(), sender=accounts[2])
    after = g.games(gid)
    assert after.phase == SOLVER_WON  # the challenger disputed a right element
    assert after.challenger_time == before.challenger_time - 200


def test_step_verifier_returning_nothing_reverts(chain, project, deployer, three_ops, accounts):
    """A linear verifier whose `step` returns without a word (as an address without code would):
    the game does not read the missing word as the element 0; the move is rejected, nothing
    changes, and the real verifier's answer is still taken."""
    verifiers = deploy_verifiers(deployer, project)
    mute = deployer.deploy(project.mute_verifier, verifiers[0])
    g = deployer.deploy(project.DisputeGame, 2, CLOCK, [mute.address, *verifiers[1:]])
    pair = (g, deployer.deploy(project.game_owner_mock, g.address))
    g, gid, s = _at_step(chain, pair, three_ops, accounts)
    before = g.games(gid)
    with ape.reverts("game: verifier returned no element"):
        g.step(gid, *s.args(), sender=accounts[2])
    assert g.games(gid) == before


def test_step_in_multicall_forwards_its_own_calldata_succeeds(chain, game, three_ops, accounts):
    """Inside a multicall the verifier is sent the sub-call's calldata (`msg.data` of the
    self-delegatecall), not the batch's: a forged step is skipped with the verifier's reason,
    the honest one after it decides the game."""
    g, gid, s = _at_step(chain, game, three_ops, accounts)
    bad = list(s.args())
    bad[-1] = linear_witness(s.witness, bias=linear_parts(s.witness)["bias"] + 1)
    receipt = g.multicall([g.step.encode_input(gid, *bad), g.step.encode_input(gid, *s.args())],
                          sender=accounts[2])
    [skipped] = receipt.decode_logs(g.CallSkipped)
    assert skipped.index == 0 and b"linear: weight row not in the weights" in bytes(skipped.reason)
    [stepped] = receipt.decode_logs(g.Stepped)
    assert stepped.row_index == s.row_index and stepped.column == s.column
    assert stepped.computed == stepped.claimed and g.games(gid).phase == SOLVER_WON


def test_verifier_revert_then_timeout_challenger_loses_succeeds(chain, game, three_ops, accounts):
    g, gid, s = _at_step(chain, game, three_ops, accounts)
    bad = list(s.args())
    bad[-1] = linear_witness(s.witness, x=linear_parts(s.witness)["x"][:-1])
    with ape.reverts("linear: input row length differs from the op's"):
        g.step(gid, *bad, sender=accounts[2])
    chain.pending_timestamp = g.deadline(gid) + 1
    g.timeout(gid, sender=accounts[3])
    assert g.games(gid).phase == SOLVER_WON and g.result(gid) == 1


# ---------------------------------------------------------------------------
# Descriptor validation at the transition (protocol 5, 7.2)
# ---------------------------------------------------------------------------


def _transition_with(chain, game, one_op, accounts, field: int, value: int):
    """A one-op game whose model's only descriptor has ``field`` set to ``value``; the hashes of
    the transition all verify (the ops root is that descriptor's leaf). Returns the outcome."""
    model, honest = one_op
    t = moves.transition(model, honest, 1)
    desc = list(t.desc)
    desc[field] = value
    desc = tuple(desc)
    leaf = keccak256(b"".join(int.to_bytes(w, 32, "big") if isinstance(w, int) else bytes(w) for w in desc))
    solver = Party(accounts[1], model, honest)
    g, gid = _open(game, model, honest, solver, Party(accounts[2], model, honest), accounts[3], ops_root=leaf,
                   s_n=honest.state_roots[1])
    receipt = g.transition(gid, desc, [], *t.args()[2:], sender=accounts[1])
    return g, gid, [log.reason for log in receipt.decode_logs(g.GameResolved)]


def test_transition_valid_descriptor_continues_succeeds(chain, game, one_op, accounts):
    """The control: the same construction with the model's own descriptor goes on to the row."""
    model, _ = one_op
    flags = model.ops[0].flags
    g, gid, resolved = _transition_with(chain, game, one_op, accounts, 1, flags)
    assert g.games(gid).phase == ROW and resolved == []


@pytest.mark.parametrize("flags", [4, 8, 64, 1 << 8, 1 << 255, 1 | 64, 1 | 2, 2 | 128])
def test_transition_unknown_flag_bit_solver_loses_succeeds(chain, game, one_op, accounts, flags):
    """Bits linear does not define, and the forbidden pairs ReLU + wide and wide + i16."""
    g, gid, resolved = _transition_with(chain, game, one_op, accounts, 1, flags)
    assert g.games(gid).phase == CHALLENGER_WON and g.result(gid) == 2 and resolved == ["op breaks its kind's rules"]


@pytest.mark.parametrize("flags", [2, 128])
def test_transition_flag_that_changes_the_output_dtype_solver_loses_succeeds(chain, game, one_op, accounts, flags):
    """`wide` and `i16` are linear's, but they make the output int32 / int16: the committed int8
    header is not what the shape rule gives."""
    g, gid, resolved = _transition_with(chain, game, one_op, accounts, 1, flags)
    assert g.games(gid).phase == CHALLENGER_WON and resolved == ["output header differs from the shape rule"]


@pytest.mark.parametrize("kind", [0, 12, 16, 17, 2**255])
def test_transition_kind_without_a_verifier_solver_loses_succeeds(chain, game, one_op, accounts, kind):
    """Kind 0 is invalid, and kinds past 11 have no verifier in the table (protocol 7.2, 10.3)."""
    g, gid, resolved = _transition_with(chain, game, one_op, accounts, 0, kind)
    assert g.games(gid).phase == CHALLENGER_WON and resolved == ["unknown op"]


def test_transition_kind_whose_rules_the_op_breaks_solver_loses_succeeds(chain, game, one_op, accounts):
    """Kind 9 (argmax) over a linear's words: a nonzero params root where argmax has none."""
    g, gid, resolved = _transition_with(chain, game, one_op, accounts, 0, 9)
    assert g.games(gid).phase == CHALLENGER_WON and resolved == ["op breaks its kind's rules"]


def test_transition_kind_that_needs_another_input_reverts(chain, game, one_op, accounts):
    """Kind 2 (matmul) reads two slots: one input header is a malformed move, rejected (the
    verifier reverts), and the game waits in its transition."""
    with ape.reverts():
        _transition_with(chain, game, one_op, accounts, 0, 2)
    g, _ = game
    assert g.games(g.game_count()).phase == TRANSITION


@pytest.mark.parametrize("input_b", [1, 2, 2**255])
def test_transition_input_slot_not_before_the_op_solver_loses_succeeds(chain, game, one_op, accounts, input_b):
    """A one-op model: slot 1 and later are not before op 1."""
    g, gid, resolved = _transition_with(chain, game, one_op, accounts, 3, input_b)
    assert g.games(gid).phase == CHALLENGER_WON and g.result(gid) == 2 and resolved == ["input slot not before the op"]


# ---------------------------------------------------------------------------
# Deadlines: a move made exactly at its deadline is accepted
# ---------------------------------------------------------------------------


def test_move_exactly_at_deadline_succeeds(chain, game, three_ops, accounts):
    """A solver's and a challenger's move, each made at the last second its side may move
    (``deadline(game)``, protocol 10.3): both are accepted, and the side's clock reaches 0."""
    model, honest = three_ops
    liar = Party(accounts[1], model, wrong_element(honest, 3, row=2, col=1))
    judge = Party(accounts[2], model, honest)
    g, gid = _open(game, model, honest, liar, judge, accounts[3])
    solver_deadline = g.deadline(gid)
    chain.pending_timestamp = solver_deadline
    g.bisect(gid, moves.bisection_roots(liar.trace, 0, 3, 2), sender=accounts[1])
    rec = g.games(gid)
    assert rec.phase == 2 and rec.solver_time == 0 and rec.last_move == solver_deadline
    challenger_deadline = g.deadline(gid)
    assert challenger_deadline == solver_deadline + CLOCK
    chain.pending_timestamp = challenger_deadline
    roots = moves.bisection_roots(liar.trace, 0, 3, 2)
    g.choose(gid, moves.disputed_part(judge.trace, 0, 3, 2, roots), roots, sender=accounts[2])
    rec = g.games(gid)
    assert rec.phase == 1 and rec.challenger_time == 0 and rec.last_move == challenger_deadline


def test_step_exactly_at_deadline_succeeds(chain, game, three_ops, accounts):
    """The challenger's last move at the last second (one second later is refused with
    "game: clock ran out": tests/test_dispute_game.py)."""
    g, gid, s = _at_step(chain, game, three_ops, accounts)
    deadline = g.deadline(gid)
    chain.pending_timestamp = deadline
    g.step(gid, *s.args(), sender=accounts[2])
    rec = g.games(gid)
    assert rec.phase == SOLVER_WON and rec.challenger_time == 0 and rec.last_move == deadline


def test_step_meter_covers_its_receipt_succeeds(chain, game, three_ops, accounts):
    """The challenger's metered step (refunded by the market) covers the step's receipt, and
    exceeds it by at most the calldata allowance of its zero bytes (metered at 16 gas a byte,
    charged 4) plus 1,000 gas: STEP_OVERHEAD_GAS is calibrated here."""
    g, gid, s = _at_step(chain, game, three_ops, accounts)
    data = bytes(g.step.as_transaction(gid, *s.args(), sender=accounts[2]).data)
    before = g.challenger_gas(gid)
    tx = g.step(gid, *s.args(), sender=accounts[2])
    metered = (g.challenger_gas(gid) - before) // tx.gas_price
    assert tx.gas_used <= metered <= tx.gas_used + 12 * data.count(0) + 1000, (tx.gas_used, metered)


# ---------------------------------------------------------------------------
# The transition's rule checks at their edges, and the checks of open, the constructor and
# deadline (the kills of benchmarks/mutate_contracts.py's `game` target: docs/security.md)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("input_a", [1, 2, 2**255])
def test_transition_input_a_not_before_the_op_solver_loses_succeeds(chain, game, one_op, accounts, input_a):
    """The first input slot too: slot 1 and later are not before op 1 (slot 1 of S_0 is Z[0], so
    without the rule the move would only revert on its input proof)."""
    g, gid, resolved = _transition_with(chain, game, one_op, accounts, 2, input_a)
    assert g.games(gid).phase == CHALLENGER_WON and g.result(gid) == 2 and resolved == ["input slot not before the op"]


def _transition_over_rows(game, one_op, accounts, rows: int):
    """A one-op game whose agreed input slot (S_0) has a header of ``rows`` rows and whose S_1
    fills slot 1 with the output header the shape rule gives, also of ``rows`` rows (linear keeps
    its input's rows); the rows roots are arbitrary, every hash of the transition verifies."""
    model, honest = one_op
    t = moves.transition(model, honest, 1)
    x, out = t.inputs[0], t.output
    x = (rows, x[1], b"\x05" * 32, x[3])
    out = (rows, out[1], b"\x06" * 32, out[3])
    slot_roots = [cm.header_root(x[0], x[1], x[2], x[3]), cm.header_root(out[0], out[1], out[2], out[3])]
    s_0, s_1 = cm.state_roots(slot_roots)
    g, owner = game
    owner.open(accounts[1], accounts[2], model.ops_root, 1, s_0, s_1, sender=accounts[3])
    gid = g.game_count()
    receipt = g.transition(gid, t.desc, t.desc_proof, [x], [cm.state_tree(slot_roots, 0).proof(0)], t.params, out,
                           cm.state_tree(slot_roots, 1).proof(1), sender=accounts[1])
    return g, gid, [log.reason for log in receipt.decode_logs(g.GameResolved)]


def test_transition_output_of_max_rows_continues_succeeds(game, one_op, accounts):
    """MAX_ROWS (65,536) rows is a valid output: the row descent starts, 16 levels deep."""
    g, gid, resolved = _transition_over_rows(game, one_op, accounts, 65536)
    rec = g.games(gid)
    assert resolved == [] and rec.phase == 4 and rec.rows == 65536 and rec.levels_left == 16


def test_transition_output_beyond_max_rows_solver_loses_succeeds(game, one_op, accounts):
    """One row more than MAX_ROWS: the solver loses (protocol 7.2, "the rule gives more than
    MAX_ROWS rows"), though the output header is the one linear's shape rule gives."""
    g, gid, resolved = _transition_over_rows(game, one_op, accounts, 65537)
    assert g.games(gid).phase == CHALLENGER_WON and resolved == ["op breaks its kind's rules"]


@pytest.mark.parametrize("count", ["none", "extra proof"])
def test_transition_wrong_number_of_input_proofs_reverts(game, one_op, accounts, count):
    """No input header, or one more proof than headers: a malformed move, rejected unchanged."""
    model, honest = one_op
    t = moves.transition(model, honest, 1)
    g, gid = _open(game, model, honest, Party(accounts[1], model, honest), Party(accounts[2], model, honest),
                   accounts[3])
    args = list(t.args())
    args[2], args[3] = ([], []) if count == "none" else (list(t.inputs), [*t.input_proofs, t.input_proofs[0]])
    before = g.games(gid)
    with ape.reverts("game: wrong number of input proofs"):
        g.transition(gid, *args, sender=accounts[1])
    assert g.games(gid) == before


@pytest.mark.parametrize("zero", ["solver", "challenger"])
def test_open_zero_address_reverts(game, accounts, zero):
    _, owner = game
    solver, challenger = accounts[1].address, accounts[2].address
    with ape.reverts("game: zero address"):
        owner.open(ZERO_ADDRESS if zero == "solver" else solver, ZERO_ADDRESS if zero == "challenger" else challenger,
                   b"\x01" * 32, 3, b"\x00" * 32, b"\x02" * 32, sender=accounts[3])


def test_open_max_ops_and_max_arity_succeeds(project, game, deployer, accounts):
    """The bounds are inclusive: a game of MAX_OPS (65,535) ops, and a game contract of arity
    MAX_ARITY (64), whose first bisection asks for 63 roots."""
    g, owner = game
    owner.open(accounts[1], accounts[2], b"\x01" * 32, 65535, b"\x00" * 32, b"\x02" * 32, sender=accounts[3])
    assert g.games(g.game_count()).hi == 65535
    wide = deployer.deploy(project.DisputeGame, 64, CLOCK, [])
    wide_owner = deployer.deploy(project.game_owner_mock, wide.address)
    wide_owner.open(accounts[1], accounts[2], b"\x01" * 32, 100, b"\x00" * 32, b"\x02" * 32, sender=accounts[3])
    assert wide.ARITY() == 64 and len(wide.points(1)) == 65


def test_deadline_of_a_finished_game_reverts(chain, game, three_ops, accounts):
    """`deadline` is a move's: a finished game (won at the step, or closed) has none."""
    g, gid, s = _at_step(chain, game, three_ops, accounts)
    g.step(gid, *s.args(), sender=accounts[2])
    assert g.games(gid).phase == SOLVER_WON
    with ape.reverts("game: not in play"):
        g.deadline(gid)
    pair = game
    model, honest = three_ops
    _, closed = _open(pair, model, honest, Party(accounts[1], model, honest), Party(accounts[2], model, honest),
                      accounts[3])
    pair[1].close(closed, sender=accounts[3])
    with ape.reverts("game: not in play"):
        g.deadline(closed)
