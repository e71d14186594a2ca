"""Version differences and transport edge cases, against a scripted HTTP server on 127.0.0.1.

The sandbox speaks today's API. Older servers (v0.13-v0.24) answered differently: no PATCH,
``{"code": 0}`` without data, HTTP 200 for a missing key, ``total`` instead of
``total_datasets``... A small real HTTP server that replays scripted answers checks that the
client copes, and also lets tests count exactly what reached the server.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ragflow_dagster.client import (
    RAGFlowAuthError,
    RAGFlowClient,
    RAGFlowNotFoundError,
    RAGFlowOutcomeUnknownError,
    RAGFlowPayloadTooLargeError,
    RAGFlowRateLimitedError,
    RAGFlowUnavailableError,
    RAGFlowUploadAmbiguousError,
    UploadFile,
)

KEY = "ragflow-COMPATSECRET"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    """Answers by (method, path-without-query): a list consumed in order, the last one repeats."""

    answers: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, method: str, path: str, *answers: Any) -> None:
        self.answers[(method, "/api/v1" + path)] = list(answers)

    def next(self, method: str, path: str) -> Any:
        with self.lock:
            queue = self.answers.get((method, path))
            if not queue:
                return (404, {}, {"code": 404, "message": f"Not Found: {path}"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def hits(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == "/api/v1" + path]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            path = self.path.split("?", 1)[0]
            answer = script.next(self.command, path)
            if answer == "reset_before":  # drop without reading the body
                self._reset()
                return
            body = self._read_body()
            with script.lock:
                script.seen.append(Seen(self.command, path, dict(self.headers), body))
            if answer == "reset_after":
                self._reset()
                return
            if answer == "hang":
                time.sleep(1.5)
                self._reset()
                return
            status, headers, payload = answer
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reset(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _client(url: str, **kw: Any) -> RAGFlowClient:
    opts: dict[str, Any] = {"max_retries": 3, "backoff": 0.01, "max_backoff": 0.02, "timeout": 5}
    opts.update(kw)
    return RAGFlowClient(url + "/api/v1/", KEY, **opts)  # a trailing /api/v1/ is accepted


OK = (200, {}, {"code": 0})
DOC = {"id": "d1", "name": "a.txt", "kb_id": "k", "run": "0", "size": 1}


def test_old_server_answers_without_data(server):
    url, script = server
    script.on("PATCH", "/datasets/k/documents/d1", (405, {}, b"<h1>Method Not Allowed</h1>"))
    script.on("PUT", "/datasets/k/documents/d1", OK)
    script.on("DELETE", "/datasets/k/documents", OK)
    script.on("DELETE", "/datasets", OK)
    script.on("POST", "/datasets", OK)
    script.on(
        "GET", "/datasets", (200, {}, {"code": 0, "data": [{"id": "k", "name": "KB"}], "total": 1})
    )
    with _client(url) as c:
        assert c.update_document("k", "d1", meta_fields={"a": 1}) is None
        assert c.update_document("k", "d1", name="b.txt") is None
        assert len(script.hits("PATCH", "/datasets/k/documents/d1")) == 1  # remembered: PUT now
        assert [json.loads(s.body) for s in script.hits("PUT", "/datasets/k/documents/d1")] == [
            {"meta_fields": {"a": 1}},
            {"name": "b.txt"},
        ]
        assert c.delete_documents("k", ["d1", "d2", "d1"]) == 2
        assert json.loads(script.hits("DELETE", "/datasets/k/documents")[0].body) == {
            "ids": ["d1", "d2"]
        }
        assert c.delete_datasets(["k"]) == 1
        created = c.create_dataset("KB", chunk_method="naive")  # no data: looked up by name
        assert created.id == "k"
        assert json.loads(script.hits("POST", "/datasets")[0].body) == {
            "name": "KB",
            "chunk_method": "naive",
        }
        assert [d.id for d in c.iter_datasets()] == ["k"]


def test_v024_missing_key_answer_is_an_auth_error(server):
    url, script = server
    script.on(
        "GET",
        "/datasets",
        (200, {}, {"code": 0, "data": False, "message": "`Authorization` can't be empty"}),
    )
    with _client(url) as c, pytest.raises(RAGFlowAuthError):
        c.ping()
    assert len(script.seen) == 1  # not retried


def test_auth_header_and_user_agent(server):
    url, script = server
    script.on("GET", "/datasets", (200, {}, {"code": 0, "data": []}))
    with _client(url, user_agent="probe/1") as c:
        assert c.find_dataset("x") is None
    headers = script.seen[0].headers
    assert headers["Authorization"] == f"Bearer {KEY}" and headers["User-Agent"] == "probe/1"


def test_page_size_limit_is_learned(server):
    url, script = server
    docs = [{**DOC, "id": f"d{i}"} for i in range(5)]
    script.on(
        "GET",
        "/datasets/k/documents",
        (
            200,
            {},
            {"code": 100, "message": "ValueError('page_size must be less than or equal to 3')"},
        ),
        # the newest page first (see Paging._pages), then the oldest
        (200, {}, {"code": 0, "data": {"docs": docs[:1:-1], "total": 5}}),
        (200, {}, {"code": 0, "data": {"docs": docs[:3], "total": 5}}),
    )
    with _client(url) as c:
        assert [d.id for d in c.iter_documents("k")] == [d["id"] for d in docs]
    assert len(script.hits("GET", "/datasets/k/documents")) == 3


def test_retry_after_is_honoured_and_5xx_retried(server):
    url, script = server
    script.on(
        "GET",
        "/datasets",
        (429, {"Retry-After": "1"}, {"code": 429, "message": "Too Many Requests"}),
        (503, {"Content-Type": "text/html"}, b"<html>503 Service Temporarily Unavailable</html>"),
        "reset_after",
        (200, {}, {"code": 0, "data": [{"id": "k", "name": "n"}]}),
    )
    with _client(url) as c:
        started = time.monotonic()
        assert c.find_dataset("n").id == "k"
        assert time.monotonic() - started >= 1.0  # waited for Retry-After
    assert len(script.hits("GET", "/datasets")) == 4  # 429, 503, reset, then success


def test_retries_are_bounded(server):
    url, script = server
    script.on("GET", "/datasets", (502, {}, b"bad gateway"))
    with _client(url, max_retries=2) as c, pytest.raises(RAGFlowUnavailableError) as info:
        c.ping()
    assert info.value.http_status == 502 and info.value.attempts == 3
    assert len(script.hits("GET", "/datasets")) == 3


def test_long_retry_after_is_not_waited_for(server):
    url, script = server
    script.on("GET", "/datasets", (429, {"Retry-After": "3600"}, {"code": 429, "message": "later"}))
    with _client(url) as c, pytest.raises(RAGFlowRateLimitedError) as info:
        c.ping()
    assert info.value.retry_after == 3600 and len(script.seen) == 1


def test_no_retry_on_4xx_and_business_errors(server):
    url, script = server
    script.on("GET", "/datasets", (400, {}, {"code": 400, "message": "bad"}))
    script.on("DELETE", "/datasets", (200, {}, {"code": 102, "message": "boom"}))
    script.on("POST", "/datasets/k/documents", (413, {"Content-Type": "text/html"}, b"too large"))
    with _client(url) as c:
        with pytest.raises(Exception) as info:
            c.ping()
        assert info.value.http_status == 400
        with pytest.raises(Exception) as info:
            c.delete_datasets(["a"])
        assert info.value.code == 102
        with pytest.raises(RAGFlowPayloadTooLargeError):
            c.upload_documents("k", [UploadFile("a.txt", io.BytesIO(b"a"))])
    assert len(script.seen) == 3


def test_upload_reset_after_send_is_ambiguous_and_not_resent(server):
    url, script = server
    script.on("POST", "/datasets/k/documents", "reset_after")
    files = [UploadFile("a.txt", io.BytesIO(b"aaa")), UploadFile("b.txt", io.BytesIO(b"bb"))]
    with _client(url) as c, pytest.raises(RAGFlowUploadAmbiguousError) as info:
        c.upload_documents("k", files)
    assert info.value.file_names == ["a.txt", "b.txt"]
    assert len(script.hits("POST", "/datasets/k/documents")) == 1


def test_upload_timeout_is_ambiguous(server):
    url, script = server
    script.on("POST", "/datasets/k/documents", "hang")
    with (
        _client(url, timeout=0.3, upload_timeout=0.3) as c,
        pytest.raises(RAGFlowUploadAmbiguousError) as info,
    ):
        c.upload_documents("k", [UploadFile("a.txt", io.BytesIO(b"a"))])
    assert "timed out" in info.value.message
    assert len(script.hits("POST", "/datasets/k/documents")) == 1


def test_upload_503_and_429_are_resent_with_rewound_sources(server, tmp_path):
    url, script = server
    ok = (
        200,
        {},
        {"code": 0, "data": [{**DOC, "name": "a.txt"}, {**DOC, "id": "d2", "name": "b.txt"}]},
    )
    script.on(
        "POST",
        "/datasets/k/documents",
        (503, {}, b"unavailable"),
        (429, {}, {"code": 429, "message": "slow"}),
        ok,
    )
    p = tmp_path / "a.txt"
    p.write_bytes(b"from disk")
    stream = io.BytesIO(b"XXfrom stream")
    stream.seek(2)
    with _client(url) as c:
        docs = c.upload_documents("k", [UploadFile("a.txt", p), UploadFile("b.txt", stream)])
    assert [d.id for d in docs] == ["d1", "d2"]
    bodies = [s.body for s in script.hits("POST", "/datasets/k/documents")]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]  # same bytes each time
    assert b"from disk" in bodies[0] and b"from stream" in bodies[0] and b"XX" not in bodies[0]


def test_upload_from_unrewindable_stream_is_not_resent(server):
    url, script = server
    script.on("POST", "/datasets/k/documents", (503, {}, b"unavailable"))

    class Once(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(b"once")

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            chunk = self.data.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    with _client(url) as c, pytest.raises(RAGFlowUnavailableError) as info:
        c.upload_documents("k", [UploadFile("a.txt", Once(), size=4)])
    assert not isinstance(info.value, RAGFlowOutcomeUnknownError)  # known: not stored
    assert len(script.seen) == 1


def test_chunked_upload_for_unknown_size(server):
    url, script = server
    script.on("POST", "/datasets/k/documents", (200, {}, {"code": 0, "data": [DOC]}))
    with _client(url) as c:
        (doc,) = c.upload_documents("k", [UploadFile("a.txt", lambda: io.BytesIO(b"abc"))])
    seen = script.hits("POST", "/datasets/k/documents")[0]
    assert doc.id == "d1" and seen.headers.get("Transfer-Encoding") == "chunked"
    assert b'filename="a.txt"' in seen.body and b"\r\n\r\nabc\r\n" in seen.body


def test_create_dataset_ambiguous_is_resolved_by_name(server):
    url, script = server
    script.on("POST", "/datasets", "reset_after")
    script.on("GET", "/datasets", (200, {}, {"code": 0, "data": [{"id": "k", "name": "KB"}]}))
    with _client(url) as c:
        assert c.create_dataset("KB").id == "k"
    assert len(script.hits("POST", "/datasets")) == 1


def test_parse_retry_meeting_its_own_lost_request_succeeds(server):
    url, script = server
    script.on(
        "POST",
        "/datasets/k/chunks",
        "reset_after",
        (
            200,
            {},
            {"code": 102, "message": "Can't parse document that is currently being processed"},
        ),
    )
    with _client(url) as c:
        c.parse_documents("k", ["d1"])  # no error: the first attempt did it
    assert len(script.hits("POST", "/datasets/k/chunks")) == 2


def test_download_errors_and_empty_file(server, tmp_path):
    url, script = server
    script.on(
        "GET",
        "/datasets/k/documents/d1",
        (200, {}, {"code": 102, "message": "This file is empty."}),
        (200, {}, {"code": 102, "message": "The dataset not own the document d1."}),
        (
            200,
            {
                "Content-Type": "application/json",
                "Content-Disposition": "attachment; filename=a.json",
            },
            b'{"code": 7}',
        ),
    )
    with _client(url) as c:
        assert c.download_document("k", "d1", tmp_path / "empty.txt") == 0
        assert (tmp_path / "empty.txt").read_bytes() == b""
        with pytest.raises(Exception, match="not own"):
            c.download_document("k", "d1", tmp_path / "x.txt")
        buf = io.BytesIO()
        assert c.download_document("k", "d1", buf) == 11  # a JSON *file* is content, not an error
        assert buf.getvalue() == b'{"code": 7}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_connection_refused_is_retried_then_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with (
        _client(f"http://127.0.0.1:{port}", max_retries=1) as c,
        pytest.raises(RAGFlowUnavailableError) as info,
    ):
        c.upload_documents("k", [UploadFile("a.txt", io.BytesIO(b"a"))])
    assert info.value.attempts == 2  # an upload that never connected is safe to resend
    assert "COMPATSECRET" not in str(info.value) and "COMPATSECRET" not in repr(c)


def test_a_server_ignoring_desc_still_lists_everything(server):
    """The newest page read first is the oldest on a server that ignores ``desc``: the listing
    then has nothing to count against and ends as before, instead of taking every later
    document for one uploaded meanwhile."""
    url, script = server
    docs = [{**DOC, "id": f"d{i}", "create_time": 1_000 + i} for i in range(5)]
    page_1 = (200, {}, {"code": 0, "data": {"docs": docs[:3], "total": 5}})
    page_2 = (200, {}, {"code": 0, "data": {"docs": docs[3:], "total": 5}})
    script.on("GET", "/datasets/k/documents", page_1, page_1, page_2)
    with _client(url) as c:
        assert [d.id for d in c.iter_documents("k", page_size=3)] == [d["id"] for d in docs]


def test_server_ignoring_page_does_not_loop_forever(server):
    url, script = server
    docs = [{**DOC, "id": f"d{i}"} for i in range(3)]
    script.on("GET", "/datasets/k/documents", (200, {}, {"code": 0, "data": {"docs": docs}}))
    with _client(url) as c:
        assert [d.id for d in c.iter_documents("k", page_size=3)] == ["d0", "d1", "d2"]
    # the newest page, then pages 1 and 2 (the same three again: the end)
    assert len(script.hits("GET", "/datasets/k/documents")) == 3


def test_delete_retry_after_lost_success_finishes_the_rest(server):
    url, script = server
    script.on(
        "DELETE",
        "/datasets/k/documents",
        "reset_after",
        (200, {}, {"code": 102, "message": "These documents do not belong to dataset k: d1"}),
        (200, {}, {"code": 0, "data": {"deleted": 1}}),
    )
    # d1 is gone (the lost attempt deleted it?) but d2 still exists: it gets deleted again.
    script.on(
        "GET",
        "/datasets/k/documents",
        (200, {}, {"code": 102, "message": "You don't own the document d1."}),
        (200, {}, {"code": 0, "data": {"docs": [{**DOC, "id": "d2"}], "total": 1}}),
    )
    with _client(url) as c:
        assert c.delete_documents("k", ["d1", "d2"]) == 2
    bodies = [json.loads(s.body) for s in script.hits("DELETE", "/datasets/k/documents")]
    assert bodies == [{"ids": ["d1", "d2"]}, {"ids": ["d1", "d2"]}, {"ids": ["d2"]}]


def test_delete_not_found_on_first_attempt_raises(server):
    url, script = server
    script.on(
        "DELETE",
        "/datasets/k/documents",
        (200, {}, {"code": 102, "message": "These documents do not belong to dataset k: d9"}),
    )
    with _client(url) as c, pytest.raises(RAGFlowNotFoundError):
        c.delete_documents("k", ["d9"])
    assert len(script.seen) == 1
