"""Streaming multipart bodies for uploads: nothing is read into memory whole.

``requests`` builds ``files=`` bodies in memory, which is not acceptable for a 1 GiB file.
:class:`MultipartBody` is a small file-like object that produces the multipart body on demand,
part by part, opening each source only when its turn comes and closing what it opened as soon as
that part is done. Its length is computed up front from the file sizes, so the request carries a
``Content-Length`` (no chunked encoding) whenever every size is known.

It also counts what it handed to the connection: when a request fails, the client knows whether
the whole body had been sent (the server may have stored the files: outcome unknown) or not
(the server cannot have a complete request: safe to send again).
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Union, cast

__all__ = [
    "MultipartBody",
    "Source",
    "Stream",
    "UploadFile",
    "UploadSourceError",
    "plan_batches",
]

Stream = BinaryIO | IO[bytes] | io.RawIOBase
"""An open binary stream: a file object, an S3 body, or a reader built on ``io.RawIOBase``."""
Source = Union[str, "os.PathLike[str]", Stream, Callable[[], Stream]]
"""Where an upload's bytes come from: a path, an open stream, or a callable opening one."""

_CRLF = b"\r\n"


class UploadSourceError(Exception):
    """A source misbehaved while its bytes were being sent (internal; carries the cause).

    It deliberately does not derive from ``OSError``: the HTTP stack would otherwise mistake a
    failing local file for a broken connection.
    """

    def __init__(self, name: str, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.cause = cause


@dataclass(frozen=True)
class UploadFile:
    """One file to upload: a name for the server and where its bytes come from.

    ``source`` may be a path, an open binary stream (an S3 ``StreamingBody``, a file object...)
    or a callable returning a fresh binary stream. Paths and callables are opened lazily, only
    when the file's part of the request is being sent, and closed by the client; streams given
    directly are read from their current position and left open (the caller owns them).

    ``size`` is the number of bytes the source will produce. It is required for streams whose size
    cannot be found (no ``fileno``/``seek``) and for callables, unless you accept that such a file
    travels alone in a chunked request. When given, the source must produce exactly that many
    bytes, otherwise the request is aborted before it completes (nothing is stored).

    Example:
        >>> import io
        >>> UploadFile("notes.txt", io.BytesIO(b"hello")).resolved_size()
        5
        >>> UploadFile("big.pdf", "/data/big.pdf", size=10).resolved_size()
        10
    """

    name: str
    source: Source
    size: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("UploadFile.name must be a non-empty string")
        if self.size is not None and self.size < 0:
            raise ValueError("UploadFile.size must be >= 0")

    @property
    def is_path(self) -> bool:
        """Whether the source is a filesystem path."""
        return isinstance(self.source, (str, os.PathLike))

    @property
    def is_stream(self) -> bool:
        """Whether the source is an already open stream (owned by the caller)."""
        return self.stream is not None

    @property
    def stream(self) -> Stream | None:
        """The caller's open stream, or ``None`` when the source is a path or a callable."""
        src = self.source
        if isinstance(src, (str, os.PathLike)) or not hasattr(src, "read"):
            return None
        # anything with read() is used as a stream, even if it is callable as well
        return cast("Stream", src)

    def resolved_size(self) -> int | None:
        """The size in bytes: the declared one, else found without reading (``None``: unknown)."""
        if self.size is not None:
            return self.size
        src = self.source
        if isinstance(src, (str, os.PathLike)):
            return os.stat(src).st_size
        stream = self.stream
        if stream is not None:
            return _remaining(stream)
        return None

    @property
    def content_type(self) -> str:
        """The part's ``Content-Type``, guessed from the name."""
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"


def _remaining(stream: Any) -> int | None:
    """Bytes left in ``stream`` from its current position, without reading it."""
    try:
        pos = stream.tell()
    except (AttributeError, OSError, ValueError):
        pos = None
    try:
        st = os.fstat(stream.fileno())
        if pos is not None and st.st_size:
            return max(0, st.st_size - pos)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        if pos is None or not stream.seekable():
            return None
        end = stream.seek(0, os.SEEK_END)
        stream.seek(pos)
        return max(0, end - pos)
    except (AttributeError, OSError, ValueError):
        return None


def _quote(name: str) -> str:
    # HTML5 form encoding (what browsers, urllib3 and ragflow-sdk send): raw UTF-8 with
    # quote, CR and LF percent-escaped.
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def part_header(boundary: str, file: UploadFile, field_name: str = "file") -> bytes:
    """The bytes that open ``file``'s part (boundary line and headers)."""
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field_name}"; filename="{_quote(file.name)}"\r\n'
        f"Content-Type: {file.content_type}\r\n\r\n"
    ).encode()


def part_overhead(boundary: str, file: UploadFile) -> int:
    """Bytes a part adds on top of the file's own bytes."""
    return len(part_header(boundary, file)) + len(_CRLF)


def closing(boundary: str) -> bytes:
    """The bytes that end a multipart body."""
    return f"--{boundary}--\r\n".encode()


# A boundary is 32 hex digits; estimates made before the boundary is known use this one.
_ESTIMATE_BOUNDARY = "0" * 32


def estimated_part_bytes(file: UploadFile, size: int) -> int:
    """Bytes ``file`` adds to a request body (its size plus headers)."""
    return part_overhead(_ESTIMATE_BOUNDARY, file) + size


def plan_batches(
    files: Iterable[UploadFile], *, max_request_bytes: int, max_files: int
) -> Iterator[list[UploadFile]]:
    """Group files, in order, into requests under ``max_request_bytes`` and ``max_files``.

    A file bigger than the limit on its own travels alone, as does a file whose size is unknown
    (its request has to be chunked). Nothing is opened or read.

    Example:
        >>> import io
        >>> fs = [UploadFile(f"{i}.txt", io.BytesIO(b"x" * 400)) for i in range(5)]
        >>> [len(b) for b in plan_batches(fs, max_request_bytes=1500, max_files=32)]
        [2, 2, 1]
    """
    if max_files < 1:
        raise ValueError("max_files must be >= 1")
    batch: list[UploadFile] = []
    used = len(closing(_ESTIMATE_BOUNDARY))
    base = used
    for f in files:
        size = f.resolved_size()
        if size is None:
            if batch:
                yield batch
                batch, used = [], base
            yield [f]
            continue
        need = estimated_part_bytes(f, size)
        if batch and (used + need > max_request_bytes or len(batch) >= max_files):
            yield batch
            batch, used = [], base
        batch.append(f)
        used += need
    if batch:
        yield batch


class _Part:
    __slots__ = ("file", "header", "owned", "sent", "size", "stream")

    def __init__(self, file: UploadFile, header: bytes, size: int | None) -> None:
        self.file = file
        self.header = header
        self.size = size
        self.stream: Any = None
        self.owned = False
        self.sent = 0


class MultipartBody:
    """A ``multipart/form-data`` request body produced lazily from :class:`UploadFile` s.

    Read it like a file (``read(n)``) or iterate over it; ``len()`` gives the exact byte count
    when every size is known (``length`` is ``None`` otherwise). ``close()`` closes every stream
    the body opened itself; it is safe to call more than once.

    Example:
        >>> import io
        >>> body = MultipartBody([UploadFile("a.txt", io.BytesIO(b"hi"))], boundary="b")
        >>> data = body.read()
        >>> len(data) == len(body), data.endswith(b"--b--\\r\\n"), body.fully_sent
        (True, True, True)
    """

    def __init__(
        self,
        files: Sequence[UploadFile],
        *,
        boundary: str,
        sizes: Sequence[int | None] | None = None,
        field_name: str = "file",
    ) -> None:
        if not files:
            raise ValueError("a multipart body needs at least one file")
        self.boundary = boundary
        self.content_type = f"multipart/form-data; boundary={boundary}"
        if sizes is None:
            sizes = [f.resolved_size() for f in files]
        self._parts = [
            _Part(f, part_header(boundary, f, field_name), s)
            for f, s in zip(files, sizes, strict=True)
        ]
        self._closing = closing(boundary)
        if all(p.size is not None for p in self._parts):
            self.length: int | None = sum(
                len(p.header) + int(p.size or 0) + len(_CRLF) for p in self._parts
            ) + len(self._closing)
        else:
            self.length = None
        self.bytes_sent = 0
        self._index = 0
        self._stage = 0  # 0 header, 1 data, 2 trailer CRLF
        self._offset = 0  # offset inside header/trailer
        self._buffer = b""
        self._done = False
        self._closed = False

    # ------------------------------------------------------------------ file-like API
    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("length unknown (a source has no known size)")
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(256 * 1024)
            if not chunk:
                return
            yield chunk

    def readable(self) -> bool:
        """File-like protocol: always readable."""
        return True

    @property
    def fully_sent(self) -> bool:
        """Whether the whole body (up to the closing boundary) has been handed out."""
        return self._done

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes of the body (all the rest when ``size`` < 0)."""
        if self._closed and not self._done:
            raise ValueError("read from a closed MultipartBody")
        if size is None or size < 0:
            out = bytearray()
            while True:
                chunk = self._read_some(1024 * 1024)
                if not chunk:
                    return bytes(out)
                out += chunk
        first = self._read_some(size)
        if len(first) >= size or not first:
            return first
        out = bytearray(first)
        while len(out) < size:
            chunk = self._read_some(size - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def close(self) -> None:
        """Close every stream this body opened (sources given as open streams stay open)."""
        self._closed = True
        for part in self._parts:
            self._release(part)

    def __enter__(self) -> MultipartBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _read_some(self, limit: int) -> bytes:
        while not self._done:
            if self._index >= len(self._parts):
                data = self._closing[self._offset : self._offset + limit]
                self._offset += len(data)
                if self._offset >= len(self._closing):
                    self._done = True
                return self._count(data)
            part = self._parts[self._index]
            if self._stage == 0:
                data = part.header[self._offset : self._offset + limit]
                self._offset += len(data)
                if self._offset >= len(part.header):
                    self._stage, self._offset = 1, 0
                    self._open(part)
                if data:
                    return self._count(data)
                continue
            if self._stage == 1:
                data = self._read_source(part, limit)
                if data:
                    return self._count(data)
                self._release(part)
                self._stage, self._offset = 2, 0
                continue
            data = _CRLF[self._offset : self._offset + limit]
            self._offset += len(data)
            if self._offset >= len(_CRLF):
                self._index += 1
                self._stage, self._offset = 0, 0
            return self._count(data)
        return b""

    def _count(self, data: bytes) -> bytes:
        self.bytes_sent += len(data)
        return data

    def _open(self, part: _Part) -> None:
        f = part.file
        try:
            src, stream = f.source, f.stream
            if isinstance(src, (str, os.PathLike)):
                part.stream = open(src, "rb")  # noqa: SIM115 - closed with the part
                part.owned = True
            elif stream is not None:
                part.stream = stream
            elif callable(src):
                part.stream = src()
                part.owned = True
            else:
                raise TypeError(f"{type(src).__name__!r} object is not callable")
        except Exception as exc:
            raise UploadSourceError(f.name, f"cannot open source: {exc}", exc) from exc

    def _read_source(self, part: _Part, limit: int) -> bytes:
        if part.size is not None:
            limit = min(limit, part.size - part.sent)
        if limit <= 0:
            # Declared size reached: the source must be exhausted too.
            if part.size is not None and self._try_read(part, 1):
                raise UploadSourceError(
                    part.file.name, f"source produced more than the declared {part.size} bytes"
                )
            return b""
        data = self._try_read(part, limit)
        if not data:
            if part.size is not None and part.sent < part.size:
                raise UploadSourceError(
                    part.file.name,
                    f"source ended after {part.sent} of the declared {part.size} bytes",
                )
            return b""
        part.sent += len(data)
        return data

    def _try_read(self, part: _Part, limit: int) -> bytes:
        try:
            data = part.stream.read(limit)
        except Exception as exc:
            raise UploadSourceError(part.file.name, f"read failed: {exc}", exc) from exc
        if data is None:  # non-blocking stream with nothing ready: treat as end
            return b""
        if isinstance(data, str):
            raise UploadSourceError(part.file.name, "source is a text stream; open it in 'rb'")
        return bytes(data)

    def _release(self, part: _Part) -> None:
        if part.owned and part.stream is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                part.stream.close()
        if part.owned:
            part.stream = None
            part.owned = False
