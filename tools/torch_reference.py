#!/usr/bin/env python3
"""PyTorch reference GPT (nanoGPT semantics) and the golden fixtures for lmforge's model tests.

The model here is the reference that lmforge's hand-written forward/backward must match:
nanoGPT's model.py GPT (dropout 0) plus the options lmforge adds -- bias on/off, a q/k/v bias
apart from it, tied or untied lm_head (with or without a bias), exact or tanh GELU or ReLU,
pre-LN or post-LN blocks, and learned / sinusoidal / RoPE / sinusoidal+RoPE positions.  Parameter
names are nanoGPT's state_dict names (a tied head is stored once, as transformer.wte.weight).
bench_train.py and bench_generate.py import GPT/GPTConfig from this file.

Running the script writes, for each variant (learned_bias, learned_nobias, rope, sinusoidal,
post_relu_sinrope, post_learned, head_bias),
crates/model/tests/fixtures/<variant>.json (config, batch, optimizer settings) and
<variant>.safetensors holding:
  <param name>            initial parameters (fp32)
  input.idx, input.targets                     I64 [B,T]; exactly one target is -1 (ignored)
  expected.logits [B,T,V], expected.loss [1]   first forward, initial parameters
  grad.<param name>                            first backward (before clipping)
  grad_norm.step{1,2,3} [1]                    total norm before clipping (clip_grad_norm_)
  step{1,2,3}.<param name>                     parameters after each training step
A training step is: zero_grad, forward on the same batch, backward, clip_grad_norm_(1.0),
AdamW step (torch.optim.AdamW, nanoGPT's param groups: weight decay on dim >= 2 only).

Run (from the repository root):
    bash tools/setup_venv.sh
    tools/.venv/bin/python tools/torch_reference.py [--out DIR]

Deterministic: fp32, one thread, fixed seeds; running it twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


# --------------------------------------------------------------------------------------------
# Model


@dataclass
class GPTConfig:
    vocab_size: int = 65
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    bias: bool = True
    dropout: float = 0.0
    tie_embeddings: bool = True
    pos_encoding: str = "learned"  # learned | sinusoidal | rope | sinusoidal+rope
    activation: str = "gelu"  # gelu (exact erf) | gelu_tanh | relu
    mlp_ratio: int = 4
    rope_theta: float = 10000.0
    qkv_bias: bool | None = None  # c_attn.bias; None follows `bias`
    head_bias: bool = False  # lm_head.bias (untied heads only)
    norm: str = "pre"  # pre: x + f(ln(x)) | post: ln(x + f(x)); ln_f before the head either way

    def adds_sinusoidal(self) -> bool:
        return self.pos_encoding in ("sinusoidal", "sinusoidal+rope")

    def rotates(self) -> bool:
        return self.pos_encoding in ("rope", "sinusoidal+rope")

    @classmethod
    def from_json(cls, d: dict) -> "GPTConfig":
        """Build from a config.json / fixture config; unknown keys are ignored."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


class LayerNorm(nn.Module):
    """LayerNorm (eps 1e-5) with an optional bias, as nanoGPT's."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(same); computed in f64."""
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, two_i / dim)
    pe = torch.zeros(n_pos, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()


def rope_tables(n_pos: int, hs: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [n_pos, hs] for Llama-style RoPE: angle[pos, i] = pos * theta^(-2i/hs) for
    i < hs/2, repeated over both halves (cat(angle, angle)); computed in f64."""
    inv_freq = torch.pow(theta, -torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    angle = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv_freq[None, :]
    angle = torch.cat([angle, angle], dim=-1)
    return torch.cos(angle).float(), torch.sin(angle).float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, attn_impl: str):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        qkv_bias = cfg.bias if cfg.qkv_bias is None else cfg.qkv_bias
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=qkv_bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd
        self.rope = cfg.rotates()
        self.attn_impl = attn_impl  # "eager" (nanoGPT's manual path) | "sdpa"

    def forward(self, x, rope_cos=None, rope_sin=None):
        B, T, C = x.size()
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if self.rope:
            cos, sin = rope_cos[:T], rope_sin[:T]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if self.attn_impl == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~mask, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        hidden = cfg.mlp_ratio * cfg.n_embd
        self.c_fc = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        if cfg.activation == "relu":
            self.act = nn.ReLU()
        else:
            self.act = nn.GELU(approximate={"gelu": "none", "gelu_tanh": "tanh"}[cfg.activation])
        self.c_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, attn_impl: str):
        super().__init__()
        self.ln_1 = LayerNorm(cfg.n_embd, cfg.bias)
        self.attn = CausalSelfAttention(cfg, attn_impl)
        self.ln_2 = LayerNorm(cfg.n_embd, cfg.bias)
        self.mlp = MLP(cfg)
        self.post = cfg.norm == "post"

    def forward(self, x, rope_cos=None, rope_sin=None):
        if self.post:  # the original Transformer's: LayerNorm after each residual add
            x = self.ln_1(x + self.attn(x, rope_cos, rope_sin))
            x = self.ln_2(x + self.mlp(x))
            return x
        x = x + self.attn(self.ln_1(x), rope_cos, rope_sin)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig, attn_impl: str = "eager"):
        super().__init__()
        assert cfg.dropout == 0.0, "the reference model has no dropout"
        assert cfg.pos_encoding in ("learned", "sinusoidal", "rope", "sinusoidal+rope"), cfg.pos_encoding
        assert cfg.norm in ("pre", "post"), cfg.norm
        assert not (cfg.head_bias and cfg.tie_embeddings), "a head bias needs an untied head"
        self.config = cfg
        modules = dict(wte=nn.Embedding(cfg.vocab_size, cfg.n_embd))
        if cfg.pos_encoding == "learned":
            modules["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        modules["h"] = nn.ModuleList([Block(cfg, attn_impl) for _ in range(cfg.n_layer)])
        modules["ln_f"] = LayerNorm(cfg.n_embd, cfg.bias)
        self.transformer = nn.ModuleDict(modules)
        # Tied: the head is transformer.wte.weight itself (no lm_head parameter at all).
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.n_embd, cfg.vocab_size, bias=cfg.head_bias)
        # Fixed tables are non-persistent buffers: not in state_dict, so strict loads work.
        if cfg.adds_sinusoidal():
            self.register_buffer("pe", sinusoidal_table(cfg.block_size, cfg.n_embd), persistent=False)
        if cfg.rotates():
            cos, sin = rope_tables(cfg.block_size, cfg.n_embd // cfg.n_head, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.init_weights()

    def init_weights(self):
        """nanoGPT's init: N(0, 0.02) for Linear weights and embeddings, zero biases,
        LayerNorm 1/0, then N(0, 0.02/sqrt(2*n_layer)) for every c_proj.weight."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def head_weight(self):
        return self.transformer.wte.weight if self.lm_head is None else self.lm_head.weight

    def head_bias(self):
        return None if self.lm_head is None else self.lm_head.bias

    def forward(self, idx, targets=None):
        b, t = idx.size()
        assert t <= self.config.block_size, f"sequence length {t} > block_size {self.config.block_size}"
        x = self.transformer.wte(idx)
        if self.config.pos_encoding == "learned":
            x = x + self.transformer.wpe(torch.arange(t, device=idx.device))
        elif self.config.adds_sinusoidal():
            x = x + self.pe[:t]
        cos = self.rope_cos if self.config.rotates() else None
        sin = self.rope_sin if self.config.rotates() else None
        for block in self.transformer.h:
            x = block(x, cos, sin)
        x = self.transformer.ln_f(x)
        if targets is None:
            # inference (as nanoGPT): only the last position goes through the head
            return F.linear(x[:, [-1], :], self.head_weight(), self.head_bias()), None
        logits = F.linear(x, self.head_weight(), self.head_bias())
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def num_params(self, non_embedding: bool = True) -> int:
        """As nanoGPT's get_num_params: the learned position table is not counted."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.config.pos_encoding == "learned":
            n -= self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """nanoGPT's estimate_mfu numerator per token: 6N + 12*L*H*Q*T (PaLM appendix B)."""
        c = self.config
        t = c.block_size if seq_len is None else seq_len
        return 6 * self.num_params() + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * t

    def configure_optimizer(self, lr, betas, weight_decay, eps=1e-8):
        """torch AdamW with nanoGPT's groups: decay params with dim >= 2, not the rest.
        foreach=False/fused=False: the plain per-parameter loop, for determinism."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=False, fused=False)


# --------------------------------------------------------------------------------------------
# Golden fixtures

TINY = dict(vocab_size=37, n_layer=2, n_head=4, n_embd=32, block_size=16, mlp_ratio=4, dropout=0.0, rope_theta=10000.0)
VARIANTS = {
    "learned_bias": dict(pos_encoding="learned", bias=True, activation="gelu", tie_embeddings=True),
    "learned_nobias": dict(pos_encoding="learned", bias=False, activation="gelu_tanh", tie_embeddings=True),
    "rope": dict(pos_encoding="rope", bias=False, activation="gelu", tie_embeddings=False),
    "sinusoidal": dict(pos_encoding="sinusoidal", bias=True, activation="gelu", tie_embeddings=True),
    # issue 14: the "GPT and Transformer Models" seed's block (post-LN, ReLU, no q/k/v bias,
    # sin/cos table + RoPE, untied head; its nn.Linear head has a bias)
    "post_relu_sinrope": dict(pos_encoding="sinusoidal+rope", bias=True, activation="relu", tie_embeddings=False,
                              norm="post", qkv_bias=False, head_bias=True),
    # post-LN with a q/k/v bias but none elsewhere, tied head
    "post_learned": dict(pos_encoding="learned", bias=False, activation="gelu_tanh", tie_embeddings=True,
                         norm="post", qkv_bias=True),
    # JaneLM's shape: pre-LN, GELU, learned positions, untied output layer with a bias
    "head_bias": dict(pos_encoding="learned", bias=True, activation="gelu", tie_embeddings=False, head_bias=True),
}
BATCH = dict(b=2, t=11)
ADAMW = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
GRAD_CLIP = 1.0
STEPS = 3
SEED = 1337
PERTURB_STD = 0.05
CONFIG_KEYS = ["vocab_size", "n_layer", "n_head", "n_embd", "block_size", "bias", "dropout",
               "tie_embeddings", "pos_encoding", "activation", "mlp_ratio", "rope_theta"]
# issue 14's keys: written only when a variant sets them (older fixtures stay byte-identical,
# and a config.json without them loads as the defaults)
SWITCH_KEYS = ["norm", "qkv_bias", "head_bias"]


def snapshot(model: GPT, prefix: str, attr: str | None = None) -> dict[str, torch.Tensor]:
    """{prefix + name: copy of the parameter (or of its .grad)} in state_dict names."""
    out = {}
    for name, p in model.named_parameters():
        t = p if attr is None else getattr(p, attr)
        out[prefix + name] = t.detach().clone().contiguous()
    return out


def make_fixture(variant: str):
    cfg = GPTConfig(**TINY, **VARIANTS[variant])
    torch.manual_seed(SEED)
    model = GPT(cfg)
    # Perturb LayerNorm weights/biases and all Linear biases so every gradient path matters.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.endswith(".bias"):  # ln_1, ln_2, ln_f; Linear biases
                p.add_(torch.randn_like(p) * PERTURB_STD)
    B, T = BATCH["b"], BATCH["t"]
    idx = torch.randint(0, cfg.vocab_size, (B, T), dtype=torch.int64)
    targets = torch.randint(0, cfg.vocab_size, (B, T), dtype=torch.int64)
    ignored = int(torch.randint(0, B * T, (1,)))
    targets.view(-1)[ignored] = -1

    tensors = snapshot(model, "")
    tensors["input.idx"] = idx.clone()
    tensors["input.targets"] = targets.clone()

    opt = model.configure_optimizer(ADAMW["lr"], (ADAMW["beta1"], ADAMW["beta2"]), ADAMW["weight_decay"], ADAMW["eps"])
    summary = []
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        logits, loss = model(idx, targets)
        loss.backward()
        if step == 1:
            tensors["expected.logits"] = logits.detach().clone().contiguous()
            tensors["expected.loss"] = loss.detach().reshape(1).clone()
            tensors.update(snapshot(model, "grad.", "grad"))
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP, foreach=False)
        opt.step()
        tensors[f"grad_norm.step{step}"] = norm.detach().reshape(1).clone()
        tensors.update(snapshot(model, f"step{step}."))
        summary.append((loss.item(), norm.item()))

    meta = {
        "config": {k: asdict(cfg)[k] for k in CONFIG_KEYS + [k for k in SWITCH_KEYS if k in VARIANTS[variant]]},
        "batch": dict(BATCH),
        "adamw": dict(ADAMW),
        "grad_clip": GRAD_CLIP,
        "steps": STEPS,
        "torch_version": torch.__version__,
    }
    return meta, tensors, summary, ignored


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "crates", "model", "tests", "fixtures"),
                    help="output folder (default: crates/model/tests/fixtures)")
    args = ap.parse_args()

    from safetensors.torch import save_file

    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for variant in VARIANTS:
        meta, tensors, summary, ignored = make_fixture(variant)
        for name, t in tensors.items():
            assert t.dtype == (torch.int64 if name.startswith("input.") else torch.float32), name
        base = os.path.join(args.out, variant)
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        save_file(tensors, base + ".safetensors.tmp")
        os.replace(base + ".json.tmp", base + ".json")
        os.replace(base + ".safetensors.tmp", base + ".safetensors")
        os.chmod(base + ".safetensors", 0o644)
        size = os.path.getsize(base + ".safetensors") + os.path.getsize(base + ".json")
        total += size
        with open(base + ".safetensors", "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        n_params = sum(t.numel() for n, t in tensors.items() if n.startswith(("transformer.", "lm_head.")))
        print(f"{variant:15s} params {n_params:6d}  tensors {len(tensors):4d}  {size / 1024:7.1f} KiB  sha256 {digest}  "
              f"ignored target at flat index {ignored}")
        for step, (loss, norm) in enumerate(summary, 1):
            print(f"    step {step}: loss {loss:.6f}  grad_norm {norm:.6f}{'  (clipped)' if norm > GRAD_CLIP else ''}")
    print(f"wrote {len(VARIANTS)} fixtures to {os.path.normpath(args.out)} ({total / 1024:.1f} KiB in all), torch {torch.__version__}")


if __name__ == "__main__":
    main()
