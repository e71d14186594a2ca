"""Records and the interface every source implements.

A source lists files (stat or object metadata only, no reads) and opens a streaming reader on one.
The relative POSIX ``path`` of an entry is the identity of a document on the RAGFlow side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One file of a source.

    Attributes:
        path: Relative POSIX path inside the source root; the identity of the document.
        size: Size in bytes.
        modified: Modification time, seconds since the epoch (UTC).
        change_token: Cheap token that changes when the content may have changed
            (``"<size>-<mtime_ns>"`` for files, the ETag for S3 objects).
        sha256: Hex sha256 of the content when known, else ``None``.
        mime: MIME type when detected, else ``None``.
    """

    path: str
    size: int
    modified: float
    change_token: str
    sha256: str | None = None
    mime: str | None = None


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """A listed item that is not part of the inventory, and why.

    ``reason`` is one of :data:`SKIP_REASONS`.
    """

    path: str
    reason: str
    detail: str = ""


SKIP_REASONS = (
    "filtered",
    "unreadable",
    "vanished",
    "special_file",
    "symlink_outside_root",
    "symlink_loop",
    "broken_symlink",
    "name_not_decodable",
    "too_large",
    "unsafe_key",
)


@runtime_checkable
class Source(Protocol):
    """What the sync needs from a place where documents live."""

    @property
    def uri(self) -> str:
        """URI of the root, e.g. ``file:///data/docs`` or ``s3://bucket/prefix``."""
        ...

    @property
    def change_token_is_content_hash(self) -> bool:
        """True when equal change tokens imply equal content (S3 ETags), so moves can be
        recognised without hashing."""
        ...

    def uri_for(self, path: str) -> str:
        """URI of one entry (root URI + ``/`` + relative path)."""
        ...

    def scan(self) -> Iterator[SourceEntry | SkippedEntry]:
        """List every file under the root (metadata only)."""
        ...

    def open(self, path: str) -> BinaryIO:
        """Open a streaming binary reader on one entry; the caller closes it."""
        ...
