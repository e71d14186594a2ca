"""Real protocol servers on 127.0.0.1 for the fsspec source tests, started and stopped by them.

* :class:`WebDAVServer`: ``wsgidav`` on ``cheroot`` serving a temp folder, basic auth, with a
  counter of requests per method and paths whose ``PROPFIND`` fails (a fault, like a broken
  share).
* :class:`SFTPServer`: an SSH server built on ``paramiko`` serving a temp folder over SFTP,
  password auth, with folders whose listing is refused (permission denied).
* :class:`Azurite`: the Azure Storage emulator (npm ``azurite``, installed by ``make tools``
  into ``.tools/``) on a free port, reached through :class:`FaultProxy`, a loopback HTTP
  proxy that counts requests and can refuse chosen ones (403), so a listing fails half way.

Loaded by ``conftest.py`` (by path: the suite runs with ``--import-mode=importlib``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO / ".tools" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (  # the emulator's published well-known key (not a secret; still never logged)
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {deadline_s} s")


# ------------------------------------------------------------------------------------------------
# WebDAV
# ------------------------------------------------------------------------------------------------


class WebDAVServer:
    """wsgidav serving ``root`` at ``http://127.0.0.1:<port>/`` with basic auth.

    Attributes:
        root: The served folder.
        user, password: The only account.
        methods: Requests seen, by HTTP method.
        fail_propfind: Relative folder paths (``"locked"``) whose PROPFIND answers 403.
    """

    def __init__(self, root: str, *, user: str = "alice", password: str = "dav-pw-7Hq2") -> None:
        self.root = root
        self.user = user
        self.password = password
        self.methods: Counter[str] = Counter()
        self.fail_propfind: set[str] = set()
        self.port = free_port()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> Callable[..., Any]:
        from wsgidav.wsgidav_app import WsgiDAVApp

        app = WsgiDAVApp(
            {
                "host": "127.0.0.1",
                "port": self.port,
                "provider_mapping": {"/": self.root},
                "simple_dc": {"user_mapping": {"*": {self.user: {"password": self.password}}}},
                "http_authenticator": {
                    "accept_basic": True,
                    "accept_digest": False,
                    "default_to_digest": False,
                },
                "verbose": 0,
                "logging": {"enable": False},
                "property_manager": True,
                "lock_storage": True,
                "dir_browser": {"enable": False},
            }
        )

        def faulty(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            method = environ.get("REQUEST_METHOD", "")
            self.methods[method] += 1
            path = environ.get("PATH_INFO", "").strip("/")
            if method == "PROPFIND" and path in self.fail_propfind:
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"forbidden by the test"]
            return app(environ, start_response)

        return faulty

    def start(self) -> WebDAVServer:
        from cheroot import wsgi

        self._server = wsgi.Server(("127.0.0.1", self.port), self._app(), numthreads=8)
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, daemon=True)
        self._thread.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self._thread is not None:
            self._thread.join(10)


# ------------------------------------------------------------------------------------------------
# SFTP (paramiko)
# ------------------------------------------------------------------------------------------------


def _sftp_classes() -> tuple[type, type]:
    import paramiko
    from paramiko import SFTPAttributes, SFTPHandle, SFTPServerInterface
    from paramiko.sftp import SFTP_OK, SFTP_PERMISSION_DENIED

    class Auth(paramiko.ServerInterface):
        def __init__(self, server: SFTPServer) -> None:
            self.server = server

        def check_auth_password(self, username: str, password: str) -> int:
            ok = username == self.server.user and password == self.server.password
            return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

        def get_allowed_auths(self, username: str) -> str:
            return "password"

        def check_channel_request(self, kind: str, chanid: int) -> int:
            if kind == "session":
                return paramiko.OPEN_SUCCEEDED
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def _errno(exc: OSError) -> int:
        return SFTPServer.errno_map(exc)

    class Handle(SFTPHandle):
        def stat(self) -> Any:
            try:
                return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
            except OSError as exc:
                return _errno(exc)

    class Files(SFTPServerInterface):
        """Paths of the SFTP session map onto the server's folder (``/`` = its root)."""

        def __init__(self, server: Any, *args: Any, owner: SFTPServer, **kwargs: Any) -> None:
            super().__init__(server, *args, **kwargs)
            self.server = owner

        def _local(self, path: str) -> str:
            rel = os.path.normpath("/" + path).lstrip("/")
            return os.path.join(self.server.root, rel)

        def _denied(self, path: str) -> bool:
            rel = os.path.normpath("/" + path).strip("/")
            return rel in self.server.deny_listing

        def canonicalize(self, path: str) -> str:
            return os.path.normpath("/" + path)

        def list_folder(self, path: str) -> Any:
            self.server.ops["list_folder"] += 1
            if self._denied(path):
                return SFTP_PERMISSION_DENIED
            local = self._local(path)
            try:
                out = []
                for name in os.listdir(local):
                    attr = SFTPAttributes.from_stat(os.lstat(os.path.join(local, name)))
                    attr.filename = name
                    out.append(attr)
                return out
            except OSError as exc:
                return _errno(exc)

        def stat(self, path: str) -> Any:
            self.server.ops["stat"] += 1
            try:
                return SFTPAttributes.from_stat(os.stat(self._local(path)))
            except OSError as exc:
                return _errno(exc)

        lstat = stat

        def open(self, path: str, flags: int, attr: Any) -> Any:
            self.server.ops["open"] += 1
            local = self._local(path)
            try:
                mode = "r+b" if flags & os.O_RDWR else ("wb" if flags & os.O_WRONLY else "rb")
                if flags & os.O_CREAT and not os.path.exists(local):
                    os.makedirs(os.path.dirname(local), exist_ok=True)
                    open(local, "wb").close()
                f = open(local, mode)  # noqa: SIM115 - the handle owns it
            except OSError as exc:
                return _errno(exc)
            handle = Handle(flags)
            handle.filename = local
            handle.readfile = f
            handle.writefile = f
            return handle

        def remove(self, path: str) -> int:
            try:
                os.remove(self._local(path))
            except OSError as exc:
                return _errno(exc)
            return SFTP_OK

        def rename(self, oldpath: str, newpath: str) -> int:
            try:
                os.rename(self._local(oldpath), self._local(newpath))
            except OSError as exc:
                return _errno(exc)
            return SFTP_OK

        def mkdir(self, path: str, attr: Any) -> int:
            try:
                os.mkdir(self._local(path))
            except OSError as exc:
                return _errno(exc)
            return SFTP_OK

        def rmdir(self, path: str) -> int:
            try:
                os.rmdir(self._local(path))
            except OSError as exc:
                return _errno(exc)
            return SFTP_OK

        def chattr(self, path: str, attr: Any) -> int:
            return SFTP_OK

    return Auth, Files


class SFTPServer:
    """A paramiko SSH server on ``127.0.0.1:<port>`` with the ``sftp`` subsystem over ``root``.

    Attributes:
        root: The served folder (``/`` of the session).
        user, password: The only account.
        deny_listing: Relative folder paths whose listing is refused (permission denied).
        ops: SFTP operations seen, by name (``list_folder``, ``stat``, ``open``).
    """

    _host_key: Any = None

    def __init__(self, root: str, *, user: str = "bob", password: str = "sftp-pw-9Zx4") -> None:
        self.root = root
        self.user = user
        self.password = password
        self.deny_listing: set[str] = set()
        self.ops: Counter[str] = Counter()
        self.port = free_port()
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._transports: list[Any] = []
        self._thread: threading.Thread | None = None

    @staticmethod
    def errno_map(exc: OSError) -> int:
        from paramiko import SFTPServer as Srv

        return Srv.convert_errno(exc.errno)

    def start(self) -> SFTPServer:
        import paramiko

        if SFTPServer._host_key is None:  # a throwaway host key, one per test session
            SFTPServer._host_key = paramiko.RSAKey.generate(2048)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        import paramiko

        auth_cls, files_cls = _sftp_classes()
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(SFTPServer._host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, files_cls, owner=self)
            try:
                transport.start_server(server=auth_cls(self))
            except Exception:
                transport.close()
                continue
            self._transports.append(transport)

    def stop(self) -> None:
        self._stop.set()
        for t in self._transports:
            with contextlib.suppress(Exception):
                t.close()
        if self._sock is not None:
            self._sock.close()
        if self._thread is not None:
            self._thread.join(5)


# ------------------------------------------------------------------------------------------------
# Azure Blob (azurite) behind a fault proxy
# ------------------------------------------------------------------------------------------------


class FaultProxy:
    """A loopback HTTP proxy to ``upstream_port`` that counts requests and refuses chosen ones.

    Attributes:
        requests: ``(method, path?query)`` of every request, in order.
        refuse: A predicate on ``(method, path?query)``; True answers 403 without forwarding.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[tuple[str, str]] = []
        self.refuse: Callable[[str, str], bool] = lambda method, target: False
        self.port = free_port()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                method, target = self.command, self.path
                proxy.requests.append((method, target))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.refuse(method, target):
                    payload = (
                        b'<?xml version="1.0" encoding="utf-8"?><Error><Code>'
                        b"AuthorizationPermissionMismatch</Code><Message>refused by the "
                        b"test proxy</Message></Error>"
                    )
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("x-ms-error-code", "AuthorizationPermissionMismatch")
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    headers["Host"] = f"127.0.0.1:{proxy.upstream_port}"
                    upstream.request(method, target, body=body, headers=headers)
                    resp = upstream.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    skip = {"transfer-encoding", "connection"}
                    if method != "HEAD":  # a HEAD answer keeps the upstream Content-Length
                        skip.add("content-length")
                    for k, v in resp.getheaders():
                        if k.lower() not in skip:
                            self.send_header(k, v)
                    if method != "HEAD":
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if method != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def count(self, predicate: Callable[[str, str], bool]) -> int:
        return sum(1 for m, t in self.requests if predicate(m, t))


class Azurite:
    """The Azure Blob emulator in a temp workspace, reached through a :class:`FaultProxy`.

    Attributes:
        proxy: The proxy the clients talk to (counts, faults).
        connection_string: For the proxy endpoint (holds the emulator's account key).
    """

    def __init__(self) -> None:
        self.workspace = tempfile.mkdtemp(prefix="rfd-azurite-")
        self.blob_port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.proxy: FaultProxy | None = None

    @staticmethod
    def available() -> bool:
        return AZURITE_BIN.exists() and shutil.which("node") is not None

    @property
    def endpoint(self) -> str:
        assert self.proxy is not None
        return f"http://127.0.0.1:{self.proxy.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint};"
        )

    @property
    def direct_connection_string(self) -> str:
        """For the emulator itself, bypassing the proxy (benchmarks)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT};"
        )

    def start(self) -> Azurite:
        self._proc = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.blob_port),
                "--location",
                self.workspace,
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(self.blob_port, 60)
        except TimeoutError:
            self.stop()
            raise
        self.proxy = FaultProxy(self.blob_port).start()
        return self

    def service(self) -> Any:
        """A ``BlobServiceClient`` on the proxy (to put and delete blobs in tests)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        shutil.rmtree(self.workspace, ignore_errors=True)


@contextlib.contextmanager
def running(server: Any) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
