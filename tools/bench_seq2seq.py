#!/usr/bin/env python3
"""Encoder-decoder training speed: PyTorch eager fp32 (the reference model of
torch_seq2seq_reference.py) vs lmforge (crates/model/examples/bench_seq2seq.rs), same run,
same shapes, interleaved rounds.

A step is forward + loss, backward, clip_grad_norm_(1.0), AdamW, on random full-length pairs
(no padding). Default shape: 6+6 layers, 512 wide, 8 heads, source 64, target 64, batch 16,
vocabularies 8000 (pre-LN, GELU, learned positions, tied output). tokens/s counts target
tokens (B x T) per second of the median step. Each implementation runs in its own subprocess
per round; each row is its best round.

    cargo build --release -p lmforge-model --example bench_seq2seq
    tools/.venv/bin/python tools/bench_seq2seq.py [--threads N] [--rounds 3] [--steps 10]
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))


def worker(a):
    import torch
    sys.path.insert(0, HERE)
    from torch_seq2seq_reference import S2SConfig, Seq2seq

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = S2SConfig(src_vocab_size=a.vocab, tgt_vocab_size=a.vocab, n_encoder_layer=a.layers,
                    n_decoder_layer=a.layers, n_head=a.n_head, n_embd=a.n_embd,
                    src_block_size=a.src_len, tgt_block_size=a.tgt_len)
    model = Seq2seq(cfg)
    opt = model.configure_optimizer(1e-4, (0.9, 0.95), 0.1)
    src = torch.randint(0, a.vocab, (a.batch, a.src_len))
    tgt_in = torch.randint(0, a.vocab, (a.batch, a.tgt_len))
    tgt_out = torch.randint(0, a.vocab, (a.batch, a.tgt_len))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(src, tgt_in, tgt_out, pad_id=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"impl": "torch eager fp32", "params": n, "tokens_per_s": a.batch * a.tgt_len / med,
                      "ms_per_step": med * 1e3, "loss": loss.item(), "threads": a.threads,
                      "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--lmforge-bench", default=os.path.join(HERE, "..", "target", "release", "examples", "bench_seq2seq"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--n-embd", type=int, default=512)
    ap.add_argument("--n-head", type=int, default=8)
    ap.add_argument("--src-len", type=int, default=64)
    ap.add_argument("--tgt-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=8000)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    shape = ["--layers", a.layers, "--n-embd", a.n_embd, "--n-head", a.n_head, "--src-len", a.src_len,
             "--tgt-len", a.tgt_len, "--batch", a.batch, "--vocab", a.vocab, "--steps", a.steps,
             "--warmup", a.warmup, "--threads", a.threads]
    shape = [str(x) for x in shape]
    cmds = {
        "torch eager fp32": [sys.executable, os.path.abspath(__file__), "--worker"] + shape,
        "lmforge fp32": [a.lmforge_bench] + shape,
    }
    best = {}
    for r in range(a.rounds):
        for name, cmd in cmds.items():
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{name}: failed: {out.stderr.strip()[-500:]}")
                continue
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"round {r + 1} {name}: {res['tokens_per_s']:.0f} tokens/s ({res['ms_per_step']:.0f} ms/step)", flush=True)
            if name not in best or res["tokens_per_s"] > best[name]["tokens_per_s"]:
                best[name] = res
    print(f"\n{a.layers}+{a.layers} layers, {a.n_embd} wide, {a.n_head} heads, S={a.src_len}, T={a.tgt_len}, "
          f"batch {a.batch}, vocab {a.vocab}, {a.threads} threads, best of {a.rounds} rounds\n")
    print("| implementation | params | target tokens/s | ms/step | vs torch eager |")
    print("|---|---|---|---|---|")
    base = best.get("torch eager fp32", {}).get("tokens_per_s")
    for name, res in best.items():
        ratio = f"{res['tokens_per_s'] / base:.2f}x" if base else "-"
        print(f"| {name} | {res['params'] / 1e6:.1f}M | {res['tokens_per_s']:.0f} | {res['ms_per_step']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
