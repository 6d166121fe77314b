"""The transformer builder: a float encoder and decoder compiled to exact integer models
track the float models, run bit-identically on every CPU backend and against the independent
reference (whole traces and roots), and refuse weights that break the int32 accumulator bound.
The ``masked`` encoder has a pad id: its padding is masked as a key and left out of the pooling
(protocol 5.9)."""

import dataclasses

import pytest
import torch

import reference_transformer as rt
from referee import commitments as cm
from referee.errors import ModelCompileError
from referee.executor import Executor
from referee.graph_dict import model_from_dict, model_to_dict
from referee.transformer import FloatTransformer, TransformerConfig
from referee.transformer_compile import compile_transformer

SMALL = {"encoder": TransformerConfig("encoder", layers=2, width=64, heads=4, ffn=256, seq=16, vocab=256),
         "decoder": TransformerConfig("decoder", layers=2, width=64, heads=4, ffn=256, seq=16, vocab=256, eps=1e-5),
         "masked": TransformerConfig("encoder", layers=2, width=64, heads=4, ffn=256, seq=16, vocab=256, pad_id=0)}


def tokens(cfg: TransformerConfig, batch: int, seed: int) -> torch.Tensor:
    """Random ids; with a pad id, sequence i keeps its first 1 + (5 i mod seq) tokens, then pads."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1 if cfg.pad_id is not None else 0, cfg.vocab, (batch, cfg.seq), generator=gen)
    if cfg.pad_id is not None:
        for i in range(batch):
            ids[i, 1 + (5 * i) % cfg.seq:] = cfg.pad_id
    return ids


@pytest.fixture(scope="module", params=["encoder", "decoder", "masked"])
def compiled(request):
    cfg = SMALL[request.param]
    float_model = FloatTransformer(cfg, seed=1).eval()
    return cfg, float_model, compile_transformer(float_model, tokens(cfg, 16, 5))


def test_integer_model_tracks_float_model_succeeds(compiled):
    cfg, float_model, model = compiled
    x = tokens(cfg, 8, 6)
    out = Executor(model, "cpu").run(x.to(torch.int32))[-1]
    with torch.no_grad():
        expected = float_model(x)
    if cfg.kind == "encoder":  # unit vectors at scale 1/127
        cos = torch.nn.functional.cosine_similarity(out.double() / 127, expected.double(), dim=-1)
        assert cos.min() > 0.99, cos
    else:  # greedy tokens after every position; random weights leave near-ties, so not all agree
        agree = (out.view(-1) == expected.argmax(-1).view(-1)).double().mean()
        assert agree > 0.8, agree


def test_backends_agree_bit_for_bit_succeeds(compiled):
    cfg, _, model = compiled
    x = tokens(cfg, 3, 7).to(torch.int32)
    x[0, 0], x[1, 3] = cfg.vocab + 5, -1  # ids outside the vocabulary are defined too
    float_slots = Executor(model, "cpu", "float").run(x)
    int_slots = Executor(model, "cpu", "int64").run(x)
    assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(float_slots, int_slots))


def test_whole_trace_equals_reference_succeeds(compiled):
    cfg, _, model = compiled
    tiny = dataclasses.replace(cfg, layers=2, width=16, heads=4, ffn=32, seq=6, vocab=40)
    small = compile_transformer(FloatTransformer(tiny, seed=2), tokens(tiny, 4, 1))
    d = model_to_dict(small)
    x = [[3, 39, 0, 41, -7, 12], [5, 5, 5, 5, 5, 5], [0] * 6]  # the last: all padding where 0 is the pad
    slots, roots, states = rt.trace(d, x)
    mine = Executor(small, "cpu").run(torch.tensor(x, dtype=torch.int32))
    assert [s.tolist() for s in mine] == slots
    assert [cm.commit_tensor(s).root for s in mine] == roots
    assert cm.state_roots(roots) == states
    assert small.root == rt.model_root(d) == model_from_dict(d).root
    assert [op.params_root for op in small.ops] == [rt.params_root(op) for op in d["ops"]]


def test_masked_encoder_ignores_padding_succeeds():
    """Float: a padded sentence embeds as the sentence alone. Exact: a sentence's output row is
    the same whatever the other rows of the batch and wherever its padding is written by other
    ids equal to the pad id (only the real tokens count)."""
    cfg = SMALL["masked"]
    float_model = FloatTransformer(cfg, seed=1).eval()
    x = tokens(cfg, 4, 6)
    with torch.no_grad():
        padded = float_model(x)
        alone = torch.cat([float_model(row[row != cfg.pad_id][None]) for row in x])
    assert torch.allclose(padded, alone, atol=1e-5)
    executor = Executor(compile_transformer(float_model, tokens(cfg, 16, 5)), "cpu")
    out = executor.run(x.to(torch.int32))[-1]
    y = tokens(cfg, 4, 9).to(torch.int32)
    y[2] = x[2]
    assert torch.equal(executor.run(y)[-1][2], out[2]) and not torch.equal(executor.run(y)[-1][1], out[1])


def test_pad_id_of_a_decoder_or_outside_the_vocabulary_fails():
    with pytest.raises(ValueError, match="pad_id 0 needs an encoder"):
        TransformerConfig("decoder", pad_id=0)
    with pytest.raises(ValueError, match=r"pad_id 512 needs an encoder and an id in \[0, vocab = 512\)"):
        TransformerConfig("encoder", pad_id=512)


def test_weights_breaking_the_accumulator_bound_are_refused_fails():
    cfg = SMALL["decoder"]
    float_model = FloatTransformer(cfg, seed=1)
    with torch.no_grad():
        float_model.blocks[0].fc1.bias[7] = 1e6  # bias / (s_x * s_w) far beyond 2^31
    with pytest.raises(ModelCompileError, match=r"op \d+, output channel 7: worst-case \|accumulator\|"):
        compile_transformer(float_model, tokens(cfg, 4, 5))


def test_calibration_tokens_of_the_wrong_length_fails():
    with pytest.raises(ModelCompileError, match=r"calibration tokens must have shape \(batch, 16\)"):
        compile_transformer(FloatTransformer(SMALL["encoder"]), torch.zeros(2, 15, dtype=torch.int64))


def test_int16_input_breaking_the_2_15_accumulator_bound_is_refused_fails():
    # FFN2 reads GELU's int16 output: 2^15 * sum|W[c]| must stay below 2^31, so a row of 600
    # weights of one magnitude (sum |W| = 600 * 127 > 2^16 after quantization) breaks it, though
    # the int8 bound (128 * sum|W|) would hold; the compiler names the op and channel.
    cfg = TransformerConfig("encoder", layers=1, width=16, heads=2, ffn=600, seq=4, vocab=20)
    float_model = FloatTransformer(cfg, seed=1)
    with torch.no_grad():
        float_model.blocks[0].fc2.weight[3] = 0.05
    with pytest.raises(ModelCompileError, match=r"op \d+, output channel 3: worst-case \|accumulator\| \d+ for an "
                                                r"int16 input reaches 2\^31"):
        compile_transformer(float_model, tokens(cfg, 4, 5))
    compile_transformer(float_model, tokens(cfg, 4, 5), wide16={"residual", "softmax", "norm"})  # int8 GELU: fine
