"""The one way to list a source, for the inventory and the sensor alike.

:class:`Listing` reads what a source *declares* (:class:`~ragflow_dagster.sources.base.Source`
capabilities) and gives every caller the same thing: pages of entries and skipped entries with the
cheap filters applied, known sha256 filled in, and — for sources that page — a cursor to resume
from, a time / entry budget and an explicit "the listing broke off here" flag.

* The inventory lists everything in one go: ``Listing(source, filters=..., known=...)``.
* A sensor lists a slice per tick: ``Listing(source, filters=..., start_after=cursor,
  paged=True, time_budget_s=20)``, handles each page, and stores :attr:`Listing.resume` (or
  :meth:`Listing.cursor_after` of the last entry it handled, when it stops mid-page).

Example:
    >>> import tempfile, pathlib
    >>> from ragflow_dagster.sources import FileFilters, LocalFolderSource
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "a.txt").write_text("hi")
    >>> listing = Listing(LocalFolderSource(root), filters=FileFilters())
    >>> [e.path for page in listing for e in page.entries], listing.done
    (['a.txt'], True)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ragflow_dagster.sources.base import (
    KnownFingerprint,
    PagedSource,
    SkippedEntry,
    Source,
    SourceEntry,
)
from ragflow_dagster.sources.filters import FileFilters


@dataclass(frozen=True, slots=True)
class ListingPage:
    """One page (or batch) of a listing.

    Attributes:
        entries: Files that passed the cheap filters.
        skipped: Records left out, with a reason (including the ``unlisted`` gap of a listing
            that broke off).
        start: Cursor this page started after (``None``: the beginning, or an unpaged listing).
        resume: Cursor to continue after this page (``None`` once the listing is finished, and
            always for unpaged listings).
        broke_off: The listing broke off after this page (a failed request); ``resume`` is the
            cursor to retry from.
    """

    entries: list[SourceEntry]
    skipped: list[SkippedEntry]
    start: str | None = None
    resume: str | None = None
    broke_off: bool = False


class Listing:
    """An iterable of :class:`ListingPage` over a source; iterate it once.

    Args:
        source: The source.
        filters: Cheap filters; applied by the source when it declares ``applies_filters``,
            else here. ``None``: the source's default.
        known: Fingerprints by path (the ones stored on the RAGFlow side): entries whose change
            token and size match get the known sha256 (from the source itself when it declares
            ``supports_known_fingerprints``, else here).
        start_after: Cursor to resume after (paged listings only; ignored otherwise).
        paged: Page through a source that declares ``supports_resumable_listing`` (its
            ``iter_pages``), so the listing can stop within budget and resume later. Sources
            that cannot page are listed whole (:attr:`resumable` is then False).
        time_budget_s: Stop after the first page that ends past this many seconds (paged only).
        max_entries: Stop after the first page that brings the entries to this many (paged
            only).
        clock: Monotonic clock for the budget.

    Attributes:
        done: True once the listing reached its end (False while iterating, after a stop
            within budget and after a break-off).
        resume: Cursor to pass as ``start_after`` next time when not ``done``.
        broke_off: The listing stopped because a request failed.
        entries_listed: Entries yielded so far.

    Example:
        >>> from ragflow_dagster.sources import S3Source
        >>> listing = Listing(S3Source("bucket"), start_after="docs/0042.pdf", paged=True,
        ...                   time_budget_s=20)
        >>> listing.resumable
        True
    """

    def __init__(
        self,
        source: Source,
        *,
        filters: FileFilters | None = None,
        known: Mapping[str, KnownFingerprint] | None = None,
        start_after: str | None = None,
        paged: bool = False,
        time_budget_s: float | None = None,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_budget_s is not None and time_budget_s < 0:
            raise ValueError(f"time_budget_s must be >= 0, got {time_budget_s}")
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.source = source
        self.filters = filters
        self.known = known or None
        self.resumable = bool(
            paged and source.supports_resumable_listing and isinstance(source, PagedSource)
        )
        self.start_after = start_after if self.resumable else None
        self.time_budget_s = time_budget_s
        self.max_entries = max_entries
        self.clock = clock
        self.done = False
        self.resume: str | None = self.start_after
        self.broke_off = False
        self.entries_listed = 0
        self._started = False

    @property
    def fills_known_in_source(self) -> bool:
        """True when the source itself fills in the known sha256 (so only entries without one
        can be new or changed)."""
        return (
            self.known is not None
            and not self.resumable
            and self.source.supports_known_fingerprints
        )

    def cursor_after(self, path: str) -> str | None:
        """The ``start_after`` cursor that resumes right after an entry already handled
        (``None`` for a listing that cannot resume)."""
        source = self.source
        return source.cursor_after(path) if isinstance(source, PagedSource) else None

    def __iter__(self) -> Iterator[ListingPage]:
        if self._started:
            raise RuntimeError("a Listing can be iterated only once")
        self._started = True
        if self.resumable:
            yield from self._paged()
        else:
            yield from self._whole()
            self.done = True
            self.resume = None

    def records(self) -> Iterator[SourceEntry | SkippedEntry]:
        """The pages flattened: each page's skipped entries, then its entries."""
        for page in self:
            yield from page.skipped
            yield from page.entries

    # -- internals ------------------------------------------------------------------------------
    def _post(self, entries: list[SourceEntry], skipped: list[SkippedEntry], *, fill: bool) -> None:
        """Apply the filters a source does not apply itself, and known sha256, in place."""
        flt = self.filters
        if flt is not None and not self.source.applies_filters:
            check = flt.check_entry
            kept: list[SourceEntry] = []
            for e in entries:
                why = check(e)
                if why is None:
                    kept.append(e)
                else:
                    skipped.append(why)
            entries[:] = kept
        known = self.known
        if fill and known is not None:
            get = known.get
            for i, e in enumerate(entries):
                if e.sha256 is not None:
                    continue
                k = get(e.path)
                if (
                    k is not None
                    and k.sha256
                    and k.change_token == e.change_token
                    and (k.size is None or k.size == e.size)
                ):
                    entries[i] = dataclasses.replace(e, sha256=k.sha256)

    def _whole(self) -> Iterator[ListingPage]:
        source = self.source
        in_source = self.fills_known_in_source
        if in_source:
            batches = source.scan_batches(self.filters, known=self.known)
        else:
            batches = source.scan_batches(self.filters)
        post = (self.filters is not None and not source.applies_filters) or (
            self.known is not None and not in_source
        )
        for entries, skipped in batches:
            if post:  # the source's own lists: changed in place
                self._post(entries, skipped, fill=not in_source)
            self.entries_listed += len(entries)
            yield ListingPage(entries, skipped)

    def _paged(self) -> Iterator[ListingPage]:
        t0 = self.clock()
        budget = self.time_budget_s
        cap = self.max_entries
        position = self.start_after
        source = self.source
        assert isinstance(source, PagedSource)
        for records, resume in source.iter_pages(start_after=position, filters=self.filters):
            entries: list[SourceEntry] = []
            skipped: list[SkippedEntry] = []
            broke = False
            for rec in records:
                if isinstance(rec, SkippedEntry):
                    skipped.append(rec)
                    if rec.unlisted and rec.path == "":
                        broke = True
                else:
                    entries.append(rec)
            self._post(entries, skipped, fill=True)
            self.entries_listed += len(entries)
            page = ListingPage(entries, skipped, position, resume, broke)
            self.resume = resume
            yield page
            if broke:
                self.broke_off = True
                return
            if resume is None:
                self.done = True
                return
            position = resume
            if budget is not None and self.clock() - t0 >= budget:
                return
            if cap is not None and self.entries_listed >= cap:
                return
        self.done = True
        self.resume = None


__all__ = ["Listing", "ListingPage"]
