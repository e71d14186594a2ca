"""Any fsspec filesystem as a source: WebDAV, Azure Blob, SFTP, GCS, SMB, memory, ...

One source on top of `fsspec <https://filesystem-spec.readthedocs.io>`_ reaches every system with
an fsspec implementation, with the same contract as the local and S3 sources: stable relative
POSIX paths, listing by metadata only (never reading content), a cheap change token, streamed
reads, the same filters and skip reasons, ``complete`` / ``unlisted_prefixes`` when part of the
listing fails, and a resumable listing where the tree is walked.

Change tokens, chosen per protocol (``change_token="auto"``; or name one kind):

==================  ===================================  ================  ======================
protocol            token (``auto``)                     content hash?     extra
==================  ===================================  ================  ======================
``webdav+http(s)``  ``etag:<getetag>``, else size+mtime  no                ``[webdav]`` (webdav4)
``az``, ``abfs``    ``md5:<Content-MD5>``, else          no (yes with      ``[azure]`` (adlfs)
                    ``etag:<ETag>``                      ``"md5"``)
``gcs``, ``gs``     ``md5:<md5Hash>``                    yes               ``[gcs]`` (gcsfs)
``sftp``, ``ssh``   ``<size>-<mtime_ns>`` (1 s mtime)    no                ``[sftp]`` (paramiko)
``smb``             ``<size>-<mtime_ns>``                no                ``[smb]`` (smbprotocol)
``memory`` / other  ``<size>-<mtime_ns>``                no                ``[fsspec]``
==================  ===================================  ================  ======================

``change_token`` may also be ``"etag"``, ``"md5"``, ``"version"`` (object version / generation)
or ``"size_mtime"``. A named kind missing from an entry's metadata makes that entry
``unreadable`` (and protected from deletion) rather than silently weaker; ``"md5"`` declares the
tokens content hashes (moves recognised without hashing, no read before upload).

Listing: hierarchical filesystems are walked directory by directory (``listing="walk"``: one
``ls`` per directory, excluded directories never entered, a directory that cannot be listed
becomes an ``unlisted`` gap, and the walk is in path order so it can resume after any path);
object stores are listed flat in one ``find`` (``listing="flat"``; a failure then fails the
whole listing with :class:`~ragflow_dagster.sources.base.SourceError`).

Credentials go in ``storage_options`` (or the environment the implementation reads, e.g.
``AZURE_STORAGE_CONNECTION_STRING``), never in the URI: a URI with a password is refused. They
never appear in :attr:`FsspecSource.uri`, ``uri_for``, ``repr``, skipped-entry details or
exception texts (every message is scrubbed of the secret values).

Example:
    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> fs.pipe("/docs/a.txt", b"hello")
    >>> src = FsspecSource("memory://docs")
    >>> [(e.path, e.size) for e in src.scan()], src.uri
    ([('a.txt', 5)], 'memory://docs')
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from ragflow_dagster.sources.base import (
    Batch,
    ContentChangedError,
    KnownFingerprint,
    Page,
    PagedSource,
    SkippedEntry,
    SourceEntry,
    SourceError,
    unsafe_path_reason,
)
from ragflow_dagster.sources.filters import FileFilters
from ragflow_dagster.sources.fsspec_io import FsspecReader, open_webdav_stream
from ragflow_dagster.sources.fsspec_listing import FsspecListing
from ragflow_dagster.sources.fsspec_protocols import (
    AUTO_TOKENS,
    CONTENT_KINDS,
    EXTRAS,
    FLAT_PROTOCOLS,
    ONE_AT_A_TIME,
    URL_ESCAPES,
    ListingMode,
    TokenKind,
    family,
    fsspec_config,
    parse_uri,
)
from ragflow_dagster.sources.secrets import Scrubber

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_PAGE = 1000


class FsspecSource(FsspecListing, PagedSource):
    """Files under a path of any fsspec filesystem, identified by their relative POSIX path.

    Args:
        url_or_filesystem: A URI (``webdav+https://host/dav/docs``, ``az://container/prefix``,
            ``sftp://user@host:2222/srv/docs``, ``gcs://bucket/prefix``, ``smb://host/share/dir``,
            ``memory://docs``) or a ready ``fsspec.AbstractFileSystem``.
        root: With a filesystem instance: the path to list (default: the filesystem's root).
        storage_options: Options of the implementation, credentials included (``auth=``,
            ``password=``, ``account_key=``, ``connection_string=``, ``key_filename=``...).
        change_token: ``"auto"`` (per protocol, see the module table) or one kind.
        listing: ``"auto"`` (flat for object stores, walk otherwise), ``"walk"`` or ``"flat"``.
        page_size: Records per page of :meth:`iter_pages` / :meth:`scan_batches`.

    Raises:
        ValueError: A URI with a password or a query string, an unknown protocol, a bad option.
        ImportError: The protocol's implementation is not installed (the message names the
            extra: ``pip install 'ragflow-dagster[webdav]'``).
        SourceError: An implementation that connects at once (SFTP) cannot connect.

    Example:
        >>> src = FsspecSource("webdav+https://cloud.example/remote.php/dav/files/me/Docs",
        ...                    storage_options={"auth": ("me", "app-password")})
        >>> src.uri, src.change_token_is_content_hash
        ('webdav+https://cloud.example/remote.php/dav/files/me/Docs', False)
    """

    applies_filters = True
    supports_known_fingerprints = True
    supports_conditional_open = True
    supports_stat = True
    # supports_resumable_listing (PagedSource): in path order, after any path

    def __init__(
        self,
        url_or_filesystem: str | AbstractFileSystem,
        *,
        root: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        change_token: TokenKind = "auto",
        listing: ListingMode = "auto",
        page_size: int = _PAGE,
    ) -> None:
        options = dict(storage_options or {})
        self._scrubber = Scrubber.from_options(options, more=fsspec_config())
        if change_token not in ("auto", "etag", "md5", "version", "size_mtime"):
            raise ValueError(
                f"change_token must be auto, etag, md5, version or size_mtime, not {change_token!r}"
            )
        if listing not in ("auto", "walk", "flat"):
            raise ValueError(f"listing must be auto, walk or flat, not {listing!r}")
        if not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, got {page_size!r}")
        if isinstance(url_or_filesystem, (str, os.PathLike)):
            text = os.fspath(url_or_filesystem)
            if root is not None:
                raise ValueError("root= is only for a filesystem instance; put it in the URI")
            try:
                fs, root_path, protocol, display = parse_uri(text, options)
            except (ValueError, ImportError, SourceError) as exc:
                raise type(exc)(self._scrubber(str(exc))) from None
        else:
            if options:
                raise ValueError("storage_options are only for a URI; configure the instance")
            fs = url_or_filesystem
            # fsspec instances keep their keyword arguments: their secrets are scrubbed too
            own = getattr(fs, "storage_options", None) or {}
            self._scrubber = Scrubber.from_options(own, more=fsspec_config())
            proto = fs.protocol
            protocol = proto if isinstance(proto, str) else proto[0]
            root_path = fs._strip_protocol(root or "")
            display = f"{protocol}://{root_path.lstrip('/')}".rstrip("/")
            if protocol in ("memory", "file", "local", "sftp", "ssh"):
                display = f"{protocol}://{root_path}".rstrip("/")
        self.fs = fs
        self.protocol = protocol
        self.root = root_path.rstrip("/") if root_path not in ("/", "") else root_path
        self._root_key = self.root.strip("/")
        self._uri = display
        fam = family(protocol)
        if listing == "auto":
            self.listing = "flat" if protocol in FLAT_PROTOCOLS else "walk"
        else:
            self.listing = listing
        if change_token == "auto":
            self._token_kinds = AUTO_TOKENS.get(fam, ("size_mtime",))
        else:
            self._token_kinds = (change_token,)
        self.change_token = change_token
        self.page_size = page_size
        # webdav4 puts paths into URLs as they are: "%", "#" and "?" must be escaped first
        self._escape = URL_ESCAPES if fam == "webdav" else None
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if fam in ONE_AT_A_TIME else contextlib.nullcontext()
        )

    # -- declared capabilities -------------------------------------------------------------------
    @property  # type: ignore[override]
    def change_token_is_content_hash(self) -> bool:  # type: ignore[override]
        """True when every token kind in use is a content hash (``md5``, S3 ETags)."""
        kinds = set(self._token_kinds)
        if family(self.protocol) == "s3" and kinds == {"etag"}:
            return True
        return kinds <= CONTENT_KINDS

    def __repr__(self) -> str:
        return (
            f"FsspecSource({self.uri!r}, change_token={self.change_token!r}, "
            f"listing={self.listing!r})"
        )

    @property
    def uri(self) -> str:
        """The URI of the root, without credentials or query string."""
        return self._uri

    def uri_for(self, path: str) -> str:
        """URI of one entry (path percent-encoded)."""
        return self._uri.rstrip("/") + "/" + quote(path)

    # -- helpers -----------------------------------------------------------------------------------
    # -- listing -----------------------------------------------------------------------------------
    def scan(self, filters: FileFilters | None = None) -> Iterator[SourceEntry | SkippedEntry]:
        """List every file under the root (metadata only), applying the cheap filters
        (default: ``FileFilters()``, i.e. everything but hidden files and folders).

        Raises:
            SourceError: The root is missing, not a directory, or cannot be listed at all.
        """
        for entries, skipped in self.scan_batches(filters):
            yield from skipped
            yield from entries

    def scan_batches(
        self,
        filters: FileFilters | None = None,
        *,
        known: Mapping[str, KnownFingerprint] | None = None,
    ) -> Iterator[Batch]:
        """Like :meth:`scan`, in ``(entries, skipped)`` pages of up to ``page_size`` records.

        Args:
            filters: As for :meth:`scan`.
            known: Fingerprints by path: an entry whose token and size match gets the known
                ``sha256`` as it is listed.
        """
        pages = (
            self._flat(filters, known, None)
            if self.listing == "flat"
            else self._walk(None, filters, known)
        )
        for entries, skipped, _resume in pages:
            yield entries, skipped

    def iter_pages(
        self, *, start_after: str | None = None, filters: FileFilters | None = None
    ) -> Iterator[Page]:
        """Page through the listing in path order, resuming after ``start_after``.

        A walk resumes cheaply (it re-lists only the directories on the way to the cursor); a
        flat listing lists everything again and skips up to the cursor.

        Args:
            start_after: A relative path (the last one handled) to resume after.
            filters: As for :meth:`scan`.

        Yields:
            ``(records, resume)`` as :meth:`PagedSource.iter_pages` describes.
        """
        if self.listing == "flat":
            pages = self._flat(filters, None, start_after)
        else:
            pages = self._walk(start_after, filters, None)
        for entries, skipped, resume in pages:
            yield [*skipped, *entries], resume

    # -- single entries ----------------------------------------------------------------------------
    def _path(self, path: str) -> str:
        if not path or unsafe_path_reason(path) is not None or path.endswith("/"):
            raise FileNotFoundError(errno.ENOENT, "not a relative path of this source", path)
        return self._full(path)

    def stat(self, path: str) -> SourceEntry:
        """A fresh entry for one path (``fs.info``).

        Raises:
            FileNotFoundError: No such file.
            OSError: It cannot be looked at, is not a file, or has no change token.
        """
        full = self._path(path)
        try:
            with self._lock:
                info = self.fs.info(full)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
        except Exception as exc:
            raise OSError(errno.EIO, f"cannot stat: {self._why(exc)}", path) from None
        if info.get("type") != "file":
            raise OSError(errno.EINVAL, f"not a regular file ({info.get('type')!r})", path)
        size = int(info.get("size") or 0)
        token, modified = self._token(info, size)
        if token is None:
            raise OSError(errno.EIO, "no change token in the metadata", path)
        return SourceEntry(path, size, modified, token)

    def open(self, path: str, *, expected_token: str | None = None) -> BinaryIO:
        """Open one file as a stream; the caller closes it.

        Args:
            path: Relative path as listed.
            expected_token: The token it was listed with: checked against fresh metadata
                before reading (:class:`ContentChangedError` when it changed).

        Raises:
            FileNotFoundError: No such file.
            ContentChangedError: ``expected_token`` no longer matches.
            OSError: Any other failure (message scrubbed of credentials).
        """
        full = self._path(path)
        if expected_token is not None:
            fresh = self.stat(path)
            if fresh.change_token != expected_token:
                raise ContentChangedError(
                    errno.ESTALE,
                    f"changed since listed ({expected_token} -> {fresh.change_token})",
                    path,
                )
        try:
            with self._lock:
                raw = self._open_raw(full)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
        except Exception as exc:
            raise OSError(errno.EIO, f"cannot open: {self._why(exc)}", path) from None
        reader = FsspecReader(raw, path=path, scrub=self._scrubber, lock=self._lock)
        return reader  # type: ignore[return-value]

    def _open_raw(self, full: str) -> Any:
        if self.protocol == "webdav":
            return open_webdav_stream(self.fs, full)
        return self.fs.open(full, "rb")


__all__ = ["EXTRAS", "FsspecReader", "FsspecSource", "ListingMode", "TokenKind"]
