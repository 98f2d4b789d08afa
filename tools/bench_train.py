#!/usr/bin/env python3
"""Training speed: PyTorch (nanoGPT model, CPU, fp32 and bf16 autocast) vs lmforge (fp32 and
bf16), in one run, same shapes.

For each preset it times full training steps -- forward + loss, backward, clip_grad_norm_(1.0),
AdamW step -- on random token batches, after warmup, for:
  torch eager   nanoGPT's non-flash attention (manual softmax with a causal mask)
  torch sdpa    F.scaled_dot_product_attention(is_causal=True)
  torch bf16    sdpa under torch.autocast("cpu", dtype=torch.bfloat16) (forward + loss; fp32
                master weights, as a PyTorch user turns on bf16 on a CPU with native bf16)
  lmforge fp32  `<lmforge> bench train --preset P --threads N --dtype fp32 --json`
  lmforge bf16  the same with `--dtype bf16` (the fastest bf16 kernel on this CPU: AMX, AVX-512
                BF16 on AMD, else emulated; its --json says which in dtype_detail)
and prints a markdown table: tokens/s, ms/step (torch rows: the median step), MFU, peak RSS
and speed relative to torch eager and to torch bf16.  MFU = tokens/s x FLOPs/token (nanoGPT's
estimate_mfu: 6N + 12*L*H*Q*T) divided by the *measured* peak of this machine in the row's
dtype (best torch.mm 2048^3 on the same thread count, on fp32 or bf16 tensors; for bf16 the
fp32 figure where that is higher, as f32 products of bf16 values are exact); the fp32
peak is printed beside it.  Every measured thing runs in its own fresh
subprocess; its peak RSS is that child's ru_maxrss (os.wait4).  A missing lmforge binary or
a failing bench command is reported under the table; the PyTorch rows are printed anyway.
Other load on the machine distorts everything (2 threads on 2 cores): run it on a quiet one.

Presets (dropout 0, bias, learned positions, tied head, exact GELU, vocab 65):
  bench-s  4 layers, 4 heads, 128 wide, block 64,  batch 12
  bench-m  6 layers, 6 heads, 384 wide, block 256, batch 8
AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on dim >= 2 params (nanoGPT's groups).

Custom shapes: --n-layer, --n-embd, --n-head, --block-size, --vocab-size and --batch replace
those fields of every preset in --presets (lmforge gets the same flags), e.g. the seeds'
o200k_base shape and JaneLM's:
    --presets bench-m --n-layer 4 --n-embd 256 --n-head 4 --block-size 256 --batch 8 --vocab-size 200019
    --presets bench-m --n-layer 6 --n-embd 512 --n-head 4 --block-size 96 --batch 32 --vocab-size 50257

Run (from the repository root, after `bash tools/setup_venv.sh` and `cargo build --release`):
    tools/.venv/bin/python tools/bench_train.py [--lmforge target/release/lmforge]
        [--presets bench-s,bench-m] [--threads N] [--steps 20] [--warmup 3] [--rounds 3]
        [--impls "torch eager,torch sdpa,torch bf16,lmforge fp32,lmforge bf16"] [--dtypes fp32,bf16]
        [shape flags: --n-layer --n-embd --n-head --block-size --vocab-size --batch]
        [--wait-idle 600 --retries 3]     # on a shared machine
The implementations run in interleaved rounds (eager, sdpa, lmforge, eager, ...), so a slow
spell of a shared machine hits all of them; each row is that implementation's best round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no tools/__pycache__ from importing torch_reference

PRESETS = {
    "bench-s": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch=12, vocab_size=65),
    "bench-m": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch=8, vocab_size=65),
}
LR, BETAS, WEIGHT_DECAY, GRAD_CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0
MATMUL_N = 2048


def default_threads() -> int:
    return len(os.sched_getaffinity(0))


# --------------------------------------------------------------------------------------------
# Workers (each runs in its own process and prints one JSON line)


def worker_matmul(threads: int, dtype: str) -> dict:
    """Best-of torch.mm throughput, 2048^3, fp32 or bf16 tensors, in GFLOP/s."""
    import torch

    torch.set_num_threads(threads)
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(MATMUL_N, MATMUL_N, dtype=dt), torch.randn(MATMUL_N, MATMUL_N, dtype=dt)
    for _ in range(3):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(10):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return {"gflops": 2 * MATMUL_N**3 / best / 1e9}


SHAPE_FLAGS = ("n_layer", "n_embd", "n_head", "block_size", "vocab_size", "batch")


def shape_of(preset: str, args) -> dict:
    """The preset's fields with the shape flags given on the command line replacing them."""
    p = dict(PRESETS[preset])
    p.update({k: getattr(args, k) for k in SHAPE_FLAGS if getattr(args, k) is not None})
    return p


def shape_args(args) -> list[str]:
    """The shape flags given, as command-line arguments (for lmforge and the workers)."""
    return [x for k in SHAPE_FLAGS if getattr(args, k) is not None
            for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))]


def label(preset: str, args) -> str:
    if not shape_args(args):
        return preset
    p = shape_of(preset, args)
    return (f"{p['n_layer']}L x {p['n_embd']}, {p['n_head']} heads, block {p['block_size']}, "
            f"batch {p['batch']}, vocab {p['vocab_size']}")


def worker_train(p: dict, attn: str, threads: int, steps: int, warmup: int, dtype: str) -> dict:
    import contextlib

    import torch

    from torch_reference import GPT, GPTConfig

    torch.set_num_threads(threads)
    torch.manual_seed(1337)
    cfg = GPTConfig(vocab_size=p["vocab_size"], n_layer=p["n_layer"], n_head=p["n_head"], n_embd=p["n_embd"],
                    block_size=p["block_size"], bias=True, dropout=0.0, pos_encoding="learned")
    model = GPT(cfg, attn_impl=attn)
    model.train()
    opt = model.configure_optimizer(LR, BETAS, WEIGHT_DECAY)
    B, T = p["batch"], p["block_size"]

    def step():
        xy = torch.randint(0, cfg.vocab_size, (B, T + 1))
        x, y = xy[:, :-1].contiguous(), xy[:, 1:].contiguous()
        opt.zero_grad(set_to_none=True)
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
        with cast:
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"tokens_per_s": B * T / med, "ms_per_step": 1000 * med, "mean_ms_per_step": 1000 * statistics.fmean(times),
            "min_ms_per_step": 1000 * min(times), "flops_per_token": model.flops_per_token(), "params": model.num_params()}


# --------------------------------------------------------------------------------------------
# Driver


def busy_cpu_s() -> float:
    """CPU seconds the whole machine (all cores, every process) has been busy since boot."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def wait_idle(max_wait: float) -> bool:
    """Wait (at most max_wait s) until the machine is < 5% busy over 3 s."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        b0 = busy_cpu_s()
        time.sleep(3)
        if (busy_cpu_s() - b0) / (3 * os.cpu_count()) < 0.05:
            return True
    return False


def run_child(cmd: list[str]) -> dict:
    """Run cmd to completion; return rc, stdout, stderr, the child's own peak RSS (MB) and the
    share of the machine that *other* processes used meanwhile (0..1)."""
    with tempfile.TemporaryFile() as err:
        b0, t0 = busy_cpu_s(), time.monotonic()
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        except OSError as e:
            return {"rc": None, "stdout": "", "stderr": str(e), "rss_mb": None, "others": 0.0}
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        others = busy_cpu_s() - b0 - usage.ru_utime - usage.ru_stime
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return {"rc": proc.returncode, "stdout": out.decode(errors="replace"),
                "stderr": err.read().decode(errors="replace"), "rss_mb": usage.ru_maxrss / 1024,
                "others": max(0.0, others / ((time.monotonic() - t0) * os.cpu_count()))}


def measure(cmd: list[str], args) -> dict:
    """run_child, first waiting for an idle machine (--wait-idle) and running again (up to
    --retries times) when other processes took more than 10% of the machine meanwhile."""
    for attempt in range(1 + args.retries):
        if args.wait_idle > 0 and not wait_idle(args.wait_idle):
            print(f"    machine not idle after {args.wait_idle:.0f} s; measuring anyway", flush=True)
        r = run_child(cmd)
        if r["rc"] != 0 or r["others"] <= 0.10 or attempt == args.retries:
            return r
        print(f"    other processes used {100 * r['others']:.0f}% of the machine; measuring again", flush=True)


def own_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def self_cmd(*args) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), *map(str, args)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lmforge", default="target/release/lmforge", help="the lmforge binary")
    ap.add_argument("--presets", default="bench-s,bench-m", help="comma-separated: " + ",".join(PRESETS))
    ap.add_argument("--threads", type=int, default=default_threads(), help="threads (default: all cores)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--skip-lmforge", action="store_true", help="PyTorch rows only")
    ap.add_argument("--impls", default="torch eager,torch sdpa,torch bf16,lmforge fp32,lmforge bf16",
                    help="comma-separated subset of: torch eager, torch sdpa, torch bf16, lmforge fp32, lmforge bf16")
    for k in SHAPE_FLAGS:
        ap.add_argument(f"--{k.replace('_', '-')}", type=int, metavar="N",
                        help=f"replace every preset's {k} (custom shape)")
    ap.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16 (default both)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds of every implementation; the table shows each one's best (default 3)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S",
                    help="before each measurement wait up to S seconds for an idle machine (shared machines)")
    ap.add_argument("--retries", type=int, default=0,
                    help="measure again (up to N times) when other processes took > 10%% of the machine")
    ap.add_argument("--worker", choices=["matmul", "train", "import"], help=argparse.SUPPRESS)
    ap.add_argument("--preset", help=argparse.SUPPRESS)
    ap.add_argument("--attn", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "matmul":
        print(json.dumps(worker_matmul(args.threads, args.dtype)))
        return
    if args.worker == "import":  # RSS baseline: what `import torch` alone costs
        import torch

        print(json.dumps({"torch": torch.__version__}))
        return
    if args.worker == "train":
        print(json.dumps(worker_train(shape_of(args.preset, args), args.attn, args.threads, args.steps,
                                      args.warmup, args.dtype)))
        return

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    for p in presets:
        if p not in PRESETS:
            ap.error(f"unknown preset {p!r}; known: {', '.join(PRESETS)}")
    for k in SHAPE_FLAGS:
        if getattr(args, k) is not None and getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be at least 1")
    for p in presets:
        s = shape_of(p, args)
        if s["n_embd"] % s["n_head"]:
            ap.error(f"--n-embd {s['n_embd']} is not divisible by --n-head {s['n_head']} (preset {p})")
    known = ("torch eager", "torch sdpa", "torch bf16", "lmforge fp32", "lmforge bf16")
    wanted = [x.strip() for x in args.impls.split(",") if x.strip()]
    # "lmforge" alone means both of its dtypes (--dtypes still filters)
    wanted = [y for x in wanted for y in (["lmforge fp32", "lmforge bf16"] if x == "lmforge" else [x])]
    for x in wanted:
        if x not in known:
            ap.error(f"unknown --impls entry {x!r}; known: {', '.join(known)}, lmforge")
    # No torch in this driver process: on Linux a child's ru_maxrss starts from the RSS of the
    # process it was spawned from, so the driver must stay small for the RSS column to be fair.
    r = run_child(self_cmd("--worker", "import"))
    if r["rc"] != 0:
        sys.exit(f"cannot import torch:\n{r['stderr']}")
    print(f"torch {last_json(r['stdout'])['torch']}, {args.threads} threads, {args.steps} timed steps after "
          f"{args.warmup} warmup; a process that only imports torch peaks at {r['rss_mb']:.0f} MB RSS "
          f"(included in the torch rows)", flush=True)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not dtypes or any(d not in ("fp32", "bf16") for d in dtypes):
        ap.error(f"--dtypes {args.dtypes!r}: expected a comma-separated list of fp32, bf16")
    peaks = {}
    for dt in ["fp32"] + [d for d in dtypes if d != "fp32"]:
        r = measure(self_cmd("--worker", "matmul", "--threads", args.threads, "--dtype", dt), args)
        if r["rc"] != 0:
            sys.exit(f"{dt} matmul peak measurement failed:\n{r['stderr']}")
        peaks[dt] = last_json(r["stdout"])["gflops"]
        print(f"measured {dt} matmul peak (torch.mm {MATMUL_N}^3 on {dt} tensors, {args.threads} threads): "
              f"{peaks[dt]:.1f} GFLOP/s (other processes used {100 * r['others']:.0f}% of the machine meanwhile)",
              flush=True)
    # bf16 values are exact in f32 and their products exact in f32 FMAs, so where the f32 path
    # multiplies faster (AVX-512 BF16 without AMX on Intel) that is this machine's bf16 peak
    mfu_peaks = {d: max(v, peaks["fp32"]) for d, v in peaks.items()}

    rows, notes = [], []
    lmforge = args.lmforge
    if args.skip_lmforge:
        notes.append("lmforge: skipped (--skip-lmforge)")
    elif not (os.path.isfile(lmforge) and os.access(lmforge, os.X_OK)):
        notes.append(f"lmforge: NOT RUN -- binary {lmforge!r} not found or not executable (cargo build --release)")
        lmforge = None
    def run_impl(preset: str, impl: str):
        """One measurement: (result dict, run_child record) or (None, failure note)."""
        if impl.startswith("lmforge"):
            cmd = [lmforge, "bench", "train", "--preset", preset, "--threads", str(args.threads),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--dtype", impl_dtype(impl),
                   "--json", *shape_args(args)]
        else:
            attn = "sdpa" if impl == "torch bf16" else impl.split()[1]
            cmd = self_cmd("--worker", "train", "--preset", preset, "--attn", attn, "--threads", args.threads,
                           "--steps", args.steps, "--warmup", args.warmup, "--dtype", impl_dtype(impl),
                           *shape_args(args))
        print(f"  {preset} {impl} ...", flush=True)
        r = measure(cmd, args)
        res = last_json(r["stdout"]) if r["rc"] == 0 else None
        if res is None or "tokens_per_s" not in res:
            what = " ".join(map(str, cmd)) if impl.startswith("lmforge") else impl
            return None, (f"{preset} {impl}: FAILED -- `{what}` exited {r['rc']}: "
                          f"{(r['stderr'].strip() or r['stdout'].strip())[-500:]}")
        return res, r

    def impl_dtype(impl: str) -> str:
        return "bf16" if impl.endswith("bf16") else "fp32"

    impls = [x for x in ["torch eager", "torch sdpa", "torch bf16"] if x in wanted]
    if lmforge and not args.skip_lmforge:
        impls += [x for x in ["lmforge fp32", "lmforge bf16"] if x in wanted]
    impls = [i for i in impls if impl_dtype(i) in dtypes]
    for preset in presets:
        # Rounds interleave the implementations, so a slow spell of the machine hits them alike;
        # each implementation's best round (highest tokens/s) goes into the table.
        runs = {impl: [] for impl in impls}
        for _ in range(max(1, args.rounds)):
            for impl in impls:
                res, r = run_impl(preset, impl)
                if res is None:
                    notes.append(r)
                else:
                    runs[impl].append((res, r))
        flops_per_token = next((res["flops_per_token"] for impl in impls if not impl.startswith("lmforge")
                                for res, _ in runs[impl]), None)
        best = {impl: max(v, key=lambda x: x[0]["tokens_per_s"]) for impl, v in runs.items() if v}
        base = next((x for x in ["torch eager", "torch sdpa"] if x in best), None)
        eager_tps = best[base][0]["tokens_per_s"] if base else None
        bf16_tps = best["torch bf16"][0]["tokens_per_s"] if "torch bf16" in best else None
        for impl in impls:
            if impl not in best:
                continue
            res, r = best[impl]
            dt = impl_dtype(impl)
            mfu = res["tokens_per_s"] * flops_per_token / (mfu_peaks[dt] * 1e9) if flops_per_token else None
            ratio = res["tokens_per_s"] / eager_tps if eager_tps else None
            ratio_bf16 = res["tokens_per_s"] / bf16_tps if bf16_tps else None
            rows.append([label(preset, args), impl, res["tokens_per_s"], res.get("ms_per_step"), mfu, r["rss_mb"],
                         ratio, ratio_bf16])
            all_tps = ", ".join(f"{x['tokens_per_s']:.0f}" for x, _ in runs[impl])
            if impl.startswith("lmforge"):
                notes.append(f"{preset} {impl}: tokens/s per round {all_tps}; best round: {res.get('dtype_detail')}, "
                             f"self-reported mfu {res.get('mfu')} (vs its own {res.get('dtype')} matmul peak "
                             f"{res.get('matmul_peak_gflops')}), mfu vs fp32 peak {res.get('mfu_vs_fp32_peak')}, "
                             f"peak_rss_mb {res.get('peak_rss_mb')}; other processes used "
                             f"{100 * r['others']:.0f}% of the machine meanwhile")
            else:
                notes.append(f"{preset} {impl}: tokens/s per round {all_tps}; best round step ms median "
                             f"{res['ms_per_step']:.1f}, mean {res['mean_ms_per_step']:.1f}, min "
                             f"{res['min_ms_per_step']:.1f}; other processes used {100 * r['others']:.0f}% "
                             f"of the machine meanwhile")

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    print()
    print("| config | impl | tokens/s | ms/step | MFU | peak RSS MB | ratio vs PyTorch fp32 (eager, else sdpa) | ratio vs PyTorch bf16 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for preset, impl, tps, ms, mfu, rss, ratio, ratio_bf16 in rows:
        print(f"| {preset} | {impl} | {fmt(tps, '.0f')} | {fmt(ms, '.1f')} | "
              f"{'n/a' if mfu is None else f'{100 * mfu:.1f}%'} | {fmt(rss, '.0f')} | {fmt(ratio, '.2f')}x | "
              f"{fmt(ratio_bf16, '.2f')}x |")
    print()
    peak_text = ", ".join(f"{d} {v:.1f}" for d, v in mfu_peaks.items()) + " GFLOP/s"
    if mfu_peaks.get("bf16", 0) > peaks.get("bf16", 0):
        peak_text += f"; bf16 is the fp32 figure: bf16 tensors measured {peaks['bf16']:.1f}, and f32 products of bf16 values are exact"
    print(f"MFU = tokens/s x FLOPs/token (6N + 12*L*H*Q*T) / the measured peak of the row's dtype "
          f"({peak_text}). Ratios = tokens/s / torch eager (fp32; sdpa when eager did not run) or torch bf16 (autocast) "
          f"tokens/s (> 1 is faster).\n"
          f"RSS = each child's ru_maxrss from os.wait4 (Linux counts from the spawning process's RSS, "
          f"so about {own_rss_mb():.0f} MB is the floor).\n"
          f"Each implementation ran {max(1, args.rounds)} interleaved rounds; the row is its best round. "
          f"torch rows: median step time over {args.steps} steps (robust to other load on a shared machine); "
          f"lmforge rows: what its --json reports (also the median step).")
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    main()
