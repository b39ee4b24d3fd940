"""Fine-tuning jobs: create, follow, cancel; the worker that validates, trains and publishes the
model."""

from __future__ import annotations

import time
from contextlib import closing

from ..core.errors import ConfigError, DataError
from ..core.file_rules import RULES_BY_CODE, validate_bytes
from ..core.openai_spec import JOB_TERMINAL, MIN_TRAINING_EXAMPLES, default_epochs
from . import publish, trainers
from .api_error import ApiError
from .files import Files
from .models import Models, unregistered_hint
from .schemas import JobRequest
from .store import Store, new_id, public

ORG = "org-emotune-local"
MAX_RESTARTS = 3  # a job caught by this many server restarts is failed, not started a fourth time
MAX_PAGE = 10_000  # the most events one page shows (as routes/common.py's page does)


def _open(record: dict) -> bool:
    return record["status"] not in JOB_TERMINAL


class Jobs:
    """Job records and their events and checkpoints; :meth:`run` is the worker's body for one
    job."""

    def __init__(self, store: Store, files: Files, models: Models, enqueue):
        self.store, self.files, self.models, self.enqueue = store, files, models, enqueue
        self.cancelled: set[str] = set()

    def create(self, req: JobRequest) -> dict:
        base = self.models.resolve(req.model)
        if not self.models.can_fine_tune(base):
            raise ApiError(
                400,
                f"Model {req.model} is not available for fine-tuning or does not exist."
                + unregistered_hint(req.model),
                param="model",
                code="model_not_available",
            )
        self.files.require(req.training_file, "fine-tune", "training_file")
        if req.validation_file:
            self.files.require(req.validation_file, "fine-tune", "validation_file")
        job_id = new_id("ftjob-")
        if not publish.name_is_storable(
            self.store, publish.fine_tune_name(base, req.suffix, job_id)
        ):
            raise ApiError(
                400,
                f"Invalid suffix {req.suffix!r}: the fine-tuned model's name "
                f"ft:{base}:...:{req.suffix}:... would not be a valid model id (no '..', and at "
                "most 200 characters with its checkpoints' names).",
                param="suffix",
                code="invalid_value",
            )
        hp = req.resolved_hyperparameters()
        seed = req.seed if req.seed is not None else int(time.time()) % 2**31
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": hp,
            "model": base,
            "organization_id": ORG,
            "result_files": [],
            "seed": seed,
            "status": "validating_files",
            "trained_tokens": None,
            "training_file": req.training_file,
            "validation_file": req.validation_file,
            "estimated_finish": None,
            "integrations": [],
            "metadata": req.metadata,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
            "_suffix": req.suffix,
            "_seq": self.store.next_seq(),
        }
        self.store.put("jobs", job)
        self.store.add_event(
            job["id"],
            f"Validating training file: {req.training_file}"
            + (f" and validation file: {req.validation_file}" if req.validation_file else ""),
        )
        self.enqueue(job["id"])
        return public(job)

    def get(self, job_id: str) -> dict:
        record = self.store.get("jobs", job_id)
        if record is None:
            raise ApiError(
                404,
                f"Could not find fine-tuning job {job_id}.",
                param="fine_tuning_job_id",
                code="fine_tuning_job_not_found",
            )
        return public(record)

    def list(self, metadata: dict | None = None) -> list[dict]:
        return [
            public(r)
            for r in self.store.all("jobs")
            if not metadata
            or all((r.get("metadata") or {}).get(k) == v for k, v in metadata.items())
        ]

    def cancel(self, job_id: str) -> dict:
        """Record the cancel on the job (it survives a restart), then stop it. The rule that
        settles a race: a cancel recorded before the job's final state wins, and the final state is
        written once (compare-and-set under the store's lock); after it, a cancel is a 400."""
        job = self.get(job_id)
        if self.store.update_if("jobs", job_id, _open, _cancel_requested=True) is None:
            job = self.get(job_id)
            raise ApiError(
                400,
                f"Job {job_id} has already {job['status']}; it cannot be cancelled.",
                code="invalid_state",
            )
        self.cancelled.add(job_id)
        self.store.add_event(job_id, "Job cancellation requested")
        if job["status"] in ("validating_files", "queued"):
            return self._finish(job_id, "cancelled")
        return self.get(job_id)

    def events(self, job_id: str, after: str | None = None, limit: str | None = None) -> list[dict]:
        """The newest events (after the event ``after``, which leads the list when given): enough
        for routes/common.py's ``page`` to cut one page, read from the end of the events file."""
        self.get(job_id)
        try:
            wanted = max(1, min(int(limit or 20), MAX_PAGE)) + 1  # one more says has_more
        except ValueError:
            wanted = 21  # the page itself answers the bad limit with a 400
        out: list[dict] = []
        with closing(self.store.events_newest(job_id)) as newest:
            for event in newest:
                if out or not after or event["id"] == after:
                    out.append(event)
                if len(out) >= wanted + bool(after):
                    break
        return out

    def checkpoints(self, job_id: str) -> list[dict]:
        self.get(job_id)
        return list(reversed(self.store.get("jobs", job_id).get("_checkpoints", [])))

    def recover(self) -> None:
        """Jobs caught mid-way by a crash start again, at most MAX_RESTARTS times; none stays
        'running'
        forever."""
        for job in sorted(self.store.all("jobs"), key=lambda r: r["created_at"]):
            if job["status"] not in JOB_TERMINAL and job.get("_cancel_requested"):
                self._finish(job["id"], "cancelled")  # cancelled before the stop: stays cancelled
            elif job["status"] not in JOB_TERMINAL:
                restarts = job.get("_restarts", 0) + 1
                if (
                    restarts > MAX_RESTARTS
                ):  # the job itself may be what stops the server: not again
                    self._finish(
                        job["id"],
                        "failed",
                        error={
                            "code": "server_error",
                            "param": None,
                            "message": (
                                f"The local backend stopped {restarts - 1} times while this job "
                                "ran; it is not started again. Check the training file and "
                                "hyperparameters, then create a new job."
                            ),
                        },
                    )
                    continue
                self.store.clear_events(job["id"])
                self.store.add_event(
                    job["id"],
                    "The local backend restarted while this job was "
                    f"{job['status']}; training again from the start (same seed, same result)",
                )
                self.store.update("jobs", job["id"], status="validating_files", _restarts=restarts)
                self.enqueue(job["id"])

    # the worker -----------------------------------------------------------------------------
    def _finish(self, job_id: str, status: str, prepared=None, **changes) -> dict:
        """Write the job's final state once: nothing if it already has one; ``cancelled`` instead
        of any other outcome when a cancel was recorded first (then a prepared fine-tune is
        discarded, never served)."""
        self.cancelled.discard(job_id)
        with self.store.lock:
            record = self.store.get("jobs", job_id)
            if record is None or not _open(record):
                if prepared is not None:
                    prepared.discard()
                return public(record or {})
            if record.get("_cancel_requested") and status != "cancelled":
                status, changes = "cancelled", {}
            if prepared is not None:
                if status == "succeeded":
                    prepared.commit()
                else:
                    prepared.discard()
            self.store.add_event(
                job_id,
                {
                    "succeeded": "The job has successfully completed",
                    "cancelled": "Job cancelled",
                    "failed": "The job failed",
                }[status],
                level="error" if status == "failed" else "info",
            )
            return public(
                self.store.update(
                    "jobs",
                    job_id,
                    status=status,
                    finished_at=int(time.time()),
                    estimated_finish=None,
                    **changes,
                )
            )

    def _advance(self, job_id: str, **changes) -> bool:
        """Move a job on, unless it was cancelled meanwhile (the check and the write hold one
        lock)."""
        with self.store.lock:
            return (
                self.store.update_if(
                    "jobs", job_id, lambda r: _open(r) and not r.get("_cancel_requested"), **changes
                )
                is not None
            )

    @staticmethod
    def _resolve_hp(hp: dict, n_examples: int, trainer) -> dict:  # auto epochs: the trainer's
        return {
            "n_epochs": getattr(trainer, "auto_epochs", None) or default_epochs(n_examples)
            if hp["n_epochs"] == "auto"
            else int(hp["n_epochs"]),
            "batch_size": max(8, min(256, n_examples // 500))
            if hp["batch_size"] == "auto"
            else int(hp["batch_size"]),
            "learning_rate_multiplier": 1.0
            if hp["learning_rate_multiplier"] == "auto"
            else float(hp["learning_rate_multiplier"]),
        }

    def _read_training_data(self, job: dict):
        train_bytes = self.store.read_blob(job["training_file"])
        report = validate_bytes(train_bytes, job["training_file"], job["model"], taxonomy=None)
        if report.errors:
            first = report.errors[0]
            where = f"line {first.line}: " if first.line else ""
            raise DataError(
                f"{where}{first.message} ({first.code}: {RULES_BY_CODE[first.code].description}); "
                f"{len(report.errors)} error(s) in all",
                path=job["training_file"],
                rule=first.code,
            )
        train = trainers.parse_jsonl(train_bytes, job["training_file"])
        valid = (
            trainers.parse_jsonl(
                self.store.read_blob(job["validation_file"]), job["validation_file"]
            )
            if job["validation_file"]
            else None
        )
        if len(train.texts) < MIN_TRAINING_EXAMPLES:
            raise DataError(
                f"has {len(train.texts)} examples; at least {MIN_TRAINING_EXAMPLES} are required",
                path=job["training_file"],
                rule="min_examples",
            )
        return train_bytes, train, valid

    def run(self, job_id: str) -> None:
        """Validate, train and publish one job; whatever happens, the job ends and the worker
        lives on."""
        job = self.store.get("jobs", job_id)
        if job is None or job["status"] in JOB_TERMINAL:
            return
        try:
            self._train(job)
        except Exception as exc:  # a bug must fail this job, never the queue
            message = self.store.scrub(f"Training failed: {type(exc).__name__}: {exc}")
            self._finish(
                job_id, "failed", error={"code": "server_error", "param": None, "message": message}
            )

    def _train(self, job: dict) -> None:
        job_id = job["id"]
        try:
            train_bytes, train, valid = self._read_training_data(job)
        except (DataError, FileNotFoundError, UnicodeDecodeError, RecursionError) as exc:
            message = self.store.scrub(f"The job failed due to an invalid training file. {exc}")
            self._finish(
                job_id,
                "failed",
                error={
                    "code": "invalid_training_file",
                    "param": "training_file",
                    "message": message,
                },
            )
            return
        trainer = trainers.trainer_for(job["model"])
        hp = self._resolve_hp(job["hyperparameters"], len(train.texts), trainer)
        if not self._advance(
            job_id,
            status="queued",
            hyperparameters=hp,
            method={"type": "supervised", "supervised": {"hyperparameters": hp}},
        ):
            return
        self.store.add_event(job_id, "Files validated, moving job to queued state")
        started = time.time()
        if not self._advance(job_id, status="running"):
            return
        self.store.add_event(job_id, f"Fine-tuning job started (local {trainer.name} trainer)")

        def on_step(m: trainers.StepMetrics) -> None:
            if job_id in self.cancelled:
                raise trainers.Cancelled
            data = {
                "step": m.step,
                "train_loss": m.train_loss,
                "train_mean_token_accuracy": m.train_accuracy,
                "total_steps": m.total_steps,
            }
            if m.valid_loss is not None:
                data |= {"valid_loss": m.valid_loss, "valid_mean_token_accuracy": m.valid_accuracy}
            self.store.add_event(
                job_id,
                f"Step {m.step}/{m.total_steps}: training loss={m.train_loss:.4f}",
                data=data,
                type_="metrics",
            )
            if m.step in (1, m.total_steps // 2):
                eta = started + (time.time() - started) / m.step * m.total_steps
                self.store.update_if("jobs", job_id, _open, estimated_finish=int(eta) + 1)

        try:
            result = trainer.train(
                train,
                valid,
                hp,
                job["seed"],
                on_step,
                base=job["model"],
                work_dir=self.store.root / "training" / job_id,
            )
        except trainers.Cancelled:
            self._finish(job_id, "cancelled")
            return
        except (
            ConfigError
        ) as exc:  # a missing extra or missing weights: the user's to fix, said plainly
            self._finish(
                job_id,
                "failed",
                error={"code": "invalid_model", "param": "model", "message": str(exc)},
            )
            return
        if not self._advance(job_id):  # cancelled during the last step (no-op if already final)
            self._finish(job_id, "cancelled")
            return
        prepared = publish.prepare(self.store, self.files, job, result, hp, train_bytes)
        self.store.add_event(job_id, f"Checkpoint created at step {prepared.last_step}")
        self.store.add_event(job_id, f"New fine-tuned model created: {prepared.name}")
        self._finish(
            job_id,
            "succeeded",
            prepared,
            fine_tuned_model=prepared.name,
            result_files=[prepared.result_file],
            trained_tokens=prepared.trained_tokens,
            _checkpoints=prepared.checkpoints,
        )
