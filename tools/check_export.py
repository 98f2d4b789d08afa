#!/usr/bin/env python3
"""Check `lmforge export` against the real consumers (not CI: needs the tools venv).

For every tokenizer kind (char, word, bpe, unigram, tiktoken gpt2 / p50k / cl100k / o200k)
and the model variants (learned / sinusoidal / RoPE positions, tied / untied, bias / no
bias, exact / tanh GELU, ReLU, no q/k/v bias), this script

1. trains a tiny model with `lmforge train` (a few steps on the bundled corpus),
2. exports it with `lmforge export --format hf`, loads the folder with
   `AutoModelForCausalLM` and `AutoTokenizer` (no custom code), and compares
   - token ids: `AutoTokenizer` vs `lmforge tokenizer encode` on a few KB of unseen text,
   - logits: `transformers` vs lmforge's own forward pass (the `dump_logits` example) on
     the first block of those ids (max |difference|),
3. for byte-level BPE kinds, exports `--format gguf` and reads it back with the `gguf`
   package: architecture and hyper-parameter keys, tensor names and shapes, and the token
   list equal to the exported vocabulary; where `transformers` can load the GGUF itself
   (`gguf_file=`: architecture gpt2, needs the `accelerate` package), its logits are
   compared with the Hugging Face export's.

Prints one line per case and a summary; exit status 1 if any check failed.

Run from the repository root, after `cargo build` and
`cargo build -p lmforge-interop --example dump_logits`:
    tools/.venv/bin/python tools/check_export.py [--lmforge target/debug/lmforge] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
TRAIN_TEXT = ROOT / "corpus/shakespeare/comedy_of_errors_gut.txt"
PROBE_TEXT = ROOT / "corpus/shakespeare/hamlet_gut.txt"
EXTRA = "\nI'LL don't we've 12345 3.14159\t\ttabs   three  spaces\r\nCRLF caf\u00e9 na\u00efve \u65e5\u672c\u8a9e x_y__z\n\n\n end  "

# (name, tokenizer, extra train flags)
CASES = [
    ("char-learned", "char", []),
    ("word-sinusoidal-untied", "word", ["--pos-encoding", "sinusoidal", "--tie-embeddings", "false"]),
    ("bpe-learned-nobias-tanh", "bpe", ["--bias", "false", "--activation", "gelu_tanh"]),
    ("bpe-rope", "bpe", ["--pos-encoding", "rope"]),
    ("unigram-rope-untied", "unigram", ["--pos-encoding", "rope", "--tie-embeddings", "false"]),
    ("tiktoken-gpt2", "tiktoken:gpt2", ["--activation", "gelu_tanh"]),
    ("tiktoken-p50k", "tiktoken:p50k_base", []),
    ("tiktoken-cl100k-rope", "tiktoken:cl100k_base", ["--pos-encoding", "rope"]),
    ("tiktoken-o200k", "tiktoken:o200k_base", ["--mlp-ratio", "2"]),
    # issue 14: ReLU and a missing q/k/v bias export exactly (not byte-level: GGUF refuses ReLU)
    ("char-relu-noqkvbias", "char", ["--activation", "relu", "--qkv-bias", "false"]),
    ("unigram-rope-relu-noqkvbias", "unigram", ["--pos-encoding", "rope", "--activation", "relu",
                                                "--qkv-bias", "false"]),
]
BYTE_LEVEL = ("bpe", "tiktoken:")

failures: list[str] = []


def run(cmd: list[str]) -> str:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"`{' '.join(map(str, cmd))}` exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def check(ok: bool, what: str) -> bool:
    if not ok:
        failures.append(what)
    return ok


def probe_text() -> str:
    text = PROBE_TEXT.read_text(encoding="utf-8")
    return text[30_000:34_000] + EXTRA


def compare_hf(args, name: str, ckpt: Path, out: Path, text_file: Path, text: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run([args.lmforge, "export", "--checkpoint", ckpt, "--format", "hf", "--out", out])
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ours = json.loads(run([args.lmforge, "tokenizer", "encode", "--tokenizer", out / "tokenizer.json",
                           "--file", text_file, "--format", "json"]))
    # The export's tokenizer.json is a new file: encode with the checkpoint's own too.
    ours_ckpt = json.loads(run([args.lmforge, "tokenizer", "encode", "--tokenizer", ckpt_tokenizer(ckpt),
                                "--file", text_file, "--format", "json"]))
    theirs = tok(text, add_special_tokens=False)["input_ids"]
    ids_ok = check(theirs == ours_ckpt, f"{name}: token ids differ")
    first = next((i for i, (a, b) in enumerate(zip(theirs, ours_ckpt)) if a != b), None)
    block = model.config.to_dict().get("n_positions") or model.config.max_position_embeddings
    ids = ours_ckpt[:block]
    ids_path = out.parent / f"{name}-ids.json"
    logits_path = out.parent / f"{name}-logits.json"
    ids_path.write_text(json.dumps(ids))
    run([args.dump_logits, ckpt, ids_path, logits_path])
    ref = np.array(json.loads(logits_path.read_text()), dtype=np.float32)
    with torch.no_grad():
        got = model(torch.tensor([ids])).logits[0].float().numpy()
    diff = float(np.abs(got - ref).max())
    logits_ok = check(got.shape == ref.shape and diff < 1e-4, f"{name}: logits differ by {diff}")
    print(f"{name:28s} hf   {type(model).__name__:20s} ids {len(theirs)} {'equal' if ids_ok else f'DIFFER at {first}'}"
          f" (tokenizer.json vs checkpoint ids {'equal' if ours == ours_ckpt else 'DIFFER'});"
          f" logits [{len(ids)}, {ref.shape[1]}] max|diff| {diff:.2e} {'ok' if logits_ok else 'FAIL'}")


def ckpt_tokenizer(ckpt: Path) -> Path:
    best = ckpt / "checkpoints" / "best"
    return best / "tokenizer.json"


def compare_gguf(args, name: str, ckpt: Path, out_dir: Path, hf_dir: Path, text: str) -> None:
    import gguf

    out = out_dir / f"{name}.gguf"
    run([args.lmforge, "export", "--checkpoint", ckpt, "--format", "gguf", "--out", out])
    r = gguf.GGUFReader(out)
    fields = {k: f for k, f in r.fields.items()}

    def val(key):
        f = fields[key]
        return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]].tolist()

    arch = val("general.architecture")
    cfg = json.loads((hf_dir / "config.json").read_text())
    want = {
        "context_length": cfg.get("n_positions") or cfg.get("max_position_embeddings"),
        "embedding_length": cfg.get("n_embd") or cfg.get("hidden_size"),
        "feed_forward_length": cfg.get("n_inner") or cfg.get("intermediate_size"),
        "block_count": cfg.get("n_layer") or cfg.get("num_hidden_layers"),
        "attention.head_count": cfg.get("n_head") or cfg.get("num_attention_heads"),
    }
    keys_ok = all(check(val(f"{arch}.{k}") == v, f"{name}: gguf {arch}.{k} = {val(f'{arch}.{k}')} != {v}")
                  for k, v in want.items())
    keys_ok &= check(abs(val(f"{arch}.attention.layer_norm_epsilon") - 1e-5) < 1e-9, f"{name}: gguf eps")
    hf_tok = json.loads((hf_dir / "tokenizer.json").read_text())
    vocab = {i: t for t, i in hf_tok["model"]["vocab"].items()}
    for a in hf_tok.get("added_tokens", []):
        vocab[a["id"]] = a["content"]
    n = cfg["vocab_size"]
    expected = [vocab.get(i, f"[PAD{i}]") for i in range(n)]
    tokens = val("tokenizer.ggml.tokens")
    tokens_ok = check(tokens == expected, f"{name}: gguf token list differs from the vocabulary")
    shapes = {t.name: [int(d) for d in t.shape] for t in r.tensors}
    c = want["embedding_length"]
    need = {"token_embd.weight": [c, n], "output_norm.weight": [c],
            "blk.0.attn_qkv.weight": [c, 3 * c], "blk.0.ffn_up.weight": [c, want["feed_forward_length"]]}
    if arch == "gpt2":
        need["position_embd.weight"] = [c, want["context_length"]]
    else:
        need["output.weight"] = [c, n]
    shapes_ok = all(check(shapes.get(k) == v, f"{name}: gguf tensor {k} shape {shapes.get(k)} != {v}")
                    for k, v in need.items())
    extra = ""
    try:
        from transformers import AutoModelForCausalLM

        # transformers maps gpt2.context_length to n_ctx only; n_positions sizes wpe.
        extra_cfg = {"n_positions": want["context_length"]} if arch == "gpt2" else {}
        m = AutoModelForCausalLM.from_pretrained(out.parent, gguf_file=out.name, **extra_cfg).eval()
        ref = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
        ids = torch.tensor([list(range(min(n, 16)))])
        with torch.no_grad():
            d = float((m(ids).logits - ref(ids).logits).abs().max())
        extra = f"; transformers(gguf) vs hf logits max|diff| {d:.2e}"
        check(d < 1e-4, f"{name}: transformers-loaded gguf logits differ by {d}")
    except Exception as e:  # transformers' GGUF loader covers few architectures
        extra = f"; transformers cannot load this gguf ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
    print(f"{name:28s} gguf {arch:8s} keys {'ok' if keys_ok else 'FAIL'}, {len(r.tensors)} tensors"
          f" {'ok' if shapes_ok else 'FAIL'}, {len(tokens)} tokens {'= vocabulary' if tokens_ok else 'DIFFER'}"
          f", pre {val('tokenizer.ggml.pre')}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmforge", default=str(ROOT / "target/debug/lmforge"))
    ap.add_argument("--dump-logits", default=str(ROOT / "target/debug/examples/dump_logits"))
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    ap.add_argument("--only", help="run only cases whose name contains this")
    ap.add_argument("--skip", help="skip cases whose name contains this (o200k takes minutes)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="lmforge-export-"))
    work.mkdir(parents=True, exist_ok=True)
    text = probe_text()
    text_file = work / "probe.txt"
    text_file.write_text(text, encoding="utf-8")
    for name, kind, flags in CASES:
        if (args.only and args.only not in name) or (args.skip and args.skip in name):
            continue
        ckpt = work / name
        if ckpt.exists():
            shutil.rmtree(ckpt)
        vocab = ["--tokenizer-vocab-size", "400"] if kind in ("word", "bpe", "unigram") else []
        try:
            run([args.lmforge, "train", "--preset", "tiny", "--block-size", "32", "--max-iters", "20",
                 "--eval-interval", "10", "--tokenizer", kind, *vocab, "--data", TRAIN_TEXT,
                 "--out", ckpt, "--quiet", *flags])
            hf_dir = work / f"{name}-hf"
            shutil.rmtree(hf_dir, ignore_errors=True)
            compare_hf(args, name, ckpt, hf_dir, text_file, text)
            if kind.startswith(BYTE_LEVEL):
                compare_gguf(args, name, ckpt, work, hf_dir, text)
        except Exception as e:
            check(False, f"{name}: {type(e).__name__}: {e}")
            print(f"{name:28s} ERROR {type(e).__name__}: {e}")
    print(f"\n{len(failures)} failure(s)" + "".join(f"\n  {f}" for f in failures))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
