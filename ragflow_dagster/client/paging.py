"""Paged listings of :class:`~ragflow_dagster.client.RAGFlowClient`, proven complete as they go.

:meth:`Paging._pages` is the one paging loop (offset pages, re-fetched when a page does not prove
itself complete); the dataset and document listings are built on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ragflow_dagster.client.errors import (
    RAGFlowError,
    RAGFlowIncompleteListingError,
    RAGFlowNotFoundError,
)
from ragflow_dagster.client.models import Dataset, Document
from ragflow_dagster.client.params import batches, id_list
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
    """Listings: the paging loop, datasets, documents (one page, all pages, by id)."""

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
        """
        page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        page = 1
        ids: set[str] = set()
        seen = 0
        last_total: int | None = None
        while True:
            problem = "no usable reply"
            for _attempt in range(_PAGE_ATTEMPTS):
                try:
                    reply = self._request(
                        "GET", path, params={**params, "page": page, "page_size": page_size}
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
                if last_total is not None and total is not None and total < last_total:
                    raise RAGFlowIncompleteListingError(
                        f"the listing changed while it was read (total {last_total} -> {total})",
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
            >>> [ds.name for ds in client.iter_datasets()]  # doctest: +SKIP
            ['manuals', 'policies']
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
            >>> docs, total = client.list_documents(ds.id, page=2, run="FAIL")  # doctest: +SKIP
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
        return [Document.from_api(d) for d in items], total if total is not None else len(items)

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
            >>> pending = [d.id for d in client.iter_documents(ds.id, run=["UNSTART", "RUNNING"])]
            ... # doctest: +SKIP
        """
        t_from = filters.pop("create_time_from", None)
        t_to = filters.pop("create_time_to", None)
        params = {**filters, "orderby": orderby, "desc": desc}
        seen: set[str] = set()

        def extract(reply: Reply) -> tuple[list[Any], int | None] | None:
            return _docs_page(reply)

        for raw in self._pages(f"/datasets/{dataset_id}/documents", params, extract, page_size):
            doc = Document.from_api(raw)
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
            >>> states = {i: d.run for i, d in client.documents_by_id(ds.id, ids).items()}
            ... # doctest: +SKIP
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
    items = [d for d in items if isinstance(d, Mapping)]
    return items, int(total) if isinstance(total, (int, float)) else None
