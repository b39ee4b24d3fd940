"""Per-minute request and token budgets, as OpenAI enforces them, so clients can be tested
against a limit.

Each budget is a bucket that refills continuously (capacity per minute, at capacity/60 per second).
A chat request is admitted when both buckets hold one request and what it can cost: prompt tokens
plus ``n`` times ``max_completion_tokens`` (the model's default when absent: what its answer is cut
at), counted at admission as OpenAI does; the charge is settled against the answer's usage after it
(streamed or not; an error answer uses nothing). Otherwise it is answered 429 in OpenAI's shape.
Every answer carries OpenAI's ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import math
import threading
import time

from .api_error import ApiError

# The most tokens a model here generates for a request that sets no limit: what such a request is
# charged at admission (the open-weights server generates up to this many; a stand-in's text answer
# is cut here, its structured answer at schemas.STRUCTURED_COMPLETION_TOKENS).
DEFAULT_COMPLETION_TOKENS = 64


def duration(seconds: float) -> str:
    """OpenAI's duration format: ``120ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


class Bucket:
    """A continuously refilling budget of ``per_minute`` units."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.capacity, self.rate, self.clock = float(per_minute), per_minute / 60.0, clock
        self.level, self.last = float(per_minute), clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
        self.last = now

    def can_take(self, n: float) -> bool:
        self._refill()
        return self.level >= n

    def take(self, n: float) -> None:
        self.level -= n

    def wait_for(self, n: float) -> float:
        return max(0.0, (n - self.level) / self.rate)

    def reset(self) -> float:
        return (self.capacity - self.level) / self.rate


class RateLimits:
    """The server's request and token budgets (either may be None: unlimited)."""

    def __init__(self, rpm: int | None, tpm: int | None, clock=time.monotonic):
        self.requests = Bucket(rpm, clock) if rpm else None
        self.tokens = Bucket(tpm, clock) if tpm else None
        self._lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        out = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                out |= {
                    f"x-ratelimit-limit-{name}": str(int(bucket.capacity)),
                    f"x-ratelimit-remaining-{name}": str(max(0, int(bucket.level))),
                    f"x-ratelimit-reset-{name}": duration(bucket.reset()),
                }
        return out

    def admit(self, tokens: int) -> dict[str, str]:
        """Take one request and ``tokens`` from the budgets and return the headers, or raise a
        429."""
        with self._lock:
            for kind, bucket, need in (
                ("requests", self.requests, 1),
                ("tokens", self.tokens, tokens),
            ):
                if bucket is not None and not bucket.can_take(need):
                    if need > bucket.capacity:
                        raise ApiError(
                            429,
                            f"Request too large: {need} {kind} over the limit of "
                            f"{int(bucket.capacity)} per minute.",
                            type_=kind,
                            code="rate_limit_exceeded",
                        )
                    wait = bucket.wait_for(need)
                    headers = self._headers() | {
                        "retry-after-ms": str(math.ceil(wait * 1000)),
                        "retry-after": str(max(1, math.ceil(wait))),
                    }
                    raise ApiError(
                        429,
                        f"Rate limit reached for {kind} per minute (emotune local backend): limit "
                        f"{int(bucket.capacity)}, requested {need}. Please try again in "
                        f"{duration(wait)}.",
                        type_=kind,
                        code="rate_limit_exceeded",
                        headers=headers,
                    )
            for bucket, need in ((self.requests, 1), (self.tokens, tokens)):
                if bucket is not None:
                    bucket.take(need)
            return self._headers()

    def settle(self, charged: int, used: int) -> None:
        """Reconcile a charge at admission with what the answer used (OpenAI reconciles too): the
        rest is given back, an overrun taken."""
        if self.tokens is not None and charged != used:
            with self._lock:
                self.tokens._refill()
                self.tokens.level = min(self.tokens.capacity, self.tokens.level + charged - used)
