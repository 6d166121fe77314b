"""Text in, text out: the CLI's helpers for models compiled from a Hugging Face checkpoint.

``quantize_checkpoint`` compiles a BERT-family or Llama checkpoint directory into a model directory that
carries its tokenizer (``tokenizer.json`` copied in, its sha256 in the manifest, so
``modelfile.load_model`` refuses a swapped one). ``encode_texts`` turns sentences into the
int32 token ids such a model takes, with the tokenizer facts the manifest records, and
``embedding_lines`` says what came out in float units. docs/formats.md section 1 ("Tokenizers")
specifies the manifest's ``tokenizer`` object. For a decoder (``referee run --tokens``),
``generation_tokenizer`` reads the model directory's tokenizer as it is (no padding, no
truncation: a prompt is its own ids) and ``TextStream`` turns the generated ids into text as
they come.
"""

import hashlib
import time
from pathlib import Path

import torch

from .checkpoint import (TOKENIZER_FILE, compile_checkpoint, compile_llama_checkpoint, default_seq, load_tokenizer,
                         write_tokenizer)
from .errors import InputError, RefereeError
from .llama import is_llama_dir
from .model import DTYPE_NAMES, INT8, IntegerModel
from .modelfile import save_model

DATA = Path(__file__).parent / "data"
DEFAULT_CALIBRATION = DATA / "calibration.txt"
LLAMA_CALIBRATION = "calibration.txt"  # a Llama checkpoint's own calibration text, when it ships one
SHOWN_VALUES = 4   # embedding values printed per text; --output has them all
SHOWN_CHARS = 48   # a text is shown cut to this many characters
MAX_PAIRS_TEXTS = 4  # up to this many texts, the cosine of each pair is printed


def is_checkpoint(path: Path) -> bool:
    """A Hugging Face checkpoint directory (what ``referee quantize`` compiles as a transformer)."""
    return path.is_dir() and (path / "config.json").is_file()


def read_lines(path: Path, what: str) -> tuple[list[str], int]:
    """The non-blank lines of a UTF-8 text file, one input each, and how many blank lines were
    skipped (a trailing newline or a blank line is no input). InputError for a missing, empty
    or non-UTF-8 file, naming the first bad line."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory, not a text file") from None
    lines, blank = [], 0
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8").removeprefix("\ufeff")  # a BOM some editors write
        except UnicodeDecodeError as exc:
            raise InputError(f"{what} {path}: line {number} is not UTF-8 text ({exc.reason} at byte {exc.start})") \
                from None
        if line.strip():
            lines.append(line.strip())
        else:
            blank += 1
    if not lines:
        raise InputError(f"{what} {path} holds no text (one sentence per line is expected)")
    return lines, blank


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def quantize_checkpoint(ckpt: Path, out_dir: Path, seq: int | None, calibration: Path | None,
                        name: str | None, echo) -> IntegerModel:
    """Compile ``ckpt`` to the model directory ``out_dir`` with its tokenizer, printing each stage."""
    started = time.perf_counter()

    def stage(line: str) -> None:
        echo(f"[{time.perf_counter() - started:6.1f} s] {line}")

    seq = default_seq(ckpt) if seq is None else seq
    if is_llama_dir(ckpt):  # a decoder calibrates on running text: the checkpoint's, or --calibration-text
        source = calibration or ckpt / LLAMA_CALIBRATION
        if calibration is None and not source.is_file():
            raise InputError(f"{ckpt} has no {LLAMA_CALIBRATION}: give a calibration text with --calibration-text FILE")
        read_lines(source, "calibration text")  # the same checks: present, UTF-8, not empty
        model = compile_llama_checkpoint(ckpt, source.read_text(encoding="utf-8-sig"), seq=seq,
                                         name=name or ckpt.name, progress=stage)
        count, what = source.stat().st_size, "bytes"
    else:
        source = calibration or DEFAULT_CALIBRATION
        texts, _ = read_lines(source, "calibration text")
        model = compile_checkpoint(ckpt, texts, seq=seq, name=name or ckpt.name, progress=stage)
        count, what = len(texts), "sentences"
        model.meta["tokenizer"] |= {"padding": "right", "truncation": "right"}
    stage(f"compiled {len(model.ops)} ops; writing {out_dir}")
    src = ckpt / TOKENIZER_FILE
    from tokenizers import Tokenizer  # the compiler read it already; only its size is wanted here

    model.meta["tokenizer"] |= {"vocab_size": Tokenizer.from_file(str(src)).get_vocab_size(), "sha256": _sha256(src)}
    # What the scales were measured on: a model calibrated on other text quantizes differently.
    label = "built-in (referee/data/calibration.txt)" if calibration is None and what == "sentences" else source.name
    model.meta["calibration"] = {"source": label, what: count, "sha256": _sha256(source)}
    write_tokenizer(out_dir, ckpt)  # before the manifest: save_model writes that last
    save_model(model, out_dir)
    stage("done")
    return model


def tokenizer_spec(model: IntegerModel, model_dir: Path) -> dict:
    """The manifest's ``tokenizer`` object; RefereeError for a model that takes no text."""
    spec = model.meta.get("tokenizer") if isinstance(model.meta, dict) else None
    if not isinstance(spec, dict):
        if model.input_dtype == INT8:
            raise RefereeError(f"{model_dir} takes int8 rows, not text: give an INPUT file (.json or .npy)")
        raise RefereeError(f"{model_dir} records no tokenizer: give its token ids as an INPUT file (.json or .npy)")
    if spec.get("seq") != model.input_cols:
        raise RefereeError(f"{model_dir}: the tokenizer's seq {spec.get('seq')!r} is not the model's sequence "
                           f"length {model.input_cols}")
    return spec


def encode_texts(model: IntegerModel, model_dir: Path, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
    """Token ids (len(texts), seq) as int32, as the manifest's tokenizer object says ([CLS] text
    [SEP], right-padded with pad_id, truncated at seq), and the 1-based numbers of the texts
    that were cut. ``load_model`` has checked the tokenizer file's sha256."""
    spec = tokenizer_spec(model, model_dir)
    if "sha256" not in spec:  # written by compile_checkpoint alone: no file travels with it
        raise RefereeError(f"{model_dir} carries no tokenizer file: give its token ids as an INPUT file")
    try:  # the file compiled with (load_model checked its sha256), set up as it was for calibration
        tokenizer, _ = load_tokenizer(model_dir, spec["seq"])
    except RefereeError:
        raise
    except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
        raise RefereeError(f"{model_dir}: cannot read its tokenizer: {exc}") from None
    encodings = tokenizer.encode_batch(texts)
    cut = [i for i, e in enumerate(encodings, start=1) if e.overflowing]
    return torch.tensor([e.ids for e in encodings], dtype=torch.int32), cut


def texts_given(texts: tuple[str, ...], text_file: Path | None) -> tuple[list[str], list[tuple[str, str]]]:
    """The ``--text`` values then ``--text-file``'s lines, and lines saying what was skipped."""
    for i, text in enumerate(texts, start=1):
        if not text.strip():
            raise InputError(f"--text number {i} is empty; give a sentence")
        try:  # bytes that are not UTF-8 reach Python's argv as lone surrogates
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"--text number {i} is not UTF-8 text") from None
    given, notes = [t.strip() for t in texts], []
    if text_file is not None:
        lines, blank = read_lines(text_file, "--text-file")
        given += lines
        if blank:
            notes.append(("skipped", f"{blank} blank line{'s' * (blank != 1)} in {text_file} (no input)"))
    return given, notes


def short(text: str) -> str:
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…")


def output_scale(model: IntegerModel) -> float | None:
    """The float value of one output step: the manifest's, else the one the compiler kept in meta."""
    if model.output_scale is not None:
        return model.output_scale
    scale = model.meta.get("output_scale") if isinstance(model.meta, dict) else None
    return scale if isinstance(scale, (int, float)) and scale > 0 else None


def embedding_lines(model: IntegerModel, output: torch.Tensor, texts: list[str], cut: list[int]) -> list:
    """(label, value) lines: per text its first values and its norm, in float units when known."""
    scale, seq = output_scale(model), model.input_cols
    lines = []
    if cut:
        numbers = ", ".join(map(str, cut))
        lines.append(("truncated", f"text{'s' * (len(cut) > 1)} {numbers}: longer than {seq} tokens, "
                                   f"cut to the first {seq - 2} and [SEP]"))
    values = output.double() * (scale if scale else 1.0)
    dtype = DTYPE_NAMES[model.output_dtype]
    lines.append(("units", f"float = {dtype} x output scale {scale!r} (a unit-length embedding has norm 1)"
                  if scale else f"{dtype} steps (the manifest records no output scale)"))
    for i, (text, row) in enumerate(zip(texts, values), start=1):
        first = " ".join(f"{v:+.4f}" if scale else str(int(v)) for v in row[:SHOWN_VALUES].tolist())
        lines.append((f"text {i}", short(text)))
        lines.append(("", f"norm {float(row.norm()):.4f}, first {first} ... ({row.numel()} values)"))
    if 2 <= len(texts) <= MAX_PAIRS_TEXTS:
        unit = values / values.norm(dim=1, keepdim=True).clamp_min(1e-12)
        pairs = [f"{a}-{b} {float(unit[a - 1] @ unit[b - 1]):.3f}" for a in range(1, len(texts) + 1)
                 for b in range(a + 1, len(texts) + 1)]
        lines.append(("cosine", ", ".join(pairs) + "  (texts a-b)"))
    return lines


def info_lines(model: IntegerModel) -> list:
    """``referee info``'s lines on where a text model came from and how text becomes its input."""
    meta = model.meta if isinstance(model.meta, dict) else {}
    spec, lines = meta.get("tokenizer"), []
    if isinstance(spec, dict):
        case = "lowercased" if spec.get("lowercase") else "case kept"
        size = f"{spec['vocab_size']} tokens, " if "vocab_size" in spec else ""
        where = spec.get("tokenizer") if "sha256" in spec else "none in the directory (token ids only)"
        if spec.get("kind") == "causal":  # a decoder's: a prompt is its own ids (protocol 5.15)
            lines.append(("tokenizer", f"{where}: {size}context {spec.get('seq')}, a prompt as the file encodes it "
                                       "(referee run --text PROMPT --tokens N)"))
        else:
            lines.append(("tokenizer", f"{where}: {size}{case}, seq {spec.get('seq')}, [CLS] {spec.get('cls_id')} "
                                       f"text [SEP] {spec.get('sep_id')}, padded with {spec.get('pad_id')} "
                                       "(referee run --text)"))
        if "sha256" in spec:
            lines.append(("", f"sha256 {spec['sha256']} (checked on load)"))
    if isinstance(meta.get("checkpoint"), str):
        lines.append(("checkpoint", meta["checkpoint"]))
    cal = meta.get("calibration")
    if isinstance(cal, dict):
        size = f"{cal['bytes']} bytes" if "bytes" in cal else f"{cal.get('sentences')} sentences"
        lines.append(("calibration", f"{size} from {cal.get('source')}"))
    return lines


def generation_tokenizer(model: IntegerModel, model_dir: Path):
    """The decoder's own tokenizer file (``meta.tokenizer``, its sha256 checked by load_model),
    without padding or truncation; RefereeError for a model that carries none."""
    spec = model.meta.get("tokenizer") if isinstance(model.meta, dict) else None
    if not isinstance(spec, dict) or "sha256" not in spec:
        raise RefereeError(f"{model_dir} carries no tokenizer: --tokens needs one (meta.tokenizer and its file) "
                           "to turn the prompt into ids and the ids into text")
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(Path(model_dir) / spec.get("tokenizer", TOKENIZER_FILE)))
    except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
        raise RefereeError(f"{model_dir}: cannot read its tokenizer: {exc}") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's ids as the tokenizer (and its post-processor, e.g. a BOS) gives them."""
    ids = tokenizer.encode(prompt).ids
    if not ids:
        raise InputError("the prompt --text gives no tokens")
    return ids


class TextStream:
    """Text of a growing list of ids, piece by piece. A byte-level vocabulary may split one
    character over several tokens: while the decoded text ends in U+FFFD (the bytes of a
    character not yet complete) the piece waits for the next token."""

    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.shown = tokenizer, [], 0

    def text(self) -> str:
        return self.tokenizer.decode(self.ids)

    def push(self, token: int) -> str:
        """The new text after ``token`` ("" while a character is incomplete)."""
        self.ids.append(token)
        text = self.text()
        if text.endswith("\ufffd"):
            return ""
        piece, self.shown = text[self.shown:], len(text)
        return piece

    def flush(self) -> str:
        """What is still held back at the end (an incomplete character, shown as U+FFFD)."""
        text = self.text()
        piece, self.shown = text[self.shown:], len(text)
        return piece
