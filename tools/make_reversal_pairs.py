#!/usr/bin/env python3
"""Write the word-reversal demo task as a TSV of `source<TAB>target` lines.

Source: a line of the bundled Shakespeare corpus, lower-cased, as its words (letters and
apostrophes); target: the same words in reverse order. Kept: lines of MIN..MAX words whose
words are all among the TOP most frequent words of the corpus (a closed vocabulary, so the
task is about attention across the sequence, not unknown words), each distinct line once,
shuffled with a fixed seed (the val split of `lmforge prepare` then holds lines never seen in
training).

    python3 tools/make_reversal_pairs.py --out data/reverse.tsv
    lmforge prepare --pairs-tsv data/reverse.tsv --tokenizer word --src-block-size 16 --tgt-block-size 17 --out data/reverse
    lmforge train --config examples/seq2seq_reverse.toml

Standard library only.
"""

import argparse
import collections
import glob
import os
import random
import re


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=os.path.join(here, "..", "corpus", "shakespeare"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--top", type=int, default=500, help="vocabulary: the TOP most frequent words")
    ap.add_argument("--min-words", type=int, default=3)
    ap.add_argument("--max-words", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1337)
    a = ap.parse_args()
    lines = []
    for f in sorted(glob.glob(os.path.join(a.corpus, "*.txt"))):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                words = re.findall(r"[a-z']+", line.lower())
                if words:
                    lines.append(tuple(words))
    counts = collections.Counter(w for line in lines for w in line)
    vocab = {w for w, _ in counts.most_common(a.top)}
    keep = sorted({l for l in lines if a.min_words <= len(l) <= a.max_words and set(l) <= vocab})
    random.Random(a.seed).shuffle(keep)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        for l in keep:
            fh.write(" ".join(l) + "\t" + " ".join(reversed(l)) + "\n")
    print(f"{a.out}: {len(keep)} pairs of {a.min_words}-{a.max_words} words over {len(vocab)} words")


if __name__ == "__main__":
    main()
