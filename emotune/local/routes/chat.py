"""Route of /v1/chat/completions: parsed into a typed request, answered off the event loop."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ..api_error import ApiError
from ..ratelimit import DEFAULT_COMPLETION_TOKENS
from ..schemas import ChatRequest, parse
from .common import engine, json_body, json_response

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat(request: Request):
    req = parse(ChatRequest, await json_body(request))
    if req.stream:
        raise ApiError(400, "the local backend does not stream; send stream=false", param="stream")
    limits = request.app.state.limits
    headers = {}
    if limits is not None:
        prompt = await run_in_threadpool(engine(request).chat.prompt_tokens, req)
        headers = limits.admit(prompt + (req.limit or DEFAULT_COMPLETION_TOKENS))
    return json_response(await run_in_threadpool(engine(request).chat.complete, req), headers=headers)
