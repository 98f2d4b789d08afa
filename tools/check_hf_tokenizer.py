#!/usr/bin/env python3
"""Check that lmforge's tokenizer.json behaves the same in Hugging Face `tokenizers`.

Loads TOKENIZER_JSON (written by lmforge's `bpe` tokenizer kind) with
`tokenizers.Tokenizer.from_file`, encodes TEXT_FILE with it, and compares the ids with
`<lmforge> tokenizer encode --tokenizer TOKENIZER_JSON --file TEXT_FILE --format json`
(which prints a JSON array of ids).  It then decodes lmforge's ids with the HF
tokenizer and compares the result with the text (or, where HF's own round trip does
not give the text back, e.g. a ByteLevel prefix space, with that round trip).  Prints
OK, or the first mismatch (token index, ids and tokens around it, where in the text).

Exit status: 0 all OK, 1 a mismatch, 2 lmforge could not be run or printed no id array.

Run (from the repository root):
    bash tools/setup_venv.sh
    tools/.venv/bin/python tools/check_hf_tokenizer.py TOKENIZER_JSON TEXT_FILE \
        [--lmforge target/release/lmforge] [--add-special-tokens]

The text is read as lmforge reads it: strict UTF-8, a leading BOM dropped.  Special
tokens (the post-processor's template) are left out unless --add-special-tokens.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def read_text(path: Path) -> str:
    text = path.read_bytes().decode("utf-8")
    return text[1:] if text.startswith("\ufeff") else text


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(2)


def lmforge_ids(binary: str, tokenizer: Path, text_file: Path) -> list[int]:
    cmd = [binary, "tokenizer", "encode", "--tokenizer", str(tokenizer), "--file", str(text_file), "--format", "json"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        fail(f"could not run {' '.join(cmd)}: {e}")
    if proc.returncode != 0:
        fail(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr.strip()}")
    try:
        ids = json.loads(proc.stdout)
    except json.JSONDecodeError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        fail(f"`{' '.join(cmd)}` printed no JSON array of ids: {proc.stdout[:200]!r}")
    return ids


def first_diff(a, b) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def context(s: str, i: int, width: int = 30) -> str:
    return f"{s[max(0, i - width):i]!r} <HERE> {s[i:i + width]!r}"


def show_ids(tok, ids, lo, hi) -> str:
    return " ".join(f"{i}:{tok.id_to_token(i)!r}" for i in ids[lo:hi])


def main() -> int:
    ap = argparse.ArgumentParser(description="compare lmforge's BPE tokenizer.json in HF tokenizers with lmforge")
    ap.add_argument("tokenizer_json", type=Path)
    ap.add_argument("text_file", type=Path)
    ap.add_argument("--lmforge", default="target/release/lmforge", help="lmforge binary")
    ap.add_argument("--add-special-tokens", action="store_true", help="let HF apply the post-processor")
    args = ap.parse_args()

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(args.tokenizer_json))
    text = read_text(args.text_file)
    enc = tok.encode(text, add_special_tokens=args.add_special_tokens)
    theirs = enc.ids
    ours = lmforge_ids(args.lmforge, args.tokenizer_json, args.text_file)
    ok = True

    i = first_diff(ours, theirs)
    if i is None:
        print(f"encode OK: {len(ours)} ids identical ({len(text)} chars)")
    else:
        ok = False
        print(f"encode MISMATCH at token {i} (lmforge {len(ours)} ids, HF {len(theirs)} ids)")
        if i < len(enc.offsets):
            start = enc.offsets[i][0]
            print(f"  text at char {start}: {context(text, start)}")
        print(f"  lmforge: {show_ids(tok, ours, max(0, i - 3), i + 4)}")
        print(f"  HF:      {show_ids(tok, theirs, max(0, i - 3), i + 4)}")

    # The reference is the text, unless HF's own round trip does not give it back
    # (ByteLevel(add_prefix_space=True) decodes to " " + text): then that round trip.
    decoded = tok.decode(ours, skip_special_tokens=False)
    reference = tok.decode(theirs, skip_special_tokens=False)
    what = "HF's own round trip"
    if reference == text:
        what = "the text"
    else:
        j = first_diff(reference, text)
        print(f"note: HF's own round trip differs from the text at char {j}: {context(reference, j, 10)} vs {context(text, j, 10)}")
    if decoded == reference:
        print(f"decode OK: HF decode of lmforge's ids gives {what} back")
    else:
        ok = False
        j = first_diff(decoded, reference)
        print(f"decode MISMATCH at char {j} against {what} ({len(decoded)} chars decoded vs {len(reference)})")
        print(f"  decoded: {context(decoded, j)}")
        label = "text:" if what == "the text" else "HF:"
        print(f"  {label:9}{context(reference, j)}")

    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
