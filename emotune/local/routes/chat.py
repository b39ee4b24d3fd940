"""Route of /v1/chat/completions: parsed into a typed request, answered off the event loop, streamed
or not."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...core.openai_spec import BATCH_HEADER
from ..ratelimit import DEFAULT_COMPLETION_TOKENS
from ..schemas import ChatRequest, parse
from ..streaming import chunks, events, live_chunks
from .common import engine, json_body, json_response

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat(request: Request):
    req = parse(ChatRequest, await json_body(request))
    limits = request.app.state.limits
    headers, charged = {}, 0
    if limits is not None:
        prompt = await run_in_threadpool(engine(request).chat.prompt_tokens, req)
        charged = prompt + req.choices * (req.limit or DEFAULT_COMPLETION_TOKENS)
        headers = limits.admit(charged)
    if (
        req.stream
    ):  # the model is found (or not) before the stream opens: an error is a plain OpenAI response
        chat_ = engine(request).chat
        live = await run_in_threadpool(chat_.live, req)
        source = (
            live_chunks(*live, req.include_usage)
            if live is not None
            else chunks(await run_in_threadpool(chat_.answer, req), req.include_usage)
        )
        # a sync iterator: Starlette pulls it in a worker thread, so generation never blocks the
        # event loop
        return StreamingResponse(
            events(source),
            media_type="text/event-stream",
            headers=headers | {"cache-control": "no-cache"},
        )
    answer = await run_in_threadpool(engine(request).chat.complete, req)
    if limits is not None:
        limits.refund(charged - int((answer.get("usage") or {}).get("total_tokens", charged)))
    together = engine(request).chat.batch_size(req.model)
    if (
        together > 1
    ):  # a client that keeps this many in flight gets whole batches (emotune's predictor reads it)
        headers = headers | {BATCH_HEADER: str(together)}
    return json_response(answer, headers=headers)
