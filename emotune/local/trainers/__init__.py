"""Trainers behind the local backend, and the registry that picks one per job.

- :mod:`.zero_shot`: the "base model" for OpenAI model names (an untrained label-word matcher).
- :mod:`.classical`: the classical stand-in fine-tune (TF-IDF + logistic regression by mini-batch
  SGD).
- :mod:`.open_weights`: LoRA on a real open-weights LLM (optional extra), served by :mod:`.serving`.

A new trainer is one module implementing :class:`~.base.Trainer`, registered with
:func:`register_trainer`.
"""

from __future__ import annotations

from pathlib import Path

from .base import Cancelled, ChatModel, Dataset, StepMetrics, Trainer, TrainResult, parse_jsonl
from .classical import ClassicalModel, ClassicalTrainer, load_classical
from .grammar import GrammarError
from .open_weights import MARKER, OpenWeightsTrainer, is_open_weights
from .serving import OpenWeightsModel
from .zero_shot import ZeroShotModel

__all__ = [
    "Cancelled",
    "ChatModel",
    "ClassicalModel",
    "ClassicalTrainer",
    "Dataset",
    "GrammarError",
    "OpenWeightsModel",
    "OpenWeightsTrainer",
    "StepMetrics",
    "TrainResult",
    "Trainer",
    "ZeroShotModel",
    "is_open_weights",
    "load_model",
    "parse_jsonl",
    "register_trainer",
    "trainer_for",
]

_TRAINERS: list[Trainer] = [OpenWeightsTrainer(), ClassicalTrainer()]


def register_trainer(trainer: Trainer, first: bool = True) -> None:
    """Add a trainer; the first whose ``supports(model)`` is true trains a job for that model."""
    _TRAINERS.insert(0 if first else len(_TRAINERS), trainer)


def trainer_for(model: str) -> Trainer:
    """The trainer for a job's base model."""
    return next(t for t in _TRAINERS if t.supports(model))


def load_model(folder: Path) -> ChatModel:
    """A trained model saved by a trainer."""
    if (folder / MARKER).exists():
        return OpenWeightsModel.load(folder)
    return load_classical(folder)
