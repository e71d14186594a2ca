"""The request-body limit (HTTP 413 with werkzeug's page) and RAGFlow's lenient paths
(repeated and trailing slashes), as an ASGI middleware."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from starlette.responses import Response

__all__ = ["BodyLimit", "BodyTooLarge", "too_large_response"]


class BodyLimit:
    """Request body limit (413) and RAGFlow's lenient trailing slashes."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if "//" in path:  # werkzeug merges repeated slashes (redirecting GETs)
            path = re.sub("/{2,}", "/", path)
            scope = dict(scope)
            scope["path"] = path
            scope["raw_path"] = path.encode()
        if len(path) > 1 and path.endswith("/"):
            scope = dict(scope)
            scope["path"] = path.rstrip("/")
            scope["raw_path"] = scope["path"].encode()
        length = None
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                with contextlib.suppress(ValueError):
                    length = int(value)
        if length is not None and length > self.max_body:
            await _too_large(send)
            return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send)


class BodyTooLarge(Exception):
    """The body grew past the limit while a handler was reading it."""


_TOO_LARGE = (
    b"<!doctype html>\n<html lang=en>\n<title>413 Request Entity Too Large</title>\n"
    b"<h1>Request Entity Too Large</h1>\n"
    b"<p>The data value transmitted exceeds the capacity limit.</p>\n"
)


def too_large_response() -> Response:
    """The 413 page as a response (for a handler that hit the limit)."""
    return Response(_TOO_LARGE, status_code=413, media_type="text/html; charset=utf-8")


async def _too_large(send: Any) -> None:
    body = _TOO_LARGE
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
