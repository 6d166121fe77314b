"""Token models and generation jobs on the market (docs/protocol.md 5.15, 10.1, 10.2).

Registry entries carry the input and output dtypes and the row rule; the market sizes a job
of any model by them: an int32 input, an output whose row count differs from the input's
(an encoder-shaped [B, T] ids -> [B, d] model, a decoder [1, T] -> [T, 1]), and generation
jobs, whose T_0 and S_0 are built at commit from the prompt and the tokens. The tiny
transformers of tests/helpers.py run exactly (referee.executor) so every committed trace is a
real one; models/moby-llama (compiled by referee.llama_compile) checks that the S_0 the market
builds is the verifying pass's (referee.decode.verified_input), so a game opens from it.
Every test ends with the accounting invariant of tests/accounting.py.
"""

from pathlib import Path

import ape
import pytest
import torch
from ape import chain

from accounting import COMMITTED, FINALIZED, OPEN, after_every_transaction, assert_accounting
from helpers import small_transformer, token_ids
from referee import commitments as cm
from referee import decode
from referee.agents.client import pack_ids
from referee.agents.deployment import deploy_game, register_model
from referee.agents.solver import generation_tokens
from referee.executor import Executor
from referee.hashing import enc, keccak256
from referee.model import entry_key, entry_mismatch
from referee.trace import Trace

CHALLENGER_BOND, MIN_SOLVER_BOND = 3 * 10**17, 10**17
SINK = "0x000000000000000000000000000000000000dEaD"
FEE, SOLVER_BOND, DEPOSIT = 2 * 10**18, 10**18, 3 * 10**18
WINDOWS = (600, 1200, 86400)
OPS_ROOT = keccak256(b"token market ops")
MOBY = Path(__file__).resolve().parents[1] / "models" / "moby-llama"


@pytest.fixture(scope="module")
def registry(project, deployer):
    return deployer.deploy(project.ModelRegistry)


@pytest.fixture(scope="module")
def game(project, deployer):
    return deploy_game(deployer, 2, 3600, project)


@pytest.fixture(scope="module")
def market(project, deployer, registry, game):
    return deployer.deploy(project.JobMarket, registry, game, CHALLENGER_BOND, MIN_SOLVER_BOND, 997, 331, SINK, 60,
                           365 * 86400)


@pytest.fixture(autouse=True)
def _accounting_holds(market):
    with after_every_transaction(market):
        yield
    assert_accounting(market)


@pytest.fixture(scope="module")
def decoder():
    return small_transformer("decoder")


@pytest.fixture(scope="module")
def encoder():
    return small_transformer("encoder")


@pytest.fixture(scope="module")
def roles(accounts):
    return {"requester": accounts[1], "solver": accounts[2], "challenger": accounts[3], "other": accounts[4]}


def registered(registry, model, deployer) -> int:
    if registry.model_id(model.entry) == 0:
        register_model(registry, model, deployer)
    return registry.model_id(model.entry)


def run(model, x: torch.Tensor) -> Trace:
    return Trace(model.root, Executor(model, "cpu").run(x))


def warp_past(timestamp: int):
    chain.pending_timestamp = max(timestamp + 1, chain.blocks.head.timestamp + 1)


def post(market, model_id, x, requester):
    market.post(model_id, x.shape[0], cm.packed(x), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    return market.job_count()


def claim(market, job_id, solver):
    market.deposit(value=DEPOSIT, sender=solver)
    market.claim(job_id, sender=solver)


def commit(market, job_id, trace, solver):
    n = trace.op_count
    return market.commit(job_id, cm.packed(trace.output), trace.trace_root, trace.state_tree(n).proof(n), sender=solver)


# ---------------------------------------------------------------------------
# the facts a model file gives, and the entry the agents take
# ---------------------------------------------------------------------------


def test_token_models_registry_facts_succeeds(decoder, encoder):
    t = decoder.input_cols
    # decoder: [B, T] ids -> [B T, 1] int32 (argmax per position); encoder: [B, T] ids -> pooled [B, d] int16
    assert tuple(decoder.registry_facts()) == (1, 1, 1, decoder.row_rule[1], t, 1)
    assert tuple(encoder.registry_facts()) == (1, 2, 1, encoder.row_rule[1], 1, 1)
    for model in (decoder, encoder):
        step, most, num, den = model.row_rule
        most_rows = max(rows for rows, _, _ in model.slot_shapes(most))
        assert most_rows <= 65536 and max(r for r, _, _ in model.slot_shapes(1)) * (most + 1) > 65536
        assert model.slot_shapes(3)[-1][0] == 3 * num // den
        assert model.entry == keccak256(model.root + enc(*model.registry_facts()[1:]))
        assert model.registration() == (len(model.ops), model.input_cols, model.output_cols, model.ops_root,
                                        *model.registry_facts())


def test_registered_entry_matches_model_file_succeeds(registry, deployer, decoder):
    model_id = registered(registry, decoder, deployer)
    entry = registry.model(model_id)
    assert entry.root == decoder.root == cm.model_root(len(decoder.ops), 6, 1, decoder.ops_root, 1)
    assert entry_mismatch(decoder, entry) is None


def test_squatted_entry_is_refused_and_true_entry_registers_succeeds(registry, deployer, accounts, decoder):
    # a squatter registers the decoder's root with a wrong row rule first: the true entry is
    # still registered, the agents find it by its key, and the squatter's entry is named wrong
    facts = list(decoder.registry_facts())
    facts[4] = 1  # one output row per input row: not the decoder's
    registry.register(len(decoder.ops), decoder.input_cols, decoder.output_cols, decoder.ops_root, *facts,
                      sender=accounts[5])
    squat = registry.model_count()
    true_id = registered(registry, decoder, deployer)
    assert true_id != squat and registry.model_id(decoder.entry) == true_id
    assert registry.model(squat).root == decoder.root
    why = entry_mismatch(decoder, registry.model(squat))
    assert why is not None and "out_rows_num is 1" in why and "gives 6" in why
    assert registry.model_id(entry_key(decoder.root, type(decoder.registry_facts())(*facts))) == squat


# ---------------------------------------------------------------------------
# token jobs: int32 inputs, output row counts of any rule
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind, rows", [("encoder", 3), ("decoder", 2)])
def test_token_job_post_commit_finalize_succeeds(market, registry, deployer, roles, decoder, encoder, kind, rows):
    model = {"decoder": decoder, "encoder": encoder}[kind]
    model_id = registered(registry, model, deployer)
    x = token_ids(model, rows, seed=rows)
    trace = run(model, x)
    job_id = post(market, model_id, x, roles["requester"])
    job = market.job(job_id)
    assert (job.input_root, job.s_0) == (trace.slot_roots[0], trace.state_roots[0])  # int32 T_0 (128 bytes hashed)
    assert trace.output.shape[0] == (rows * model.input_cols if kind == "decoder" else rows)
    claim(market, job_id, roles["solver"])
    tx = commit(market, job_id, trace, roles["solver"])
    assert market.job(job_id).output_root == trace.output_root
    [log] = tx.decode_logs(market.JobCommitted)
    assert log.output == cm.packed(trace.output)
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=roles["other"])
    assert market.job(job_id).status == FINALIZED and market.credit(roles["solver"]) >= FEE


def test_token_job_output_of_input_rows_reverts(market, registry, deployer, roles, decoder):
    # the decoder's output has T rows per input row: an output of the input's rows is refused
    model_id = registered(registry, decoder, deployer)
    x = token_ids(decoder, 2, seed=9)
    trace = run(decoder, x)
    job_id = post(market, model_id, x, roles["requester"])
    claim(market, job_id, roles["solver"])
    n = trace.op_count
    with ape.reverts("market: output does not match shape"):
        market.commit(job_id, cm.packed(trace.output[:2]), trace.trace_root, trace.state_tree(n).proof(n),
                      sender=roles["solver"])
    with ape.reverts("market: bad output proof"):  # the right length, another output
        market.commit(job_id, cm.packed(trace.output + 1), trace.trace_root, trace.state_tree(n).proof(n),
                      sender=roles["solver"])
    with ape.reverts("market: not a generation job"):
        market.commit_generation(job_id, pack_ids([1]), pack_ids([1]), cm.packed(trace.output), trace.trace_root,
                                 trace.state_tree(n).proof(n), sender=roles["solver"])


@pytest.mark.parametrize("facts, rows, data_len, reason", [
    ((0, 0, 4, 64, 1, 1), 6, 6 * 4, "market: rows not a multiple of the model's row step"),
    ((0, 0, 4, 8, 1, 1), 12, 12 * 4, "market: more rows than the model takes"),
    ((0, 0, 1, 64, 1, 2), 3, 3 * 4, "market: output rows not whole"),
    ((1, 0, 1, 64, 1, 1), 3, 3 * 4, "market: input does not match shape"),  # int8-sized, int32 input
    ((1, 0, 1, 64, 1, 1), 3, 3 * 4 * 4 + 4, "market: input does not match shape"),
    ((1, 1, 1, 64, 4096, 1), 3, 3 * 4 * 4, "market: output too large to commit"),  # 12288 rows x 2 int32
    ((0, 2, 1, 64, 1, 1), 4097, 4097, "market: rows out of range"),  # terms first: above 64 too
])
def test_post_row_rule_and_dtype_rejections_reverts(market, registry, deployer, roles, facts, rows, data_len,
                                                    reason):
    registry.register(2, 4, 2, OPS_ROOT, *facts, sender=deployer)
    with ape.reverts(reason):
        market.post(registry.model_count(), rows, bytes(data_len), SOLVER_BOND, *WINDOWS, value=FEE,
                    sender=roles["requester"])


def test_post_row_rule_limits_succeeds(market, registry, deployer, roles):
    # a multiple of the step, at the cap; an int16 output of num/den rows exactly at MAX_TENSOR_BYTES
    registry.register(2, 4, 2, OPS_ROOT, 0, 2, 4, 8, 3, 2, sender=deployer)
    market.post(registry.model_count(), 8, bytes(32), SOLVER_BOND, *WINDOWS, value=FEE, sender=roles["requester"])
    registry.register(2, 1, 8, OPS_ROOT, 1, 2, 1, 4096, 2, 1, sender=deployer)  # 2048 -> 4096 rows x 8 x 2 bytes
    market.post(registry.model_count(), 2048, bytes(2048 * 4), SOLVER_BOND, *WINDOWS, value=FEE,
                sender=roles["requester"])
    assert market.job(market.job_count()).status == OPEN
    with ape.reverts("market: output too large to commit"):
        market.post(registry.model_count(), 2049, bytes(2049 * 4), SOLVER_BOND, *WINDOWS, value=FEE,
                    sender=roles["requester"])


# ---------------------------------------------------------------------------
# generation jobs (protocol 5.15)
# ---------------------------------------------------------------------------


def post_generation(market, model_id, prompt, n, requester):
    tx = market.post_generation(model_id, pack_ids(prompt), n, SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    return market.job_count(), tx


def generate(model, prompt, n):
    """The solver's way (referee.decode): KV-cached tokens, then the teacher-forced pass."""
    tokens = decode.Decoder(model, "cpu").generate(prompt, n)
    slots = decode.verify_generation(Executor(model, "cpu"), prompt, tokens)
    return tokens, Trace(model.root, slots)


def gen_args(job_id, prompt, tokens, trace):
    n = trace.op_count
    return (job_id, pack_ids(prompt), pack_ids(tokens), cm.packed(trace.output), trace.trace_root,
            trace.state_tree(n).proof(n))


def test_generation_post_commit_finalize_paid_succeeds(market, registry, deployer, roles, decoder):
    model_id = registered(registry, decoder, deployer)
    prompt, n = [3, 5], 3
    job_id, tx = post_generation(market, model_id, prompt, n, roles["requester"])
    [posted] = tx.decode_logs(market.JobPosted)
    assert (posted.n_tokens, posted.rows, posted.input, posted.s_0) == (n, 1, pack_ids(prompt), bytes(32))
    job = market.job(job_id)
    assert (job.n_tokens, job.input_root, job.s_0) == (n, keccak256(pack_ids(prompt)), bytes(32))
    tokens, trace = generate(decoder, prompt, n)
    assert generation_tokens((pack_ids(prompt), n), trace) == (prompt, tokens)
    claim(market, job_id, roles["solver"])
    with ape.reverts("market: a generation job commits with commit_generation"):
        commit(market, job_id, trace, roles["solver"])
    tx = market.commit_generation(*gen_args(job_id, prompt, tokens, trace), sender=roles["solver"])
    job = market.job(job_id)
    # T_0 and S_0 of the verifying pass over [prompt ‖ tokens[:-1] ‖ 0 ...], as 5.15 writes them
    x = decode.verified_input(decoder, prompt, tokens)
    assert job.input_root == trace.slot_roots[0] == keccak256(enc(1, 6, keccak256(cm.packed(x)), 1))
    assert job.s_0 == trace.state_roots[0] and job.status == COMMITTED and job.output_root == trace.output_root
    [generated] = tx.decode_logs(market.TokensGenerated)
    assert (generated.tokens, generated.input_root, generated.s_0) == (pack_ids(tokens), job.input_root, job.s_0)
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=roles["other"])
    assert market.job(job_id).status == FINALIZED
    assert market.credit(roles["solver"]) == FEE


def test_generation_challenge_opens_game_from_built_s0_succeeds(market, registry, deployer, roles, decoder):
    # the market opens the game with the S_0 it built at commit (and the committed S_N), on the
    # same path as any job's; the solver lets its clock run out: the result is rejected
    model_id = registered(registry, decoder, deployer)
    prompt, n = [2, 4, 6], 2
    job_id, _ = post_generation(market, model_id, prompt, n, roles["requester"])
    tokens, trace = generate(decoder, prompt, n)
    claim(market, job_id, roles["solver"])
    market.commit_generation(*gen_args(job_id, prompt, tokens, trace), sender=roles["solver"])
    tx = market.challenge(job_id, value=CHALLENGER_BOND, sender=roles["challenger"])
    game = ape.project.DisputeGame.at(market.GAME())
    [opened] = tx.decode_logs(game.GameOpened)
    assert (opened.s_0, opened.s_n) == (trace.state_roots[0], trace.trace_root) == (market.job(job_id).s_0,
                                                                                    market.job(job_id).trace_root)
    assert game.games(opened.game_id).s_lo == trace.state_roots[0]
    warp_past(game.deadline(opened.game_id))
    game.timeout(opened.game_id, sender=roles["other"])
    market.settle(opened.game_id, sender=roles["challenger"])
    assert market.job(job_id).status == 5  # REJECTED
    assert market.credit(roles["requester"]) == FEE


def test_generation_commit_rejections_reverts(market, registry, deployer, roles, decoder):
    model_id = registered(registry, decoder, deployer)
    prompt, n = [7], 4
    job_id, _ = post_generation(market, model_id, prompt, n, roles["requester"])
    tokens, trace = generate(decoder, prompt, n)
    claim(market, job_id, roles["solver"])
    solver = roles["solver"]
    other = [(tokens[0] + 1) % 40] + tokens[1:]
    with ape.reverts("market: tokens differ from the output"):
        market.commit_generation(*gen_args(job_id, prompt, other, trace), sender=solver)
    with ape.reverts("market: tokens do not match the count"):
        market.commit_generation(*gen_args(job_id, prompt, tokens[:-1], trace), sender=solver)
    with ape.reverts("market: tokens do not match the count"):
        market.commit_generation(*gen_args(job_id, prompt, tokens + [0], trace), sender=solver)
    with ape.reverts("market: prompt differs from the posted one"):
        market.commit_generation(*gen_args(job_id, [8], tokens, trace), sender=solver)
    args = list(gen_args(job_id, prompt, tokens, trace))
    with ape.reverts("market: output does not match shape"):
        market.commit_generation(*args[:3], args[3][:-4], *args[4:], sender=solver)
    with ape.reverts("market: bad output proof"):
        market.commit_generation(*args[:4], keccak256(b"other"), *args[5:], sender=solver)
    with ape.reverts("market: caller is not the solver"):
        market.commit_generation(*args, sender=roles["other"])
    market.commit_generation(*args, sender=solver)
    assert market.job(job_id).s_0 == trace.state_roots[0]


@pytest.mark.parametrize("prompt_bytes, n, reason", [
    (pack_ids([1, 2, 3, 4, 5, 6]), 2, "market: prompt and tokens exceed the context"),  # P + n - 1 = 7 > 6
    (pack_ids([1]), 7, "market: prompt and tokens exceed the context"),
    (pack_ids([1]), 2**256 - 1, "market: prompt and tokens exceed the context"),
    (pack_ids([1, 2]), 0, "market: zero tokens"),
    (b"", 1, "market: prompt is not int32 ids"),
    (b"\x00\x00\x01", 1, "market: prompt is not int32 ids"),
    (pack_ids([1]) + b"\x00", 1, "market: prompt is not int32 ids"),
])
def test_generation_post_rejections_reverts(market, registry, deployer, roles, decoder, prompt_bytes, n, reason):
    model_id = registered(registry, decoder, deployer)
    with ape.reverts(reason):
        market.post_generation(model_id, prompt_bytes, n, SOLVER_BOND, *WINDOWS, value=FEE, sender=roles["requester"])


def test_generation_post_limits_succeeds(market, registry, deployer, roles, decoder):
    model_id = registered(registry, decoder, deployer)
    post_generation(market, model_id, [1, 2, 3, 4, 5, 6], 1, roles["requester"])  # P = T, one token
    post_generation(market, model_id, [1], 6, roles["requester"])  # n = T
    assert market.job(market.job_count()).status == OPEN


def test_generation_model_that_cannot_generate_reverts(market, registry, deployer, roles, encoder):
    model_id = registered(registry, encoder, deployer)
    with ape.reverts("market: model cannot generate"):
        market.post_generation(model_id, pack_ids([1]), 1, SOLVER_BOND, *WINDOWS, value=FEE, sender=roles["requester"])
    registry.register(2, 6, 1, OPS_ROOT, 1, 1, 1, 10922, 3, 1, sender=deployer)  # T = 6 ids, but 3 output rows
    with ape.reverts("market: model cannot generate"):
        market.post_generation(registry.model_count(), pack_ids([1]), 1, SOLVER_BOND, *WINDOWS, value=FEE,
                               sender=roles["requester"])
    assert market.MAX_CONTEXT() == 4096
    for t, reason in [(4096, None), (4097, "market: context above MAX_CONTEXT")]:
        registry.register(2, t, 1, OPS_ROOT, 1, 1, 1, 65536 // t, t, 1, sender=deployer)
        args = (registry.model_count(), pack_ids([1]), 1, SOLVER_BOND, *WINDOWS)
        if reason is None:
            market.post_generation(*args, value=FEE, sender=roles["requester"])
        else:
            with ape.reverts(reason):
                market.post_generation(*args, value=FEE, sender=roles["requester"])


# ---------------------------------------------------------------------------
# models/moby-llama: the S_0 the market builds is the verifying pass's
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moby():
    llama_compile = pytest.importorskip("referee.llama_compile")
    from referee.llama import load_llama

    model = load_llama(MOBY)
    t = model.cfg.max_position_embeddings
    text = torch.tensor(list((MOBY / "calibration.txt").read_bytes()), dtype=torch.int64)
    compiled = llama_compile.compile_llama(model, llama_compile.windows(text, t, 8)[:, :t], name="moby-llama")
    return compiled.validate()


def test_moby_llama_generation_s0_is_verified_inputs_succeeds(market, registry, deployer, roles, moby):
    t = moby.input_cols
    assert tuple(moby.registry_facts()) == (1, 1, 1, moby.row_rule[1], t, 1)
    model_id = registered(registry, moby, deployer)
    prompt = list(b"Call me Ishmael.")
    n = t - len(prompt) + 1  # fills the context: P + n - 1 = T
    job_id, post_tx = post_generation(market, model_id, prompt, n, roles["requester"])
    tokens, trace = generate(moby, prompt, n)
    claim(market, job_id, roles["solver"])
    commit_tx = market.commit_generation(*gen_args(job_id, prompt, tokens, trace), sender=roles["solver"])
    x = decode.verified_input(moby, prompt, tokens)
    assert market.job(job_id).input_root == cm.commit_tensor(x).root == trace.slot_roots[0]
    assert market.job(job_id).s_0 == trace.state_roots[0] == cm.state_roots(trace.slot_roots)[0]
    print(f"\nmoby-llama generation: P = {len(prompt)}, n = {n}: post_generation gas {post_tx.gas_used:,}, "
          f"commit_generation gas {commit_tx.gas_used:,}")
    # a 128-token generation (P = 1, n = T = 128)
    job_id, post_tx = post_generation(market, model_id, [ord("C")], t, roles["requester"])
    tokens, trace = generate(moby, [ord("C")], t)
    claim(market, job_id, roles["solver"])
    commit_tx = market.commit_generation(*gen_args(job_id, [ord("C")], tokens, trace), sender=roles["solver"])
    assert market.job(job_id).s_0 == trace.state_roots[0]
    print(f"moby-llama {t}-token generation: post_generation gas {post_tx.gas_used:,}, "
          f"commit_generation gas {commit_tx.gas_used:,}")


# ---------------------------------------------------------------------------
# protocol 5.15's example, through the contract
# ---------------------------------------------------------------------------


def test_generation_protocol_example_t0_succeeds(market, registry, deployer, roles):
    # T = 4, P = 1, p_0 = 5, n = 2 with g_0 = 7: x = [5, 7, 0, 0] and T_0 = 0xeac1…f7ce (5.15)
    registry.register(2, 4, 1, OPS_ROOT, 1, 1, 1, 16384, 4, 1, sender=deployer)
    job_id, _ = post_generation(market, registry.model_count(), [5], 2, roles["requester"])
    y = torch.tensor([[7], [9], [1], [2]], dtype=torch.int32)  # g_0 = y[0], g_1 = y[1]
    slots = [bytes(32), keccak256(b"slot 1"), cm.commit_tensor(y).root]
    s_n = cm.state_roots(slots)[-1]
    claim(market, job_id, roles["solver"])
    market.commit_generation(job_id, pack_ids([5]), pack_ids([7, 9]), cm.packed(y), s_n,
                             cm.state_tree(slots, 2).proof(2), sender=roles["solver"])
    t_0 = bytes.fromhex("eac1bd3fd75cccf892bfc9161c7107167d0b140f8ec9f9b0025781409477f7ce")
    assert keccak256(pack_ids([5, 7, 0, 0])) == bytes.fromhex(
        "ed16e0e69b1cc5a409db116993fcfa6168bec43913480b0b984af63f75514399")
    assert market.job(job_id).input_root == t_0
    assert market.job(job_id).s_0 == cm.state_roots([t_0, bytes(32), bytes(32)])[0]
