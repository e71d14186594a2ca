"""Records and the interface every source implements.

A source lists files (stat or object metadata only, no reads) and opens a streaming reader on one.
The relative POSIX ``path`` of an entry is the identity of a document on the RAGFlow side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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

    ``reason`` is one of :data:`SKIP_REASONS`. ``path`` ends with ``/`` when the item is a
    directory (or an S3 "folder"); ``""`` stands for the whole source.

    Attributes:
        path: Relative POSIX path (names that cannot be decoded are shown with ``\\xNN`` escapes).
        reason: Why the item is not in the inventory (one of :data:`SKIP_REASONS`).
        detail: Human-readable detail (the OS error, the filter that rejected it, ...).
        unlisted: True when what lies at or under ``path`` is *unknown* (a directory that could
            not be listed, a listing that broke off): the sync must not delete documents under it.

    Example:
        >>> SkippedEntry("private/", "unreadable", "Permission denied", unlisted=True).unlisted
        True
    """

    path: str
    reason: str
    detail: str = ""
    unlisted: bool = False


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
    "unstable",
)
"""Every ``SkippedEntry.reason``:

* ``filtered``: rejected by a :class:`~ragflow_dagster.sources.filters.FileFilters` rule
  (the detail names the rule);
* ``unreadable``: permission denied or I/O error while listing, stat-ing or reading;
* ``vanished``: gone between being listed and being stat-ed or read;
* ``special_file``: FIFO, socket, device, S3 folder marker, symlink not followed;
* ``symlink_outside_root`` / ``symlink_loop`` / ``broken_symlink``: symlinks not followed;
* ``name_not_decodable``: a file name that is not valid UTF-8 (cannot become a RAGFlow name);
* ``too_large``: larger than ``FileFilters.max_size``;
* ``unsafe_key``: an S3 key with ``..``, ``.`` or empty segments or a leading ``/``;
* ``unstable``: the file kept changing while it was read (its state is unknown this time).
"""


class SourceError(Exception):
    """The source as a whole cannot be listed (missing root, not a directory, no such bucket).

    Never turned into an empty inventory: an unmounted folder must not look empty.
    """


class ContentChangedError(OSError):
    """The content of an entry no longer matches the change token it was opened against."""


class KnownFingerprint(Protocol):
    """What a listing may be told about a path already (``inventory.KnownFile`` fits)."""

    @property
    def change_token(self) -> str: ...

    @property
    def sha256(self) -> str | None: ...

    @property
    def size(self) -> int | None: ...


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
        """List every file under the root (metadata only).

        The sources of this package also accept ``scan(filters=FileFilters(...))`` and then
        apply the cheap filters during the walk (pruning excluded directories); the inventory
        uses that when available and filters afterwards otherwise.
        """
        ...

    def open(self, path: str) -> BinaryIO:
        """Open a streaming binary reader on one entry; the caller closes it."""
        ...


def _entry_factory() -> Callable[..., SourceEntry]:
    """A constructor for :class:`SourceEntry` without the frozen-dataclass ``__init__`` cost.

    Listings build one entry per file; setting the slots directly halves the cost. Only for
    values already known to be valid (the sources' own hot loops).
    """
    new = object.__new__
    cls = SourceEntry
    set_path = cls.path.__set__  # type: ignore[attr-defined]
    set_size = cls.size.__set__  # type: ignore[attr-defined]
    set_modified = cls.modified.__set__  # type: ignore[attr-defined]
    set_token = cls.change_token.__set__  # type: ignore[attr-defined]
    set_sha = cls.sha256.__set__  # type: ignore[attr-defined]
    set_mime = cls.mime.__set__  # type: ignore[attr-defined]

    def make(
        path: str,
        size: int,
        modified: float,
        token: str,
        sha256: str | None = None,
        mime: str | None = None,
    ) -> SourceEntry:
        entry = new(cls)
        set_path(entry, path)
        set_size(entry, size)
        set_modified(entry, modified)
        set_token(entry, token)
        set_sha(entry, sha256)
        set_mime(entry, mime)
        return entry

    return make


new_entry = _entry_factory()
"""Fast ``new_entry(path, size, modified, change_token, sha256=None, mime=None)`` for listings."""
