"""Upload once, launch or resume, watch, and read the results of a fine-tuning job (notebook 04).

Every function takes the provider (what ``emotune.connect`` returns); the run manifest is the memory
that keeps a re-run, a dead kernel or a lost notebook from paying twice:

- a file is content-addressed (its sha256 is in the uploaded file's name) and reused when the
  manifest or the server already has it;
- a job id goes into the manifest the moment the job exists; without a manifest, a remote job whose
  metadata carries this run's id and file hashes is adopted instead of launching another.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from ..core import config
from ..core.errors import ConfigError, JobError, LifecycleError
from ..core.manifest import EstimateRecord, JobRecord, SeedJobRecord, UploadRecord
from ..core.openai_spec import JOB_TERMINAL
from ..core.pricing import check_budget, wind_down_summary
from ..core.progress import progress_bar
from .batch import RESULT_FILE_MAX_BYTES, server_file_text


@dataclass
class Upload:
    key: str
    file_id: str
    sha256: str
    bytes: int
    filename: str
    action: str  # "uploaded", "reused (manifest)" or "reused (found on server)"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload_once(
    provider,
    run,
    path: str | Path,
    key: str,
    *,
    purpose: str = "fine-tune",
    wait: Callable[[float], None] = time.sleep,
) -> Upload:
    """The remote file id for ``path``: from the manifest, else a matching remote file, else a
    new upload."""
    import openai

    client = provider.client
    path = Path(path)
    sha, size = _sha256(path), path.stat().st_size
    filename = f"{run.name}-{key}-{sha[:16]}.jsonl"
    known = run.read(UploadRecord, key, required=False)
    record = None
    if known is not None and known.sha256 == sha and known.file_id:
        try:
            remote = client.files.retrieve(known.file_id)
            if remote.bytes == size:
                record = Upload(key, remote.id, sha, size, filename, "reused (manifest)")
        except openai.NotFoundError:
            pass
    if record is None:
        match = next(
            (
                f
                for f in client.files.list(purpose=purpose)
                if f.filename == filename and f.bytes == size
            ),
            None,
        )
        if match is not None:
            record = Upload(key, match.id, sha, size, filename, "reused (found on server)")
    if record is None:
        config.refuse_in_replay(f"an upload of {filename}")
        created = client.files.create(file=(filename, path.read_bytes()), purpose=purpose)
        record = Upload(key, created.id, sha, size, filename, "uploaded")
    run.put(UploadRecord(file_id=record.file_id, sha256=sha, bytes=size, filename=filename), key)
    for _ in range(600):  # wait until the server has processed it (immediate on the local backend)
        status = client.files.retrieve(record.file_id).status
        if status != "uploaded":
            break
        wait(1.0)
    if status == "error":
        raise JobError(f"{filename}: the server could not process the upload")
    return record


def upload_training_files(provider, run) -> pd.DataFrame:
    """Upload train.jsonl and val.jsonl once; a table of what was uploaded or reused."""
    train, val = run.require("train.jsonl", "val.jsonl")
    if not provider.fine_tuning:  # nothing to upload for: say so before sending a byte
        provider.check_can_fine_tune("")
    records = [
        upload_once(provider, run, train, "train"),
        upload_once(provider, run, val, "validation"),
    ]
    return pd.DataFrame([r.__dict__ for r in records])[["key", "file_id", "bytes", "action"]]


@dataclass
class JobLaunch:
    job: object  # openai FineTuningJob
    action: str  # "created", "resumed (manifest)" or "adopted (found on server)"

    @property
    def id(self) -> str:
        return self.job.id


def _hyperparameters(n_epochs, batch_size, learning_rate_multiplier) -> dict:
    return {
        "n_epochs": n_epochs,
        "batch_size": batch_size,
        "learning_rate_multiplier": learning_rate_multiplier,
    }


def launch_or_resume(
    provider,
    run,
    *,
    base_model: str,
    seed: int,
    budget_usd: float,
    n_epochs="auto",
    batch_size="auto",
    learning_rate_multiplier="auto",
    suffix: str = "emotune",
    today: date | None = None,
    key: str | None = None,
    runs: int = 1,
) -> JobLaunch:
    """Resume the run's job, adopt a matching remote one, or (after the budget and provider checks)
    create one. ``key`` names a further training run (``seed_jobs.<key>``, trained on the uploads
    ``train-<key>`` and ``validation-<key>``); ``runs`` is how many training runs the budget must
    cover."""
    import openai

    client = provider.client
    record, suffix_key = (JobRecord, "") if key is None else (SeedJobRecord, f"-{key}")
    known = run.read(record, key, required=False)
    if known is not None and known.id:
        return JobLaunch(client.fine_tuning.jobs.retrieve(known.id), "resumed (manifest)")
    train = run.read(UploadRecord, f"train{suffix_key}", required=False)
    if train is None:
        raise JobError("no uploaded training file in the manifest: run upload_training_files first")
    validation = run.read(UploadRecord, f"validation{suffix_key}", required=False)
    meta = {
        "emotune_run": run.id,
        "train_sha256": train.sha256[:32],
        "validation_sha256": validation.sha256[:32] if validation else "",
    }
    for job in client.fine_tuning.jobs.list(limit=100, metadata={"emotune_run": run.id}):
        if job.metadata and all(job.metadata.get(k) == v for k, v in meta.items()):
            run.put(record(id=job.id, adopted=True), key)
            return JobLaunch(job, "adopted (found on server)")
    estimate = run.read(EstimateRecord)
    if estimate.training_usd is not None:
        what = "training" if runs == 1 else f"training {runs} runs (n_seeds)"
        check_budget(runs * float(estimate.training_usd), budget_usd, what)
    provider.check_can_fine_tune(base_model, today)
    config.refuse_in_replay(f"a fine-tuning job on {base_model}")
    hp = _hyperparameters(n_epochs, batch_size, learning_rate_multiplier)
    try:
        job = client.fine_tuning.jobs.create(
            model=base_model,
            training_file=train.file_id,
            validation_file=validation.file_id if validation else None,
            suffix=suffix,
            seed=seed,
            metadata=meta,
            method={"type": "supervised", "supervised": {"hyperparameters": hp}},
        )
    except openai.PermissionDeniedError as exc:
        raise LifecycleError(
            f"OpenAI refused to create the job ({exc.status_code}: {exc.message}). "
            f"{wind_down_summary()}"
        ) from None
    run.put(
        record(id=job.id, created_at=job.created_at, base_model=base_model, hyperparameters=hp), key
    )
    return JobLaunch(job, "created")


def watch(
    provider,
    job_id: str,
    *,
    poll_s: float = 1.0,
    max_poll_s: float = 30.0,
    timeout_s: float = 6 * 3600,
    sleep: Callable[[float], None] = time.sleep,
    on_event: Callable[[str], None] = print,
    progress: bool = True,
):
    """Follow a job until it ends: each new event printed once, a progress bar from step events.

    One bounded loop; the poll interval backs off while nothing changes. An interrupt leaves the job
    running (re-run to resume watching). A failed job raises :class:`JobError` with OpenAI's message
    and code; a cancelled one says so.
    """
    client = provider.client
    seen: set[str] = set()
    status, interval, waited, bar = None, poll_s, 0.0, None
    try:
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            fresh = [
                e
                for e in client.fine_tuning.jobs.list_events(job_id, limit=100).data
                if e.id not in seen
            ]
            for event in reversed(fresh):  # the API lists newest first
                seen.add(event.id)
                data = event.data or {}
                if event.type == "metrics" and "total_steps" in data:
                    if bar is None and progress:
                        bar = progress_bar(
                            int(data["total_steps"]),
                            f"training {provider.display_name(job.model)}"[:48],
                            "step",
                            initial=int(data["step"]),
                        )
                    if bar is not None:
                        bar.n = int(data["step"])
                        bar.set_postfix(train_loss=f"{data['train_loss']:.3f}", refresh=True)
                else:
                    on_event(f"[{event.level}] {event.message}")
            if job.status != status:
                status = job.status
                on_event(
                    f"status: {status}"
                    + (
                        " (resume it with client.fine_tuning.jobs.resume)"
                        if status == "paused"
                        else ""
                    )
                )
            if status in JOB_TERMINAL:
                break
            if waited >= timeout_s:
                raise JobError(
                    f"job {job_id} still {status} after {timeout_s:.0f} s; it keeps running, "
                    "watch it "
                    "again later"
                )
            interval = poll_s if fresh else min(max_poll_s, interval * 1.5)
            sleep(interval)
            waited += interval
    except KeyboardInterrupt:
        on_event(
            f"interrupted: job {job_id} keeps running on the server; run this cell again to "
            "resume watching"
        )
        raise
    finally:
        if bar is not None:
            if status == "succeeded":  # the last step events may not be among the last 100 listed
                bar.n = bar.total
                bar.refresh()
            bar.close()
    if status == "failed":
        err = job.error
        raise JobError(
            f"job {job_id} failed: {getattr(err, 'code', None)}: {getattr(err, 'message', err)}"
        )
    if status == "cancelled":
        raise JobError(f"job {job_id} was cancelled")
    return job


def step_metrics(provider, job) -> pd.DataFrame:
    """Per-step metrics from the job's result file (OpenAI's CSV), or from its events when there
    is none."""
    client = provider.client
    if job.result_files:
        text = server_file_text(client, job.result_files[0], RESULT_FILE_MAX_BYTES)
        frame = pd.read_csv(io.StringIO(text))
    else:
        rows = [
            e.data
            for e in client.fine_tuning.jobs.list_events(job.id, limit=10_000).data
            if e.type == "metrics" and e.data
        ]
        frame = pd.DataFrame(rows).rename(columns={"train_mean_token_accuracy": "train_accuracy"})
    return frame.sort_values("step").reset_index(drop=True)


def checkpoints_frame(provider, job_id: str) -> pd.DataFrame:
    """The job's checkpoints with their metrics, newest first."""
    client = provider.client
    rows = [
        {
            "step": c.step_number,
            "model": c.fine_tuned_model_checkpoint,
            "train_loss": c.metrics.train_loss,
            "valid_loss": c.metrics.valid_loss,
            "valid_accuracy": c.metrics.valid_mean_token_accuracy,
        }
        for c in client.fine_tuning.jobs.checkpoints.list(job_id).data
    ]
    return pd.DataFrame(
        rows, columns=["step", "model", "train_loss", "valid_loss", "valid_accuracy"]
    )


def fine_tuned_model(run) -> str:
    """The run's fine-tuned model (from notebook 04's job record); an error says to run notebook
    04 first."""
    job = run.read(JobRecord)
    if not job.fine_tuned_model:
        raise JobError(
            f"job {job.id} has no fine-tuned model yet: run notebook 04 to the end (it resumes "
            "the job)"
        )
    return job.fine_tuned_model


def trained_base_model(run, asked: str) -> str:
    """The base model the run's job fine-tuned (notebook 04's record); asking for another is an
    error, since
    comparing a fine-tune with a model it was not trained from answers nothing."""
    job = run.read(JobRecord)
    if job.base_model and asked not in ("", "auto") and job.base_model != asked:
        raise ConfigError(
            f"the fine-tuned model of run {run.name!r} was trained from {job.base_model}, but "
            "this notebook "
            f"was given base_model={asked}: drop the -p base_model override, or run notebooks "
            "02-04 again"
        )
    return job.base_model or asked


def reconcile(run, job) -> pd.DataFrame:
    """The billed-token estimate from notebook 03 next to the job's ``trained_tokens``; both into
    the
    manifest."""
    est = run.read(EstimateRecord)
    estimated, trained = est.billed_tokens, job.trained_tokens
    diff = (
        None
        if not estimated or trained is None
        else round(100 * (trained - estimated) / estimated, 2)
    )
    seconds = (job.finished_at - job.created_at) if job.finished_at else None
    hp = job.hyperparameters
    run.put(
        JobRecord(
            id=job.id,
            status=job.status,
            fine_tuned_model=job.fine_tuned_model,
            trained_tokens=trained,
            n_epochs=hp.n_epochs,
            batch_size=hp.batch_size,
            learning_rate_multiplier=hp.learning_rate_multiplier,
            estimated_billed_tokens=estimated,
            difference_pct=diff,
            training_seconds=seconds,
        )
    )
    return pd.DataFrame(
        [
            {
                "estimated billed tokens": estimated,
                "trained_tokens": trained,
                "difference %": diff,
                "epochs (estimate)": est.n_epochs,
                "epochs (job)": hp.n_epochs,
                "estimated USD (OpenAI prices)": est.training_usd,
            }
        ]
    )
