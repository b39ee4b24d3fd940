"""Benchmark issue 16.4: emotune's adaptive predictor at a server's rate limit, beside the tutorial's loop.

    python benchmarks/bench_ratelimit.py [--requests 3000] [--sequential 150]

One run, two ``emotune serve`` processes on 127.0.0.1:

- ``limited``: ``--rpm 6000 --tpm 2000000`` (OpenAI's x-ratelimit-* headers and 429s), no added latency;
- ``slow``: no limit and 100 ms of latency per request.

On each, emotune's ``classify`` (adaptive concurrency, starting from a safe default) and the original
tutorial's one-at-a-time loop (``client.chat.completions.create`` per comment) answer GoEmotions test
comments (synthetic ones without the mirror). The table gives the sustained rate, the binding limit
(requests per minute, or tokens per minute / tokens counted per request, whichever is lower), the share of
it reached, lost predictions and 429s. Target: >= 90% of the binding limit, 0 lost, < 1% 429s.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
import pandas as pd

from emotune import providers as backend
from emotune.core.prompts import prompt_spec
from emotune.local.server import free_port
from emotune.providers.local import LocalProvider
from emotune.stages import predict

BASE = "gpt-4.1-mini-2025-04-14"
RPM, TPM = 6000, 2_000_000


def texts(n: int) -> pd.DataFrame:
    try:
        from emotune.stages import data

        test = data.to_frame(data.load().dataset["test"])
        frame = pd.concat([test] * (n // len(test) + 1), ignore_index=True).iloc[:n]
        frame["text"] = [f"{t} #{i}" for i, t in enumerate(frame["text"])]  # every request distinct
    except Exception:  # no mirror: synthetic comments
        words = ["grateful", "angry", "sad", "amused", "surprised", "proud", "fine"]
        frame = pd.DataFrame(
            {"text": [f"I am {words[i % len(words)]} about this, #{i}" for i in range(n)]}
        )
    frame["id"] = [f"c{i}" for i in range(n)]
    return frame[["id", "text"]]


@contextlib.contextmanager
def emotune_serve(state_dir: Path, *flags: str):
    """``emotune serve`` in its own process (as a user runs it), stopped on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emotune.cli",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            *flags,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None:
                raise SystemExit(f"emotune serve {' '.join(flags)} exited with {proc.returncode}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def connection(base_url: str) -> LocalProvider:
    options = {"max_retries": backend.DEFAULT_MAX_RETRIES, "timeout": backend.DEFAULT_TIMEOUT_S}
    client = openai.OpenAI(base_url=base_url, api_key="bench", **options)
    return LocalProvider(client, base_url, options)


def sequential(conn: LocalProvider, frame: pd.DataFrame) -> tuple[float, int]:
    """The original tutorial's loop: one request at a time, the client's own retries."""
    lost, t0 = 0, time.perf_counter()
    for text in frame["text"]:
        try:
            conn.client.chat.completions.create(
                model=BASE, messages=prompt_spec().messages(text), **predict.sampling_params(0)
            )
        except openai.APIError:
            lost += 1
    return len(frame) / (time.perf_counter() - t0), lost


def adaptive(conn: LocalProvider, frame: pd.DataFrame, cache_path: Path) -> dict:
    t0 = time.perf_counter()
    out = predict.classify(
        conn, BASE, frame, cache=predict.PredictionCache(cache_path), progress=False
    )
    seconds = time.perf_counter() - t0
    per_request = (out.prompt_tokens + len(out.frame) * predict.MAX_COMPLETION_TOKENS) / max(
        len(out.frame), 1
    )
    return {
        "rate": out.sent / seconds,
        "lost": len(out.failures),
        "429s": int(out.rate.get("429s", 0)),
        "attempts": out.attempts,
        "tokens/request": per_request,
        "in flight": out.rate.get("in flight"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--requests", type=int, default=3000, help="comments emotune classifies per server"
    )
    parser.add_argument(
        "--sequential", type=int, default=150, help="comments the one-at-a-time loop classifies"
    )
    args = parser.parse_args()
    frame = texts(args.requests + args.sequential)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in (
            ("limited (rpm 6000, tpm 2M)", ("--rpm", str(RPM), "--tpm", str(TPM))),
            ("slow (no limit, 100 ms)", ("--latency-ms", "100")),
        ):
            with emotune_serve(Path(tmp) / name[:4], *flags) as base_url:
                conn = connection(base_url)
                conn.client.chat.completions.create(
                    model=BASE, messages=prompt_spec().messages("warm up")
                )
                ours = adaptive(conn, frame.iloc[: args.requests], Path(tmp) / f"{name[:4]}.jsonl")
                loop_rate, loop_lost = sequential(conn, frame.iloc[args.requests :])
            if "--rpm" in flags:
                limit = min(RPM / 60, TPM / 60 / ours["tokens/request"])
                binding = f"{limit:.1f}/s ({'requests' if limit == RPM / 60 else 'tokens'})"
            else:
                limit, binding = None, "none"
            rows.append(
                {
                    "server": name,
                    "binding limit": binding,
                    "emotune req/s": round(ours["rate"], 1),
                    "% of limit": round(100 * ours["rate"] / limit, 1) if limit else "-",
                    "lost": ours["lost"],
                    "429s %": round(100 * ours["429s"] / max(ours["attempts"], 1), 2),
                    "in flight (end)": ours["in flight"],
                    "one-at-a-time req/s": round(loop_rate, 1),
                    "loop lost": loop_lost,
                    "speed-up": f"{ours['rate'] / loop_rate:.0f}x",
                }
            )
    print(pd.DataFrame(rows).to_string(index=False))
    print(
        f"({args.requests} requests per server for emotune, {args.sequential} for the loop; target: >= 90% "
        "of "
        "the binding limit, 0 lost, < 1% 429s)"
    )


if __name__ == "__main__":
    main()
