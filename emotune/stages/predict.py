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
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core import config
from ..core.prompts import PromptSpec, parse_answer, prompt_spec
from ..core.taxonomy import Taxonomy
from .ratelimit import Limiter
from .requests import RequestLoop

DEFAULT_CONCURRENCY = None  # adaptive (emotune.ratelimit); an int caps the requests in flight
# Answer tokens asked of every model compared: enough for five labels in the format (a JSON answer
# spells out its brackets and quotes). A model that chats instead of answering is cut there, the
# same for all.
MAX_COMPLETION_TOKENS = 60
ANSWER_TOKENS = {"comma": 24, "json": MAX_COMPLETION_TOKENS}


def answer_tokens(spec: PromptSpec | None) -> int:
    """The completion-token cap for answers in ``spec``'s label format."""
    return (
        ANSWER_TOKENS.get(spec.label_format, MAX_COMPLETION_TOKENS)
        if spec
        else MAX_COMPLETION_TOKENS
    )


def _usable(rec) -> bool:
    """Whether a cache line holds a string answer with token counts (what every reader relies
    on)."""
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
                "refusing to cache a record without a string answer and token counts: "
                f"{record!r:.200}"
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
    rate: dict = field(
        default_factory=dict
    )  # what the limiter ended on: req/s, in flight, budgets, 429s
    # wall time between the first and last online answer, per answer
    seconds_per_answer: float | None = None

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
            "parse ok %": round(100 * (self.frame["status"] == "ok").mean(), 1)
            if len(self.frame)
            else 0.0,
        }


def sampling_params(
    seed: int,
    temperature: float = 0.0,
    max_completion_tokens: int | None = None,
    spec: PromptSpec | None = None,
) -> dict:
    """The same sampling parameters for every model compared; a JSON answer format also sends its
    schema as ``response_format`` (structured outputs: a model decoding under it answers only labels
    of the set)."""
    params = {
        "temperature": temperature,
        "seed": seed,
        "max_completion_tokens": max_completion_tokens or answer_tokens(spec),
    }
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
    taxonomy: Taxonomy,
    sent: int,
    attempts: int = 0,
    rate: dict | None = None,
) -> Predictions:
    """Parsed answers for every item that has one; tokens are those the answers used, cached or
    not."""
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
        (max(timed) - min(timed)) / (len(timed) - 1)
        if len(timed) == len(times) and len(timed) > 1
        else None
    )
    return Predictions(model, frame, fails, sent, prompt, completion, attempts, rate or {}, pace)


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
    max_completion_tokens: int | None = None,
    progress: bool = True,
    limiter: Limiter | None = None,
) -> Predictions:
    """Answers for every row of ``frame`` (columns id, text), asking only for those not cached.

    Requests are paced by an adaptive ``Limiter`` (the server's rate-limit headers, 429s and
    latency); ``concurrency`` caps the requests in flight. A malformed answer, a request that keeps
    failing, and every item left when the server refuses connections are reported in ``failures``,
    never cached.
    """
    spec = spec or prompt_spec()
    params = sampling_params(seed, temperature, max_completion_tokens, spec)
    items = _build(frame, model, params, spec)
    cached = {key for _, _, key in items if cache.get(key) is not None}
    todo = [item for item in items if item[2] not in cached]
    if not todo:
        return _assemble(model, items, cache, cached, {}, spec.taxonomy, 0)
    if config.replaying():  # name the first request it would have sent
        first = json.dumps({"model": model, "messages": todo[0][1]} | params)
        config.refuse_in_replay(
            f"{len(todo)} of {len(items)} answers of {model} (the first: {first:.400})"
        )
    max_tokens = int(params.get("max_completion_tokens", MAX_COMPLETION_TOKENS))
    loop = RequestLoop(
        conn, model, params, cache, max_tokens=max_tokens, concurrency=concurrency, limiter=limiter
    )
    failures = {row_id: f.message for row_id, f in _run(loop.run(todo, progress)).items()}
    conn.explain_failures(model, failures)  # e.g. an Azure model nobody deployed
    rate = loop.limiter.describe()
    return _assemble(
        model, items, cache, cached, failures, spec.taxonomy, loop.sent, loop.attempts, rate
    )
