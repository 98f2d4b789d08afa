#!/usr/bin/env bash
# Fetches uPlot from npm into crates/dashboard/static/ (the dashboard embeds these files).
# Usage: tools/vendor_uplot.sh [VERSION]   (default: the vendored 1.6.32)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-1.6.32}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
static=crates/dashboard/static
cp "$tmp/package/dist/uPlot.iife.min.js" "$static/uplot.iife.min.js"
cp "$tmp/package/dist/uPlot.min.css" "$static/uplot.min.css"
cp "$tmp/package/LICENSE" "$static/LICENSE-uPlot"
echo "uPlot $version vendored into $static"
