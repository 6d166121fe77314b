"""Train models/moby-llama: a small byte-level Llama on Moby-Dick, deterministically, on the CPU.

    make corpus                                     # once (make setup does it)
    python training/train_llama.py                  # the committed model (6-9 minutes here)
    python training/train_llama.py --steps 20 --out /tmp/m   # a quick look

Why a folder of its own: scripts/ holds the Ape operator scripts and benchmarks/ measures the
protocol; this makes a model artifact. It is the only script here, run by hand, never by `make`.

The model is referee.llama.FloatLlama (Hugging Face LlamaForCausalLM layout) with vocab 256: the
tokens are the UTF-8 bytes of the text (``tokenizer.json``, built by ``byte_tokenizer``: id ==
byte value, so ``ids == list(text.encode())``; no special tokens). The corpus and its split are
referee.corpus (``make corpus`` fetches it). The loss is cross-entropy in nats per token, i.e.
nats per byte (/ ln 2 for bits per byte).

Training: random windows of ``context + 1`` bytes of the train split, AdamW (weight decay on the
matrices only), linear warmup then cosine decay to ``lr / 10``, gradient clipping at 1. It is
deterministic: one seed draws the initial weights and every batch, torch's deterministic
algorithms are on and the thread count is fixed, so the same command with the same torch build
and thread count gives the same bits (different thread counts may reorder float sums). One
thread by default: on two cores shared with other work, two OpenMP threads spin on each other
(about 4 s a step here against 0.7 s on one thread).

Output (``--out``): config.json and model.safetensors (referee.llama.save_llama), tokenizer.json,
and README.md, a model card with the command, the corpus and split, the losses and the time.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "offchain"))  # run from a checkout without `pip install -e .`

from referee import corpus  # noqa: E402
from referee.llama import FloatLlama, LlamaConfig, save_llama  # noqa: E402

TOKENIZER_FILE = "tokenizer.json"


def byte_tokenizer():
    """A ``tokenizers`` byte-level tokenizer whose ids are the 256 byte values.

    BPE with no merges over the ByteLevel alphabet (GPT-2's printable stand-in character for
    each byte), ordered so that the stand-in of byte b has id b; the ByteLevel pre-tokenizer
    (no prefix space, no regex split: nothing to merge) maps text to those characters and the
    ByteLevel decoder maps them back. Decoding ids that are not whole UTF-8 sequences gives
    U+FFFD for the broken bytes, as bytes.decode(errors="replace") does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_in, extra = {}, 0
    for b in range(256):  # GPT-2's bytes_to_unicode: the others get 256, 257, ... in byte order
        if b in printable:
            stand_in[b] = chr(b)
        else:
            stand_in[b], extra = chr(256 + extra), extra + 1
    assert sorted(stand_in.values()) == sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={stand_in[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def ids_of(data: bytes) -> torch.Tensor:
    """The token ids of UTF-8 bytes (the tokenizer's ids, without running it): int64 (n,)."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def init_model(cfg: LlamaConfig, seed: int) -> FloatLlama:
    """GPT-2-style initial weights: normal(0, 0.02), residual outputs scaled by 1/sqrt(2 layers), norms 1."""
    model = FloatLlama(cfg, seed=seed, init_std=0.02)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                param.mul_(1 / math.sqrt(2 * cfg.num_hidden_layers))
    return model


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warmup over ``warmup`` steps, then cosine from ``lr`` to ``lr / 10`` at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    done = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, done))))


@torch.no_grad()
def mean_loss(model: FloatLlama, ids: torch.Tensor, context: int, windows: int | None = None,
              batch: int = 64) -> float:
    """Mean next-byte loss (nats) over consecutive non-overlapping windows of ``context + 1`` ids
    (every prediction in a window counted; the first ``windows`` of them, or all)."""
    n = (len(ids) - 1) // context
    n = n if windows is None else min(n, windows)
    model.eval()
    total, count = 0.0, 0
    for lo in range(0, n, batch):
        starts = torch.arange(lo, min(n, lo + batch)) * context
        rows = ids[starts[:, None] + torch.arange(context + 1)]  # (b, context + 1)
        logits = model(rows[:, :-1])
        total += F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten(), reduction="sum").item()
        count += rows[:, 1:].numel()
    model.train()
    return total / count


def train(cfg: LlamaConfig, train_ids: torch.Tensor, val_ids: torch.Tensor, *, steps: int, batch: int,
          context: int, lr: float, warmup: int, seed: int, weight_decay: float = 0.1,
          eval_every: int = 0, eval_windows: int = 64, log=print) -> tuple[FloatLlama, list[dict]]:
    """The trained model and its history ([{step, lr, train, val?, seconds}], train = the step's loss)."""
    torch.manual_seed(seed)
    model = init_model(cfg, seed).train()
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(seed + 1)  # the batches; the weights used `seed`
    offsets = torch.arange(context + 1)
    history, start = [], time.perf_counter()
    for step in range(steps):
        rate = lr_at(step, steps, lr, warmup)
        for group in opt.param_groups:
            group["lr"] = rate
        rows = train_ids[torch.randint(0, len(train_ids) - context - 1, (batch,), generator=gen)[:, None] + offsets]
        logits = model(rows[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        entry = {"step": step + 1, "lr": rate, "train": loss.item()}
        if eval_every and ((step + 1) % eval_every == 0 or step + 1 == steps):
            entry["val"] = mean_loss(model, val_ids, context, eval_windows)
        entry["seconds"] = time.perf_counter() - start
        history.append(entry)
        if eval_every and ("val" in entry or step < 3):
            val = f"  val {entry['val']:.4f}" if "val" in entry else ""
            log(f"step {step + 1:4d}/{steps}  lr {rate:.2e}  train {entry['train']:.4f}{val}  "
                f"{entry['seconds']:6.1f} s")
    return model.eval(), history


def model_card(args, cfg: LlamaConfig, params: int, history: list[dict], losses: dict, seconds: float) -> str:
    """README.md of the output directory."""
    sizes = {s: len(corpus.split_bytes(s)) for s in corpus.SPLITS}
    curve = "\n".join(f"| {h['step']} | {h['train']:.4f} | {h['val']:.4f} | {h['seconds']:.0f} |"
                      for h in history if "val" in h)
    last = history[-min(len(history), 20):]
    return f"""# moby-llama

A {params:,}-parameter Llama-architecture language model over bytes, trained from scratch on
*Moby-Dick* by `training/train_llama.py` in this repository. Float32 weights in the Hugging Face
`LlamaForCausalLM` layout: `config.json`, `model.safetensors` (loads with `referee.llama.load_llama`
and with `transformers.LlamaForCausalLM.from_pretrained`), `tokenizer.json` (byte-level: id ==
byte value, vocab 256, no special tokens).

Shape: vocab {cfg.vocab_size}, hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} heads
of width {cfg.head_dim}, {cfg.num_key_value_heads} key/value heads (grouped-query attention), SwiGLU intermediate
{cfg.intermediate_size}, RMSNorm eps {cfg.rms_norm_eps}, RoPE theta {cfg.rope_theta:g}, {cfg.max_position_embeddings} positions, untied head.

## Data
{corpus.NAME} (public domain text; Apache-2.0 package), fetched by `make corpus`. Split by whole
parts (referee.corpus): train = etymology, extracts, chapters 1-{corpus.FIRST_HELD_OUT - 1} ({sizes['train']:,} bytes);
held out = chapters {corpus.FIRST_HELD_OUT}-{corpus.CHAPTERS} and the epilogue ({sizes['val']:,} bytes).

## Training
`{args.command}`: {args.steps} steps of {args.batch} random windows of {args.context} bytes
({args.steps * args.batch * args.context:,} predicted bytes, {args.steps * args.batch * args.context / sizes['train']:.1f} epochs), AdamW lr {args.lr:g}
(betas 0.9, 0.95; weight decay {args.weight_decay:g} on matrices), {args.warmup} warmup steps, cosine to lr/10,
gradient clipping 1, seed {args.seed}, {args.threads} thread{'s' * (args.threads != 1)}, deterministic algorithms on, torch
{torch.__version__}: {seconds:.0f} s of training here.

## Loss (nats per byte; bits = nats / ln 2)
Over consecutive non-overlapping windows of {args.context} bytes (each predicted from its own window only):

| split | nats/byte | bits/byte |
|---|---|---|
| held out, all {losses['val_windows']} windows | {losses['val']:.4f} | {losses['val'] / math.log(2):.4f} |
| train, the first {losses['train_windows']} windows | {losses['train']:.4f} | {losses['train'] / math.log(2):.4f} |
| train batches, mean of the last {len(last)} steps | {sum(h['train'] for h in last) / len(last):.4f} | |

A uniform guess is ln 256 = 5.545 nats/byte. During training (held out: its first {args.eval_windows} windows):

| step | train batch | held out | seconds |
|---|---|---|---|
{curve}
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "models" / "moby-llama"))
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-windows", type=int, default=64)
    args = p.parse_args(argv)
    args.command = " ".join(["python training/train_llama.py", *(argv if argv is not None else sys.argv[1:])])
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    cfg = LlamaConfig(max_position_embeddings=args.context)
    train_ids, val_ids = ids_of(corpus.split_bytes("train")), ids_of(corpus.split_bytes("val"))
    print(f"corpus: train {len(train_ids):,} bytes, held out {len(val_ids):,} bytes; torch {torch.__version__}, "
          f"{args.threads} threads", flush=True)
    t0 = time.perf_counter()
    model, history = train(cfg, train_ids, val_ids, steps=args.steps, batch=args.batch, context=args.context,
                           lr=args.lr, warmup=args.warmup, seed=args.seed, weight_decay=args.weight_decay,
                           eval_every=args.eval_every, eval_windows=args.eval_windows,
                           log=lambda s: print(s, flush=True))
    seconds = time.perf_counter() - t0
    val_windows = (len(val_ids) - 1) // args.context
    losses = {"val": mean_loss(model, val_ids, args.context), "val_windows": val_windows,
              "train": mean_loss(model, train_ids, args.context, val_windows), "train_windows": val_windows}
    print(f"trained in {seconds:.0f} s; held out {losses['val']:.4f} nats/byte, train {losses['train']:.4f}")

    out = save_llama(model, args.out)
    byte_tokenizer().save(str(out / TOKENIZER_FILE))
    params = sum(p.numel() for p in model.parameters())
    (out / "README.md").write_text(model_card(args, cfg, params, history, losses, seconds))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
