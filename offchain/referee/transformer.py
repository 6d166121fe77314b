"""Float transformers to be compiled into exact integer models (referee.transformer_compile).

Two shapes, in the style of nanoGPT's model.py:

* ``encoder``: BERT / all-MiniLM (post-LN: embeddings -> LayerNorm; each block
  x = LN(x + attn(x)); x = LN(x + mlp(x)); head: mean pooling over the tokens and L2
  normalisation, the sentence embedding of sentence-transformers). With a ``pad_id`` the
  padding is masked as sentence-transformers does: no query attends to a pad key, and the
  pooling averages the real tokens only, so a sentence's embedding does not depend on how
  far it is padded (protocol 5.9).
* ``decoder``: GPT-2 (pre-LN: x = x + attn(LN(x)); x = x + mlp(LN(x)); head: final LN, the
  logits and their greedy argmax at every position, with a causal mask).

``forward(ids, record=...)`` can record every intermediate activation by name; the compiler
calibrates its int8 scales from them. The names are the compiler's contract with this file:
the attention scores are recorded before any mask, and with a ``pad_id`` the recorded
``pool`` is the masked *sum* (what the integer model's pooling computes; the L2 norm after it
makes sum and mean the same embedding).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    kind: str = "encoder"  # "encoder" | "decoder"
    layers: int = 2
    width: int = 64
    heads: int = 4
    ffn: int = 256
    seq: int = 16          # tokens per sequence (the integer model's input_cols)
    vocab: int = 512
    eps: float = 1e-12     # LayerNorm's epsilon in the float model (the integer norm has none)
    pad_id: int | None = None  # encoder: the padding token, masked as a key and in the pooling
    positions: int = 0     # rows of the position table (a checkpoint's whole table); 0: seq

    @property
    def head_width(self) -> int:
        return self.width // self.heads

    def __post_init__(self):
        if self.kind not in ("encoder", "decoder"):
            raise ValueError(f"kind must be 'encoder' or 'decoder', got {self.kind!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")
        if self.pad_id is not None and (self.kind != "encoder" or not 0 <= self.pad_id < self.vocab):
            raise ValueError(f"pad_id {self.pad_id} needs an encoder and an id in [0, vocab = {self.vocab})")
        if self.positions and self.positions < self.seq:
            raise ValueError(f"positions {self.positions} is fewer than seq {self.seq}")

    @property
    def position_rows(self) -> int:
        return self.positions or self.seq


MINILM = TransformerConfig("encoder", layers=6, width=384, heads=12, ffn=1536, seq=128, vocab=8192)
GPT2_SMALL = TransformerConfig("decoder", layers=12, width=768, heads=12, ffn=3072, seq=256, vocab=16384, eps=1e-5)


def _skip(name: str, t: torch.Tensor) -> None:
    """The recorder of a forward pass that records nothing."""


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.width
        self.cfg = cfg
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=cfg.eps), nn.LayerNorm(d, eps=cfg.eps)
        self.fc1, self.fc2 = nn.Linear(d, cfg.ffn), nn.Linear(cfg.ffn, d)

    def attention(self, x: torch.Tensor, rec, p: str, keys: torch.Tensor | None = None) -> torch.Tensor:
        """``keys`` (b, t) bool: the keys a query may attend to (None: all of them)."""
        cfg = self.cfg
        b, t, d = x.shape
        q, k, v = self.q(x), self.k(x), self.v(x)
        if rec is not None:
            rec(p + "q", q), rec(p + "k", k), rec(p + "v", v)
        split = lambda z: z.view(b, t, cfg.heads, cfg.head_width).transpose(1, 2)  # noqa: E731  (b, h, t, dh)
        # Pad keys get the dtype's lowest value added, as BERT's extended attention mask does: their
        # weight is exactly 0, and an all-pad sequence gets uniform weights, not NaN.
        bias = None if keys is None else \
            torch.zeros(b, 1, 1, t, dtype=x.dtype, device=x.device).masked_fill_(~keys[:, None, None, :],
                                                                                torch.finfo(x.dtype).min)
        if rec is None:  # plain inference: torch's fused attention, the fastest float baseline
            att = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=bias,
                                                 is_causal=cfg.kind == "decoder")
            return self.o(att.transpose(1, 2).reshape(b, t, d))
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(cfg.head_width)
        if bias is not None:
            rec(p + "scores", scores)  # unmasked: the compiler's calibration leaves out pad keys and rows
            scores = scores + bias
        if cfg.kind == "decoder":
            scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        if bias is None:
            rec(p + "scores", scores.masked_fill(scores == float("-inf"), 0))
        att = (scores.softmax(dim=-1) @ split(v)).transpose(1, 2).reshape(b, t, d)
        rec(p + "att", att)
        out = self.o(att)
        rec(p + "attn_out", out)
        return out

    def mlp(self, x: torch.Tensor, rec, p: str) -> torch.Tensor:
        rec = rec or _skip
        h = self.fc1(x)
        rec(p + "fc1", h)
        g = F.gelu(h)
        rec(p + "gelu", g)
        out = self.fc2(g)
        rec(p + "mlp_out", out)
        return out

    def forward(self, x: torch.Tensor, rec, p: str, keys: torch.Tensor | None = None) -> torch.Tensor:
        att, rec = rec, rec or _skip  # attention takes None to mean "not recording"
        if self.cfg.kind == "encoder":
            x = x + self.attention(x, att, p, keys)
            rec(p + "res1", x)
            x = self.ln1(x)
            rec(p + "ln1", x)
            x = x + self.mlp(x, rec, p)
            rec(p + "res2", x)
            x = self.ln2(x)
            rec(p + "ln2", x)
            return x
        h = self.ln1(x)
        rec(p + "ln1", h)
        x = x + self.attention(h, att, p)
        rec(p + "res1", x)
        h = self.ln2(x)
        rec(p + "ln2", h)
        x = x + self.mlp(h, rec, p)
        rec(p + "res2", x)
        return x


class FloatTransformer(nn.Module):
    """The float model. ``seed`` draws random weights (std ``init_std``), for tests and benchmarks."""

    def __init__(self, cfg: TransformerConfig, seed: int | None = 0, init_std: float = 0.05):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        self.tok = nn.Parameter(torch.empty(cfg.vocab, cfg.width))
        self.pos = nn.Parameter(torch.empty(cfg.position_rows, cfg.width))
        self.ln_e = nn.LayerNorm(cfg.width, eps=cfg.eps)  # encoder: after the embeddings; decoder: final LN
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.head = nn.Linear(cfg.width, cfg.vocab, bias=False) if cfg.kind == "decoder" else None
        if seed is not None:
            with torch.no_grad():
                for name, param in self.named_parameters():
                    if name.endswith("bias"):
                        param.normal_(0.0, 0.02, generator=gen)
                    elif param.dim() == 1:  # LayerNorm gamma
                        param.normal_(1.0, 0.1, generator=gen)
                    else:
                        param.normal_(0.0, init_std, generator=gen)

    def forward(self, ids: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        """ids (B, T) -> encoder: (B, width) unit vectors; decoder: (B, T, vocab) logits."""
        rec = (lambda name, t: record.__setitem__(name, t.detach())) if record is not None else None
        out = rec or _skip
        cfg = self.cfg
        x = self.tok[ids] + self.pos[: ids.shape[1]]
        out("embed", x)
        keys = ids != cfg.pad_id if cfg.pad_id is not None else None  # (B, T): the real tokens
        if cfg.kind == "encoder":
            x = self.ln_e(x)
            out("ln_e", x)
        for i, block in enumerate(self.blocks):
            x = block(x, rec, f"b{i}.", keys)
        if cfg.kind == "encoder":
            if keys is None:
                pooled = x.mean(dim=1)
                out("pool", pooled)
                return F.normalize(pooled, dim=-1)
            # where, not a product: a pad row is never read, whatever it holds
            total = torch.where(keys[:, :, None], x, 0.0).sum(dim=1)
            out("pool", total)
            return F.normalize(total / keys.sum(dim=1, keepdim=True).clamp(min=1), dim=-1)
        x = self.ln_e(x)
        out("ln_f", x)
        logits = self.head(x)
        out("logits", logits)
        return logits
