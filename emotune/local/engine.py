"""What the local backend does, apart from HTTP: files, fine-tuning jobs, chat answers and batches."""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import pricing, tokens
from ..errors import ConfigError, DataError
from ..validate import RULES_BY_CODE, validate_bytes
from . import trainers as learner
from .store import Store, new_id
from .trainers import OpenWeightsModel, is_open_weights

OWNER = "emotune-local"
ORG = "org-emotune-local"
# The models OpenAI still fine-tunes (2026-11), by alias and dated snapshot; the local stand-in accepts them.
FINE_TUNABLE = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14")
ALIASES = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
           "gpt-4.1": "gpt-4.1-2025-04-14", "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14"}
MIN_EXAMPLES = 10  # OpenAI rejects training files with fewer examples
TERMINAL = ("succeeded", "failed", "cancelled")
RESULT_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _fingerprint(model: learner.ChatModel) -> str:
    return "emotune-local-" + ("zero-shot" if isinstance(model, learner.ZeroShotModel) else "fine-tuned")


class Engine:
    """The local backend's state and workers. Thread-safe; one per state directory."""

    def __init__(self, state_dir, *, max_upload_bytes: int = 512 * 1024 * 1024):
        self.store = Store(state_dir)
        self.max_upload_bytes = max_upload_bytes
        self.zero_shot = learner.ZeroShotModel()
        self._models: dict[str, learner.ChatModel] = {}
        self._cancel: set[str] = set()
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._batches: queue.Queue[str | None] = queue.Queue()
        self._seq = 0
        self._threads = [threading.Thread(target=self._work, args=(q, fn), daemon=True, name=f"emotune-{n}")
                         for n, q, fn in (("jobs", self._jobs, self._run_job), ("batches", self._batches, self._run_batch))]
        for t in self._threads:
            t.start()
        self._recover()

    def close(self) -> None:
        self._jobs.put(None)
        self._batches.put(None)

    def _next_seq(self) -> int:
        with self.store.lock:
            self._seq += 1
            return self._seq

    # files ----------------------------------------------------------------------------------
    def create_file(self, filename: str, purpose: str, data: bytes) -> dict:
        if purpose not in ("fine-tune", "batch", "fine-tune-results", "batch_output", "assistants", "user_data", "evals"):
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
        if len(data) > self.max_upload_bytes:
            raise ApiError(413, f"File is too large: {len(data)} bytes; the limit is {self.max_upload_bytes} bytes.",
                           param="file", code="file_too_large")
        record = {"id": new_id("file-"), "object": "file", "bytes": len(data), "created_at": int(time.time()),
                  "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
                  "status_details": None, "_seq": self._next_seq()}
        self.store.write_blob(record["id"], data)
        return self._public(self.store.put("files", record))

    def file(self, file_id: str) -> dict:
        record = self.store.get("files", file_id)
        if record is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id", code="file_not_found")
        return self._public(record)

    def list_files(self, purpose: str | None = None) -> list[dict]:
        return [self._public(r) for r in self.store.all("files") if purpose in (None, r["purpose"])]

    def file_content(self, file_id: str) -> bytes:
        self.file(file_id)
        return self.store.read_blob(file_id)

    def delete_file(self, file_id: str) -> dict:
        self.file(file_id)
        self.store.delete("files", file_id)
        self.store.delete_blob(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @staticmethod
    def _public(record: dict) -> dict:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    # models ---------------------------------------------------------------------------------
    def list_models(self) -> list[dict]:
        base = [{"id": m, "object": "model", "created": 0, "owned_by": "system"} for m in (*FINE_TUNABLE, *ALIASES)]
        return base + [self._public(r) for r in self.store.all("models")]

    def model_record(self, model: str) -> dict:
        if model in FINE_TUNABLE or model in ALIASES:
            return {"id": model, "object": "model", "created": 0, "owned_by": "system"}
        if is_open_weights(model):
            return {"id": model, "object": "model", "created": 0, "owned_by": "open-weights"}
        record = self.store.get("models", model)
        if record is None:
            raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           param="model", code="model_not_found")
        return self._public(record)

    def chat_model(self, model: str) -> learner.ChatModel:
        if model in self._models:
            return self._models[model]
        record = self.model_record(model)
        if record["owned_by"] == "system":
            return self.zero_shot
        if record["owned_by"] == "open-weights":
            try:
                loaded = OpenWeightsModel.base_model(model)
            except ConfigError as exc:
                raise ApiError(404, str(exc), param="model", code="model_not_found") from None
            self._models[model] = loaded
            return loaded
        loaded = learner.load_model(self.store.weights_dir(model))
        self._models[model] = loaded
        return loaded

    # chat -----------------------------------------------------------------------------------
    def chat(self, body: dict) -> dict:
        model_name = body.get("model")
        messages = body.get("messages")
        if not isinstance(model_name, str) or not model_name:
            raise ApiError(400, "you must provide a model parameter", param="model")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ApiError(400, "'messages' must be a non-empty array of message objects", param="messages")
        if body.get("n", 1) != 1:
            raise ApiError(400, "the local backend answers n=1 only", param="n")
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ApiError(400, "max_completion_tokens must be a positive integer", param="max_completion_tokens")
        model = self.chat_model(model_name)
        if hasattr(model, "complete"):  # a language model counts its own tokens and stops at the limit
            answer, prompt_tokens, n_out, finish = model.complete(messages, body.get("response_format"), limit)
            out_tokens = [0] * n_out
        else:
            answer = model.answer(messages, body.get("response_format"))
            enc = tokens.encoding_for(model_name)
            out_tokens = enc.encode(answer, disallowed_special=())
            finish = "stop"
            if limit is not None and len(out_tokens) > limit:
                out_tokens, finish = out_tokens[:limit], "length"
                answer = enc.decode(out_tokens)
            prompt_tokens = tokens.count_chat_tokens(messages, enc)
        return {
            "id": new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()), "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer, "refusal": None},
                         "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(out_tokens),
                      "total_tokens": prompt_tokens + len(out_tokens)},
            "system_fingerprint": _fingerprint(model), "service_tier": "default",
        }

    # fine-tuning ----------------------------------------------------------------------------
    def create_job(self, body: dict) -> dict:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "Missing required parameter: 'model'.", param="model")
        base = ALIASES.get(model, model)
        if base not in FINE_TUNABLE and learner.trainer_for(base).name == "classical":
            raise ApiError(400, f"Model {model} is not available for fine-tuning or does not exist.",
                           param="model", code="model_not_available")
        train_id = body.get("training_file")
        if not train_id:
            raise ApiError(400, "Missing required parameter: 'training_file'.", param="training_file")
        for key in ("training_file", "validation_file"):
            fid = body.get(key)
            if fid:
                f = self.store.get("files", fid)
                if f is None:
                    raise ApiError(400, f"invalid {key}: {fid}", param=key, code="invalid_file")
                if f["purpose"] != "fine-tune":
                    raise ApiError(400, f"File {fid} has purpose {f['purpose']!r}; fine-tuning needs 'fine-tune'.", param=key)
        method = body.get("method") or {"type": "supervised", "supervised": {"hyperparameters": body.get("hyperparameters") or {}}}
        if method.get("type") != "supervised":
            raise ApiError(400, f"the local backend supports method.type 'supervised', not {method.get('type')!r}", param="method")
        hp = dict((method.get("supervised") or {}).get("hyperparameters") or {})
        for key in ("n_epochs", "batch_size", "learning_rate_multiplier"):
            value = hp.get(key, "auto")
            if value != "auto" and not (isinstance(value, int | float) and value > 0):
                raise ApiError(400, f"invalid hyperparameter {key}: {value!r}", param=f"hyperparameters.{key}")
            hp[key] = value
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise ApiError(400, "suffix must be a string of at most 64 characters", param="suffix")
        seed = body.get("seed")
        seed = int(seed) if seed is not None else int(time.time()) % 2**31
        job = {"id": new_id("ftjob-"), "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
               "fine_tuned_model": None, "finished_at": None, "hyperparameters": hp, "model": base,
               "organization_id": ORG, "result_files": [], "seed": seed, "status": "validating_files",
               "trained_tokens": None, "training_file": train_id, "validation_file": body.get("validation_file"),
               "estimated_finish": None, "integrations": [], "metadata": body.get("metadata"),
               "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}, "_suffix": suffix,
               "_seq": self._next_seq()}
        self.store.put("jobs", job)
        self.store.add_event(job["id"], f"Validating training file: {train_id}"
                             + (f" and validation file: {job['validation_file']}" if job["validation_file"] else ""))
        self._jobs.put(job["id"])
        return self._public(job)

    def job(self, job_id: str) -> dict:
        record = self.store.get("jobs", job_id)
        if record is None:
            raise ApiError(404, f"Could not find fine-tuning job {job_id}.", param="fine_tuning_job_id", code="fine_tuning_job_not_found")
        return self._public(record)

    def list_jobs(self, metadata: dict | None = None) -> list[dict]:
        out = []
        for r in self.store.all("jobs"):
            if metadata and any((r.get("metadata") or {}).get(k) != v for k, v in metadata.items()):
                continue
            out.append(self._public(r))
        return out

    def cancel_job(self, job_id: str) -> dict:
        job = self.job(job_id)
        if job["status"] in TERMINAL:
            raise ApiError(400, f"Job {job_id} has already {job['status']}; it cannot be cancelled.", code="invalid_state")
        self._cancel.add(job_id)
        self.store.add_event(job_id, "Job cancellation requested")
        if job["status"] in ("validating_files", "queued"):
            return self._finish(job_id, "cancelled")
        return self.job(job_id)

    def events(self, job_id: str) -> list[dict]:
        self.job(job_id)
        return list(reversed(self.store.events(job_id)))

    def checkpoints(self, job_id: str) -> list[dict]:
        self.job(job_id)
        return list(reversed(self.store.get("jobs", job_id).get("_checkpoints", [])))

    def _finish(self, job_id: str, status: str, **changes) -> dict:
        self._cancel.discard(job_id)
        self.store.add_event(job_id, {"succeeded": "The job has successfully completed", "cancelled": "Job cancelled",
                                      "failed": "The job failed"}[status], level="error" if status == "failed" else "info")
        return self._public(self.store.update("jobs", job_id, status=status, finished_at=int(time.time()),
                                              estimated_finish=None, **changes))

    def _advance(self, job_id: str, **changes) -> bool:
        """Move a job on, unless it was cancelled meanwhile (the check and the write hold one lock)."""
        with self.store.lock:
            record = self.store.get("jobs", job_id)
            if record is None or record["status"] in TERMINAL:
                return False
            self.store.update("jobs", job_id, **changes)
            return True

    def _resolve_hp(self, hp: dict, n_examples: int) -> dict:
        return {
            "n_epochs": pricing.default_epochs(n_examples) if hp["n_epochs"] == "auto" else int(hp["n_epochs"]),
            "batch_size": max(8, min(256, n_examples // 500)) if hp["batch_size"] == "auto" else int(hp["batch_size"]),
            "learning_rate_multiplier": 1.0 if hp["learning_rate_multiplier"] == "auto" else float(hp["learning_rate_multiplier"]),
        }

    def _run_job(self, job_id: str) -> None:
        job = self.store.get("jobs", job_id)
        if job is None or job["status"] in TERMINAL:
            return
        try:
            train_bytes = self.store.read_blob(job["training_file"])
            report = validate_bytes(train_bytes, job["training_file"], job["model"], taxonomy=None)
            if report.errors:
                first = report.errors[0]
                where = f"line {first.line}: " if first.line else ""
                raise DataError(f"{where}{first.message} ({first.code}: {RULES_BY_CODE[first.code].description}); "
                                f"{len(report.errors)} error(s) in all", path=job["training_file"], rule=first.code)
            train = learner.parse_jsonl(train_bytes, job["training_file"])
            valid = (learner.parse_jsonl(self.store.read_blob(job["validation_file"]), job["validation_file"])
                     if job["validation_file"] else None)
            if len(train.texts) < MIN_EXAMPLES:
                raise DataError(f"has {len(train.texts)} examples; at least {MIN_EXAMPLES} are required",
                                path=job["training_file"], rule="min_examples")
        except (DataError, FileNotFoundError) as exc:
            if self.store.get("jobs", job_id)["status"] in TERMINAL:
                return
            self._finish(job_id, "failed", error={"code": "invalid_training_file", "param": "training_file",
                                                  "message": f"The job failed due to an invalid training file. {exc}"})
            return
        hp = self._resolve_hp(job["hyperparameters"], len(train.texts))
        if not self._advance(job_id, status="queued", hyperparameters=hp,
                             method={"type": "supervised", "supervised": {"hyperparameters": hp}}):
            return
        self.store.add_event(job_id, "Files validated, moving job to queued state")
        trainer = learner.trainer_for(job["model"])
        started = time.time()
        if not self._advance(job_id, status="running"):
            return
        self.store.add_event(job_id, f"Fine-tuning job started (local {trainer.name} trainer)")

        def on_step(m: learner.StepMetrics) -> None:
            if job_id in self._cancel:
                raise learner.Cancelled
            data = {"step": m.step, "train_loss": m.train_loss, "train_mean_token_accuracy": m.train_accuracy,
                    "total_steps": m.total_steps}
            if m.valid_loss is not None:
                data |= {"valid_loss": m.valid_loss, "valid_mean_token_accuracy": m.valid_accuracy}
            self.store.add_event(job_id, f"Step {m.step}/{m.total_steps}: training loss={m.train_loss:.4f}",
                                 data=data, type_="metrics")
            if m.step in (1, m.total_steps // 2):
                eta = started + (time.time() - started) / m.step * m.total_steps
                self.store.update("jobs", job_id, estimated_finish=int(eta) + 1)

        try:
            result = trainer.train(train, valid, hp, job["seed"], on_step, base=job["model"])
            if self.store.get("jobs", job_id)["status"] in TERMINAL:  # cancelled during the last step
                return
        except learner.Cancelled:
            self._finish(job_id, "cancelled")
            return
        except ConfigError as exc:  # a missing extra or missing weights: the user's to fix, said plainly
            self._finish(job_id, "failed", error={"code": "invalid_model", "param": "model", "message": str(exc)})
            return
        except Exception as exc:  # a trainer bug must fail the job, not leave it running
            self._finish(job_id, "failed", error={"code": "server_error", "param": None, "message": f"Training failed: {exc}"})
            return
        self._publish(job, result, hp, train_bytes)

    def _publish(self, job: dict, result: learner.TrainResult, hp: dict, train_bytes: bytes) -> None:
        job_id = job["id"]
        suffix = job.get("_suffix") or ""
        base_name = Path(job["model"]).name if "/" in job["model"] else job["model"]  # ids can't hold a path
        name = f"ft:{base_name}:{OWNER}:{suffix}:{job_id.removeprefix('ftjob-')[:8]}"
        enc = tokens.encoding_for(job["model"])
        per_epoch = sum(tokens.count_chat_tokens(json.loads(line)["messages"], enc)
                        for line in train_bytes.decode("utf-8-sig").splitlines())
        checkpoints = []
        for step, model, metrics in result.checkpoints[-3:]:
            ckpt_name = f"{name}:ckpt-step-{step}" if step != result.checkpoints[-1][0] else name
            model.save(self.store.weights_dir(ckpt_name))
            self.store.put("models", {"id": ckpt_name, "object": "model", "created": int(time.time()), "owned_by": OWNER})
            checkpoints.append({"id": new_id("ftckpt_"), "object": "fine_tuning.job.checkpoint", "created_at": int(time.time()),
                                "fine_tuned_model_checkpoint": ckpt_name, "fine_tuning_job_id": job_id, "step_number": step,
                                "metrics": {"step": step, "train_loss": metrics.train_loss,
                                            "train_mean_token_accuracy": metrics.train_accuracy,
                                            "valid_loss": metrics.valid_loss, "valid_mean_token_accuracy": metrics.valid_accuracy,
                                            "full_valid_loss": metrics.valid_loss,
                                            "full_valid_mean_token_accuracy": metrics.valid_accuracy}})
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(RESULT_COLUMNS)
        for m in result.steps:
            writer.writerow([m.step, f"{m.train_loss:.5f}", f"{m.train_accuracy:.5f}",
                             "" if m.valid_loss is None else f"{m.valid_loss:.5f}",
                             "" if m.valid_accuracy is None else f"{m.valid_accuracy:.5f}"])
        results = self.create_file("step_metrics.csv", "fine-tune-results", buf.getvalue().encode())
        self.store.add_event(job_id, f"Checkpoint created at step {result.checkpoints[-1][0]}")
        self.store.add_event(job_id, f"New fine-tuned model created: {name}")
        self.store.update("jobs", job_id, _checkpoints=checkpoints)
        self._finish(job_id, "succeeded", fine_tuned_model=name, result_files=[results["id"]],
                     trained_tokens=result.trained_tokens or per_epoch * hp["n_epochs"])

    # batches --------------------------------------------------------------------------------
    def create_batch(self, body: dict) -> dict:
        fid = body.get("input_file_id")
        f = self.store.get("files", fid or "")
        if f is None:
            raise ApiError(400, f"invalid input_file_id: {fid}", param="input_file_id", code="invalid_file")
        if f["purpose"] != "batch":
            raise ApiError(400, f"File {fid} has purpose {f['purpose']!r}; batches need 'batch'.", param="input_file_id")
        if body.get("endpoint") != "/v1/chat/completions":
            raise ApiError(400, "the local backend runs batches for /v1/chat/completions only", param="endpoint")
        now = int(time.time())
        batch = {"id": new_id("batch_"), "object": "batch", "endpoint": body["endpoint"], "errors": None,
                 "input_file_id": fid, "completion_window": body.get("completion_window", "24h"), "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                 "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                 "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
                 "_seq": self._next_seq()}
        self.store.put("batches", batch)
        self._batches.put(batch["id"])
        return self._public(batch)

    def batch(self, batch_id: str) -> dict:
        record = self.store.get("batches", batch_id)
        if record is None:
            raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id", code="batch_not_found")
        return self._public(record)

    def list_batches(self) -> list[dict]:
        return [self._public(r) for r in self.store.all("batches")]

    def cancel_batch(self, batch_id: str) -> dict:
        b = self.batch(batch_id)
        if b["status"] in ("completed", "failed", "cancelled", "expired"):
            raise ApiError(409, f"Cannot cancel a batch with status {b['status']}.", code="invalid_state")
        self._cancel.add(batch_id)
        return self._public(self.store.update("batches", batch_id, status="cancelling", cancelling_at=int(time.time())))

    def _run_batch(self, batch_id: str) -> None:
        b = self.store.get("batches", batch_id)
        if b is None or b["status"] not in ("validating", "in_progress", "cancelling"):
            return
        lines = self.store.read_blob(b["input_file_id"]).decode("utf-8-sig").splitlines()
        self.store.update("batches", batch_id, status="in_progress", in_progress_at=int(time.time()),
                          request_counts={"total": len(lines), "completed": 0, "failed": 0})
        out, err = [], []
        for lineno, line in enumerate(lines, start=1):
            if batch_id in self._cancel:
                break
            custom_id = None
            try:
                req = json.loads(line)
                custom_id = req.get("custom_id")
                if req.get("url") != "/v1/chat/completions" or not isinstance(req.get("body"), dict):
                    raise ApiError(400, f"line {lineno}: url must be /v1/chat/completions with a JSON body")
                body = self.chat(req["body"])
                out.append({"id": new_id("batch_req_"), "custom_id": custom_id, "error": None,
                            "response": {"status_code": 200, "request_id": new_id("req_"), "body": body}})
            except (ApiError, json.JSONDecodeError, AttributeError) as exc:
                e = exc if isinstance(exc, ApiError) else ApiError(400, f"line {lineno}: invalid JSON request")
                err.append({"id": new_id("batch_req_"), "custom_id": custom_id, "error": None,
                            "response": {"status_code": e.status, "request_id": new_id("req_"), "body": e.body()}})
        if batch_id in self._cancel:
            self._cancel.discard(batch_id)
            self.store.update("batches", batch_id, status="cancelled", cancelled_at=int(time.time()))
            return
        self.store.update("batches", batch_id, status="finalizing", finalizing_at=int(time.time()))
        to_bytes: Callable[[list], bytes] = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
        out_id = self.create_file(f"{batch_id}_output.jsonl", "batch_output", to_bytes(out))["id"] if out else None
        err_id = self.create_file(f"{batch_id}_error.jsonl", "batch_output", to_bytes(err))["id"] if err else None
        self.store.update("batches", batch_id, status="completed", completed_at=int(time.time()), output_file_id=out_id,
                          error_file_id=err_id, request_counts={"total": len(lines), "completed": len(out), "failed": len(err)})

    # workers --------------------------------------------------------------------------------
    def _work(self, q: queue.Queue, fn: Callable[[str], None]) -> None:
        while (item := q.get()) is not None:
            fn(item)

    def _recover(self) -> None:
        """Jobs and batches caught mid-way by a crash start again; none stays 'running' forever."""
        for job in sorted(self.store.all("jobs"), key=lambda r: r["created_at"]):
            if job["status"] not in TERMINAL:
                self.store.clear_events(job["id"])
                self.store.add_event(job["id"], "The local backend restarted while this job was "
                                     f"{job['status']}; training again from the start (same seed, same result)")
                self.store.update("jobs", job["id"], status="validating_files")
                self._jobs.put(job["id"])
        for b in self.store.all("batches"):
            if b["status"] in ("validating", "in_progress", "finalizing", "cancelling"):
                self._batches.put(b["id"])
