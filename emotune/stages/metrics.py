"""Multi-label scores with bootstrap confidence intervals and a paired test. Pure functions on 0/1 matrices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.taxonomy import Taxonomy, base_of, get_taxonomy, levels_of, map_labels

HEADLINE = ("macro_f1", "micro_f1", "weighted_f1", "exact_match", "hamming_loss", "jaccard")


def to_matrix(label_lists: Sequence[Sequence[str]], taxonomy: str | Taxonomy) -> np.ndarray:
    """A (rows, labels) 0/1 matrix from label-name lists; names outside the taxonomy are ignored."""
    tax = get_taxonomy(taxonomy)
    index = {lab: i for i, lab in enumerate(tax.labels)}
    y = np.zeros((len(label_lists), len(tax)), dtype=np.int8)
    for row, labels in enumerate(label_lists):
        for lab in labels:
            if lab in index:
                y[row, index[lab]] = 1
    return y


def map_rows(label_lists: Sequence[Sequence[str]], source: str, target: str) -> list[list[str]]:
    """Map each row's labels to another taxonomy level."""
    return [map_labels(labels, source, target) for labels in label_lists]


def _f1(tp, fp, fn):
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def _counts(y_true: np.ndarray, y_pred: np.ndarray):
    t, p = y_true.astype(bool), y_pred.astype(bool)
    return (t & p).astype(np.int32), (~t & p).astype(np.int32), (t & ~p).astype(np.int32)


def _from_counts(tp, fp, fn, support, exact, hamming, jaccard) -> dict[str, np.ndarray]:
    """Metrics from summed counts; works on one row or a batch of bootstrap rows (last axis = labels)."""
    per_label = _f1(tp, fp, fn)
    # Macro-F1 averages the labels that occur (in gold or predictions): a label absent from a bootstrap
    # resample has no F1, and scoring it 0 would drag every resample down. On a sample where every label
    # occurs this equals scikit-learn's macro average.
    occurs = (tp + fp + fn) > 0
    macro = np.where(occurs, per_label, 0).sum(axis=-1) / np.maximum(occurs.sum(axis=-1), 1)
    weights = support / np.maximum(support.sum(axis=-1, keepdims=True), 1)
    return {"macro_f1": macro, "micro_f1": _f1(tp.sum(-1), fp.sum(-1), fn.sum(-1)),
            "weighted_f1": (per_label * weights).sum(axis=-1), "exact_match": exact, "hamming_loss": hamming,
            "jaccard": jaccard}


def _row_stats(y_true: np.ndarray, y_pred: np.ndarray):
    tp, fp, fn = _counts(y_true, y_pred)
    inter, union = tp.sum(1), (tp + fp + fn).sum(1)
    jac = np.divide(inter, union, out=np.ones(len(union)), where=union > 0)
    exact = (y_true == y_pred).all(axis=1).astype(float)
    ham = (y_true != y_pred).mean(axis=1)
    return tp, fp, fn, y_true.astype(np.int32), exact, ham, jac


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Micro, macro and weighted F1, exact match, Hamming loss and sample-averaged Jaccard."""
    tp, fp, fn, sup, exact, ham, jac = _row_stats(y_true, y_pred)
    out = _from_counts(tp.sum(0), fp.sum(0), fn.sum(0), sup.sum(0), exact.mean(), ham.mean(), jac.mean())
    return {k: float(v) for k, v in out.items()}


def per_label(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support for each label."""
    tp, fp, fn = (c.sum(0) for c in _counts(y_true, y_pred))
    precision = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(len(tp)), where=(tp + fn) > 0)
    return pd.DataFrame({"label": list(labels), "precision": precision, "recall": recall,
                         "f1": _f1(tp, fp, fn), "support": y_true.sum(0).astype(int)})


def _weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap resamples as multinomial row weights: row i of the result counts how often each item is drawn."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=n_boot).astype(np.float64)


def bootstrap(y_true: np.ndarray, y_pred: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
              weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each metric over ``n_boot`` bootstrap resamples of the items (rows)."""
    n = len(y_true)
    w = _weights(n, n_boot, seed) if weights is None else weights
    tp, fp, fn, sup, exact, ham, jac = _row_stats(y_true, y_pred)
    return _from_counts(w @ tp, w @ fp, w @ fn, w @ sup, w @ exact / n, w @ ham / n, w @ jac / n)


def confidence_intervals(y_true: np.ndarray, y_pred: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                         level: float = 0.95) -> pd.DataFrame:
    """Point estimate and percentile bootstrap interval for each headline metric."""
    point = scores(y_true, y_pred)
    boot = bootstrap(y_true, y_pred, n_boot=n_boot, seed=seed)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    return pd.DataFrame([{"metric": m, "value": point[m], "ci_low": float(np.quantile(boot[m], lo_q)),
                          "ci_high": float(np.quantile(boot[m], hi_q))} for m in HEADLINE])


@dataclass(frozen=True)
class PairedResult:
    """Model B minus model A on one metric, with a paired-bootstrap interval and p-value."""

    metric: str
    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def paired_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: str = "macro_f1", *,
                n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> PairedResult:
    """Paired bootstrap: both models are scored on the same resampled items, so item difficulty cancels.

    The two-sided p-value is twice the share of resamples on the other side of zero from the observed
    difference (floored at 1 / n_boot).
    """
    w = _weights(len(y_true), n_boot, seed)
    a, b = scores(y_true, pred_a)[metric], scores(y_true, pred_b)[metric]
    diffs = bootstrap(y_true, pred_b, weights=w)[metric] - bootstrap(y_true, pred_a, weights=w)[metric]
    observed = b - a
    other_side = np.mean(diffs <= 0) if observed > 0 else np.mean(diffs >= 0)
    p = float(min(1.0, max(2 * other_side, 1 / n_boot)))
    lo, hi = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return PairedResult(metric, a, b, observed, float(lo), float(hi), p)


def score_models(gold: Sequence[Sequence[str]], predictions: dict[str, Sequence[Sequence[str]]], *,
                 base: str | None = None, levels: Sequence[str] | None = None,
                 source: str | None = None, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every model at every level: headline metrics with 95% bootstrap intervals (one row per model/level/metric).

    ``gold`` and the predictions are label names at ``source`` level (default: ``base``); levels coarser
    than the source are scored by mapping both through the taxonomy.
    """
    source = get_taxonomy(source or base).name
    levels = levels or levels_of(base_of(source))
    rows = []
    for level in levels:
        try:
            y_true = to_matrix(map_rows(gold, source, level), level)
        except Exception:  # a level finer than the source can't be scored
            continue
        for name, preds in predictions.items():
            table = confidence_intervals(y_true, to_matrix(map_rows(preds, source, level), level), n_boot=n_boot, seed=seed)
            rows.append(table.assign(model=name, level=level))
    out = pd.concat(rows, ignore_index=True)
    return out[["level", "model", "metric", "value", "ci_low", "ci_high"]]


def single_label_report(gold: Sequence[Sequence[str]], predictions: dict[str, Sequence[Sequence[str]]],
                        taxonomy: str | Taxonomy) -> dict[str, pd.DataFrame]:
    """For single-label data: each model's accuracy, and the fine-tuned model's confusion matrix (scikit-learn).

    An answer counts as right only when it is exactly the gold label (an answer with several labels, or none,
    is wrong and shown as the column ``(other)``). For multi-label data accuracy is the exact-match figure of
    :func:`scores`, and no confusion matrix is drawn.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix

    tax = get_taxonomy(taxonomy)
    if tax.multi_label:
        note = pd.DataFrame([{"note": f"{tax.name} is multi-label: accuracy is exact match (above); no confusion matrix"}])
        return {"accuracy": note, "confusion": pd.DataFrame()}
    truth = [g[0] if len(g) == 1 else "(other)" for g in gold]
    rows, confusion = [], pd.DataFrame()
    for name, preds in predictions.items():
        said = [p[0] if len(p) == 1 and p[0] in tax.labels else "(other)" for p in preds]
        rows.append({"model": name, "accuracy": accuracy_score(truth, said), "items": len(truth)})
        if name == "fine-tuned":
            names = [*tax.labels, "(other)"]
            confusion = pd.DataFrame(confusion_matrix(truth, said, labels=names), index=pd.Index(names, name="gold"),
                                     columns=pd.Index(names, name="predicted"))
            confusion = confusion.loc[:, (confusion.sum(axis=0) > 0) | confusion.columns.isin(tax.labels)]
    return {"accuracy": pd.DataFrame(rows).set_index("model").round(3), "confusion": confusion}


def top_confusions(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], k: int = 10) -> pd.DataFrame:
    """The most frequent (gold label missed, label predicted instead) pairs on the same comment."""
    counts: dict[tuple[str, str], int] = {}
    for g, p in zip(gold, pred, strict=True):
        missed, extra = set(g) - set(p), set(p) - set(g)
        for m in missed:
            for e in extra:
                counts[(m, e)] = counts.get((m, e), 0) + 1
    rows = sorted(((m, e, c) for (m, e), c in counts.items()), key=lambda r: (-r[2], r[0], r[1]))[:k]
    return pd.DataFrame(rows, columns=["gold label", "predicted instead", "comments"])
