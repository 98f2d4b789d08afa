#!/usr/bin/env python3
"""Generation speed: nanoGPT-style sampling in PyTorch vs `lmforge generate`, same checkpoint.

PyTorch side: the checkpoint's model.safetensors (nanoGPT names; a tied head is stored once,
as transformer.wte.weight) is loaded strictly into the reference model of
torch_reference.py, then sampled like nanoGPT's sample.py: from a one-token prompt, each
step runs the full context (cropped to block_size; no KV cache), takes the last position's
logits / temperature, keeps the top_k, softmax, torch.multinomial.  Reports tokens/s over
all new tokens and the ms to the first new token (model already loaded).

lmforge side: times `<lmforge> generate --checkpoint DIR --prompt "\\n" --max-new-tokens N
--temperature 0.8 --top-k 200 --seed 1337 --threads N`.  It first tries with --json-stats;
if lmforge prints a JSON object with tokens_per_s (and ms_to_first_token) its numbers are
used, otherwise the process wall time (which includes start-up and loading).  If lmforge
stops early (an end-of-text token), PyTorch's rate over as many tokens is used for the ratio.
If it fails, or the binary is missing, the PyTorch numbers are printed anyway.

Test checkpoint (before lmforge can train one): write a folder with the reference model's
own random weights, in lmforge's checkpoint format (model.safetensors + config.json):
    tools/.venv/bin/python tools/bench_generate.py --make-test-checkpoint /tmp/ckpt-baby --preset baby
Presets: baby = 4 layers/4 heads/128 wide, block 64, vocab 65; shakespeare-char =
6/6/384, block 256, vocab 65 (bias, learned positions, tied head, exact GELU).
`lmforge generate` also needs the tokenizer in the folder: by default the test checkpoint gets
nanoGPT's shakespeare_char vocabulary (65 characters, "\\n" = id 0, no special tokens -- so
no end-of-text token can end a sample early) as a Hugging Face tokenizer.json (a BPE with
no merges); --tokenizer FILE copies another one in instead (as tokenizer.json, or
tokenizer.model for a SentencePiece file).

Benchmark (from the repository root, after `bash tools/setup_venv.sh`):
    tools/.venv/bin/python tools/bench_generate.py --checkpoint /tmp/ckpt-baby
        [--lmforge target/release/lmforge] [--max-new-tokens 2000] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import torch
from torch.nn import functional as F

sys.dont_write_bytecode = True  # no tools/__pycache__ from importing torch_reference
from torch_reference import CONFIG_KEYS, GPT, GPTConfig  # noqa: E402

CKPT_PRESETS = {
    "baby": dict(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=64),
    "shakespeare-char": dict(vocab_size=65, n_layer=6, n_head=6, n_embd=384, block_size=256),
}


def shakespeare_char_tokenizer():
    """nanoGPT's shakespeare_char vocabulary (sorted; id 0 is "\n") as an HF tokenizer: a BPE
    with single-character tokens and no merges, no special tokens, Fuse decoder."""
    from tokenizers import Tokenizer, decoders, models

    chars = "\n !$&',-.3:;?" + "".join(map(chr, range(ord("A"), ord("Z") + 1))) + "".join(map(chr, range(ord("a"), ord("z") + 1)))
    assert len(chars) == 65 and list(chars) == sorted(chars)
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[]))
    tok.decoder = decoders.Fuse()
    return tok


def make_test_checkpoint(out_dir: str, preset: str, tokenizer: str | None, seed: int):
    """Write out_dir/{model.safetensors, config.json} with the torch model's random init."""
    from dataclasses import asdict

    from safetensors.torch import save_file

    torch.manual_seed(seed)
    cfg = GPTConfig(**CKPT_PRESETS[preset], bias=True, dropout=0.0, pos_encoding="learned")
    model = GPT(cfg)
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, os.path.join(tmp, "model.safetensors"))
    os.chmod(os.path.join(tmp, "model.safetensors"), 0o644)
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump({k: asdict(cfg)[k] for k in CONFIG_KEYS}, f, indent=2)
        f.write("\n")
    if tokenizer:  # lmforge looks for tokenizer.json (its own or HF's) or tokenizer.model
        name = "tokenizer.model" if tokenizer.endswith(".model") else "tokenizer.json"
        shutil.copy(tokenizer, os.path.join(tmp, name))
    else:
        shakespeare_char_tokenizer().save(os.path.join(tmp, "tokenizer.json"))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    print(f"wrote {out_dir}: {preset}, {model.num_params(non_embedding=False):,} parameters, "
          f"tensors: {', '.join(sorted(tensors))[:120]}...")


def load_checkpoint(ckpt: str, attn: str) -> GPT:
    from safetensors.torch import load_file

    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = GPTConfig.from_json(json.load(f))
    cfg.dropout = 0.0  # inference
    model = GPT(cfg, attn_impl=attn)
    model.load_state_dict(load_file(os.path.join(ckpt, "model.safetensors")), strict=True)
    return model.eval()


@torch.no_grad()
def sample_nanogpt(model: GPT, prompt: list[int], max_new_tokens: int, temperature: float, top_k: int | None):
    """nanoGPT's GPT.generate; returns (tokens, seconds from the start to each new token)."""
    idx = torch.tensor([prompt], dtype=torch.long)
    block = model.config.block_size
    t0 = time.perf_counter()
    stamps = []  # seconds from start after each new token
    for _ in range(max_new_tokens):
        idx_cond = idx if idx.size(1) <= block else idx[:, -block:]
        logits, _ = model(idx_cond)
        logits = logits[:, -1, :] / temperature
        if top_k is not None:
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
            logits[logits < v[:, [-1]]] = -float("inf")
        probs = F.softmax(logits, dim=-1)
        idx_next = torch.multinomial(probs, num_samples=1)
        idx = torch.cat((idx, idx_next), dim=1)
        stamps.append(time.perf_counter() - t0)
    return idx[0].tolist(), stamps


def last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and "tokens_per_s" in obj:
                return obj
    return None


def run_lmforge(args) -> tuple[dict | None, str]:
    """Returns ({tokens_per_s, ms_to_first_token or None, source}, note)."""
    exe = args.lmforge
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return None, f"lmforge NOT RUN: binary {exe!r} not found or not executable (cargo build --release)"
    base = [exe, "generate", "--checkpoint", args.checkpoint, "--prompt", "\n",
            "--max-new-tokens", str(args.max_new_tokens), "--temperature", str(args.temperature),
            "--top-k", str(args.top_k), "--seed", "1337", "--threads", str(args.threads)]
    failure = ""
    if args.exact_context:
        base.append("--exact-context")
    for cmd in (base + ["--json-stats"], base):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            failure = f"`{' '.join(repr(c) if c == chr(10) else c for c in cmd)}` exited {proc.returncode}: " \
                      f"{(proc.stderr.strip() or proc.stdout.strip())[-400:]}"
            continue
        stats = last_json(proc.stderr) or last_json(proc.stdout)
        if stats:
            ttft = stats.get("ms_to_first_token", stats.get("first_token_ms", stats.get("ttft_ms")))
            return {"tokens_per_s": stats["tokens_per_s"], "ms_to_first_token": ttft, "tokens": stats.get("tokens"),
                    "stop_reason": stats.get("stop_reason"), "source": "its --json-stats", "wall_s": wall}, ""
        return {"tokens_per_s": args.max_new_tokens / wall, "ms_to_first_token": None,
                "source": "process wall time, incl. start-up and loading", "wall_s": wall}, ""
    return None, "lmforge FAILED: " + failure


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="lmforge checkpoint folder (model.safetensors + config.json)")
    ap.add_argument("--lmforge", default="target/release/lmforge", help="the lmforge binary")
    ap.add_argument("--max-new-tokens", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads (default: all cores)")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=200)
    ap.add_argument("--prompt-token", type=int, default=0, help="the one-token prompt for PyTorch (id)")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                    help="PyTorch attention; nanoGPT uses sdpa ('flash') on torch >= 2")
    ap.add_argument("--skip-lmforge", action="store_true", help="PyTorch numbers only")
    ap.add_argument("--exact-context", action="store_true",
                    help="pass --exact-context to lmforge (re-read a full block per token, as nanoGPT does)")
    ap.add_argument("--make-test-checkpoint", metavar="DIR", help="write a random-weight checkpoint and exit")
    ap.add_argument("--preset", choices=sorted(CKPT_PRESETS), default="baby", help="for --make-test-checkpoint")
    ap.add_argument("--tokenizer", metavar="FILE",
                    help="for --make-test-checkpoint: copy this tokenizer file in (lmforge generate needs one)")
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.make_test_checkpoint:
        make_test_checkpoint(args.make_test_checkpoint, args.preset, args.tokenizer, args.seed)
        return
    if not args.checkpoint:
        ap.error("--checkpoint DIR is required (or --make-test-checkpoint DIR)")

    model = load_checkpoint(args.checkpoint, args.attn)
    c = model.config
    print(f"checkpoint {args.checkpoint}: {c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, block {c.block_size}, "
          f"vocab {c.vocab_size}, {model.num_params(non_embedding=False):,} params; torch {torch.__version__}, "
          f"{args.threads} threads, attn {args.attn}", flush=True)
    torch.manual_seed(args.seed)
    sample_nanogpt(model, [args.prompt_token], 5, args.temperature, args.top_k)  # warm-up
    torch.manual_seed(args.seed)
    tokens, stamps = sample_nanogpt(model, [args.prompt_token], args.max_new_tokens, args.temperature, args.top_k)
    assert len(tokens) == args.max_new_tokens + 1
    torch_tps = args.max_new_tokens / stamps[-1]
    print(f"PyTorch (nanoGPT sample, no KV cache): {args.max_new_tokens} tokens in {stamps[-1]:.2f} s = "
          f"{torch_tps:.1f} tokens/s, first token {1000 * stamps[0]:.1f} ms", flush=True)

    if args.skip_lmforge:
        print("lmforge: skipped (--skip-lmforge)")
        return
    res, note = run_lmforge(args)
    if res is None:
        print(note)
        return
    ttft = "n/a" if res["ms_to_first_token"] is None else f"{res['ms_to_first_token']:.1f} ms"
    print(f"lmforge generate: {res['tokens_per_s']:.1f} tokens/s ({res['source']}; wall {res['wall_s']:.2f} s), "
          f"first token {ttft}")
    n = res.get("tokens")
    if isinstance(n, int) and 0 < n < args.max_new_tokens:
        print(f"WARNING: lmforge stopped after {n} tokens (stop_reason {res.get('stop_reason')!r}); "
              f"comparing with PyTorch's first {n} tokens, whose context was as short")
        torch_tps = n / stamps[n - 1]
        print(f"PyTorch over its first {n} tokens: {torch_tps:.1f} tokens/s")
    print(f"ratio lmforge / PyTorch tokens/s: {res['tokens_per_s'] / torch_tps:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
