"""Routes of /v1/fine_tuning/jobs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from starlette.concurrency import run_in_threadpool

from ..api_error import ApiError
from ..schemas import JobRequest, parse
from .common import engine, json_body, json_response, page, typed, typed_list

router = APIRouter()


@router.post("/v1/fine_tuning/jobs")
async def create_job(request: Request):
    if request.app.state.fine_tuning_closed:
        raise ApiError(
            403,
            "Fine-tuning is not available for your organization (simulated by the emotune local "
            "backend: fine_tuning_closed).",
            code="fine_tuning_unavailable",
        )
    req = parse(JobRequest, await json_body(request))
    return json_response(
        typed(FineTuningJob, await run_in_threadpool(engine(request).jobs.create, req))
    )


@router.get("/v1/fine_tuning/jobs")
async def list_jobs(request: Request, after: str | None = None, limit: str | None = None):
    meta = {
        k[len("metadata[") : -1]: v
        for k, v in request.query_params.items()
        if k.startswith("metadata[")
    }
    return json_response(
        page(typed_list(FineTuningJob, engine(request).jobs.list(meta or None)), after, limit)
    )


@router.get("/v1/fine_tuning/jobs/{job_id}")
async def get_job(request: Request, job_id: str):
    return json_response(typed(FineTuningJob, engine(request).jobs.get(job_id)))


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str):
    return json_response(typed(FineTuningJob, engine(request).jobs.cancel(job_id)))


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
async def job_events(
    request: Request, job_id: str, after: str | None = None, limit: str | None = None
):
    return json_response(
        page(
            typed_list(FineTuningJobEvent, engine(request).jobs.events(job_id, after, limit)),
            after,
            limit,
        )
    )


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
async def job_checkpoints(
    request: Request, job_id: str, after: str | None = None, limit: str | None = None
):
    return json_response(
        page(
            typed_list(FineTuningJobCheckpoint, engine(request).jobs.checkpoints(job_id)),
            after,
            limit,
            10,
        )
    )
