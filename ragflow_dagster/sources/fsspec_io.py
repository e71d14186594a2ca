"""Streaming reads for :class:`~ragflow_dagster.sources.fsspec.FsspecSource`.

:class:`FsspecReader` wraps an fsspec file so that every failure surfaces as an ``OSError``
scrubbed of credentials; :func:`open_webdav_stream` reads a WebDAV file by a streamed GET.

Example:
    >>> import io
    >>> from ragflow_dagster.sources.secrets import Scrubber
    >>> FsspecReader(io.BytesIO(b"hi"), path="a.txt", scrub=Scrubber()).read()
    b'hi'
"""

from __future__ import annotations

import contextlib
import errno
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

from ragflow_dagster.sources.secrets import Scrubber


def open_webdav_stream(fs: Any, full: str) -> Any:
    """Open a file of a ``webdav4`` filesystem as a streamed GET (the caller closes it).

    webdav4's own ``open`` looks an escaped path up among unescaped ones, so names holding
    ``#``, ``%`` or ``?`` are not found; this streams the GET through its client instead (same
    auth, same retries).

    Raises:
        FileNotFoundError: 404 / 410.
        OSError: Any other error status.
    """
    from webdav4.client import ResourceNotFound
    from webdav4.stream import IterStream

    client = fs.client
    stream = IterStream(client, client.join_url(full))
    try:
        opened = stream.__enter__()
    except ResourceNotFound:
        raise FileNotFoundError(errno.ENOENT, "no such file", full) from None
    response = opened._initial_response
    status = response.status_code if response is not None else 0
    if status >= 400:
        opened.close()
        if status in (404, 410):
            raise FileNotFoundError(errno.ENOENT, "no such file", full)
        raise OSError(errno.EIO, f"GET answered {status}", full)
    return opened


class FsspecReader(io.RawIOBase):
    """A streaming reader over an fsspec file; every failure surfaces as a scrubbed ``OSError``.

    Attributes:
        path: The relative path it reads.
    """

    def __init__(
        self,
        raw: Any,
        *,
        path: str,
        scrub: Scrubber,
        lock: contextlib.AbstractContextManager[Any] | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self.path = path
        self._scrub = scrub
        self._lock = lock if lock is not None else contextlib.nullcontext()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            with self._lock:
                data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "gone while read", self.path) from None
        except Exception as exc:
            detail = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            raise OSError(errno.EIO, f"read failed: {self._scrub(detail)}", self.path) from None
        return data or b""

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            if not self.closed:
                with self._lock:
                    self._raw.close()
        except Exception:  # closing a read-only remote file must not fail the read
            pass
        finally:
            super().close()


__all__ = ["FsspecReader", "open_webdav_stream"]
