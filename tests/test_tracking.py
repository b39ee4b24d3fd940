"""The open-weights trainer's MLflow logging: transformers' own MLflowCallback, switched on by the
variables `emotune run` sets while it tracks (emotune/tracking.py, local/trainers/sft_worker.py).

SmolLM2 is never trained in the tests; a one-layer GPT-2 with random weights takes three steps of the
same transformers Trainer, reporting to MLflow exactly as the worker's SFTConfig does.
"""

from __future__ import annotations

import os
import warnings

import pytest

from emotune.core.runs import open_run
from emotune.tracking import TRAINING_RUN_ENV, begin_tracking


def test_the_trainers_own_mlflow_run_lands_under_the_emotune_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    from emotune.core.manifest import JobRecord
    from emotune.local.trainers.sft_worker import TRACKING_RUN, _report_to

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("EMOTUNE_TRACKING", "on")  # the test suite turns it off elsewhere
    assert TRACKING_RUN == TRAINING_RUN_ENV and _report_to() == []  # off unless emotune run tracks
    run = open_run(tmp_path / "run")
    tracker = begin_tracking(run, {"seed": 1, "n_train": 8}, say=lambda line: None)
    assert not tracker.disabled and _report_to() == ["mlflow"]
    with warnings.catch_warnings():  # transformers', torch's and SQLAlchemy's own notices
        warnings.simplefilter("ignore")
        config = transformers.GPT2Config(
            n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=16
        )
        model = transformers.GPT2LMHeadModel(config)
        rows = [{"input_ids": torch.arange(8), "labels": torch.arange(8)} for _ in range(8)]
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path / "out"),
            max_steps=3,
            per_device_train_batch_size=4,
            logging_steps=1,
            report_to=_report_to(),
            run_name=os.environ.get(TRACKING_RUN),
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
        )
        transformers.Trainer(model=model, args=args, train_dataset=rows).train()
        # the fine-tune the local backend published: a PEFT LoRA adapter folder in its weights
        tuned = "ft:tiny:emotune-local:emotune:0123abcd"
        run.put(JobRecord(id="ftjob-1", fine_tuned_model=tuned))
        adapter = run.file("local-backend/weights/ft~tiny~emotune-local~emotune~0123abcd/adapter")
        lora = peft.LoraConfig(r=2, target_modules=["c_attn"], task_type="CAUSAL_LM")
        peft.get_peft_model(model, lora).save_pretrained(str(adapter))
        tracker.finish(1.0)
        import mlflow

        client = mlflow.MlflowClient(tracker.uri)
        found = client.search_runs([client.get_experiment_by_name("emotune").experiment_id])
        logged = {a.path for a in client.list_artifacts(tracker.run_id, "adapter")}
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= logged
    by_name = {r.info.run_name: r for r in found}
    training = by_name[tracker.training_run_name]
    assert training.data.tags["mlflow.parentRunId"] == tracker.run_id
    assert "loss" in training.data.metrics and "learning_rate" in training.data.metrics
    assert by_name["run"].data.params["seed"] == "1"
    assert os.environ.get(TRACKING_RUN) is None  # the variables end with the run


def test_tracking_turned_off_says_so_once_and_writes_no_store(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTUNE_TRACKING", "off")
    run = open_run(tmp_path / "runs" / "run")
    said: list[str] = []
    tracker = begin_tracking(run, {"seed": 1}, say=said.append)
    tracker.finish(1.0)
    assert tracker.disabled and said == [
        "tracking off: EMOTUNE_TRACKING=off; the run goes on untracked"
    ]
    assert not list(tmp_path.rglob("mlflow.db"))
