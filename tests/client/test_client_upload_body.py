"""The streaming multipart body and upload batching, without a server."""

from __future__ import annotations

import email.parser
import email.policy
import io

import pytest

from ragflow_dagster.client import MultipartBody, UploadFile
from ragflow_dagster.client.upload import UploadSourceError, estimated_part_bytes, plan_batches


def _parse(body: bytes, boundary: str) -> list[tuple[str, str, bytes]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + body
    )
    out = []
    for part in msg.iter_parts():
        out.append(
            (
                part.get_param("name", header="content-disposition"),
                part.get_filename(),
                part.get_payload(decode=True),
            )
        )
    return out


class _Tracked(io.BytesIO):
    closed_count = 0

    def close(self) -> None:
        type(self).closed_count += 1
        super().close()


def test_body_is_valid_multipart_with_exact_length(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"alpha\r\n--not-a-boundary\r\n")
    stream = io.BytesIO(b"xxbeta")
    stream.seek(2)  # read from the current position
    files = [
        UploadFile("a.txt", path),
        UploadFile("b.md", stream),
        UploadFile('c "q".pdf', lambda: io.BytesIO(b"%PDF-1.4 gamma"), size=14),
        UploadFile("empty.txt", io.BytesIO(b"")),
        UploadFile("été.txt", io.BytesIO("ünï".encode())),
    ]
    body = MultipartBody(files, boundary="BOUNDARY123")
    data = b"".join(iter(body))
    assert len(data) == len(body) == body.length == body.bytes_sent
    assert body.fully_sent
    parts = _parse(data, "BOUNDARY123")
    assert [p[0] for p in parts] == ["file"] * 5
    assert [p[1] for p in parts] == ["a.txt", "b.md", "c %22q%22.pdf", "empty.txt", "été.txt"]
    assert [p[2] for p in parts] == [
        b"alpha\r\n--not-a-boundary\r\n",
        b"beta",
        b"%PDF-1.4 gamma",
        b"",
        "ünï".encode(),
    ]
    assert not stream.closed  # caller's stream stays open


def test_sources_open_lazily_and_close_when_done():
    opened: list[str] = []
    _Tracked.closed_count = 0

    def opener(name: str):
        def _open():
            opened.append(name)
            return _Tracked(b"x" * 10)

        return _open

    files = [UploadFile(f"{i}.txt", opener(str(i)), size=10) for i in range(3)]
    body = MultipartBody(files, boundary="b")
    assert opened == []
    from ragflow_dagster.client.upload import part_header

    first = body.read(len(part_header("b", files[0])) + 1)  # header of part 0 and a byte
    assert first and opened == ["0"]
    rest = body.read()
    assert opened == ["0", "1", "2"] and _Tracked.closed_count == 3
    assert len(first) + len(rest) == len(body)


def test_close_mid_body_closes_open_sources():
    _Tracked.closed_count = 0
    body = MultipartBody(
        [UploadFile("a.txt", lambda: _Tracked(b"y" * 100_000), size=100_000)], boundary="b"
    )
    body.read(1000)
    assert not body.fully_sent
    body.close()
    assert _Tracked.closed_count == 1
    with pytest.raises(ValueError):
        body.read(10)


@pytest.mark.parametrize(("content", "declared"), [(b"short", 10), (b"longer than said", 5)])
def test_size_mismatch_aborts_before_the_body_completes(content, declared):
    body = MultipartBody([UploadFile("a.txt", io.BytesIO(content), size=declared)], boundary="b")
    with pytest.raises(UploadSourceError, match="declared"):
        body.read()
    assert not body.fully_sent


def test_unknown_size_gives_no_length():
    body = MultipartBody([UploadFile("a.txt", lambda: io.BytesIO(b"abc"))], boundary="b")
    assert body.length is None
    with pytest.raises(TypeError):
        len(body)
    assert _parse(body.read(), "b")[0][2] == b"abc"


def test_unreadable_path_raises_source_error(tmp_path):
    body = MultipartBody([UploadFile("gone.txt", tmp_path / "missing.txt", size=3)], boundary="b")
    with pytest.raises(UploadSourceError) as info:
        body.read()
    assert isinstance(info.value.cause, FileNotFoundError)


def test_batches_respect_bytes_and_count_and_keep_order(tmp_path):
    files = [UploadFile(f"{i:02d}.txt", io.BytesIO(b"z" * 1000)) for i in range(10)]
    per_file = estimated_part_bytes(files[0], 1000)
    batches = list(plan_batches(files, max_request_bytes=per_file * 3 + 100, max_files=32))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [f.name for b in batches for f in b] == [f.name for f in files]
    assert [len(b) for b in plan_batches(files, max_request_bytes=10**9, max_files=4)] == [4, 4, 2]
    for batch in batches:  # the real body of each batch fits the limit
        assert len(MultipartBody(batch, boundary="0" * 32)) <= per_file * 3 + 100


def test_oversized_and_unknown_size_files_travel_alone():
    small = UploadFile("s.txt", io.BytesIO(b"s"))
    huge = UploadFile("h.bin", "/nonexistent", size=10**9)
    unknown = UploadFile("u.txt", lambda: io.BytesIO(b"u"))
    batches = list(
        plan_batches([small, huge, small, unknown, small], max_request_bytes=10**6, max_files=8)
    )
    assert [[f.name for f in b] for b in batches] == [
        ["s.txt"],
        ["h.bin"],
        ["s.txt"],
        ["u.txt"],
        ["s.txt"],
    ]


def test_upload_file_validation_and_sizes(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"12345")
    assert UploadFile("f.bin", str(p)).resolved_size() == 5
    with open(p, "rb") as fh:
        fh.read(2)
        assert UploadFile("f.bin", fh).resolved_size() == 3
    assert UploadFile("f", lambda: io.BytesIO()).resolved_size() is None
    with pytest.raises(ValueError):
        UploadFile("", str(p))
    with pytest.raises(ValueError):
        UploadFile("x", str(p), size=-1)
