"""Generation benchmark: producing a generation (exact KV-cached greedy decoding, referee.decode)
against verifying it (one exact forward over the teacher-forced input, and its trace
commitment), side by side in one run.

The job: a prompt of ``--prompt`` tokens (default 64) and ``--tokens`` new ones (default 64), so
the verifying pass covers P + n - 1 = 127 positions of a 128-token context. Measured, each the
median (``--stat min``: the best) of ``--repeats`` runs after one warm-up, the phases taking
turns within each repeat so that a slow phase of a shared machine hits all alike:

* decode: ``Decoder.generate(prompt, n)`` from an empty cache: one feed of the prompt, then
  n - 1 feeds of one token (each op computes only the new position's rows);
* forward: ``Executor.run`` of the verified input [prompt ‖ tokens[:-1] ‖ 0], every slot
  returned on the CPU (the trace a solver keeps);
* commit: every slot's tensor root and the state roots (``trace_commitment``).

Ratios: forward / decode and (forward + commit) / decode; the target is <= 0.3x (checking a
generation costs under a third of producing it). The run also checks that the pass gives the
generated tokens (``verify_generation``).

Model: ``--model DIR`` (a saved decoder), or by default a random GPT-2-style decoder of
MiniLM's size (6 layers, width 384, 12 heads, FFN 1536, 128 positions, vocabulary 8192),
compiled with the default 16-bit groups.

Run: ``python benchmarks/bench_generation.py [--model DIR] [--threads N] [--repeats N]
[--stat min] [--device cpu|cuda] [--backend auto|float|int_mm|int64]``.
"""

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "offchain"))  # runnable without an install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_transformer.interleaved

from referee.decode import Decoder, verified_input, verify_generation, vocab  # noqa: E402
from referee.executor import Executor, resolve_device, trace_commitment  # noqa: E402
from referee.hashing import describe  # noqa: E402
from bench_transformer import interleaved  # noqa: E402
from referee.transformer import FloatTransformer, TransformerConfig  # noqa: E402
from referee.transformer_compile import compile_transformer  # noqa: E402

TARGET = 0.3
DEFAULT = TransformerConfig("decoder", layers=6, width=384, heads=12, ffn=1536, seq=128, vocab=8192, eps=1e-5)


def default_model():
    gen = torch.Generator().manual_seed(7)
    calibration = torch.randint(0, DEFAULT.vocab, (2, DEFAULT.seq), generator=gen)
    return compile_transformer(FloatTransformer(DEFAULT, seed=0).eval(), calibration, name="minilm-size-decoder")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a saved decoder's directory (default: a random one)")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stat", choices=["median", "min"], default="median")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    stat = min if args.stat == "min" else statistics.median
    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if args.model:
        from referee.modelfile import load_model

        model = load_model(args.model)
    else:
        model = default_model()
    executor = Executor(model, str(device), args.backend)
    decoder = Decoder(model, executor=executor)
    prompt = torch.randint(0, vocab(model), (args.prompt,), generator=torch.Generator().manual_seed(3)).tolist()
    tokens = decoder.generate(prompt, args.tokens)
    slots = verify_generation(executor, prompt, tokens)  # the pass gives the tokens: a check, not timed
    x = verified_input(model, prompt, tokens)
    decode_ms, forward_ms, commit_ms = interleaved(
        [lambda: decoder.generate(prompt, args.tokens), lambda: executor.run(x), lambda: trace_commitment(slots)],
        args.repeats, sync, stat)
    t = model.input_cols
    print(f"model: {model.name}, {len(model.ops)} ops, context {t}; prompt {args.prompt} + {args.tokens} new tokens "
          f"({args.prompt + args.tokens - 1} positions verified)")
    print(f"| phase | ms | / decode (<= {TARGET}x) |")
    print("| --- | --- | --- |")
    print(f"| decode: {args.tokens} tokens, KV cache | {decode_ms:.1f} | 1 |")
    print(f"| verify: forward over {t} positions | {forward_ms:.1f} | {forward_ms / decode_ms:.3f}x "
          f"{'PASS' if forward_ms / decode_ms <= TARGET else 'MISS'} |")
    print(f"| verify: trace commitment | {commit_ms:.1f} | |")
    both = forward_ms + commit_ms
    print(f"| verify: forward + commitment | {both:.1f} | {both / decode_ms:.3f}x "
          f"{'PASS' if both / decode_ms <= TARGET else 'MISS'} |")
    print(f"per token: decode {decode_ms / args.tokens:.2f} ms; verify {both / args.tokens:.2f} ms with the commitment")
    dev = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {dev}, backend {executor.backend}, {stat.__name__} of "
          f"{args.repeats}; load average {os.getloadavg()[0]:.2f}; keccak: {describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
