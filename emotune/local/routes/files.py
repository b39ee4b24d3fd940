"""Routes of /v1/files."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from openai.types import FileObject
from starlette.concurrency import run_in_threadpool

from ..api_error import ApiError
from .common import engine, json_response, page, typed, typed_list

router = APIRouter()


@router.post("/v1/files")
async def create_file(request: Request):
    files = engine(request).files
    # a body over the upload limit is refused as it is read (the app's middleware), never whole
    async with request.form() as form:  # closes the upload's spooled temporary file when read
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or not hasattr(upload, "read"):
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        if not purpose or not isinstance(purpose, str):
            raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
        data = await upload.read()
    return json_response(
        typed(
            FileObject,
            await run_in_threadpool(files.create, upload.filename or "upload", purpose, data),
        )
    )


@router.get("/v1/files")
async def list_files(
    request: Request,
    purpose: str | None = None,
    after: str | None = None,
    limit: str | None = None,
    order: str = "desc",
):
    items = typed_list(FileObject, engine(request).files.list(purpose))
    return json_response(page(items if order != "asc" else items[::-1], after, limit, 10_000))


@router.get("/v1/files/{file_id}")
async def get_file(request: Request, file_id: str):
    return json_response(typed(FileObject, engine(request).files.get(file_id)))


@router.delete("/v1/files/{file_id}")
async def delete_file(request: Request, file_id: str):
    return json_response(engine(request).files.delete(file_id))


@router.get("/v1/files/{file_id}/content")
async def file_content(request: Request, file_id: str):
    return Response(
        await run_in_threadpool(engine(request).files.content, file_id),
        media_type="application/octet-stream",
    )
