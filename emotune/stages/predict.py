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
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.progress import progress_bar
from ..core.prompts import PromptSpec, parse_answer, prompt_spec
from .ratelimit import Limiter, retry_after

DEFAULT_CONCURRENCY = None  # adaptive (emotune.ratelimit); an int caps the requests in flight
MAX_COMPLETION_TOKENS = 60
ROUNDS = 3  # passes over requests that failed even after their retries
MAX_THROTTLED = 50  # 429s one request may receive before it is reported


def _usable(rec) -> bool:
    """Whether a cache line holds a string answer with token counts (what every reader relies on)."""
    if (
        not isinstance(rec, dict)
        or not isinstance(rec.get("key"), str)
        or not isinstance(rec.get("content"), str)
    ):
        return False
    usage = rec.get("usage")
    return isinstance(usage, dict) and all(
        isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")
    )


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
                if _usable(rec):  # else a record an older emotune cached unchecked: asked again
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
        if not _usable(record):
            raise ValueError(
                f"refusing to cache a record without a string answer and token counts: {record!r:.200}"
            )
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
    attempts: int = 0  # HTTP attempts made, retries included
    rate: dict = field(default_factory=dict)  # what the limiter ended on: req/s, in flight, budgets, 429s
    seconds_per_answer: float | None = None  # wall time between the first and last online answer, per answer

    def labels(self) -> list[list[str]]:
        return [list(x) for x in self.frame["labels"]]

    def summary(self) -> dict:
        return {
            "model": self.model,
            "items": len(self.frame),
            "requests sent": self.sent,
            "from cache": int(self.frame["cached"].sum()),
            "failed": len(self.failures),
            "prompt tokens": self.prompt_tokens,
            "completion tokens": self.completion_tokens,
            "parse ok %": round(100 * (self.frame["status"] == "ok").mean(), 1) if len(self.frame) else 0.0,
        }


def sampling_params(
    seed: int,
    temperature: float = 0.0,
    max_completion_tokens: int = MAX_COMPLETION_TOKENS,
    spec: PromptSpec | None = None,
) -> dict:
    """The same sampling parameters for every model compared; a JSON answer format also sends its schema as
    ``response_format`` (structured outputs: a model decoding under it answers only labels of the set)."""
    params = {"temperature": temperature, "seed": seed, "max_completion_tokens": max_completion_tokens}
    if spec is not None and spec.label_format == "json":
        params["response_format"] = spec.taxonomy.response_format()
    return params


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


def _assemble(
    model: str,
    items,
    cache: PredictionCache,
    cached_keys: set[str],
    failures: dict,
    taxonomy,
    sent: int,
    attempts: int = 0,
    rate: dict | None = None,
) -> Predictions:
    """Parsed answers for every item that has one; tokens are those the answers used, cached or not."""
    rows, prompt, completion, times = [], 0, 0, []
    for row_id, _, key in items:
        rec = cache.get(key)
        if rec is None:
            continue
        times.append(rec.get("answered_at"))
        parsed = parse_answer(rec["content"], taxonomy)
        rows.append(
            {
                "id": row_id,
                "answer": rec["content"],
                "labels": parsed.labels,
                "status": parsed.status,
                "unknown": parsed.unknown,
                "cached": key in cached_keys,
            }
        )
        prompt += rec["usage"]["prompt_tokens"]
        completion += rec["usage"]["completion_tokens"]
    frame = pd.DataFrame(rows, columns=["id", "answer", "labels", "status", "unknown", "cached"])
    fails = [{"id": i, "error": e} for i, e in failures.items()]
    timed = [t for t in times if isinstance(t, int | float)]
    pace = (
        (max(timed) - min(timed)) / (len(timed) - 1) if len(timed) == len(times) and len(timed) > 1 else None
    )
    return Predictions(model, frame, fails, sent, prompt, completion, attempts, rate or {}, pace)


class MalformedAnswer(ValueError):
    """A 200 answer that is not a chat completion we can trust (never cached)."""


def max_answer_chars(max_completion_tokens: int) -> int:
    """The longest answer accepted for a token limit (a token is rarely over 16 characters)."""
    return max(256, 16 * max_completion_tokens)


def read_completion(raw: bytes, max_completion_tokens: int) -> dict:
    """The cache record of a chat completion body, or ``MalformedAnswer`` saying what is wrong with it."""
    if len(raw) > 64 * max_answer_chars(max_completion_tokens) + 65536:
        raise MalformedAnswer(
            f"answer of {len(raw):,} bytes for max_completion_tokens={max_completion_tokens}"
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        head = raw[:40].decode("utf-8", "replace").strip()
        raise MalformedAnswer(f"not JSON (starts {head!r})" if head else "empty body") from None
    if not isinstance(body, dict):
        raise MalformedAnswer(f"a JSON {type(body).__name__}, not a chat completion object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedAnswer("no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise MalformedAnswer(f"message content is {type(content).__name__}, not a string")
    if len(content) > max_answer_chars(max_completion_tokens):
        raise MalformedAnswer(
            f"answer of {len(content):,} characters for max_completion_tokens={max_completion_tokens}"
        )
    usage = body.get("usage")
    counts = (
        [usage.get(k) for k in ("prompt_tokens", "completion_tokens")] if isinstance(usage, dict) else None
    )
    if not counts or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise MalformedAnswer("no usage token counts")
    if counts[1] > max_completion_tokens:
        raise MalformedAnswer(
            f"{counts[1]} completion tokens for max_completion_tokens={max_completion_tokens}"
        )
    fingerprint = body.get("system_fingerprint")
    finish = choices[0].get("finish_reason")
    return {
        "content": content,
        "finish_reason": finish if isinstance(finish, str) else None,
        "system_fingerprint": fingerprint if isinstance(fingerprint, str) else None,
        "usage": {"prompt_tokens": counts[0], "completion_tokens": counts[1]},
    }


def _refused(exc: BaseException) -> bool:
    """Whether a connection error means nothing listens (refused, unreachable) rather than slowness."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _ask_all(
    conn,
    model: str,
    todo,
    params: dict,
    concurrency: int | None,
    cache: PredictionCache,
    progress: bool,
    limiter: Limiter | None = None,
):
    import httpx
    import openai

    retries = int(conn.options.get("max_retries", 2))
    lim = limiter or Limiter(base_timeout=float(conn.options.get("timeout", 60.0)))
    if concurrency is not None:  # a caller's fixed cap; the limiter still adapts below it
        lim.max_concurrency = concurrency
        lim.concurrency = min(lim.concurrency, concurrency)
    client = conn.async_client().with_options(max_retries=0)  # retries here, where 429s teach the limiter
    failures: dict[str, str] = {}
    stats = {"sent": 0, "attempts": 0}
    token_ratio = [0.3]  # prompt tokens per JSON character of the messages, learned from usage
    bar = progress_bar(len(todo), model[:40], "req", enabled=progress and bool(todo))
    max_tokens = int(params.get("max_completion_tokens", MAX_COMPLETION_TOKENS))

    async def attempt(messages, cost):
        await lim.acquire(cost)
        t0 = time.monotonic()
        try:
            if lim.down:  # tripped while this request waited for its turn
                return None, b"", 0.0
            stats["attempts"] += 1
            r = await client.post(
                "/chat/completions",
                cast_to=httpx.Response,
                body={"model": model, "messages": messages, **params},
                options={"timeout": lim.timeout()},
            )
            raw = await r.aread()
            return r, raw, time.monotonic() - t0
        finally:
            await lim.release()

    async def one(row_id, messages, key):
        size = len(json.dumps(messages))
        stats["sent"] += 1
        n = throttled = 0
        while n <= retries and throttled <= MAX_THROTTLED:
            if lim.down:
                failures[row_id] = f"server down: connection refused at {conn.base_url}"
                return
            last = n == retries
            cost = int(size * token_ratio[0]) + max_tokens
            try:
                r, raw, latency = await attempt(messages, cost)
            except openai.RateLimitError as exc:
                lim.on_throttled(retry_after(exc.response.headers), exc.response.headers)
                failures[row_id] = f"RateLimitError: {exc.message}"
                throttled += 1
                continue  # a 429 is the server's pacing, not the item's fault: it does not use up a retry
            except openai.APIConnectionError as exc:  # timeouts included (aiohttp reports a refusal as one)
                if _refused(exc):
                    lim.on_connection_error()
                    failures[row_id] = f"connection refused at {conn.base_url}"
                elif isinstance(exc, openai.APITimeoutError):
                    lim.on_overloaded()
                    failures[row_id] = f"APITimeoutError: {exc.message} after {lim.timeout():.0f} s"
                else:
                    lim.on_overloaded()
                    failures[row_id] = f"APIConnectionError: {exc.message}"
            except openai.APIStatusError as exc:
                failures[row_id] = f"{type(exc).__name__}: {exc.message}"
                if exc.status_code < 500 and exc.status_code not in (408, 409):
                    return  # the request itself is wrong; asking again will not help
                lim.on_overloaded()
            else:
                if r is None:
                    continue
                lim.observe_headers(r.headers)
                try:
                    record = read_completion(raw, max_tokens)
                except MalformedAnswer as exc:
                    lim.on_success(latency)
                    failures[row_id] = f"malformed answer: {exc}"
                    return  # the server answered; it would answer garbage again
                lim.on_success(latency)
                token_ratio[0] = 0.9 * token_ratio[0] + 0.1 * record["usage"]["prompt_tokens"] / max(size, 1)
                cache.put(key, {"model": model, **record, "answered_at": round(time.time(), 3)})
                failures.pop(row_id, None)
                bar.update(1)
                bar.set_postfix(lim.describe(), refresh=False)
                return
            n += 1
            if not last:
                await asyncio.sleep(min(8.0, 0.25 * 2**n))

    try:
        pending = todo
        for _ in range(ROUNDS):
            await asyncio.gather(*(one(*item) for item in pending))
            pending = [
                item
                for item in pending
                if item[0] in failures and not failures[item[0]].startswith(("malformed", "server down"))
            ]
            if not pending or lim.down:
                break
    finally:
        bar.close()
        await client.close()
    return failures, stats["sent"], stats["attempts"], lim


def classify(
    conn,
    model: str,
    frame: pd.DataFrame,
    *,
    cache: PredictionCache,
    spec: PromptSpec | None = None,
    seed: int = 0,
    temperature: float = 0.0,
    concurrency: int | None = DEFAULT_CONCURRENCY,
    max_completion_tokens: int = MAX_COMPLETION_TOKENS,
    progress: bool = True,
    limiter: Limiter | None = None,
) -> Predictions:
    """Answers for every row of ``frame`` (columns id, text), asking only for those not cached.

    Requests are paced by an adaptive ``Limiter`` (the server's rate-limit headers, 429s and latency);
    ``concurrency`` caps the requests in flight. A malformed answer, a request that keeps failing, and every
    item left when the server refuses connections are reported in ``failures``, never cached.
    """
    spec = spec or prompt_spec()
    params = sampling_params(seed, temperature, max_completion_tokens, spec)
    items = _build(frame, model, params, spec)
    cached = {key for _, _, key in items if cache.get(key) is not None}
    todo = [item for item in items if item[2] not in cached]
    if not todo:
        return _assemble(model, items, cache, cached, {}, spec.taxonomy, 0)
    failures, sent, attempts, lim = _run(
        _ask_all(conn, model, todo, params, concurrency, cache, progress, limiter)
    )
    return _assemble(model, items, cache, cached, failures, spec.taxonomy, sent, attempts, lim.describe())
