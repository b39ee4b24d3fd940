"""Route of /v1/chat/completions: parsed into a typed request, bounded and charged before any work,
answered off the event loop, streamed or not."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...core.openai_spec import BATCH_HEADER
from ..schemas import ChatRequest, parse
from ..streaming import chunks, events, live_chunks
from .common import engine, json_body, json_response

router = APIRouter()


def _settled(stream: Iterator[bytes], settle: Callable[[], None]) -> Iterator[bytes]:
    """The stream's events; the charge is settled when it ends, however it ends."""
    try:
        yield from stream
    finally:
        settle()


@router.post("/v1/chat/completions")
async def chat(request: Request):
    req = parse(ChatRequest, await json_body(request))
    chat_ = engine(request).chat
    # the prompt's length, every schema and n x the completion limit: refused here, before any work
    bound = await run_in_threadpool(chat_.check, req)
    limits = request.app.state.limits
    headers, charged = {}, bound.prompt_tokens + req.choices * bound.limit
    if limits is not None:
        headers = limits.admit(charged)
    used = [0]  # what the answer used (nothing, when it fails): the charge is settled against it

    def settle() -> None:
        if limits is not None:
            limits.settle(charged, used[0])

    try:
        if req.stream:  # the model is found (or not) before the stream opens: an error is a plain
            live = await run_in_threadpool(chat_.live, req)  # OpenAI response
            answer = live[0] if live is not None else await run_in_threadpool(chat_.answer, req)
            source = (
                live_chunks(*live, req.include_usage)
                if live is not None
                else chunks(answer, req.include_usage)
            )

            def settle_stream() -> None:  # a live answer's usage is known when its pieces end
                used[0] = answer.usage()["total_tokens"]
                settle()

            # a sync iterator: Starlette pulls it in a worker thread, so generation never blocks
            # the event loop
            return StreamingResponse(
                _settled(events(source), settle_stream),
                media_type="text/event-stream",
                headers=headers | {"cache-control": "no-cache"},
            )
        completion = await run_in_threadpool(chat_.complete, req)
    except BaseException:
        settle()  # an error answer used nothing
        raise
    used[0] = int((completion.get("usage") or {}).get("total_tokens", charged))
    settle()
    together = chat_.batch_size(req.model)
    if together > 1:  # a client that keeps this many in flight gets whole batches (emotune's
        headers = headers | {BATCH_HEADER: str(together)}  # predictor reads it)
    return json_response(completion, headers=headers)
