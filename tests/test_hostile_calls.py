"""Hostile input to every external function of ModelRegistry, JobMarket and DisputeGame.

The chain holds jobs in every live state and games in every phase (built once per module from
real traces), and transformer-shaped ones (tests/token_jobs.py): a committed token job on the
key-masked encoder, an open and a committed generation job on the Llama-shaped decoder, and
two games over the latter paused at the transition and the step of its grouped P·V matmul. Each hypothesis example sends one transaction to one state-changing function,
from any party, with arguments drawn to hurt: zero and maximal integers, ids just past the
last, lengths off by one around the real ones and around the declared limits, real roots and
proofs of the wrong depth or with one byte changed, replayed from another game, slot and
column indices out of range, shapes past the worst-case bound.

What must hold, whatever the call:

- a call whose arguments the ABI can decode (every length within the contract's declared
  limit) either succeeds or reverts with a reason string naming its contract (``market:``,
  ``game:``, ``registry:``) or the module that refused it; only calldata past a declared
  limit may revert without a reason (protocol section 10.5);
- a reverted call changes nothing: the stored state of every job, game, model and account
  reads the same after it;
- after a call that succeeds, the market's balance still equals its obligations.

Every example starts from the same snapshot. Calldata that is not ABI at all (an unknown
selector, a truncated encoding, ETH sent to a function that takes none) is checked too.
"""

import os
import random

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from accounting import assert_accounting
from game_bots import BISECT, CHILDREN, CHOOSE, PICK, ROW, STEP, TRANSITION
import token_jobs as tokens
from market_world import CHALLENGER_BOND, World, challenge, model_and_traces, party, play
from referee import commitments as cm
from referee import game as moves
from referee.agents.client import pack_ids
from referee.cheats import wrong_element
from rpc import Reverted

CALLS = int(os.environ.get("REFEREE_HOSTILE_CALLS", "150"))  # hypothesis examples, one transaction each
FRESH_SEED = os.environ.get("REFEREE_RANDOM_SEED") == "fresh"  # make test-long

# Declared limits of dynamic arguments (contracts' Bytes[...] / DynArray[..., N]); past them
# the ABI decoder reverts without a reason.
MAX_TENSOR_BYTES, MAX_PROOF, MAX_ROOTS, MAX_COLS, MAX_PARAMS = 65536, 16, 63, 16384, 512
MAX_CALLS = 64  # multicall's batch: a linear step with rows of 128 and 16-deep proofs is the longest call
MAX_CALL_BYTES = (4 + 32 * 14 + (32 + 32 * MAX_PROOF) + (32 + 2 * 4 * 32) + 32 + 32 * 8 + 2 * (32 + 32 * MAX_PROOF)
                  + 2 * (32 + 128))
LIMITS = {"input": MAX_TENSOR_BYTES, "output": MAX_TENSOR_BYTES, "output_proof": MAX_PROOF,
          "roots": MAX_ROOTS, "desc_proof": MAX_PROOF, "input_proof": MAX_PROOF, "input_proofs": 2,
          "params": MAX_PARAMS, "row": 4 * MAX_COLS,
          "row_word_proof": MAX_PROOF, "x": MAX_COLS, "x_proof": MAX_PROOF, "w": MAX_COLS, "w_proof": MAX_PROOF,
          "calls": MAX_CALLS, "inputs": 2, "witness": 81920,
          "prompt": 4 * 4096, "tokens": 4 * 4096, "output_ids": 4 * 4096}  # generation jobs: 4 * MAX_CONTEXT
REASON_PREFIXES = ("market: ", "game: ", "registry: ", "merkle: ", "tensor: ", "linear: ", "requant: ", "int8: ")

# what we record of each contract to prove a refused call changed nothing
STATE_VIEWS = {"market": ["job_count", "total_stake", "total_escrow", "total_bonds", "total_credit",
                          "sink_pending"], "game": ["game_count"], "registry": ["model_count"]}


class Scene:
    """Jobs OPEN, CLAIMED and COMMITTED (one honest, one lying); a game paused in each phase; token
    and generation jobs, and games over a transformer op at its transition and its step."""

    def __init__(self, w: World):
        self.w = w
        job_model = model_and_traces(31, 9, [7, 40, 5], rows=5)
        model, honest, other = job_model
        self.model, self.honest, self.other = job_model
        solver = party("solver", w.solver, job_model)
        liar = party("liar", w.solver, job_model, trace=wrong_element(honest, 3, row=4, col=1), honest=False)

        self.open_job = w.post_and_commit(model, honest, honest)  # committed; more below
        self.committed = self.open_job
        w.market.transact(w.requester, "post", 1, 5, cm.packed(honest.slots[0]), w.solver_bond, 600, 600, 10**6,
                          value=w.fee)
        self.open_job = w.market.view("job_count")
        w.market.transact(w.requester, "post", 1, 5, cm.packed(honest.slots[0]), w.solver_bond, 600, 600, 10**6,
                          value=w.fee)
        self.claimed = w.market.view("job_count")
        w.market.transact(w.solver, "deposit", value=w.solver_bond)
        w.market.transact(w.solver, "claim", self.claimed)
        self.lying_job = w.post_and_commit(model, honest, liar.trace)

        # games paused in every phase: honest solver vs a liar, and a lying solver vs an honest one
        self.games = {}
        for phase, (who, versus) in {BISECT: (2, "honest"), CHOOSE: (2, "liar"), TRANSITION: (0, "honest"),
                                     CHILDREN: (1, "honest"), PICK: (2, "honest"), ROW: (0, "liar"),
                                     STEP: (1, "liar")}.items():
            challenger = party(f"challenger {who}", w.challengers[who], job_model,
                               trace=wrong_element(honest, 3, row=4, col=1) if versus == "honest" else None,
                               honest=versus == "liar")
            job = self.committed if versus == "honest" else self.lying_job
            m = challenge(w, job, challenger, solver if versus == "honest" else liar)
            play(w, [m], until_phase=phase)
            self.games[phase] = m
        self.token_material = self._token_jobs(w)
        self.game_ids = [m.gid for m in (*self.games.values(), *self.token_games.values())]
        self.token_ids = {("market", self.token_job), ("market", self.open_generation),
                          ("market", self.generation_job), *(("game", m.gid) for m in self.token_games.values())}
        self.ids = sorted({*self.game_ids, *range(1, w.market.view("job_count") + 1)})
        w.check()

        # material for hostile arguments: the real roots, proofs, rows and inputs of this scene
        n = honest.op_count
        self.roots = [*honest.state_roots, *other.state_roots, honest.input_root, model.root, model.ops_root,
                      *(c.tree.root for c in honest.slot_commitments), bytes(32)]
        self.proofs = [honest.state_tree(n).proof(n), honest.state_tree(1).proof(1), model.op_tree.proof(0),
                       *(moves.transition(model, honest, op).output_proof for op in range(1, n + 1)),
                       honest.slot_commitments[0].tree.proof(4), model.ops[1].weights.tree.proof(39)]
        self.blobs = [cm.packed(honest.slots[0]), cm.packed(honest.output), honest.row_bytes(2, 4),
                      other.row_bytes(2, 4), honest.row_bytes(0, 0), cm.packed(model.ops[1].weight[:1])]
        roots, proofs, blobs = self.token_material
        self.roots += roots
        self.proofs += proofs
        self.blobs += blobs
        self.accounts = [w.requester, w.solver, w.referee, *w.challengers, "0x" + "00" * 20,
                         w.market.address, w.game.address]

    def _token_jobs(self, w: World) -> tuple[list, list, list]:
        """A committed token job on the key-masked encoder, an open and a committed generation job
        on the Llama-shaped decoder, and games over the generation job paused at the transition
        and the step of a two-input op (its grouped P·V matmul; a liar changed its output).
        Returns the roots, proofs and blobs (ids, rows, params headers, a witness) they give."""
        pool = {tm.name: tm for tm in tokens.token_models()}
        rng = random.Random(19)
        encoder = pool["encoder_keymask_2_layers_2_heads"]
        ids = tokens.random_ids(rng, encoder, 3)
        enc_trace = tokens.run(encoder.model, ids)
        self.token_job = w.post_and_commit(encoder.model, enc_trace, enc_trace)

        llama = pool["llama_2_layers_4_heads_2_kv_heads"].model
        prompt, n = [5, 1], 3
        truth = tokens.generation_trace(llama, prompt, tokens.greedy(llama, prompt, n))
        other = tokens.run(llama, tokens.random_ids(rng, pool["llama_2_layers_4_heads_2_kv_heads"], 1))
        pv = next(j for j, op in enumerate(llama.ops, start=1) if op.kind == 2 and not op.causal)
        liar_trace = wrong_element(truth, pv, row=1, col=2)
        self.generation_job = w.post_and_commit(llama, truth, liar_trace, (prompt, n))
        w.market.transact(w.requester, "post_generation", w.registry.view("model_id", llama.entry), pack_ids(prompt),
                          n, w.solver_bond, 600, 600, 10**6, value=w.fee)
        self.open_generation = w.market.view("job_count")
        liar = party("llama liar", w.solver, (llama, truth, other), trace=liar_trace, honest=False)
        self.token_games = {}
        for phase in (TRANSITION, STEP):
            challenger = party(f"llama challenger {phase}", w.challengers[phase % 3], (llama, truth, other))
            m = challenge(w, self.generation_job, challenger, liar)
            play(w, [m], until_phase=phase)
            assert w.game.view("games", m.gid)["hi"] == pv
            self.token_games[phase] = m

        g = w.game.view("games", self.token_games[STEP].gid)
        step = moves.step(llama, truth, pv, g["node_index"], truth.row_bytes(pv, g["node_index"]))
        transition = moves.transition(llama, truth, pv)
        roots = [*truth.state_roots[:3], *(c.tree.root for c in truth.slot_commitments[pv - 2:pv + 1]), llama.root]
        proofs = [*transition.args()[3], transition.output_proof, step.row_word_proof]
        blobs = [cm.packed(ids), pack_ids(prompt), pack_ids(tokens.committed_tokens(truth, prompt, n)),
                 cm.packed(truth.output), truth.row_bytes(pv, 0), transition.args()[4], step.witness]
        return roots, proofs, blobs

    def state(self) -> list:
        """Every stored value the calls could touch."""
        w = self.w
        values = [[getattr(w, name).view(view) for view in views] for name, views in STATE_VIEWS.items()]
        values += [w.market.view("job", j) for j in range(1, w.market.view("job_count") + 1)]
        values += [w.game.view("games", g) for g in range(1, w.game.view("game_count") + 1)]
        values += [w.market.view("challenge_of", g) for g in self.game_ids]
        values += [(w.market.view("stake", a), w.market.view("locked", a), w.market.view("credit", a))
                   for a in self.accounts]
        values += [w.registry.view("model", m) for m in range(1, w.registry.view("model_count") + 1)]
        return values


@pytest.fixture(scope="module")
def scene(project, accounts):
    return Scene(World(project, accounts))


# ---------------------------------------------------------------------------
# Hostile arguments, by ABI type
# ---------------------------------------------------------------------------


UINTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 39, 40, 41, 63, 64, 4096, 4097, 16384, 16385, 65535, 65536, 65537,
         2**31, 2**63, 2**255, 2**256 - 1]
INTS = [-(2**255), -(2**31) - 1, -(2**31), -129, -128, -1, 0, 1, 127, 128, 2**31 - 1, 2**31, 2**255 - 1]


def _lengths(real: int, limit: int) -> list[int]:
    return sorted({0, 1, max(real - 1, 0), real, real + 1, limit, limit + 1})


def flipped(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return b"\x01"
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]


def value_for(draw, scene: Scene, param: dict, rng: random.Random):
    kind, name = param["type"], param["name"]
    if kind == "uint256":  # a third of the time one of the scene's own job and game ids
        return draw(st.sampled_from(scene.ids) | st.sampled_from(UINTS) | st.integers(0, 2**256 - 1))
    if kind == "int256":
        return draw(st.sampled_from(INTS) | st.integers(-(2**255), 2**255 - 1))
    if kind == "bool":
        return draw(st.booleans())
    if kind == "address":
        return draw(st.sampled_from(scene.accounts))
    if kind == "bytes32":
        root = draw(st.sampled_from(scene.roots))
        return draw(st.sampled_from([root, flipped(root, rng), rng.randbytes(32)]))
    if kind == "bytes":
        blob = draw(st.sampled_from(scene.blobs))
        length = draw(st.sampled_from(_lengths(len(blob), LIMITS.get(name, MAX_COLS))))
        data = (blob * (length // max(len(blob), 1) + 1))[:length]
        return flipped(data, rng) if data and draw(st.booleans()) else data
    if kind == "bytes32[]":
        proof = draw(st.sampled_from(scene.proofs))
        length = draw(st.sampled_from(_lengths(len(proof), LIMITS.get(name, MAX_PROOF))))
        items = (proof * (length // max(len(proof), 1) + 1))[:length] if proof else [bytes(32)] * length
        if items and draw(st.booleans()):
            i = rng.randrange(len(items))
            items[i] = flipped(items[i], rng)
        return items
    if kind == "bytes32[][]":  # the transition's input proofs: one list per input header
        count = draw(st.sampled_from(_lengths(1, LIMITS.get(name, 2))))
        return [value_for(draw, scene, {"type": "bytes32[]", "name": "input_proof"}, rng) for _ in range(count)]
    if kind == "bytes[]":  # multicall's batch: hostile calls of the game's own functions
        count = draw(st.sampled_from(_lengths(2, LIMITS.get(name, MAX_CALLS))))
        return [hostile_subcall(draw, scene, rng) for _ in range(count)]
    if kind == "tuple":
        return tuple(value_for(draw, scene, c, rng) for c in param["components"])
    if kind == "tuple[]":  # step's input headers
        count = draw(st.sampled_from(_lengths(1, LIMITS.get(name, 2))))
        return [tuple(value_for(draw, scene, c, rng) for c in param["components"]) for _ in range(count)]
    raise AssertionError(f"no hostile values for ABI type {kind}")


def hostile_subcall(draw, scene: Scene, rng: random.Random) -> bytes:
    """One call of a batch: a game function (not multicall itself) with hostile arguments,
    sometimes cut short or bit-flipped, and never longer than the batch's declared item size,
    so that the batch itself decodes and each sub-call meets the game's own checks."""
    entries = [e for e in scene.w.game.abi if e["type"] == "function" and e["name"] != "multicall"
               and e["stateMutability"] == "nonpayable"]
    entry = draw(st.sampled_from(entries))
    data = scene.w.game.data(entry["name"], *[value_for(draw, scene, p, rng) for p in entry["inputs"]])
    mangle = draw(st.sampled_from(["whole", "cut", "flipped"]))
    if mangle == "cut":
        data = data[:rng.randrange(len(data) + 1)]
    elif mangle == "flipped":
        data = flipped(data, rng)
    return data[:MAX_CALL_BYTES]


def within_limits(params: list, args: list) -> bool:
    """True when every dynamic argument fits the contract's declared limit (the ABI decodes it)."""
    for param, arg in zip(params, args):
        if param["type"] == "tuple":
            if not within_limits(param["components"], arg):
                return False
        elif param["type"] == "tuple[]" and len(arg) > LIMITS.get(param["name"], 2):
            return False
        elif param["name"] in LIMITS and len(arg) > LIMITS[param["name"]]:
            return False
        elif param["type"] == "bytes32[][]" and any(len(proof) > MAX_PROOF for proof in arg):
            return False
    return True


def functions(scene: Scene) -> list[tuple[str, str, dict]]:
    """(contract, name, ABI entry) of every state-changing external function."""
    found = []
    for contract in ("registry", "market", "game"):
        abi = getattr(scene.w, contract)
        for entry in abi.abi:
            if entry["type"] == "function" and entry["stateMutability"] in ("nonpayable", "payable"):
                found.append((contract, entry["name"], entry))
    return sorted(found, key=lambda f: f[:2])


# ---------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------


TALLY = {"calls": 0, "succeeded": 0, "refused with a reason": 0, "refused past a declared limit": 0,
         "on a token job or game": 0}


@settings(max_examples=CALLS, deadline=None, database=None, derandomize=not FRESH_SEED,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_call_reverts_with_reason_and_changes_nothing(scene, data):
    w = scene.w
    contract, name, entry = data.draw(st.sampled_from(functions(scene)), label="function")
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    args = [value_for(data.draw, scene, p, rng) for p in entry["inputs"]]
    sender = data.draw(st.sampled_from(scene.accounts[:6]), label="sender")
    value = data.draw(st.sampled_from([0, 1, CHALLENGER_BOND, CHALLENGER_BOND + 1, 10**18]), label="value") \
        if entry["stateMutability"] == "payable" else 0
    abi = getattr(w, contract)
    snapshot = w.node.snapshot()
    try:
        before = scene.state()
        TALLY["calls"] += 1
        if args and isinstance(args[0], int) and (contract, args[0]) in scene.token_ids:
            TALLY["on a token job or game"] += 1
        try:
            abi.transact(sender, name, *args, value=value)
        except Reverted as exc:
            assert scene.state() == before, f"refused {contract}.{name} changed the stored state"
            if within_limits(entry["inputs"], args):
                assert exc.reason.startswith(REASON_PREFIXES), f"{contract}.{name} reverted without a clear reason: {exc.reason!r}"
                TALLY["refused with a reason"] += 1
            else:
                TALLY["refused past a declared limit"] += 1
        else:
            TALLY["succeeded"] += 1
        assert_accounting(w.market.address, w.node)
    finally:
        w.node.revert(snapshot)


@pytest.mark.parametrize("contract", ["registry", "market", "game"])
def test_malformed_calldata_reverts_and_changes_nothing(scene, contract):
    """Not ABI at all: an unknown selector, each function's encoding cut short, ETH to a function
    that takes none. All revert (without a reason: there is none to give); nothing changes."""
    w = scene.w
    abi = getattr(w, contract)
    before = scene.state()
    cases = [(b"\xde\xad\xbe\xef" + bytes(64), 0), (b"", 0), (b"\x01", 0)]
    for entry in (e for e in abi.abi if e["type"] == "function" and e["inputs"]):
        data = abi.data(entry["name"], *[plain(p, w.referee) for p in entry["inputs"]])
        cases.append((data[:4 + 31], 0))  # the first argument cut short
        if entry["stateMutability"] == "nonpayable":
            cases.append((data, 1))  # wei sent to a function that takes none
    for calldata, value in cases:
        with pytest.raises(Reverted):
            w.node.send(w.referee, abi.address, calldata, value)
    assert scene.state() == before
    assert_accounting(w.market.address, w.node)


def plain(param: dict, address: str):
    """A well-typed, unremarkable value for an ABI parameter."""
    kind = param["type"]
    if kind == "tuple":
        return tuple(plain(c, address) for c in param["components"])
    return {"uint256": 1, "int256": 0, "bool": False, "address": address, "bytes32": bytes(32), "bytes": b"\x01",
            "bytes32[]": [], "bytes32[][]": [], "bytes[]": [b"\x01"], "tuple[]": []}[kind]


def test_declared_batch_limits_match_the_game(scene):
    """The multicall limits the hostile batches are drawn within are the game's own constants."""
    assert (scene.w.game.view("MAX_CALLS"), scene.w.game.view("MAX_CALL_BYTES")) == (MAX_CALLS, MAX_CALL_BYTES)


def test_hostile_calls_tally(scene):
    """Printed with the run's counts: how the hostile calls ended."""
    from game_bots import STATS

    assert TALLY["calls"] >= CALLS and TALLY["refused with a reason"] > 0 and TALLY["on a token job or game"] > 0
    STATS.figures.append("hostile calls: " + ", ".join(f"{k} {v}" for k, v in TALLY.items()))
