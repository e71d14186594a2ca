"""Start a sandbox server in a thread or a subprocess and talk to its control routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from . import constants as C

if TYPE_CHECKING:
    import uvicorn

    from .app import SandboxApp

READY_MARKER = "RAGFLOW_SANDBOX_READY"


def generate_api_key() -> str:
    """A key in RAGFlow's format: ``ragflow-`` + 43 url-safe characters."""
    return "ragflow-" + secrets.token_urlsafe(32)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def uvicorn_config(app: SandboxApp, *, log_level: str) -> uvicorn.Config:
    """How the sandbox is served: ``app.asgi`` over uvicorn's h11 protocol, subclassed only to
    report each connection to ``app.connections`` from the standard ``asyncio.Protocol``
    callbacks, so reset faults can drop it (see :mod:`ragflow_sandbox.faults`).

    Example:
        >>> import tempfile
        >>> from ragflow_sandbox.app import SandboxConfig, build_app
        >>> app = build_app(SandboxConfig(data_dir=tempfile.mkdtemp(), api_key="k"))
        >>> uvicorn_config(app, log_level="warning").http.__name__
        'ConnectionTrackingH11Protocol'
    """
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    registry = app.connections

    class ConnectionTrackingH11Protocol(H11Protocol):
        _tracked: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # the loop hands a stream protocol a full Transport (uvicorn's signature says so)
            stream = cast(asyncio.Transport, transport)
            super().connection_made(stream)
            self._tracked = stream
            registry.opened(stream)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._tracked is not None:
                registry.closed(self._tracked)
            super().connection_lost(exc)

    return uvicorn.Config(
        app.asgi,
        http=ConnectionTrackingH11Protocol,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )


class SandboxServer:
    """A running sandbox: its address, key and data directory, plus control methods.

    Obtain one from :func:`run_sandbox`; ``base_url`` has no ``/api/v1`` suffix.

    Example:
        >>> with run_sandbox() as server:
        ...     _ = server.set_faults(rate=0.5, kinds=["503"])
        ...     server.faults()["rate"], server.clear_faults()["rate"]
        (0.5, 0.0)
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        api_key: str,
        data_dir: Path,
        mode: Literal["thread", "subprocess"],
        options: dict[str, Any],
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.data_dir = data_dir
        self.mode = mode
        self._options = options
        self._thread: threading.Thread | None = None
        self._uvicorn: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = data_dir / "sandbox-server.log"

    @property
    def base_url(self) -> str:
        """``http://host:port`` (without ``/api/v1``)."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def api_url(self) -> str:
        """``base_url`` + ``/api/v1``."""
        return f"{self.base_url}/api/v1"

    @property
    def pid(self) -> int | None:
        """Process id of the server in subprocess mode."""
        return self._process.pid if self._process is not None else None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0) -> None:
        """Start serving (port 0 picks a free port) and wait until it answers."""
        if self.mode == "thread":
            self._start_thread(timeout)
        else:
            self._start_process(timeout)

    def _start_thread(self, timeout: float) -> None:
        import uvicorn

        from .app import SandboxConfig, build_app

        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        app = build_app(
            SandboxConfig(data_dir=str(self.data_dir), api_key=self.api_key, **self._options)
        )
        server = uvicorn.Server(uvicorn_config(app, log_level="warning"))
        self._uvicorn = server
        self.app = app

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            finally:
                with contextlib.suppress(OSError):
                    sock.close()

        self._thread = threading.Thread(
            target=serve, name=f"ragflow-sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the sandbox server thread stopped during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox did not start within {timeout} s")
            time.sleep(0.01)

    def _start_process(self, timeout: float) -> None:
        if self.port == 0:
            probe = _bind(self.host, 0)
            self.port = probe.getsockname()[1]
            probe.close()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "ragflow_sandbox",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--api-key",
            self.api_key,
            "--parse-delay",
            str(self._options.get("parse_delay", 0.0)),
            "--fault-rate",
            str(self._options.get("fault_rate", 0.0)),
            "--quiet",
        ]
        if self._options.get("max_body_bytes"):
            cmd += ["--max-body-bytes", str(self._options["max_body_bytes"])]
        if self._options.get("fault_seed") is not None:
            cmd += ["--fault-seed", str(self._options["fault_seed"])]
        if self._options.get("parse_serial"):
            cmd += ["--parse-serial"]
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child process
        start_offset = log.tell()
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self._process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the sandbox process exited early; see {self._log_path}")
            with open(self._log_path, "rb") as fh:
                fh.seek(start_offset)
                if READY_MARKER.encode() in fh.read():
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(
                    f"the sandbox did not start within {timeout} s; see {self._log_path}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving (gracefully); the data directory is kept."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=15)
            self._uvicorn = None
            self._thread = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGINT)
                try:
                    self._process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=15)
            self._process = None

    def kill(self) -> None:
        """Crash the server with SIGKILL (subprocess mode only): no cleanup, no goodbye."""
        if self._process is None:
            raise RuntimeError("kill() needs a server started with mode='subprocess'")
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=15)
        self._process = None

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop (if still running) and start again on the same port with the same data."""
        if self._process is not None or self._uvicorn is not None:
            self.stop()
        self.start(timeout=timeout)

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        if self._process is not None:
            return self._process.poll() is None
        return self._thread is not None and self._thread.is_alive()

    # --- control routes -------------------------------------------------------------------------

    def _control(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
            raise ValueError(payload.get("message") or str(exc)) from None
        return payload["data"]

    def set_faults(
        self,
        *,
        rate: float,
        kinds: list[str] | None = None,
        routes: str | None = None,
        methods: list[str] | None = None,
        latency_ms: int = 200,
        retry_after: int = 1,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Switch fault injection on (see :mod:`ragflow_sandbox.faults`)."""
        body: dict[str, Any] = {"rate": rate, "latency_ms": latency_ms, "retry_after": retry_after}
        if kinds is not None:
            body["kinds"] = kinds
        if routes is not None:
            body["routes"] = routes
        if methods is not None:
            body["methods"] = methods
        if seed is not None:
            body["seed"] = seed
        return self._control("PUT", "/_sandbox/faults", body)

    def clear_faults(self) -> dict[str, Any]:
        """Switch fault injection off."""
        return self._control("PUT", "/_sandbox/faults", {"rate": 0})

    def faults(self) -> dict[str, Any]:
        """The current fault configuration with per-kind injection counts."""
        return self._control("GET", "/_sandbox/faults")

    def set_parse_delay(self, seconds: float) -> dict[str, Any]:
        """Change how long each document stays RUNNING before it is parsed."""
        return self._control("PUT", "/_sandbox/config", {"parse_delay": seconds})

    def __repr__(self) -> str:
        data_dir = str(self.data_dir)
        return (
            f"SandboxServer(base_url={self.base_url!r}, mode={self.mode!r}, data_dir={data_dir!r})"
        )


@contextlib.contextmanager
def run_sandbox(
    *,
    data_dir: str | Path | None = None,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    parse_delay: float = 0.0,
    fault_rate: float = 0.0,
    max_body_bytes: int | None = None,
    mode: Literal["thread", "subprocess"] = "thread",
    fault_seed: int | None = None,
    startup_timeout: float = 30.0,
    parse_serial: bool = False,
) -> Iterator[SandboxServer]:
    """Run a RAGFlow-compatible sandbox for the duration of a ``with`` block.

    Args:
        data_dir: Where the database and blobs live; ``None`` uses a temporary directory that
            is removed at exit.
        api_key: The API key to accept; ``None`` generates a ``ragflow-...`` key.
        host: Interface to listen on.
        port: TCP port; 0 picks a free one.
        parse_delay: Seconds each document stays RUNNING before it is parsed.
        fault_rate: Fraction of ``/api/v1`` requests that fail (kinds drawn at random).
        max_body_bytes: Request body limit (RAGFlow's default 1 GiB when None).
        mode: ``"thread"`` (in this process) or ``"subprocess"`` (can be killed and restarted).
        fault_seed: Seed for the fault draws, for reproducible runs.
        startup_timeout: Seconds to wait for the server to answer.
        parse_serial: One parser spending ``parse_delay`` on each document in turn (a real
            server's single task executor) instead of every document waiting in parallel.

    Yields:
        The running :class:`SandboxServer`.

    Example:
        >>> import requests
        >>> with run_sandbox() as server:
        ...     r = requests.get(f"{server.base_url}/api/v1/datasets",
        ...                      headers={"Authorization": f"Bearer {server.api_key}"})
        ...     r.json()["code"]
        0
    """
    temp_dir = None
    if data_dir is None:
        temp_dir = tempfile.mkdtemp(prefix="ragflow-sandbox-")
        data_dir = temp_dir
    options: dict[str, Any] = {
        "parse_delay": parse_delay,
        "fault_rate": fault_rate,
        "max_body_bytes": max_body_bytes or C.DEFAULT_MAX_BODY_BYTES,
        "fault_seed": fault_seed,
    }
    if parse_serial:
        options["parse_serial"] = True
    server = SandboxServer(
        host=host,
        port=port,
        api_key=api_key or generate_api_key(),
        data_dir=Path(data_dir),
        mode=mode,
        options=options,
    )
    try:
        server.start(timeout=startup_timeout)
        yield server
    finally:
        server.stop()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
