import json
import os

import pandas as pd
import pytest

from emotune import ConfigError, Run, begin_stage, finish_stage, open_run
from emotune.core import runs


def test_open_run_uses_env_then_default(tmp_path, monkeypatch):
    assert open_run().path == tmp_path / "run"
    monkeypatch.delenv("EMOTUNE_RUN_DIR")
    monkeypatch.chdir(tmp_path)
    assert open_run(name="x").path.as_posix() == "runs/x"
    assert open_run(str(tmp_path / "explicit")).name == "explicit"


def test_manifest_merges_and_never_clobbers(tmp_path):
    run = Run(tmp_path / "r")
    run.update(data={"source": "local:x", "checksums": {"train.tsv": "aa"}})
    run.update(data={"checksums": {"dev.tsv": "bb"}}, job={"id": "ftjob-1"})
    m = run.manifest()
    assert m["data"] == {"source": "local:x", "checksums": {"train.tsv": "aa", "dev.tsv": "bb"}}
    assert m["job"] == {"id": "ftjob-1"}
    assert m["run"]["name"] == "r" and "created_at" in m["run"] and "pandas" in m["versions"]
    assert run.get("data", "checksums", "dev.tsv") == "bb" and run.get("nope", default=3) == 3


def test_atomic_write_leaves_old_file_when_serialising_fails(tmp_path):
    path = tmp_path / "m.json"
    runs.atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        runs.atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left behind


def test_atomic_write_replaces_by_rename(tmp_path, monkeypatch):
    calls = []
    real = os.replace
    monkeypatch.setattr(runs.os, "replace", lambda a, b: (calls.append((a, b)), real(a, b)))
    runs.atomic_write_text(tmp_path / "f.txt", "hello")
    assert (tmp_path / "f.txt").read_text() == "hello"
    assert (
        len(calls) == 1 and str(calls[0][1]).endswith("f.txt") and str(calls[0][0]).endswith(".tmp")
    )


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    run = Run(tmp_path)
    run.manifest_path.write_text("{oops")
    with pytest.raises(ConfigError, match="manifest.json: not valid JSON"):
        run.manifest()


def test_frames_round_trip_and_missing_stage_is_explained(tmp_path):
    run = Run(tmp_path)
    frame = pd.DataFrame({"text": ["a", "b"], "labels": [[1, 2], [27]], "id": ["007", "x"]})
    run.write_frame("s.jsonl", frame)
    back = run.read_frame("s.jsonl")
    assert back["id"].tolist() == ["007", "x"] and back["labels"].tolist() == [[1, 2], [27]]
    with pytest.raises(ConfigError, match="run the notebook that writes it first"):
        run.read_frame("missing.jsonl")


def test_stages_record_parameters_and_outputs(tmp_path):
    run = begin_stage(Run(tmp_path), "01_explore", {"seed": 3})
    assert run.get("stages", "01_explore", "status") == "running"
    entry = finish_stage(run, "01_explore", wrote=["b", "a"])
    assert (
        entry["status"] == "done"
        and entry["wrote"] == ["a", "b"]
        and run.get("parameters") == {"seed": 3}
    )
