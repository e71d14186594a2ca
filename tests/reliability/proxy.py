"""A loopback HTTP proxy in front of the sandbox that can lie about document listings.

It forwards every request unchanged, except that a test's ``rewrite(request, body)`` may change
the JSON answer of a ``GET .../documents`` listing (drop ``data``, cut a page short, empty it)
and ``before(request)`` may act before a request is forwarded (delete documents by raw HTTP
between two pages). It stops with its ``with`` block.

Example::

    with LyingProxy(sandbox.base_url) as proxy:
        proxy.rewrite = lambda req, body: {"code": 0}   # every listing loses its data
        client = RAGFlowClient(proxy.base_url, key)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it."""

    method: str
    path: str
    query: dict[str, list[str]]

    @property
    def is_listing(self) -> bool:
        return self.method == "GET" and self.path.endswith(("/documents", "/chunks"))

    @property
    def page(self) -> int:
        return int(self.query.get("page", ["1"])[0])


class LyingProxy:
    """Forward to ``upstream``; listings pass through ``rewrite`` (see the module docstring)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite: Callable[[Seen, dict[str, Any]], dict[str, Any]] | None = None
        self.before: Callable[[Seen], None] | None = None
        self.listings = 0
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.trust_env = False  # it forwards to upstream itself, never via a proxy
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _forward(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(self.command, parts.path, parse_qs(parts.query))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.before is not None:
                    proxy.before(seen)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                target = parts.path + (
                    f"?{parts.query}" if parts.query else ""
                )  # absolute-form too
                resp = proxy._session.request(
                    self.command,
                    proxy.upstream + target,
                    data=body,
                    headers=headers,
                    timeout=60,
                )
                content = resp.content
                if seen.is_listing:
                    with proxy._lock:
                        proxy.listings += 1
                    if proxy.rewrite is not None:
                        try:
                            payload = resp.json()
                        except ValueError:
                            payload = None
                        if isinstance(payload, dict):
                            new = proxy.rewrite(seen, payload)  # bytes: sent as they are
                            content = new if isinstance(new, bytes) else json.dumps(new).encode()
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in _HOP and k.lower() != "content-encoding":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LyingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()
