"""Whole dispute games over transformer-shaped models, on the real game and verifier contracts.

The models are the golden vectors' (tests/vectors/transformer_models.json: a post-norm encoder,
a padded encoder with the key mask of 5.9, a causal decoder, their 16-bit variants and a
Llama-shaped decoder with rope, mul, grouped matmuls and a split head), so every kind and flag
of protocol 5.1-5.14 appears, with several row counts (4 to 15 rows per slot, and the pooled
[G, d] slots). In each game a lying solver has changed one element of one slot (or grown a
slot by a column) and an honest challenger plays every move from its own trace
(tests/dispute_driver.py): the challenger must win, and the game must end at the op the lie
was put in, by the kind's one step (or at its transition for a shape lie). An honest solver
must likewise beat a challenger whose trace is wrong.

Every op of the Llama decoder and of the padded encoder gets a lie; the other models one op of
each kind. The counts per kind are printed at the end of the run (tests/conftest.py).
"""

import random
from collections import Counter

import pytest
from eth_abi import encode

from dispute_driver import Party, play
from game_bots import STATS, forged_witness
from helpers import load_vectors
from referee import game as moves
from referee import witness
from referee.cheats import wrong_element, wrong_shape
from referee.executor import Executor
from referee.graph_dict import model_from_dict
from referee.hashing import keccak256
from referee.inputs import rows_tensor
from referee.merkle import MerkleTree, depth_for
from referee.model import input_slots
from referee.trace import Trace
from referee.agents.deployment import deploy_game

CLOCK = 3600
ARITY = 4
KIND_NAMES = {1: "linear", 2: "matmul", 3: "transpose", 4: "add", 5: "lut", 6: "softmax", 7: "norm",
              8: "embed", 9: "argmax", 10: "rope", 11: "mul"}
EVERY_OP = ("llama", "padded")  # names (substrings) of the models whose every op gets a lie
CAUGHT = Counter()  # kind name -> lies caught by the honest challenger
SHAPES_CAUGHT = Counter()
DEFENDED = Counter()  # kind name -> games an honest solver won against a lying challenger


@pytest.fixture(scope="module")
def arena(project, deployer):
    game = deploy_game(deployer, ARITY, CLOCK, project)
    return game, deployer.deploy(project.game_owner_mock, game.address)


def _vector_models():
    found = []
    for vec in load_vectors("transformer_models")["models"]:
        d = {"input_cols": vec["input_cols"], "input_dtype": vec["input_dtype"], "ops": vec["ops"]}
        model = model_from_dict(d)
        slots = Executor(model, "cpu").run(rows_tensor(vec["input"], model.input_dtype))
        found.append((vec["name"], model, Trace(model.root, slots)))
    return found


@pytest.fixture(scope="module")
def vector_models():
    return _vector_models()


def _ops_to_lie_in(name: str, model) -> list[int]:
    """Every op of the models named in EVERY_OP; otherwise the first op of each kind."""
    if any(tag in name for tag in EVERY_OP):
        return list(range(1, len(model.ops) + 1))
    first = {}
    for j, op in enumerate(model.ops, start=1):
        first.setdefault((op.kind, op.flags), j)
    return sorted(first.values())


def _first_of_each_kind(vector_models):
    """(name, model, honest trace, op, kind name) of the first op of each kind and flags of the
    Llama-shaped decoder and the padded encoder: every kind between them."""
    for name, model, honest in vector_models:
        if "llama" in name or "padded" in name:
            for j in _ops_to_lie_in("first of each kind", model):
                yield name, model, honest, j, KIND_NAMES[model.ops[j - 1].kind]


def _game(arena, model, honest, solver: Party, challenger: Party, sender):
    game, owner = arena
    owner.open(solver.account, challenger.account, model.ops_root, len(model.ops), honest.state_roots[0],
               solver.trace.trace_root, sender=sender)
    gid = game.game_count()
    return game, gid


def _play(chain, arena, model, honest: Trace, solver_trace: Trace, challenger_trace: Trace, accounts):
    """A whole game between a solver and a challenger holding these traces: (game, id, outcome)."""
    solver, challenger = Party(accounts[1], model, solver_trace), Party(accounts[2], model, challenger_trace)
    game, gid = _game(arena, model, honest, solver, challenger, accounts[3])
    return game, gid, play(chain, game, gid, solver, challenger)


def _element(trace: Trace, slot: int, rng: random.Random) -> tuple[int, int]:
    rows, cols = trace.slots[slot].shape
    return rng.randrange(rows), rng.randrange(cols)


def test_lie_in_every_kind_is_caught_succeeds(chain, arena, vector_models, accounts):
    """A changed element in an op's slot: the honest challenger wins at that op's one step."""
    rng = random.Random(19)
    failures = []
    for name, model, honest in vector_models:
        for j in _ops_to_lie_in(name, model):
            liar = wrong_element(honest, j, *_element(honest, j, rng))
            game, gid, outcome = _play(chain, arena, model, honest, liar, honest, accounts)
            kind = KIND_NAMES[model.ops[j - 1].kind]
            if outcome.solver_won or game.games(gid).hi != j or outcome.reason != "element differs":
                failures.append((name, j, kind, outcome.reason, game.games(gid).hi))
            else:
                CAUGHT[kind] += 1
    assert not failures, failures
    assert set(CAUGHT) == set(KIND_NAMES.values())


def test_shape_lie_in_every_kind_is_caught_at_the_transition_succeeds(chain, arena, vector_models, accounts):
    """A slot grown by one column: the solver loses the transition of that op."""
    failures = []
    for name, model, honest in vector_models:
        if "llama" not in name and "padded" not in name:
            continue
        seen = set()
        for j, op in enumerate(model.ops, start=1):
            if op.kind in seen or j == len(model.ops):
                continue
            seen.add(op.kind)
            liar = wrong_shape(honest, j, extra_cols=1)
            _, _, outcome = _play(chain, arena, model, honest, liar, honest, accounts)
            kind = KIND_NAMES[op.kind]
            if outcome.solver_won or outcome.reason != "output header differs from the shape rule":
                failures.append((name, j, kind, outcome.reason))
            else:
                SHAPES_CAUGHT[kind] += 1
    assert not failures, failures
    assert set(SHAPES_CAUGHT) == set(KIND_NAMES.values())


def test_honest_solver_beats_a_lying_challenger_in_every_kind_succeeds(chain, arena, vector_models, accounts):
    """The challenger's trace has one element wrong: the honest solver wins (the element
    matches at the step, or the challenger's own bisection leads it to an op it cannot win)."""
    rng = random.Random(23)
    name, model, honest = next(v for v in vector_models if "llama" in v[0])
    failures = []
    for j in _ops_to_lie_in("first of each kind", model):
        wrong = wrong_element(honest, j, *_element(honest, j, rng))
        _, _, outcome = _play(chain, arena, model, honest, honest, wrong, accounts)
        kind = KIND_NAMES[model.ops[j - 1].kind]
        if not outcome.solver_won:
            failures.append((name, j, kind, outcome.reason))
        else:
            DEFENDED[kind] += 1
    assert not failures, failures


# ---------------------------------------------------------------------------
# Descriptor validation at the transition, for every kind (protocol 5.10, 7.2)
# ---------------------------------------------------------------------------

FLAG_NO_KIND_DEFINES = 64  # bit 6: no kind defines it (5.10)
DESCRIPTOR_LIES = Counter()  # kind name -> descriptors refused at the transition


def _descriptor_game(chain, arena, model, honest: Trace, op: int, desc: tuple, accounts):
    """A game over the first ``op`` ops of ``model`` whose op ``op`` has descriptor ``desc`` (every
    hash valid: the ops root is built over it); both sides hold the honest trace, so the
    challenger disputes the last op. Returns (game, id, GameResolved reasons) after the solver's
    transition, which reveals ``desc`` and the op's true headers and params."""
    ops = [witness.descriptor(model, j) for j in range(1, op)] + [desc]
    types = ("uint256",) * 6 + ("bytes32",)
    tree = MerkleTree([keccak256(encode(types, d)) for d in ops], depth_for(op))
    prefix = Trace(honest.model_root, honest.slots[:op + 1])
    solver, challenger = Party(accounts[1], model, prefix), Party(accounts[2], model, prefix)
    game, owner = arena
    owner.open(solver.account, challenger.account, tree.root, op, prefix.state_roots[0], prefix.trace_root,
               sender=accounts[3])
    gid = game.game_count()
    play(chain, game, gid, solver, challenger, stop_at=3)  # TRANSITION
    honest_move = moves.transition(model, prefix, op)
    receipt = game.transition(gid, desc, tree.proof(op - 1), *honest_move.args()[2:], sender=solver.account)
    return game, gid, [log.reason for log in receipt.decode_logs(game.GameResolved)]


def _descriptor_lies(model, j: int) -> dict:
    """Descriptors of op ``j`` that keep every hash valid but break 5.10: a flag bit no kind
    defines, and for a kind that leaves input_b unused (one input slot) an input_b naming an
    earlier slot; for a plain argmax a nonzero params root."""
    desc = list(witness.descriptor(model, j))
    lies = {"unknown flag bit": (desc[0], desc[1] | FLAG_NO_KIND_DEFINES, *desc[2:])}
    if len(input_slots(model.ops[j - 1])) == 1 and j > 1:
        lies["nonzero unused input_b"] = (*desc[:3], j - 1, *desc[4:])
    if desc[0] == 9 and not desc[1] & 2:
        lies["nonzero params root of a plain argmax"] = (*desc[:6], b"\x01" * 32)
    return lies


def test_descriptor_breaking_its_kind_loses_the_transition_succeeds(chain, arena, vector_models, accounts):
    """For every kind: the control (the op's own descriptor) goes on to the row descent; each
    broken descriptor loses the solver the game at the transition."""
    failures = []
    for name, model, honest, j, kind in _first_of_each_kind(vector_models):
        game, gid, reasons = _descriptor_game(chain, arena, model, honest, j, witness.descriptor(model, j), accounts)
        if reasons or game.games(gid).phase not in (4, 6):  # CHILDREN or ROW
            failures.append((name, j, kind, "control", reasons))
        for lie, desc in _descriptor_lies(model, j).items():
            game, gid, reasons = _descriptor_game(chain, arena, model, honest, j, desc, accounts)
            if reasons != ["op breaks its kind's rules"] or game.result(gid) != 2:
                failures.append((name, j, kind, lie, reasons))
            else:
                DESCRIPTOR_LIES[kind] += 1
    assert not failures, failures
    assert set(DESCRIPTOR_LIES) == set(KIND_NAMES.values())


# ---------------------------------------------------------------------------
# Hostile moves at the transition and the step, for every kind
# ---------------------------------------------------------------------------

HOSTILE_REJECTED = Counter()  # kind name -> hostile moves the game refused


def _flip_first(proof: list) -> list:
    return [bytes([proof[0][0] ^ 1]) + bytes(proof[0][1:])] + list(proof[1:])


def _hostile_transitions(t) -> dict:
    """Transition arguments (after the game id) that break one thing each; all must revert."""
    a = list(t.args())  # desc, desc_proof, inputs, input_proofs, params, output, output_proof
    lies = {}
    if a[3][0]:
        lies["forged input proof"] = [*a[:3], [_flip_first(a[3][0])] + list(a[3][1:]), *a[4:]]
    first = a[2][0]
    lies["input header of another dtype"] = [*a[:2], [(*first[:3], (first[3] + 1) % 3)] + list(a[2][1:]), *a[3:]]
    if len(a[2]) == 2:
        lies["one input header short"] = [*a[:2], a[2][:1], a[3][:1], *a[4:]]
    else:
        lies["one input header too many"] = [*a[:2], a[2] * 2, a[3] * 2, *a[4:]]
    if a[4]:
        lies["params header not its root's"] = [*a[:4], bytes([a[4][0] ^ 1]) + a[4][1:], *a[5:]]
    else:
        lies["params header where none is"] = [*a[:4], b"\x01" * 32, *a[5:]]
    out = a[5]
    lies["output header of another dtype"] = [*a[:5], (*out[:3], (out[3] + 1) % 3), a[6]]
    return lies


def _refused(game, gid, method, args, sender) -> bool:
    before = game.games(gid)
    try:
        getattr(game, method)(gid, *args, sender=sender)
    except Exception:  # noqa: BLE001 (any revert: the move is refused)
        return game.games(gid) == before
    return False


def test_hostile_transitions_and_steps_of_every_kind_are_refused_succeeds(chain, arena, vector_models, accounts):
    """At each kind's first op: every hostile transition reverts and changes nothing, the honest
    one goes on; at its step, a forged witness and another op's inputs revert, the honest step
    wins."""
    failures = []
    for name, model, honest, j, kind in _first_of_each_kind(vector_models):
        liar = wrong_element(honest, j, *_element(honest, j, random.Random(j)))
        solver, challenger = Party(accounts[1], model, liar), Party(accounts[2], model, honest)
        game, gid = _game(arena, model, honest, solver, challenger, accounts[3])
        play(chain, game, gid, solver, challenger, stop_at=3)
        assert game.games(gid).hi == j
        t = moves.transition(model, liar, j)
        for lie, args in _hostile_transitions(t).items():
            if _refused(game, gid, "transition", args, accounts[1]):
                HOSTILE_REJECTED[kind] += 1
            else:
                failures.append((name, j, kind, lie))
        seen = play(chain, game, gid, solver, challenger, stop_at=7)
        g = game.games(gid)
        step = moves.step(model, honest, j, g.node_index, seen.row)
        forged = {"forged witness": [*step.args()[:-1], forged_witness(step.witness)],
                  "another op's inputs": [*step.args()[:4], [(1, 1, b"\x00" * 32, 0)], *step.args()[5:]]}
        for lie, args in forged.items():
            if _refused(game, gid, "step", args, accounts[2]):
                HOSTILE_REJECTED[kind] += 1
            else:
                failures.append((name, j, kind, lie))
        game.step(gid, *step.args(), sender=accounts[2])
        if game.result(gid) != 2:
            failures.append((name, j, kind, "the honest step lost"))
    assert not failures, failures
    assert set(HOSTILE_REJECTED) == set(KIND_NAMES.values())


def teardown_module(module):
    def line(title, counts):
        return f"{title}: {sum(counts.values())}  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    for title, counts in (("transformer games, element lies caught per kind", CAUGHT),
                          ("transformer games, shape lies caught at the transition per kind", SHAPES_CAUGHT),
                          ("transformer games, honest solver won against a lying challenger per kind", DEFENDED),
                          ("transformer games, broken descriptors refused at the transition per kind",
                           DESCRIPTOR_LIES),
                          ("transformer games, hostile transitions and steps refused per kind", HOSTILE_REJECTED)):
        if counts:
            STATS.figures.append(line(title, counts))
