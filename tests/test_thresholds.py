"""Thresholds tuned for macro-F1: a label's own threshold counts by its number of held-out positives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from emotune.core.thresholds import GRID, SHRINK_POSITIVES, tune_thresholds


def middle_best(scores):
    ties = np.flatnonzero(np.isclose(scores, max(scores)))
    return GRID[ties[len(ties) // 2]]


def test_thresholds_follow_the_shrinkage_rule_checked_with_scikit_learn():
    rng = np.random.default_rng(0)
    n = 300
    y = np.zeros((n, 4), dtype=np.int8)
    y[:150, 0], y[:3, 1], y[:40, 2] = 1, 1, 1  # many, three, some positives; label 3 none
    probs = np.clip(
        y * rng.uniform(0.3, 0.9, (n, 4)) + (1 - y) * rng.uniform(0.0, 0.6, (n, 4)), 0, 1
    )
    got = tune_thresholds(probs, y)
    seen = [j for j in range(4) if y[:, j].any()]
    shared = middle_best(
        [
            np.mean([f1_score(y[:, j], probs[:, j] >= g, zero_division=0) for j in seen])
            for g in GRID
        ]
    )
    for j in range(4):
        n_pos = int(y[:, j].sum())
        own = (
            middle_best([f1_score(y[:, j], probs[:, j] >= g, zero_division=0) for g in GRID])
            if n_pos
            else shared
        )
        assert got[j] == pytest.approx(
            (n_pos * own + SHRINK_POSITIVES * shared) / (n_pos + SHRINK_POSITIVES)
        )
    assert got[3] == pytest.approx(shared)  # no positives: the shared threshold


def test_no_positives_at_all_gives_one_half():
    assert (
        tune_thresholds(np.random.default_rng(1).random((10, 4)), np.zeros((10, 4))) == 0.5
    ).all()
