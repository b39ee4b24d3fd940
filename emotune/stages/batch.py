"""Classify through the Batch API (``/v1/batches``, 50% cheaper on OpenAI): upload, poll, collect.

Each step is resumable from the manifest's ``batches`` section: a re-run with the same requests
finds the batch it created instead of uploading again, and answers already cached are never
replaced.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

import pandas as pd

from ..core import config
from ..core.errors import BackendError, ConfigError
from ..core.manifest import BatchRecord
from ..core.prompts import PromptSpec, prompt_spec
from .predict import (
    PredictionCache,
    Predictions,
    _assemble,
    _build,
    sampling_params,
)
from .requests import MalformedAnswer, read_completion

BATCH_DONE = ("completed", "failed", "expired", "cancelled")


def batch_input(model: str, items, params: dict) -> bytes:
    """The batch's JSONL: one chat request per item, its ``custom_id`` the row id (unique)."""
    lines = [
        {
            "custom_id": row_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": messages, **params},
        }
        for row_id, messages, _ in items
    ]
    if len({x["custom_id"] for x in lines}) != len(lines):
        raise ConfigError("ids must be unique to join batch results on custom_id")
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def upload_batch(client, run, model: str, raw: bytes, key: str):
    """The run's batch for these exact requests: the one the manifest records, else a new upload
    and batch."""
    sha = hashlib.sha256(raw).hexdigest()
    known = run.read(BatchRecord, key, required=False)
    if known is not None and known.sha256 == sha and known.batch_id:
        return client.batches.retrieve(known.batch_id)
    config.refuse_in_replay(f"a batch of {model}")
    upload = client.files.create(
        file=(f"{run.name}-batch-{key}-{sha[:16]}.jsonl", raw), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"emotune_run": run.id, "key": key},
    )
    run.put(BatchRecord(batch_id=batch.id, input_file_id=upload.id, sha256=sha, model=model), key)
    return batch


def poll_batch(client, batch, *, poll_s: float, max_poll_s: float, timeout_s: float, sleep):
    """Wait, with growing intervals, until the batch ends; it must end ``completed``."""
    waited, interval = 0.0, poll_s
    while batch.status not in BATCH_DONE:
        if waited >= timeout_s:
            raise BackendError(
                f"batch {batch.id} still {batch.status} after {timeout_s:.0f} s; run again to "
                "resume"
            )
        sleep(interval)
        waited += interval
        interval = min(max_poll_s, interval * 1.5)
        batch = client.batches.retrieve(batch.id)
    if batch.status != "completed":
        raise BackendError(f"batch {batch.id} ended {batch.status}: {batch.errors}")
    return batch


BYTES_PER_ANSWER = (
    64 * 1024
)  # one output line: an answer capped at a few dozen tokens, and its envelope
RESULT_FILE_MAX_BYTES = 64 * 1024 * 1024  # a job's per-step metrics CSV


def server_file_text(client, file_id: str, max_bytes: int) -> str:
    """A file the server made (a batch's output, a job's results), read as text up to
    ``max_bytes``: a larger one is an error naming it, never read whole."""
    with client.files.with_streaming_response.content(file_id) as response:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise BackendError(
                    f"the server's file {file_id} is larger than the {max_bytes:,} bytes it can "
                    "hold; it was not read further"
                )
    return body.decode("utf-8", errors="replace")


def _lines(client, file_id: str, max_bytes: int) -> list[dict]:
    """The JSON objects of a batch output or error file; a line that is not one is skipped."""
    found = []
    for line in server_file_text(client, file_id, max_bytes).splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def collect_batch(
    client, batch, model: str, items, cache: PredictionCache, max_completion_tokens: int
):
    """Cache the batch's good answers (never over a cached one); the new keys and each failure by
    row id."""
    by_id = {row_id: k for row_id, _, k in items}
    cached_before = {k for _, _, k in items if cache.get(k) is not None}
    fresh: set[str] = set()
    failures: dict[str, str] = {}
    cap = BYTES_PER_ANSWER * (len(items) + 16)
    if batch.output_file_id:
        for out in _lines(client, batch.output_file_id, cap):
            k = by_id.get(out.get("custom_id"))
            if k is None or k in cached_before:  # not one of ours, or answered before
                continue
            try:
                record = read_completion(
                    json.dumps(out["response"]["body"]).encode(), max_completion_tokens
                )
            except (MalformedAnswer, KeyError, TypeError) as exc:
                failures[out["custom_id"]] = f"malformed answer: {exc}"
                continue
            cache.put(k, {"model": model, **record, "via": "batch"})
            fresh.add(k)
    if batch.error_file_id:
        for err in _lines(client, batch.error_file_id, cap):
            if err.get("custom_id") not in by_id:
                continue
            body = (err.get("response") or {}).get("body") or {}
            failures[err["custom_id"]] = (body.get("error") or err.get("error") or {}).get(
                "message", "batch error"
            )
    return cached_before, fresh, failures


def classify_batch(
    conn,
    run,
    model: str,
    frame: pd.DataFrame,
    *,
    key: str,
    cache: PredictionCache,
    spec: PromptSpec | None = None,
    seed: int = 0,
    temperature: float = 0.0,
    max_completion_tokens: int | None = None,
    poll_s: float = 1.0,
    max_poll_s: float = 60.0,
    timeout_s: float = 25 * 3600,
    sleep: Callable[[float], None] = time.sleep,
) -> Predictions:
    """The same classification as :func:`~emotune.stages.predict.classify` through
    ``/v1/batches``."""
    if not conn.batches:
        raise ConfigError(f"the {conn.kind} provider runs no batches; classify online instead")
    spec = spec or prompt_spec()
    params = sampling_params(seed, temperature, max_completion_tokens, spec)
    items = _build(frame, model, params, spec)
    batch = upload_batch(
        conn.client, run, model, batch_input(conn.serving_name(model), items, params), key
    )
    batch = poll_batch(
        conn.client, batch, poll_s=poll_s, max_poll_s=max_poll_s, timeout_s=timeout_s, sleep=sleep
    )
    cached_before, fresh, failures = collect_batch(
        conn.client, batch, model, items, cache, params["max_completion_tokens"]
    )
    run.put(
        BatchRecord(
            status=batch.status,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        ),
        key,
    )
    return _assemble(model, items, cache, cached_before, failures, spec.taxonomy, len(fresh))
