#!/usr/bin/env python3
"""Writes crates/generate/tests/fixtures/bleu.json: sacreBLEU's own figures (default
BLEU(): 13a tokenizer, exp smoothing) for lmforge's BLEU port to match.

Run: tools/.venv/bin/python tools/make_bleu_fixture.py   (needs sacrebleu, see requirements.txt)

Cases: 13a tokenization of tricky strings; corpus scores of perturbed lines of the bundled
corpus (word drops, swaps, substitutions: partial n-gram matches) and edge cases (empty and
short hypotheses for the brevity penalty, no 3/4-gram matches for the smoothing, numbers,
entities, punctuation, non-ASCII text, odd whitespace).
"""
import json
import random
from pathlib import Path

import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/generate/tests/fixtures/bleu.json"

TRICKY = [
    "Hello, world!",
    "It costs $1,000.50 -- or 3-4 euros (maybe).",
    "&quot;Quoted&quot; &amp; &lt;tagged&gt; text<skipped>",
    "line-\nbreak and\nnewline",
    "e.g. U.S.A., a.m.; x,y.z",
    "emails: a@b.com / paths: /usr/bin/env",
    "Ünïcödé — “quotes” ‘single’ «guillemets» 中文，标点。",
    "tabs\tand\u00a0nbsp\u2003em-space\x1cfs\x1fus end",
    "trailing spaces   \t ",
    "2-3 a-b 4.5.6 7,8,9 ,leading .dots",
    "{braces} [brackets] `ticks` ~tilde ^caret _under |pipe \\backslash",
    "",
    "   ",
]


def perturb(words, rng):
    w = list(words)
    for _ in range(rng.randint(0, 3)):
        op = rng.random()
        if not w:
            break
        i = rng.randrange(len(w))
        if op < 0.3:
            del w[i]
        elif op < 0.6 and len(w) > 1:
            j = rng.randrange(len(w))
            w[i], w[j] = w[j], w[i]
        else:
            w[i] = rng.choice(["the", "a", "and", "of", "thee", "lord", ",", "."])
    return " ".join(w)


def corpus_case(name, hyps, refs):
    b = BLEU().corpus_score(hyps, [refs])
    return {
        "name": name,
        "hyps": hyps,
        "refs": refs,
        "score": b.score,
        "correct": list(b.counts),
        "total": list(b.totals),
        "bp": b.bp,
        "sys_len": b.sys_len,
        "ref_len": b.ref_len,
        "line": str(b),
    }


def signature():
    b = BLEU()
    b.corpus_score(["a"], [["a"]])
    return str(b.get_signature())


def main():
    rng = random.Random(15)
    text = (ROOT / "corpus").rglob("*.txt")
    lines = []
    for p in sorted(text):
        lines += [l.strip() for l in p.read_text(encoding="utf-8").splitlines() if len(l.split()) >= 4]
    lines = lines[:4000]
    cases = []
    for k in range(6):
        refs = rng.sample(lines, 40)
        hyps = [perturb(r.split(), rng) for r in refs]
        cases.append(corpus_case(f"perturbed-{k}", hyps, refs))
    refs = rng.sample(lines, 20)
    cases.append(corpus_case("short-hyps-bp", [" ".join(r.split()[:5]) for r in refs], refs))
    cases.append(corpus_case("identical", refs, refs))
    cases.append(corpus_case("no-4gram", ["a b c", "d e f"], ["a b c", "x y z"]))
    cases.append(corpus_case("no-3gram", ["a b x c d", "e f"], ["a b y c d", "e f"]))
    cases.append(corpus_case("empty-hyp", ["", "the cat sat on the mat"], ["the cat sat on", "the cat sat on a mat"]))
    cases.append(corpus_case("all-empty-hyps", ["", ""], ["a b", "c d"]))
    cases.append(corpus_case("nothing-matches", ["x y z"], ["a b c"]))
    cases.append(corpus_case("tricky", TRICKY[:-2], list(reversed(TRICKY[:-2]))))
    cases.append(corpus_case("tricky-self", TRICKY[:-2], TRICKY[:-2]))
    cases.append(corpus_case("longer-than-ref", ["the the the cat cat sat on the mat mat"], ["the cat sat on the mat"]))
    tok = Tokenizer13a()
    fixture = {
        "sacrebleu_version": sacrebleu.__version__,
        "signature": signature(),
        "tokenize_13a": [{"line": s, "tokens": tok(s)} for s in TRICKY],
        "corpus": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(cases)} corpora, {len(TRICKY)} tokenizer lines)")


if __name__ == "__main__":
    main()
