#!/usr/bin/env python3
"""Regenerate the import fixtures in crates/interop/tests/fixtures/.

Small random-weight GPT-2 models in the layouts people hand lmforge, each with the logits
PyTorch computes on one fixed batch, so the Rust tests can check an import end to end
(`lmforge import` must give the same logits within 1e-4):

  hf_tied_gelu_new/        GPT2LMHeadModel, tied head, gelu_new, model.safetensors
                           (save_pretrained: `transformer.` prefix, no lm_head)
  hf_untied_gelu_bin/      untied head, exact gelu, n_inner = 2C, pytorch_model.bin
                           (torch zip pickle) with the `attn.bias` / `attn.masked_bias`
                           buffers old GPT-2 checkpoints carry
  hf_noprefix_sharded/     tied, gelu_new, names without `transformer.` (like the original
                           `gpt2` upload) in two safetensors shards + index, with attn.bias
  hf_bf16_bin/             tied, gelu_new, bf16 weights in pytorch_model.bin (reference
                           logits are those of the bf16-rounded weights in fp32)
  hf_fp16/                 tied, gelu_new, fp16 model.safetensors
  nanogpt/ckpt.pt          nanoGPT's checkpoint dict saved by torch.save: `model` (nanoGPT
                           names, nn.Linear layout, half the keys with torch.compile's
                           `_orig_mod.` prefix, shared wte/lm_head storage), `model_args`,
                           `optimizer`, `iter_num`, `best_val_loss` (a tensor), `config`
  nanogpt/plain.pth        a bare nanoGPT state_dict (torch.save)
  nanogpt/views.pth        the same weights stored as views: projections as transposed
                           (non-contiguous) views of GPT-2's Conv1D tensors, every 1-D
                           parameter a slice (non-zero offset) of one shared storage
  logits.safetensors       `idx` [2, 16] (int64) and `<fixture>.logits` [2, 16, V] (f32)
  bad/calls_code.pt        a torch zip whose pickle calls builtins.print (import must refuse
                           it by name and never run it)
  bad/legacy.pt            a bare (pre-torch-1.6, non-zip) pickle
  bad/no_tensors.pt        torch.save({"model": "weights?", "model_args": {...}})

Weights are drawn with non-trivial random biases and LayerNorm parameters (HF's init
zeroes biases and sets LayerNorm to 1, which would hide transposition and bias bugs).

Run (from the repository root; tools venv with torch + transformers):
    tools/.venv/bin/python tools/make_interop_fixtures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import zipfile

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB, N_EMBD, N_LAYER, N_HEAD, N_POS = 64, 24, 2, 2, 16
BATCH, SEQ = 2, 16
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gpt2(seed: int, *, tied: bool, act: str, n_inner: int | None = None) -> GPT2LMHeadModel:
    """A random GPT2LMHeadModel with every parameter (biases included) non-trivial."""
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_positions=N_POS,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        n_inner=n_inner,
        activation_function=act,
        tie_word_embeddings=tied,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model


def logits_of(model: GPT2LMHeadModel, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(idx).logits.float().contiguous()


def state_dict(model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """GPT-2's names, lm_head dropped when tied (as save_pretrained does)."""
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


def with_attn_buffers(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Adds the causal-mask buffers old GPT-2 checkpoints carry (import must ignore them)."""
    mask = torch.tril(torch.ones(N_POS, N_POS, dtype=torch.uint8)).view(1, 1, N_POS, N_POS)
    for i in range(N_LAYER):
        sd[f"{prefix}h.{i}.attn.bias"] = mask.clone()
        sd[f"{prefix}h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return sd


def write_config(model: GPT2LMHeadModel, out: str) -> None:
    model.config.save_pretrained(out)


def nanogpt_state_dict(model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """nanoGPT's names and nn.Linear layout ([out, in]); wte and lm_head share storage."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):  # buffers, not c_attn.bias
            continue
        v = v.detach().clone()
        if any(k.endswith(s) for s in CONV1D):
            v = v.t().contiguous()
        sd[k] = v
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied: one storage, two names
    return sd


class CallsCode:
    """Pickles as a call of builtins.print: a stand-in for code a hostile checkpoint runs."""

    def __reduce__(self):
        return (print, ("lmforge must never execute this",))


def write_bad_inputs(out: str, model_args: dict) -> None:
    os.makedirs(out)
    with zipfile.ZipFile(os.path.join(out, "calls_code.pt"), "w", zipfile.ZIP_STORED) as z:
        for name, data in [("calls_code/data.pkl", pickle.dumps({"model": CallsCode()}, protocol=2)),
                           ("calls_code/version", b"3\n")]:
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)  # reproducible
    with open(os.path.join(out, "legacy.pt"), "wb") as f:
        pickle.dump({"model": {}}, f, protocol=2)
    torch.save({"model": "weights?", "model_args": model_args}, os.path.join(out, "no_tensors.pt"))


def as_views(model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """nanoGPT names whose tensors are strided views, as torch.save keeps them."""
    sd = {}
    flat = [(k, v.detach().clone()) for k, v in model.state_dict().items()
            if not (k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"))]
    ones = [v for _, v in flat if v.dim() == 1]
    pool = torch.cat(ones)
    at = 0
    for k, v in flat:
        if v.dim() == 1:
            sd[k] = pool[at:at + v.numel()]
            at += v.numel()
        elif any(k.endswith(s) for s in CONV1D):
            sd[k] = v.t()  # stride (1, out): not contiguous
        else:
            sd[k] = v
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
    return sd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="crates/interop/tests/fixtures")
    out = ap.parse_args().out
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    idx = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(7))
    logits: dict[str, torch.Tensor] = {"idx": idx}

    # 1. tied, gelu_new, safetensors via save_pretrained
    m = gpt2(10, tied=True, act="gelu_new")
    d = os.path.join(out, "hf_tied_gelu_new")
    m.save_pretrained(d, safe_serialization=True)
    logits["hf_tied_gelu_new.logits"] = logits_of(m, idx)

    # 2. untied, exact gelu, n_inner = 2C, pytorch_model.bin with attn buffers
    m = gpt2(20, tied=False, act="gelu", n_inner=2 * N_EMBD)
    d = os.path.join(out, "hf_untied_gelu_bin")
    os.makedirs(d)
    write_config(m, d)
    torch.save(with_attn_buffers(state_dict(m), "transformer."), os.path.join(d, "pytorch_model.bin"))
    logits["hf_untied_gelu_bin.logits"] = logits_of(m, idx)

    # 3. no `transformer.` prefix, two safetensors shards + index, attn buffers
    m = gpt2(30, tied=True, act="gelu_new")
    d = os.path.join(out, "hf_noprefix_sharded")
    os.makedirs(d)
    write_config(m, d)
    sd = {k.removeprefix("transformer."): v for k, v in state_dict(m).items()}
    sd = with_attn_buffers(sd, "")
    names = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for file, keys in shards.items():
        save_file({k: sd[k] for k in keys}, os.path.join(d, file), metadata={"format": "pt"})
        weight_map.update({k: file for k in keys})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
    logits["hf_noprefix_sharded.logits"] = logits_of(m, idx)

    # 4. bf16 weights in pytorch_model.bin
    m = gpt2(40, tied=True, act="gelu_new")
    m = m.to(torch.bfloat16).float()  # the reference is the rounded weights, in fp32
    d = os.path.join(out, "hf_bf16_bin")
    os.makedirs(d)
    write_config(m, d)
    torch.save({k: v.to(torch.bfloat16) for k, v in state_dict(m).items()}, os.path.join(d, "pytorch_model.bin"))
    logits["hf_bf16_bin.logits"] = logits_of(m, idx)

    # 5. fp16 safetensors
    m = gpt2(50, tied=True, act="gelu_new")
    m = m.half().float()
    d = os.path.join(out, "hf_fp16")
    os.makedirs(d)
    write_config(m, d)
    save_file({k: v.half() for k, v in state_dict(m).items()}, os.path.join(d, "model.safetensors"),
              metadata={"format": "pt"})
    logits["hf_fp16.logits"] = logits_of(m, idx)

    # 6. nanoGPT ckpt.pt and a plain .pth state_dict (exact gelu, tied, bias)
    m = gpt2(60, tied=True, act="gelu")
    d = os.path.join(out, "nanogpt")
    os.makedirs(d)
    sd = nanogpt_state_dict(m)
    compiled = {(f"_orig_mod.{k}" if i % 2 == 0 else k): v for i, (k, v) in enumerate(sd.items())}
    model_args = dict(n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD, block_size=N_POS,
                      bias=True, vocab_size=VOCAB, dropout=0.0)
    ckpt = {
        "model": compiled,
        "optimizer": {"state": {}, "param_groups": [{"lr": 6e-4, "betas": (0.9, 0.95), "eps": 1e-8,
                                                     "weight_decay": 0.1, "fused": None, "params": [0, 1, 2]}]},
        "model_args": model_args,
        "iter_num": 0,
        "best_val_loss": torch.tensor(2.5),
        "config": {"dataset": "shakespeare_char", "compile": True, "dtype": "bfloat16", "learning_rate": 6e-4},
    }
    torch.save(ckpt, os.path.join(d, "ckpt.pt"))
    torch.save(sd, os.path.join(d, "plain.pth"))
    torch.save(as_views(m), os.path.join(d, "views.pth"))
    logits["nanogpt.logits"] = logits_of(m, idx)

    save_file({k: v.contiguous() for k, v in logits.items()}, os.path.join(out, "logits.safetensors"))
    write_bad_inputs(os.path.join(out, "bad"), model_args)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"wrote {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
