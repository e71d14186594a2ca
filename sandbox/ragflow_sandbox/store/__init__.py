"""Persistence of the sandbox: SQLite (WAL) for records, plain files for document blobs.

Layout under ``data_dir``::

    sandbox.db            datasets, documents, chunks, users, API tokens
    blobs/<kb>/<doc>      the uploaded bytes of each document

One SQLite connection per thread; writes use short ``BEGIN IMMEDIATE`` transactions so the
request thread and the parser threads never block each other for long. Ordered id lists and
flattened metadata are cached per dataset and invalidated by in-memory version counters,
so paging through 100k documents does not pay an ``OFFSET`` scan per page.

The store is one class, :class:`Store`, assembled from one mixin per kind of record
(``base``, ``datasets``, ``documents``, ``parsing``, ``chunks``)."""

from __future__ import annotations

from .chunks import ChunkStore
from .datasets import DatasetStore
from .documents import DocumentStore
from .parsing import ParseStateStore
from .schema import (
    DATASET_TASK_FIELDS,
    DOC_COLUMNS,
    iso_now,
    new_id,
    next_duplicate_name,
    now_ms,
    split_name_counter,
)

__all__ = [
    "DATASET_TASK_FIELDS",
    "DOC_COLUMNS",
    "Store",
    "iso_now",
    "new_id",
    "next_duplicate_name",
    "now_ms",
    "split_name_counter",
]


class Store(ChunkStore, ParseStateStore, DocumentStore, DatasetStore):
    """All state of one sandbox server.

    Args:
        data_dir: Directory for ``sandbox.db`` and the blobs (created if missing).

    Example:
        >>> import tempfile
        >>> store = Store(tempfile.mkdtemp())
        >>> store.tenant_id != ""
        True
    """
