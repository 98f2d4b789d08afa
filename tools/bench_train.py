#!/usr/bin/env python3
"""Training speed: PyTorch (nanoGPT model, CPU, fp32) vs lmforge, in one run, same shapes.

For each preset it times full training steps -- forward + loss, backward, clip_grad_norm_(1.0),
AdamW step -- on random token batches, after warmup, for:
  torch eager   nanoGPT's non-flash attention (manual softmax with a causal mask)
  torch sdpa    F.scaled_dot_product_attention(is_causal=True)
  lmforge       `<lmforge> bench train --preset P --threads N --json`
and prints a markdown table: tokens/s, ms/step (torch rows: the median step), MFU, peak RSS
and speed relative to torch eager.  MFU = tokens/s x FLOPs/token (nanoGPT's estimate_mfu:
6N + 12*L*H*Q*T) divided by the *measured* fp32 peak of this machine (best torch.mm 2048^3
on the same thread count), for every row alike.  Every measured thing runs in its own fresh
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
        [--impls "torch eager,torch sdpa,lmforge"] [shape flags]
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


def worker_matmul(threads: int) -> dict:
    """Best-of fp32 torch.mm throughput, 2048^3, in GFLOP/s."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
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


def worker_train(p: dict, attn: str, threads: int, steps: int, warmup: int) -> dict:
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
    ap.add_argument("--impls", default="torch eager,torch sdpa,lmforge",
                    help="comma-separated subset of: torch eager, torch sdpa, lmforge")
    for k in SHAPE_FLAGS:
        ap.add_argument(f"--{k.replace('_', '-')}", type=int, metavar="N",
                        help=f"replace every preset's {k} (custom shape)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds of every implementation; the table shows each one's best (default 3)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S",
                    help="before each measurement wait up to S seconds for an idle machine (shared machines)")
    ap.add_argument("--retries", type=int, default=0,
                    help="measure again (up to N times) when other processes took > 10%% of the machine")
    ap.add_argument("--worker", choices=["matmul", "train", "import"], help=argparse.SUPPRESS)
    ap.add_argument("--preset", help=argparse.SUPPRESS)
    ap.add_argument("--attn", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "matmul":
        print(json.dumps(worker_matmul(args.threads)))
        return
    if args.worker == "import":  # RSS baseline: what `import torch` alone costs
        import torch

        print(json.dumps({"torch": torch.__version__}))
        return
    if args.worker == "train":
        print(json.dumps(worker_train(shape_of(args.preset, args), args.attn, args.threads, args.steps,
                                      args.warmup)))
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
    wanted = [x.strip() for x in args.impls.split(",") if x.strip()]
    for x in wanted:
        if x not in ("torch eager", "torch sdpa", "lmforge"):
            ap.error(f"unknown --impls entry {x!r}; known: torch eager, torch sdpa, lmforge")
    # No torch in this driver process: on Linux a child's ru_maxrss starts from the RSS of the
    # process it was spawned from, so the driver must stay small for the RSS column to be fair.
    r = run_child(self_cmd("--worker", "import"))
    if r["rc"] != 0:
        sys.exit(f"cannot import torch:\n{r['stderr']}")
    print(f"torch {last_json(r['stdout'])['torch']}, {args.threads} threads, {args.steps} timed steps after "
          f"{args.warmup} warmup; a process that only imports torch peaks at {r['rss_mb']:.0f} MB RSS "
          f"(included in the torch rows)", flush=True)
    r = measure(self_cmd("--worker", "matmul", "--threads", args.threads), args)
    if r["rc"] != 0:
        sys.exit(f"matmul peak measurement failed:\n{r['stderr']}")
    peak = last_json(r["stdout"])["gflops"]
    print(f"measured fp32 matmul peak (torch.mm {MATMUL_N}^3, {args.threads} threads): {peak:.1f} GFLOP/s "
          f"(other processes used {100 * r['others']:.0f}% of the machine meanwhile)", flush=True)


    rows, notes = [], []
    lmforge = args.lmforge
    if args.skip_lmforge:
        notes.append("lmforge: skipped (--skip-lmforge)")
    elif not (os.path.isfile(lmforge) and os.access(lmforge, os.X_OK)):
        notes.append(f"lmforge: NOT RUN -- binary {lmforge!r} not found or not executable (cargo build --release)")
        lmforge = None
    def run_impl(preset: str, impl: str):
        """One measurement: (result dict, run_child record) or (None, failure note)."""
        if impl == "lmforge":
            cmd = [lmforge, "bench", "train", "--preset", preset, "--threads", str(args.threads),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--json", *shape_args(args)]
        else:
            cmd = self_cmd("--worker", "train", "--preset", preset, "--attn", impl.split()[1],
                           "--threads", args.threads, "--steps", args.steps, "--warmup", args.warmup,
                           *shape_args(args))
        print(f"  {preset} {impl} ...", flush=True)
        r = measure(cmd, args)
        res = last_json(r["stdout"]) if r["rc"] == 0 else None
        if res is None or "tokens_per_s" not in res:
            what = " ".join(map(str, cmd)) if impl == "lmforge" else impl
            return None, (f"{preset} {impl}: FAILED -- `{what}` exited {r['rc']}: "
                          f"{(r['stderr'].strip() or r['stdout'].strip())[-500:]}")
        return res, r

    impls = [x for x in ["torch eager", "torch sdpa"] if x in wanted]
    impls += ["lmforge"] if lmforge and not args.skip_lmforge and "lmforge" in wanted else []
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
        flops_per_token = next((res["flops_per_token"] for impl in impls if impl != "lmforge"
                                for res, _ in runs[impl]), None)
        best = {impl: max(v, key=lambda x: x[0]["tokens_per_s"]) for impl, v in runs.items() if v}
        base = next((x for x in ["torch eager", "torch sdpa"] if x in best), None)
        eager_tps = best[base][0]["tokens_per_s"] if base else None
        for impl in impls:
            if impl not in best:
                continue
            res, r = best[impl]
            mfu = res["tokens_per_s"] * flops_per_token / (peak * 1e9) if flops_per_token else None
            ratio = res["tokens_per_s"] / eager_tps if eager_tps else None
            rows.append([label(preset, args), impl, res["tokens_per_s"], res.get("ms_per_step"), mfu, r["rss_mb"], ratio])
            all_tps = ", ".join(f"{x['tokens_per_s']:.0f}" for x, _ in runs[impl])
            if impl == "lmforge":
                notes.append(f"{preset} lmforge: tokens/s per round {all_tps}; best round self-reported mfu "
                             f"{res.get('mfu')}, peak_rss_mb {res.get('peak_rss_mb')}; other processes used "
                             f"{100 * r['others']:.0f}% of the machine meanwhile")
            else:
                notes.append(f"{preset} {impl}: tokens/s per round {all_tps}; best round step ms median "
                             f"{res['ms_per_step']:.1f}, mean {res['mean_ms_per_step']:.1f}, min "
                             f"{res['min_ms_per_step']:.1f}; other processes used {100 * r['others']:.0f}% "
                             f"of the machine meanwhile")

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    print()
    print("| config | impl | tokens/s | ms/step | MFU | peak RSS MB | ratio vs PyTorch (eager, else sdpa) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for preset, impl, tps, ms, mfu, rss, ratio in rows:
        print(f"| {preset} | {impl} | {fmt(tps, '.0f')} | {fmt(ms, '.1f')} | "
              f"{'n/a' if mfu is None else f'{100 * mfu:.1f}%'} | {fmt(rss, '.0f')} | {fmt(ratio, '.2f')}x |")
    print()
    print(f"MFU = tokens/s x FLOPs/token (6N + 12*L*H*Q*T) / measured peak {peak:.1f} GFLOP/s. "
          f"Ratio = tokens/s / torch eager tokens/s (torch sdpa when eager did not run; > 1 is faster).\n"
          f"RSS = each child's ru_maxrss from os.wait4 (Linux counts from the spawning process's RSS, "
          f"so about {own_rss_mb():.0f} MB is the floor).\n"
          f"Each implementation ran {max(1, args.rounds)} interleaved rounds; the row is its best round. "
          f"torch rows: median step time over {args.steps} steps (robust to other load on a shared machine); "
          f"lmforge rows: what its --json reports (also the median step).")
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    main()
