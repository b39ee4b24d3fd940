"""Trainers behind the local backend, and the models they produce.

A trainer turns a chat JSONL into a model that answers chat messages. Two ship here:

- :class:`ZeroShotModel`, the "base model": answers the labels whose names (or their closest word
  forms) appear in the comment, else 'neutral'. Untrained on purpose.
- :class:`ClassicalTrainer`: TF-IDF features (scikit-learn) and a multi-label logistic regression
  trained by mini-batch SGD, so that ``n_epochs``, ``batch_size``, ``learning_rate_multiplier``
  and ``seed`` matter and every step has a real training loss. Per-label decision thresholds are
  tuned on the validation file when there is one.

Other trainers (an open-weights LoRA trainer, say) plug in through :class:`Trainer` and
:func:`register_trainer`.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import DataError
from ..examples import assistant_text, format_answer, last_user_text, parse_answer
from ..taxonomy import GOEMOTIONS, get_taxonomy, map_labels, taxonomy_names


class Cancelled(Exception):
    """Raised inside training when the job was cancelled."""


@dataclass
class Dataset:
    """Texts, label sets and the answer format parsed from a chat JSONL."""

    texts: list[str]
    labels: list[tuple[str, ...]]
    label_format: str = "comma"
    messages: list[list[dict]] = field(default_factory=list)  # the raw conversations (for LLM trainers)


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
    name: str

    def supports(self, model: str) -> bool: ...

    def train(self, train: Dataset, valid: Dataset | None, hp: dict, seed: int,
              on_step: Callable[[StepMetrics], None], base: str = "") -> TrainResult: ...


def parse_jsonl(data: bytes, filename: str = "training_file") -> Dataset:
    """Read a chat JSONL into texts and label sets; a line that can't be used is a DataError naming it."""
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
            raise DataError(f"invalid JSON ({exc.msg})", path=filename, line=lineno, rule="invalid_json") from None
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(messages, list) or not messages:
            raise DataError("'messages' must be a non-empty list", path=filename, line=lineno, rule="missing_messages")
        answer = assistant_text(messages)
        if answer is None:
            raise DataError("no assistant message", path=filename, line=lineno, rule="no_assistant_message")
        parsed = parse_answer(answer, None)
        if not parsed.labels:
            raise DataError(f"assistant answer holds no labels ({parsed.detail or parsed.status})",
                            path=filename, line=lineno, rule="unparseable_target")
        formats.add("json" if answer.strip().startswith("{") else "comma")
        texts.append(last_user_text(messages))
        labels.append(parsed.labels)
        conversations.append(messages)
    if not texts:
        raise DataError("no examples", path=filename, rule="empty_file")
    return Dataset(texts, labels, "json" if formats == {"json"} else "comma", conversations)


def _taxonomy_for(labels: set[str]):
    """The registered taxonomy that holds every label (misspellings forgiven), else None."""
    for name in taxonomy_names():
        tax = get_taxonomy(name)
        if all(tax.normalise(label) for label in labels):
            return tax
    return None


def _canonical_classes(datasets: Sequence[Dataset]) -> tuple[list[str], dict[str, str]]:
    seen = {label for d in datasets for labs in d.labels for label in labs}
    tax = _taxonomy_for(seen)
    if tax is None:
        return sorted(seen), {label: label for label in seen}
    canon = {label: tax.normalise(label) for label in seen}
    return [lab for lab in tax.labels if lab in set(canon.values())], canon


def _wants_json(response_format: dict | None, system: str) -> bool:
    if response_format and response_format.get("type") in ("json_schema", "json_object"):
        return True
    return '"labels"' in system


class ChatModel(Protocol):
    kind: str

    def answer(self, messages: Sequence[dict], response_format: dict | None = None) -> str: ...


@lru_cache(maxsize=1)
def _lexicon() -> dict[str, list[str]]:
    raw = json.loads(resources.files("emotune").joinpath("catalog/lexicon.json").read_text("utf-8"))
    return raw["goemotions"]


class ZeroShotModel:
    """The local "base model": matches label names and their word forms; untrained, and honest about it."""

    kind = "zero-shot label-word matcher"

    def __init__(self):
        self._patterns = {label: re.compile(r"(?<![a-z])(" + "|".join(re.escape(w) for w in words) + r")(?![a-z])")
                          for label, words in _lexicon().items() if words}

    @staticmethod
    def detect_taxonomy(system: str):
        lowered = system.lower()
        for name in taxonomy_names():
            if re.search(rf"\b{re.escape(name)}\b", lowered):
                return get_taxonomy(name)
        scored = [(sum(lab in lowered for lab in get_taxonomy(n).labels) / len(get_taxonomy(n)), n) for n in taxonomy_names()]
        best, name = max(scored)
        return get_taxonomy(name) if best >= 0.5 else GOEMOTIONS

    def predict(self, text: str, taxonomy) -> list[str]:
        lowered = text.lower()
        if taxonomy.base == GOEMOTIONS.name or taxonomy is GOEMOTIONS:
            hits = [label for label, pat in self._patterns.items() if pat.search(lowered)] or ["neutral"]
            return map_labels(hits, GOEMOTIONS, taxonomy)
        hits = [lab for lab in taxonomy.labels if re.search(rf"\b{re.escape(lab)}\b", lowered)]
        return hits or [taxonomy.labels[-1]]

    def answer(self, messages, response_format=None) -> str:
        system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") in ("system", "developer"))
        labels = self.predict(last_user_text(messages), self.detect_taxonomy(system))
        return format_answer(labels, "json" if _wants_json(response_format, system) else "comma")


class ClassicalModel:
    """TF-IDF + multi-label logistic regression, answering in the format it was trained on."""

    kind = "tf-idf + logistic regression"

    def __init__(self, vectorizer, weights: np.ndarray, bias: np.ndarray, classes: list[str],
                 thresholds: np.ndarray, label_format: str):
        self.vectorizer, self.weights, self.bias = vectorizer, weights, bias
        self.classes, self.thresholds, self.label_format = classes, thresholds, label_format

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        x = self.vectorizer.transform(texts)
        return _sigmoid(np.asarray(x @ self.weights) + self.bias)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """0/1 decisions: above each label's threshold, or the single most likely label if none is."""
        out = (probs >= self.thresholds).astype(np.int8)
        empty = out.sum(axis=1) == 0
        out[empty, probs[empty].argmax(axis=1)] = 1
        return out

    def predict(self, texts: Sequence[str]) -> list[list[str]]:
        decisions = self.decide(self.probabilities(texts))
        return [[self.classes[j] for j in np.flatnonzero(row)] for row in decisions]

    def answer(self, messages, response_format=None) -> str:
        labels = self.predict([last_user_text(messages)])[0]
        system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        wants_json = self.label_format == "json" or _wants_json(response_format, system if response_format else "")
        return format_answer(labels, "json" if wants_json else "comma")

    def save(self, folder: Path) -> None:
        with open(folder / "model.pkl", "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_model(folder: Path) -> ChatModel:
    """A trained model saved by a trainer (the state directory is the backend's own, hence pickle)."""
    from .open_weights import MARKER, OpenWeightsModel

    if (folder / MARKER).exists():
        return OpenWeightsModel.load(folder)
    with open(folder / "model.pkl", "rb") as f:
        return pickle.load(f)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _bce(probs: np.ndarray, y: np.ndarray) -> float:
    """Binary cross-entropy summed over labels, averaged over examples."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(axis=1).mean())


def _exact(decisions: np.ndarray, y: np.ndarray) -> float:
    return float((decisions == y).all(axis=1).mean())


def tune_thresholds(probs: np.ndarray, y: np.ndarray, min_positives: int = 20) -> np.ndarray:
    """Decision thresholds tuned on held-out data.

    One global threshold maximises micro-F1; a label with at least ``min_positives`` held-out positives
    gets its own threshold (the one that maximises its F1). With fewer positives a per-label threshold
    just memorises a handful of comments, so the global one is used.
    """
    grid = np.linspace(0.05, 0.9, 35)

    def best(pred: np.ndarray, pos: np.ndarray) -> float:
        tp = (pred & pos[..., None]).reshape(-1, len(grid)).sum(axis=0)
        f1 = 2 * tp / (pred.reshape(-1, len(grid)).sum(axis=0) + pos.sum())
        ties = np.flatnonzero(f1 == f1.max())
        return float(grid[ties[len(ties) // 2]])  # the middle of a tie, not its lowest edge

    positives = y.astype(bool)
    out = np.full(y.shape[1], best(probs[..., None] >= grid, positives) if positives.any() else 0.5)
    for j in np.flatnonzero(positives.sum(axis=0) >= min_positives):
        out[j] = best(probs[:, j][:, None] >= grid, positives[:, j])
    return out


class ClassicalTrainer:
    """Fine-tunes the local stand-in: TF-IDF + logistic regression by mini-batch SGD."""

    name = "classical"
    # Tuned on GoEmotions' dev split: plain SGD at 2.3 per example in the batch (200 at batch size 86),
    # times the multiplier, decaying linearly, matches liblinear's macro-F1 (0.45) on the full split.
    LEARNING_RATE_PER_EXAMPLE = 2.3
    L2 = 1e-5
    BIAS_LR_SCALE = 0.025  # the bias sees every example; a feature weight sees few

    def supports(self, model: str) -> bool:
        return True

    def train(self, train: Dataset, valid: Dataset | None, hp: dict, seed: int,
              on_step: Callable[[StepMetrics], None], base: str = "") -> TrainResult:
        from sklearn.feature_extraction.text import TfidfVectorizer

        classes, canon = _canonical_classes([d for d in (train, valid) if d])
        index = {c: i for i, c in enumerate(classes)}

        def targets(d: Dataset) -> np.ndarray:
            y = np.zeros((len(d.texts), len(classes)), dtype=np.float32)
            for row, labs in enumerate(d.labels):
                y[row, [index[canon[lab]] for lab in labs if canon.get(lab) in index]] = 1
            return y

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1 if len(train.texts) < 2000 else 2,
                                     sublinear_tf=True, lowercase=True, dtype=np.float32)
        x = vectorizer.fit_transform(train.texts).tocsr()
        y = targets(train)
        xv, yv = (vectorizer.transform(valid.texts).tocsr(), targets(valid)) if valid else (None, None)

        n, n_feat, n_lab = x.shape[0], x.shape[1], len(classes)
        epochs, batch = int(hp["n_epochs"]), int(hp["batch_size"])
        lr = self.LEARNING_RATE_PER_EXAMPLE * batch * float(hp["learning_rate_multiplier"])
        prior = y.mean(axis=0).clip(1e-3, 1 - 1e-3)
        w = np.zeros((n_feat, n_lab), dtype=np.float32)
        b = np.log(prior / (1 - prior)).astype(np.float32)
        rng = np.random.default_rng(seed)
        steps_per_epoch = -(-n // batch)
        total = epochs * steps_per_epoch
        eval_every = max(1, total // 25)
        result = TrainResult(model=None)
        step = 0
        for epoch in range(1, epochs + 1):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                rows = order[start:start + batch]
                xb, yb = x[rows], y[rows]
                probs = _sigmoid(np.asarray(xb @ w) + b)
                err = (probs - yb) / len(rows)
                cols = np.unique(xb.indices)
                # plain SGD on the rows this batch touches (L2 applied lazily to them), with the
                # learning rate decaying linearly to zero over the job, as OpenAI's schedule does
                lr_now = lr * (1 - step / total)
                w[cols] -= lr_now * (np.asarray(xb[:, cols].T @ err) + self.L2 * w[cols])
                b -= lr_now * self.BIAS_LR_SCALE * err.sum(axis=0)
                step += 1
                decided = (probs >= 0.5).astype(np.float32)
                metrics = StepMetrics(step, total, epoch, _bce(probs, yb), _exact(decided, yb))
                if xv is not None and (step % eval_every == 0 or start + batch >= n):  # and at every epoch end
                    pv = _sigmoid(np.asarray(xv @ w) + b)
                    metrics.valid_loss, metrics.valid_accuracy = _bce(pv, yv), _exact((pv >= 0.5), yv)
                result.steps.append(metrics)
                on_step(metrics)
            thresholds = (tune_thresholds(_sigmoid(np.asarray(xv @ w) + b), yv) if xv is not None
                          else np.full(n_lab, 0.5))
            snapshot = ClassicalModel(vectorizer, w.copy(), b.copy(), classes, thresholds, train.label_format)
            result.checkpoints.append((step, snapshot, result.steps[-1]))
        result.model = result.checkpoints[-1][1]
        return result


def _default_trainers() -> list[Trainer]:
    from .open_weights import OpenWeightsTrainer

    return [OpenWeightsTrainer(), ClassicalTrainer()]


_TRAINERS: list[Trainer] = _default_trainers()


def register_trainer(trainer: Trainer, first: bool = True) -> None:
    """Add a trainer; the first whose ``supports(model)`` is true trains a job for that model."""
    _TRAINERS.insert(0 if first else len(_TRAINERS), trainer)


def trainer_for(model: str) -> Trainer:
    """The trainer for a job's base model."""
    return next(t for t in _TRAINERS if t.supports(model))
