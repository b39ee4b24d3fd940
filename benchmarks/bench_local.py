"""Benchmark the local backend (issue 3): chat throughput and a full-data fine-tuning job.

    python benchmarks/bench_local.py [--requests 3000] [--concurrency 64]

Needs EMOTUNE_DATA_DIR (the GoEmotions mirror) and TIKTOKEN_CACHE_DIR offline. The server runs in its
own process (`emotune serve`), as a reader would run it; the client is the official async openai client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
from sklearn.metrics import f1_score

from emotune.core import prompts as examples
from emotune.core.taxonomy import get_taxonomy
from emotune.local.server import free_port
from emotune.stages import data

GOEMOTIONS = get_taxonomy("goemotions")

BASE = "gpt-4.1-mini-2025-04-14"


def start_server(state: Path) -> tuple[subprocess.Popen, str]:
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
            str(state),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


async def classify(
    base_url: str, model: str, texts: list[str], concurrency: int
) -> tuple[list[str], float]:
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key="bench", max_retries=3, http_client=openai.DefaultAioHttpClient()
    )
    sem = asyncio.Semaphore(concurrency)

    async def one(text: str) -> str:
        async with sem:
            r = await client.chat.completions.create(
                model=model, messages=examples.prompt_messages(text), temperature=0, seed=0
            )
            return r.choices[0].message.content

    t0 = time.perf_counter()
    answers = await asyncio.gather(*(one(t) for t in texts))
    elapsed = time.perf_counter() - t0
    await client.close()
    return answers, elapsed


def jsonl(frame) -> bytes:
    return "".join(
        json.dumps(examples.render_example(t, GOEMOTIONS.names(ids))) + "\n"
        for t, ids in zip(frame["text"], frame["labels"], strict=True)
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    dd = data.load().dataset
    train, valid, test = (data.to_frame(dd[s]) for s in ("train", "validation", "test"))
    with tempfile.TemporaryDirectory() as tmp:
        proc, base_url = start_server(Path(tmp))
        try:
            texts = (list(test["text"]) * 2)[: args.requests]
            asyncio.run(classify(base_url, BASE, texts[:200], args.concurrency))  # warm-up
            _, elapsed = asyncio.run(classify(base_url, BASE, texts, args.concurrency))
            print(
                f"chat completions: {len(texts)} requests at {args.concurrency} in flight in {elapsed:.2f} s "
                f"= {len(texts) / elapsed:.0f} requests/s"
            )

            client = openai.OpenAI(base_url=base_url, api_key="bench")
            t0 = time.perf_counter()
            tf = client.files.create(file=("train.jsonl", jsonl(train)), purpose="fine-tune").id
            vf = client.files.create(file=("val.jsonl", jsonl(valid)), purpose="fine-tune").id
            job = client.fine_tuning.jobs.create(
                model=BASE,
                training_file=tf,
                validation_file=vf,
                seed=0,
                hyperparameters={"n_epochs": args.epochs},
            )
            while job.status not in ("succeeded", "failed", "cancelled"):
                time.sleep(0.2)
                job = client.fine_tuning.jobs.retrieve(job.id)
            job_s = time.perf_counter() - t0
            print(
                f"fine-tuning job on {len(train)} examples ({job.hyperparameters.n_epochs} epochs, batch "
                f"{job.hyperparameters.batch_size}): {job.status} in {job_s:.1f} s (upload included), "
                f"trained_tokens={job.trained_tokens}"
            )
            answers, elapsed = asyncio.run(
                classify(base_url, job.fine_tuned_model, list(test["text"]), args.concurrency)
            )
            base_answers, _ = asyncio.run(
                classify(base_url, BASE, list(test["text"]), args.concurrency)
            )
            y = data.multi_hot(test["labels"].tolist(), 28)
            for name, ans in (("fine-tuned", answers), ("zero-shot base", base_answers)):
                pred = [[GOEMOTIONS.index(x) for x in examples.parse_answer(a).labels] for a in ans]
                hot = data.multi_hot(pred, 28)
                macro = f1_score(y, hot, average="macro", zero_division=0)
                micro = f1_score(y, hot, average="micro", zero_division=0)
                print(
                    f"{name}: macro-F1 {macro:.3f} micro-F1 {micro:.3f} on the {len(test)}-comment test split"
                )
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
