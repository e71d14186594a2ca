"""The sandbox application: its configuration, the state every router shares, auth, RAGFlow's
error envelope, and the routes of all resources mounted in a safe order.

Every route answers like a RAGFlow v0.27 server: business errors are HTTP 200 with a non-zero
``code``, a missing or wrong API key is HTTP 401, unknown routes are 404, and an exception is
``{"code": 100, "message": repr(exc)}``. The handlers live in :mod:`ragflow_sandbox.routes`, one
module per resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import constants as C
from .faults import ConnectionRegistry, FaultMiddleware, Faults
from .limits import BodyLimit, BodyTooLarge, too_large_response
from .responses import json_result, respond, unauthorized
from .retrieval import Retriever
from .routes import ROUTERS
from .routes.base import Handler
from .store import Store
from .worker import ParseWorker

__all__ = ["SandboxApp", "SandboxConfig", "build_app"]

log = logging.getLogger(__name__)

_THREAD = threading.local()  # one event loop per worker thread, for offloaded handlers


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
    parse_serial: bool = False
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
            serial=config.parse_serial,
            max_parse_bytes=config.max_parse_bytes,
        )
        self.retriever = Retriever(self.store)
        self.faults = Faults(config.fault_rate, seed=config.fault_seed)
        self._auth_cache: dict[str, bool] = {}
        self.write_lock = asyncio.Lock()
        self.routers = [router(self) for router in ROUTERS]
        self.starlette = Starlette(
            routes=self._routes(),
            exception_handlers={404: self._not_found, 405: self._method_not_allowed},
            lifespan=self._lifespan,
        )
        self.connections = ConnectionRegistry()  # filled by the server (reset faults)
        self.asgi = FaultMiddleware(
            BodyLimit(self.starlette, config.max_body_bytes),
            self.faults,
            connections=self.connections,
        )

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

    async def _authorized(self, request: Request) -> bool:
        token = self._token(request)
        if not token:
            return False
        if self._auth_cache.get(token):
            return True
        known = await anyio.to_thread.run_sync(self.store.token_valid, token)
        if known:
            self._auth_cache[token] = True
        return known

    async def offload(
        self, call: Callable[[], Awaitable[Response]], *, writes: bool = True
    ) -> Response:
        """Run the coroutine ``call()`` in a worker thread (with an event loop of its own), so
        SQLite (a write waiting on ``busy_timeout``, a long listing) never blocks this loop.

        Calls that ``writes`` first take :attr:`write_lock` here, on the loop: a handler's
        check-then-write stays atomic, as it was on the single event loop (SQLite admits one
        writer at a time anyway), and queued writers hold no worker thread, so reads run side
        by side even behind many stuck writes.
        """

        def run() -> Response:
            loop = getattr(_THREAD, "loop", None)
            if loop is None:
                loop = _THREAD.loop = asyncio.new_event_loop()
            return loop.run_until_complete(call())

        if not writes:
            return await anyio.to_thread.run_sync(run)
        async with self.write_lock:
            return await anyio.to_thread.run_sync(run)

    def endpoint(self, handler: Handler, *, auth: bool = True, offload: bool = True) -> Handler:
        """``handler`` behind the API-key check and RAGFlow's ``server_error_response``.

        With ``offload`` (the default) the body is read here, on the event loop, and the
        handler then runs in a worker thread (:meth:`offload`; methods other than GET/HEAD
        under the write lock). A handler that streams its body (uploads) passes
        ``offload=False`` and offloads its own storage work.
        """

        @functools.wraps(handler)
        async def wrapped(request: Request) -> Response:
            try:
                if auth and not await self._authorized(request):
                    return unauthorized()
                if not offload:
                    return await handler(request)
                await request.body()  # cached: the handler's own reads return at once
                writes = request.method not in ("GET", "HEAD")
                return await self.offload(lambda: handler(request), writes=writes)
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
