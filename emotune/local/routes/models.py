"""Routes of /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request

from .common import engine, json_response

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request):
    return json_response({"object": "list", "data": engine(request).models.list()})


@router.get("/v1/models/{model_id:path}")
async def get_model(request: Request, model_id: str):
    return json_response(engine(request).models.record(model_id))
