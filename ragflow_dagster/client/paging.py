"""Paged listings of :class:`~ragflow_dagster.client.RAGFlowClient`, proven complete as they go.

:meth:`Paging._pages` is the one paging loop (offset pages, re-fetched when a page does not prove
itself complete); the dataset and document listings are built on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    ) -> Iterator[Any]:
        """Yield raw items page by page, proving the listing complete as it goes.

        A page is trusted only when its reply has the listing's shape (``extract`` returns None
        for a reply without ``data``) and, when the server sends ``total``, when it is full or
        brings the count of distinct items seen to ``total``. Such a page is fetched again
        (``_PAGE_ATTEMPTS`` times) and then :class:`RAGFlowIncompleteListingError` is raised.
        A ``total`` that shrinks between pages means documents were deleted while offset paging
        ran (items may have been skipped): that raises too, with ``changed=True``, so that the
        caller can start a fresh pass.

        After the first page, up to :attr:`list_concurrency` pages within ``total`` are
        requested at once; their replies are checked in page order as above, and a prefetched
        page whose ``total`` differs from the page before it counts as a changed listing (the
        order the server answered them in is unknown).
        """
        page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        page = 1
        ids: set[str] = set()
        seen = 0
        last_total: int | None = None
        ahead: dict[int, Future[Reply]] = {}
        pool: ThreadPoolExecutor | None = None
        try:
            while True:
                problem = "no usable reply"
                for attempt_no in range(_PAGE_ATTEMPTS):
                    if attempt_no == 0 and page > 1 and last_total is not None:
                        pool = self._prefetch(
                            ahead, path, params, page, page_size, last_total, pool
                        )
                    pending = ahead.pop(page, None) if attempt_no == 0 else None
                    try:
                        reply = (
                            pending.result()
                            if pending is not None
                            else self._request(
                                "GET", path, params={**params, "page": page, "page_size": page_size}
                            )
                        )
                    except RAGFlowError as exc:
                        m = _PAGE_SIZE_LIMIT.search(exc.message or "")
                        if m and int(m.group(1)) < page_size and page == 1:
                            page_size = max(1, int(m.group(1)))
                            reply = None
                        else:
                            raise
                    if reply is None:
                        continue
                    page_items = extract(reply)
                    if page_items is None:
                        problem = "a page came back without data"
                        continue
                    items, total = page_items
                    # a prefetched page may have been answered before the page ahead of it: any
                    # change of total between them could hide a delete, so it counts as one
                    moved = pending is not None and total != last_total
                    if (
                        last_total is not None
                        and total is not None
                        and (total < last_total or moved)
                    ):
                        raise RAGFlowIncompleteListingError(
                            "the listing changed while it was read "
                            f"(total {last_total} -> {total})",
                            seen=seen,
                            total=total,
                            changed=True,
                            method="GET",
                            route=API_PREFIX + path,
                        )
                    fresh = [i for i in items if not i.get("id") or i["id"] not in ids]
                    count = seen + len(fresh)
                    short = len(items) < page_size
                    if short and total is not None and count < total:
                        problem = f"page {page} ended at {count} of {total} items"
                        continue
                    break
                else:
                    raise RAGFlowIncompleteListingError(
                        f"listing {API_PREFIX + path} is incomplete: {problem} "
                        f"({_PAGE_ATTEMPTS} attempts)",
                        seen=seen,
                        total=last_total,
                        method="GET",
                        route=API_PREFIX + path,
                    )
                last_total = total if total is not None else last_total
                ids.update(i["id"] for i in fresh if i.get("id"))
                seen += len(fresh)
                yield from fresh
                if short or (total is not None and seen >= total):
                    return
                if not fresh:
                    if total is not None and seen < total:  # a server that ignores `page`
                        raise RAGFlowIncompleteListingError(
                            f"listing {API_PREFIX + path} repeats page {page - 1} "
                            f"at {seen} of {total} items",
                            seen=seen,
                            total=total,
                            method="GET",
                            route=API_PREFIX + path,
                        )
                    return
                page += 1
        finally:
            for fut in ahead.values():
                fut.cancel()
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

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
        is never yielded twice. ``create_time_from``/``create_time_to`` are applied here, not
        by the server (which applies them after paging).

        Example:
            >>> [d.name for d in client.iter_documents(ds.id, run=["DONE"])]
            ['a.txt', 'b.txt']
            >>> [d.id for d in client.iter_documents(ds.id, run=["UNSTART", "RUNNING"])]
            []
        """
        t_from = filters.pop("create_time_from", None)
        t_to = filters.pop("create_time_to", None)
        params = {**filters, "orderby": orderby, "desc": desc}
        seen: set[str] = set()

        def extract(reply: Reply) -> tuple[list[Any], int | None] | None:
            return _docs_page(reply)

        shared = Shared()  # the listing's records share equal values (see client/shared.py)
        for raw in self._pages(f"/datasets/{dataset_id}/documents", params, extract, page_size):
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
