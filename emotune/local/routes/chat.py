"""Route of /v1/chat/completions: parsed into a typed request, answered off the event loop, streamed or not."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..ratelimit import DEFAULT_COMPLETION_TOKENS
from ..schemas import ChatRequest, parse
from ..streaming import events
from .common import engine, json_body, json_response

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat(request: Request):
    req = parse(ChatRequest, await json_body(request))
    limits = request.app.state.limits
    headers = {}
    if limits is not None:
        prompt = await run_in_threadpool(engine(request).chat.prompt_tokens, req)
        headers = limits.admit(prompt + (req.limit or DEFAULT_COMPLETION_TOKENS))
    if req.stream:  # answered before the stream opens, so an error is still a plain OpenAI-shaped response
        answer = await run_in_threadpool(engine(request).chat.answer, req)
        return StreamingResponse(events(answer, req.include_usage), media_type="text/event-stream",
                                 headers=headers | {"cache-control": "no-cache"})
    return json_response(await run_in_threadpool(engine(request).chat.complete, req), headers=headers)
