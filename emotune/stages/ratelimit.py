"""Pace requests to a server's rate limits and its speed: adaptive concurrency, budgets, a
circuit breaker.

The limiter starts at a safe concurrency and learns from every answer:

- ``x-ratelimit-limit-requests|tokens`` (OpenAI's headers) set per-minute budgets; requests are then
  spaced to ``SAFETY`` of the binding budget, and ``x-ratelimit-remaining-*`` near zero waits for
  the
  matching ``x-ratelimit-reset-*`` ("1s", "6m0s", "120ms").
- A 429 halves the concurrency and pauses every request for ``retry-after-ms`` / ``retry-after``.
- Latency steers the concurrency (additive increase, multiplicative decrease): while answers come
  back within ``LATENCY_SLACK`` x the fastest seen, one more request may fly; a slower backend (an
  LLM taking
  seconds per answer) gets fewer in flight and longer timeouts instead of a flood of timeouts and
  retries.
- A batching backend that says how many requests it answers at once (``x-emotune-batch-size``,
  emotune's open-weights models) keeps at least that many in flight: its latency grows with the
  batch, its throughput
  more.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field

from ..core.openai_spec import BATCH_HEADER

START_CONCURRENCY = 8
MAX_CONCURRENCY = 128
SAFETY = 0.97  # fraction of an advertised budget the predictor aims for
LATENCY_SLACK = 2.0  # answers slower than this x the fastest seen mean the backend is saturated...
# ...once they are also this many seconds slower (a fast local server jitters)
LATENCY_MARGIN = 0.25
TIMEOUT_FACTOR = 10.0  # a request's timeout: at least this x the typical latency
BREAKER_AFTER = 5  # consecutive connection failures that mean the server is down
# The longest a server's headers may hold requests back (a retry-after, a budget's reset, the pace
# of a tiny budget): a longer wait gives the server up, every unanswered item reported as a failure.
MAX_WAIT_S = 300.0
# How long (in request deadlines) timeouts may go on, none answered between them, before the server
# is taken to never finish an answer (a slowloris) and the rest are given up; one wave of requests
# timing out together (a stall) is not enough.
TIMEOUT_SPAN = 2.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """Seconds in OpenAI's reset durations ("1s", "6m0s", "120ms", "1h2m3.5s"); a bare number is
    seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        seconds = float(text)
        return max(0.0, seconds) if seconds == seconds else None  # NaN says nothing
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def retry_after(headers) -> float | None:
    """Seconds a 429 or 503 asks the client to wait (``retry-after-ms``, then ``retry-after``)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name) if headers is not None else None
        try:
            seconds = float(raw) * scale if raw is not None else None
        except ValueError:
            continue
        if seconds is not None and seconds == seconds:  # NaN says nothing
            return max(0.0, seconds)
    return None


def _int(headers, name: str) -> int | None:
    try:
        return int(float(headers.get(name)))
    except (TypeError, ValueError, OverflowError):  # absent, not a number, NaN or infinite
        return None


@dataclass
class Budget:
    """One per-minute budget (requests or tokens) as the server last advertised it."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float = 0.0  # monotonic time the remaining budget refills


@dataclass
class Limiter:
    """Decides when the next request may go; fed with every answer's headers, latency and
    outcome."""

    concurrency: float = START_CONCURRENCY
    max_concurrency: int = MAX_CONCURRENCY
    base_timeout: float = 60.0
    breaker_after: int = BREAKER_AFTER
    requests: Budget = field(default_factory=Budget)
    tokens: Budget = field(default_factory=Budget)
    in_flight: int = 0
    throttled: int = 0  # 429s seen
    consecutive_connection_errors: int = 0
    consecutive_timeouts: int = 0
    _timeouts_since: float = 0.0  # when the current run of timeouts began
    slow_start: bool = True  # until the first sign of a limit, concurrency grows fast
    fastest: float | None = None
    typical: float | None = None  # moving average of latency
    # a batching backend's batch size (BATCH_HEADER): the concurrency never falls below it
    batch_floor: int = 1
    gave_up: str | None = None  # why the server's pacing was given up (a wait over MAX_WAIT_S)
    _paused_until: float = 0.0
    _next_request_at: float = 0.0
    _next_token_at: float = 0.0
    _done: deque = field(default_factory=lambda: deque(maxlen=4096))
    _cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    @property
    def down(self) -> bool:
        """Whether nothing more is sent: the server refuses connections, or asked for a wait over
        ``MAX_WAIT_S``."""
        return self.consecutive_connection_errors >= self.breaker_after or self.gave_up is not None

    def _too_long(self, seconds: float, why: str) -> bool:
        """Give the server up when ``why`` asks for a wait over ``MAX_WAIT_S``; report it once."""
        if seconds <= MAX_WAIT_S:
            return False
        if self.gave_up is None:
            shown = f"{seconds:,.0f} s" if math.isfinite(seconds) else "forever"
            self.gave_up = (
                f"the server asked to wait {shown} ({why}), "
                f"over the {MAX_WAIT_S:.0f} s emotune waits"
            )
        return True

    def timeout(self) -> float:
        """A request's timeout: the connection's, or longer when the backend is slow."""
        return max(self.base_timeout, TIMEOUT_FACTOR * (self.typical or 0.0))

    def _blocked_for(self, now: float) -> float:
        """Seconds until a 429's pause ends and no advertised budget is used up."""
        wait = max(0.0, self._paused_until - now)
        for budget in (self.requests, self.tokens):
            if budget.remaining is not None and budget.remaining <= 0 and budget.reset_at > now:
                wait = max(wait, budget.reset_at - now)
        return wait

    def _pace(self, cost: int, now: float) -> float:
        """When this request could go at the earliest, and the next one after it, with the budgets
        known: the later of the two (a budget of 1 token a minute puts it days away)."""
        at = max(now, self._next_request_at if self.requests.limit else now)
        at = max(at, self._next_token_at if self.tokens.limit else now)
        if self.tokens.limit:
            at = max(at, now + 60.0 * cost / (self.tokens.limit * SAFETY))
        if self.requests.limit:
            at = max(at, now + 60.0 / (self.requests.limit * SAFETY))
        return at

    def _reserve(self, cost: int, now: float) -> float:
        """Book the next send time that keeps both budgets at ``SAFETY``; returns it (no
        thundering herd)."""
        at = now
        if self.requests.limit:
            at = max(at, self._next_request_at)
        if self.tokens.limit:
            at = max(at, self._next_token_at)
        if self.requests.limit:
            self._next_request_at = at + 60.0 / (self.requests.limit * SAFETY)
        if self.tokens.limit:
            self._next_token_at = at + 60.0 * cost / (self.tokens.limit * SAFETY)
        return at

    async def acquire(self, cost: int) -> None:
        """Wait for a free slot, the end of any pause and a booked send time; the request is then in
        flight."""
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.in_flight < max(1, int(self.concurrency)))
            self.in_flight += 1
        while (blocked := self._blocked_for(time.monotonic())) > 0:
            if self._too_long(blocked, "a rate limit's reset"):
                return  # the caller finds the limiter down and sends nothing
            await asyncio.sleep(blocked)
        now = time.monotonic()
        if self._too_long(self._pace(cost, now) - now, "the pace of its per-minute budget"):
            return
        at = self._reserve(cost, now)
        if at > now:
            await asyncio.sleep(at - now)
        for budget, used in ((self.requests, 1), (self.tokens, cost)):
            if budget.remaining is not None:
                budget.remaining -= used

    async def release(self) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            # wake only as many waiters as there are free slots: with thousands of requests queued,
            # waking all of them on every answer made each answer cost O(queue) (5,427 comments: 45
            # req/s, not 190)
            cond.notify(max(1, int(self.concurrency) - self.in_flight))

    def observe_headers(self, headers) -> None:
        """Learn the budgets from ``x-ratelimit-*`` headers, and the backend's batch size from
        ``x-emotune-batch-size`` (absent headers change nothing)."""
        if headers is None:
            return
        together = _int(headers, BATCH_HEADER)
        if together and together > 1:
            self.batch_floor = min(together, self.max_concurrency)
            self.concurrency = max(self.concurrency, self.batch_floor)
        now = time.monotonic()
        for kind, budget in (("requests", self.requests), ("tokens", self.tokens)):
            limit = _int(headers, f"x-ratelimit-limit-{kind}")
            remaining = _int(headers, f"x-ratelimit-remaining-{kind}")
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
            if limit and limit > 0:
                budget.limit = limit
            if remaining is not None:
                budget.remaining = remaining
                budget.reset_at = now + (reset if reset is not None else 60.0)
        self._fit_concurrency()

    def _fit_concurrency(self) -> None:
        """With a request budget known, keep just enough in flight to meet it at the typical
        latency."""
        if self.requests.limit and self.typical:
            needed = self.requests.limit / 60.0 * self.typical * 4 + 16
            self.concurrency = min(self.concurrency, needed)

    def on_success(self, latency: float) -> None:
        self.consecutive_connection_errors = self.consecutive_timeouts = 0
        self._done.append(time.monotonic())
        self.fastest = latency if self.fastest is None else min(self.fastest, latency)
        self.typical = latency if self.typical is None else 0.9 * self.typical + 0.1 * latency
        if (
            self.typical > LATENCY_SLACK * self.fastest
            and self.typical - self.fastest > LATENCY_MARGIN
        ):
            # saturated backend: fewer in flight, but never fewer than a batching backend answers at
            # once
            self.concurrency = max(1.0, self.batch_floor, self.concurrency * 0.98)
            self.slow_start = False
        elif (
            self.slow_start
        ):  # no sign of a limit yet: one more in flight per answer (doubling per round trip)
            self.concurrency = min(self.max_concurrency, self.concurrency + 1.0)
        else:
            self.concurrency = min(
                self.max_concurrency, self.concurrency + 1.0 / max(1.0, self.concurrency)
            )
        self._fit_concurrency()

    def on_throttled(self, wait: float | None, headers=None) -> None:
        """A 429: fewer in flight, and everyone pauses for the time the server asked."""
        self.throttled += 1
        self.slow_start = False
        self.observe_headers(headers)
        self.concurrency = max(1.0, self.concurrency / 2)
        wait = 1.0 if wait is None else wait
        if self._too_long(wait, "retry-after of a 429"):
            wait = 0.0  # given up: nothing waits
        self._paused_until = max(self._paused_until, time.monotonic() + wait)

    def on_overloaded(self) -> None:
        """A timeout or a 5xx: the backend struggles, so send less at once."""
        self.consecutive_connection_errors = 0
        self.slow_start = False
        self.concurrency = max(1.0, self.concurrency / 2)

    def on_timeout(self) -> None:
        """A request got no whole answer within its deadline; at least ``breaker_after`` in a row
        over ``TIMEOUT_SPAN`` deadlines give the server up."""
        self.on_overloaded()
        now = time.monotonic()
        if not self.consecutive_timeouts:
            self._timeouts_since = now
        self.consecutive_timeouts += 1
        span = now - self._timeouts_since
        if (
            self.gave_up is None
            and self.consecutive_timeouts >= self.breaker_after
            and span >= TIMEOUT_SPAN * self.timeout()
        ):
            self.gave_up = (
                f"{self.consecutive_timeouts} requests in a row over {span:.0f} s got no whole "
                f"answer within their {self.timeout():.0f} s deadline"
            )

    def on_connection_error(self) -> None:
        self.consecutive_connection_errors += 1

    def rate(self, window: float = 5.0) -> float:
        """Answers per second over the last ``window`` seconds."""
        now = time.monotonic()
        recent = [t for t in self._done if t >= now - window]
        if len(recent) < 2:
            return 0.0
        return len(recent) / max(window if len(self._done) > len(recent) else now - recent[0], 1e-3)

    def describe(self) -> dict:
        """What a progress bar shows: the current rate, concurrency and known budgets."""
        out = {"req/s": f"{self.rate():.1f}", "in flight": f"{math.floor(self.concurrency)}"}
        if self.requests.limit:
            out["rpm limit"] = self.requests.limit
        if self.tokens.limit:
            out["tpm limit"] = self.tokens.limit
        if self.throttled:
            out["429s"] = self.throttled
        return out
