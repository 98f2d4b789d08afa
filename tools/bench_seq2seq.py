#!/usr/bin/env python3
"""Encoder-decoder training speed: PyTorch (the reference model of torch_seq2seq_reference.py,
eager fp32 and bf16 autocast) vs lmforge (crates/model/examples/bench_seq2seq.rs, fp32 and
bf16), same run, same shapes, interleaved rounds.

A step is forward + loss, backward, clip_grad_norm_(1.0), AdamW, on random full-length pairs
(no padding). Default shape: 6+6 layers, 512 wide, 8 heads, source 64, target 64, batch 16,
vocabularies 8000 (pre-LN, GELU, learned positions, tied output). tokens/s counts target
tokens (B x T) per second of the median step.
  torch eager fp32  the reference model as written (manual softmax attention)
  torch bf16        the same under torch.autocast("cpu", dtype=torch.bfloat16) around forward
                    + loss (fp32 master weights, as tools/bench_train.py does for the GPT)
  lmforge fp32      bench_seq2seq --dtype fp32
  lmforge bf16      bench_seq2seq --dtype bf16 (native where the CPU has AVX-512 BF16 / AMX,
                    else emulated; the notes say which)
Each implementation runs in its own subprocess per round (rounds interleave them, so a slow
spell of a shared machine hits all alike); each row is its best round. MFU = tokens/s x
FLOPs/target token (flops_per_token below: 6 x the Linear/head weights each token passes
through, plus the attention products) over the measured matmul peak of the row's dtype
(tools/bench_train.py's torch.mm 2048^3 worker, same thread count).

    cargo build --release -p lmforge-model --example bench_seq2seq
    tools/.venv/bin/python tools/bench_seq2seq.py [--threads N] [--rounds 3] [--steps 10]
        [--dtypes fp32,bf16] [--no-peaks]
"""

import argparse
import contextlib
import json
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_train  # noqa: E402  (matmul-peak worker, child runner with peak RSS)


def flops_per_token(a) -> float:
    """Training FLOPs per target token: 6 x (weights x tokens) of every Linear product and the
    head, plus nanoGPT's 12 x C x (keys) per query row for each attention (not halved for the
    causal mask, as nanoGPT's estimate_mfu)."""
    c, lyr, s, t, b, v = a.n_embd, a.layers, a.src_len, a.tgt_len, a.batch, a.vocab
    enc = b * s * lyr * (12 * c * c)  # qkv 3C², proj C², MLP 8C² per source token
    dec = b * t * lyr * (14 * c * c)  # self 4C², cross q + proj 2C², MLP 8C²
    mem = b * s * lyr * (2 * c * c)  # cross-attention memory K/V of the encoder output
    head = b * t * c * v
    attn = b * s * lyr * 12 * c * s + b * t * lyr * 12 * c * (t + s)
    return (6 * (enc + dec + mem + head) + attn) / (b * t)


def worker(a):
    import torch
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
    bf16 = a.dtype == "bf16"
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with cast:
            _, loss = model(src, tgt_in, tgt_out, pad_id=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    n = sum(p.numel() for p in model.parameters())
    name = "torch bf16" if bf16 else "torch eager fp32"
    print(json.dumps({"impl": name, "params": n, "tokens_per_s": a.batch * a.tgt_len / med,
                      "ms_per_step": med * 1e3, "loss": loss.item(), "threads": a.threads,
                      "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--lmforge-bench", default=os.path.join(HERE, "..", "target", "release", "examples", "bench_seq2seq"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16 (default both)")
    ap.add_argument("--no-peaks", action="store_true", help="skip the matmul peak measurement (no MFU column)")
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
    dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    if not dtypes or any(d not in ("fp32", "bf16") for d in dtypes):
        ap.error(f"--dtypes {a.dtypes!r}: expected a comma-separated list of fp32, bf16")
    shape = ["--layers", a.layers, "--n-embd", a.n_embd, "--n-head", a.n_head, "--src-len", a.src_len,
             "--tgt-len", a.tgt_len, "--batch", a.batch, "--vocab", a.vocab, "--steps", a.steps,
             "--warmup", a.warmup, "--threads", a.threads]
    shape = [str(x) for x in shape]
    me = [sys.executable, os.path.abspath(__file__), "--worker"]
    cmds = {}
    for dt in dtypes:
        cmds["torch bf16" if dt == "bf16" else "torch eager fp32"] = me + shape + ["--dtype", dt]
    for dt in dtypes:
        cmds[f"lmforge {dt}"] = [a.lmforge_bench] + shape + ["--dtype", dt]

    peaks = {}
    if not a.no_peaks:
        for dt in dtypes:
            r = bench_train.run_child(bench_train.self_cmd("--worker", "matmul", "--threads", a.threads, "--dtype", dt))
            if r["rc"] == 0:
                peaks[dt] = bench_train.last_json(r["stdout"])["gflops"]
                print(f"measured {dt} matmul peak (torch.mm {bench_train.MATMUL_N}^3, {a.threads} threads): "
                      f"{peaks[dt]:.1f} GFLOP/s", flush=True)
    runs, notes = {name: [] for name in cmds}, []
    for r in range(a.rounds):
        for name, cmd in cmds.items():
            out = bench_train.run_child(cmd)
            res = bench_train.last_json(out["stdout"]) if out["rc"] == 0 else None
            if res is None:
                notes.append(f"{name} round {r + 1}: failed: {(out['stderr'].strip() or out['stdout'].strip())[-500:]}")
                continue
            res["rss_mb"], res["round"] = out["rss_mb"], r
            runs[name].append(res)
            print(f"round {r + 1} {name}: {res['tokens_per_s']:.0f} tokens/s ({res['ms_per_step']:.0f} ms/step)", flush=True)
    best = {n: max(v, key=lambda x: x["tokens_per_s"]) for n, v in runs.items() if v}
    fpt = flops_per_token(a)
    print(f"\n{a.layers}+{a.layers} layers, {a.n_embd} wide, {a.n_head} heads, S={a.src_len}, T={a.tgt_len}, "
          f"batch {a.batch}, vocab {a.vocab}, {a.threads} threads, best of {a.rounds} interleaved rounds; "
          f"{fpt / 1e6:.0f} MFLOP per target token\n")
    print("| implementation | params | target tokens/s | ms/step | GFLOP/s | MFU | peak RSS MB "
          "| vs torch eager fp32 | vs torch bf16 autocast |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    base32 = best.get("torch eager fp32", {}).get("tokens_per_s")
    base16 = best.get("torch bf16", {}).get("tokens_per_s")
    for name, res in best.items():
        tps = res["tokens_per_s"]
        dt = "bf16" if name.endswith("bf16") else "fp32"
        gflops = tps * fpt / 1e9
        mfu = f"{100 * gflops / peaks[dt]:.0f}%" if dt in peaks else "n/a"
        r32 = f"{tps / base32:.2f}x" if base32 else "n/a"
        r16 = f"{tps / base16:.2f}x" if base16 else "n/a"
        print(f"| {name} | {res['params'] / 1e6:.1f}M | {tps:.0f} | {res['ms_per_step']:.0f} | {gflops:.0f} | {mfu} "
              f"| {res['rss_mb']:.0f} | {r32} | {r16} |")
    print()
    if peaks:
        print("MFU against the measured matmul peak of the row's dtype: "
              + ", ".join(f"{d} {v:.0f} GFLOP/s" for d, v in peaks.items()))
    for name, v in runs.items():
        detail = f" ({v[0]['dtype_detail']})" if v and "dtype_detail" in v[0] else ""
        print(f"note: {name}{detail}: tokens/s per round " + ", ".join(f"{x['tokens_per_s']:.0f}" for x in v))
    # Same-round ratios: each round's lmforge row over that round's torch row, so a slow spell
    # that hit one round hits both sides of its ratio; the median over rounds.
    for name in runs:
        for base in ("torch eager fp32", "torch bf16"):
            by_round = {y["round"]: y for y in runs.get(base, [])}
            pairs = [(x, by_round[x["round"]]) for x in runs[name] if x["round"] in by_round]
            if name.startswith("lmforge") and pairs:
                rs = sorted(x["tokens_per_s"] / y["tokens_per_s"] for x, y in pairs)
                print(f"note: {name} / {base}, same round: median {rs[len(rs) // 2]:.2f}x "
                      f"(rounds: {', '.join(f'{r:.2f}x' for r in rs)})")
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    main()
