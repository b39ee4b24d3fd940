"""END-TO-END (about 3.5 minutes on 2 cores): a dataset of 1,000 labels through all five notebooks on
the classical stand-in. Notebook 05 once crashed drawing its figures ("yerr must not contain
negative values": with 1,000 labels a bootstrap interval need not contain its estimate)."""

from __future__ import annotations

import csv
import random

import pytest
from test_byod_e2e import run_series

pytestmark = pytest.mark.slow
NAMES = ("explore", "build_jsonl", "validate_cost", "launch_job", "evaluate")


def test_a_thousand_labels_run_through_all_five_notebooks(tmp_path):
    rng = random.Random(0)
    rows = [
        {"text": f"message about topic{i % 1000} number {i}", "label": f"topic {i % 1000}"}
        for i in range(4000)
    ]
    rng.shuffle(rows)
    path = tmp_path / "k1000.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    manifest = run_series(
        tmp_path / "run",
        f"dataset={path}",
        "n_train=1000",
        "n_validation=50",
        "n_eval=200",
        "baseline_seeds=2",  # the free baseline on 1,000 labels is the slow part: two draws
    )
    assert len(manifest["data"]["label_set"]["labels"]) == 1000
    assert set(manifest["stages"]) == {f"0{i}_" + n for i, n in enumerate(NAMES, 1)}
    assert manifest["evaluation"]["verdict"]["sentence"]
