"""How sure we can be: intervals for each score, tests for each difference, and a correction for
asking many.

Which method answers which question, and why:

- **"How good is this model on comments like these?"** The score on the evaluation sample with a 95%
  bias-corrected and accelerated (BCa) bootstrap interval: :func:`scipy.stats.bootstrap` with
  ``method="BCa"`` and 9,999 resamples of the comments. Macro-F1 leans on rare labels that drop out
  of many resamples, which makes the bootstrap distribution biased and skewed; the plain percentile
  interval inherits both, BCa corrects for them (Efron 1987).
- **"Is model B better than model A on the same comments?"** A paired permutation (randomization)
  test: :func:`scipy.stats.permutation_test` with ``permutation_type="samples"``. If the two models
  were
  exchangeable, swapping their answers on any comment would leave the score difference's
  distribution unchanged; the test draws 9,999 random swap patterns and counts the ``k`` whose
  absolute difference reaches the observed one, so p = (k + 1) / (B + 1) (SciPy's own count for a
  randomized test): never 0, resolution 1 / 10,000. The size of the difference gets a paired BCa
  bootstrap interval (the same resampled comments for both models, so comment difficulty cancels).
- **"Which of the several differences reported hold?"** Holm's step-down correction across the whole
  family of tests in a table (:func:`statsmodels.stats.multitest.multipletests`): it controls the
  chance
  of any false claim at 5% without assuming the tests are independent.
- **Macro-F1 is reported twice**: over every label with at least one gold example in the sample
  (scikit-learn's ``f1_score(average="macro", labels=...)``), and over the labels with at least
  :data:`MIN_SUPPORT` gold examples, with the count of labels left out: an F1 on one or two examples
  is mostly noise, and on a few hundred comments such labels can carry half of the all-label figure.

Everything here is a pure function of 0/1 matrices (rows: comments, columns: labels), so an
independent recomputation from the saved predictions reproduces every interval and p-value (the seed
is fixed).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

MIN_SUPPORT = 5  # gold examples a label needs to count in the "supported labels" macro-F1
N_RESAMPLES = 9_999  # bootstrap resamples and permutations: B + 1 = 10,000
LEVEL = 0.95
ALPHA = 0.05
TOST_LEVEL = (
    1 - 2 * ALPHA
)  # two one-sided tests at ALPHA each = one (1 - 2 ALPHA) interval inside the margin
METRICS = (
    "macro_f1",
    "macro_f1_supported",
    "micro_f1",
    "weighted_f1",
    "exact_match",
    "hamming_loss",
    "jaccard",
)
_BATCH = 500  # resamples per vectorized call: bounds memory to about batch x comments floats


@dataclass(frozen=True)
class LabelSets:
    """Which labels each macro average covers, fixed by the gold labels of the whole sample."""

    present: np.ndarray  # bool per label: at least one gold example
    supported: np.ndarray  # bool per label: at least MIN_SUPPORT gold examples

    @classmethod
    def of(cls, y_true: np.ndarray, min_support: int = MIN_SUPPORT) -> LabelSets:
        support = np.asarray(y_true).sum(axis=0)
        return cls(support > 0, support >= min_support)

    def describe(self) -> str:
        n, kept = len(self.present), int(self.supported.sum())
        return (
            f"{kept} of {n} labels have at least {MIN_SUPPORT} test examples "
            f"({n - kept} left out of that average)"
        )


def row_features(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per comment: true positives, false positives and false negatives per label, then exact match,
    Hamming loss and Jaccard. Every metric is a function of these columns' (weighted) sums."""
    t, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    tp, fp, fn = t & p, ~t & p, t & ~p
    union = (tp | fp | fn).sum(axis=1)
    jaccard = np.divide(tp.sum(axis=1), union, out=np.ones(len(t)), where=union > 0)
    extra = np.column_stack([(t == p).all(axis=1), (t != p).mean(axis=1), jaccard])
    return np.hstack([tp, fp, fn, extra]).astype(np.float64)


def _f1(tp, fp, fn):
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(np.broadcast(tp, denom).shape), where=denom > 0)


def from_sums(sums: np.ndarray, n_items, labels: LabelSets) -> dict[str, np.ndarray]:
    """Each metric from summed :func:`row_features` (last axis); works on one sum or a stack of
    resamples."""
    k = len(labels.present)
    tp, fp, fn = sums[..., :k], sums[..., k : 2 * k], sums[..., 2 * k : 3 * k]
    per_label = _f1(tp, fp, fn)
    support = tp + fn
    weights = support / np.maximum(support.sum(axis=-1, keepdims=True), 1)
    n_items = np.asarray(n_items, dtype=float)

    def macro(mask):
        return (
            per_label[..., mask].mean(axis=-1)
            if mask.any()
            else np.full(per_label.shape[:-1], np.nan)
        )

    return {
        "macro_f1": macro(labels.present),
        "macro_f1_supported": macro(labels.supported),
        "micro_f1": _f1(tp.sum(-1), fp.sum(-1), fn.sum(-1)),
        "weighted_f1": (per_label * weights).sum(axis=-1),
        "exact_match": sums[..., 3 * k] / n_items,
        "hamming_loss": sums[..., 3 * k + 1] / n_items,
        "jaccard": sums[..., 3 * k + 2] / n_items,
    }


def point_scores(
    y_true: np.ndarray, y_pred: np.ndarray, labels: LabelSets | None = None
) -> dict[str, float]:
    """Every metric of :data:`METRICS` on the whole sample."""
    labels = labels or LabelSets.of(y_true)
    out = from_sums(row_features(y_true, y_pred).sum(axis=0), len(y_true), labels)
    return {m: float(out[m]) for m in METRICS}


def _weights(index: np.ndarray, n: int) -> np.ndarray:
    """Resampled row indices (..., m) as counts per row (..., n): how often each comment was
    drawn."""
    flat = index.reshape(-1, index.shape[-1])
    offsets = (np.arange(len(flat)) * n)[:, None]
    counts = np.bincount((flat + offsets).ravel(), minlength=len(flat) * n).reshape(len(flat), n)
    return counts.reshape(*index.shape[:-1], n).astype(np.float32)


def _metric_statistic(features: np.ndarray, labels: LabelSets, metrics: tuple[str, ...]):
    n, features32 = len(features), features.astype(np.float32)

    def statistic(index, axis=-1):
        index = np.moveaxis(np.asarray(index), axis, -1)
        sums = (_weights(index, n) @ features32).astype(np.float64)
        out = from_sums(sums, index.shape[-1], labels)
        return np.stack([out[m] for m in metrics])

    return statistic


def _interval(res, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The BCa interval; where BCa is undefined (a degenerate bootstrap distribution, e.g. a score
    that is the same on every resample, as for two identical prediction sets) the percentile
    interval instead."""
    low, high = (
        np.atleast_1d(res.confidence_interval.low).astype(float),
        np.atleast_1d(res.confidence_interval.high).astype(float),
    )
    dist = np.atleast_2d(res.bootstrap_distribution)
    bad = np.isnan(low) | np.isnan(high)
    if bad.any():
        q = np.nanquantile(dist[bad], [(1 - level) / 2, (1 + level) / 2], axis=-1)
        low[bad], high[bad] = q[0], q[1]
    return low, high


@contextmanager
def _quiet():
    """SciPy warns when BCa is undefined; :func:`_interval` handles that case."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings(
            "ignore", message=".*BCa confidence interval cannot be calculated.*"
        )
        yield


def bca_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    labels: LabelSets | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, tuple[float, float, float]]:
    """(score, low, high) for every metric: BCa intervals from :func:`scipy.stats.bootstrap` over
    comments."""
    from scipy.stats import bootstrap

    labels = labels or LabelSets.of(y_true)
    metrics = tuple(m for m in METRICS if m != "macro_f1_supported" or labels.supported.any())
    stat = _metric_statistic(row_features(y_true, y_pred), labels, metrics)
    with _quiet():
        res = bootstrap(
            (np.arange(len(y_true)),),
            stat,
            n_resamples=n_resamples,
            batch=_BATCH,
            vectorized=True,
            confidence_level=level,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
        low, high = _interval(res, level)
    point = stat(np.arange(len(y_true)))
    out = {m: (float(point[i]), float(low[i]), float(high[i])) for i, m in enumerate(metrics)}
    return out | {m: (np.nan, np.nan, np.nan) for m in METRICS if m not in out}


@dataclass(frozen=True)
class Comparison:
    """Model B minus model A on one metric over the same comments: BCa interval and permutation
    p-value."""

    metric: str
    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_items: int
    p_holm: float | None = None  # set when the comparison is part of a corrected family
    eq_low: float = float(
        "nan"
    )  # 90% paired BCa interval: inside +/- a margin is TOST equivalence at 5%
    eq_high: float = float("nan")

    @property
    def p_reported(self) -> float:
        return self.p_value if self.p_holm is None else self.p_holm

    @property
    def significant(self) -> bool:
        return self.p_reported < ALPHA

    def equivalent(self, margin: float) -> bool:
        """Two one-sided tests at 5% (Schuirmann): the 90% interval lies inside +/- ``margin``."""
        return bool(-margin < self.eq_low and self.eq_high < margin)


def compare(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    metric: str = "macro_f1",
    *,
    labels: LabelSets | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Comparison:
    """B minus A: paired BCa interval of the difference, and the paired permutation test's
    p-value."""
    from scipy.stats import bootstrap, permutation_test

    labels = labels or LabelSets.of(y_true)
    n = len(y_true)
    fa, fb = row_features(y_true, pred_a), row_features(y_true, pred_b)
    a, b = (float(from_sums(f.sum(axis=0), n, labels)[metric]) for f in (fa, fb))
    total_a, total_b, swap = fa.sum(axis=0), fb.sum(axis=0), (fb - fa).astype(np.float32)

    def size(
        x, y, axis=-1
    ):  # x[..., i] is comment i's row from A (i) or from B (n + i) after the swaps
        chose_b = (np.moveaxis(np.asarray(x), axis, -1) >= n).astype(np.float32)
        sums_x = total_a + (chose_b @ swap).astype(np.float64)
        sums_y = total_a + total_b - sums_x
        return np.abs(from_sums(sums_y, n, labels)[metric] - from_sums(sums_x, n, labels)[metric])

    paired = np.hstack([fa, fb]).astype(np.float32)
    width = fa.shape[1]

    def difference(
        x, y, axis=-1
    ):  # the same resampled comments for both models: x holds their indices
        x = np.moveaxis(np.asarray(x), axis, -1)
        sums = (_weights(x, n) @ paired).astype(np.float64)
        m = x.shape[-1]
        return (
            from_sums(sums[..., width:], m, labels)[metric]
            - from_sums(sums[..., :width], m, labels)[metric]
        )

    rows = np.arange(n)
    with _quiet():
        test = permutation_test(
            (rows, rows + n),
            size,
            permutation_type="samples",
            n_resamples=n_resamples,
            batch=_BATCH,
            vectorized=True,
            alternative="greater",
            rng=np.random.default_rng(seed),
        )

        def paired_bca(confidence_level, **resamples):
            return bootstrap(
                (rows, rows),
                difference,
                paired=True,
                batch=_BATCH,
                vectorized=True,
                confidence_level=confidence_level,
                method="BCa",
                rng=np.random.default_rng(seed),
                **resamples,
            )

        interval = paired_bca(level, n_resamples=n_resamples)
        low, high = _interval(interval, level)
        # the same resamples at the TOST level: no second bootstrap distribution
        equivalence = paired_bca(TOST_LEVEL, n_resamples=0, bootstrap_result=interval)
        eq_low, eq_high = _interval(equivalence, TOST_LEVEL)
    return Comparison(
        metric,
        a,
        b,
        b - a,
        float(low[0]),
        float(high[0]),
        float(test.pvalue),
        n,
        eq_low=float(eq_low[0]),
        eq_high=float(eq_high[0]),
    )


def holm(comparisons: list[Comparison], alpha: float = ALPHA) -> list[Comparison]:
    """The same comparisons with Holm-adjusted p-values (one family)."""
    from dataclasses import replace

    from statsmodels.stats.multitest import multipletests

    if not comparisons:
        return []
    adjusted = multipletests([c.p_value for c in comparisons], alpha=alpha, method="holm")[1]
    return [replace(c, p_holm=float(p)) for c, p in zip(comparisons, adjusted, strict=True)]


def across_draws(a: np.ndarray, b: np.ndarray, metric: str = "macro_f1") -> Comparison:
    """B minus A over several training draws (one score each per draw, on the same test comments): a
    paired t-test on the per-draw differences (:func:`scipy.stats.ttest_1samp`), its 95% t-interval,
    and the 90% one for equivalence. ``n_items`` is the number of draws: the unit that varies is the
    training run."""
    from scipy.stats import ttest_1samp

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    test = ttest_1samp(b - a, 0.0)
    ci, eq = test.confidence_interval(LEVEL), test.confidence_interval(TOST_LEVEL)
    return Comparison(
        metric,
        float(a.mean()),
        float(b.mean()),
        float((b - a).mean()),
        float(ci.low),
        float(ci.high),
        float(test.pvalue),
        len(a),
        eq_low=float(eq.low),
        eq_high=float(eq.high),
    )
