"""Where documents come from: local folders, S3 buckets, any fsspec filesystem (WebDAV, Azure
Blob, SFTP, GCS, SMB, ...), their filters, the one listing adapter and the inventory.

Nothing here imports Dagster. ``dagster_aws.s3.S3Resource`` (or anything with ``get_client()``)
can be handed to :class:`S3Source` as ``s3_resource``.

Example:
    >>> from ragflow_dagster.sources import FileFilters, build_inventory, source_from_uri
    >>> source = source_from_uri("s3://bucket/docs", endpoint_url="http://127.0.0.1:9000")
    >>> type(source).__name__, source.uri
    ('S3Source', 's3://bucket/docs')
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ragflow_dagster.sources.base import (
    SKIP_REASONS,
    ContentChangedError,
    SkippedEntry,
    Source,
    SourceEntry,
    SourceError,
)
from ragflow_dagster.sources.filters import FileFilters, compile_globs, sniff_mime, text_ratio
from ragflow_dagster.sources.hashing import HashingReader, sha256_file
from ragflow_dagster.sources.inventory import (
    INVENTORY_COLUMNS,
    SKIPPED_COLUMNS,
    Inventory,
    KnownFile,
    build_inventory,
    entries_frame,
)
from ragflow_dagster.sources.listing import Listing, ListingPage
from ragflow_dagster.sources.local import LocalFolderSource
from ragflow_dagster.sources.s3 import S3ObjectReader, S3Source

if TYPE_CHECKING:
    from ragflow_dagster.sources.fsspec import FsspecSource


def source_from_uri(uri: str | os.PathLike[str], **kwargs: Any) -> Source:
    """Build a source from a URI or a path.

    Args:
        uri: ``s3://bucket/prefix``, ``file:///abs/folder``, a plain folder path (``~``
            expanded), or any registered fsspec protocol: ``webdav+https://host/dav/docs``,
            ``az://container/prefix`` (``abfs://``), ``sftp://user@host:22/srv/docs``,
            ``gcs://bucket/prefix``, ``smb://host/share/dir``, ``memory://docs``...
        **kwargs: Passed to the source (``endpoint_url``, ``region``, ``client``,
            ``s3_resource``, ``page_size`` for S3; ``follow_symlinks`` for folders;
            ``storage_options``, ``change_token``, ``listing``, ``page_size`` for fsspec).

    Raises:
        ValueError: An unsupported scheme, an S3 URI without a bucket, credentials in a URI.
        ImportError: The protocol's optional dependency is missing (the message names the
            extra, e.g. ``pip install 'ragflow-dagster[azure]'``).

    Example:
        >>> source_from_uri("/data/docs").uri
        'file:///data/docs'
        >>> source_from_uri("s3://b/reports/2024").prefix
        'reports/2024/'
    """
    text = os.fspath(uri)
    if text.startswith("s3://"):
        rest = text[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ValueError(f"S3 URI without a bucket: {text!r}")
        return S3Source(bucket, prefix, **kwargs)
    if text.startswith("file:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URI with a remote host is not supported: {text!r}")
        return LocalFolderSource(unquote(parts.path), **kwargs)
    scheme = urlsplit(text).scheme
    if scheme and len(scheme) > 1:  # "C:" on Windows is a drive, not a scheme
        from ragflow_dagster.sources.fsspec import FsspecSource

        return FsspecSource(text, **kwargs)
    return LocalFolderSource(os.path.expanduser(text), **kwargs)


def __getattr__(name: str) -> Any:
    if name == "FsspecSource":  # imported on demand: fsspec is an optional dependency
        from ragflow_dagster.sources.fsspec import FsspecSource

        return FsspecSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INVENTORY_COLUMNS",
    "SKIPPED_COLUMNS",
    "SKIP_REASONS",
    "ContentChangedError",
    "FileFilters",
    "FsspecSource",
    "HashingReader",
    "Inventory",
    "KnownFile",
    "Listing",
    "ListingPage",
    "LocalFolderSource",
    "S3ObjectReader",
    "S3Source",
    "SkippedEntry",
    "Source",
    "SourceEntry",
    "SourceError",
    "build_inventory",
    "compile_globs",
    "entries_frame",
    "sha256_file",
    "sniff_mime",
    "source_from_uri",
    "text_ratio",
]
