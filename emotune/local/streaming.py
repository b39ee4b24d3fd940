"""Streamed chat completions as OpenAI sends them: server-sent events of
``chat.completion.chunk`` objects.

Per choice: a first chunk with the role (and, for a tool call, the call's id and name), one chunk
per token-sized piece of the content (or of the call's arguments, with its log-probabilities when
asked), a chunk with the ``finish_reason``; with ``stream_options.include_usage`` every chunk
carries ``usage: null`` and a last chunk with no choices carries the usage. Then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from openai.types.chat import ChatCompletionChunk

from .api_error import ApiError
from .chat import Answer, Choice

log = logging.getLogger("emotune.local")
DONE = b"data: [DONE]\n\n"


def _choice_chunks(i: int, c: Choice) -> Iterator[dict]:
    if c.tool is None:
        yield {
            "index": i,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
        for k, piece in enumerate(c.pieces):
            logprobs = {"content": [c.logprobs[k]], "refusal": None} if c.logprobs else None
            yield {
                "index": i,
                "delta": {"content": piece},
                "logprobs": logprobs,
                "finish_reason": None,
            }
    else:
        call = {
            "index": 0,
            "id": c.tool_call_id,
            "type": "function",
            "function": {"name": c.tool, "arguments": ""},
        }
        yield {
            "index": i,
            "delta": {"role": "assistant", "content": None, "tool_calls": [call]},
            "logprobs": None,
            "finish_reason": None,
        }
        for piece in c.pieces:
            yield {
                "index": i,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
                "logprobs": None,
                "finish_reason": None,
            }
    yield {"index": i, "delta": {}, "logprobs": None, "finish_reason": c.finish}


def chunks(answer: Answer, include_usage: bool) -> Iterator[dict]:
    """The answer's chunks, each built through ``openai``'s ChatCompletionChunk type."""
    head = {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": answer.fingerprint,
        "service_tier": "default",
    }
    usage = {"usage": None} if include_usage else {}
    for i, c in enumerate(answer.choices):
        for choice in _choice_chunks(i, c):
            yield head | {"choices": [choice]} | usage
    if include_usage:
        yield head | {"choices": [], "usage": answer.usage()}


def live_chunks(head: Answer, pieces: Iterator[str], include_usage: bool) -> Iterator[dict]:
    """Chunks sent as the model generates: the role first, each piece as it comes, then finish
    and usage."""
    first = head.choices[0]
    start = {
        "id": head.id,
        "object": "chat.completion.chunk",
        "created": head.created,
        "model": head.model,
        "system_fingerprint": head.fingerprint,
        "service_tier": "default",
    }
    usage = {"usage": None} if include_usage else {}
    yield (
        start
        | {
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        }
        | usage
    )
    for piece in pieces:
        yield (
            start
            | {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": piece},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]
            }
            | usage
        )
    yield (
        start
        | {"choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": first.finish}]}
        | usage
    )
    if include_usage:
        yield start | {"choices": [], "usage": head.usage()}


def events(chunk_source: Iterator[dict]) -> Iterator[bytes]:
    """``text/event-stream`` lines, each chunk built through ``openai``'s ChatCompletionChunk
    type, then
    ``[DONE]``."""
    try:
        for chunk in chunk_source:
            typed = ChatCompletionChunk.model_validate(chunk).model_dump(
                mode="json", exclude_unset=True
            )
            yield b"data: " + json.dumps(typed).encode() + b"\n\n"
    except (
        Exception
    ) as exc:  # the status line is sent: say so in the stream, as OpenAI does, and end it
        log.error("a chat stream failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        error = ApiError(
            500, "The server had an error while streaming the answer.", type_="server_error"
        )
        yield b"data: " + json.dumps(error.body()).encode() + b"\n\n"
        return
    yield DONE
