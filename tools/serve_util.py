"""Starting `lmforge serve` on a free local port for the tools/ checks (stdlib only)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_binary():
    for profile in ("release", "debug"):
        p = os.path.join(ROOT, "target", profile, "lmforge")
        if os.path.exists(p):
            return p
    sys.exit("error: no target/release/lmforge: build it with `cargo build --release` or pass --binary")


def start_server(binary, checkpoint, extra=()):
    """Starts the server; returns (process, base URL) once /health answers."""
    port = free_port()
    cmd = [binary, "serve", "--checkpoint", checkpoint, "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: the server exited: {proc.stderr.read().strip()}")
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("error: the server did not answer /health within 60 s")
