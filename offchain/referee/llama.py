"""A float Llama-architecture language model, in the Hugging Face ``LlamaForCausalLM`` layout.

The Llama-2 shape at any size: token embedding (no positions), per layer a pre-RMSNorm causal
attention with rotary position embeddings (RoPE, HF's ``rotate_half`` convention) and
grouped-query attention (``num_key_value_heads`` <= ``num_attention_heads``), a pre-RMSNorm
SwiGLU MLP (``down(silu(gate(x)) * up(x))``), a final RMSNorm and an untied head. No biases.

``forward(ids, record=...)`` can record every intermediate activation by name; the integer
compiler (referee.llama_compile) calibrates its scales from them, as referee.transformer_compile
does for the GPT-2 and BERT shapes. The names (per layer ``p = f"b{i}."``):
``embed``; ``p+"ln1"``, ``p+"q"``, ``p+"k"``, ``p+"v"`` (projections, heads side by side),
``p+"q_rot"``, ``p+"k_rot"`` (after RoPE), ``p+"scores"`` (``q·kᵀ/√d_h`` before the causal
mask), ``p+"att"`` (``P·V``, heads concatenated), ``p+"attn_out"``, ``p+"res1"``, ``p+"ln2"``,
``p+"gate"``, ``p+"silu"``, ``p+"up"``, ``p+"prod"``, ``p+"mlp_out"``, ``p+"res2"``; then
``ln_f`` and ``logits``.

``load_llama(dir)`` and ``save_llama(model, dir)`` read and write ``config.json`` and
``model.safetensors`` with the tensor names ``transformers`` uses, so a directory written here
loads in ``transformers.LlamaForCausalLM`` and one written there loads here. Nothing is
downloaded.
"""

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ModelCompileError

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


@dataclass(frozen=True)
class LlamaConfig:
    """The fields of a Hugging Face Llama ``config.json`` that define the computation."""

    vocab_size: int = 256
    hidden_size: int = 128
    intermediate_size: int = 352
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type is int and (not isinstance(value, int) or value < 1):
                raise ModelCompileError(f"Llama config: {f.name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ModelCompileError(f"Llama config: hidden_size {self.hidden_size} is not a multiple of "
                                    f"num_attention_heads {self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ModelCompileError(f"Llama config: num_attention_heads {self.num_attention_heads} is not a "
                                    f"multiple of num_key_value_heads {self.num_key_value_heads}")
        if self.head_dim % 2:
            raise ModelCompileError(f"Llama config: the head width {self.head_dim} must be even (RoPE pairs columns)")

    def to_hf(self) -> dict:
        """config.json as ``transformers`` writes it for a float32 LlamaForCausalLM."""
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
                "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
                "torch_dtype": "float32", "head_dim": self.head_dim, **asdict(self)}

    @classmethod
    def from_hf(cls, hf: dict, where: str = "config.json") -> "LlamaConfig":
        """The config of a ``LlamaForCausalLM`` directory; ModelCompileError naming what is unsupported."""
        archs = hf.get("architectures") or []
        if hf.get("model_type") != "llama" or any(a != "LlamaForCausalLM" for a in archs):
            raise ModelCompileError(f"{where}: model_type={hf.get('model_type')!r} architectures={archs!r}; "
                                    f"a LlamaForCausalLM is needed")
        unsupported = {"hidden_act": ("silu", hf.get("hidden_act", "silu")),
                       "attention_bias": (False, hf.get("attention_bias", False)),
                       "mlp_bias": (False, hf.get("mlp_bias", False)),
                       "tie_word_embeddings": (False, hf.get("tie_word_embeddings", False)),
                       "rope_scaling": (None, hf.get("rope_scaling"))}
        for key, (want, got) in unsupported.items():
            if got != want:
                raise ModelCompileError(f"{where}: {key} = {got!r} is not supported (only {want!r})")
        hf = dict(hf)
        hf.setdefault("num_key_value_heads", hf.get("num_attention_heads"))
        rope = hf.get("rope_parameters")  # transformers >= 5 writes rope_theta here, not at the top
        if rope is not None:
            if not isinstance(rope, dict) or rope.get("rope_type", "default") != "default":
                raise ModelCompileError(f"{where}: rope_parameters = {rope!r} is not supported "
                                        f"(only rope_type 'default')")
            if "rope_theta" in rope:
                if hf.setdefault("rope_theta", rope["rope_theta"]) != rope["rope_theta"]:
                    raise ModelCompileError(f"{where}: rope_theta {hf['rope_theta']!r} differs from "
                                            f"rope_parameters' {rope['rope_theta']!r}")
        if hf.get("head_dim") not in (None, hf.get("hidden_size", 0) // max(1, hf.get("num_attention_heads") or 1)):
            raise ModelCompileError(f"{where}: head_dim {hf['head_dim']} differs from hidden_size / heads")
        missing = [f.name for f in fields(cls) if f.name not in hf and f.name not in ("rms_norm_eps", "rope_theta")]
        if missing:
            raise ModelCompileError(f"{where}: lacks {', '.join(missing)}")
        return cls(**{f.name: hf[f.name] for f in fields(cls) if f.name in hf})


def rope_tables(cfg: LlamaConfig, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (positions, head_dim / 2) float64: angle t * theta^(-2i / d_h), as HF computes."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(torch.float64) / d))
    angles = torch.arange(positions, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, d_h) rotated: (x1 cos - x2 sin, x2 cos + x1 sin) for the halves x1, x2 (rotate_half)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(width)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def _skip(name: str, t: torch.Tensor) -> None:
    """The recorder of a forward pass that records nothing."""


class LlamaLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        d, dh, f = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size
        self.cfg = cfg
        self.input_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(d, cfg.num_attention_heads * dh, bias=False)
        self.k_proj = nn.Linear(d, cfg.num_key_value_heads * dh, bias=False)
        self.v_proj = nn.Linear(d, cfg.num_key_value_heads * dh, bias=False)
        self.o_proj = nn.Linear(cfg.num_attention_heads * dh, d, bias=False)
        self.gate_proj, self.up_proj = nn.Linear(d, f, bias=False), nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def attention(self, x: torch.Tensor, cos, sin, rec, p: str) -> torch.Tensor:
        cfg = self.cfg
        b, t, _ = x.shape
        h, hk, dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        rec(p + "q", q), rec(p + "k", k), rec(p + "v", v)
        q = apply_rope(q.view(b, t, h, dh).transpose(1, 2), cos, sin)   # (b, h, t, dh)
        k = apply_rope(k.view(b, t, hk, dh).transpose(1, 2), cos, sin)  # (b, hk, t, dh)
        v = v.view(b, t, hk, dh).transpose(1, 2)
        rec(p + "q_rot", q.transpose(1, 2).reshape(b, t, h * dh))
        rec(p + "k_rot", k.transpose(1, 2).reshape(b, t, hk * dh))
        k, v = k.repeat_interleave(h // hk, dim=1), v.repeat_interleave(h // hk, dim=1)  # HF repeat_kv
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        rec(p + "scores", scores)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        att = (scores.masked_fill(causal, float("-inf")).softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, h * dh)
        rec(p + "att", att)
        out = self.o_proj(att)
        rec(p + "attn_out", out)
        return out

    def mlp(self, x: torch.Tensor, rec, p: str) -> torch.Tensor:
        gate, up = self.gate_proj(x), self.up_proj(x)
        silu = F.silu(gate)
        prod = silu * up
        rec(p + "gate", gate), rec(p + "silu", silu), rec(p + "up", up), rec(p + "prod", prod)
        out = self.down_proj(prod)
        rec(p + "mlp_out", out)
        return out

    def forward(self, x: torch.Tensor, cos, sin, rec, p: str) -> torch.Tensor:
        h = self.input_layernorm(x)
        rec(p + "ln1", h)
        x = x + self.attention(h, cos, sin, rec, p)
        rec(p + "res1", x)
        h = self.post_attention_layernorm(x)
        rec(p + "ln2", h)
        x = x + self.mlp(h, rec, p)
        rec(p + "res2", x)
        return x


class FloatLlama(nn.Module):
    """The float model; ``seed`` draws random weights (normal, std ``init_std``; norms 1) for tests."""

    def __init__(self, cfg: LlamaConfig, seed: int | None = 0, init_std: float = 0.05):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(LlamaLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if seed is not None:
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for name, param in self.named_parameters():
                    if name.endswith("layernorm.weight") or name == "norm.weight":
                        param.normal_(1.0, 0.1, generator=gen)
                    else:
                        param.normal_(0.0, init_std, generator=gen)
        cos, sin = rope_tables(cfg, cfg.max_position_embeddings)
        self.register_buffer("rope_cos", cos.float(), persistent=False)
        self.register_buffer("rope_sin", sin.float(), persistent=False)

    def forward(self, ids: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        """ids (B, T), T <= max_position_embeddings -> logits (B, T, vocab_size)."""
        rec = (lambda name, t: record.__setitem__(name, t.detach())) if record is not None else _skip
        t = ids.shape[1]
        if t > self.cfg.max_position_embeddings:
            raise ValueError(f"{t} positions; the model has {self.cfg.max_position_embeddings}")
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.embed_tokens(ids)
        rec("embed", x)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, rec, f"b{i}.")
        x = self.norm(x)
        rec("ln_f", x)
        logits = self.lm_head(x)
        rec("logits", logits)
        return logits

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under transformers' names (hf_name)."""
        return {hf_name(n): p.detach().contiguous() for n, p in self.named_parameters()}


_ATTENTION, _MLP = ("q_proj", "k_proj", "v_proj", "o_proj"), ("gate_proj", "up_proj", "down_proj")


def hf_name(name: str) -> str:
    """transformers' name of a FloatLlama parameter: ``model.`` before all but ``lm_head``, and a layer's
    projections under ``self_attn.`` or ``mlp.`` (here they sit on the layer itself)."""
    if name.startswith("lm_head"):
        return name
    parts = name.split(".")  # layers.{i}.{module}.weight
    if len(parts) == 4 and parts[0] == "layers" and parts[2] in _ATTENTION + _MLP:
        parts.insert(2, "self_attn" if parts[2] in _ATTENTION else "mlp")
    return "model." + ".".join(parts)


def save_llama(model: FloatLlama, directory) -> Path:
    """config.json and model.safetensors (float32) in ``directory``, the Hugging Face layout."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(model.cfg.to_hf(), indent=2, sort_keys=True) + "\n")
    save_file({n: t.float() for n, t in model.hf_state_dict().items()}, str(out / WEIGHTS_FILE),
              metadata={"format": "pt"})
    return out


def is_llama_dir(directory) -> bool:
    """Whether ``directory`` holds a config.json that names a Llama model."""
    path = Path(directory) / CONFIG_FILE
    try:
        return json.loads(path.read_text()).get("model_type") == "llama"
    except (OSError, ValueError, AttributeError):
        return False


def load_llama(directory) -> FloatLlama:
    """The float model of a ``LlamaForCausalLM`` directory; ModelCompileError on any missing or odd tensor."""
    from safetensors.torch import load_file

    ckpt = Path(directory)
    if not (ckpt / CONFIG_FILE).is_file():
        raise ModelCompileError(f"{ckpt}: no {CONFIG_FILE} (a Hugging Face checkpoint directory is needed)")
    try:
        hf = json.loads((ckpt / CONFIG_FILE).read_text())
    except ValueError as e:
        raise ModelCompileError(f"{ckpt / CONFIG_FILE}: not JSON ({e})") from None
    cfg = LlamaConfig.from_hf(hf, str(ckpt / CONFIG_FILE))
    if not (ckpt / WEIGHTS_FILE).is_file():
        raise ModelCompileError(f"{ckpt}: no {WEIGHTS_FILE}")
    tensors = load_file(str(ckpt / WEIGHTS_FILE))
    model = FloatLlama(cfg, seed=None)
    want = model.hf_state_dict()
    missing = sorted(set(want) - set(tensors))
    if missing:
        raise ModelCompileError(f"{ckpt / WEIGHTS_FILE}: lacks {', '.join(missing[:3])}"
                                f"{' and more' if len(missing) > 3 else ''}")
    with torch.no_grad():
        for name, param in model.named_parameters():
            got = tensors[hf_name(name)]
            if tuple(got.shape) != tuple(param.shape):
                raise ModelCompileError(f"{ckpt / WEIGHTS_FILE}: {name} has shape {tuple(got.shape)}, "
                                        f"the config gives {tuple(param.shape)}")
            param.copy_(got.float())
    return model.eval()
