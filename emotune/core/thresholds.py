"""Decision thresholds for multi-label probabilities, tuned on held-out data for the metric that
is reported.

One home for the rule, shared by the local backend's classical learner and the evaluation's free
baseline.
"""

from __future__ import annotations

import numpy as np

GRID = np.linspace(0.02, 0.9, 45)
# a label with this many held-out positives weighs its own threshold and the shared one equally
SHRINK_POSITIVES = 10


def _f1_by_threshold(probs: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """F1 of each label (columns) at every grid threshold (rows)."""
    predicted = probs[None, :, :] >= GRID[:, None, None]  # (grid, items, labels)
    tp = (predicted & positives[None]).sum(axis=1)
    denom = predicted.sum(axis=1) + positives.sum(axis=0)[None]
    return np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)


def _middle_best(values: np.ndarray) -> float:
    ties = np.flatnonzero(values == values.max())
    return float(GRID[ties[len(ties) // 2]])  # the middle of a tie, not its lowest edge


def tune_thresholds(
    probs: np.ndarray, y: np.ndarray, shrink: float = SHRINK_POSITIVES
) -> np.ndarray:
    """One threshold per label, chosen on held-out data for macro-F1 (the headline metric).

    A shared threshold maximises macro-F1 over the labels with held-out positives; each label's own
    best threshold is then shrunk toward it by its number of positives ``n``, ``(n * own + shrink *
    shared) / (n + shrink)``, so a label seen a handful of times mostly keeps the shared threshold
    instead of memorising a few comments.
    """
    probs, positives = np.asarray(probs, dtype=float), np.asarray(y).astype(bool)
    if not positives.any():
        return np.full(positives.shape[1], 0.5)
    f1 = _f1_by_threshold(probs, positives)
    n_pos = positives.sum(axis=0)
    shared = _middle_best(f1[:, n_pos > 0].mean(axis=1))
    own = np.array([_middle_best(f1[:, j]) if n_pos[j] else shared for j in range(f1.shape[1])])
    return (n_pos * own + shrink * shared) / (n_pos + shrink)
