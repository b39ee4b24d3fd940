"""Benchmark issue 4: validating and token-counting the full training split, and the prompt tax.

    python benchmarks/bench_validate.py

Needs EMOTUNE_DATA_DIR (the GoEmotions mirror) and TIKTOKEN_CACHE_DIR offline.
"""

from __future__ import annotations

import time

from emotune.core import file_rules as validate
from emotune.core.taxonomy import get_taxonomy
from emotune.stages import data, examples

GOEMOTIONS = get_taxonomy("goemotions")

MODEL = "gpt-4.1-mini-2025-04-14"


def main() -> None:
    train = data.to_frame(data.load().dataset["train"])
    for style in ("compact", "verbose"):
        raw = examples.render_jsonl(train, style=style, taxonomy=GOEMOTIONS)
        t0 = time.perf_counter()
        report = validate.validate_bytes(raw, f"train-{style}.jsonl", MODEL, token_limit=65536)
        seconds = time.perf_counter() - t0
        print(
            f"validate + count {style}: {report.n_examples} examples, {len(raw) / 1e6:.1f} MB, "
            f"{int(report.tokens.sum()):,} tokens, {len(report.errors)} errors, {len(report.warnings)} "
            "warnings "
            f"in {seconds:.2f} s"
        )
    print(examples.prompt_tax(train, MODEL, taxonomy=GOEMOTIONS).to_string(index=False))


if __name__ == "__main__":
    main()
