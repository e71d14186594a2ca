"""RAGFlow's response envelopes (``api/utils/api_utils.py``): every business answer is HTTP 200
with a ``code``; only a bad API key (401), an unknown route (404) and a too large body (413)
change the status.

Example:
    >>> ok({"id": "x"}).body
    b'{"code":0,"data":{"id":"x"}}'
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from . import constants as C

__all__ = [
    "ReprError",
    "construct",
    "err",
    "json_result",
    "ok",
    "respond",
    "unauthorized",
]


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode(
        "utf-8"
    )


def respond(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(
        _dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def ok(data: Any = None, *, total: int | None = None) -> Response:
    """``get_result``: ``{"code": 0[, "data"][, "total_datasets"]}``."""
    payload: dict[str, Any] = {"code": 0}
    if data is not None:
        payload["data"] = data
    if total is not None:
        payload["total_datasets"] = total
    return respond(payload)


def err(message: str, code: int = C.DATA_ERROR) -> Response:
    """``get_error_data_result`` / ``get_result(code != 0)``: ``{"code", "message"}``."""
    return respond({"code": code, "message": message})


def json_result(data: Any = None, *, code: int = 0, message: str = "success") -> Response:
    """``get_json_result``: always ``{"code", "message", "data"}``."""
    return respond({"code": code, "message": message, "data": data})


def construct(code: int, message: str, data: Any = None) -> Response:
    """``construct_json_result``: ``data`` omitted when None."""
    payload: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        payload["data"] = data
    return respond(payload)


def unauthorized() -> Response:
    """RAGFlow's answer to a missing or wrong API key."""
    return respond({"code": C.UNAUTHORIZED, "message": C.UNAUTHORIZED_MESSAGE, "data": None}, 401)


class ReprError(Exception):
    """An error whose ``repr`` is ``text``: the handler wrapper answers ``repr(exc)``, as
    RAGFlow's ``server_error_response`` does, so this reproduces werkzeug's exact messages."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __repr__(self) -> str:
        return self.text
