"""An S3 bucket (or an S3-compatible store: MinIO, R2, Ceph) as a source.

Listing pages through ``list_objects_v2`` (metadata only); the change token is the ETag, so equal
tokens mean equal content and moves are recognised without downloading. Objects are read as
streams (``get_object``), and the sync hashes them while uploading instead of downloading twice.

Works with a ready boto3 client, a ``dagster_aws.s3.S3Resource`` (anything with ``get_client()``)
or creates its own client from ``endpoint_url`` / ``region`` and the usual AWS environment.

Example:
    >>> src = S3Source("my-bucket", "docs/", endpoint_url="http://127.0.0.1:9000")
    >>> src.uri, src.uri_for("a/b.pdf")
    ('s3://my-bucket/docs', 's3://my-bucket/docs/a/b.pdf')
"""

from __future__ import annotations

import errno
import io
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

from ragflow_dagster.sources.base import (
    ContentChangedError,
    KnownFingerprint,
    ObjectMetadata,
    PagedSource,
    SkippedEntry,
    SourceEntry,
    SourceError,
    new_entry,
    unsafe_path_reason,
)
from ragflow_dagster.sources.filters import FileFilters

_DEFAULT_FILTERS = FileFilters()
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled"})
_CHANGED = frozenset({"PreconditionFailed", "412"})


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return str(status)
    return type(exc).__name__


def _as_os_error(exc: Exception, key: str) -> OSError:
    code = _error_code(exc)
    if code in _MISSING:
        return FileNotFoundError(errno.ENOENT, f"no such object ({code})", key)
    if code in _DENIED:
        return PermissionError(errno.EACCES, f"access denied ({code})", key)
    if code in _CHANGED:
        return ContentChangedError(errno.ESTALE, "object changed since it was listed", key)
    return OSError(errno.EIO, f"S3 error {code}: {exc}", key)


class S3ObjectReader(io.RawIOBase):
    """Streaming reader over one ``get_object`` body; S3 errors surface as ``OSError``.

    Attributes:
        key: The object key.
        size: ``ContentLength`` of the response.
        etag: The object's ETag (without quotes).
    """

    def __init__(self, body: Any, *, key: str, size: int, etag: str) -> None:
        super().__init__()
        self._body = body
        self.key = key
        self.size = size
        self.etag = etag

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            data = self._body.read() if size is None or size < 0 else self._body.read(size)
        except OSError:
            raise
        except Exception as exc:  # botocore / urllib3 streaming errors
            raise OSError(errno.EIO, f"reading the object failed: {exc}", self.key) from exc
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
                self._body.close()
        finally:
            super().close()


class S3Source(PagedSource):
    """Objects under a bucket prefix, identified by their key relative to the prefix.

    The prefix is a folder: ``"docs"`` and ``"docs/"`` both list ``docs/...`` only (not
    ``docs2/...``). Keys that cannot be a safe relative path (``..`` or ``.`` segments, a leading
    ``/``, empty segments) are skipped as ``unsafe_key``; zero-byte "folder" markers ending with
    ``/`` are skipped as ``special_file``. The change token is the ETag without quotes (or
    ``~<size>-<mtime_ns>`` for a store that sends none).

    Args:
        bucket: Bucket name.
        prefix: Key prefix (folder) inside the bucket.
        endpoint_url: S3-compatible endpoint (MinIO, R2, ...); path-style addressing is used then.
        region: Region name (else the AWS configuration / environment decides).
        client: A ready boto3 S3 client (or an object with ``get_client()``).
        s3_resource: A ``dagster_aws.s3.S3Resource`` or anything with ``get_client()``.
        page_size: Keys per ``list_objects_v2`` request (at most 1000).

    Example:
        >>> src = S3Source("bucket", "reports")
        >>> src.prefix, src.change_token_is_content_hash
        ('reports/', True)
    """

    change_token_is_content_hash = True
    applies_filters = True
    supports_known_fingerprints = True
    supports_conditional_open = True
    supports_stat = True
    supports_object_metadata = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any | None = None,
        s3_resource: Any | None = None,
        page_size: int = 1000,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be within 1..1000, got {page_size}")
        prefix = prefix.lstrip("/")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.endpoint_url = endpoint_url
        self.region = region
        self.page_size = page_size
        if client is not None and not hasattr(client, "list_objects_v2"):
            if hasattr(client, "get_client"):
                client, s3_resource = None, client
            else:
                raise TypeError("client must be a boto3 S3 client or have get_client()")
        self._client = client
        self._resource = s3_resource
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Source({self.bucket!r}, {self.prefix!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def uri(self) -> str:
        """``s3://bucket/prefix`` (no trailing ``/``)."""
        base = f"s3://{self.bucket}"
        return base + "/" + self.prefix.rstrip("/") if self.prefix else base

    def uri_for(self, path: str) -> str:
        """URI of one object."""
        return f"s3://{self.bucket}/{self.prefix}{path}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use; boto3 clients are thread-safe)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        if self._resource is not None:
            return self._resource.get_client()
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            "retries": {"max_attempts": 5, "mode": "standard"},
            "max_pool_connections": 32,
            "connect_timeout": 10,
            "read_timeout": 60,
        }
        if self.endpoint_url:
            options["s3"] = {"addressing_style": "path"}
        session = boto3.session.Session()
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(**options),
        )

    # -- listing ---------------------------------------------------------------------------------
    def scan(self, filters: FileFilters | None = None) -> Iterator[SourceEntry | SkippedEntry]:
        """List every object under the prefix (metadata only), applying the cheap filters
        (default: ``FileFilters()``, i.e. everything but hidden files and folders).

        Raises:
            SourceError: The very first listing request fails (no such bucket, access denied,
                unreachable endpoint). A failure on a later page yields an ``unlisted`` skipped
                entry for the whole source instead.
        """
        for entries, skipped, _resume in self._pages(None, filters):
            yield from skipped
            yield from entries

    def scan_batches(
        self,
        filters: FileFilters | None = None,
        *,
        known: Mapping[str, KnownFingerprint] | None = None,
    ) -> Iterator[tuple[list[SourceEntry], list[SkippedEntry]]]:
        """Like :meth:`scan`, one ``(entries, skipped)`` pair per listing page.

        Args:
            filters: As for :meth:`scan`.
            known: Fingerprints by path: an entry whose ETag and size match gets the known
                ``sha256`` as it is listed.
        """
        for entries, skipped, _resume in self._pages(None, filters, known):
            yield entries, skipped

    def iter_pages(
        self, *, start_after: str | None = None, filters: FileFilters | None = None
    ) -> Iterator[tuple[list[SourceEntry | SkippedEntry], str | None]]:
        """Page through the listing, e.g. a few pages per sensor tick.

        Args:
            start_after: A full object key (as returned in a previous page) to resume after.
            filters: Cheap filters applied to each key.

        Yields:
            ``(items, resume_key)``: the entries and skipped entries of one page, and the key to
            pass as ``start_after`` to continue after this page (``None`` once the listing is
            finished). When a later page fails, the last pair holds an ``unlisted`` skipped entry
            for ``""`` and the key to retry from.

        Example:
            >>> src = S3Source(bucket, page_size=1)  # endpoint and keys from the environment
            >>> cursor = None
            >>> for items, resume in src.iter_pages(start_after=cursor):
            ...     print([i.path for i in items], resume)
            ...     cursor = resume  # a sensor saves it and resumes there on its next tick
            ['a.txt'] a.txt
            ['b.txt'] None
        """
        for entries, skipped, resume in self._pages(start_after, filters):
            items: list[SourceEntry | SkippedEntry] = [*skipped, *entries]
            yield items, resume

    def cursor_after(self, path: str) -> str:
        """The ``start_after`` cursor resuming right after ``path``: its full object key."""
        return self.prefix + path

    def _pages(
        self,
        start_after: str | None,
        filters: FileFilters | None,
        known: Mapping[str, KnownFingerprint] | None = None,
    ) -> Iterator[tuple[list[SourceEntry], list[SkippedEntry], str | None]]:
        f = filters if filters is not None else _DEFAULT_FILTERS
        path_check = f._compiled.path_check
        file_check = f._compiled.file_check
        client = self.client
        prefix = self.prefix
        plen = len(prefix)
        make = new_entry
        known_get = known.get if known else None
        Skipped = SkippedEntry
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "MaxKeys": self.page_size,
        }
        if start_after:
            request["StartAfter"] = start_after
        first = True
        last_key = start_after
        while True:
            try:
                response = client.list_objects_v2(**request)
            except Exception as exc:
                where = f"s3://{self.bucket}/{prefix}"
                code = _error_code(exc)
                if first:
                    raise SourceError(f"cannot list {where}: {code}: {exc}") from exc
                detail = f"listing of {where} broke off after key {last_key!r}: {code}: {exc}"
                yield [], [Skipped("", "unreadable", detail, True)], last_key
                return
            first = False
            entries: list[SourceEntry] = []
            skipped: list[SkippedEntry] = []
            add = entries.append
            skip = skipped.append
            contents = response.get("Contents") or ()
            for obj in contents:
                key: str = obj["Key"]
                rel = key[plen:]
                size: int = obj.get("Size", 0)
                if not rel or rel[-1] == "/":
                    if size == 0:
                        skip(Skipped(rel, "special_file", "folder marker"))
                    else:
                        skip(Skipped(rel, "unsafe_key", f"key {key!r} ends with '/'"))
                    continue
                why_unsafe = unsafe_path_reason(rel)
                if why_unsafe is not None:
                    skip(Skipped(rel, "unsafe_key", f"key {key!r}: {why_unsafe}"))
                    continue
                why = path_check(rel)
                last_modified = obj.get("LastModified")
                modified = last_modified.timestamp() if last_modified is not None else 0.0
                if why is None and file_check is not None:
                    why = file_check(rel, rel.rpartition("/")[2], size, modified)
                if why is not None:
                    skip(Skipped(rel, why[0], why[1]))
                    continue
                etag = obj.get("ETag")
                token = etag.strip('"') if etag else f"~{size}-{int(modified * 1e9)}"
                sha = None
                if known_get is not None:
                    k = known_get(rel)
                    if (
                        k is not None
                        and k.change_token == token
                        and (k.size is None or k.size == size)
                    ):
                        sha = k.sha256
                add(make(rel, size, modified, token, sha))
            if contents:
                last_key = contents[-1]["Key"]
            truncated = bool(response.get("IsTruncated"))
            yield entries, skipped, (last_key if truncated else None)
            if not truncated:
                return
            request.pop("StartAfter", None)
            request["ContinuationToken"] = response["NextContinuationToken"]

    # -- single objects ----------------------------------------------------------------------------
    def _key(self, path: str) -> str:
        if not path or unsafe_path_reason(path) is not None or path.endswith("/"):
            raise FileNotFoundError(errno.ENOENT, "not a relative path of this source", path)
        return self.prefix + path

    def stat(self, path: str) -> SourceEntry:
        """A fresh entry for one object (``head_object``).

        Raises:
            FileNotFoundError: No such object.
            PermissionError: Access denied.
            OSError: Any other S3 error.
        """
        key = self._key(path)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise _as_os_error(exc, key) from exc
        size = int(head.get("ContentLength", 0))
        modified = head["LastModified"].timestamp()
        etag = head.get("ETag")
        token = etag.strip('"') if etag else f"~{size}-{int(modified * 1e9)}"
        return SourceEntry(path, size, modified, token)

    def open(self, path: str, *, expected_token: str | None = None) -> BinaryIO:
        """Open one object as a stream (``get_object``); the caller closes it.

        Args:
            path: Relative path as listed.
            expected_token: The ETag it was listed with: the read is then conditional
                (``IfMatch``), so the bytes streamed are exactly that version.

        Raises:
            FileNotFoundError: No such object.
            PermissionError: Access denied.
            ContentChangedError: The object no longer has ``expected_token`` as ETag.
            OSError: Any other S3 error.
        """
        key = self._key(path)
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if expected_token is not None and not expected_token.startswith("~"):
            request["IfMatch"] = f'"{expected_token}"'
        try:
            response = self.client.get_object(**request)
        except Exception as exc:
            raise _as_os_error(exc, key) from exc
        etag = str(response.get("ETag") or "").strip('"')
        size = int(response.get("ContentLength", 0))
        # an io.RawIOBase serves the BinaryIO that Source.open promises (read, readinto, close);
        # typeshed types the two apart
        return S3ObjectReader(response["Body"], key=key, size=size, etag=etag)  # type: ignore[return-value]

    def object_metadata(
        self, path: str, *, metadata: bool = True, tags: bool = True
    ) -> ObjectMetadata:
        """User metadata (``head_object``) and tags (``get_object_tagging``) of one object;
        only the requests asked for are made.

        Raises:
            FileNotFoundError: No such object.
            OSError: Any other S3 error.
        """
        key = self._key(path)
        user: dict[str, str] = {}
        tag_map: dict[str, str] = {}
        try:
            if metadata:
                head = self.client.head_object(Bucket=self.bucket, Key=key)
                user = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
            if tags:
                reply = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
                tag_map = {str(t["Key"]): str(t["Value"]) for t in reply.get("TagSet") or []}
        except Exception as exc:
            raise _as_os_error(exc, key) from exc
        return ObjectMetadata(user=user, tags=tag_map)


__all__ = ["S3ObjectReader", "S3Source"]
