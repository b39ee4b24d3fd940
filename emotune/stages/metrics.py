"""Multi-label scores per model and level, per label, and where the errors go. Pure functions on
label lists
and 0/1 matrices; the intervals and tests come from :mod:`emotune.stages.statistics`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.roles import Role
from ..core.taxonomy import Taxonomy, base_of, level_taxonomies, map_labels
from .statistics import METRICS, N_RESAMPLES, LabelSets, bca_intervals, point_scores

HEADLINE = METRICS


def to_matrix(label_lists: Sequence[Sequence[str]], taxonomy: Taxonomy) -> np.ndarray:
    """A (rows, labels) 0/1 matrix from label-name lists; names outside the taxonomy are ignored."""
    tax = taxonomy
    index = {lab: i for i, lab in enumerate(tax.labels)}
    y = np.zeros((len(label_lists), len(tax)), dtype=np.int8)
    for row, labels in enumerate(label_lists):
        for lab in labels:
            if lab in index:
                y[row, index[lab]] = 1
    return y


def map_rows(
    label_lists: Sequence[Sequence[str]], source: Taxonomy, target: Taxonomy
) -> list[list[str]]:
    """Map each row's labels to another taxonomy level."""
    return [map_labels(labels, source, target) for labels in label_lists]


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Macro-F1 (all labels with gold examples, and those with at least 5), micro and weighted F1,
    exact match, Hamming loss and sample-averaged Jaccard
    (:func:`emotune.stages.statistics.point_scores`)."""
    return point_scores(y_true, y_pred)


def per_label(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support for each label (scikit-learn, zero where a ratio is
    undefined)."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    return pd.DataFrame(
        {
            "label": list(labels),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(int),
        }
    )


def confidence_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
    labels: LabelSets | None = None,
) -> pd.DataFrame:
    """Point estimate and 95% BCa bootstrap interval for each headline metric."""
    ci = bca_intervals(y_true, y_pred, labels=labels, n_resamples=n_resamples, seed=seed)
    return pd.DataFrame(
        [
            {"metric": m, "value": ci[m][0], "ci_low": ci[m][1], "ci_high": ci[m][2]}
            for m in HEADLINE
        ]
    )


def score_models(
    gold: Sequence[Sequence[str]],
    predictions: dict[str, Sequence[Sequence[str]]],
    *,
    source: Taxonomy,
    levels: Sequence[Taxonomy] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Every model at every level: headline metrics with 95% BCa intervals (one row per
    model/level/metric).

    ``gold`` and the predictions are label names of the ``source`` label set; ``levels`` (default:
    the base label set ``source`` groups and every level of it) coarser than the source are scored
    by mapping both through the taxonomy.
    """
    levels = levels or level_taxonomies(base_of(source))
    rows = []
    for level in levels:
        try:
            y_true = to_matrix(map_rows(gold, source, level), level)
        except Exception:  # a level finer than the source can't be scored
            continue
        labels = LabelSets.of(y_true)
        for name, preds in predictions.items():
            table = confidence_intervals(
                y_true,
                to_matrix(map_rows(preds, source, level), level),
                labels=labels,
                n_resamples=n_resamples,
                seed=seed,
            )
            rows.append(table.assign(model=name, level=level.name))
    out = pd.concat(rows, ignore_index=True)
    return out[["level", "model", "metric", "value", "ci_low", "ci_high"]]


def single_label_report(
    gold: Sequence[Sequence[str]],
    predictions: dict[str, Sequence[Sequence[str]]],
    taxonomy: Taxonomy,
) -> dict[str, pd.DataFrame]:
    """For single-label data: each model's accuracy, and the fine-tuned model's confusion matrix
    (scikit-learn).

    An answer counts as right only when it is exactly the gold label (an answer with several labels,
    or none, is wrong and shown as the column ``(other)``). For multi-label data accuracy is the
    exact-match figure of :func:`scores`, and no confusion matrix is drawn.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix

    tax = taxonomy
    if tax.multi_label:
        note = pd.DataFrame(
            [
                {
                    "note": f"{tax.name} is multi-label: accuracy is exact match (above); "
                    "no confusion matrix"
                }
            ]
        )
        return {"accuracy": note, "confusion": pd.DataFrame()}
    truth = [g[0] if len(g) == 1 else "(other)" for g in gold]
    rows, confusion = [], pd.DataFrame()
    for name, preds in predictions.items():
        said = [p[0] if len(p) == 1 and p[0] in tax.labels else "(other)" for p in preds]
        rows.append({"model": name, "accuracy": accuracy_score(truth, said), "items": len(truth)})
        if name == Role.FINE_TUNED:
            names = [*tax.labels, "(other)"]
            confusion = pd.DataFrame(
                confusion_matrix(truth, said, labels=names),
                index=pd.Index(names, name="gold"),
                columns=pd.Index(names, name="predicted"),
            )
            confusion = confusion.loc[
                :, (confusion.sum(axis=0) > 0) | confusion.columns.isin(tax.labels)
            ]
    return {"accuracy": pd.DataFrame(rows).set_index("model").round(3), "confusion": confusion}


def top_confusions(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], k: int = 10
) -> pd.DataFrame:
    """The most frequent (gold label missed, label predicted instead) pairs on the same comment."""
    counts: dict[tuple[str, str], int] = {}
    for g, p in zip(gold, pred, strict=True):
        missed, extra = set(g) - set(p), set(p) - set(g)
        for m in missed:
            for e in extra:
                counts[(m, e)] = counts.get((m, e), 0) + 1
    rows = sorted(((m, e, c) for (m, e), c in counts.items()), key=lambda r: (-r[2], r[0], r[1]))[
        :k
    ]
    return pd.DataFrame(rows, columns=["gold label", "predicted instead", "comments"])
