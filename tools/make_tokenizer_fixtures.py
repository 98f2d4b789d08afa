#!/usr/bin/env python3
"""Regenerate the tokenizer test fixtures in crates/tokenizer/tests/fixtures/.

Writes:
  tiktoken_ids.json   ids from Python tiktoken (`encode_ordinary`) for the OpenAI
                      encodings gpt2, r50k_base, p50k_base, cl100k_base, o200k_base
  sp_unigram.model    SentencePiece unigram model (nmt_nfkc normalization)
  sp_bpe.model        SentencePiece BPE model (byte_fallback, identity normalization)
  sp_expected.json    ids / pieces / decoded text from the Python sentencepiece library

Run (from the repository root):
    bash tools/setup_venv.sh
    tools/.venv/bin/python tools/make_tokenizer_fixtures.py [--out DIR] [--tiktoken-assets DIR]

Everything is deterministic: running the script twice gives byte-identical files.

Offline tiktoken: the tiktoken library normally downloads its BPE rank files from
openaipublic.blob.core.windows.net, which is unreachable here.  The Rust crate
tiktoken-rs (a dependency of this workspace, so `cargo fetch` puts it in the cargo
registry) ships the same files in its `assets/` folder.  `offline_encoding()` below
builds each encoding through the installed package's own constructor
(tiktoken_ext.openai_public), so pat_str and special tokens are exactly upstream's,
with tiktoken's file reader pointed at those local assets; tiktoken's own sha256 check
against the upstream hashes still runs (a private, throw-away cache dir keeps it on).
tiktoken-rs' encoder.json is pretty-printed; it is re-serialised with
`json.dumps(json.loads(...))`, which restores OpenAI's original bytes (the sha256 check
proves it).  Use --tiktoken-assets DIR (or $LMFORGE_TIKTOKEN_ASSETS) to point at
another folder holding r50k_base.tiktoken, p50k_base.tiktoken, cl100k_base.tiktoken,
o200k_base.tiktoken, vocab.bpe and encoder.json.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "crates" / "tokenizer" / "tests" / "fixtures"
CORPUS = REPO / "corpus" / "shakespeare"

ENCODINGS = ["gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base"]

# Known ids from the real OpenAI encodings: a cheap identity check on top of sha256.
KNOWN_IDS = {
    "gpt2": [31373, 995],
    "r50k_base": [31373, 995],
    "p50k_base": [31373, 995],
    "cl100k_base": [15339, 1917],
    "o200k_base": [24912, 2375],
}

# --------------------------------------------------------------------------- tiktoken


def find_tiktoken_assets(explicit: str | None = None) -> Path:
    """Folder holding the OpenAI rank files (tiktoken-rs ships them in assets/)."""
    if explicit or os.environ.get("LMFORGE_TIKTOKEN_ASSETS"):
        return Path(explicit or os.environ["LMFORGE_TIKTOKEN_ASSETS"])
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = glob.glob(os.path.join(cargo_home, "registry", "src", "*", "tiktoken-rs-*", "assets"))
    found = [p for p in found if os.path.exists(os.path.join(p, "o200k_base.tiktoken"))]
    if not found:
        sys.exit(
            "no tiktoken rank files found: run `cargo fetch` (the workspace depends on "
            "tiktoken-rs, which ships them) or pass --tiktoken-assets DIR"
        )

    def version_key(p: str):
        v = re.search(r"tiktoken-rs-([0-9.]+)", p).group(1)
        return tuple(int(x) for x in v.split(".") if x)

    return Path(max(found, key=version_key))


def offline_encoding(name: str, assets: Path | None = None):
    """tiktoken.Encoding `name`, built from local rank files, hashes checked."""
    import tiktoken
    import tiktoken.load
    from tiktoken_ext import openai_public

    assets = assets or find_tiktoken_assets()
    real_read_file = tiktoken.load.read_file

    def local_read_file(blobpath: str) -> bytes:
        base = blobpath.rsplit("/", 1)[-1]
        data = (assets / base).read_bytes()
        if base == "encoder.json":
            # tiktoken-rs re-indented it; json.dumps' defaults give OpenAI's bytes back.
            data = json.dumps(json.loads(data)).encode()
        return data

    saved_env = os.environ.get("TIKTOKEN_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        # A non-empty, fresh cache dir makes read_file_cached verify expected_hash.
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
        tiktoken.load.read_file = local_read_file
        try:
            params = openai_public.ENCODING_CONSTRUCTORS[name]()
        finally:
            tiktoken.load.read_file = real_read_file
            if saved_env is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = saved_env
    enc = tiktoken.Encoding(**params)
    got = enc.encode_ordinary("hello world")
    if got != KNOWN_IDS[name]:
        raise SystemExit(f"{name}: 'hello world' -> {got}, expected {KNOWN_IDS[name]}")
    return enc


TIKTOKEN_TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog. It's 5 o'clock; we're done!",
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles...\n"
    "HAMLET. I'LL speak to it; THOU'RT a scholar--speak to it, Horatio!\n",
    "a  b   c\t\td \t \n\n\ne\r\nf    \n   \n\t\t\n      ",
    "12345 3.14159 and 1,000,000 or 2024-01-01T12:00:00Z, 0x1F 1e-9",
    "مرحبا بالعالم، هذه تجربة للترميز.",
    "اللغة العربية من أكثر اللغات انتشاراً في العالم، ويتحدث بها أكثر من ثلاثمائة مليون "
    "شخص. تُكتب من اليمين إلى اليسار، وتحتوي على ثمانية وعشرين حرفاً.\n"
    "قال الشاعر: «العلمُ نورٌ والجهلُ ظلامٌ» ١٢٣٤٥ 12345",
    "Hi 👋🏽! Family: 👨‍👩‍👧‍👦, rainbow flag 🏳️‍🌈, flags 🇸🇦🇯🇵🇺🇸, ❤️‍🔥 and 🧑🏿‍💻.",
    "你好，世界！今天天气很好。日本語のテキストです。한국어 텍스트입니다.",
    "Mixed: Hello мир, γειά σου κόσμε, नमस्ते दुनिया, مرحبا, שלום, こんにちは, 你好 + café naïve Ω≈ç√",
    'def f(x: int) -> int:\n    """Square."""\n    return x ** 2  # comment\n\n'
    'for i in range(10):\n\tprint(f"{i}: {f(i)}")\n'
    "fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!(\"{:?}\", v); }\n",
    "",
]


def tiktoken_fixture(assets: Path) -> dict:
    import tiktoken

    out = {
        "tiktoken_version": tiktoken.__version__,
        "rank_files_sha256": {},
        "eot_id": {},
        "encodings": {},
    }
    for name in ENCODINGS:
        enc = offline_encoding(name, assets)
        cases = []
        for text in TIKTOKEN_TEXTS:
            ids = enc.encode_ordinary(text)
            assert enc.decode(ids) == text, (name, text)
            cases.append({"text": text, "ids": ids})
        out["encodings"][name] = cases
        out["eot_id"][name] = enc.eot_token
        assert enc.encode_single_token("<|endoftext|>") == enc.eot_token
        files = ["vocab.bpe"] if name == "gpt2" else [f"{name}.tiktoken"]
        for f in files:
            out["rank_files_sha256"][f] = hashlib.sha256((assets / f).read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------------- sentencepiece

# Training input: the first 30000 bytes of each file (ASCII), split into lines.
SP_TRAIN_FILES = ["hamlet_gut.txt", "sonnets_gut.txt"]
SP_TRAIN_BYTES = 30000
SP_SPECIAL = {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
SP_COMMON = dict(
    pad_id=0,
    unk_id=1,
    bos_id=2,
    eos_id=3,
    num_threads=1,
    shuffle_input_sentence=False,
    input_sentence_size=0,
    minloglevel=2,
)
SP_MODELS = {
    # nmt_nfkc embeds a ~240 KB precompiled charsmap: this model is the big fixture.
    "sp_unigram.model": dict(model_type="unigram", vocab_size=400),
    # identity normalization (no charsmap, ~8 KB) and whitespace kept, like Llama's
    # models; 512 because the 256 <0xNN> byte pieces use most of a 400 vocab.
    "sp_bpe.model": dict(
        model_type="bpe",
        vocab_size=512,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
    ),
}

SP_TEXTS = [
    "To be, or not to be, that is the question:",
    "From fairest creatures we desire increase, That thereby beauty's rose might never die.",
    "Who's there?\nNay, answer me: stand, and unfold yourself.\n",
    "thy   sweet    self\ttoo  cruel",
    "  leading and trailing spaces  ",
    "مرحبا بالعالم",
    "Hello 👋 world 🇸🇦! ❤️",
    "ＨＡＭＬＥＴ ﬁne ① caf\u00e9 cafe\u0301 x\u00a0y 12345",
    "",
]


def sp_training_lines() -> list[str]:
    lines = []
    for name in SP_TRAIN_FILES:
        data = (CORPUS / name).read_bytes()[:SP_TRAIN_BYTES].decode("ascii")
        lines.extend(line for line in data.split("\n") if line.strip())
    return lines


def train_sp(options: dict) -> bytes:
    import sentencepiece as spm

    spm.set_random_generator_seed(42)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sp_training_lines()), model_writer=buf, **SP_COMMON, **options
    )
    return buf.getvalue()


def sp_fixture(model_bytes: dict[str, bytes]) -> dict:
    import sentencepiece as spm

    out = {
        "sentencepiece_version": spm.__version__,
        "training_input": {"files": SP_TRAIN_FILES, "first_bytes_each": SP_TRAIN_BYTES},
        "models": {},
    }
    for name, blob in model_bytes.items():
        sp = spm.SentencePieceProcessor(model_proto=blob)
        special = {k: getattr(sp, f"{k}_id")() for k in SP_SPECIAL}
        assert special == SP_SPECIAL, (name, special)
        cases = []
        for text in SP_TEXTS:
            ids = sp.encode(text, out_type=int)
            pieces = sp.encode(text, out_type=str)
            cases.append({"text": text, "ids": ids, "pieces": pieces, "decoded": sp.decode(ids)})
        out["models"][name] = {
            "vocab_size": sp.get_piece_size(),
            "train_options": SP_MODELS[name],
            "special": special,
            "cases": cases,
        }
    return out


# ------------------------------------------------------------------------------ output


def dump_json(obj, indent: int = 0) -> str:
    """Pretty JSON with lists of scalars kept on one line (small, diff-friendly)."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(inner + dump_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({len(data)} bytes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture folder")
    ap.add_argument("--tiktoken-assets", help="folder with the *.tiktoken / vocab.bpe / encoder.json files")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    assets = find_tiktoken_assets(args.tiktoken_assets)
    print(f"tiktoken rank files from {assets}")
    write(args.out / "tiktoken_ids.json", (dump_json(tiktoken_fixture(assets)) + "\n").encode())

    models = {name: train_sp(opts) for name, opts in SP_MODELS.items()}
    for name, blob in models.items():
        write(args.out / name, blob)
    write(args.out / "sp_expected.json", (dump_json(sp_fixture(models)) + "\n").encode())


if __name__ == "__main__":
    main()
