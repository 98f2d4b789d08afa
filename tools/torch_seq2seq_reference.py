#!/usr/bin/env python3
"""PyTorch reference encoder-decoder Transformer and the golden fixtures for lmforge's seq2seq tests.

The model is built from torch.nn pieces (nn.Linear, nn.Embedding, F.layer_norm, explicit
softmax attention with boolean masks) -- not nn.Transformer's fused fast path -- so every
step is the one lmforge's hand-written forward/backward must match:

  encoder: x = embed(src) + pos;  per block  x = x + SelfAttn(LN(x), key_padding_mask) ; x = x + MLP(LN(x))
           (post-LN: x = LN(x + SelfAttn(x)) ; x = LN(x + MLP(x))), pre-LN ends with encoder.ln_f
  decoder: y = embed(tgt_in) + pos; per block causal SelfAttn, CrossAttn(q = y, k/v = encoder
           output, key_padding_mask), MLP, same pre/post rule, pre-LN ends with decoder.ln_f
  logits = y @ W_out^T   (W_out = decoder.embed.weight when tied, else lm_head.weight)
  loss   = cross_entropy(logits, tgt_out, ignore_index=pad)   (teacher forcing)

Parameter names are this module's state_dict names (a shared source embedding is stored once,
as decoder.embed.weight).  bench_seq2seq.py imports Seq2seq/S2SConfig from this file.

Running the script writes, for each variant (s2s_pre, s2s_post, s2s_shared, s2s_post_relu, s2s_rope;
`--only NAME` writes just that one),
crates/model/tests/fixtures/<variant>.json (config, batch, optimizer settings) and
<variant>.safetensors holding:
  <param name>                                  initial parameters (fp32)
  input.src [B,S], input.tgt_in [B,T], input.tgt_out [B,T]   I64, padded with pad_id 0
  expected.logits [B,T,V], expected.loss [1]    first forward, initial parameters
  grad.<param name>                             first backward (before clipping)
  grad_norm.step{1,2,3} [1]                     total norm before clipping
  step{1,2,3}.<param name>                      parameters after each training step
A training step is: zero_grad, forward, backward, clip_grad_norm_(1.0), AdamW step
(weight decay on dim >= 2 only).

Run (from the repository root):
    tools/.venv/bin/python tools/torch_seq2seq_reference.py [--out DIR]

Deterministic: fp32, one thread, fixed seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from torch_reference import LayerNorm, rope_tables, rotate_half, sinusoidal_table


@dataclass
class S2SConfig:
    src_vocab_size: int = 37
    tgt_vocab_size: int = 41
    n_encoder_layer: int = 2
    n_decoder_layer: int = 2
    n_head: int = 4
    n_embd: int = 32
    src_block_size: int = 12
    tgt_block_size: int = 10
    norm: str = "pre"  # pre | post
    activation: str = "gelu"  # gelu | gelu_tanh | relu
    dropout: float = 0.0
    pos_encoding: str = "learned"  # learned | sinusoidal | rope | sinusoidal+rope
    tie_embeddings: bool = True
    share_embeddings: bool = False
    bias: bool = True
    mlp_ratio: int = 4


def attention(q, k, v, n_head, mask, rope=None):
    """q [B,Tq,C], k/v [B,Tk,C]; mask [B or 1, 1, Tq or 1, Tk] True = blocked; rope: cos/sin
    [n_pos, hs] or None. With RoPE, q is rotated by its positions 0..Tq and k by its own
    0..Tk (cross-attention: decoder positions for q, encoder positions for k)."""
    B, Tq, C = q.shape
    Tk = k.shape[1]
    hs = C // n_head
    q = q.view(B, Tq, n_head, hs).transpose(1, 2)
    k = k.view(B, Tk, n_head, hs).transpose(1, 2)
    if rope is not None:
        cos, sin = rope
        q = q * cos[:Tq] + rotate_half(q) * sin[:Tq]
        k = k * cos[:Tk] + rotate_half(k) * sin[:Tk]
    v = v.view(B, Tk, n_head, hs).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
    att = att.masked_fill(mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    return (att @ v).transpose(1, 2).contiguous().view(B, Tq, C)


ROPE_THETA = 10000.0


def uses_rope(cfg: S2SConfig) -> bool:
    return cfg.pos_encoding in ("rope", "sinusoidal+rope")


class RopeMixin:
    def init_rope(self, cfg: S2SConfig):
        self.rope = None
        if uses_rope(cfg):
            n_pos = max(cfg.src_block_size, cfg.tgt_block_size)
            self.rope = rope_tables(n_pos, cfg.n_embd // cfg.n_head, ROPE_THETA)


class SelfAttention(nn.Module, RopeMixin):
    def __init__(self, cfg: S2SConfig):
        super().__init__()
        self.init_rope(cfg)
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.n_head = cfg.n_head

    def forward(self, x, mask):
        q, k, v = self.c_attn(x).split(x.shape[-1], dim=2)
        return self.c_proj(attention(q, k, v, self.n_head, mask, self.rope))


class CrossAttention(nn.Module, RopeMixin):
    def __init__(self, cfg: S2SConfig):
        super().__init__()
        self.init_rope(cfg)
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.kv_proj = nn.Linear(cfg.n_embd, 2 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.n_head = cfg.n_head

    def forward(self, y, enc, mask):
        k, v = self.kv_proj(enc).split(enc.shape[-1], dim=2)
        return self.c_proj(attention(self.q_proj(y), k, v, self.n_head, mask, self.rope))


class MLP(nn.Module):
    def __init__(self, cfg: S2SConfig):
        super().__init__()
        h = cfg.mlp_ratio * cfg.n_embd
        self.c_fc = nn.Linear(cfg.n_embd, h, bias=cfg.bias)
        self.act = nn.GELU(approximate="tanh" if cfg.activation == "gelu_tanh" else "none")
        if cfg.activation == "relu":
            self.act = nn.ReLU()
        self.c_proj = nn.Linear(h, cfg.n_embd, bias=cfg.bias)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


def residual(pre: bool, ln, x, f):
    """pre-LN: x + f(LN(x)); post-LN: LN(x + f(x))."""
    return x + f(ln(x)) if pre else ln(x + f(x))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: S2SConfig):
        super().__init__()
        self.ln_1 = LayerNorm(cfg.n_embd, cfg.bias)
        self.self_attn = SelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg.n_embd, cfg.bias)
        self.mlp = MLP(cfg)
        self.pre = cfg.norm == "pre"

    def forward(self, x, src_mask):
        x = residual(self.pre, self.ln_1, x, lambda h: self.self_attn(h, src_mask))
        return residual(self.pre, self.ln_2, x, self.mlp)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: S2SConfig):
        super().__init__()
        self.ln_1 = LayerNorm(cfg.n_embd, cfg.bias)
        self.self_attn = SelfAttention(cfg)
        self.ln_x = LayerNorm(cfg.n_embd, cfg.bias)
        self.cross_attn = CrossAttention(cfg)
        self.ln_2 = LayerNorm(cfg.n_embd, cfg.bias)
        self.mlp = MLP(cfg)
        self.pre = cfg.norm == "pre"

    def forward(self, y, enc, causal, src_mask):
        y = residual(self.pre, self.ln_1, y, lambda h: self.self_attn(h, causal))
        y = residual(self.pre, self.ln_x, y, lambda h: self.cross_attn(h, enc, src_mask))
        return residual(self.pre, self.ln_2, y, self.mlp)


class Stack(nn.Module):
    """Embedding (+ learned positions), blocks, and the pre-LN final LayerNorm."""

    def __init__(self, cfg: S2SConfig, vocab: int, block: int, n_layer: int, layer, embed=None):
        super().__init__()
        if embed is None:
            self.embed = nn.Embedding(vocab, cfg.n_embd)
        else:
            self.__dict__["shared_embed"] = embed  # not registered: stored once, by the decoder
        if cfg.pos_encoding == "learned":
            self.pos = nn.Embedding(block, cfg.n_embd)
        elif cfg.pos_encoding in ("sinusoidal", "sinusoidal+rope"):
            self.register_buffer("pe", sinusoidal_table(block, cfg.n_embd), persistent=False)
        self.layers = nn.ModuleList([layer(cfg) for _ in range(n_layer)])
        if cfg.norm == "pre":
            self.ln_f = LayerNorm(cfg.n_embd, cfg.bias)
        self.cfg = cfg

    def embedding(self, idx):
        table = self.embed if "embed" in self._modules else self.shared_embed
        t = idx.shape[1]
        if self.cfg.pos_encoding == "rope":
            return table(idx)
        pos = self.pos.weight[:t] if self.cfg.pos_encoding == "learned" else self.pe[:t]
        return table(idx) + pos

    def final(self, x):
        return self.ln_f(x) if self.cfg.norm == "pre" else x


class Seq2seq(nn.Module):
    def __init__(self, cfg: S2SConfig):
        super().__init__()
        self.cfg = cfg
        dec_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.n_embd)
        shared = dec_embed if cfg.share_embeddings else None
        self.encoder = Stack(cfg, cfg.src_vocab_size, cfg.src_block_size, cfg.n_encoder_layer, EncoderLayer, shared)
        self.decoder = Stack(cfg, cfg.tgt_vocab_size, cfg.tgt_block_size, cfg.n_decoder_layer, DecoderLayer)
        self.decoder.embed = dec_embed
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.tgt_vocab_size, bias=False)
        self.init_weights()

    def init_weights(self):
        layers = cfg_layers = self.cfg.n_encoder_layer + self.cfg.n_decoder_layer
        del cfg_layers
        for name, p in self.named_parameters():
            if ".ln_" in name:
                continue
            if name.endswith(".bias"):
                nn.init.zeros_(p)
            elif name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def head_weight(self):
        return self.decoder.embed.weight if self.cfg.tie_embeddings else self.lm_head.weight

    def encode(self, src, pad_id):
        src_mask = (src == pad_id)[:, None, None, :]  # [B,1,1,S]
        x = self.encoder.embedding(src)
        for layer in self.encoder.layers:
            x = layer(x, src_mask)
        return self.encoder.final(x), src_mask

    def forward(self, src, tgt_in, tgt_out=None, pad_id=0):
        enc, src_mask = self.encode(src, pad_id)
        t = tgt_in.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=src.device).triu(1)[None, None]
        y = self.decoder.embedding(tgt_in)
        for layer in self.decoder.layers:
            y = layer(y, enc, causal, src_mask)
        logits = self.decoder.final(y) @ self.head_weight().t()
        loss = None
        if tgt_out is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=pad_id)
        return logits, loss

    def configure_optimizer(self, lr, betas, weight_decay, eps=1e-8):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=False, fused=False)


# --------------------------------------------------------------------------------------------
# Golden fixtures

VARIANTS = {
    "s2s_pre": dict(norm="pre", pos_encoding="learned", bias=True, activation="gelu", tie_embeddings=True),
    "s2s_post": dict(norm="post", pos_encoding="sinusoidal", bias=True, activation="gelu_tanh",
                     tie_embeddings=False, n_decoder_layer=1),
    "s2s_shared": dict(norm="pre", pos_encoding="sinusoidal", bias=False, activation="gelu",
                       tie_embeddings=True, share_embeddings=True, src_vocab_size=41, n_encoder_layer=1),
    "s2s_post_relu": dict(norm="post", pos_encoding="learned", bias=True, activation="relu",
                          tie_embeddings=True),
    "s2s_rope": dict(norm="post", pos_encoding="sinusoidal+rope", bias=True, activation="relu",
                     tie_embeddings=False),
}
PAD, BOS, EOS = 0, 1, 2
SRC_LENS = [7, 4, 5]  # B = 3, S = 7: two sources padded
TGT_LENS = [5, 2, 4]  # target tokens before <eos>; T = 6 (longest + 1)
ADAMW = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-6, weight_decay=0.1)
GRAD_CLIP = 1.0
STEPS = 3
SEED = 1337
PERTURB_STD = 0.05
WEIGHT_SCALE = 3.0
# torch's default eps (1e-8) turns the rounding noise of gradients that are exactly 0 in
# exact arithmetic (the key biases: softmax ignores a constant added to every score) into
# updates of up to lr; 1e-6 keeps those updates below the 1e-4 tolerance.


def make_batch(cfg: S2SConfig):
    B, S, T = len(SRC_LENS), max(SRC_LENS), max(TGT_LENS) + 1
    src = torch.full((B, S), PAD, dtype=torch.int64)
    tgt_in = torch.full((B, T), PAD, dtype=torch.int64)
    tgt_out = torch.full((B, T), PAD, dtype=torch.int64)
    for b, (ls, lt) in enumerate(zip(SRC_LENS, TGT_LENS)):
        src[b, :ls] = torch.randint(3, cfg.src_vocab_size, (ls,))
        tgt = torch.randint(3, cfg.tgt_vocab_size, (lt,))
        tgt_in[b, 0] = BOS
        tgt_in[b, 1:lt + 1] = tgt
        tgt_out[b, :lt] = tgt
        tgt_out[b, lt] = EOS
    return src, tgt_in, tgt_out


def snapshot(model, prefix, attr=None):
    out = {}
    for name, p in model.named_parameters():
        t = p if attr is None else getattr(p, attr)
        out[prefix + name] = t.detach().clone().contiguous()
    return out


def make_fixture(variant: str):
    cfg = S2SConfig(**VARIANTS[variant])
    torch.manual_seed(SEED)
    model = Seq2seq(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * PERTURB_STD)
            else:  # larger weights than the init so attention is far from uniform
                p.mul_(WEIGHT_SCALE)
    src, tgt_in, tgt_out = make_batch(cfg)
    tensors = snapshot(model, "")
    tensors["input.src"], tensors["input.tgt_in"], tensors["input.tgt_out"] = src, tgt_in, tgt_out
    opt = model.configure_optimizer(ADAMW["lr"], (ADAMW["beta1"], ADAMW["beta2"]), ADAMW["weight_decay"], ADAMW["eps"])
    summary = []
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        logits, loss = model(src, tgt_in, tgt_out, PAD)
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
    config = asdict(cfg)
    config["arch"] = "encoder-decoder"
    meta = {
        "config": config,
        "batch": {"b": len(SRC_LENS), "s": max(SRC_LENS), "t": max(TGT_LENS) + 1, "pad_id": PAD},
        "adamw": dict(ADAMW),
        "grad_clip": GRAD_CLIP,
        "steps": STEPS,
        "torch_version": torch.__version__,
    }
    return meta, tensors, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "crates", "model", "tests", "fixtures"))
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS),
                    help="write only these variants (keeps the committed fixtures of the others)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from safetensors.torch import save_file

    os.makedirs(args.out, exist_ok=True)
    for variant in args.only or VARIANTS:
        meta, tensors, summary = make_fixture(variant)
        base = os.path.join(args.out, variant)
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f, indent=2)
        save_file(tensors, base + ".safetensors.tmp")
        os.replace(base + ".json.tmp", base + ".json")
        os.replace(base + ".safetensors.tmp", base + ".safetensors")
        size = os.path.getsize(base + ".safetensors")
        print(f"{variant}: {size} bytes; loss/norm per step: " +
              ", ".join(f"{l:.4f}/{n:.4f}" for l, n in summary))


if __name__ == "__main__":
    main()
