"""Chat examples: one labelled row in, one chat example out; one model answer in, labels out.

The same functions build training files and evaluation prompts, and the same parser reads training
targets (in the local backend's learner) and model answers (in evaluation), so the two can't drift.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ConfigError
from .taxonomy import DEFAULT, Taxonomy, get_taxonomy

LABEL_FORMATS = ("comma", "json")


@dataclass(frozen=True)
class PromptStyle:
    """A system prompt template and a user message template.

    ``system`` may use ``{labels}`` (the label list), ``{taxonomy}`` and ``{format_rule}``;
    ``user`` must use ``{text}``.
    """

    name: str
    system: str
    user: str = "{text}"


VERBOSE = PromptStyle(
    "verbose",
    "You are a highly intelligent emotion classification assistant. You carefully read a comment from "
    "Reddit and label it with one or more emotions from a fixed list. The emotion labels are: {labels}. "
    "A comment can express several emotions at once; choose every label that clearly applies, and choose "
    "'neutral' only when no emotion is expressed. Do not invent labels that are not in the list. "
    "{format_rule}",
    "Label the emotions of this comment: {text}",
)
COMPACT = PromptStyle("compact", "Label the emotions ({taxonomy}).")
PROMPT_STYLES = {s.name: s for s in (VERBOSE, COMPACT)}

_FORMAT_RULES = {
    "comma": "Answer with the labels only, separated by commas.",
    "json": 'Answer with JSON only, in the form {"labels": ["label", ...]}.',
}


def get_style(style: str | PromptStyle) -> PromptStyle:
    """A prompt style by name (``verbose``, ``compact``) or your own :class:`PromptStyle`."""
    if isinstance(style, PromptStyle):
        if "{text}" not in style.user:
            raise ConfigError(f"prompt style {style.name!r}: the user template must contain {{text}}")
        return style
    try:
        return PROMPT_STYLES[style]
    except KeyError:
        raise ConfigError(f"unknown prompt style {style!r}; use one of {sorted(PROMPT_STYLES)} or a PromptStyle") from None


def _check_format(label_format: str) -> str:
    if label_format not in LABEL_FORMATS:
        raise ConfigError(f"label_format must be one of {LABEL_FORMATS}, not {label_format!r}")
    return label_format


def prompt_messages(text: str, *, style: str | PromptStyle = "compact", label_format: str = "comma",
                    taxonomy: str | Taxonomy | None = None) -> list[dict]:
    """The system and user messages that ask a model to label ``text``."""
    s, tax = get_style(style), get_taxonomy(taxonomy)
    system = s.system.format(labels=", ".join(tax.labels), taxonomy=tax.name,
                             format_rule=_FORMAT_RULES[_check_format(label_format)])
    return [{"role": "system", "content": system}, {"role": "user", "content": s.user.format(text=text)}]


@dataclass(frozen=True)
class PromptSpec:
    """What a model is asked with, resolved once: the prompt style, the answer format and the label set.

    The spec a model was fine-tuned with is recorded in the manifest by :func:`build_training_files`;
    evaluation reads it back (:func:`trained_prompt_spec`) so a fine-tuned model is never asked differently.
    """

    style: PromptStyle
    label_format: str
    taxonomy: str

    def messages(self, text: str) -> list[dict]:
        return prompt_messages(text, style=self.style, label_format=self.label_format, taxonomy=self.taxonomy)

    def record(self) -> dict:
        return {"prompt_style": self.style.name, "label_format": self.label_format, "taxonomy": self.taxonomy,
                "system_template": self.style.system, "user_template": self.style.user}

    def describe(self) -> str:
        return f"style {self.style.name!r}, {self.label_format} answers, {self.taxonomy} labels"


def prompt_spec(style: str | PromptStyle = "compact", label_format: str = "comma",
                taxonomy: str | Taxonomy | None = None) -> PromptSpec:
    """A checked :class:`PromptSpec` (unknown styles, formats and label sets are errors here, once)."""
    return PromptSpec(get_style(style), _check_format(label_format), get_taxonomy(taxonomy).name)


def trained_prompt_spec(run) -> PromptSpec:
    """The spec the run's training files were built with (from the manifest's ``jsonl`` section)."""
    from .manifest import JsonlRecord

    rec = run.read(JsonlRecord)
    known = PROMPT_STYLES.get(rec.prompt_style)
    style = known if known is not None else PromptStyle(rec.prompt_style or "custom", rec.system_template or "",
                                                        rec.user_template or "{text}")
    return PromptSpec(style, rec.label_format or "comma", get_taxonomy(rec.taxonomy).name)


def check_prompt_spec(trained: PromptSpec, asked: PromptSpec) -> PromptSpec:
    """The trained spec, or an error when a fine-tuned model would be asked with another one."""
    if (trained.style.system, trained.style.user, trained.label_format, trained.taxonomy) != (
            asked.style.system, asked.style.user, asked.label_format, asked.taxonomy):
        raise ConfigError(f"the fine-tuned model was trained with {trained.describe()}, but this run asks with "
                          f"{asked.describe()}; evaluate it with the prompt it learned (drop the -p overrides, or "
                          "rebuild the training files with notebook 02 and fine-tune again)")
    return trained


def format_answer(labels: Sequence[str], label_format: str = "comma") -> str:
    """The assistant answer for a label set."""
    if _check_format(label_format) == "json":
        return json.dumps({"labels": list(labels)})
    return ", ".join(labels)


def render_example(text: str, labels: Sequence[str], *, style: str | PromptStyle = "compact",
                   label_format: str = "comma", taxonomy: str | Taxonomy | None = None) -> dict:
    """One chat fine-tuning example: system, user and the assistant's target answer."""
    messages = prompt_messages(text, style=style, label_format=label_format, taxonomy=taxonomy)
    messages.append({"role": "assistant", "content": format_answer(labels, label_format)})
    return {"messages": messages}


@dataclass(frozen=True)
class ParsedAnswer:
    """Labels read from an answer; ``status`` is ok, partial (some unknown), unknown or unparseable."""

    labels: tuple[str, ...]
    unknown: tuple[str, ...] = ()
    status: str = "ok"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_SPLIT = re.compile(r"[,;\n|]+")
_WORD = re.compile(r"^[a-z][a-z _-]{0,40}$")
_STRIP = " \t\"'`.!?:*-[](){}"


def _candidates(answer: str) -> tuple[list[str] | None, str]:
    text = answer.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    if text[:1] in "{[":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"invalid JSON ({exc.msg})"
        if isinstance(obj, dict):
            obj = obj.get("labels")
        if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
            return None, 'JSON without a "labels" list of strings'
        return obj, ""
    parts = [p.strip(_STRIP) for p in _SPLIT.split(text)]
    words = [p for chunk in parts for p in re.split(r"\s+and\s+", chunk)]
    return [w.strip(_STRIP) for w in words if w.strip(_STRIP)], ""


def parse_answer(answer: str | None, taxonomy: str | Taxonomy | None = DEFAULT, *,
                 forgive_misspellings: bool = True) -> ParsedAnswer:
    """Read labels from a model answer, forgiving case, spacing, order, repeats and known misspellings.

    With a taxonomy, words outside it are reported as ``unknown``, never dropped silently or turned
    into 'neutral'. With ``taxonomy=None`` any label-like word is accepted (the open vocabulary the
    local backend's learner uses when it reads training targets). ``forgive_misspellings=False``
    reports a known misspelling as unknown (what a training-file check wants: the model would learn it).
    """
    if answer is None or not answer.strip():
        return ParsedAnswer((), (), "unparseable", "empty answer")
    words, problem = _candidates(answer)
    if words is None:
        return ParsedAnswer((), (), "unparseable", problem)
    tax = get_taxonomy(taxonomy) if taxonomy is not None else None
    found, unknown = [], []
    for word in words:
        key = " ".join(word.lower().split())
        if tax is None:
            label = key if _WORD.match(key) else None
        else:
            label = tax.normalise(key) if forgive_misspellings else (key if key in tax.labels else None)
        if label is None:
            unknown.append(key)
        elif label not in found:
            found.append(label)
    if tax:
        found.sort(key=tax.index)
    if not found and not unknown:
        return ParsedAnswer((), (), "unparseable", "no labels in answer")
    status = "ok" if not unknown else ("partial" if found else "unknown")
    return ParsedAnswer(tuple(found), tuple(dict.fromkeys(unknown)), status)


def last_user_text(messages: Sequence[dict]) -> str:
    """The text of the last user message (content parts joined)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content or ""
    return ""


def assistant_text(messages: Sequence[dict]) -> str | None:
    """The text of the last assistant message, if any."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content
    return None


JSONL_FILES = {"train": "train.jsonl", "validation": "val.jsonl"}


def example_labels(ids: Sequence[int], taxonomy: str | Taxonomy | None = None) -> list[str]:
    """A row's label ids (of the level's base label set) as names at the chosen level."""
    from .taxonomy import map_labels

    level = get_taxonomy(taxonomy)
    src = get_taxonomy(level.base) if level.base else level
    return map_labels(src.names(ids), src, taxonomy)


def render_jsonl(frame, *, style: str | PromptStyle = "compact", label_format: str = "comma",
                 taxonomy: str | Taxonomy | None = None, seed: int | None = None) -> bytes:
    """A chat JSONL (one example per row), rows shuffled by ``seed`` when given; deterministic."""
    import numpy as np

    order = np.arange(len(frame)) if seed is None else np.random.default_rng(seed).permutation(len(frame))
    texts, labels = frame["text"].tolist(), frame["labels"].tolist()
    lines = [json.dumps(render_example(texts[i], example_labels(labels[i], taxonomy), style=style,
                                       label_format=label_format, taxonomy=taxonomy), ensure_ascii=False)
             for i in order]
    return ("\n".join(lines) + "\n").encode("utf-8")


def build_training_files(run, samples: dict, *, style: str | PromptStyle = "compact", label_format: str = "comma",
                         taxonomy: str | Taxonomy | None = None, seed: int = 0) -> dict[str, dict]:
    """Write train.jsonl (training sample, shuffled by seed) and val.jsonl (validation sample) atomically.

    The test split is never touched here. Checksums go into the run manifest.
    """
    import hashlib

    from .runs import atomic_write_bytes

    record = {}
    for split, name in JSONL_FILES.items():
        raw = render_jsonl(samples[split], style=style, label_format=label_format, taxonomy=taxonomy,
                           seed=seed if split == "train" else None)
        atomic_write_bytes(run.file(name), raw)
        record[split] = {"file": name, "examples": len(samples[split]), "bytes": len(raw),
                         "sha256": hashlib.sha256(raw).hexdigest()}
    from .manifest import JsonlRecord

    spec = prompt_spec(style, label_format, taxonomy)
    run.put(JsonlRecord(files=record, seed=seed, **spec.record()))
    return record


def prompt_tax(frame, model: str, *, label_format: str = "comma", taxonomy: str | Taxonomy | None = None,
               styles: Sequence[str | PromptStyle] = ("verbose", "compact")):
    """Mean billed tokens per example for each style, next to the irreducible minimum.

    The minimum is the comment and the answer with OpenAI's per-message overhead and no system prompt.
    """
    import pandas as pd

    from .tokens import count_chat_tokens, encoding_for

    enc = encoding_for(model)
    texts, labels = frame["text"].tolist(), [example_labels(ids, taxonomy) for ids in frame["labels"]]
    answers = [format_answer(labs, label_format) for labs in labels]
    minimum = sum(count_chat_tokens([{"role": "user", "content": t}, {"role": "assistant", "content": a}], enc)
                  for t, a in zip(texts, answers, strict=True)) / len(texts)
    rows = [{"style": "minimum (comment + answer)", "tokens per example": round(minimum, 1), "x minimum": 1.0}]
    for style in styles:
        total = sum(count_chat_tokens(render_example(t, labs, style=style, label_format=label_format, taxonomy=taxonomy)
                                      ["messages"], enc) for t, labs in zip(texts, labels, strict=True))
        mean = total / len(texts)
        rows.append({"style": get_style(style).name, "tokens per example": round(mean, 1), "x minimum": round(mean / minimum, 2)})
    return pd.DataFrame(rows)


def style_tokens(frame, model: str, *, style: str | PromptStyle, label_format: str = "comma",
                 taxonomy: str | Taxonomy | None = None):
    """Billed tokens of each example of a frame rendered in one style (OpenAI's counting method)."""
    import numpy as np

    from .tokens import count_many, encoding_for

    examples = [render_example(t, example_labels(ids, taxonomy), style=style, label_format=label_format,
                               taxonomy=taxonomy)["messages"] for t, ids in zip(frame["text"], frame["labels"], strict=True)]
    return np.asarray(count_many(examples, encoding_for(model)), dtype=np.int64)


def example_gallery(text: str, labels: Sequence[str], taxonomy: str | Taxonomy | None = None):
    """One comment rendered in every built-in style and label format, as a table."""
    import pandas as pd

    rows = []
    for style in PROMPT_STYLES:
        for fmt in LABEL_FORMATS:
            msgs = render_example(text, labels, style=style, label_format=fmt, taxonomy=taxonomy)["messages"]
            rows.append({"style": style, "format": fmt, "system": msgs[0]["content"], "user": msgs[1]["content"],
                         "assistant": msgs[2]["content"]})
    return pd.DataFrame(rows)


def parse_table(answers: Sequence[str], taxonomy: str | Taxonomy | None = None):
    """How the parser reads each answer: labels, unknown words and status."""
    import pandas as pd

    parsed = [parse_answer(a, taxonomy) for a in answers]
    return pd.DataFrame({"answer": list(answers), "labels": [", ".join(p.labels) for p in parsed],
                         "unknown": [", ".join(p.unknown) for p in parsed], "status": [p.status for p in parsed]})
