"""The sandbox application: its configuration, the state every router shares, auth, RAGFlow's
error envelope, and the routes of all resources mounted in a safe order.

Every route answers like a RAGFlow v0.27 server: business errors are HTTP 200 with a non-zero
``code``, a missing or wrong API key is HTTP 401, unknown routes are 404, and an exception is
``{"code": 100, "message": repr(exc)}``. The handlers live in :mod:`ragflow_sandbox.routes`, one
module per resource.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import constants as C
from .faults import FaultMiddleware, Faults
from .limits import BodyLimit, BodyTooLarge, too_large_response
from .responses import json_result, respond, unauthorized
from .retrieval import Retriever
from .routes import ROUTERS
from .routes.base import Handler
from .store import Store
from .worker import ParseWorker

__all__ = ["SandboxApp", "SandboxConfig", "build_app"]

log = logging.getLogger(__name__)


@dataclass
class SandboxConfig:
    """Runtime settings of one sandbox server."""

    data_dir: str
    api_key: str
    parse_delay: float = 0.0
    fault_rate: float = 0.0
    fault_seed: int | None = None
    max_body_bytes: int = C.DEFAULT_MAX_BODY_BYTES
    max_parse_bytes: int = C.DEFAULT_MAX_PARSE_BYTES
    parser_threads: int = 2
    max_file_num_per_user: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class SandboxApp:
    """Holds the store, the parse worker and the fault switch; builds the ASGI app.

    Args:
        config: Settings of this server.

    Example:
        >>> import tempfile
        >>> sandbox = SandboxApp(SandboxConfig(data_dir=tempfile.mkdtemp(), api_key="k"))
        >>> callable(sandbox.asgi)
        True
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.store.add_token(config.api_key)
        self.worker = ParseWorker(
            self.store,
            parse_delay=config.parse_delay,
            threads=config.parser_threads,
            max_parse_bytes=config.max_parse_bytes,
        )
        self.retriever = Retriever(self.store)
        self.faults = Faults(config.fault_rate, seed=config.fault_seed)
        self._auth_cache: dict[str, bool] = {}
        self.routers = [router(self) for router in ROUTERS]
        self.starlette = Starlette(
            routes=self._routes(),
            exception_handlers={404: self._not_found, 405: self._method_not_allowed},
            lifespan=self._lifespan,
        )
        self.asgi = FaultMiddleware(BodyLimit(self.starlette, config.max_body_bytes), self.faults)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> Any:
        self.worker.start()
        try:
            yield
        finally:
            self.worker.stop()
            self.store.close()

    async def _not_found(self, request: Request, _exc: Exception) -> Response:
        return respond(
            {
                "code": C.NOT_FOUND,
                "message": f"Not Found: {request.url.path}",
                "data": None,
                "error": "Not Found",
            },
            404,
        )

    async def _method_not_allowed(self, request: Request, _exc: Exception) -> Response:
        return json_result(
            code=C.EXCEPTION_ERROR, message="<MethodNotAllowed '405: Method Not Allowed'>"
        )

    def _token(self, request: Request) -> str | None:
        header = request.headers.get("authorization")
        if not header:
            return None
        if header[:7].lower() == "bearer ":
            parts = header.split(None, 1)
            return parts[1] if len(parts) == 2 else None
        return header

    def _authorized(self, request: Request) -> bool:
        token = self._token(request)
        if not token:
            return False
        known = self._auth_cache.get(token)
        if known is None:
            known = self.store.token_valid(token)
            if known:
                self._auth_cache[token] = True
        return known

    def endpoint(self, handler: Handler, *, auth: bool = True) -> Handler:
        """``handler`` behind the API-key check and RAGFlow's ``server_error_response``."""

        @functools.wraps(handler)
        async def wrapped(request: Request) -> Response:
            if auth and not self._authorized(request):
                return unauthorized()
            try:
                return await handler(request)
            except BodyTooLarge:
                return too_large_response()
            except Exception as exc:  # RAGFlow's server_error_response
                log.debug("sandbox handler error", exc_info=True)
                return json_result(code=C.EXCEPTION_ERROR, message=repr(exc))

        return wrapped

    def _routes(self) -> list[Route]:
        routes: list[Route] = []
        for router in self.routers:
            routes += router.routes(self.endpoint)
        for router in self.routers:  # catch-all patterns after every specific one
            routes += router.fallback_routes(self.endpoint)
        return routes


def build_app(config: SandboxConfig) -> SandboxApp:
    """Create the sandbox application for ``config``."""
    os.makedirs(config.data_dir, exist_ok=True)
    return SandboxApp(config)
