"""Streaming sha256: HashingReader and sha256_file."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from ragflow_dagster.sources import HashingReader, sha256_file

DATA = os.urandom(3 * 1024 * 1024 + 17)  # more than one 1 MiB block, not a multiple of it


def test_sha256_file_from_path_and_reader(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(DATA)
    expected = hashlib.sha256(DATA).hexdigest()
    assert sha256_file(path) == expected
    assert sha256_file(str(path)) == expected
    with open(path, "rb") as f:
        f.read(10)
        assert sha256_file(f) == hashlib.sha256(DATA[10:]).hexdigest()  # from the position
        assert not f.closed
    assert sha256_file(io.BytesIO(b"")) == hashlib.sha256(b"").hexdigest()


class ReadOnly:
    """A stream with only ``read`` (like many HTTP bodies)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        return self._inner.read(n)

    def close(self) -> None:
        self.closed = True


def test_sha256_file_with_read_only_stream():
    assert sha256_file(ReadOnly(DATA)) == hashlib.sha256(DATA).hexdigest()  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["read", "readinto", "readall", "mixed"])
def test_hashing_reader_hashes_exactly_what_passes(how):
    reader = HashingReader(io.BytesIO(DATA))
    out = bytearray()
    if how == "read":
        while chunk := reader.read(65536):
            out += chunk
    elif how == "readinto":
        buf = bytearray(100_000)
        while n := reader.readinto(buf):
            out += buf[:n]
    elif how == "readall":
        out += reader.read()
    else:
        out += reader.read(5)
        buf = bytearray(1000)
        n = reader.readinto(buf)
        out += buf[:n]
        out += reader.read(None)
    assert bytes(out) == DATA
    assert reader.bytes_read == len(DATA)
    assert reader.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_hashing_reader_over_read_only_stream_and_close():
    raw = ReadOnly(b"abc" * 1000)
    with HashingReader(raw) as reader:  # type: ignore[arg-type]
        buf = bytearray(10_000)
        assert reader.readinto(buf) == 3000
        assert reader.readinto(buf) == 0
        assert reader.hexdigest() == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert raw.closed and reader.closed


def test_hashing_reader_rewind_restarts_the_hash():
    raw = io.BytesIO(b"hello world")
    reader = HashingReader(raw)
    assert reader.read(5) == b"hello"
    assert reader.tell() == 5
    assert reader.seekable()
    reader.seek(0)
    assert reader.bytes_read == 0
    assert reader.read() == b"hello world"
    assert reader.hexdigest() == hashlib.sha256(b"hello world").hexdigest()
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(3)
    assert reader.raw is raw
