"""Runs the official `openai` Python client against `lmforge serve` (not part of CI).

    tools/.venv/bin/python tools/check_openai_client.py [--binary target/release/lmforge]
        [--checkpoint models/shakespeare-char]

Starts the server with an API key on a free port and checks, through the client: the model
list, a completion (usage counts), streaming (same text as non-streamed for the same seed),
n > 1, stop strings, echo + logprobs, and that a bad request raises the client's
BadRequestError with the server's message. Prints what it saw; exits 1 on a mismatch.
"""

import argparse
import os
import sys

import openai

from serve_util import ROOT, default_binary, start_server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=None)
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "models", "shakespeare-char"))
    a = ap.parse_args()
    key = "check-key"
    proc, url = start_server(a.binary or default_binary(), a.checkpoint, ["--api-key", key])
    failures = []

    def check(name, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        if not ok:
            failures.append(name)

    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key=key)
        print(f"openai {openai.__version__} against {url}")
        models = client.models.list()
        model = models.data[0].id
        check("models.list", len(models.data) == 1, model)

        args = dict(model=model, prompt="ROMEO:", max_tokens=48, seed=42, temperature=0.8)
        full = client.completions.create(**args)
        text = full.choices[0].text
        check("completion", len(text) > 0, repr(text))
        u = full.usage
        check("usage", u.prompt_tokens == 6 and u.completion_tokens == len(text) and u.total_tokens == 6 + len(text), str(u))

        pieces = []
        finish = None
        for chunk in client.completions.create(**args, stream=True):
            for c in chunk.choices:
                pieces.append(c.text)
                finish = c.finish_reason or finish
        check("stream == non-stream (same seed)", "".join(pieces) == text, f"{len(pieces)} chunks, finish_reason={finish}")

        many = client.completions.create(**{**args, "n": 3})
        texts = [c.text for c in many.choices]
        check("n=3", len(texts) == 3 and texts[0] == text and len(set(texts)) > 1, str([t[:20] for t in texts]))

        stop = text[10:13]
        cut = text.index(stop)
        stopped = client.completions.create(**args, stop=[stop])
        check("stop", stopped.choices[0].text == text[:cut] and stopped.choices[0].finish_reason == "stop",
              f"stop={stop!r} -> {stopped.choices[0].text!r}")

        lp = client.completions.create(model=model, prompt="ROMEO:", max_tokens=5, temperature=0, echo=True, logprobs=2)
        c = lp.choices[0]
        check("echo + logprobs", c.text.startswith("ROMEO:") and "".join(c.logprobs.tokens) == c.text[6:]
              and all(len(t) == 2 for t in c.logprobs.top_logprobs), f"{c.text!r} {c.logprobs.token_logprobs}")

        try:
            client.completions.create(model=model, prompt="a", temperature=-1)
            check("bad request raises", False)
        except openai.BadRequestError as e:
            check("bad request raises BadRequestError", e.status_code == 400 and "temperature" in str(e), str(e))

        try:
            openai.OpenAI(base_url=url + "/v1", api_key="wrong").completions.create(model=model, prompt="a")
            check("wrong key refused", False)
        except openai.AuthenticationError as e:
            check("wrong key raises AuthenticationError", e.status_code == 401, str(e))
    finally:
        proc.terminate()
        proc.wait()
    if failures:
        print(f"{len(failures)} check(s) failed: {failures}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
