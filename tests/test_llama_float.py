"""The float Llama (referee.llama), its corpus (referee.corpus) and the committed models/moby-llama.

Config errors, the Hugging Face layout round trip, the committed model's files and its held-out
loss, the byte tokenizer, and the training script's determinism (training/train_llama.py).
The corpus comes from `make setup` (make corpus); without it the corpus tests fail saying so.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from referee import corpus
from referee.errors import ModelCompileError
from referee.llama import FloatLlama, LlamaConfig, load_llama, save_llama

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "moby-llama"
# Held-out loss of the committed weights on the first 16 windows of 128 bytes of the held-out
# split, measured as 1.5698 nats/byte (torch 2.13.0 CPU); a random model is ~5.5 (ln 256 = 5.545).
HELD_OUT_WINDOWS, HELD_OUT_MEASURED, HELD_OUT_BOUND = 16, 1.5698, 1.65
TEXT = "Call me Ishmael. Some years ago—never mind how long precisely—“Ahab”, naïve 鯨 🐋\n\t\x00\x7f"


def _trainer():
    spec = importlib.util.spec_from_file_location("train_llama", ROOT / "training" / "train_llama.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hf(**changes) -> dict:
    return {**LlamaConfig(num_hidden_layers=1).to_hf(), **changes}


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden_size": 130}, "hidden_size 130 is not a multiple of num_attention_heads 4"),
    ({"num_key_value_heads": 3}, "num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
    ({"hidden_size": 12, "num_attention_heads": 4, "num_key_value_heads": 1}, "head width 3 must be even"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer, got 0"),
    ({"vocab_size": 2.5}, "vocab_size must be a positive integer, got 2.5"),
])
def test_config_rejects_bad_shapes(kwargs, message):
    with pytest.raises(ModelCompileError, match=message):
        LlamaConfig(**kwargs)


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "gpt2"}, "model_type='gpt2'.*a LlamaForCausalLM is needed"),
    ({"architectures": ["LlamaModel"]}, "a LlamaForCausalLM is needed"),
    ({"hidden_act": "gelu"}, "hidden_act = 'gelu' is not supported"),
    ({"attention_bias": True}, "attention_bias = True is not supported"),
    ({"tie_word_embeddings": True}, "tie_word_embeddings = True is not supported"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling = .* is not supported"),
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4}}, "rope_parameters = .* is not supported"),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": 5e5}}, "rope_theta 10000.0 differs"),
    ({"head_dim": 64}, "head_dim 64 differs from hidden_size / heads"),
])
def test_config_from_hf_rejects_what_is_unsupported(changes, message):
    with pytest.raises(ModelCompileError, match=message):
        LlamaConfig.from_hf(_hf(**changes))


def test_config_from_hf_reads_transformers_5_layout():
    hf = _hf(rope_parameters={"rope_type": "default", "rope_theta": 5e5})
    del hf["rope_theta"]
    assert LlamaConfig.from_hf(hf).rope_theta == 5e5
    hf = _hf()
    del hf["vocab_size"]
    with pytest.raises(ModelCompileError, match="lacks vocab_size"):
        LlamaConfig.from_hf(hf)


# ---------------------------------------------------------------------------
# The Hugging Face layout
# ---------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    model = FloatLlama(LlamaConfig(num_hidden_layers=2, max_position_embeddings=16), seed=3).eval()
    save_llama(model, tmp_path)
    names = set(json.loads((tmp_path / "config.json").read_text()))
    assert {"model_type", "num_key_value_heads", "rope_theta"} <= names
    back = load_llama(tmp_path)
    assert back.cfg == model.cfg
    assert set(back.hf_state_dict()) >= {"model.layers.1.self_attn.k_proj.weight",
                                         "model.layers.1.mlp.down_proj.weight", "lm_head.weight"}
    for (name, a), (_, b) in zip(model.named_parameters(), back.named_parameters()):
        assert torch.equal(a, b), name
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(ids), back(ids))


def test_load_names_a_missing_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    save_llama(FloatLlama(LlamaConfig(num_hidden_layers=1)), tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["model.layers.0.self_attn.q_proj.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelCompileError, match="lacks model.layers.0.self_attn.q_proj.weight"):
        load_llama(tmp_path)


# ---------------------------------------------------------------------------
# The committed model and its tokenizer
# ---------------------------------------------------------------------------


def test_committed_model_loads():
    model = load_llama(MODEL)
    assert model.cfg == LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=352, num_hidden_layers=4,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    assert (MODEL / "README.md").is_file()


def test_committed_tokenizer_is_bytes():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    assert tok.get_vocab_size() == 256
    assert json.loads(tok.to_str()) == json.loads(_trainer().byte_tokenizer().to_str())
    for text in (TEXT, "", "  leading spaces", corpus.split_text("val")[:3000]):
        ids = tok.encode(text).ids
        assert ids == list(text.encode())
        assert tok.decode(ids) == text


def test_committed_model_held_out_loss():
    trainer = _trainer()
    ids = trainer.ids_of(corpus.split_bytes("val"))
    loss = trainer.mean_loss(load_llama(MODEL), ids, 128, HELD_OUT_WINDOWS)
    assert loss < HELD_OUT_BOUND, loss
    assert abs(loss - HELD_OUT_MEASURED) < 1e-3, loss  # the same weights and data give the same figure
    random_loss = trainer.mean_loss(trainer.init_model(load_llama(MODEL).cfg, seed=1), ids, 128, 4)
    assert random_loss > 5.0, random_loss


# ---------------------------------------------------------------------------
# Corpus and training
# ---------------------------------------------------------------------------


def test_corpus_split():
    assert [len(corpus.split_bytes(s)) for s in corpus.SPLITS] == [1_093_736, 122_678]
    assert corpus.split_text("train").startswith("ETYMOLOGY.")
    assert corpus.split_text("val").startswith("CHAPTER 124.")
    assert not set(corpus.parts("train")) & set(corpus.parts("val"))


def test_corpus_missing_says_make_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("REFEREE_CORPUS", str(tmp_path))
    assert not corpus.available()
    with pytest.raises(corpus.CorpusMissing, match="run `make setup`"):
        corpus.split_bytes("train")


@pytest.fixture
def one_thread():
    """One torch thread, as the training script runs: tiny ops on two threads of a busy machine spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_is_deterministic(one_thread):
    trainer = _trainer()
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=16)
    data = trainer.ids_of(TEXT.encode() * 4)

    def run(seed):
        model, history = trainer.train(cfg, data, data, steps=3, batch=4, context=16, lr=1e-2, warmup=1,
                                       seed=seed, log=lambda s: None)
        return [p.detach().clone() for p in model.parameters()], [h["train"] for h in history]

    (a, loss_a), (b, loss_b), (c, _) = run(0), run(0), run(1)
    assert loss_a == loss_b and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert F.mse_loss(a[0], trainer.init_model(cfg, 0).embed_tokens.weight) > 0  # it did train
