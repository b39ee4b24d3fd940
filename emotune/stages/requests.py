"""One model's requests, sent concurrently and retried: why each one failed, and reading the
answers.

A request that keeps failing is recorded as a ``Failure`` whose kind says whether another round asks
it again; its message is the text ``Predictions.failures`` reports.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import importlib
import json
import time
from dataclasses import dataclass

from ..core.progress import progress_bar
from .ratelimit import Limiter, retry_after

ROUNDS = 3  # passes over requests that failed even after their retries
MAX_THROTTLED = 50  # 429s one request may receive before it is reported


class MalformedAnswer(ValueError):
    """A 200 answer that is not a chat completion we can trust (never cached)."""


class AnswerTooLarge(MalformedAnswer):
    """A body (an answer or an error) longer than :func:`max_body_bytes`: cut off, not read."""


def max_answer_chars(max_completion_tokens: int) -> int:
    """The longest answer accepted for a token limit (a token is rarely over 16 characters)."""
    return max(256, 16 * max_completion_tokens)


def max_body_bytes(max_completion_tokens: int) -> int:
    """The most bytes of a response read for a token limit (escapes, logprobs and headroom)."""
    return 64 * max_answer_chars(max_completion_tokens) + 65536


@functools.cache
def _capped_stream(byte_stream: type) -> type:
    """A body stream of the client's own HTTP library (httpx, or httpx2 in newer openai clients)
    that stops with ``AnswerTooLarge`` once it passes ``limit`` bytes."""

    class CappedStream(byte_stream):
        def __init__(self, inner, limit: int):
            self.inner, self.limit = inner, limit

        async def __aiter__(self):
            seen = 0
            async for chunk in self.inner:
                seen += len(chunk)
                if seen > self.limit:
                    raise AnswerTooLarge(f"a body over {self.limit:,} bytes (cut off there)")
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    return CappedStream


def capped_http_client(limit: int):
    """The openai client's aiohttp transport, with a response hook that caps every body it reads
    (answers and error bodies alike) at ``limit`` bytes: an announced length over it is refused
    before reading, an unannounced one is cut off there."""
    import openai

    async def cap(response) -> None:
        declared = (response.headers.get("content-length") or "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise AnswerTooLarge(f"a body of {int(declared):,} bytes, over the {limit:,} read")
        library = importlib.import_module(type(response).__module__.split(".")[0])
        response.stream = _capped_stream(library.AsyncByteStream)(response.stream, limit)

    return openai.DefaultAioHttpClient(event_hooks={"response": [cap]})


def read_completion(raw: bytes, max_completion_tokens: int) -> dict:
    """The cache record of a chat completion body, or ``MalformedAnswer`` saying what is wrong
    with it."""
    if len(raw) > max_body_bytes(max_completion_tokens):
        raise AnswerTooLarge(
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
            f"answer of {len(content):,} characters for "
            f"max_completion_tokens={max_completion_tokens}"
        )
    usage = body.get("usage")
    counts = (
        [usage.get(k) for k in ("prompt_tokens", "completion_tokens")]
        if isinstance(usage, dict)
        else None
    )
    if not counts or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts
    ):
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
    """Whether a connection error means nothing listens (refused, unreachable) rather than
    slowness."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class FailureKind(enum.Enum):
    """Why a request failed: ``retry_now`` asks it again in this round, ``next_round`` in the
    next one."""

    RATE_LIMITED = "429", True, True  # asked again without using up a retry, up to MAX_THROTTLED
    REFUSED = "connection refused", True, True  # each one counts toward the limiter's breaker
    TIMEOUT = "timeout", True, True
    CONNECTION = "connection error", True, True
    CLIENT_ERROR = (
        "4xx",
        False,
        True,
    )  # other than 408 and 409: the request itself is wrong, not its timing
    SERVER_ERROR = "5xx, 408 or 409", True, True
    MALFORMED = (
        "malformed answer",
        False,
        False,
    )  # the server answered; it would answer garbage again
    SERVER_DOWN = "server down", False, False  # the breaker tripped: nothing listens

    def __init__(self, what: str, retry_now: bool, next_round: bool):
        self.what, self.retry_now, self.next_round = what, retry_now, next_round


@dataclass(frozen=True)
class Failure:
    """The last failure of one request: its kind and the message reported for it."""

    kind: FailureKind
    message: str


class RequestLoop:
    """Asks for the answers of many requests in rounds, paced by a ``Limiter`` and cached as they
    come."""

    def __init__(
        self,
        conn,
        model: str,
        params: dict,
        cache,
        *,
        max_tokens: int,
        concurrency=None,
        limiter=None,
    ):
        self.conn, self.model, self.params, self.cache = conn, model, params, cache
        self.max_tokens = max_tokens
        self.retries = int(conn.options.get("max_retries", 2))
        self.limiter = limiter or Limiter(base_timeout=float(conn.options.get("timeout", 60.0)))
        if concurrency is not None:  # a caller's fixed cap; the limiter still adapts below it
            self.limiter.max_concurrency = concurrency
            self.limiter.concurrency = min(self.limiter.concurrency, concurrency)
        self.sent = self.attempts = 0
        # prompt tokens per JSON character of the messages, learned from usage
        self.token_ratio = 0.3
        self.failures: dict[str, Failure] = {}
        self.client = self.bar = None  # made in run(), inside the event loop that uses them

    async def run(self, todo, progress: bool = True) -> dict[str, Failure]:
        """Every item of ``todo`` (row id, messages, cache key) asked in up to ``ROUNDS`` rounds."""
        # retries here, where 429s teach; every body read is capped (capped_http_client)
        base = self.conn.async_client()
        http = capped_http_client(max_body_bytes(self.max_tokens))
        self.client = base.with_options(max_retries=0, http_client=http)
        await base.close()
        label = self.conn.display_name(self.model)[
            :48
        ]  # "stand-in for ..." where the stand-in answers
        self.bar = progress_bar(len(todo), label, "req", enabled=progress and bool(todo))
        try:
            pending = todo
            for _ in range(ROUNDS):
                await asyncio.gather(*(self.ask_one(*item) for item in pending))
                pending = [i for i in pending if self._retry_next_round(i[0])]
                if not pending or self.limiter.down:
                    break
        finally:
            self.bar.close()
            await self.client.close()
        return self.failures

    async def ask_one(self, row_id: str, messages: list[dict], key: str) -> None:
        """One item: attempts until it is answered, its retries are used up, or it cannot
        succeed."""
        size = len(json.dumps(messages))
        self.sent += 1
        n = throttled = 0
        while n <= self.retries and throttled <= MAX_THROTTLED:
            if self.limiter.down:
                self._fail(row_id, FailureKind.SERVER_DOWN, self.down_message)
                return
            last = n == self.retries
            kind = await self.attempt(row_id, messages, key, size)
            if kind is None or not kind.retry_now:
                return
            if kind is FailureKind.RATE_LIMITED:
                throttled += 1
                # a 429 is the server's pacing, not the item's fault: it does not use up a retry
                continue
            n += 1
            if not last:
                await asyncio.sleep(min(8.0, 0.25 * 2**n))

    async def attempt(
        self, row_id: str, messages: list[dict], key: str, size: int
    ) -> FailureKind | None:
        """One request: None once its answer is cached, else the kind of the failure it recorded."""
        import openai

        try:
            r, raw, latency = await self._post(
                messages, int(size * self.token_ratio) + self.max_tokens
            )
        except AnswerTooLarge as exc:  # the server's answer: asking again would bring it again
            return self._fail(row_id, FailureKind.MALFORMED, f"malformed answer: {exc}")
        except TimeoutError:  # the whole request's deadline, however slowly the bytes trickle
            self.limiter.on_timeout()
            message = f"timeout: no whole answer within {self.limiter.timeout():.0f} s"
            return self._fail(row_id, FailureKind.TIMEOUT, message)
        except openai.RateLimitError as exc:
            self.limiter.on_throttled(retry_after(exc.response.headers), exc.response.headers)
            return self._fail(row_id, FailureKind.RATE_LIMITED, f"RateLimitError: {exc.message}")
        except (
            openai.APIConnectionError
        ) as exc:  # timeouts included (aiohttp reports a refusal as one)
            return self._connection_failed(row_id, exc)
        except openai.APIStatusError as exc:
            if exc.status_code < 500 and exc.status_code not in (408, 409):
                return self._fail(
                    row_id, FailureKind.CLIENT_ERROR, f"{type(exc).__name__}: {exc.message}"
                )
            self.limiter.on_overloaded()
            return self._fail(
                row_id, FailureKind.SERVER_ERROR, f"{type(exc).__name__}: {exc.message}"
            )
        if r is None:  # the breaker tripped while this request waited for its turn
            return self._fail(row_id, FailureKind.SERVER_DOWN, self.down_message)
        return self._answered(row_id, key, r, raw, latency, size)

    async def _post(self, messages: list[dict], cost: int):
        """The response, its body and its latency; no response when the server went down
        meanwhile."""
        import httpx

        await self.limiter.acquire(cost)
        t0 = time.monotonic()
        try:
            if self.limiter.down:
                return None, b"", 0.0
            self.attempts += 1
            deadline = self.limiter.timeout()  # for the whole request: sending, waiting, reading
            async with asyncio.timeout(deadline):
                r = await self.client.post(
                    "/chat/completions",
                    cast_to=httpx.Response,
                    body={
                        "model": self.conn.serving_name(self.model),
                        "messages": messages,
                        **self.params,
                    },
                    options={"timeout": deadline},
                )
                return r, await r.aread(), time.monotonic() - t0
        finally:
            await self.limiter.release()

    def _connection_failed(self, row_id: str, exc) -> FailureKind:
        import openai

        if _refused(exc):
            self.limiter.on_connection_error()
            return self._fail(
                row_id, FailureKind.REFUSED, f"connection refused at {self.conn.base_url}"
            )
        if isinstance(exc, openai.APITimeoutError):
            self.limiter.on_timeout()
            message = f"APITimeoutError: {exc.message} after {self.limiter.timeout():.0f} s"
            return self._fail(row_id, FailureKind.TIMEOUT, message)
        self.limiter.on_overloaded()
        return self._fail(row_id, FailureKind.CONNECTION, f"APIConnectionError: {exc.message}")

    def _answered(self, row_id: str, key: str, r, raw: bytes, latency: float, size: int):
        self.limiter.observe_headers(r.headers)
        try:
            record = read_completion(raw, self.max_tokens)
        except MalformedAnswer as exc:
            self.limiter.on_success(latency)
            return self._fail(row_id, FailureKind.MALFORMED, f"malformed answer: {exc}")
        self.limiter.on_success(latency)
        self.token_ratio = 0.9 * self.token_ratio + 0.1 * record["usage"]["prompt_tokens"] / max(
            size, 1
        )
        self.cache.put(key, {"model": self.model, **record, "answered_at": round(time.time(), 3)})
        self.failures.pop(row_id, None)
        self.bar.update(1)
        self.bar.set_postfix(self.limiter.describe(), refresh=False)
        return None

    def _retry_next_round(self, row_id: str) -> bool:
        failure = self.failures.get(row_id)
        return failure is not None and failure.kind.next_round

    @property
    def down_message(self) -> str:
        if self.limiter.gave_up:
            return f"not asked: {self.limiter.gave_up} ({self.conn.base_url})"
        return f"server down: connection refused at {self.conn.base_url}"

    def _fail(self, row_id: str, kind: FailureKind, message: str) -> FailureKind:
        self.failures[row_id] = Failure(kind, message)
        return kind
