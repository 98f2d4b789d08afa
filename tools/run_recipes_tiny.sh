#!/bin/bash
# Tiny runs of the four workflow presets on the bundled corpus (sizes overridden; every
# behaviour of the preset kept). Prints: preset | wall time | the last metrics record.
# Usage: tools/run_recipes_tiny.sh [path/to/lmforge]   (default target/release/lmforge)
B=${1:-target/release/lmforge}
C=corpus/shakespeare
OUT=${OUT:-/tmp/lmforge-recipes}
TINY="--n-layer 2 --n-embd 64 --n-head 4 --block-size 32 --batch-size 8 --eval-iters 4 --sample-tokens 0 --dtype fp32 --quiet --overwrite"
run() {
  name=$1; shift
  start=$(date +%s.%N)
  if ! "$B" train --preset "$name" $TINY --out "$OUT/$name" "$@" >/dev/null 2>"$OUT-$name.err"; then
    echo "$name FAILED"; tail -3 "$OUT-$name.err"; return
  fi
  end=$(date +%s.%N)
  echo "$name | $(echo "$end - $start" | bc) s | $(tail -1 "$OUT/$name/metrics.jsonl")"
}
mkdir -p "$OUT"
run lm-arabic --data $C/macbeth_gut.txt $C/hamlet_gut.txt $C/othello_gut.txt --max-iters 20 --eval-interval 10
run llm-from-scratch --data $C/macbeth_gut.txt $C/hamlet_gut.txt $C/othello_gut.txt --tokenizer-vocab-size 4000 --max-epochs 0.02
run gpt-transformers --data $C/macbeth_gut.txt --tokenizer-vocab-size 512 --max-epochs 0.002 --eval-interval 50
run janelm --data $C/macbeth_gut.txt $C/hamlet_gut.txt --max-iters 100 --eval-interval 50 --eval-iters 20
