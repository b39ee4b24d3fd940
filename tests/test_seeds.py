"""Several training runs of the fine-tune (n_seeds): each on its own draw, launched once, resumed on a
re-run, and tested across draws against the free baseline trained on the same draws."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_1samp

from emotune.stages.statistics import across_draws

PARAMS = [
    "-p",
    "n_train=200",
    "-p",
    "n_validation=40",
    "-p",
    "n_eval=150",
    "-p",
    "n_seeds=3",
    "-p",
    "seed=3",
    "-p",
    "base_model=stand-in",
]


def test_across_draws_is_scipys_paired_t_test_on_the_per_draw_differences():
    a, b = np.array([0.30, 0.32, 0.29, 0.31]), np.array([0.33, 0.36, 0.30, 0.35])
    c = across_draws(a, b)
    t = ttest_1samp(b - a, 0.0)
    assert c.difference == pytest.approx((b - a).mean()) and c.p_value == pytest.approx(t.pvalue)
    assert (c.ci_low, c.ci_high) == pytest.approx(tuple(t.confidence_interval(0.95)))
    assert c.ci_low < c.eq_low < c.eq_high < c.ci_high and c.n_items == 4


def _run(run_dir: Path, log: Path, *extra: str) -> int:
    env = os.environ | {"TQDM_DISABLE": "1"}
    env.pop("OPENAI_API_KEY", None)
    with open(log, "w") as f:
        cmd = [
            sys.executable,
            "-m",
            "emotune.cli",
            "run",
            "--run-dir",
            str(run_dir),
            *PARAMS,
            *extra,
        ]
        return subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=900
        ).returncode


def _posts(run_dir: Path) -> Counter:
    return Counter((run_dir / "local-backend" / "requests.log").read_text().splitlines())


@pytest.mark.slow
def test_three_training_runs_are_launched_once_and_tested_across_draws(tmp_path, mirror):
    run_dir = tmp_path / "run"
    assert _run(run_dir, tmp_path / "first.log") == 0, (tmp_path / "first.log").read_text()[-3000:]
    first = _posts(run_dir)
    assert first["POST /v1/fine_tuning/jobs"] == 3  # the run's own job and two more, one per draw
    m = json.loads((run_dir / "manifest.json").read_text())
    assert sorted(m["seed_jobs"]) == ["seed-4", "seed-5"]
    assert all(
        j["status"] == "succeeded" and j["fine_tuned_model"] for j in m["seed_jobs"].values()
    )
    across = m["evaluation"]["verdict"]["across_draws"]
    per_draw = across["per_draw"]
    assert sorted(per_draw) == ["3", "4", "5"]
    diffs = np.array(
        [per_draw[s]["fine-tuned"] - per_draw[s]["free baseline"] for s in ("3", "4", "5")]
    )
    assert across["comparison"]["p_value"] == pytest.approx(ttest_1samp(diffs, 0.0).pvalue)
    assert "Across 3 training runs" in m["evaluation"]["verdict"]["sentence"]
    assert (run_dir / "predictions" / "fine-tuned-seed-4.jsonl").exists()
    assert _run(run_dir, tmp_path / "again.log", "--from", "04") == 0, (
        tmp_path / "again.log"
    ).read_text()[-3000:]
    again = _posts(run_dir)
    for route in ("POST /v1/files", "POST /v1/fine_tuning/jobs", "POST /v1/chat/completions"):
        assert again[route] == first[route], route
