"""The local backend's HTTP app: OpenAI's routes and wire format over :class:`Engine`.

The app is built apart from how it is served (:mod:`emotune.local.server`), so tests can drive it
in-process and over real HTTP alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
import time
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import BackendError
from .api_error import ApiError
from .azure_paths import AzurePaths
from .engine import Engine
from .ratelimit import RateLimits
from .routes import ROUTERS
from .routes.common import MAX_JSON_BODY, MULTIPART_SLACK, json_response
from .store import NotRegularFile, append_regular
from .trainers import precision

_ID = re.compile(r"/(file-|ftjob-|batch_|ft:|ftckpt_)[^/]+")
# every POST the backend received, across processes: what a re-run would have bought
REQUEST_LOG = "requests.log"
log = logging.getLogger("emotune.local")
access = logging.getLogger(
    "emotune.local.access"
)  # one line per /v1 request: request id, route, status, ms


def create_app(
    state_dir,
    *,
    max_upload_bytes: int = 512 * 1024 * 1024,
    max_body_bytes: int = MAX_JSON_BODY,
    latency_ms: float = 0.0,
    fail_429: float = 0.0,
    fail_500: float = 0.0,
    fault_seed: int = 0,
    retry_after_s: float = 0.05,
    fine_tuning_closed: bool = False,
    rpm: int | None = None,
    tpm: int | None = None,
    dtype: str = "auto",
) -> FastAPI:
    """The local OpenAI-compatible app over a state directory, with optional fault injection.

    ``fine_tuning_closed=True`` answers job creation with the 403 OpenAI gives an organisation that
    can no longer fine-tune, so the wind-down path can be exercised offline. ``rpm`` / ``tpm``
    enforce OpenAI-style per-minute budgets on chat completions (429s and ``x-ratelimit-*``
    headers). A request body over ``max_body_bytes`` (an upload's over ``max_upload_bytes``) is
    answered 413 as soon as its declared length or the bytes read so far pass the limit.
    """
    precision.configure(
        dtype
    )  # open-weights models train and answer in it (auto: bf16 where native)
    engine = Engine(state_dir, max_upload_bytes=max_upload_bytes)
    # before serving: a link or FIFO planted as the request log stops the start with one clear line
    try:
        append_regular(engine.store.root / REQUEST_LOG).close()
    except NotRegularFile:
        engine.close()
        raise BackendError(
            f"{REQUEST_LOG} in the state directory is not a regular file (a link or a FIFO was "
            "put there); "
            "remove it"
        ) from None

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        engine.close()

    app = FastAPI(title="emotune local backend", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.state.stats = Counter()
    app.state.faults = {"latency_ms": latency_ms, "fail_429": fail_429, "fail_500": fail_500}
    app.state.fine_tuning_closed = fine_tuning_closed
    app.state.limits = RateLimits(rpm, tpm) if (rpm or tpm) else None
    app.state.max_body_bytes = max_body_bytes

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return json_response(exc.body(), exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return json_response(
            ApiError(exc.status_code, f"Invalid URL ({request.method} {request.url.path})").body(),
            exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        return json_response(
            ApiError(400, f"Invalid value for '{param}': {first['msg']}.", param=param).body(), 400
        )

    @app.exception_handler(Exception)
    async def unexpected(
        request: Request, exc: Exception
    ):  # outside /v1 (the middleware answers those)
        return _server_error(
            request.method,
            request.url.path,
            getattr(request.state, "request_id", new_request_id()),
            exc,
        )

    @app.get("/health")
    async def health():
        return {"status": "ok", "backend": "emotune-local"}

    @app.get("/emotune/stats")
    async def stats():
        return dict(app.state.stats)

    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(
        _CountAndInject,
        stats=app.state.stats,
        faults=app.state.faults,
        rng=random.Random(fault_seed),
        retry_after_s=retry_after_s,
        log_path=engine.store.root / REQUEST_LOG,
        body_limits=(max_body_bytes, max_upload_bytes + MULTIPART_SLACK),
    )
    app.add_middleware(AzurePaths)  # outermost: Azure's URLs become /v1 ones first
    return app


def new_request_id() -> str:
    return f"req_{secrets.token_hex(16)}"


def _server_error(method: str, path: str, request_id: str, exc: Exception):
    """An unexpected exception: logged once with the request id, answered as OpenAI's 500."""
    log.error(
        "%s %s failed (%s): %s: %s", method, path, request_id, type(exc).__name__, exc, exc_info=exc
    )
    body = ApiError(
        500,
        f"The server had an error while processing your request. You can retry your request, or "
        f"contact us through the emotune issue tracker if the error persists. (Please include the "
        f"request ID {request_id} in your message.)",
        type_="server_error",
    ).body()
    return json_response(body, 500, {"x-request-id": request_id})


def _too_large(size: int, limit: int, upload: bool, declared: bool = False) -> ApiError:
    return ApiError(
        413,
        f"Request body is too large: {'declared ' if declared else 'over '}{size:,} bytes; "
        f"the limit is {limit:,} bytes.",
        param="file" if upload else None,
        code="file_too_large" if upload else "request_too_large",
        headers={"connection": "close"},  # the rest of the body is never read
    )


def _capped(scope, receive, limit: int):
    """``receive`` that refuses (a 413, raised where the body is read) a body whose declared length
    is over ``limit`` before reading any of it, else as soon as the bytes read pass it (a chunked
    body has no declared length)."""
    upload = scope["path"].rstrip("/") == "/v1/files"
    declared = dict(scope.get("headers") or []).get(b"content-length", b"")
    read = 0

    async def capped():
        nonlocal read
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit, upload, declared=True)
        message = await receive()
        if message["type"] == "http.request":
            read += len(message.get("body", b""))
            if read > limit:
                raise _too_large(read, limit, upload)
        return message

    return capped


class _CountAndInject:
    """Plain ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware): counts every /v1
    request by
    route, logs each POST to the state directory's request log, and injects the configured latency,
    429s (with Retry-After) and 500s."""

    def __init__(
        self,
        app,
        *,
        stats: Counter,
        faults: dict,
        rng: random.Random,
        retry_after_s: float,
        log_path,
        body_limits: tuple[int, int],
    ):
        self.app, self.stats, self.faults, self.rng, self.retry_after_s = (
            app,
            stats,
            faults,
            rng,
            retry_after_s,
        )
        self.log = append_regular(
            log_path
        )  # one append handle for the app's life; never through a link
        self.body_limits = body_limits  # (any JSON body, a multipart upload)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        request_id, started, sent = new_request_id(), time.perf_counter(), {}
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_ids(message):
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                headers["openai-processing-ms"] = str(round((time.perf_counter() - started) * 1000))
            await send(message)

        route = f"{scope['method']} {_ID.sub('/{id}', scope['path'])}"
        self.stats[route] += 1
        if scope["method"] == "POST":
            self.log.write(route + "\n")
            self.log.flush()
        try:
            limit = self.body_limits[scope["path"].rstrip("/") == "/v1/files"]
            await self._answer(scope, _capped(scope, receive, limit), send_with_ids)
        except ApiError as exc:  # a body over the limit, found while reading it
            if "status" in sent:
                raise
            await json_response(exc.body(), exc.status, exc.headers)(scope, receive, send_with_ids)
        except Exception as exc:  # never a plain-text 500 or a dropped connection
            if "status" in sent:
                raise
            await _server_error(scope["method"], scope["path"], request_id, exc)(
                scope, receive, send_with_ids
            )
        access.info(
            "%s %s %s %s",
            request_id,
            route,
            sent.get("status"),
            round((time.perf_counter() - started) * 1000),
        )

    async def _answer(self, scope, receive, send):
        if self.faults["latency_ms"]:
            await asyncio.sleep(self.faults["latency_ms"] / 1000)
        roll = self.rng.random()
        if roll < self.faults["fail_429"]:
            self.stats["injected 429"] += 1
            error = ApiError(
                429,
                "Rate limit reached (injected by the emotune local backend).",
                type_="requests",
                code="rate_limit_exceeded",
            )
            headers = {
                "retry-after-ms": str(int(self.retry_after_s * 1000)),
                "retry-after": str(max(1, round(self.retry_after_s))),
            }
            return await json_response(error.body(), 429, headers)(scope, receive, send)
        if roll < self.faults["fail_429"] + self.faults["fail_500"]:
            self.stats["injected 500"] += 1
            error = ApiError(
                500,
                "The server had an error (injected by the emotune local backend).",
                type_="server_error",
            )
            return await json_response(error.body(), 500)(scope, receive, send)
        return await self.app(scope, receive, send)
