"""What every trainer and served model of the local backend shares: the parsed training data,
per-step metrics, the result of a training run, and the two protocols (:class:`Trainer`,
:class:`ChatModel`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ...core.errors import DataError
from ...core.prompts import assistant_text, last_user_text, parse_answer


class Cancelled(Exception):
    """Raised inside training when the job was cancelled."""


@dataclass
class Dataset:
    """Texts, label sets and the answer format parsed from a chat JSONL."""

    texts: list[str]
    labels: list[tuple[str, ...]]
    label_format: str = "comma"
    messages: list[list[dict]] = field(
        default_factory=list
    )  # the raw conversations (for LLM trainers)


@dataclass
class StepMetrics:
    step: int
    total_steps: int
    epoch: int
    train_loss: float
    train_accuracy: float
    valid_loss: float | None = None
    valid_accuracy: float | None = None


@dataclass
class TrainResult:
    model: object
    steps: list[StepMetrics] = field(default_factory=list)
    checkpoints: list[tuple[int, object, StepMetrics]] = field(default_factory=list)
    trained_tokens: int = 0


class Trainer(Protocol):
    """Turns a chat JSONL into a model; the registry (``trainers.trainer_for``) picks one per
    base model."""

    name: str

    def supports(self, model: str) -> bool: ...

    def train(
        self,
        train: Dataset,
        valid: Dataset | None,
        hp: dict,
        seed: int,
        on_step: Callable[[StepMetrics], None],
        base: str = "",
        work_dir: Path | None = None,
    ) -> TrainResult: ...


def parse_jsonl(data: bytes, filename: str = "training_file") -> Dataset:
    """Read a chat JSONL into texts and label sets; a line that can't be used is a DataError
    naming it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 (byte {exc.start})", path=filename, rule="encoding") from None
    texts, labels, formats, conversations = [], [], set(), []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            raise DataError("blank line", path=filename, line=lineno, rule="blank_line")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"invalid JSON ({exc.msg})", path=filename, line=lineno, rule="invalid_json"
            ) from None
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(messages, list) or not messages:
            raise DataError(
                "'messages' must be a non-empty list",
                path=filename,
                line=lineno,
                rule="missing_messages",
            )
        answer = assistant_text(messages)
        if answer is None:
            raise DataError(
                "no assistant message", path=filename, line=lineno, rule="no_assistant_message"
            )
        parsed = parse_answer(answer, any_label=True)
        if not parsed.labels:
            raise DataError(
                f"assistant answer holds no labels ({parsed.detail or parsed.status})",
                path=filename,
                line=lineno,
                rule="unparseable_target",
            )
        formats.add("json" if answer.strip().startswith("{") else "comma")
        texts.append(last_user_text(messages))
        labels.append(parsed.labels)
        conversations.append(messages)
    if not texts:
        raise DataError("no examples", path=filename, rule="empty_file")
    return Dataset(texts, labels, "json" if formats == {"json"} else "comma", conversations)


class ChatModel(Protocol):
    """A model the local backend serves: answers chat messages."""

    kind: str

    def answer(self, messages: Sequence[dict], response_format: dict | None = None) -> str: ...


def wants_json(response_format: dict | None, system: str) -> bool:
    if response_format and response_format.get("type") in ("json_schema", "json_object"):
        return True
    return '"labels"' in system
