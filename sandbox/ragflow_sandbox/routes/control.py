"""The ``/_sandbox`` control routes: health, fault injection and run-time settings."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from ..faults import FaultError
from ..responses import respond
from .base import Endpoint, Router


class ControlRoutes(Router):
    """``/_sandbox/health``, ``/_sandbox/faults``, ``/_sandbox/config``."""

    def routes(self, e: Endpoint) -> list[Route]:
        return [
            Route("/_sandbox/health", e(self.health, auth=False), methods=["GET"]),
            Route("/_sandbox/faults", e(self.get_faults), methods=["GET"]),
            Route("/_sandbox/faults", e(self.put_faults), methods=["PUT"]),
            Route("/_sandbox/config", e(self.get_config), methods=["GET"]),
            Route("/_sandbox/config", e(self.put_config), methods=["PUT"]),
        ]

    async def health(self, request: Request) -> Response:
        return respond({"ok": True, "tenant_id": self.store.tenant_id})

    async def get_faults(self, request: Request) -> Response:
        return respond({"code": 0, "data": self.faults.config.public()})

    async def put_faults(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            return respond({"code": 0, "data": self.faults.configure(body)})
        except (ValueError, FaultError) as exc:
            return respond({"code": C.ARGUMENT_ERROR, "message": str(exc)}, 400)

    async def get_config(self, request: Request) -> Response:
        return respond(
            {
                "code": 0,
                "data": {
                    "parse_delay": self.worker.parse_delay,
                    "max_body_bytes": self.config.max_body_bytes,
                    "max_parse_bytes": self.worker.max_parse_bytes,
                    "data_dir": str(self.store.data_dir),
                    "documents": self.store.count_documents(),
                    "parse_queue": self.worker.pending(),
                },
            }
        )

    async def put_config(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return respond({"code": C.ARGUMENT_ERROR, "message": str(exc)}, 400)
        if not isinstance(body, dict) or set(body) - {"parse_delay"}:
            return respond(
                {"code": C.ARGUMENT_ERROR, "message": "only 'parse_delay' can be set"}, 400
            )
        delay = body.get("parse_delay", self.worker.parse_delay)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            return respond({"code": C.ARGUMENT_ERROR, "message": "parse_delay must be >= 0"}, 400)
        self.worker.parse_delay = float(delay)
        return await self.get_config(request)
