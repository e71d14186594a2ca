"""Streaming sha256: hash a file once, or hash while a stream is consumed (e.g. uploaded).

Example:
    >>> import io
    >>> reader = HashingReader(io.BytesIO(b"abc"))
    >>> reader.read()
    b'abc'
    >>> reader.hexdigest()[:12], reader.bytes_read
    ('ba7816bf8f01', 3)
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

BLOCK_SIZE = 1 << 20
"""Read size used for hashing (1 MiB)."""


class HashingReader(io.RawIOBase):
    """A binary reader that computes the sha256 and byte count of what passes through it.

    Wrap the stream handed to an upload: when the upload has consumed it, ``hexdigest()`` is the
    hash of exactly the bytes sent, so a file is read once for both. Rewinding to the start with
    ``seek(0)`` (for a retried upload) restarts the hash when the underlying stream can seek.

    Attributes:
        raw: The wrapped stream (closed by :meth:`close`).

    Example:
        >>> import io
        >>> with HashingReader(io.BytesIO(b"hello")) as r:
        ...     _ = r.read(2); _ = r.read()
        ...     r.bytes_read, r.hexdigest()[:8]
        (5, '2cf24dba')
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw = raw
        self._hash = hashlib.sha256()
        self._count = 0

    # -- results -------------------------------------------------------------------------
    @property
    def bytes_read(self) -> int:
        """Number of bytes read through this wrapper so far."""
        return self._count

    def hexdigest(self) -> str:
        """Hex sha256 of the bytes read so far (all of them once the stream is exhausted)."""
        return self._hash.hexdigest()

    # -- reading ---------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.raw.read() if size is None or size < 0 else self.raw.read(size)
        if data:
            self._hash.update(data)
            self._count += len(data)
        return data or b""

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: WriteableBuffer) -> int:
        inner = getattr(self.raw, "readinto", None)
        view = memoryview(buffer).cast("B")
        if inner is not None:
            try:
                n = inner(view)
            except (io.UnsupportedOperation, NotImplementedError):
                inner = None
            else:
                n = n or 0
                if n:
                    self._hash.update(view[:n])
                    self._count += n
                return n
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    # -- positioning (rewind only) ------------------------------------------------------------
    def seekable(self) -> bool:
        try:
            return bool(self.raw.seekable())
        except (AttributeError, ValueError):
            return False

    def tell(self) -> int:
        return self._count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Rewind to the start (restarting the hash); other positions are not supported."""
        if whence == io.SEEK_CUR and offset == 0:
            return self._count
        if whence != io.SEEK_SET or offset != 0:
            raise io.UnsupportedOperation("HashingReader can only rewind to the start")
        self.raw.seek(0)
        self._hash = hashlib.sha256()
        self._count = 0
        return 0

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


def sha256_file(path_or_reader: str | os.PathLike[str] | BinaryIO) -> str:
    """Hex sha256 of a file, streamed in 1 MiB blocks.

    Args:
        path_or_reader: A path (opened and closed here) or a binary reader (read from its current
            position to the end, left open).

    Returns:
        The hex digest.

    Example:
        >>> import io
        >>> sha256_file(io.BytesIO(b""))[:16]
        'e3b0c44298fc1c14'
    """
    if isinstance(path_or_reader, (str, os.PathLike)):
        with open(path_or_reader, "rb", buffering=0) as f:
            return _digest(f)
    return _digest(path_or_reader)


def _digest(reader: BinaryIO) -> str:
    h = hashlib.sha256()
    readinto = getattr(reader, "readinto", None)
    if readinto is not None:
        buf = bytearray(BLOCK_SIZE)
        view = memoryview(buf)
        try:
            while True:
                n = readinto(view)
                if not n:
                    return h.hexdigest()
                h.update(view[:n])
        except (io.UnsupportedOperation, NotImplementedError):
            pass
    while True:
        data = reader.read(BLOCK_SIZE)
        if not data:
            return h.hexdigest()
        h.update(data)


__all__ = ["BLOCK_SIZE", "HashingReader", "sha256_file"]
