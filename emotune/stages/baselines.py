"""The free comparators of notebook 05: a TF-IDF baseline retrained on seeded draws, and the floors.

- **The free baseline**: TF-IDF + one-vs-rest logistic regression, thresholds tuned for macro-F1 on
  the validation sample. It is trained on the run's own training sample (the one the fine-tune saw)
  and again on
  each further draw of the same size (notebook 01's ``draws/``): the spread of its test scores
  across draws is how much a score moves with the draw of training examples alone.
- **Floors**: what a model that never reads the comment scores. The majority answer (the most common
  label set of the training sample, for every comment) and the label-prior random answer (each label
  said with
  its training frequency, averaged over :data:`RANDOM_DRAWS` seeded draws). A score near a floor is
  no skill, whatever its interval.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import __version__ as sklearn_version
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline

from ..core.prompts import example_labels
from ..core.taxonomy import Taxonomy
from ..core.thresholds import tune_thresholds
from .metrics import to_matrix
from .reuse import content_key, reused
from .statistics import point_scores

# random answers averaged for the label-prior floor (its SE is then ~1/14 of one draw's)
RANDOM_DRAWS = 200
SPREAD_METRICS = ("macro_f1", "micro_f1", "exact_match")


def gold_labels(frame: pd.DataFrame, taxonomy: Taxonomy) -> list[list[str]]:
    """Each row's gold labels as names at the chosen level."""
    return [example_labels(ids, taxonomy) for ids in frame["labels"]]


@dataclass
class Baseline:
    """TF-IDF + one-vs-rest logistic regression (liblinear), thresholds tuned for macro-F1 on the
    validation
    sample."""

    pipeline: object
    thresholds: np.ndarray
    labels: tuple[str, ...]

    def predict(self, texts) -> list[list[str]]:
        probs = self.pipeline.predict_proba(list(texts))
        decided = probs >= self.thresholds
        empty = ~decided.any(axis=1)
        decided[empty, probs[empty].argmax(axis=1)] = True
        return [[self.labels[j] for j in np.flatnonzero(row)] for row in decided]


def train_baseline(
    train: pd.DataFrame, validation: pd.DataFrame, taxonomy: Taxonomy, seed: int = 0
) -> Baseline:
    """The free classical comparator, trained on the same training sample as the fine-tune."""
    tax = taxonomy
    y = to_matrix(gold_labels(train, taxonomy), tax)
    keep = y.sum(axis=0) > 0  # a label never seen in training can't be learned
    pipe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        OneVsRestClassifier(LogisticRegression(C=4.0, solver="liblinear", random_state=seed)),
    )
    pipe.fit(train["text"].tolist(), y[:, keep])
    yv = to_matrix(gold_labels(validation, taxonomy), tax)[:, keep]
    thresholds = tune_thresholds(pipe.predict_proba(validation["text"].tolist()), yv)
    return Baseline(pipe, thresholds, tuple(np.array(tax.labels)[keep]))


def baselines_by_seed(
    samples: dict[str, pd.DataFrame],
    draws: dict[int, dict[str, pd.DataFrame]],
    texts,
    taxonomy: Taxonomy,
    *,
    seed: int,
) -> dict[int, list[list[str]]]:
    """The baseline's answers on ``texts`` for the run's own sample (key ``seed``) and for every
    draw."""
    sets = {seed: samples} | draws
    texts = list(texts)

    def answers(s: int, d: dict) -> list[list[str]]:  # computed once per sweep (stages/reuse.py)
        def fit() -> list[list[str]]:
            return train_baseline(d["train"], d["validation"], taxonomy, seed=s).predict(texts)

        key = content_key(d["train"], d["validation"], texts, taxonomy.labels, s, sklearn_version)
        return reused("free-baseline", key, fit)

    return {s: answers(s, d) for s, d in sets.items()}


@dataclass(frozen=True)
class SeedSpread:
    """The free baseline's test scores per training draw, and their standard deviation."""

    per_seed: pd.DataFrame  # index: seed; columns: SPREAD_METRICS
    own_seed: int

    @property
    def n_draws(self) -> int:
        return len(self.per_seed)

    def sd(self, metric: str = "macro_f1") -> float:
        """Sample standard deviation across draws (NaN with a single draw)."""
        return float(self.per_seed[metric].std(ddof=1)) if self.n_draws > 1 else float("nan")

    def noise_band(self, metric: str = "macro_f1") -> float:
        """About 95% of differences between two models trained on independent draws lie within
        +/- this:
        2 x sqrt(2) x the between-draw SD (assuming the other model varies as much as the baseline).
        """
        return 2 * np.sqrt(2) * self.sd(metric)

    def to_frame(self) -> pd.DataFrame:
        summary = self.per_seed.agg(["mean", "std"]).rename(index={"mean": "mean", "std": "SD"})
        table = pd.concat([self.per_seed.rename(index=lambda s: f"seed {s}"), summary])
        table.index.name = "training draw"
        return table


def seed_spread(
    gold, by_seed: dict[int, list[list[str]]], taxonomy: Taxonomy, own_seed: int
) -> SeedSpread:
    """Score each draw's baseline on the same test comments."""
    tax = taxonomy
    y = to_matrix(gold, tax)
    rows = {s: point_scores(y, to_matrix(pred, tax)) for s, pred in by_seed.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")[list(SPREAD_METRICS)]
    table.index.name = "seed"
    return SeedSpread(table, own_seed)


def majority_answer(train: pd.DataFrame, taxonomy: Taxonomy) -> list[str]:
    """The most common label set of the training sample (ties: the first in label order)."""
    counts = Counter(tuple(sorted(labels)) for labels in gold_labels(train, taxonomy))
    best = max(counts.values())
    return list(min(k for k, c in counts.items() if c == best))


def floors(gold, train: pd.DataFrame, taxonomy: Taxonomy, *, seed: int = 0) -> pd.DataFrame:
    """Scores of the majority answer and of the label-prior random answer on these comments."""
    tax = taxonomy
    y = to_matrix(gold, tax)
    majority = majority_answer(train, tax)
    rows = {f"always '{', '.join(majority)}'": point_scores(y, to_matrix([majority] * len(y), tax))}
    prior = to_matrix(gold_labels(train, tax), tax).mean(axis=0)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(RANDOM_DRAWS):
        if tax.multi_label:
            guess = (rng.random(y.shape) < prior).astype(np.int8)
        else:
            guess = np.eye(len(tax), dtype=np.int8)[
                rng.choice(len(tax), size=len(y), p=prior / prior.sum())
            ]
        draws.append(point_scores(y, guess))
    rows["random by label prior"] = pd.DataFrame(draws).mean().to_dict()
    out = pd.DataFrame.from_dict(rows, orient="index")[list(SPREAD_METRICS)]
    out.index.name = "floor"
    return out


def with_floors(
    table: pd.DataFrame, floor_table: pd.DataFrame, level: str, metrics: tuple[str, ...]
) -> pd.DataFrame:
    """The score table (model per column, level and metric per row) with a column per floor
    beside the
    models, filled at the run's level (the floors are measured there)."""
    shown = table[table.metric.isin(metrics)].pivot_table(
        index=["level", "metric"], columns="model", values="value", sort=False
    )
    for name, row in floor_table.iterrows():
        shown[f"floor: {name}"] = [
            row[metric] if lvl == level and metric in row.index else float("nan")
            for lvl, metric in shown.index
        ]
    return shown
