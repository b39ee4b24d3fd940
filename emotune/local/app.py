"""The local backend's HTTP app: OpenAI's routes and wire format over :class:`Engine`.

The app is built apart from how it is served (:mod:`emotune.local.server`), so tests can drive it
in-process and over real HTTP alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine import ApiError, Engine

_ID = re.compile(r"/(file-|ftjob-|batch_|ft:|ftckpt_)[^/]+")
REQUEST_LOG = "requests.log"  # every POST the backend received, across processes: what a re-run would have bought


def _json(obj, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(obj), status_code=status, media_type="application/json", headers=headers)


def _page(items: list[dict], after: str | None, limit: int | None, default_limit: int = 20) -> dict:
    """OpenAI's cursor page: items after the one with id ``after``, at most ``limit``."""
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    limit = max(1, min(int(limit or default_limit), 10_000))
    page = items[:limit]
    return {"object": "list", "data": page, "has_more": len(items) > limit,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}


def create_app(state_dir, *, max_upload_bytes: int = 512 * 1024 * 1024, latency_ms: float = 0.0,
               fail_429: float = 0.0, fail_500: float = 0.0, fault_seed: int = 0, retry_after_s: float = 0.05,
               fine_tuning_closed: bool = False) -> FastAPI:
    """The local OpenAI-compatible app over a state directory, with optional fault injection.

    ``fine_tuning_closed=True`` answers job creation with the 403 OpenAI gives an organisation that can
    no longer fine-tune, so the wind-down path can be exercised offline.
    """
    engine = Engine(state_dir, max_upload_bytes=max_upload_bytes)
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        engine.close()

    app = FastAPI(title="emotune local backend", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.state.stats = Counter()
    app.state.faults = {"latency_ms": latency_ms, "fail_429": fail_429, "fail_500": fail_500}
    rng = random.Random(fault_seed)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _json(exc.body(), exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _json(ApiError(exc.status_code, f"Invalid URL ({request.method} {request.url.path})").body(), exc.status_code)

    async def body_of(request: Request) -> dict:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"We could not parse the JSON body of your request ({exc.msg}).") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return body

    @app.get("/health")
    async def health():
        return {"status": "ok", "backend": "emotune-local"}

    @app.get("/emotune/stats")
    async def stats():
        return dict(app.state.stats)

    # files
    @app.post("/v1/files")
    async def create_file(request: Request):
        declared = int(request.headers.get("content-length") or 0)
        if declared > engine.max_upload_bytes + 1024 * 1024:
            raise ApiError(413, f"Request is too large: {declared} bytes; the upload limit is {engine.max_upload_bytes} bytes.",
                           param="file", code="file_too_large")
        form = await request.form()
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or not hasattr(upload, "read"):
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        if not purpose:
            raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
        data = await upload.read()
        return _json(await run_in_threadpool(engine.create_file, upload.filename or "upload", str(purpose), data))

    @app.get("/v1/files")
    async def list_files(purpose: str | None = None, after: str | None = None, limit: int | None = None, order: str = "desc"):
        items = engine.list_files(purpose)
        return _json(_page(items if order == "desc" else items[::-1], after, limit, 10_000))

    @app.get("/v1/files/{file_id}")
    async def get_file(file_id: str):
        return _json(engine.file(file_id))

    @app.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str):
        return _json(engine.delete_file(file_id))

    @app.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str):
        return Response(engine.file_content(file_id), media_type="application/octet-stream")

    # models
    @app.get("/v1/models")
    async def list_models():
        return _json({"object": "list", "data": engine.list_models()})

    @app.get("/v1/models/{model_id}")
    async def get_model(model_id: str):
        return _json(engine.model_record(model_id))

    # chat
    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await body_of(request)
        if body.get("stream"):
            raise ApiError(400, "the local backend does not stream", param="stream")
        return _json(engine.chat(body))

    # fine-tuning
    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request):
        if fine_tuning_closed:
            raise ApiError(403, "Fine-tuning is not available for your organization (simulated by the emotune local "
                                "backend: fine_tuning_closed).", code="fine_tuning_unavailable")
        return _json(engine.create_job(await body_of(request)))

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(request: Request, after: str | None = None, limit: int | None = None):
        meta = {k[len("metadata["):-1]: v for k, v in request.query_params.items() if k.startswith("metadata[")}
        return _json(_page(engine.list_jobs(meta or None), after, limit))

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def get_job(job_id: str):
        return _json(engine.job(job_id))

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str):
        return _json(engine.cancel_job(job_id))

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def job_events(job_id: str, after: str | None = None, limit: int | None = None):
        return _json(_page(engine.events(job_id), after, limit))

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def job_checkpoints(job_id: str, after: str | None = None, limit: int | None = None):
        return _json(_page(engine.checkpoints(job_id), after, limit, 10))

    # batches
    @app.post("/v1/batches")
    async def create_batch(request: Request):
        return _json(engine.create_batch(await body_of(request)))

    @app.get("/v1/batches")
    async def list_batches(after: str | None = None, limit: int | None = None):
        return _json(_page(engine.list_batches(), after, limit))

    @app.get("/v1/batches/{batch_id}")
    async def get_batch(batch_id: str):
        return _json(engine.batch(batch_id))

    @app.post("/v1/batches/{batch_id}/cancel")
    async def cancel_batch(batch_id: str):
        return _json(engine.cancel_batch(batch_id))

    app.add_middleware(_CountAndInject, stats=app.state.stats, faults=app.state.faults, rng=rng, retry_after_s=retry_after_s,
                       log_path=engine.store.root / REQUEST_LOG)
    return app


class _CountAndInject:
    """Plain ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware): counts every /v1 request by
    route, logs each POST to the state directory's request log, and injects the configured latency,
    429s (with Retry-After) and 500s."""

    def __init__(self, app, *, stats: Counter, faults: dict, rng: random.Random, retry_after_s: float, log_path):
        self.app, self.stats, self.faults, self.rng, self.retry_after_s = app, stats, faults, rng, retry_after_s
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (one append handle for the app's life)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        route = f"{scope['method']} {_ID.sub('/{id}', scope['path'])}"
        self.stats[route] += 1
        if scope["method"] == "POST":
            self.log.write(route + "\n")
            self.log.flush()
        if self.faults["latency_ms"]:
            await asyncio.sleep(self.faults["latency_ms"] / 1000)
        roll = self.rng.random()
        if roll < self.faults["fail_429"]:
            self.stats["injected 429"] += 1
            error = ApiError(429, "Rate limit reached (injected by the emotune local backend).", type_="requests",
                             code="rate_limit_exceeded")
            headers = {"retry-after-ms": str(int(self.retry_after_s * 1000)), "retry-after": str(max(1, round(self.retry_after_s)))}
            return await _json(error.body(), 429, headers)(scope, receive, send)
        if roll < self.faults["fail_429"] + self.faults["fail_500"]:
            self.stats["injected 500"] += 1
            error = ApiError(500, "The server had an error (injected by the emotune local backend).", type_="server_error")
            return await _json(error.body(), 500)(scope, receive, send)
        return await self.app(scope, receive, send)
