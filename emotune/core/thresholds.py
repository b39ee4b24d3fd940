"""Decision thresholds for multi-label probabilities, tuned on held-out data.

One home for the rule, shared by the local backend's classical learner and the evaluation's free baseline.
"""

from __future__ import annotations

import numpy as np


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


