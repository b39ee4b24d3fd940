"""Notebook 02's stage: chat JSONL files from the samples, the prompt tax, and the gallery of
prompt styles.

The rules (prompt styles, label formats, the answer parser) live in :mod:`emotune.core.prompts`;
this module applies them to a run's samples and writes the ``jsonl`` section of the manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..core.manifest import JsonlRecord
from ..core.prompts import (
    LABEL_FORMATS,
    PROMPT_STYLES,
    PromptSpec,
    PromptStyle,
    example_labels,
    format_answer,
    get_style,
    parse_answer,
    render_example,
)
from ..core.runs import atomic_write_bytes
from ..core.taxonomy import Taxonomy, taxonomy_names
from ..core.tokens import count_chat_tokens, count_many, encoding_for

JSONL_FILES = {"train": "train.jsonl", "validation": "val.jsonl"}


def _spec(
    style: str | PromptStyle | PromptSpec, label_format: str, taxonomy: Taxonomy | None
) -> PromptSpec:
    """The spec to render with: ``style`` when it is one, else the style and format with
    ``taxonomy``."""
    if isinstance(style, PromptSpec):
        return style
    if taxonomy is None:
        raise ConfigError("a label set (taxonomy) is needed unless style is a whole PromptSpec")
    return PromptSpec.resolve(style, label_format, taxonomy)


def render_jsonl(
    frame,
    *,
    style: str | PromptStyle | PromptSpec = "compact",
    label_format: str = "comma",
    taxonomy: Taxonomy | None = None,
    seed: int | None = None,
) -> bytes:
    """A chat JSONL (one example per row), rows shuffled by ``seed`` when given; deterministic.

    ``taxonomy`` is the label set unless ``style`` is a whole PromptSpec (which carries its own)."""
    spec = _spec(style, label_format, taxonomy)
    order = (
        np.arange(len(frame))
        if seed is None
        else np.random.default_rng(seed).permutation(len(frame))
    )
    texts, labels = frame["text"].tolist(), frame["labels"].tolist()
    lines = [
        json.dumps(
            render_example(texts[i], example_labels(labels[i], spec.taxonomy), style=spec),
            ensure_ascii=False,
        )
        for i in order
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def build_training_files(
    run,
    samples: dict,
    *,
    style: str | PromptStyle | PromptSpec = "compact",
    label_format: str = "comma",
    taxonomy: Taxonomy | None = None,
    seed: int = 0,
) -> dict[str, dict]:
    """Write train.jsonl (training sample, shuffled by seed) and val.jsonl (validation sample)
    atomically.

    The test split is never touched here. Checksums and the prompt spec go into the manifest's
    ``jsonl`` section; the evaluation stage reads the spec back with :func:`trained_prompt_spec`.
    ``taxonomy`` is the label set unless ``style`` is a whole PromptSpec (which carries its own).
    """
    spec = _spec(style, label_format, taxonomy)
    record = {}
    for split, name in JSONL_FILES.items():
        raw = render_jsonl(samples[split], style=spec, seed=seed if split == "train" else None)
        atomic_write_bytes(run.file(name), raw)
        record[split] = {
            "file": name,
            "examples": len(samples[split]),
            "bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
    run.put(
        JsonlRecord(
            files=record,
            prompt_style=spec.style.name,
            label_format=spec.label_format,
            taxonomy=spec.taxonomy.name,
            prompt_spec=spec.to_record(),
            seed=seed,
        )
    )
    return record


def trained_prompt_spec(run) -> PromptSpec:
    """The prompt spec notebook 02 trained with, from the manifest (an error names notebook 02 when
    missing)."""
    rec = run.read(JsonlRecord)
    if not rec.prompt_spec:
        raise ConfigError(
            f"run {run.name!r} records no prompt spec: run notebook 02 (build_jsonl) again"
        )
    data = run.get(
        "data", "label_set"
    )  # a dataset's own label set, with its words for an item and a label
    own = Taxonomy.from_record(data) if data and data["name"] not in taxonomy_names() else None
    return PromptSpec.from_record(rec.prompt_spec, own)


def prompt_tax(
    frame,
    model: str,
    *,
    label_format: str = "comma",
    taxonomy: Taxonomy,
    styles: Sequence[str | PromptStyle] = ("verbose", "compact"),
):
    """Mean billed tokens per example for each style, next to the irreducible minimum.

    The minimum is the comment and the answer with OpenAI's per-message overhead and no system
    prompt.
    """
    enc = encoding_for(model)
    texts, labels = (
        frame["text"].tolist(),
        [example_labels(ids, taxonomy) for ids in frame["labels"]],
    )
    answers = [format_answer(labs, label_format) for labs in labels]
    minimum = sum(
        count_chat_tokens(
            [{"role": "user", "content": t}, {"role": "assistant", "content": a}], enc
        )
        for t, a in zip(texts, answers, strict=True)
    ) / len(texts)
    rows = [
        {
            "style": "minimum (comment + answer)",
            "tokens per example": round(minimum, 1),
            "x minimum": 1.0,
        }
    ]
    for style in styles:
        total = sum(
            count_chat_tokens(
                render_example(t, labs, style=style, label_format=label_format, taxonomy=taxonomy)[
                    "messages"
                ],
                enc,
            )
            for t, labs in zip(texts, labels, strict=True)
        )
        mean = total / len(texts)
        rows.append(
            {
                "style": get_style(style).name,
                "tokens per example": round(mean, 1),
                "x minimum": round(mean / minimum, 2),
            }
        )
    return pd.DataFrame(rows)


def style_tokens(
    frame,
    model: str,
    *,
    style: str | PromptStyle,
    label_format: str = "comma",
    taxonomy: Taxonomy,
):
    """Billed tokens of each example of a frame rendered in one style (OpenAI's counting method)."""
    examples = [
        json.loads(line)["messages"]
        for line in render_jsonl(frame, style=style, label_format=label_format, taxonomy=taxonomy)
        .decode("utf-8")
        .splitlines()
    ]
    return np.asarray(count_many(examples, encoding_for(model)), dtype=np.int64)


def example_gallery(text: str, labels: Sequence[str], taxonomy: Taxonomy):
    """One comment rendered in every built-in style and label format, as a table."""
    rows = []
    for style in PROMPT_STYLES:
        for fmt in LABEL_FORMATS:
            msgs = render_example(text, labels, style=style, label_format=fmt, taxonomy=taxonomy)[
                "messages"
            ]
            rows.append(
                {
                    "style": style,
                    "format": fmt,
                    "system": msgs[0]["content"],
                    "user": msgs[1]["content"],
                    "assistant": msgs[2]["content"],
                }
            )
    return pd.DataFrame(rows)


def parse_table(answers: Sequence[str], taxonomy: Taxonomy):
    """How the parser reads each answer: labels, unknown words and status."""
    parsed = [parse_answer(a, taxonomy) for a in answers]
    return pd.DataFrame(
        {
            "answer": list(answers),
            "labels": [", ".join(p.labels) for p in parsed],
            "unknown": [", ".join(p.unknown) for p in parsed],
            "status": [p.status for p in parsed],
        }
    )
