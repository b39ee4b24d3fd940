"""Routes of /v1/batches."""

from __future__ import annotations

from fastapi import APIRouter, Request
from openai.types import Batch
from starlette.concurrency import run_in_threadpool

from ..schemas import BatchRequest, parse
from .common import engine, json_body, json_response, page, typed, typed_list

router = APIRouter()


@router.post("/v1/batches")
async def create_batch(request: Request):
    req = parse(BatchRequest, await json_body(request))
    return json_response(typed(Batch, await run_in_threadpool(engine(request).batches.create, req)))


@router.get("/v1/batches")
async def list_batches(request: Request, after: str | None = None, limit: str | None = None):
    return json_response(page(typed_list(Batch, engine(request).batches.list()), after, limit))


@router.get("/v1/batches/{batch_id}")
async def get_batch(request: Request, batch_id: str):
    return json_response(typed(Batch, engine(request).batches.get(batch_id)))


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(request: Request, batch_id: str):
    return json_response(typed(Batch, engine(request).batches.cancel(batch_id)))
