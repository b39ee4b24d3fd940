"""Seeded (multi-label) stratified samples and splits, and how close they come to the population."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.taxonomy import Taxonomy

# OpenAI rejects a training or validation file with fewer examples (fine-tuning guide, checked
# 2026-11).
MIN_EXAMPLES = 10
# How the training comments are drawn: each label's share as in the population, or as even as the
# data allows
TRAIN_SAMPLING = ("stratified", "balanced")


def multi_hot(label_lists, n_labels: int) -> np.ndarray:
    """An (n_rows, n_labels) 0/1 matrix from lists of label ids."""
    y = np.zeros((len(label_lists), n_labels), dtype=np.int8)
    for row, ids in enumerate(label_lists):
        y[row, list(ids)] = 1
    return y


def _n_labels(frame: pd.DataFrame, n_labels: int | None) -> int:
    return (
        n_labels
        if n_labels is not None
        else 1 + max((max(ids) for ids in frame["labels"] if len(ids)), default=0)
    )


def stratified_sample(
    frame: pd.DataFrame, n: int, *, seed: int, n_labels: int | None = None
) -> pd.DataFrame:
    """n rows whose per-label support follows the population's (iterative stratification), seeded.

    Uses ``iterstrat``'s MultilabelStratifiedShuffleSplit, then tops up or trims at random (same
    seed) to exactly n rows, since iterative stratification only approximates the requested size.
    """
    chosen, _ = _split_indices(frame, n, seed=seed, n_labels=n_labels)
    return frame.iloc[chosen].reset_index(drop=True)


def balanced_sample(
    frame: pd.DataFrame, n: int, *, seed: int, n_labels: int | None = None
) -> pd.DataFrame:
    """n rows in which every label is carried by about n / (labels present) rows where the data has
    them, so the majority label (``neutral``) no longer dominates what a model is trained on.

    Labels are filled rarest first, each up to its quota, by seeded random draws among the rows that
    carry it; a label with fewer rows gives all it has, and the rows left to reach n are drawn at
    random.
    """
    if not 0 < n <= len(frame):
        raise DataError(f"cannot sample {n} rows from {len(frame)}", rule="sample-size")
    y = multi_hot(frame["labels"].tolist(), _n_labels(frame, n_labels))
    rng = np.random.default_rng(seed)
    present = np.flatnonzero(y.sum(axis=0))
    quota = -(-n // max(len(present), 1))
    chosen: list[int] = []
    taken = np.zeros(len(frame), dtype=bool)
    for label in present[np.argsort(y[:, present].sum(axis=0), kind="stable")]:
        have = int(y[chosen, label].sum()) if chosen else 0
        candidates = np.flatnonzero((y[:, label] == 1) & ~taken)
        pick = rng.permutation(candidates)[: max(0, min(quota - have, n - len(chosen)))]
        chosen += pick.tolist()
        taken[pick] = True
    if len(chosen) < n:
        rest = rng.permutation(np.flatnonzero(~taken))[: n - len(chosen)]
        chosen += rest.tolist()
    return frame.iloc[np.sort(chosen)].reset_index(drop=True)


def _train_sample(
    frame: pd.DataFrame, n: int, *, seed: int, n_labels: int | None, how: str
) -> pd.DataFrame:
    if how not in TRAIN_SAMPLING:
        raise DataError(
            f"train_sampling={how!r}: use one of {', '.join(TRAIN_SAMPLING)}", rule="train-sampling"
        )
    draw = balanced_sample if how == "balanced" else stratified_sample
    return draw(frame, n, seed=seed, n_labels=n_labels)


def _split_indices(
    frame: pd.DataFrame, n: int, *, seed: int, n_labels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    if not 0 < n <= len(frame):
        raise DataError(f"cannot sample {n} rows from {len(frame)}", rule="sample-size")
    if n == len(frame):
        return np.arange(len(frame)), np.array([], dtype=int)
    y = multi_hot(frame["labels"].tolist(), _n_labels(frame, n_labels))
    splitter = MultilabelStratifiedShuffleSplit(
        n_splits=1, train_size=n, test_size=len(frame) - n, random_state=seed
    )
    chosen, rest = next(splitter.split(np.zeros(len(frame)), y))
    rng = np.random.default_rng(seed)
    if len(chosen) < n:
        chosen = np.concatenate([chosen, rng.choice(rest, n - len(chosen), replace=False)])
    elif len(chosen) > n:
        chosen = rng.choice(chosen, n, replace=False)
    chosen = np.sort(_ensure_every_label(np.sort(chosen), y, rng))
    return chosen, np.setdiff1d(np.arange(len(frame)), chosen)


def _ensure_every_label(chosen: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap rows in so that every label the population has appears at least once in the sample.

    Proportional allocation rounds a label with expected count below one down to zero; for each such
    label one row carrying it replaces a row whose labels all stay present without it.
    """
    chosen = chosen.copy()
    for label in np.argsort(y.sum(axis=0)):
        if y[:, label].sum() == 0 or y[chosen, label].any():
            continue
        counts = y[chosen].sum(axis=0)
        removable = [i for i, row in enumerate(chosen) if np.all(counts[y[row] == 1] > 1)]
        candidates = np.setdiff1d(np.flatnonzero(y[:, label]), chosen)
        if not removable or not len(candidates):
            break
        chosen[rng.choice(removable)] = rng.choice(candidates)
    return chosen


def split_frame(
    frame: pd.DataFrame, shares: dict[str, float], *, seed: int, n_labels: int | None = None
) -> dict[str, pd.DataFrame]:
    """Cut one frame into named, stratified, seeded parts; the first name takes what the others
    leave."""
    names = list(shares)
    out, rest = {}, frame.reset_index(drop=True)
    for name in names[1:]:
        n = max(1, round(shares[name] * len(frame)))
        if n >= len(rest):
            raise DataError(
                f"{len(frame)} rows are too few to split off a {name} split", rule="split-size"
            )
        taken, kept = _split_indices(rest, n, seed=seed, n_labels=n_labels)
        out[name] = rest.iloc[taken].reset_index(drop=True)
        rest = rest.iloc[kept].reset_index(drop=True)
    return {names[0]: rest} | out


def support_table(
    population: pd.DataFrame, sample: pd.DataFrame, taxonomy: Taxonomy
) -> pd.DataFrame:
    """Per-label share of rows in the population and the sample, side by side."""
    tax = taxonomy
    pop = multi_hot(population["labels"].tolist(), len(tax)).mean(axis=0)
    smp = multi_hot(sample["labels"].tolist(), len(tax)).mean(axis=0)
    return pd.DataFrame(
        {
            "label": tax.labels,
            "population %": np.round(pop * 100, 2),
            "sample %": np.round(smp * 100, 2),
            "difference (pp)": np.round((smp - pop) * 100, 2),
        }
    )


def to_frame(split) -> pd.DataFrame:
    """A split as a DataFrame (text, labels as list of ids, id)."""
    frame = split.to_pandas()
    frame["labels"] = [list(map(int, ids)) for ids in frame["labels"]]
    return frame[["text", "labels", "id"]]


def make_samples(
    dd,
    *,
    n_train: int,
    n_validation: int,
    n_eval: int,
    seed: int,
    n_labels: int | None = None,
    min_examples: int = MIN_EXAMPLES,
    train_sampling: str = "stratified",
) -> dict[str, pd.DataFrame]:
    """Stratified, seeded samples: train from train, validation from the validation split, eval
    from test (``train_sampling="balanced"`` evens out the labels of the training sample only).

    Only the eval sample touches the test split, and only notebook 05 reads it. A size of 0 takes
    the whole split. A training or validation sample below OpenAI's minimum of 10 examples is an
    error.
    """
    plan = {
        "train": ("train", n_train),
        "validation": ("validation", n_validation),
        "eval": ("test", n_eval),
    }
    frames = {name: to_frame(dd[split]) for name, (split, _) in plan.items()}
    for name, (split, n) in plan.items():
        size = n or len(frames[name])
        if name != "eval" and min(size, len(frames[name])) < min_examples:
            raise DataError(
                f"the {name} sample would hold {min(size, len(frames[name]))} examples ({split} "
                "split: "
                f"{len(frames[name])} rows); fine-tuning needs at least {min_examples}",
                path=f"split {split}",
                rule="too-few-examples",
            )
        if size > len(frames[name]):
            raise DataError(
                f"n_{'eval' if name == 'eval' else name}={n} is more than the "
                f"{len(frames[name])} rows of "
                f"the {split} split; ask for fewer, or 0 for all",
                path=f"split {split}",
                rule="sample-size",
            )
    return {
        name: _train_sample(
            frames[name], n or len(frames[name]), seed=seed, n_labels=n_labels, how=train_sampling
        )
        if name == "train"
        else stratified_sample(frames[name], n or len(frames[name]), seed=seed, n_labels=n_labels)
        for name, (_, n) in plan.items()
    }


def baseline_draws(
    dd,
    *,
    n_draws: int,
    n_train: int,
    n_validation: int,
    seed: int,
    n_labels: int | None = None,
    train_sampling: str = "stratified",
) -> dict[int, dict[str, pd.DataFrame]]:
    """Further training and validation samples, drawn like the run's own with seeds ``seed + 1
    ...``.

    The free baseline is retrained on each: the spread of its test scores shows how much a score
    moves with the draw of training examples alone (the test split is never touched).
    """
    frames = {"train": to_frame(dd["train"]), "validation": to_frame(dd["validation"])}
    sizes = {"train": n_train, "validation": n_validation}
    return {
        seed + k: {
            "train": _train_sample(
                frames["train"],
                sizes["train"] or len(frames["train"]),
                seed=seed + k,
                n_labels=n_labels,
                how=train_sampling,
            ),
            "validation": stratified_sample(
                frames["validation"],
                sizes["validation"] or len(frames["validation"]),
                seed=seed + k,
                n_labels=n_labels,
            ),
        }
        for k in range(1, n_draws + 1)
    }
