"""A recorded run replays without a model: the same series finds its upload, job and answers in the
recording, and anything not recorded is an error, never a training run or a generated answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from emotune.core.errors import ConfigError
from emotune.recording import restore_recording, save_recording

PARAMS = ["n_train=80", "n_validation=12", "n_eval=40", "base_model=stand-in", "seed=5"]


def series(run_dir: Path, *params: str, replay: bool = False) -> subprocess.CompletedProcess:
    env = os.environ | {"TQDM_DISABLE": "1", "EMOTUNE_REPLAY": "1" if replay else ""}
    env.pop("OPENAI_API_KEY", None)
    args = [sys.executable, "-m", "emotune.cli", "run", "--run-dir", str(run_dir)]
    args += [x for p in (*PARAMS, *params) for x in ("-p", p)]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


def posts(run_dir: Path) -> Counter:
    log = run_dir / "local-backend" / "requests.log"
    return Counter(line for line in log.read_text().splitlines() if line.startswith("POST"))


@pytest.mark.slow  # three runs of the series on the stand-in
def test_a_recorded_run_replays_without_asking_anything_and_refuses_what_it_lacks(tmp_path, mirror):
    done = series(tmp_path / "live")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = save_recording(tmp_path / "live", tmp_path / "recorded")
    assert "manifest.json" in written and "predictions/cache.jsonl" in written
    assert not any(
        w.startswith(("local-backend/weights", "local-backend/training")) for w in written
    )
    purposes = {
        json.loads((tmp_path / "recorded" / w).read_text())["id"]: json.loads(
            (tmp_path / "recorded" / w).read_text()
        )["purpose"]
        for w in written
        if w.startswith("local-backend/files/")
    }
    blobs = {Path(w).name for w in written if w.startswith("local-backend/blobs/")}
    assert blobs and all(purposes[b] not in ("fine-tune", "batch") for b in blobs)

    restore_recording(tmp_path / "recorded", tmp_path / "replay")
    replayed = series(tmp_path / "replay", replay=True)
    assert replayed.returncode == 0, replayed.stdout[-2000:] + replayed.stderr[-2000:]
    live = json.loads((tmp_path / "live" / "manifest.json").read_text())
    again = json.loads((tmp_path / "replay" / "manifest.json").read_text())
    assert again["evaluation"]["verdict"]["sentence"] == live["evaluation"]["verdict"]["sentence"]
    assert again["job"]["id"] == live["job"]["id"]
    # nothing was uploaded, trained or asked: the replay's server saw no POST beyond the recording's
    recorded_posts = posts(tmp_path / "live")
    assert posts(tmp_path / "replay") - recorded_posts == Counter()

    restore_recording(tmp_path / "recorded", tmp_path / "more")
    missing = series(tmp_path / "more", "n_eval=60", replay=True)
    assert missing.returncode != 0
    said = missing.stdout + missing.stderr
    assert "is not in the recording" in said and "make refresh-notebooks" in said
    assert '(the first: {"model": ' in said and '"messages": [' in said  # the request it would send
    weights = tmp_path / "more" / "local-backend" / "weights"
    assert not weights.exists() or not any(weights.iterdir())  # nothing was trained


def test_saving_needs_a_finished_run_and_restoring_needs_a_recording(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "manifest.json").write_text(json.dumps({"run": {}}))
    with pytest.raises(ConfigError, match="no evaluation yet"):
        save_recording(tmp_path / "half", tmp_path / "out")
    with pytest.raises(ConfigError, match="not a run directory"):
        save_recording(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(ConfigError, match="not a recording"):
        restore_recording(tmp_path / "nowhere", tmp_path / "out")


def test_the_readme_quotes_the_recorded_run_it_shows():
    """The README's results are the recorded run's own: its headline line verbatim, its verdict, its
    differences and training time (so a re-recording that changes them fails until the README does)."""
    from emotune.recording import default_recording

    readme = " ".join(
        (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8").split()
    )
    manifest = json.loads((default_recording() / "manifest.json").read_text("utf-8"))
    verdict = manifest["evaluation"]["verdict"]
    assert f"> {verdict['headline']}" in readme
    assert f"Verdict: **{verdict['answer']}**" in readme
    vs_free = next(
        c
        for c in verdict["comparisons"]
        if c["comparison"] == "fine-tuned - free baseline" and c["metric"] == "macro_f1"
    )
    assert f"{vs_free['difference']:+.3f} macro-F1" in readme
    assert f"p = {vs_free['p (Holm, within family)']:.4f}" in readme
    assert f"{vs_free['95% CI low (unadjusted)']:+.3f}" in readme
    draws = [d["macro_f1"] for d in verdict["seed_spread"]["per_seed"].values()]
    assert f"ranges {min(draws):.3f}-{max(draws):.3f} over {len(draws)} training draws" in readme
    parsed = manifest["evaluation"]["usage"]["base"]["parse ok %"]
    assert f"{parsed}% of its answers parse" in readme
    assert f"{manifest['job']['training_seconds']} s of training" in readme
    assert f"{manifest['parameters']['n_train']} training comments" in readme
