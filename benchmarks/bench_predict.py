"""Benchmark issue 6: the full 5,427-comment test split for two models on the local backend, with 100 ms
of injected latency per request, at emotune's adaptive concurrency (or a fixed cap with --concurrency).

    python benchmarks/bench_predict.py [--latency-ms 100] [--concurrency 32]

The base model and a model fine-tuned on the full training split answer every test comment once each
(10,854 requests), then again from the cache (0 requests).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from emotune import providers as backend
from emotune.core import prompts as examples
from emotune.core.taxonomy import get_taxonomy
from emotune.stages import data, predict

GOEMOTIONS = get_taxonomy("goemotions")

BASE = "gpt-4.1-mini-2025-04-14"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="cap on requests in flight (default: adaptive)",
    )
    args = parser.parse_args()
    dd = data.load().dataset
    train, test = data.to_frame(dd["train"]), data.to_frame(dd["test"])
    with tempfile.TemporaryDirectory() as tmp:
        conn = backend.connect("local", state_dir=Path(tmp) / "state")
        raw = "".join(
            json.dumps(examples.render_example(t, GOEMOTIONS.names(ids))) + "\n"
            for t, ids in zip(train["text"], train["labels"], strict=True)
        ).encode()
        fid = conn.client.files.create(file=("train.jsonl", raw), purpose="fine-tune").id
        job = conn.client.fine_tuning.jobs.create(model=BASE, training_file=fid, seed=0)
        while job.status not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.5)
            job = conn.client.fine_tuning.jobs.retrieve(job.id)
        conn.server.app.state.faults["latency_ms"] = args.latency_ms
        cache = predict.PredictionCache(Path(tmp) / "cache.jsonl")
        t0 = time.perf_counter()
        results = {
            name: predict.classify(
                conn, model, test, cache=cache, concurrency=args.concurrency, progress=False
            )
            for name, model in (("base", BASE), ("fine-tuned", job.fine_tuned_model))
        }
        seconds = time.perf_counter() - t0
        sent = sum(r.sent for r in results.values())
        shown = (
            args.concurrency
            or f"adaptive (ended at {results['base'].rate.get('in flight')} in flight)"
        )
        print(
            f"{sent} requests ({len(test)} comments x 2 models) at concurrency {shown} with "
            f"{args.latency_ms:.0f} ms latency: {seconds:.1f} s = {sent / seconds:.0f} requests/s; "
            f"failures {sum(len(r.failures) for r in results.values())}"
        )
        t0 = time.perf_counter()
        again = [
            predict.classify(conn, model, test, cache=cache, progress=False)
            for model in (BASE, job.fine_tuned_model)
        ]
        print(
            f"re-run from the cache: {sum(r.sent for r in again)} requests in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        print(
            "sequential equivalent at the original tutorial's 1-2 comments/s: "
            f"{2 * len(test) / 2 / 3600:.1f}-{2 * len(test) / 1 / 3600:.1f} hours"
        )
        backend.stop_local_servers()


if __name__ == "__main__":
    main()
