"""Paged listings of :class:`~ragflow_dagster.client.RAGFlowClient`, proven complete as they go.

:meth:`Paging._pages` is the one paging loop (offset pages, re-fetched when a page does not prove
itself complete); the dataset and document listings are built on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import pairwise
from typing import Any

from ragflow_dagster.client.errors import (
    RAGFlowError,
    RAGFlowIncompleteListingError,
    RAGFlowNotFoundError,
)
from ragflow_dagster.client.models import Dataset, Document
from ragflow_dagster.client.params import batches, id_list
from ragflow_dagster.client.shared import Shared
from ragflow_dagster.client.transport import (
    API_PREFIX,
    MAX_IDS_PER_CALL,
    MAX_PAGE_SIZE,
    Reply,
    Transport,
)

__all__ = ["Paging"]

_PAGE_ATTEMPTS = 3
"""How often a page that does not prove itself complete is fetched before giving up."""
_PAGE_SIZE_LIMIT = re.compile(r"page_size must be less than or equal to (\d+)")


class Paging(Transport):
    """Listings: the paging loop, datasets, documents (one page, all pages, by id).

    Attributes:
        list_concurrency: Listing pages requested at once after the first (1: one at a time).
    """

    list_concurrency: int = 4

    def _pages(
        self,
        path: str,
        params: Mapping[str, Any],
        extract: Callable[[Any], tuple[list[Any], int | None] | None],
        page_size: int,
        *,
        newest: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        """Yield raw items page by page, proving the listing complete as it goes.

        A page is trusted only when its reply has the listing's shape (``extract`` returns None
        for a reply without ``data``) and, when the server sends ``total``, when it is full or
        brings the count of distinct items seen to ``total``. Such a page is fetched again
        (``_PAGE_ATTEMPTS`` times) and then :class:`RAGFlowIncompleteListingError` is raised.

        A ``total`` that shrinks between pages means documents were deleted while offset paging
        ran (items may have been skipped): that raises too, with ``changed=True``, so that the
        caller can start a fresh pass.

        A listing read oldest first (by ``create_time``) passes ``newest``: the parameters that
        read the same listing newest first. That page is read before any other, so that the
        listing knows what existed when it began: its newest ``create_time`` and its
        ``total``. Oldest first, a delete on a page already read shifts the next document onto
        it, unseen, and an upload at the same time keeps ``total`` as it was; so the listing is
        complete only when it has seen as many documents born by that ``create_time`` as
        there were (fewer: one was deleted or skipped — ``changed=True``). The newest page
        costs no request: its items are not asked for again, and a dataset of one page is read
        in that one query.

        After the first page, up to :attr:`list_concurrency` pages within ``total`` are
        requested at once; their replies are checked in page order as above, and a prefetched
        page whose ``total`` differs from the page before it counts as a changed listing (the
        order the server answered them in is unknown) — unless the listing read its newest page
        first: then only a shrinking ``total`` does, uploads meanwhile are no alarm, and the
        count at the end proves the rest.
        """
        state = _Progress(page_size=max(1, min(int(page_size), MAX_PAGE_SIZE)))
        ahead: dict[int, Future[Reply]] = {}
        pool: ThreadPoolExecutor | None = None
        try:
            if newest is not None:
                items, total = self._proven_page(path, {**params, **newest}, 1, state, extract)
                state.hold(items, total)
                if state.done(items, total):
                    yield from state.release()
                    return
            page = 1
            while True:
                if state.last_total is not None:
                    pool = self._prefetch(
                        ahead, path, params, page, state.page_size, state.unread(), pool
                    )
                items, total = self._proven_page(
                    path, params, page, state, extract, ahead.pop(page, None)
                )
                out = state.take(items, total)
                yield from out
                if state.done(items, total):
                    break
                if not out:
                    if total is not None and state.seen < total:  # a server that ignores `page`
                        raise RAGFlowIncompleteListingError(
                            f"listing {API_PREFIX + path} repeats page {page - 1} "
                            f"at {state.seen} of {total} items",
                            seen=state.seen,
                            total=total,
                            method="GET",
                            route=API_PREFIX + path,
                        )
                    break
                page += 1
            state.prove(API_PREFIX + path)
            yield from state.release()
        finally:
            for fut in ahead.values():
                fut.cancel()
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _proven_page(
        self,
        path: str,
        params: Mapping[str, Any],
        page: int,
        state: _Progress,
        extract: Callable[[Any], tuple[list[Any], int | None] | None],
        pending: Future[Reply] | None = None,
    ) -> tuple[list[Any], int | None]:
        """One page's items and total, fetched again until it proves itself (see ``_pages``).

        ``pending``: the page's reply requested ahead, used for the first attempt only.
        """
        problem = "no usable reply"
        for attempt_no in range(_PAGE_ATTEMPTS):
            ahead = pending if attempt_no == 0 else None
            try:
                reply = (
                    ahead.result()
                    if ahead is not None
                    else self._request(
                        "GET",
                        path,
                        params={**params, "page": page, "page_size": state.page_size},
                    )
                )
            except RAGFlowError as exc:
                m = _PAGE_SIZE_LIMIT.search(exc.message or "")
                if m and int(m.group(1)) < state.page_size and state.last_total is None:
                    state.page_size = max(1, int(m.group(1)))
                    continue
                raise
            page_items = extract(reply)
            if page_items is None:
                problem = "a page came back without data"
                continue
            items, total = page_items
            last = state.last_total
            # a prefetched page may have been answered before the page ahead of it: any
            # change of total between them could hide a delete, so it counts as one — unless
            # the listing proves at its end that it saw every document it began with
            moved = ahead is not None and total != last and not state.proving
            if last is not None and total is not None and (total < last or moved):
                raise RAGFlowIncompleteListingError(
                    f"the listing changed while it was read (total {last} -> {total})",
                    seen=state.seen,
                    total=total,
                    changed=True,
                    method="GET",
                    route=API_PREFIX + path,
                )
            if len(items) < state.page_size and total is not None:  # the last page: all seen?
                count = state.seen + state.count_fresh(items)
                if count < total:
                    problem = f"page {page} ended at {count} of {total} items"
                    continue
            return items, total
        raise RAGFlowIncompleteListingError(
            f"listing {API_PREFIX + path} is incomplete: {problem} ({_PAGE_ATTEMPTS} attempts)",
            seen=state.seen,
            total=state.last_total,
            method="GET",
            route=API_PREFIX + path,
        )

    def _prefetch(
        self,
        ahead: dict[int, Future[Reply]],
        path: str,
        params: Mapping[str, Any],
        page: int,
        page_size: int,
        total: int,
        pool: ThreadPoolExecutor | None,
    ) -> ThreadPoolExecutor | None:
        """Request pages ``page .. page + list_concurrency - 1`` (those within ``total``) that
        are not requested yet; returns the pool doing it (None when listing one at a time)."""
        width = int(self.list_concurrency)
        if width <= 1:
            return pool
        last = -(-total // page_size)
        for p in range(page, min(page + width, last + 1)):
            if p in ahead:
                continue
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="rfd-pages")
            ahead[p] = pool.submit(
                self._request, "GET", path, params={**params, "page": p, "page_size": page_size}
            )
        return pool

    def iter_datasets(
        self,
        *,
        name: str | None = None,
        orderby: str = "create_time",
        desc: bool = True,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[Dataset]:
        """Iterate over all datasets visible to the key, paging transparently.

        Example:
            >>> _ = client.create_dataset("policies")
            >>> [d.name for d in client.iter_datasets()]  # newest first
            ['policies', 'manuals']
        """

        def extract(reply: Reply) -> tuple[list[Any], int | None] | None:
            if not isinstance(reply.data, list):
                return None
            items = [d for d in reply.data if isinstance(d, Mapping)]
            total = reply.body.get("total_datasets", reply.body.get("total"))
            return items, int(total) if isinstance(total, (int, float)) else None

        params = {"name": name, "orderby": orderby, "desc": desc}
        try:
            for raw in self._pages("/datasets", params, extract, page_size):
                yield Dataset.from_api(raw)
        except RAGFlowNotFoundError:
            if name is None:
                raise

    def list_documents(
        self,
        dataset_id: str,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        orderby: str = "create_time",
        desc: bool = True,
        **filters: Any,
    ) -> tuple[list[Document], int]:
        """Return one page of documents and the total count.

        Filters are the server's: ``id``, ``name`` (exact), ``keywords`` (name contains),
        ``suffix``, ``run`` (text or digits; lists repeat), ``metadata_condition`` (dict),
        ``create_time_from``/``create_time_to`` (ms), ... Lists become repeated parameters and
        dicts JSON, as the server expects.

        Example:
            >>> page, total = client.list_documents(ds.id, page=2, page_size=1, desc=False)
            >>> [d.name for d in page], total
            (['b.txt'], 2)
            >>> client.list_documents(ds.id, run="FAIL")
            ([], 0)
        """
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        params = {**filters, "orderby": orderby, "desc": desc, "page": page, "page_size": size}
        reply = self._request("GET", f"/datasets/{dataset_id}/documents", params=params)
        page_items = _docs_page(reply)
        if page_items is None:
            raise RAGFlowIncompleteListingError(
                "a document page came back without data",
                method="GET",
                route=f"{API_PREFIX}/datasets/{dataset_id}/documents",
            )
        items, total = page_items
        shared = Shared()
        docs = [Document.from_api(d, shared=shared) for d in items]
        return docs, total if total is not None else len(items)

    def iter_documents(
        self,
        dataset_id: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        orderby: str = "create_time",
        desc: bool = False,
        **filters: Any,
    ) -> Iterator[Document]:
        """Iterate over a dataset's documents, paging transparently (100 per request).

        Oldest first by default, so documents added meanwhile land on later pages; a document
        is never yielded twice. Read that way, the newest page is read first (no extra request)
        so that a document deleted and another uploaded meanwhile cannot hide a skipped one:
        such a listing raises :class:`RAGFlowIncompleteListingError` with ``changed=True``.
        ``create_time_from``/``create_time_to`` are applied here, not by the server (which
        applies them after paging).

        Example:
            >>> [d.name for d in client.iter_documents(ds.id, run=["DONE"])]
            ['a.txt', 'b.txt']
            >>> [d.id for d in client.iter_documents(ds.id, run=["UNSTART", "RUNNING"])]
            []
        """
        t_from = filters.pop("create_time_from", None)
        t_to = filters.pop("create_time_to", None)
        params = {**filters, "orderby": orderby, "desc": desc}
        newest = {"desc": True} if orderby == "create_time" and not desc else None
        seen: set[str] = set()

        def extract(reply: Reply) -> tuple[list[Any], int | None] | None:
            return _docs_page(reply)

        shared = Shared()  # the listing's records share equal values (see client/shared.py)
        pages = self._pages(
            f"/datasets/{dataset_id}/documents", params, extract, page_size, newest=newest
        )
        for raw in pages:
            doc = Document.from_api(raw, shared=shared)
            if doc.id in seen:
                continue
            seen.add(doc.id)
            if t_from and doc.create_time < int(t_from):
                continue
            if t_to and doc.create_time > int(t_to):
                continue
            yield doc

    def documents_by_id(self, dataset_id: str, ids: Sequence[str]) -> dict[str, Document]:
        """The documents among ``ids`` that exist, by id (one request per 100 ids).

        An id missing from the answer is a document that does not exist (any more).

        Example:
            >>> {d.name: d.run for d in client.documents_by_id(ds.id, ids).values()}
            {'a.txt': 'DONE', 'b.txt': 'DONE'}
        """
        wanted = id_list(ids, "ids")
        found: dict[str, Document] = {}
        for batch in batches(wanted, MAX_IDS_PER_CALL):
            for doc in self.iter_documents(dataset_id, ids=batch):
                if doc.id in batch:
                    found[doc.id] = doc
        return found


def _docs_page(reply: Reply) -> tuple[list[Any], int | None] | None:
    """Items and total of a document page; None when the reply lacks the listing's shape."""
    data = reply.data
    if isinstance(data, Mapping) and isinstance(data.get("docs"), list):
        items = data["docs"]
        total = data.get("total", data.get("total_datasets"))
    elif isinstance(data, list):  # never seen, but cheap to accept
        items, total = data, reply.body.get("total")
    else:
        return None
    items = [d for d in items if type(d) is dict or isinstance(d, Mapping)]
    return items, int(total) if isinstance(total, (int, float)) else None


def _born(item: Mapping[str, Any]) -> int | None:
    """An item's ``create_time`` (ms), None when it has none the listing can compare."""
    value = item.get("create_time")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


class _Progress:
    """What one listing has seen, and what existed when it began (see ``Paging._pages``)."""

    __slots__ = (
        "_born_by",
        "_existed",
        "_head",
        "_held",
        "_ids",
        "_old",
        "last_total",
        "page_size",
        "seen",
    )

    def __init__(self, *, page_size: int) -> None:
        self.page_size = page_size
        self.seen = 0  # distinct items seen
        self.last_total: int | None = None
        self._ids: set[str] = set()
        # the newest page's items, by id, until an older page has them
        self._held: dict[str, Any] = {}
        self._head = 0  # how many items the newest page held
        self._born_by: int | None = None  # the newest create_time when the listing began
        self._existed: int | None = None  # the total when the listing began
        self._old = 0  # distinct items seen that were born by then

    @property
    def proving(self) -> bool:
        """Whether the end of the listing can prove it saw every document it began with."""
        return self._born_by is not None and self._existed is not None

    def count_fresh(self, items: Sequence[Any]) -> int:
        """How many items of a page are not seen yet."""
        ids = self._ids
        new = {i.get("id") for i in items if i.get("id") and i["id"] not in ids}
        return len(new) + sum(1 for i in items if not i.get("id"))

    def hold(self, items: Sequence[Any], total: int | None) -> None:
        """Take the newest page: held back (the listing yields oldest first) and counted."""
        for item in items:
            iid = item.get("id") or f"#{len(self._held)}"
            if iid not in self._held:
                self._held[iid] = item
        self._ids.update(self._held)
        self.seen = self._old = self._head = len(self._held)
        self.last_total = total
        self._existed = total
        borns = [b for b in map(_born, items) if b is not None]
        newest_first = all(a >= b for a, b in pairwise(borns))
        # a server that did not read it newest first gives nothing to count against
        self._born_by = max(borns) if borns and newest_first else None

    def take(self, items: Sequence[Any], total: int | None) -> list[Any]:
        """The items of an older page to yield: those not seen yet, and held ones met again
        (the later copy)."""
        out: list[Any] = []
        ids, held, born_by = self._ids, self._held, self._born_by
        for item in items:
            iid = item.get("id")
            if not iid or iid not in ids:
                out.append(item)
                if iid:
                    ids.add(iid)
                self.seen += 1
                if born_by is not None:
                    born = _born(item)
                    if born is None or born <= born_by:
                        self._old += 1
            elif held.pop(iid, None) is not None:
                out.append(item)
        if total is not None:
            self.last_total = total
        return out

    def done(self, items: Sequence[Any], total: int | None) -> bool:
        """A short page ends the listing, and so does having seen ``total`` items."""
        return len(items) < self.page_size or (total is not None and self.seen >= total)

    def unread(self) -> int:
        """How many items the older pages are expected to hold (``total`` less the newest page)."""
        return (self.last_total or 0) - self._head

    def prove(self, route: str) -> None:
        """Raise unless every document that existed when the listing began was seen."""
        existed = self._existed
        if self._born_by is None or existed is None or self._old >= existed:
            return
        raise RAGFlowIncompleteListingError(
            f"the listing changed while it was read ({existed - self._old} of the {existed} "
            "documents it began with were not seen: deleted meanwhile, or skipped)",
            seen=self.seen,
            total=self.last_total,
            changed=True,
            method="GET",
            route=route,
        )

    def release(self) -> Iterator[Any]:
        """The held items no older page had, oldest first."""
        rest = list(self._held.values())
        self._held.clear()
        return reversed(rest)
