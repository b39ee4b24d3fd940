"""The roles a model plays in the comparison (notebook 05): the one spelling of each.

A role is a string (:class:`enum.StrEnum`), so it is the same key in a dict, the same label in a
DataFrame and the same text in the manifest's JSON as the plain word.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Who answers: the base model (zero-shot prompt), the fine-tune, the base model asked with the
    fine-tune's training prompt, and the free baseline (TF-IDF + logistic regression)."""

    BASE = "base"
    FINE_TUNED = "fine-tuned"
    BASE_ON_TRAINING_PROMPT = "base, training prompt"
    FREE_BASELINE = "free baseline"
