"""Generation by teacher forcing (referee.decode; protocol "Generation by teacher forcing"):
exact KV-cached decoding gives the tokens of one forward pass over [prompt ‖ tokens[:-1] ‖ 0 ...],
and every slot row (transpose: column) at a position < P + n - 1 is bit-identical between the
incremental buffers and that pass, on random GPT-2-shaped decoders of several sizes, int8 and
16-bit, and on Llama-shaped ones (rope, SwiGLU's mul, grouped attention, a chunked head; from
tests/reference_models.llama, skipped where it does not exist yet). Models that are not causal
token decoders and bad jobs are refused with one clear error."""

import dataclasses
import random

import pytest
import torch

import reference_models as rm
from helpers import random_ref_model, small_transformer, to_integer_model
from referee import ops as k
from referee.decode import (COLS, IDS, Decoder, GenerationMismatch, generated_tokens, plan, verified_input,
                            verify_generation, vocab)
from referee.errors import InputError, ModelCompileError
from referee.executor import Executor
from referee.graph_dict import model_from_dict
from referee.transformer import FloatTransformer, TransformerConfig
from referee.transformer_compile import compile_transformer

SIZES = {  # (layers, width, heads, ffn, seq, vocab)
    "tiny": (1, 16, 2, 32, 8, 40),
    "small": (2, 32, 4, 64, 16, 64),
    "wider": (2, 64, 8, 96, 24, 256),
}


def decoder(size: str, wide16=None, seed: int = 1):
    layers, width, heads, ffn, seq, vocab = SIZES[size]
    cfg = TransformerConfig("decoder", layers=layers, width=width, heads=heads, ffn=ffn, seq=seq, vocab=vocab,
                            eps=1e-5)
    calibration = torch.randint(0, vocab, (8, seq), generator=torch.Generator().manual_seed(seed))
    extra = {} if wide16 is None else {"wide16": wide16}
    return compile_transformer(FloatTransformer(cfg, seed=seed).eval(), calibration, name=f"gpt-{size}", **extra)


LLAMAS = {  # (layers, width, heads, kv_heads, ffn, seq, head chunks)
    "llama-gqa": (2, 32, 4, 2, 48, 16, [40, 24]),
    "llama-mha": (1, 16, 2, 2, 32, 8, [40]),
}


def llama(size: str, seed: int = 5):
    if not hasattr(rm, "llama"):
        pytest.skip("tests/reference_models.llama (the Llama kinds) is not on this branch yet")
    model, _ = rm.llama(random.Random(seed), *LLAMAS[size], 1)
    return model_from_dict(model)


def compiled_llama():
    """A random float Llama (4 query heads over 2, a vocabulary split in two head chunks)
    compiled by referee.llama_compile, where that module exists yet."""
    llama_compile = pytest.importorskip("referee.llama_compile", reason="referee.llama_compile is not here yet")
    from referee.llama import FloatLlama, LlamaConfig

    cfg = LlamaConfig(vocab_size=llama_compile.HEAD_CHUNK + 60, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
    ids = torch.randint(0, cfg.vocab_size, (4, 16), generator=torch.Generator().manual_seed(0))
    return llama_compile.compile_llama(FloatLlama(cfg, seed=3), ids)


@pytest.fixture(scope="module", params=[(s, w) for s in SIZES for w in ("16-bit", "int8")]
                + [(s, "") for s in LLAMAS] + [("llama-compiled", "")], ids=lambda p: f"{p[0]}-{p[1]}".rstrip("-"))
def model(request):
    size, width = request.param
    if size == "llama-compiled":
        return compiled_llama()
    if size in LLAMAS:
        return llama(size)
    return decoder(size, None if width == "16-bit" else ())


def assert_same_positions(decoder_: Decoder, full: list[torch.Tensor], upto: int) -> None:
    """Every slot at positions < upto: rows, transpose columns h*T + p, id columns."""
    t = decoder_.model.input_cols
    for j, (inc, ref) in enumerate(zip(decoder_.slots(), full)):
        layout = decoder_.layouts[j]
        if layout == IDS:
            inc, ref = inc[:, :upto], ref[:, :upto]
        elif layout == COLS:
            h = decoder_.model.ops[j - 1].heads
            inc, ref = inc.view(inc.shape[0], h, t)[:, :, :upto], ref.view(ref.shape[0], h, t)[:, :, :upto]
        else:
            inc, ref = inc[:upto], ref[:upto]
        assert inc.dtype == ref.dtype and torch.equal(inc, ref), f"slot {j} ({layout}) differs"


@pytest.mark.parametrize("prompt_len, n", [(1, 1), (3, 5), (1, None), (5, None)])  # None: up to the whole context
def test_incremental_equals_teacher_forced_pass_succeeds(model, prompt_len, n):
    t = model.input_cols
    n = t - prompt_len + 1 if n is None else n
    prompt = torch.randint(0, k.VOCAB_MAX, (prompt_len,), generator=torch.Generator().manual_seed(n)) \
        .remainder_(vocab(model)).tolist()
    dec = Decoder(model, "cpu")
    streamed = []
    tokens = dec.generate(prompt, n, on_token=streamed.append)
    assert len(tokens) == n and streamed == tokens and dec.length == prompt_len + n - 1
    slots = verify_generation(dec.executor, prompt, tokens)
    assert generated_tokens(slots[-1], prompt_len, n) == tokens
    x = verified_input(model, prompt, tokens)
    assert x.tolist() == [prompt + tokens[:-1] + [0] * (t - prompt_len - n + 1)] and torch.equal(slots[0], x)
    assert_same_positions(dec, slots, prompt_len + n - 1)


def test_chunks_of_any_size_equal_the_full_pass_succeeds(model):
    """Feeding given ids a few positions at a time (row0 > 0, several rows) fills the full pass's bits."""
    t, v = model.input_cols, vocab(model)
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, v, (1, t), generator=gen, dtype=torch.int32)
    full = Executor(model, "cpu").run(ids)
    dec = Decoder(model, "cpu")
    while dec.length < t:
        m = int(torch.randint(1, 4, (1,), generator=gen))
        m = min(m, t - dec.length)
        token = dec.feed(ids[0, dec.length:dec.length + m].tolist())
        assert token == int(full[-1][dec.length - 1, 0])
        assert_same_positions(dec, full, dec.length)


def test_backends_give_the_same_generation_succeeds():
    model = decoder("small")
    runs = [Decoder(model, "cpu", backend).generate([1, 2, 3], 6) for backend in ("float", "int64", "auto")]
    assert runs[0] == runs[1] == runs[2]


def test_wrong_tokens_are_caught_fails():
    model = decoder("tiny")
    dec = Decoder(model, "cpu")
    tokens = dec.generate([4, 2], 4)
    wrong = tokens[:2] + [(tokens[2] + 1) % 40] + tokens[3:]
    with pytest.raises(GenerationMismatch, match="token 2 is .* teacher-forced pass gives"):
        verify_generation(dec.executor, [4, 2], wrong)
    # the last token is no input of the verifying pass: only its argmax row checks it
    with pytest.raises(GenerationMismatch, match="token 3 is"):
        verify_generation(dec.executor, [4, 2], tokens[:3] + [(tokens[3] + 1) % 40])


@pytest.mark.parametrize("prompt, n, fragment", [
    ([], 1, "the prompt is empty"),
    ([1, 2], 0, "0 new tokens: a generation makes at least 1"),
    ([1, 2, 3], 7, "need 9 positions; gpt-tiny has a context of 8 (at most 6 new tokens)"),
    ([1, 40], 2, "prompt id 1 is 40, outside the vocabulary [0, 40)"),
    ([-1], 2, "prompt id 0 is -1, outside the vocabulary"),
])
def test_bad_jobs_are_refused_fails(prompt, n, fragment):
    dec = Decoder(decoder("tiny"), "cpu")
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        dec.generate(prompt, n)


def test_bad_verify_inputs_are_refused_fails():
    model = decoder("tiny")
    ex = Executor(model, "cpu")
    with pytest.raises(InputError, match="token id 1 is 99"):
        verify_generation(ex, [1], [3, 99])
    with pytest.raises(InputError, match="need 9 positions"):
        verify_generation(ex, [1, 2, 3], [0] * 7)
    with pytest.raises(InputError, match="do not fit the context"):
        Decoder(model, "cpu").feed(list(range(9)))


def test_models_that_are_not_causal_decoders_are_refused_fails():
    with pytest.raises(ModelCompileError, match="not a causal token decoder.*input is not token ids"):
        plan(to_integer_model(random_ref_model(__import__("random").Random(2), 4, [3])))
    with pytest.raises(ModelCompileError, match="softmax.*no keymask|is not causal"):
        plan(small_transformer("encoder"))
    model = decoder("tiny")
    scores = next(j for j, op in enumerate(model.ops) if isinstance(op, k.MatmulOp) and op.causal)
    ops = list(model.ops)
    ops[scores] = dataclasses.replace(ops[scores], causal=False)
    with pytest.raises(ModelCompileError, match=f"op {scores + 1} \\(matmul\\) is not causal .* later positions"):
        plan(dataclasses.replace(model, ops=ops))
    soft = next(j for j, op in enumerate(model.ops) if isinstance(op, k.SoftmaxOp))
    ops = list(model.ops)
    ops[soft] = dataclasses.replace(ops[soft], causal=False)  # P·V would sum later positions of V
    with pytest.raises(ModelCompileError, match="A·transpose needs A from a causal softmax"):
        plan(dataclasses.replace(model, ops=ops))
    ops = list(model.ops)[:-1]  # ends in the logits, not an argmax
    with pytest.raises(ModelCompileError, match="last op is not an argmax"):
        plan(dataclasses.replace(model, ops=ops))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_decoding_equals_cpu_succeeds():
    """The row0 kernels on CUDA: the same tokens and the same bits as on the CPU."""
    model = decoder("small")
    cpu, cuda = Decoder(model, "cpu"), Decoder(model, "cuda")
    assert cpu.generate([3, 1, 4], 12) == cuda.generate([3, 1, 4], 12)
    for j, (a, b) in enumerate(zip(cpu.slots(), cuda.slots())):
        assert torch.equal(a, b), f"slot {j}"
