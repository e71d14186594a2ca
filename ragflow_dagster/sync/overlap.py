"""List the source and the dataset at the same time.

A sync needs both listings before it can plan, and the inventory wants the dataset's stored
fingerprints (so unchanged files are not read again). Done one after the other, the source walk
waits for the dataset listing; here the walk runs in a thread while the dataset is listed (the
server prepares pages meanwhile), and the known sha256 are filled into the walked entries
afterwards. The inventory is then built from the recorded walk (:class:`ReplayedSource`), so
hashing of new and changed files, content filters and completeness work exactly as without the
overlap.

Example:
    >>> from pathlib import Path
    >>> from ragflow_dagster.sources import LocalFolderSource
    >>> from ragflow_dagster.sync.engine import known_files
    >>> from ragflow_dagster.sync.verify import list_complete
    >>> _ = Path(tmp, "notes.txt").write_text("some notes")
    >>> docs, inventory, timings = list_both(
    ...     lambda: list_complete(client, ds.id), LocalFolderSource(tmp), None, known_files)
    >>> len(docs), [e.path for e in inventory.entries]
    (2, ['notes.txt'])
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

from ragflow_dagster.client import Document
from ragflow_dagster.sources import FileFilters, Inventory, KnownFile, Source, build_inventory
from ragflow_dagster.sources.base import (
    ENTRY_DRAFT,
    KnownFingerprint,
    SkippedEntry,
    SourceEntry,
)
from ragflow_dagster.sources.listing import Listing

Batch = tuple[list[SourceEntry], list[SkippedEntry]]


class ReplayedSource(Source):
    """A source whose listing was already made: its batches are listed again, with the known
    sha256 filled in; everything else (open, stat, URIs, declarations) is the real source's.

    Args:
        source: The real source.
        batches: Its listing, as ``(entries, skipped)`` batches (filters already applied).

    Example:
        >>> from ragflow_dagster.sources import LocalFolderSource
        >>> src = ReplayedSource(LocalFolderSource("/d"), [([SourceEntry("a", 1, 0.0, "1-0")], [])])
        >>> [e.path for e in src.scan()]
        ['a']
    """

    applies_filters = True
    supports_known_fingerprints = True

    def __init__(self, source: Source, batches: list[Batch]) -> None:
        self.source = source
        self.batches = batches
        self.change_token_is_content_hash = source.change_token_is_content_hash  # type: ignore[misc]
        self.supports_conditional_open = source.supports_conditional_open  # type: ignore[misc]
        self.supports_stat = source.supports_stat  # type: ignore[misc]
        self.reads_wait_on_network = source.reads_wait_on_network  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ReplayedSource({self.source!r})"

    @property
    def uri(self) -> str:
        """The real source's URI."""
        return self.source.uri

    def uri_for(self, path: str) -> str:
        """The real source's URI of one entry."""
        return self.source.uri_for(path)

    def open(self, path: str, *, expected_token: str | None = None) -> BinaryIO:
        """Open one entry of the real source."""
        return self.source.open(path, expected_token=expected_token)

    def stat(self, path: str) -> SourceEntry:
        """A fresh entry from the real source."""
        return self.source.stat(path)

    def scan_batches(
        self,
        filters: FileFilters | None = None,
        *,
        known: Mapping[str, KnownFingerprint] | None = None,
    ) -> Iterator[Batch]:
        """The recorded batches; entries whose token and size match ``known`` get its sha256."""
        del filters  # applied when the listing was made
        get = known.get if known else None
        draft, cls = ENTRY_DRAFT, SourceEntry
        for entries, skipped in self.batches:
            if get is None:
                yield list(entries), list(skipped)
                continue
            out: list[SourceEntry] = []
            add = out.append
            for e in entries:
                k = get(e.path) if e.sha256 is None else None
                if (
                    k is not None
                    and k.sha256
                    and k.change_token == e.change_token
                    and (k.size is None or k.size == e.size)
                ):
                    # a copy with the known sha256, built as a draft (a third of the cost of
                    # the frozen dataclass's __init__, once per unchanged file)
                    copy = draft()
                    copy.path = e.path
                    copy.size = e.size
                    copy.modified = e.modified
                    copy.change_token = e.change_token
                    copy.sha256 = k.sha256
                    copy.mime = e.mime
                    copy.__class__ = cls
                    e = copy
                add(e)
            yield out, list(skipped)


def walk(source: Source, filters: FileFilters | None) -> list[Batch]:
    """The source's whole listing (cheap filters applied, no fingerprints), as batches."""
    flt = filters if filters is not None else FileFilters()
    return [(page.entries, page.skipped) for page in Listing(source, filters=flt)]


def _inventory(
    source: Source,
    batches: list[Batch],
    filters: FileFilters | None,
    known: Mapping[str, KnownFile],
) -> Inventory:
    """The inventory of a recorded walk.

    A new path's sha256 serves only to recognise a move, i.e. a document whose file is gone
    with the same content; when no document's file is gone, new files are not hashed here (the
    upload hashes them on the way, once) and only the known paths that changed are."""
    listed = {e.path for entries, _ in batches for e in entries}
    if any(path not in listed for path in known):
        return build_inventory(ReplayedSource(source, batches), filters, known=known)
    old: list[Batch] = []
    new: list[SourceEntry] = []
    for entries, skipped in batches:
        old.append(([e for e in entries if e.path in known], skipped))
        new.extend(e for e in entries if e.path not in known)
    seen = build_inventory(ReplayedSource(source, old), filters, known=known)
    if not new:
        return seen
    fresh = build_inventory(
        ReplayedSource(source, [(new, [])]), filters, known=known, compute_sha256=False
    )
    return dataclasses.replace(
        seen,
        entries=[*seen.entries, *fresh.entries],
        skipped=[*seen.skipped, *fresh.skipped],
        complete=seen.complete and fresh.complete,
        scanned=seen.scanned + fresh.scanned,
        elapsed_s=seen.elapsed_s + fresh.elapsed_s,
        unlisted_prefixes=[*seen.unlisted_prefixes, *fresh.unlisted_prefixes],
        hashed=seen.hashed + fresh.hashed,
        bytes_hashed=seen.bytes_hashed + fresh.bytes_hashed,
        reused_sha256=seen.reused_sha256 + fresh.reused_sha256,
        content_checked=seen.content_checked + fresh.content_checked,
    )


def list_both(
    list_documents: Callable[[], list[Document]],
    source: Source,
    filters: FileFilters | None,
    known_of: Callable[[list[Document]], Mapping[str, KnownFile]],
) -> tuple[list[Document], Inventory, dict[str, float]]:
    """The dataset's documents and the source's inventory, the source walked in a thread while
    the dataset is listed.

    Args:
        list_documents: Lists the dataset completely (raises when it cannot).
        source: The source to walk.
        filters: Its filters.
        known_of: The fingerprints to reuse, from the documents.

    Returns:
        ``(documents, inventory, durations)``; durations: ``list_documents`` and ``walk``
        (each on its own, overlapping), ``inventory`` (from the end of both to the inventory).

    Raises:
        Whatever the dataset listing or the walk raised (the listing's error first).
    """
    result: dict[str, Any] = {}

    def run_walk() -> None:
        t = time.monotonic()
        try:
            result["batches"] = walk(source, filters)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc
        result["walk"] = time.monotonic() - t

    thread = threading.Thread(target=run_walk, name="rfd-source-walk", daemon=True)
    thread.start()
    t = time.monotonic()
    docs = list_documents()  # on failure the walk thread ends by itself
    t_list = time.monotonic() - t
    thread.join()
    if "error" in result:
        raise result["error"]
    t = time.monotonic()
    inventory = _inventory(source, result["batches"], filters, known_of(docs))
    durations = {
        "list_documents": t_list,
        "walk": result["walk"],
        "inventory": time.monotonic() - t,
    }
    return docs, inventory, durations


__all__ = ["ReplayedSource", "list_both", "walk"]
