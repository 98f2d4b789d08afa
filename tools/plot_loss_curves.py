#!/usr/bin/env python3
"""Draw the loss curves of several lmforge runs into one SVG (no plotting library needed).

    python3 tools/plot_loss_curves.py OUT.svg LABEL=RUN_DIR/metrics.jsonl [LABEL=...] [--title T]

Each run contributes its val loss (solid) and train loss (dashed) against step, one colour per
run. Used for docs/bf16-vs-fp32-bench-m.svg (the bf16 and fp32 500-step bench-m curves).
"""

from __future__ import annotations

import argparse
import json
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
W, H, LEFT, RIGHT, TOP, BOTTOM = 720, 420, 64, 20, 36, 48


def read_metrics(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: {path}: {e}")


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    span = hi - lo or 1.0
    raw = span / n
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    t = (lo // step + 1) * step
    ticks = []
    while t <= hi + 1e-12:
        ticks.append(round(t, 10))
        t += step
    return ticks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+", help="LABEL=path/to/metrics.jsonl")
    ap.add_argument("--title", default="loss")
    a = ap.parse_args()
    runs = []
    for spec in a.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            sys.exit(f"error: {spec!r}: expected LABEL=path/to/metrics.jsonl")
        runs.append((label, read_metrics(path)))
    pts = [(r["step"], r[k]) for _, recs in runs for r in recs for k in ("train_loss", "val_loss")]
    if not pts:
        sys.exit("error: no records in the given metrics files")
    x0, x1 = 0, max(s for s, _ in pts) or 1
    y0, y1 = min(v for _, v in pts), max(v for _, v in pts)
    pad = 0.05 * (y1 - y0 or 1)
    y0, y1 = y0 - pad, y1 + pad
    px = lambda s: LEFT + (s - x0) / (x1 - x0) * (W - LEFT - RIGHT)  # noqa: E731
    py = lambda v: TOP + (y1 - v) / (y1 - y0) * (H - TOP - BOTTOM)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
           f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{a.title}</text>']
    for t in nice_ticks(y0, y1):
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#ddd"/>'
                   f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(x0, x1):
        out.append(f'<text x="{px(t):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">step</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" '
               f'fill="none" stroke="#444"/>')
    for i, (label, recs) in enumerate(runs):
        c = COLOURS[i % len(COLOURS)]
        for key, dash in (("val_loss", ""), ("train_loss", ' stroke-dasharray="5,4"')):
            path = " ".join(f"{px(r['step']):.1f},{py(r[key]):.1f}" for r in recs)
            out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.6"{dash}/>')
        last = recs[-1] if recs else {"val_loss": float("nan")}
        out.append(f'<text x="{W - RIGHT - 8}" y="{TOP + 18 + 16 * i}" text-anchor="end" fill="{c}">'
                   f'{label}: val (solid) {last["val_loss"]:.4f} at the end, train dashed</text>')
    out.append("</svg>")
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
