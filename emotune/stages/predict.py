"""Classify many texts: concurrent, retried, cached on disk, online or through the Batch API.

A prediction is cached under a key of model, messages and sampling parameters the moment it arrives,
so a re-run or a crash never buys it twice. A request that still fails after the client's retries is
reported and left out of the cache (the next run asks again); it never becomes a label.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.errors import BackendError, ConfigError
from ..core.manifest import BatchRecord
from ..core.prompts import PromptSpec, parse_answer, prompt_spec

DEFAULT_CONCURRENCY = 32
MAX_COMPLETION_TOKENS = 60
ROUNDS = 3  # passes over requests that failed even after the client's own retries


class PredictionCache:
    """Answers on disk as JSON lines, keyed by model + messages + sampling parameters."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._data: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text("utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash; that request is simply asked again
                self._data[rec["key"]] = rec
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for appends)

    @staticmethod
    def key(model: str, messages: list[dict], params: dict) -> str:
        blob = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self._data.get(key)

    def put(self, key: str, record: dict) -> None:
        record = {"key": key, **record}
        self._data[key] = record
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        self._file.close()


@dataclass
class Predictions:
    """One model's answers for a frame of texts, parsed, with usage and failures."""

    model: str
    frame: pd.DataFrame  # id, answer, labels, status, unknown, cached
    failures: list[dict] = field(default_factory=list)
    sent: int = 0  # requests sent by this call (the rest came from the cache)
    prompt_tokens: int = 0  # tokens the answers used, whether bought now or earlier
    completion_tokens: int = 0

    def labels(self) -> list[list[str]]:
        return [list(x) for x in self.frame["labels"]]

    def summary(self) -> dict:
        return {"model": self.model, "items": len(self.frame), "requests sent": self.sent,
                "from cache": int(self.frame["cached"].sum()), "failed": len(self.failures),
                "prompt tokens": self.prompt_tokens, "completion tokens": self.completion_tokens,
                "parse ok %": round(100 * (self.frame["status"] == "ok").mean(), 1) if len(self.frame) else 0.0}


def sampling_params(seed: int, temperature: float = 0.0, max_completion_tokens: int = MAX_COMPLETION_TOKENS) -> dict:
    """The same sampling parameters for every model compared."""
    return {"temperature": temperature, "seed": seed, "max_completion_tokens": max_completion_tokens}


def _run(coro):
    """Run a coroutine from sync code, also inside Jupyter's already running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _build(frame: pd.DataFrame, model: str, params: dict, spec: PromptSpec):
    items = []
    for row_id, text in zip(frame["id"], frame["text"], strict=True):
        messages = spec.messages(text)
        items.append((str(row_id), messages, PredictionCache.key(model, messages, params)))
    return items


def _assemble(model: str, items, cache: PredictionCache, cached_keys: set[str], failures: dict, taxonomy,
              sent: int) -> Predictions:
    """Parsed answers for every item that has one; tokens are those the answers used, cached or not."""
    rows, prompt, completion = [], 0, 0
    for row_id, _, key in items:
        rec = cache.get(key)
        if rec is None:
            continue
        parsed = parse_answer(rec["content"], taxonomy)
        rows.append({"id": row_id, "answer": rec["content"], "labels": parsed.labels, "status": parsed.status,
                     "unknown": parsed.unknown, "cached": key in cached_keys})
        prompt += rec["usage"]["prompt_tokens"]
        completion += rec["usage"]["completion_tokens"]
    frame = pd.DataFrame(rows, columns=["id", "answer", "labels", "status", "unknown", "cached"])
    fails = [{"id": i, "error": e} for i, e in failures.items()]
    return Predictions(model, frame, fails, sent, prompt, completion)


async def _ask_all(conn, model: str, todo, params: dict, concurrency: int, cache: PredictionCache, progress: bool):
    import openai
    from openai.types.chat import ChatCompletion
    from tqdm.auto import tqdm

    client = conn.async_client()
    sem = asyncio.Semaphore(concurrency)
    failures: dict[str, str] = {}
    sent = 0
    bar = tqdm(total=len(todo), desc=model[:40], unit="req", disable=not progress or not todo)

    async def one(row_id, messages, key):
        nonlocal sent
        async with sem:
            sent += 1
            try:
                # The official client's generic POST: same retries, timeouts and errors as
                # chat.completions.create, without its per-call TypedDict transform of the messages,
                # which cost about half the client's CPU per request (benchmarks/bench_predict.py).
                r = await client.post("/chat/completions", cast_to=ChatCompletion,
                                      body={"model": model, "messages": messages, **params})
            except openai.APIError as exc:  # after the client's own retries with back-off
                failures[row_id] = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
                return
            cache.put(key, {"model": model, "content": r.choices[0].message.content or "",
                            "finish_reason": r.choices[0].finish_reason, "system_fingerprint": r.system_fingerprint,
                            "usage": {"prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens}})
            failures.pop(row_id, None)
            bar.update(1)

    try:
        pending = todo
        for _ in range(ROUNDS):
            await asyncio.gather(*(one(*item) for item in pending))
            pending = [item for item in pending if item[0] in failures]
            if not pending:
                break
    finally:
        bar.close()
        await client.close()
    return failures, sent


def classify(conn, model: str, frame: pd.DataFrame, *, cache: PredictionCache, spec: PromptSpec | None = None,
             seed: int = 0, temperature: float = 0.0, concurrency: int = DEFAULT_CONCURRENCY,
             max_completion_tokens: int = MAX_COMPLETION_TOKENS, progress: bool = True) -> Predictions:
    """Answers for every row of ``frame`` (columns id, text), asking only for those not cached."""
    params = sampling_params(seed, temperature, max_completion_tokens)
    spec = spec or prompt_spec()
    items = _build(frame, model, params, spec)
    cached = {key for _, _, key in items if cache.get(key) is not None}
    todo = [item for item in items if item[2] not in cached]
    failures, sent = _run(_ask_all(conn, model, todo, params, concurrency, cache, progress)) if todo else ({}, 0)
    return _assemble(model, items, cache, cached, failures, spec.taxonomy, sent)


def classify_batch(conn, run, model: str, frame: pd.DataFrame, *, key: str, cache: PredictionCache,
                   spec: PromptSpec | None = None, seed: int = 0, temperature: float = 0.0,
                   max_completion_tokens: int = MAX_COMPLETION_TOKENS, poll_s: float = 1.0, max_poll_s: float = 60.0,
                   timeout_s: float = 25 * 3600, sleep: Callable[[float], None] = time.sleep) -> Predictions:
    """The same classification through ``/v1/batches`` (50% cheaper on OpenAI), resumable from the manifest."""
    client = conn.client
    params = sampling_params(seed, temperature, max_completion_tokens)
    if not conn.batches:
        raise ConfigError(f"the {conn.kind} provider runs no batches; classify online instead")
    spec = spec or prompt_spec()
    items = _build(frame, model, params, spec)
    lines = [{"custom_id": row_id, "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": model, "messages": messages, **params}} for row_id, messages, _ in items]
    if len({x["custom_id"] for x in lines}) != len(lines):
        raise ConfigError("ids must be unique to join batch results on custom_id")
    raw = "".join(json.dumps(x) + "\n" for x in lines).encode()
    sha = hashlib.sha256(raw).hexdigest()
    known = run.read(BatchRecord, key, required=False)
    if known is not None and known.sha256 == sha and known.batch_id:
        batch = client.batches.retrieve(known.batch_id)
    else:
        upload = client.files.create(file=(f"{run.name}-batch-{key}-{sha[:16]}.jsonl", raw), purpose="batch")
        batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
                                      metadata={"emotune_run": run.id, "key": key})
        run.put(BatchRecord(batch_id=batch.id, input_file_id=upload.id, sha256=sha, model=model), key)
    waited, interval = 0.0, poll_s
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        if waited >= timeout_s:
            raise BackendError(f"batch {batch.id} still {batch.status} after {timeout_s:.0f} s; run again to resume")
        sleep(interval)
        waited += interval
        interval = min(max_poll_s, interval * 1.5)
        batch = client.batches.retrieve(batch.id)
    if batch.status != "completed":
        raise BackendError(f"batch {batch.id} ended {batch.status}: {batch.errors}")
    by_id = {row_id: k for row_id, _, k in items}
    cached_before = {k for _, _, k in items if cache.get(k) is not None}
    fresh: set[str] = set()
    if batch.output_file_id:
        for line in client.files.content(batch.output_file_id).text.splitlines():
            out = json.loads(line)
            body = out["response"]["body"]
            k = by_id[out["custom_id"]]
            if k not in cached_before:
                cache.put(k, {"model": model, "content": body["choices"][0]["message"]["content"] or "",
                              "finish_reason": body["choices"][0]["finish_reason"], "via": "batch",
                              "system_fingerprint": body.get("system_fingerprint"),
                              "usage": {"prompt_tokens": body["usage"]["prompt_tokens"],
                                        "completion_tokens": body["usage"]["completion_tokens"]}})
                fresh.add(k)
    failures = {}
    if batch.error_file_id:
        for line in client.files.content(batch.error_file_id).text.splitlines():
            err = json.loads(line)
            body = (err.get("response") or {}).get("body") or {}
            failures[err["custom_id"]] = (body.get("error") or err.get("error") or {}).get("message", "batch error")
    run.put(BatchRecord(status=batch.status, output_file_id=batch.output_file_id, error_file_id=batch.error_file_id), key)
    return _assemble(model, items, cache, cached_before, failures, spec.taxonomy, len(fresh))
