"""Fault injection for reliability tests (off by default).

A fraction ``rate`` of the ``/api/v1`` requests that match ``routes`` (a regular expression
searched in the path) and ``methods`` fail with a kind drawn at random from ``kinds``:

``500`` / ``502`` / ``503``
    an error response (JSON for 500, an nginx-like HTML page for 502/503);
``429``
    ``Too Many Requests`` with a ``Retry-After`` header;
``reset_before``
    the connection is dropped (TCP reset) before the request is processed;
``reset_after``
    the request is processed (its effects are committed) and then the connection is dropped
    instead of answering: the ambiguous case a client cannot tell from ``reset_before``;
``latency``
    the request is answered normally after ``latency_ms`` milliseconds.

Configure at start (``--fault-rate``) or at run time with ``GET`` / ``PUT /_sandbox/faults``
(same API key) and a JSON body
``{"rate": 0.2, "kinds": ["503", "reset_after"], "routes": "/documents", "methods": ["POST"],
"latency_ms": 200, "seed": 7}``. ``PUT {"rate": 0}`` switches faults off.

:class:`FaultMiddleware` is a plain ASGI middleware: it wraps any ASGI app and needs nothing
of the server but the ASGI ``scope``. ASGI has no way to drop a connection, so for the two
``reset_*`` kinds it asks a :class:`ConnectionRegistry`, which maps a request's
``scope["client"]`` to its transport; the server fills it from the standard
``asyncio.Protocol`` callbacks (``connection_made`` / ``connection_lost``; see
:func:`ragflow_sandbox.server.uvicorn_config`). Without a registry (another ASGI server), a
reset is answered with a 502 page instead.

Example:
    >>> async def app(scope, receive, send): ...
    >>> wrapped = FaultMiddleware(app, Faults(0.1, seed=1), connections=ConnectionRegistry())
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

ALL_KINDS = ("500", "502", "503", "429", "reset_before", "reset_after", "latency")


@dataclass
class FaultConfig:
    """What to inject; ``rate`` 0 means nothing."""

    rate: float = 0.0
    kinds: list[str] = field(default_factory=lambda: list(ALL_KINDS))
    routes: str | None = None
    methods: list[str] | None = None
    latency_ms: int = 200
    retry_after: int = 1
    seed: int | None = None
    injected: dict[str, int] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The JSON form served by ``GET /_sandbox/faults``."""
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "routes": self.routes,
            "methods": self.methods,
            "latency_ms": self.latency_ms,
            "retry_after": self.retry_after,
            "seed": self.seed,
            "injected": dict(self.injected),
        }


class FaultError(ValueError):
    """An invalid fault configuration."""


class Faults:
    """Thread-safe holder of the current :class:`FaultConfig` and its random source.

    Example:
        >>> faults = Faults()
        >>> faults.configure({"rate": 1.0, "kinds": ["503"]})["rate"]
        1.0
        >>> faults.draw("GET", "/api/v1/datasets")
        '503'
    """

    def __init__(self, rate: float = 0.0, *, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig(rate=rate, seed=seed)
        self._random = random.Random(seed)
        self._route_re: re.Pattern[str] | None = None

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the configuration (unspecified keys get their defaults)."""
        if not isinstance(body, dict):
            raise FaultError("the body must be a JSON object")
        unknown = set(body) - {
            "rate",
            "kinds",
            "routes",
            "methods",
            "latency_ms",
            "retry_after",
            "seed",
        }
        if unknown:
            raise FaultError(f"unknown keys: {sorted(unknown)}")
        rate = body.get("rate", 0.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise FaultError("rate must be a number between 0 and 1")
        kinds = body.get("kinds") or list(ALL_KINDS)
        if not isinstance(kinds, list) or any(str(k) not in ALL_KINDS for k in kinds):
            raise FaultError(f"kinds must be a list drawn from {list(ALL_KINDS)}")
        routes = body.get("routes")
        route_re = None
        if routes is not None:
            try:
                route_re = re.compile(str(routes))
            except re.error as exc:
                raise FaultError(f"routes is not a valid regular expression: {exc}") from None
        methods = body.get("methods")
        if methods is not None and (
            not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)
        ):
            raise FaultError("methods must be a list of HTTP methods")
        latency = body.get("latency_ms", 200)
        retry_after = body.get("retry_after", 1)
        seed = body.get("seed")
        for name, value in (("latency_ms", latency), ("retry_after", retry_after)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FaultError(f"{name} must be a non-negative integer")
        with self._lock:
            self.config = FaultConfig(
                rate=float(rate),
                kinds=[str(k) for k in kinds],
                routes=None if routes is None else str(routes),
                methods=[m.upper() for m in methods] if methods else None,
                latency_ms=latency,
                retry_after=retry_after,
                seed=seed,
            )
            self._route_re = route_re
            self._random = random.Random(seed)
            return self.config.public()

    def draw(self, method: str, path: str) -> str | None:
        """The fault kind for this request, or None."""
        with self._lock:
            cfg = self.config
            if cfg.rate <= 0 or not path.startswith("/api/v1"):
                return None
            if cfg.methods and method.upper() not in cfg.methods:
                return None
            if self._route_re is not None and not self._route_re.search(path):
                return None
            if self._random.random() >= cfg.rate:
                return None
            kind = self._random.choice(cfg.kinds)
            cfg.injected[kind] = cfg.injected.get(kind, 0) + 1
            return kind


class ConnectionRegistry:
    """Open client connections by peer address, so a fault can reset one (TCP RST).

    Example:
        >>> registry = ConnectionRegistry()
        >>> registry.abort(("127.0.0.1", 5000))  # not (or no longer) connected
        False
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}

    def opened(self, transport: asyncio.Transport) -> None:
        """Record a new connection (from ``asyncio.Protocol.connection_made``)."""
        peer = _peer(transport)
        if peer is not None:
            with self._lock:
                self._transports[peer] = transport

    def closed(self, transport: asyncio.BaseTransport) -> None:
        """Forget a connection (from ``asyncio.Protocol.connection_lost``)."""
        peer = _peer(transport)
        with self._lock:
            if peer is not None and self._transports.get(peer) is transport:
                del self._transports[peer]

    def abort(self, client: Any) -> bool:
        """Reset the connection of ``client`` (a scope's ``client``); False if unknown."""
        if not client:
            return False
        with self._lock:
            transport = self._transports.get((str(client[0]), int(client[1])))
        if transport is None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        return True


def _peer(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple) or len(peer) < 2:
        return None
    return str(peer[0]), int(peer[1])


_HTML = (
    "<html>\r\n<head><title>{code} {text}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {text}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class FaultMiddleware:
    """Outermost ASGI layer: injects the configured faults before the app sees a request.

    Args:
        app: The ASGI application to protect.
        faults: What to inject (changed at run time through ``PUT /_sandbox/faults``).
        connections: Where the server records its connections, for the ``reset_*`` kinds.
    """

    def __init__(
        self, app: Any, faults: Faults, *, connections: ConnectionRegistry | None = None
    ) -> None:
        self.app = app
        self.faults = faults
        self.connections = connections

    def _abort(self, scope: dict[str, Any]) -> bool:
        return self.connections is not None and self.connections.abort(scope.get("client"))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = self.faults.draw(scope["method"], scope["path"])
        if kind is None:
            await self.app(scope, receive, send)
            return
        if kind == "latency":
            await asyncio.sleep(self.faults.config.latency_ms / 1000)
            await self.app(scope, receive, send)
            return
        if kind == "reset_before":
            if not self._abort(scope):
                await _respond(
                    send, 502, "text/html", _HTML.format(code=502, text="Bad Gateway").encode()
                )
            return
        if kind == "reset_after":

            async def swallow(message: dict[str, Any]) -> None:
                return None

            await self.app(scope, receive, swallow)
            if not self._abort(scope):
                await _respond(
                    send, 502, "text/html", _HTML.format(code=502, text="Bad Gateway").encode()
                )
            return
        if kind == "429":
            body = json.dumps({"code": 429, "data": None, "message": "Too Many Requests"}).encode()
            headers = [(b"retry-after", str(self.faults.config.retry_after).encode())]
            await _respond(send, 429, "application/json", body, headers)
            return
        if kind == "500":
            body = json.dumps(
                {"code": 500, "data": None, "message": "Internal Server Error (sandbox fault)"}
            ).encode()
            await _respond(send, 500, "application/json", body)
            return
        text = {"502": "Bad Gateway", "503": "Service Temporarily Unavailable"}[kind]
        await _respond(send, int(kind), "text/html", _HTML.format(code=kind, text=text).encode())


async def _respond(
    send: Any,
    status: int,
    content_type: str,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})
