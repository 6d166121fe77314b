"""referee.llama_compile: a float Llama compiled to the exact kinds, run by the Executor on CPU.

Exactness: the model validates and holds every kind it should (rope, grouped matmul, mul, the
split head's argmax pair / carry among them); each sequence's rows are bit-identical whatever
batch it runs in; the split head's argmax equals torch.argmax of the concatenated exact logits
(the lowest index on ties, across chunks). Fidelity: SmoothQuant leaves the float function
unchanged, random models of several GQA ratios agree with their float greedy tokens, and the
committed models/moby-llama agrees on >= 95% of a held-out slice (skipped only without the
corpus). Checkpoint import: ``referee quantize DIR`` on a saved LlamaForCausalLM directory.
"""

from pathlib import Path

import pytest
import reference_llama as rl
import torch
from click.testing import CliRunner

from referee import corpus
from referee.cli import main
from referee.executor import Executor
from referee.graph_dict import model_to_dict
from referee.llama import FloatLlama, LlamaConfig, load_llama, save_llama
from referee.llama_compile import HEAD_CHUNK, compile_llama, exact_logits, fidelity, greedy, smooth, windows
from referee.modelfile import load_model

ROOT = Path(__file__).resolve().parents[1]
MOBY = ROOT / "models" / "moby-llama"
KINDS = {"embed", "norm", "linear", "rope", "matmul", "softmax", "transpose", "add", "lut", "mul", "argmax"}


def _cfg(**kw) -> LlamaConfig:
    base = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=16)
    return LlamaConfig(**(base | kw))


def _ids(cfg: LlamaConfig, rows: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, cfg.vocab_size, (rows, t), generator=torch.Generator().manual_seed(seed))


def _byte_tokenizer(path: Path) -> None:
    """A byte-level tokenizer.json (256 ids, no merges), as a Llama checkpoint directory carries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(path))


@pytest.fixture(scope="module")
def small():
    cfg = _cfg()
    model = FloatLlama(cfg, seed=3)
    return model, compile_llama(model, _ids(cfg, 4, 16))


def test_every_kind_and_validates(small):
    model, compiled = small
    assert set(compiled.kinds()) == KINDS
    assert compiled.validate() is compiled and compiled.input_dtype == 1 and compiled.input_cols == 16
    grouped = [op for op in compiled.ops if type(op).__name__ == "MatmulOp"]
    assert grouped and all(op.kv_heads == 2 and op.heads == 4 for op in grouped)


@pytest.mark.parametrize("vocab", [40, HEAD_CHUNK + 24])
def test_equals_the_independent_reference(vocab):
    """Every slot and the model root against tests/reference_llama.py (plain Python ints, no
    code shared with referee): a one-chunk head and a split head of two chunks."""
    cfg = _cfg(vocab_size=vocab, hidden_size=16, intermediate_size=24, max_position_embeddings=6,
               num_hidden_layers=1 if vocab > HEAD_CHUNK else 2)
    model = FloatLlama(cfg, seed=vocab)
    compiled = compile_llama(model, _ids(cfg, 3, 6))
    x = _ids(cfg, 2 if vocab < HEAD_CHUNK else 1, 6, seed=11).to(torch.int32)
    got = Executor(compiled, device="cpu").run(x)
    as_dict = model_to_dict(compiled)
    want = rl.run_model(as_dict, x.tolist())
    assert rl.model_root(as_dict) == compiled.root
    for j, (g, w) in enumerate(zip(got, want)):
        assert g.tolist() == w, f"slot {j}"


def test_rows_identical_across_batchings(small):
    model, compiled = small
    ex = Executor(compiled, device="cpu")
    x = _ids(model.cfg, 3, 16, seed=5).to(torch.int32)
    together = ex.run(x)
    alone = [ex.run(x[i:i + 1]) for i in (2, 0)]
    for slot, full in enumerate(together):
        per = full.reshape(3, -1, full.shape[-1])  # every slot holds a block of rows per sequence
        for i, run in zip((2, 0), alone):
            assert torch.equal(per[i], run[slot].reshape(-1, full.shape[-1])), f"slot {slot}, sequence {i}"


def test_agrees_with_float_on_gqa_ratios():
    for heads, kv in ((4, 1), (4, 4), (8, 2)):
        cfg = _cfg(hidden_size=64, num_attention_heads=heads, num_key_value_heads=kv)
        model = FloatLlama(cfg, seed=heads + kv)
        compiled = compile_llama(model, _ids(cfg, 4, 16))
        r = fidelity(model, compiled, _ids(cfg, 6, 17, seed=9))
        # A random model's logits are nearly flat (loss ~ ln vocab): many near-ties, so the
        # greedy agreement is a weak signal here; the loss says the logits are close.
        assert r["agreement"] >= 0.85, (heads, kv, r)
        assert abs(r["exact_loss"] - r["float_loss"]) < 0.01, (heads, kv, r)


def test_smoothquant_is_exact_in_float(small):
    model, _ = small
    x = _ids(model.cfg, 2, 16, seed=7)
    with torch.no_grad():
        assert torch.allclose(smooth(model, x)(x), model(x), atol=1e-4)


def test_split_head_argmax_lowest_index_across_chunks():
    vocab = 2 * HEAD_CHUNK + 40  # three chunks, the last short
    cfg = _cfg(vocab_size=vocab, hidden_size=8, intermediate_size=16, num_attention_heads=2, num_key_value_heads=1,
               num_hidden_layers=1, max_position_embeddings=8)
    model = FloatLlama(cfg, seed=1)
    with torch.no_grad():  # ties across chunks: ids 7, HEAD_CHUNK + 7 and 2 HEAD_CHUNK + 7 have one row
        row = model.lm_head.weight[7] * 4
        for i in (7, HEAD_CHUNK + 7, 2 * HEAD_CHUNK + 7):
            model.lm_head.weight[i] = row
        model.lm_head.weight[HEAD_CHUNK + 30] = -row  # the winner where row loses
    compiled = compile_llama(model, _ids(cfg, 4, 8))
    kinds = [type(op).__name__ for op in compiled.ops]
    assert kinds.count("ArgmaxOp") == 3 and len(compiled.meta["logits_slots"]) == 3
    assert [(op.pair, op.carry, op.offset) for op in compiled.ops if kinds[compiled.ops.index(op)] == "ArgmaxOp"] \
        == [(True, False, 0), (True, True, HEAD_CHUNK), (False, True, 2 * HEAD_CHUNK)]
    slots = Executor(compiled, device="cpu").run(_ids(cfg, 3, 8, seed=2).to(torch.int32))
    logits = exact_logits(compiled, slots)
    got = greedy(compiled, slots)
    assert torch.equal(got, logits.argmax(dim=1))  # torch.argmax: the first maximal index
    assert set(got.tolist()) & {7, HEAD_CHUNK + 30} and not set(got.tolist()) & {HEAD_CHUNK + 7, 2 * HEAD_CHUNK + 7}


@pytest.mark.parametrize("heads,kv,width,vocab", [(4, 1, 32, 256), (4, 4, 32, 256), (8, 2, 64, 256),
                                                   (2, 1, 8, HEAD_CHUNK + 100)])
def test_quantize_checkpoint_directory(tmp_path, heads, kv, width, vocab):
    """``referee quantize DIR`` on LlamaForCausalLM directories written by save_llama: GQA ratios
    4/1, 4/4, 8/2 and a vocabulary past HEAD_CHUNK (the split head) at a tiny width."""
    cfg = _cfg(vocab_size=vocab, num_attention_heads=heads, num_key_value_heads=kv, hidden_size=width)
    ckpt = save_llama(FloatLlama(cfg, seed=4), tmp_path / "ckpt")
    _byte_tokenizer(ckpt / "tokenizer.json")
    runner = CliRunner()
    result = runner.invoke(main, ["quantize", str(ckpt), "-o", str(tmp_path / "out")])
    assert result.exit_code != 0 and "calibration.txt" in result.output and "--calibration-text" in result.output
    text = tmp_path / "cal.txt"
    text.write_text("Call me Ishmael. Some years ago, never mind how long precisely.\n" * 3)
    result = runner.invoke(main, ["quantize", str(ckpt), "--calibration-text", str(text), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "out")
    assert model.input_cols == 16 and model.meta["tokenizer"]["kind"] == "causal"
    assert set(model.kinds()) == KINDS
    assert len(model.meta["logits_slots"]) == (2 if vocab > HEAD_CHUNK else 1)
    result = runner.invoke(main, ["info", str(tmp_path / "out")])
    assert result.exit_code == 0 and "--tokens N" in result.output, result.output


def test_quantize_reads_the_checkpoint_calibration_txt(tmp_path):
    ckpt = save_llama(FloatLlama(_cfg(vocab_size=256), seed=4), tmp_path / "ckpt")
    _byte_tokenizer(ckpt / "tokenizer.json")
    (ckpt / "calibration.txt").write_text("It was the Bay of Biscay.\n")
    result = CliRunner().invoke(main, ["quantize", str(ckpt), "--seq", "8", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "out")
    assert model.input_cols == 8 and model.meta["calibration"]["source"] == "calibration.txt"


def test_moby_llama_agrees_on_held_out_slice():
    if not corpus.available():
        pytest.skip("the Moby-Dick corpus is not installed (make corpus)")
    model = load_llama(MOBY)
    t = model.cfg.max_position_embeddings
    train = torch.tensor(list(corpus.split_bytes("train")[:200_000]), dtype=torch.int64)
    val = torch.tensor(list(corpus.split_bytes("val")), dtype=torch.int64)
    compiled = compile_llama(model, windows(train, t, 16)[:, :t])
    r = fidelity(model, compiled, windows(val, t, 8))
    assert r["agreement"] >= 0.95, r
    assert r["exact_loss"] < r["float_loss"] + 0.05, r
