"""What a finished fine-tuning job leaves behind: its model's name, the weights of the last
checkpoints, their model records and the step-metrics CSV.

:func:`prepare` writes the weights and the CSV; :func:`Prepared.commit` then makes the models
servable in one step under the store's lock, or :func:`Prepared.discard` removes everything when a
cancel was recorded first, so a cancelled job leaves no orphan weights.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core import tokens
from . import trainers
from .files import Files
from .models import OWNER, owner_of
from .store import Store, new_id

RESULT_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
# a checkpoint's model is the fine-tune's name + this + its step: the longest must still be an id
CKPT = ":ckpt-step-"
LONGEST_STEP = "9" * 12


def fine_tune_name(model: str, suffix: str | None, job_id: str) -> str:
    """``ft:<base>:<owner>:<suffix>:<8 characters of the job id>``, as OpenAI names fine-tunes."""
    base_name = Path(model).name if "/" in model else model  # ids can't hold a path
    return f"ft:{base_name}:{owner_of(model)}:{suffix or ''}:{job_id.removeprefix('ftjob-')[:8]}"


def name_is_storable(store: Store, name: str) -> bool:
    """Whether the fine-tune and every checkpoint named after it can be stored under their ids."""
    return store.valid_id(name) and store.valid_id(f"{name}{CKPT}{LONGEST_STEP}")


@dataclass
class Prepared:
    """A fine-tune whose weights and CSV are written but not yet served."""

    store: Store
    files: Files
    name: str
    models: list[dict] = field(default_factory=list)
    checkpoints: list[dict] = field(default_factory=list)
    result_file: str | None = None
    trained_tokens: int = 0
    last_step: int = 0

    def commit(self) -> None:
        """Register the models (call under the store's lock, with the job's final write)."""
        for record in self.models:
            self.store.put("models", record)

    def discard(self) -> None:
        """Remove the weights and CSV of a fine-tune that will never be served."""
        for record in self.models:
            self.store.remove_weights(record["id"])
        if self.result_file:
            self.store.delete("files", self.result_file)
            self.store.delete_blob(self.result_file)


def prepare(
    store: Store,
    files: Files,
    job: dict,
    result: trainers.TrainResult,
    hp: dict,
    train_bytes: bytes,
) -> Prepared:
    """Write the fine-tune's weights and CSV; if writing fails part-way, what was written is
    removed before the error goes on (the job fails without orphan weights)."""
    job_id = job["id"]
    name = fine_tune_name(job["model"], job.get("_suffix"), job_id)
    out = Prepared(store, files, name, last_step=result.checkpoints[-1][0])
    enc = tokens.encoding_for(job["model"])
    per_epoch = sum(
        tokens.count_chat_tokens(json.loads(line)["messages"], enc)
        for line in train_bytes.decode("utf-8-sig").splitlines()
    )
    out.trained_tokens = result.trained_tokens or per_epoch * hp["n_epochs"]
    try:
        _write(store, files, job_id, name, result, out)
    except BaseException:
        out.discard()
        raise
    return out


def _write(
    store: Store, files: Files, job_id: str, name: str, result: trainers.TrainResult, out: Prepared
) -> None:
    for step, model, metrics in result.checkpoints[-3:]:
        ckpt_name = f"{name}{CKPT}{step}" if step != out.last_step else name
        now = int(time.time())
        out.models.append({"id": ckpt_name, "object": "model", "created": now, "owned_by": OWNER})
        model.save(store.weights_dir(ckpt_name))
        out.checkpoints.append(
            {
                "id": new_id("ftckpt_"),
                "object": "fine_tuning.job.checkpoint",
                "created_at": now,
                "fine_tuned_model_checkpoint": ckpt_name,
                "fine_tuning_job_id": job_id,
                "step_number": step,
                "metrics": {
                    "step": step,
                    "train_loss": metrics.train_loss,
                    "train_mean_token_accuracy": metrics.train_accuracy,
                    "valid_loss": metrics.valid_loss,
                    "valid_mean_token_accuracy": metrics.valid_accuracy,
                    "full_valid_loss": metrics.valid_loss,
                    "full_valid_mean_token_accuracy": metrics.valid_accuracy,
                },
            }
        )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for m in result.steps:
        writer.writerow(
            [
                m.step,
                f"{m.train_loss:.5f}",
                f"{m.train_accuracy:.5f}",
                "" if m.valid_loss is None else f"{m.valid_loss:.5f}",
                "" if m.valid_accuracy is None else f"{m.valid_accuracy:.5f}",
            ]
        )
    out.result_file = files.create(
        "step_metrics.csv", "fine-tune-results", buf.getvalue().encode()
    )["id"]
