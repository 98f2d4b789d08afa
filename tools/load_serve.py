"""Load figures for `lmforge serve`: requests/s, tokens/s and time to first token at 1, 4
and 16 concurrent streaming clients (stdlib only; not part of CI).

    python3 tools/load_serve.py [--binary target/release/lmforge] [--url http://HOST:PORT]
        [--clients 1,4,16] [--requests 32] [--max-tokens 128]

Without --url it starts the server on the shipped sample model on a free port. Each client
sends streaming completions back to back (different seeds, stream_options.include_usage for
the token count) until --requests have been sent at that concurrency.
"""

import argparse
import http.client
import json
import os
import statistics
import threading
import time
import urllib.parse

from serve_util import ROOT, default_binary, start_server


def one_request(host, port, body):
    """Streams one completion; returns (seconds to first text, seconds total, tokens)."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 200:
        raise RuntimeError(f"HTTP {res.status}: {res.read()[:200]!r}")
    first, tokens = None, 0
    for raw in res:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if first is None and any(c.get("text") for c in chunk["choices"]):
            first = time.perf_counter() - t0
    conn.close()
    return first or 0.0, time.perf_counter() - t0, tokens


def run_level(host, port, clients, requests, max_tokens, prompt):
    results, lock = [], threading.Lock()
    counter = iter(range(requests))

    def client():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = {"prompt": prompt, "max_tokens": max_tokens, "seed": i, "stream": True,
                    "stream_options": {"include_usage": True}}
            r = one_request(host, port, body)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttft = sorted(r[0] for r in results)
    tokens = sum(r[2] for r in results)
    return {
        "clients": clients,
        "requests": len(results),
        "req_per_s": len(results) / wall,
        "tokens_per_s": tokens / wall,
        "ttft_p50_ms": 1e3 * statistics.median(ttft),
        "ttft_p95_ms": 1e3 * ttft[min(len(ttft) - 1, int(0.95 * len(ttft)))],
        "latency_mean_s": statistics.mean(r[1] for r in results),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=None)
    ap.add_argument("--url", default=None, help="an already running server")
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "models", "shakespeare-char"))
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt", default="ROMEO:")
    ap.add_argument("--server-args", default="", help="extra `lmforge serve` flags, e.g. '--workers 4'")
    a = ap.parse_args()
    proc = None
    url = a.url
    if url is None:
        proc, url = start_server(a.binary or default_binary(), a.checkpoint, a.server_args.split())
    u = urllib.parse.urlparse(url)
    try:
        one_request(u.hostname, u.port, {"prompt": a.prompt, "max_tokens": 8, "stream": True})  # warm-up
        print(f"{'clients':>7} {'requests':>8} {'req/s':>8} {'tokens/s':>9} {'TTFT p50':>9} {'TTFT p95':>9} {'latency':>8}")
        for c in (int(x) for x in a.clients.split(",")):
            r = run_level(u.hostname, u.port, c, max(a.requests, c), a.max_tokens, a.prompt)
            print(f"{r['clients']:>7} {r['requests']:>8} {r['req_per_s']:>8.2f} {r['tokens_per_s']:>9.0f} "
                  f"{r['ttft_p50_ms']:>7.1f}ms {r['ttft_p95_ms']:>7.1f}ms {r['latency_mean_s']:>7.2f}s")
    finally:
        if proc:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
