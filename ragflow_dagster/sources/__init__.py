"""Where documents come from: local folders and S3 buckets, their filters and inventory.

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
from typing import Any
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
from ragflow_dagster.sources.local import LocalFolderSource
from ragflow_dagster.sources.s3 import S3ObjectReader, S3Source


def source_from_uri(uri: str | os.PathLike[str], **kwargs: Any) -> Source:
    """Build a source from a URI or a path.

    Args:
        uri: ``s3://bucket/prefix``, ``file:///abs/folder`` or a plain folder path (``~``
            expanded).
        **kwargs: Passed to the source (``endpoint_url``, ``region``, ``client``,
            ``s3_resource``, ``page_size`` for S3; ``follow_symlinks`` for folders).

    Raises:
        ValueError: An unsupported scheme, or an S3 URI without a bucket.

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
        raise ValueError(f"unsupported source URI scheme {scheme!r} in {text!r}")
    return LocalFolderSource(os.path.expanduser(text), **kwargs)


__all__ = [
    "INVENTORY_COLUMNS",
    "SKIPPED_COLUMNS",
    "SKIP_REASONS",
    "ContentChangedError",
    "FileFilters",
    "HashingReader",
    "Inventory",
    "KnownFile",
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
