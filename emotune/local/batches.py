"""Batches: a file of chat requests answered in the background, as OpenAI's /v1/batches does."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from ..core.openai_spec import BATCH_TERMINAL
from .api_error import ApiError
from .chat import Chat
from .files import Files
from .schemas import BatchRequest, ChatRequest, parse
from .store import Store, new_id, public

OPEN = ("validating", "in_progress", "finalizing", "cancelling")
RUNNABLE = ("validating", "in_progress", "finalizing")  # finalizing: a crash stopped it there
log = logging.getLogger("emotune.local")
MAX_RESTARTS = 3  # a batch caught by this many server restarts is failed, not run a fourth time


# Requests of one batch answered at once, in input order: an open-weights model answers them in one
# batched generate call (trainers/batching.py); the stand-ins answer them one by one as before.
IN_FLIGHT = 32


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


class Batches:
    """Batch records; :meth:`run` is the worker's body for one batch."""

    def __init__(self, store: Store, files: Files, chat: Chat, enqueue):
        self.store, self.files, self.chat, self.enqueue = store, files, chat, enqueue
        self.cancelled: set[str] = set()

    def create(self, req: BatchRequest) -> dict:
        self.files.require(req.input_file_id, "batch", "input_file_id")
        now = int(time.time())
        batch = {
            "id": new_id("batch_"),
            "object": "batch",
            "endpoint": req.endpoint,
            "errors": None,
            "input_file_id": req.input_file_id,
            "completion_window": req.completion_window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86400,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": req.metadata,
            "_seq": self.store.next_seq(),
        }
        self.store.put("batches", batch)
        self.enqueue(batch["id"])
        return public(batch)

    def get(self, batch_id: str) -> dict:
        record = self.store.get("batches", batch_id)
        if record is None:
            raise ApiError(
                404,
                f"No batch found with id '{batch_id}'.",
                param="batch_id",
                code="batch_not_found",
            )
        return public(record)

    def list(self) -> list[dict]:
        return [public(r) for r in self.store.all("batches")]

    def cancel(self, batch_id: str) -> dict:
        """Record ``cancelling`` on the batch (it survives a restart). The rule that settles a race:
        a cancel recorded before the batch's final state makes it ``cancelled``, keeping the answers
        it has as its output file, as OpenAI does; the final state is written once
        (compare-and-set under the store's lock); after it, a cancel is a 409."""
        self.get(batch_id)
        done = self.store.update_if(
            "batches",
            batch_id,
            lambda r: r["status"] not in BATCH_TERMINAL,
            status="cancelling",
            cancelling_at=int(time.time()),
        )
        if done is None:
            status = self.get(batch_id)["status"]
            raise ApiError(
                409, f"Cannot cancel a batch with status {status}.", code="invalid_state"
            )
        self.cancelled.add(batch_id)
        return public(done)

    def recover(self) -> None:
        """Batches caught mid-way by a crash run again, at most MAX_RESTARTS times; one cancelled
        before the stop ends cancelled, never answered again."""
        for b in self.store.all("batches"):
            if b["status"] == "cancelling":
                self._settle(b["id"], "cancelled", {})
            elif b["status"] in OPEN:
                restarts = b.get("_restarts", 0) + 1
                if restarts > MAX_RESTARTS:
                    self._fail(
                        b["id"],
                        "server_error",
                        f"The local backend stopped {restarts - 1} times while this "
                        "batch ran; it is not started again.",
                        None,
                    )
                    continue
                self.store.update("batches", b["id"], _restarts=restarts)
                self.enqueue(b["id"])

    def _settle(self, batch_id: str, status: str, changes: dict) -> dict | None:
        """Write the batch's final state once: ``cancelled`` instead when a cancel was recorded
        first; nothing when it has a final state already."""
        now = int(time.time())
        with self.store.lock:
            b = self.store.get("batches", batch_id)
            if b is None or b["status"] in BATCH_TERMINAL:
                return None
            if b["status"] == "cancelling":  # the cancel came first: it is the outcome
                status, changes = "cancelled", {k: v for k, v in changes.items() if k != "errors"}
            stamp = {
                "completed": "completed_at",
                "failed": "failed_at",
                "cancelled": "cancelled_at",
            }
            self.cancelled.discard(batch_id)
            return self.store.update(
                "batches", batch_id, status=status, **{stamp[status]: now}, **changes
            )

    def _fail(self, batch_id: str, code: str, message: str, param: str | None) -> None:
        self._settle(
            batch_id,
            "failed",
            dict(
                errors={
                    "object": "list",
                    "data": [
                        {
                            "code": code,
                            "line": None,
                            "param": param,
                            "message": self.store.scrub(message),
                        }
                    ],
                },
            ),
        )

    def _answer(self, lineno: int, line: str) -> tuple[str | None, dict | None, ApiError | None]:
        custom_id = None
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ApiError(400, f"line {lineno}: each line must be a JSON object")
            custom_id = req.get("custom_id") if isinstance(req.get("custom_id"), str) else None
            if req.get("url") != "/v1/chat/completions" or not isinstance(req.get("body"), dict):
                raise ApiError(
                    400, f"line {lineno}: url must be /v1/chat/completions with a JSON body"
                )
            return custom_id, self.chat.complete(parse(ChatRequest, req["body"])), None
        except ApiError as exc:
            return custom_id, None, exc
        except (json.JSONDecodeError, RecursionError):
            return custom_id, None, ApiError(400, f"line {lineno}: invalid JSON request")
        except Exception as exc:  # one line's bug is that line's error, never the whole batch's
            log.exception("batch line %d failed", lineno)
            return (
                custom_id,
                None,
                ApiError(
                    500,
                    self.store.scrub(f"line {lineno}: {type(exc).__name__}: {exc}"),
                    type_="server_error",
                    code="server_error",
                ),
            )

    def run(self, batch_id: str) -> None:
        """Answer one batch; whatever happens, the batch ends and the worker lives on."""
        try:
            self._run(batch_id)
        except Exception as exc:  # a bug must fail this batch, never the queue
            self._fail(batch_id, "server_error", f"{type(exc).__name__}: {exc}", None)

    def _run(self, batch_id: str) -> None:
        b = self.store.get("batches", batch_id)
        if b is not None and b["status"] == "cancelling":  # cancelled while queued
            self._settle(batch_id, "cancelled", {})
        if b is None or b["status"] not in RUNNABLE:
            return
        try:
            lines = self.store.read_blob(b["input_file_id"]).decode("utf-8-sig").splitlines()
        except (UnicodeDecodeError, FileNotFoundError) as exc:
            reason = (
                "it is not UTF-8"
                if isinstance(exc, UnicodeDecodeError)
                else "its content is missing"
            )
            self._fail(
                batch_id,
                "invalid_input_file",
                f"The input file {b['input_file_id']} cannot be read: {reason} "
                f"({type(exc).__name__}).",
                "input_file_id",
            )
            return
        if not self.store.update_if(
            "batches",
            batch_id,
            lambda r: r["status"] in RUNNABLE,
            status="in_progress",
            in_progress_at=int(time.time()),
            request_counts={"total": len(lines), "completed": 0, "failed": 0},
        ):
            self._settle(batch_id, "cancelled", {})  # cancelled while its file was read
            return
        out, err = [], []
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="emotune-batch") as pool:
            for start in range(0, len(lines), IN_FLIGHT):
                if batch_id in self.cancelled:
                    break
                numbered = enumerate(lines[start : start + IN_FLIGHT], start=start + 1)
                for custom_id, body, error in pool.map(lambda n: self._answer(*n), numbered):
                    if error is None:
                        out.append(
                            {
                                "id": new_id("batch_req_"),
                                "custom_id": custom_id,
                                "error": None,
                                "response": {
                                    "status_code": 200,
                                    "request_id": new_id("req_"),
                                    "body": body,
                                },
                            }
                        )
                    else:
                        err.append(
                            {
                                "id": new_id("batch_req_"),
                                "custom_id": custom_id,
                                "error": None,
                                "response": {
                                    "status_code": error.status,
                                    "request_id": new_id("req_"),
                                    "body": error.body(),
                                },
                            }
                        )
                self.store.update(
                    "batches",
                    batch_id,
                    request_counts={"total": len(lines), "completed": len(out), "failed": len(err)},
                )
        counts = {"total": len(lines), "completed": len(out), "failed": len(err)}
        if not self.store.update_if(
            "batches",
            batch_id,
            lambda r: r["status"] == "in_progress",
            status="finalizing",
            finalizing_at=int(time.time()),
        ):  # cancelled: its final state keeps the answers it has
            self._settle(batch_id, "cancelled", self._outputs(batch_id, out, err, counts))
            return
        self._settle(batch_id, "completed", self._outputs(batch_id, out, err, counts))

    def _outputs(self, batch_id: str, out: list[dict], err: list[dict], counts: dict) -> dict:
        return {
            "output_file_id": self.files.create(
                f"{batch_id}_output.jsonl", "batch_output", _jsonl(out)
            )["id"]
            if out
            else None,
            "error_file_id": self.files.create(
                f"{batch_id}_error.jsonl", "batch_output", _jsonl(err)
            )["id"]
            if err
            else None,
            "request_counts": counts,
        }
