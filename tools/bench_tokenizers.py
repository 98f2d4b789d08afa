#!/usr/bin/env python3
"""Benchmark Python tokenizers against lmforge's, in one run, on the same corpus.

Python side (on the corpus: every *.txt file under --corpus, recursively, sorted by
path, each file one document):
  - tiktoken o200k_base `encode_ordinary` on the concatenated text, one thread;
  - tiktoken o200k_base `encode_ordinary_batch(num_threads=N)` over documents and over lines;
  - HF `tokenizers` byte-level BPE training at vocab 8192 (ByteLevel pre-tokenizer,
    BpeTrainer with special tokens <pad> <unk> <bos> <eos>, initial alphabet
    ByteLevel.alphabet(), min_frequency 2), then its `encode_batch` over documents.
lmforge side: `<lmforge> tokenizer bench --corpus DIR --threads N --json`, which prints
one JSON object {"corpus_bytes", "threads", "encode_mb_per_s": {...}, "bpe_train_s"}.
A markdown table of both follows. If the binary is missing or fails, the Python rows are
still printed, with a note saying so.

MB = 10**6 bytes of UTF-8 text.  Timings are the best of --repeat runs (training: one run).

Run (from the repository root):
    bash tools/setup_venv.sh
    cargo build --release
    tools/.venv/bin/python tools/bench_tokenizers.py [--lmforge target/release/lmforge]
        [--corpus corpus/shakespeare] [--threads N] [--repeat 3]

tiktoken's rank files are loaded offline from the tiktoken-rs crate's assets (see
tools/make_tokenizer_fixtures.py); --tiktoken-assets DIR overrides the folder.

Corpus scale (--scale): builds, under --scale-dir (default target/bench_corpus, not in git),
the bundled corpus repeated to ~130 MB as one file, to ~530 MB as one file, and the same
530 MB as 40 shards wiki_books_test_NN.txt; then measures wall time and peak RSS
(`/usr/bin/time`) of separate processes, one after the other in the same run:
  - BPE training at vocab 8192: `lmforge tokenizer train --kind bpe` vs HF `tokenizers`
    `train_from_iterator` over ~1 MB pieces of the files cut at line ends (configured as
    above; HF's fastest way: line-by-line `Tokenizer.train(files)` was ~15x slower here);
    on the 130 MB file, the 530 MB file and the 40 shards;
  - `lmforge prepare` with char, word, bpe (the tokenizers trained first, passed as files)
    and tiktoken:o200k_base on the 530 MB file and on the shards; with --baseline OLD_BIN,
    also the old binary on the shards (its single-file runs need ~9-100x the file in RAM).
    tools/.venv/bin/python tools/bench_tokenizers.py --scale [--baseline /path/to/old/lmforge]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # importing the sibling script must not leave tools/__pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>"]
VOCAB_SIZE = 8192


def load_corpus(corpus: Path) -> list[str]:
    files = sorted(p for p in corpus.rglob("*.txt") if p.is_file())
    if not files:
        sys.exit(f"no *.txt files under {corpus}")
    return [p.read_text(encoding="utf-8") for p in files]


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_tiktoken(docs, nbytes, threads, repeat, assets) -> dict:
    from make_tokenizer_fixtures import find_tiktoken_assets, offline_encoding

    enc = offline_encoding("o200k_base", find_tiktoken_assets(assets))
    text = "".join(docs)
    lines = text.splitlines(keepends=True)
    enc.encode_ordinary(text[:100_000])  # warm-up (regex compile, allocations)
    single = best_time(lambda: enc.encode_ordinary(text), repeat)
    by_doc = best_time(lambda: enc.encode_ordinary_batch(docs, num_threads=threads), repeat)
    by_line = best_time(lambda: enc.encode_ordinary_batch(lines, num_threads=threads), repeat)
    return {
        "o200k_single": nbytes / single / 1e6,
        "o200k_batch_docs": nbytes / by_doc / 1e6,
        "o200k_batch_lines": nbytes / by_line / 1e6,
        "o200k_tokens": len(enc.encode_ordinary(text)),
    }


def bench_hf(docs, nbytes, repeat) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # As lmforge: no prefix space, so any UTF-8 text round-trips exactly.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    t0 = time.perf_counter()
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    train_s = time.perf_counter() - t0
    encode = best_time(lambda: tok.encode_batch(docs, add_special_tokens=False), repeat)
    out = {"hf_train_s": train_s, "hf_encode": nbytes / encode / 1e6, "hf_vocab": tok.get_vocab_size()}
    if hasattr(tok, "encode_batch_fast"):  # tokenizers >= 0.21: skips offset tracking
        fast = best_time(lambda: tok.encode_batch_fast(docs, add_special_tokens=False), repeat)
        out["hf_encode_fast"] = nbytes / fast / 1e6
    return out


def run_lmforge(binary: str, corpus: Path, threads: int) -> tuple[dict | None, str]:
    """Returns (parsed JSON, "") or (None, reason)."""
    cmd = [binary, "tokenizer", "bench", "--corpus", str(corpus), "--threads", str(threads), "--json"]
    if not Path(binary).exists():
        return None, f"lmforge binary not found at {binary} (build it: cargo build --release)"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except OSError as e:
        return None, f"could not run {' '.join(cmd)}: {e}"
    except subprocess.TimeoutExpired:
        return None, f"{' '.join(cmd)} timed out"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return None, f"`{' '.join(cmd)}` exited {proc.returncode}: " + " | ".join(tail)
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "encode_mb_per_s" in obj:
            return obj, ""
    try:  # pretty-printed over several lines
        return json.loads(proc.stdout), ""
    except json.JSONDecodeError:
        return None, f"`{' '.join(cmd)}` printed no bench JSON object: {proc.stdout[:200]!r}"


def fmt(x, unit="") -> str:
    return "—" if x is None else f"{x:.2f}{unit}"


def ratio(a, b) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


SCALE_SHARDS = 40


def build_scale_inputs(corpus: Path, out: Path) -> dict[str, list[Path]]:
    """The ~130 MB file, the ~530 MB file and its 40 shards (reused when present)."""
    out.mkdir(parents=True, exist_ok=True)
    base = b"".join(p.read_bytes() for p in sorted(corpus.rglob("*.txt")))
    inputs = {}
    for name, target in (("one_130MB", 130_000_000), ("one_530MB", 530_000_000)):
        path = out / f"{name}.txt"
        if not path.exists() or path.stat().st_size < target:
            with open(path, "wb") as f:
                written = 0
                while written < target:
                    f.write(base)
                    written += len(base)
        inputs[name] = [path]
    shard_dir = out / "shards"
    shards = [shard_dir / f"wiki_books_test_{i:02d}.txt" for i in range(SCALE_SHARDS)]
    if not all(p.exists() for p in shards):
        shard_dir.mkdir(exist_ok=True)
        data = inputs["one_530MB"][0].read_bytes()
        step = len(data) // SCALE_SHARDS
        start = 0
        for i, p in enumerate(shards):
            # Cut after a newline so every shard holds whole lines.
            end = len(data) if i == SCALE_SHARDS - 1 else data.index(b"\n", start + step) + 1
            p.write_bytes(data[start:end])
            start = end
        del data
    inputs["shards_530MB"] = shards
    return inputs


def timed(cmd: list[str], env=None) -> tuple[float | None, float | None, str]:
    """(seconds, peak RSS in MB, error) of one process under /usr/bin/time."""
    full = ["/usr/bin/time", "-f", "TIME %e %M"] + cmd
    proc = subprocess.run(full, capture_output=True, text=True, env=env)
    stats = [l for l in proc.stderr.splitlines() if l.startswith("TIME ")]
    if proc.returncode != 0 or not stats:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return None, None, f"`{' '.join(cmd[:4])} ...` failed: {tail}"
    secs, kb = stats[-1].split()[1:3]
    return float(secs), int(kb) / 1024, ""


HF_TRAIN = """
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=int(sys.argv[1]), min_frequency=2,
    special_tokens=["<pad>", "<unk>", "<bos>", "<eos>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)

def chunks(paths, size=1 << 20):
    # ~1 MB pieces cut at line ends: HF counts each sequence in its own map, so whole
    # lines as sequences are several times slower, and whole files use ~100x their size.
    for path in paths:
        with open(path, encoding="utf-8") as f:
            while True:
                piece = f.read(size)
                if not piece:
                    break
                piece += f.readline()
                yield piece

tok.train_from_iterator(chunks(sys.argv[2:]), trainer=trainer)
"""


def bench_scale(args) -> None:
    inputs = build_scale_inputs(args.corpus, args.scale_dir)
    work = args.scale_dir / "out"
    work.mkdir(exist_ok=True)
    env = dict(os.environ)
    print(f"inputs under {args.scale_dir}: " + ", ".join(
        f"{k} {sum(p.stat().st_size for p in v) / 1e6:.0f} MB in {len(v)} file(s)" for k, v in inputs.items()),
        flush=True)

    def cell(t, rss):
        return "—" if t is None else f"{t:.1f} s, {rss:.0f} MB"

    print("\n| BPE training, vocab 8192 | lmforge | HF tokenizers (Python) | time ratio lmforge/HF |")
    print("|---|---:|---:|---:|", flush=True)
    trained = work / "bpe8192.json"
    for name, files in inputs.items():
        out = work / f"bpe_{name}.json"
        ours = timed([args.lmforge, "tokenizer", "train", "-q", "--kind", "bpe", "--vocab-size",
                      str(VOCAB_SIZE), "--out", str(out)] + [str(p) for p in files], env)
        if name in args.hf_inputs:
            hf = timed([sys.executable, "-c", HF_TRAIN, str(VOCAB_SIZE)] + [str(p) for p in files], env)
        else:
            hf = (None, None, "")
        r = "—" if ours[0] is None or hf[0] is None else f"{ours[0] / hf[0]:.2f}×"
        print(f"| {name} | {cell(*ours[:2])} | {cell(*hf[:2])} | {r} |", flush=True)
        for note in (ours[2], hf[2]):
            if note:
                print(f"NOTE: {note}")
        if name == "one_530MB" and out.exists():
            out.replace(trained)

    word = work / "word8192.json"
    timed([args.lmforge, "tokenizer", "train", "-q", "--kind", "word", "--vocab-size", str(VOCAB_SIZE),
           "--out", str(word), str(inputs["one_530MB"][0])], env)
    kinds = [("char", "char"), ("word", str(word)), ("bpe", str(trained)), ("o200k_base", "tiktoken:o200k_base")]
    binaries = [("lmforge", args.lmforge)] + ([("baseline", args.baseline)] if args.baseline else [])
    print("\n| prepare | input | binary | time | peak RSS | MB/s |")
    print("|---|---|---|---:|---:|---:|", flush=True)
    for kind, spec in kinds:
        for name in ("one_530MB", "shards_530MB"):
            files = inputs[name]
            mb = sum(p.stat().st_size for p in files) / 1e6
            for label, binary in binaries:
                if label == "baseline" and name.startswith("one_"):
                    continue  # the old binary holds the whole file (and more) in memory
                out = work / f"prep_{kind}"
                t, rss, err = timed([binary, "prepare", "-q", "-t", spec, "--out", str(out)]
                                    + [str(p) for p in files], env)
                shutil.rmtree(out, ignore_errors=True)
                if t is None:
                    print(f"| {kind} | {name} | {label} | failed | | |  NOTE: {err}", flush=True)
                else:
                    print(f"| {kind} | {name} | {label} | {t:.1f} s | {rss:.0f} MB | {mb / t:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description="Python tokenizers vs lmforge, same run")
    ap.add_argument("--lmforge", default="target/release/lmforge", help="lmforge binary")
    ap.add_argument("--corpus", type=Path, default=Path("corpus/shakespeare"), help="corpus folder")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads (default: all cores)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for encode timings")
    ap.add_argument("--tiktoken-assets", help="folder with o200k_base.tiktoken (default: tiktoken-rs crate)")
    ap.add_argument("--scale", action="store_true", help="corpus-scale benchmark (see the module docs)")
    ap.add_argument("--scale-dir", type=Path, default=Path("target/bench_corpus"), help="where --scale builds its inputs")
    ap.add_argument("--hf-inputs", nargs="*", default=["one_130MB", "one_530MB", "shards_530MB"],
                    help="with --scale: the inputs HF trains on (it is slow on a loaded machine)")
    ap.add_argument("--baseline", help="with --scale: an older lmforge binary to compare prepare on the shards")
    args = ap.parse_args()
    if args.scale:
        bench_scale(args)
        return

    # HF tokenizers sizes its rayon pool from these, read when the pool first starts.
    os.environ["RAYON_NUM_THREADS"] = os.environ["RAYON_RS_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"

    docs = load_corpus(args.corpus)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    import tiktoken
    import tokenizers

    print(
        f"corpus {args.corpus}: {len(docs)} files, {nbytes} bytes; threads {args.threads}; "
        f"tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}, Python {sys.version.split()[0]}",
        flush=True,
    )
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"NOTE: 1-minute load average is {load:.2f} before starting: other work shares the CPU, "
              "so absolute numbers are low (the lmforge run below shares the same conditions).", flush=True)
    py = bench_tiktoken(docs, nbytes, args.threads, args.repeat, args.tiktoken_assets)
    py.update(bench_hf(docs, nbytes, args.repeat))
    ours, why = run_lmforge(args.lmforge, args.corpus, args.threads)

    enc = (ours or {}).get("encode_mb_per_s", {})
    o200k = enc.get("tiktoken:o200k_base")
    bpe_train = (ours or {}).get("bpe_train_s")
    rows = [
        ("o200k_base encode MB/s vs tiktoken 1 thread", o200k, py["o200k_single"], ratio(o200k, py["o200k_single"])),
        (f"o200k_base encode MB/s vs tiktoken batch(docs, {args.threads} thr)", o200k, py["o200k_batch_docs"], ratio(o200k, py["o200k_batch_docs"])),
        (f"o200k_base encode MB/s vs tiktoken batch(lines, {args.threads} thr)", o200k, py["o200k_batch_lines"], ratio(o200k, py["o200k_batch_lines"])),
        (f"byte-level BPE train s, vocab {VOCAB_SIZE} (HF tokenizers)", bpe_train, py["hf_train_s"], ratio(py["hf_train_s"], bpe_train)),
        ("byte-level BPE encode MB/s (HF encode_batch docs)", enc.get("bpe"), py["hf_encode"], ratio(enc.get("bpe"), py["hf_encode"])),
    ]
    if "hf_encode_fast" in py:
        fast = py["hf_encode_fast"]
        rows.append(("byte-level BPE encode MB/s (HF encode_batch_fast docs)", enc.get("bpe"), fast, ratio(enc.get("bpe"), fast)))
    rows += [(f"{kind} encode MB/s (lmforge only)", enc.get(kind), None, "—") for kind in ("char", "word", "sentencepiece")]

    print()
    print("| measure | lmforge | Python | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours_v, theirs_v, r in rows:
        print(f"| {name} | {fmt(ours_v)} | {fmt(theirs_v)} | {r} |")
    print()
    print("ratio: encode = lmforge / Python (higher is better for lmforge); "
          "training = Python time / lmforge time (higher is better for lmforge).")
    print(f"HF vocab after training: {py['hf_vocab']}; o200k tokens in corpus: {py['o200k_tokens']}")
    if ours is None:
        print(f"\nNOTE: no lmforge numbers: {why}")
    else:
        if ours.get("corpus_bytes") != nbytes:
            print(f"\nNOTE: lmforge measured {ours.get('corpus_bytes')} corpus bytes, Python {nbytes}: "
                  "the two sides did not read the same text.")
        if ours.get("threads") != args.threads:
            print(f"NOTE: lmforge reports {ours.get('threads')} threads, asked for {args.threads}.")


if __name__ == "__main__":
    main()
