"""What every route shares: JSON responses, OpenAI's cursor pages, reading a JSON body, the
engine."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import Response

from ..api_error import ApiError

MAX_JSON_BODY = 32 * 1024 * 1024  # a chat or job body larger than this is refused with a 413
MULTIPART_SLACK = 1024 * 1024  # an upload's body may pass the file limit by this (parts' headers)
MAX_PAGE = 10_000


def json_response(obj, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(obj), status_code=status, media_type="application/json", headers=headers
    )


def typed(kind, obj: dict) -> dict:
    """A response built through the ``openai`` package's own type: what the official client
    parses, no
    more."""
    return kind.model_validate(obj).model_dump(mode="json", exclude_unset=True)


def typed_list(kind, items: list[dict]) -> list[dict]:
    return [typed(kind, item) for item in items]


def engine(request: Request):
    return request.app.state.engine


def page(items: list[dict], after: str | None, limit: str | None, default_limit: int = 20) -> dict:
    """OpenAI's cursor page: items after the one with id ``after``, at most ``limit``."""
    if limit in (None, ""):
        n = default_limit
    else:
        try:
            n = int(limit)
        except ValueError:
            raise ApiError(
                400, f"Invalid value for 'limit': {limit!r} is not an integer.", param="limit"
            ) from None
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    n = max(1, min(n, MAX_PAGE))
    chunk = items[:n]
    return {
        "object": "list",
        "data": chunk,
        "has_more": len(items) > n,
        "first_id": chunk[0]["id"] if chunk else None,
        "last_id": chunk[-1]["id"] if chunk else None,
    }


async def json_body(request: Request) -> dict:
    """The request's JSON object, or an OpenAI-shaped 400/413: the body is read as it streams in
    and refused as soon as it passes the app's limit, never read whole first."""
    limit = getattr(request.app.state, "max_body_bytes", MAX_JSON_BODY)
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413,
                f"Request body is too large: over {size:,} bytes; the limit is {limit:,} bytes.",
                code="request_too_large",
                headers={"connection": "close"},
            )
        parts.append(chunk)
    raw = b"".join(parts)
    try:
        body = json.loads(raw or b"{}")
    # ValueError: also an integer of more digits than Python converts (4,300)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(
            400, f"We could not parse the JSON body of your request ({type(exc).__name__})."
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body
