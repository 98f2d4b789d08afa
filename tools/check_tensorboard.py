#!/usr/bin/env python3
"""Reads a run's TensorBoard event files (RUN_DIR/tb) with TensorBoard's own readers and
checks them against the run's metrics.jsonl and samples.jsonl.

    tools/.venv/bin/python tools/check_tensorboard.py RUN_DIR

Two readers: the raw event-file loader (every record, CRCs checked) and the
EventAccumulator that `tensorboard --logdir` uses (what the Scalars and Text tabs show).
Checks: every scalar series equals metrics.jsonl (steps and float32 values), no step
appears twice, the samples and the config are there as text. Exit 1 on any mismatch.
"""

import glob
import json
import os
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

SERIES = {
    "loss/train": "train_loss",
    "loss/val": "val_loss",
    "lr": "lr",
    "grad_norm": "grad_norm",
    "tokens_per_s": "tokens_per_s",
}


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def main(run_dir):
    files = sorted(glob.glob(os.path.join(run_dir, "tb", "events.out.tfevents.*")))
    if not files:
        sys.exit(f"error: {run_dir}/tb holds no event files")
    records = jsonl(os.path.join(run_dir, "metrics.jsonl"))
    samples = jsonl(os.path.join(run_dir, "samples.jsonl"))
    failures = []

    raw = [e for f in files for e in EventFileLoader(f).Load()]
    print(f"{len(files)} event file(s), {len(raw)} events; first: file_version={raw[0].file_version!r}")

    acc = event_accumulator.EventAccumulator(os.path.join(run_dir, "tb"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    print("scalar tags:", sorted(tags["scalars"]), " tensor (text) tags:", sorted(tags["tensors"]))
    for tag, field in SERIES.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        want = [(r["step"], float(np.float32(r[field]))) for r in records]
        steps = [s for s, _ in got]
        ok = got == want and len(steps) == len(set(steps))
        print(f"{tag:13s} {len(got)} points, steps {steps[:3]}...{steps[-2:]}, last {got[-1][1]:.6g}: {'ok' if ok else 'MISMATCH'}")
        if not ok:
            failures.append(f"{tag}: tensorboard {got} vs metrics.jsonl {want}")

    texts = {t: [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(t)] for t in tags["tensors"]}
    got_samples = texts.get("sample/text_summary", texts.get("sample", []))
    want_samples = [(s["step"], s["text"]) for s in samples]
    print(f"sample texts: {len(got_samples)} (samples.jsonl {len(want_samples)}): {'ok' if got_samples == want_samples else 'MISMATCH'}")
    if got_samples:
        print(f"  latest, step {got_samples[-1][0]}: {got_samples[-1][1][:70]!r}...")
    if got_samples != want_samples:
        failures.append("sample texts differ from samples.jsonl")
    configs = texts.get("config/text_summary", texts.get("config", []))
    print(f"config texts at steps {[s for s, _ in configs]}; first has learning_rate: {bool(configs) and 'learning_rate' in configs[0][1]}")
    if not configs or "learning_rate" not in configs[0][1]:
        failures.append("no config text")

    for f in failures:
        print("FAIL:", f)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
