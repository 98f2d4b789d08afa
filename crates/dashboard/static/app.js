// lmforge dashboard: reads /api/events (server-sent events) and draws one uPlot chart per
// series with every run overlaid. All state lives in `runs`; render() redraws from it.
"use strict";

const SERIES = [
  ["train loss", "train_loss"],
  ["val loss", "val_loss"],
  ["learning rate", "lr"],
  ["grad norm", "grad_norm"],
  ["tokens/s", "tokens_per_s"],
];
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const KEY = new URLSearchParams(location.search).get("key");
const withKey = (path) => (KEY ? `${path}?key=${encodeURIComponent(KEY)}` : path);

const runs = new Map(); // name -> {config, records, samples, checkpoints, shown}
let charts = [];
let pending = false;
let fresh = false; // a (re)opened stream starts with everything: drop what is shown first

function run(name) {
  if (!runs.has(name)) {
    runs.set(name, { config: "", records: [], samples: [], checkpoints: [], shown: true });
  }
  return runs.get(name);
}

function apply(m) {
  switch (m.type) {
    case "run": run(m.run).config = m.config; break;
    case "metrics": {
      const r = run(m.run);
      if (m.reset) r.records = [];
      r.records.push(...m.records);
      break;
    }
    case "samples": {
      const r = run(m.run);
      if (m.reset) r.samples = [];
      r.samples.push(...m.samples);
      break;
    }
    case "checkpoints": run(m.run).checkpoints = m.names; break;
    case "gone": runs.delete(m.run); break;
    case "warning": warn(m.message); break;
  }
  schedule();
}

function warn(text) {
  const div = document.createElement("div");
  div.className = "warning";
  div.textContent = "warning: " + text;
  document.getElementById("warnings").appendChild(div);
}

function schedule() {
  if (pending) return;
  pending = true;
  setTimeout(() => { pending = false; render(); }, 100);
}

function color(i) { return COLORS[i % COLORS.length]; }

// Tick labels that stay readable from 1e-5 (learning rates) to 1e5 (tokens/s).
function tick(v) {
  if (v === null) return "";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a < 1e-2 || a >= 1e6) return v.toExponential(1);
  return String(+v.toPrecision(4));
}

function render() {
  renderCharts();
  renderRuns();
}

// One chart per series: x = union of the shown runs' steps, one y column per run.
function renderCharts() {
  const log = document.getElementById("log-scale").checked;
  const names = [...runs.keys()];
  const shown = names.filter((n) => runs.get(n).shown && runs.get(n).records.length > 0);
  const box = document.getElementById("charts");
  charts.forEach((c) => c.destroy());
  charts = [];
  box.innerHTML = "";
  let total = 0;
  for (const [title, field] of SERIES) {
    const tables = shown.map((n) => {
      const recs = runs.get(n).records;
      const ys = recs.map((r) => {
        const v = r[field];
        return v === null || !isFinite(v) || (log && v <= 0) ? null : v;
      });
      return [recs.map((r) => r.step), ys];
    });
    const div = document.createElement("div");
    div.className = "chart";
    const h = document.createElement("h3");
    h.textContent = title;
    div.appendChild(h);
    box.appendChild(div);
    const points = tables.reduce((s, t) => s + t[1].filter((v) => v !== null).length, 0);
    div.dataset.points = points;
    div.dataset.series = field;
    total += points;
    if (tables.length === 0) continue;
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    const series = [{ label: "step" }].concat(shown.map((n) => ({
      label: n,
      stroke: color(names.indexOf(n)),
      width: 2,
      spanGaps: true,
      points: { show: true, size: 4 },
    })));
    const opts = {
      width: 540,
      height: 260,
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [{ label: "step" }, { size: 70, values: (u, splits) => splits.map(tick) }],
      series,
    };
    charts.push(new uPlot(opts, data, div));
  }
  const p = document.getElementById("points");
  p.textContent = total;
  p.dataset.points = total;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function renderRuns() {
  const box = document.getElementById("runs");
  const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.key));
  box.innerHTML = "";
  if (runs.size === 0) {
    box.appendChild(el("p", "No runs yet: train one with lmforge train --out runs/NAME.", "empty"));
    return;
  }
  const names = [...runs.keys()];
  names.forEach((name, i) => {
    const r = runs.get(name);
    const div = el("div", undefined, "run");
    div.dataset.run = name;
    const h = el("h3");
    const cb = document.createElement("input");
    cb.type = "checkbox";
    cb.checked = r.shown;
    cb.title = "show in the charts";
    cb.onchange = () => { r.shown = cb.checked; render(); };
    const sw = el("span", undefined, "swatch");
    sw.style.background = color(i);
    h.append(cb, sw, document.createTextNode(name));
    div.appendChild(h);
    const last = r.records[r.records.length - 1];
    const summary = last
      ? `step ${last.step} · train loss ${last.train_loss.toFixed(4)} · val loss ${last.val_loss.toFixed(4)} · ${Math.round(last.tokens_per_s)} tokens/s · ${last.dtype || ""}`
      : "no evaluations yet";
    div.appendChild(el("div", summary, "summary"));
    div.appendChild(el("div", "checkpoints: " + (r.checkpoints.length ? r.checkpoints.join(", ") : "none yet"), "summary checkpoints"));
    const add = (key, title, body) => {
      const d = document.createElement("details");
      d.dataset.key = name + "/" + key;
      if (open.has(d.dataset.key)) d.open = true;
      d.appendChild(el("summary", title));
      d.appendChild(body);
      div.appendChild(d);
    };
    if (r.samples.length) {
      const s = r.samples[r.samples.length - 1];
      const pre = el("pre", s.text, "sample");
      const sel = document.createElement("select");
      r.samples.forEach((x, j) => {
        const o = el("option", "step " + x.step);
        o.value = j;
        sel.appendChild(o);
      });
      sel.value = r.samples.length - 1;
      sel.onchange = () => { pre.textContent = r.samples[sel.value].text; };
      const body = el("div");
      body.append(sel, pre);
      add("sample", `sample at step ${s.step} (latest of ${r.samples.length})`, body);
      div.querySelector("details:last-of-type").open = true;
    }
    add("config", "config.toml", el("pre", r.config || "(no config.toml yet)", "config"));
    box.appendChild(div);
  });
}

function connect() {
  const status = document.getElementById("status");
  const es = new EventSource(withKey("api/events"));
  for (const kind of ["run", "metrics", "samples", "checkpoints", "gone", "warning"]) {
    es.addEventListener(kind, (e) => {
      if (fresh) { runs.clear(); fresh = false; }
      apply(JSON.parse(e.data));
    });
  }
  es.onopen = () => { status.textContent = "live"; fresh = true; };
  es.onerror = () => { status.textContent = "reconnecting…"; };
}

document.getElementById("log-scale").onchange = render;
// The first picture comes from one plain request (so it shows even where streams are
// held back); the event stream then sends everything again and every change after it.
fetch(withKey("api/runs"))
  .then((r) => r.json())
  .then((ms) => { ms.forEach(apply); render(); })
  .catch((e) => warn("cannot load /api/runs: " + e))
  .finally(connect);
