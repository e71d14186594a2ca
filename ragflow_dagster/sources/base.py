"""Records and the base class every source implements.

A source lists files (stat or object metadata only, no reads) and opens a streaming reader on one.
The relative POSIX ``path`` of an entry is the identity of a document on the RAGFlow side. What a
source can do beyond that (resumable listing, known fingerprints, conditional reads, ...) is
declared on its class (:class:`Source`), never probed.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, ClassVar, Protocol

from ragflow_dagster.drafts import draft_class

if TYPE_CHECKING:
    from ragflow_dagster.sources.filters import FileFilters


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


ENTRY_DRAFT = draft_class(SourceEntry)
"""The mutable twin of :class:`SourceEntry` (see :mod:`ragflow_dagster.drafts`): listings that
build an entry per file store its fields and then set ``__class__ = SourceEntry`` (a frozen
dataclass's ``__init__`` costs three times as much)."""


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


def unsafe_path_reason(rel: str) -> str | None:
    """Why a listed key cannot be a relative path of a source (``None`` when it can).

    Example:
        >>> unsafe_path_reason("a/../b"), unsafe_path_reason("a/b")
        ("'..' segment", None)
    """
    if not rel:
        return "empty path"
    if rel[0] == "/":
        return "leading '/'"
    if "//" in rel:
        return "empty path segment"
    if "." in rel:
        padded = "/" + rel + "/"
        if "/../" in padded:
            return "'..' segment"
        if "/./" in padded:
            return "'.' segment"
    return None


@dataclass(frozen=True, slots=True)
class ObjectMetadata:
    """An object's user metadata (``x-amz-meta-*``, names lower-cased) and tags."""

    user: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


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


Batch = tuple[list[SourceEntry], list[SkippedEntry]]
"""One ``(entries, skipped)`` batch of a listing."""

Page = tuple[list[SourceEntry | SkippedEntry], str | None]
"""One page of a resumable listing: its records and the cursor to resume after it."""


class Source(abc.ABC):
    """What the sync needs from a place where documents live.

    A source lists files by metadata only and opens a streaming reader on one. What a source
    can do beyond that is *declared* in class attributes, never probed:

    * ``change_token_is_content_hash``: equal change tokens imply equal content (S3 ETags), so
      moves are recognised without hashing and the inventory does not read files to hash them;
    * ``applies_filters``: :meth:`scan_batches` / :meth:`scan` apply the cheap filters
      themselves (else the listing adapter applies them to every record afterwards);
    * ``supports_known_fingerprints``: :meth:`scan_batches` takes ``known=`` and fills in the
      known sha256 of unchanged entries while listing;
    * ``supports_resumable_listing``: the source is a :class:`PagedSource`, whose
      ``iter_pages`` pages through the listing and resumes after a cursor;
    * ``supports_conditional_open``: :meth:`open` honours ``expected_token`` (raises
      :class:`ContentChangedError` when the entry changed since it was listed);
    * ``supports_stat``: :meth:`stat` gives a fresh entry for one path;
    * ``supports_object_metadata``: :meth:`object_metadata` gives one object's user metadata and
      tags (S3), one request per kind asked for;
    * ``reads_wait_on_network``: each read waits on a round trip (object stores, file servers),
      so the inventory reads many files at once; when False (a local folder), small files are
      read one after the other (thread hand-offs under the GIL cost more than reading a small
      file from the page cache) and only large ones side by side.

    A subclass implements :attr:`uri`, :meth:`uri_for`, :meth:`open` and one of
    :meth:`scan_batches` or :meth:`scan` (each has a default built on the other). Listing goes
    through :class:`~ragflow_dagster.sources.listing.Listing`, which honours these
    declarations for the inventory and the sensor alike.

    Example:
        >>> import io
        >>> class Dict(Source):
        ...     def __init__(self, files): self.files = files
        ...     @property
        ...     def uri(self): return "dict://"
        ...     def uri_for(self, path): return "dict://" + path
        ...     def scan(self, filters=None):
        ...         for p, data in self.files.items():
        ...             yield SourceEntry(p, len(data), 0.0, f"{len(data)}-0")
        ...     def open(self, path, *, expected_token=None): return io.BytesIO(self.files[path])
        >>> [e.path for e in Dict({"a.txt": b"hi"}).scan()]
        ['a.txt']
    """

    change_token_is_content_hash: ClassVar[bool] = False
    applies_filters: ClassVar[bool] = False
    supports_known_fingerprints: ClassVar[bool] = False
    supports_resumable_listing: ClassVar[bool] = False
    supports_conditional_open: ClassVar[bool] = False
    supports_stat: ClassVar[bool] = False
    supports_object_metadata: ClassVar[bool] = False
    reads_wait_on_network: ClassVar[bool] = True

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """URI of the root, e.g. ``file:///data/docs`` or ``s3://bucket/prefix``."""

    @abc.abstractmethod
    def uri_for(self, path: str) -> str:
        """URI of one entry (root URI + ``/`` + relative path)."""

    @abc.abstractmethod
    def open(self, path: str, *, expected_token: str | None = None) -> BinaryIO:
        """Open a streaming binary reader on one entry; the caller closes it.

        Args:
            path: Relative path as listed.
            expected_token: The change token it was listed with; sources that declare
                ``supports_conditional_open`` raise :class:`ContentChangedError` when it no
                longer matches, the others ignore it.
        """

    def scan(self, filters: FileFilters | None = None) -> Iterator[SourceEntry | SkippedEntry]:
        """List every file under the root (metadata only), one record per file or skip.

        Args:
            filters: Cheap filters; applied here only by sources that declare
                ``applies_filters`` (the listing adapter applies them otherwise).

        Raises:
            SourceError: The source cannot be listed at all.
        """
        if type(self).scan_batches is Source.scan_batches:
            raise TypeError(f"{type(self).__name__} must implement scan() or scan_batches()")
        for entries, skipped in self.scan_batches(filters):
            yield from skipped
            yield from entries

    def scan_batches(
        self,
        filters: FileFilters | None = None,
        *,
        known: Mapping[str, KnownFingerprint] | None = None,
    ) -> Iterator[Batch]:
        """Like :meth:`scan`, in ``(entries, skipped)`` batches (faster to consume).

        Args:
            filters: As for :meth:`scan`.
            known: Fingerprints by path; only sources declaring ``supports_known_fingerprints``
                are passed one (and fill in the known sha256 of unchanged entries).
        """
        if type(self).scan is Source.scan:
            raise TypeError(f"{type(self).__name__} must implement scan() or scan_batches()")
        entries: list[SourceEntry] = []
        skipped: list[SkippedEntry] = []
        for item in self.scan(filters):
            if isinstance(item, SkippedEntry):
                skipped.append(item)
            else:
                entries.append(item)
            if len(entries) >= 10_000:
                yield entries, skipped
                entries, skipped = [], []
        yield entries, skipped

    def stat(self, path: str) -> SourceEntry:
        """A fresh entry for one path (sources declaring ``supports_stat``).

        Raises:
            FileNotFoundError: No such entry.
            OSError: It cannot be looked at.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot stat one path")

    def object_metadata(
        self, path: str, *, metadata: bool = True, tags: bool = True
    ) -> ObjectMetadata:
        """User metadata and tags of one object (sources declaring ``supports_object_metadata``).

        Raises:
            FileNotFoundError: No such object.
            OSError: It cannot be looked at.
        """
        raise NotImplementedError(f"{type(self).__name__} has no object metadata")


class PagedSource(Source):
    """A source whose listing pages and resumes after a cursor (S3, walked fsspec trees).

    Declares ``supports_resumable_listing``; the listing adapter pages through
    :meth:`iter_pages` when a caller asks for a resumable listing (a sensor tick with a budget).
    """

    supports_resumable_listing: ClassVar[bool] = True

    @abc.abstractmethod
    def iter_pages(
        self, *, start_after: str | None = None, filters: FileFilters | None = None
    ) -> Iterator[Page]:
        """Page through the listing.

        Args:
            start_after: A cursor (from a previous page, or :meth:`cursor_after`) to resume
                after; ``None`` starts from the beginning.
            filters: As for :meth:`Source.scan`.

        Yields:
            ``(records, resume)``: one page and the cursor to continue after it (``None`` once
            the listing is finished). When the listing breaks off, the last page holds an
            ``unlisted`` skipped entry for ``""`` and the cursor to retry from.
        """

    def cursor_after(self, path: str) -> str:
        """The ``start_after`` cursor that resumes the listing right after ``path``."""
        return path


def new_entry(
    path: str,
    size: int,
    modified: float,
    token: str,
    sha256: str | None = None,
    mime: str | None = None,
) -> SourceEntry:
    """A :class:`SourceEntry` without the frozen-dataclass ``__init__`` cost, for values already
    known to be valid (the sources' own listing loops).

    Example:
        >>> new_entry("a.txt", 3, 0.0, "3-0") == SourceEntry("a.txt", 3, 0.0, "3-0")
        True
    """
    entry = ENTRY_DRAFT()
    entry.path = path
    entry.size = size
    entry.modified = modified
    entry.change_token = token
    entry.sha256 = sha256
    entry.mime = mime
    entry.__class__ = SourceEntry
    return entry


__all__ = [
    "SKIP_REASONS",
    "Batch",
    "ContentChangedError",
    "KnownFingerprint",
    "ObjectMetadata",
    "Page",
    "PagedSource",
    "SkippedEntry",
    "Source",
    "SourceEntry",
    "SourceError",
    "new_entry",
    "unsafe_path_reason",
]
