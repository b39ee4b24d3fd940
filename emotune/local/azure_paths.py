"""Azure OpenAI's URL shapes on the local server, so the Azure provider runs end to end offline.

Azure's data plane serves ``/openai/files``, ``/openai/fine_tuning/jobs``, ``/openai/batches`` and
``/openai/models``, and chat at ``/openai/deployments/{deployment}/chat/completions``, each with an
``api-version`` query parameter. This ASGI middleware answers them with the server's own ``/v1``
routes: every model the server registers is deployed under its own name (Azure needs a deployment
made by hand; see emotune/providers/azure.py), and a request without ``api-version`` gets Azure's
404. Requests outside ``/openai/`` pass through unchanged.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs

PREFIX = "/openai/"
DEPLOYMENT = re.compile(r"^/openai/deployments/([^/]+)(/.+)$")


class AzurePaths:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if not query.get("api-version"):
            await _not_found(send, "Resource not found: Azure OpenAI routes need ?api-version=")
            return
        match = DEPLOYMENT.match(scope["path"])
        rest = match.group(2) if match else scope["path"][len(PREFIX) - 1 :]
        path = "/v1" + rest
        await self.app(dict(scope, path=path, raw_path=path.encode("latin-1")), receive, send)


async def _not_found(send, message: str) -> None:
    body = json.dumps({"error": {"code": "404", "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})
