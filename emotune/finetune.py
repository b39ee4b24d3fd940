"""Upload once, launch or resume, watch, and read the results of a fine-tuning job.

Every function takes the client; the run manifest is the memory that keeps a re-run, a dead kernel or a
lost notebook from paying twice:

- a file is content-addressed (its sha256 is in the uploaded file's name) and reused when the manifest or
  the server already has it;
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

from .errors import JobError, LifecycleError
from .pricing import check_budget, require_can_fine_tune

TERMINAL = ("succeeded", "failed", "cancelled")
WIND_DOWN = ("OpenAI closed self-serve fine-tuning to new organisations on 2026-05-07 and to everyone after "
             "2027-01-06; gpt-4o, gpt-4o-mini, gpt-4.1, gpt-4.1-mini and their fine-tunes shut down on 2027-01-14. "
             "Run the same series on the local backend (backend='local', or unset OPENAI_API_KEY).")


@dataclass
class UploadRecord:
    key: str
    file_id: str
    sha256: str
    bytes: int
    filename: str
    action: str  # "uploaded", "reused (manifest)" or "reused (found on server)"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload_once(client, run, path: str | Path, key: str, *, purpose: str = "fine-tune",
                wait: Callable[[float], None] = time.sleep) -> UploadRecord:
    """The remote file id for ``path``: from the manifest, else a matching remote file, else a new upload."""
    import openai

    path = Path(path)
    sha, size = _sha256(path), path.stat().st_size
    filename = f"{run.name}-{key}-{sha[:16]}.jsonl"
    known = run.get("uploads", key) or {}
    record = None
    if known.get("sha256") == sha and known.get("file_id"):
        try:
            remote = client.files.retrieve(known["file_id"])
            if remote.bytes == size:
                record = UploadRecord(key, remote.id, sha, size, filename, "reused (manifest)")
        except openai.NotFoundError:
            pass
    if record is None:
        match = next((f for f in client.files.list(purpose=purpose) if f.filename == filename and f.bytes == size), None)
        if match is not None:
            record = UploadRecord(key, match.id, sha, size, filename, "reused (found on server)")
    if record is None:
        created = client.files.create(file=(filename, path.read_bytes()), purpose=purpose)
        record = UploadRecord(key, created.id, sha, size, filename, "uploaded")
    run.update(uploads={key: {"file_id": record.file_id, "sha256": sha, "bytes": size, "filename": filename}})
    for _ in range(600):  # wait until the server has processed it (immediate on the local backend)
        status = client.files.retrieve(record.file_id).status
        if status != "uploaded":
            break
        wait(1.0)
    if status == "error":
        raise JobError(f"{filename}: the server could not process the upload")
    return record


def upload_training_files(client, run) -> pd.DataFrame:
    """Upload train.jsonl and val.jsonl once; a table of what was uploaded or reused."""
    train, val = run.require("train.jsonl", "val.jsonl")
    records = [upload_once(client, run, train, "train"), upload_once(client, run, val, "validation")]
    return pd.DataFrame([r.__dict__ for r in records])[["key", "file_id", "bytes", "action"]]


@dataclass
class JobRecord:
    job: object  # openai FineTuningJob
    action: str  # "created", "resumed (manifest)" or "adopted (found on server)"

    @property
    def id(self) -> str:
        return self.job.id


def _hyperparameters(n_epochs, batch_size, learning_rate_multiplier) -> dict:
    return {"n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": learning_rate_multiplier}


def launch_or_resume(client, run, *, base_model: str, backend: str, seed: int, budget_usd: float,
                     n_epochs="auto", batch_size="auto", learning_rate_multiplier="auto", suffix: str = "emotune",
                     today: date | None = None) -> JobRecord:
    """Resume the run's job, adopt a matching remote one, or (after the budget and lifecycle checks) create one."""
    import openai

    job_id = run.get("job", "id")
    if job_id:
        return JobRecord(client.fine_tuning.jobs.retrieve(job_id), "resumed (manifest)")
    uploads = run.get("uploads") or {}
    if "train" not in uploads:
        raise JobError("no uploaded training file in the manifest: run upload_training_files first")
    meta = {"emotune_run": run.id, "train_sha256": uploads["train"]["sha256"][:32],
            "validation_sha256": (uploads.get("validation") or {}).get("sha256", "")[:32]}
    for job in client.fine_tuning.jobs.list(limit=100, metadata={"emotune_run": run.id}):
        if job.metadata and all(job.metadata.get(k) == v for k, v in meta.items()):
            run.update(job={"id": job.id, "adopted": True})
            return JobRecord(job, "adopted (found on server)")
    estimate = run.get("estimate", "training_usd")
    if estimate is None:
        raise JobError("no cost estimate in the manifest: run notebook 03 (validate and cost) first")
    check_budget(float(estimate), budget_usd, "training")
    if backend == "openai":
        require_can_fine_tune(base_model, today)
    hp = _hyperparameters(n_epochs, batch_size, learning_rate_multiplier)
    try:
        job = client.fine_tuning.jobs.create(
            model=base_model, training_file=uploads["train"]["file_id"],
            validation_file=(uploads.get("validation") or {}).get("file_id"), suffix=suffix, seed=seed, metadata=meta,
            method={"type": "supervised", "supervised": {"hyperparameters": hp}})
    except openai.PermissionDeniedError as exc:
        raise LifecycleError(f"OpenAI refused to create the job ({exc.status_code}: {exc.message}). {WIND_DOWN}") from None
    run.update(job={"id": job.id, "created_at": job.created_at, "base_model": base_model, "hyperparameters": hp})
    return JobRecord(job, "created")


def watch(client, job_id: str, *, poll_s: float = 1.0, max_poll_s: float = 30.0, timeout_s: float = 6 * 3600,
          sleep: Callable[[float], None] = time.sleep, on_event: Callable[[str], None] = print,
          progress: bool = True):
    """Follow a job until it ends: each new event printed once, a progress bar from step events.

    One bounded loop; the poll interval backs off while nothing changes. An interrupt leaves the job
    running (re-run to resume watching). A failed job raises :class:`JobError` with OpenAI's message
    and code; a cancelled one says so.
    """
    from tqdm.auto import tqdm

    seen: set[str] = set()
    status, interval, waited, bar = None, poll_s, 0.0, None
    try:
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            fresh = [e for e in client.fine_tuning.jobs.list_events(job_id, limit=100).data if e.id not in seen]
            for event in reversed(fresh):  # the API lists newest first
                seen.add(event.id)
                data = event.data or {}
                if event.type == "metrics" and "total_steps" in data:
                    if bar is None and progress:
                        bar = tqdm(total=int(data["total_steps"]), desc="training steps", unit="step")
                    if bar is not None:
                        bar.n = int(data["step"])
                        bar.set_postfix(train_loss=f"{data['train_loss']:.3f}", refresh=True)
                else:
                    on_event(f"[{event.level}] {event.message}")
            if job.status != status:
                status = job.status
                on_event(f"status: {status}" + (" (resume it with client.fine_tuning.jobs.resume)" if status == "paused" else ""))
            if status in TERMINAL:
                break
            if waited >= timeout_s:
                raise JobError(f"job {job_id} still {status} after {timeout_s:.0f} s; it keeps running, watch it again later")
            interval = poll_s if fresh else min(max_poll_s, interval * 1.5)
            sleep(interval)
            waited += interval
    except KeyboardInterrupt:
        on_event(f"interrupted: job {job_id} keeps running on the server; run this cell again to resume watching")
        raise
    finally:
        if bar is not None:
            bar.close()
    if status == "failed":
        err = job.error
        raise JobError(f"job {job_id} failed: {getattr(err, 'code', None)}: {getattr(err, 'message', err)}")
    if status == "cancelled":
        raise JobError(f"job {job_id} was cancelled")
    return job


def step_metrics(client, job) -> pd.DataFrame:
    """Per-step metrics from the job's result file (OpenAI's CSV), or from its events when there is none."""
    if job.result_files:
        text = client.files.content(job.result_files[0]).text
        frame = pd.read_csv(io.StringIO(text))
    else:
        rows = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=10_000).data
                if e.type == "metrics" and e.data]
        frame = pd.DataFrame(rows).rename(columns={"train_mean_token_accuracy": "train_accuracy"})
    return frame.sort_values("step").reset_index(drop=True)


def checkpoints_frame(client, job_id: str) -> pd.DataFrame:
    """The job's checkpoints with their metrics, newest first."""
    rows = [{"step": c.step_number, "model": c.fine_tuned_model_checkpoint, "train_loss": c.metrics.train_loss,
             "valid_loss": c.metrics.valid_loss, "valid_accuracy": c.metrics.valid_mean_token_accuracy}
            for c in client.fine_tuning.jobs.checkpoints.list(job_id).data]
    return pd.DataFrame(rows, columns=["step", "model", "train_loss", "valid_loss", "valid_accuracy"])


def reconcile(run, job) -> pd.DataFrame:
    """The billed-token estimate from notebook 03 next to the job's ``trained_tokens``; both into the manifest."""
    est = run.get("estimate") or {}
    estimated = est.get("billed_tokens")
    trained = job.trained_tokens
    diff = None if not estimated or trained is None else round(100 * (trained - estimated) / estimated, 2)
    run.update(job={"id": job.id, "status": job.status, "fine_tuned_model": job.fine_tuned_model, "trained_tokens": trained,
                    "n_epochs": job.hyperparameters.n_epochs, "batch_size": job.hyperparameters.batch_size,
                    "learning_rate_multiplier": job.hyperparameters.learning_rate_multiplier,
                    "estimated_billed_tokens": estimated, "difference_pct": diff})
    seconds = (job.finished_at - job.created_at) if job.finished_at else None
    run.update(job={"training_seconds": seconds})
    return pd.DataFrame([{"estimated billed tokens": estimated, "trained_tokens": trained, "difference %": diff,
                          "epochs (estimate)": est.get("n_epochs"), "epochs (job)": job.hyperparameters.n_epochs,
                          "estimated USD (OpenAI prices)": est.get("training_usd")}])

