"""Chunks, retrieval and metadata of :class:`~ragflow_dagster.client.RAGFlowClient`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ragflow_dagster.client.models import Chunk, RetrievalResult
from ragflow_dagster.client.paging import Paging
from ragflow_dagster.client.params import batches, count_from, id_list
from ragflow_dagster.client.transport import MAX_IDS_PER_CALL, MAX_PAGE_SIZE, Reply

__all__ = ["Chunks"]


class Chunks(Paging):
    """Chunk calls, retrieval and batch metadata (which resolves conditions via the listing)."""

    def list_chunks(
        self,
        dataset_id: str,
        document_id: str,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        keywords: str | None = None,
        **filters: Any,
    ) -> tuple[list[Chunk], int]:
        """Return one page of a document's chunks and the total.

        Example:
            >>> chunks, total = client.list_chunks(ds.id, doc.id)  # doctest: +SKIP
        """
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        params = {**filters, "keywords": keywords, "page": page, "page_size": size}
        reply = self._request(
            "GET", f"/datasets/{dataset_id}/documents/{document_id}/chunks", params=params
        )
        items, total = _chunks_page(reply)
        return [Chunk.from_api(c) for c in items], total if total is not None else len(items)

    def iter_chunks(
        self,
        dataset_id: str,
        document_id: str,
        *,
        keywords: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        **filters: Any,
    ) -> Iterator[Chunk]:
        """Iterate over a document's chunks, paging transparently.

        Example:
            >>> text = "\\n".join(c.content for c in client.iter_chunks(ds.id, doc.id))
            ... # doctest: +SKIP
        """
        params = {**filters, "keywords": keywords}
        seen: set[str] = set()
        for raw in self._pages(
            f"/datasets/{dataset_id}/documents/{document_id}/chunks",
            params,
            _chunks_page,
            page_size,
        ):
            chunk = Chunk.from_api(raw)
            if chunk.id and chunk.id in seen:
                continue
            seen.add(chunk.id)
            yield chunk

    def add_chunk(
        self,
        dataset_id: str,
        document_id: str,
        content: str,
        *,
        important_keywords: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
        **extra: Any,
    ) -> Chunk:
        """Add a chunk to a document by hand; return it.

        Not resent when its outcome is unknown (raises
        :class:`~ragflow_dagster.client.errors.RAGFlowOutcomeUnknownError`).

        Example:
            >>> client.add_chunk(ds.id, doc.id, "RAGFlow is a RAG engine.")  # doctest: +SKIP
        """
        body: dict[str, Any] = {"content": content}
        if important_keywords is not None:
            body["important_keywords"] = list(important_keywords)
        if questions is not None:
            body["questions"] = list(questions)
        body.update({k: v for k, v in extra.items() if v is not None})
        reply = self._request(
            "POST",
            f"/datasets/{dataset_id}/documents/{document_id}/chunks",
            json=body,
            idempotent=False,
        )
        data = reply.data if isinstance(reply.data, Mapping) else {}
        raw = data.get("chunk", data)
        return Chunk.from_api(raw if isinstance(raw, Mapping) else {})

    def update_chunk(
        self,
        dataset_id: str,
        document_id: str,
        chunk_id: str,
        *,
        content: str | None = None,
        important_keywords: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
        available: bool | None = None,
        **extra: Any,
    ) -> None:
        """Change a chunk's content, keywords, questions or availability (PATCH, else PUT).

        Example:
            >>> client.update_chunk(ds.id, doc.id, chunk.id, available=False)  # doctest: +SKIP
        """
        body: dict[str, Any] = {}
        if content is not None:
            body["content"] = content
        if important_keywords is not None:
            body["important_keywords"] = list(important_keywords)
        if questions is not None:
            body["questions"] = list(questions)
        if available is not None:
            body["available"] = bool(available)
        body.update({k: v for k, v in extra.items() if v is not None})
        if not body:
            raise ValueError("update_chunk needs at least one field to change")
        self._update_with_fallback(
            "chunk", f"/datasets/{dataset_id}/documents/{document_id}/chunks/{chunk_id}", body
        )

    def delete_chunks(self, dataset_id: str, document_id: str, chunk_ids: Sequence[str]) -> int:
        """Delete chunks by id; return how many were asked for deletion.

        An empty list sends nothing (a missing list means "all chunks" to the server).

        Example:
            >>> client.delete_chunks(ds.id, doc.id, [chunk.id])  # doctest: +SKIP
            1
        """
        unique_ids = id_list(chunk_ids, "chunk_ids")
        deleted = 0
        for batch in batches(unique_ids, MAX_IDS_PER_CALL):
            reply = self._retry_tolerant(
                "DELETE",
                f"/datasets/{dataset_id}/documents/{document_id}/chunks",
                {"chunk_ids": batch},
                "rm_chunk deleted chunks",
            )
            if reply is None:
                deleted += len(batch)
                continue
            deleted += count_from(reply.data, "deleted", "success_count", default=len(batch))
        return deleted

    # ------------------------------------------------------------------ retrieval
    def retrieve(
        self,
        question: str,
        *,
        dataset_ids: Sequence[str],
        document_ids: Sequence[str] | None = None,
        page: int = 1,
        page_size: int = 30,
        similarity_threshold: float = 0.2,
        vector_similarity_weight: float = 0.3,
        top_k: int = 1024,
        keyword: bool = False,
        highlight: bool = False,
        metadata_condition: Mapping[str, Any] | None = None,
        rerank_id: str | None = None,
        cross_languages: Sequence[str] | None = None,
        use_kg: bool | None = None,
        toc_enhance: bool | None = None,
    ) -> RetrievalResult:
        """Search datasets for chunks relevant to ``question``.

        ``metadata_condition`` filters on documents' ``meta_fields``:
        ``{"logic": "and", "conditions": [{"name": "author", "comparison_operator": "is",
        "value": "bob"}]}``.

        Example:
            >>> res = client.retrieve("What is RAGFlow?", dataset_ids=[ds.id])  # doctest: +SKIP
            >>> [(c.document_name, round(c.similarity, 2)) for c in res.chunks]  # doctest: +SKIP
        """
        body: dict[str, Any] = {
            "question": question,
            "dataset_ids": id_list(dataset_ids, "dataset_ids"),
            "page": page,
            "page_size": max(1, min(int(page_size), MAX_PAGE_SIZE)),
            "similarity_threshold": similarity_threshold,
            "vector_similarity_weight": vector_similarity_weight,
            "top_k": top_k,
            "keyword": keyword,
            "highlight": highlight,
        }
        optional = {
            "document_ids": id_list(document_ids, "document_ids") if document_ids else None,
            "metadata_condition": dict(metadata_condition) if metadata_condition else None,
            "rerank_id": rerank_id,
            "cross_languages": list(cross_languages) if cross_languages else None,
            "use_kg": use_kg,
            "toc_enhance": toc_enhance,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        reply = self._request("POST", "/retrieval", json=body)
        return RetrievalResult.from_api(reply.data if isinstance(reply.data, Mapping) else None)

    # ------------------------------------------------------------------ metadata
    def metadata_summary(
        self, dataset_id: str, *, document_ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Return each metadata key's values and counts across a dataset's documents.

        Today's server answers ``{key: {"type": t, "values": [[value, count], ...]}}``, older ones
        ``{key: [[value, count], ...]}``; both come back in the newer shape.

        Example:
            >>> client.metadata_summary(ds.id)  # doctest: +SKIP
            {'author': {'type': 'string', 'values': [['alice', 2], ['bob', 1]]}}
        """
        params = {}
        if document_ids:
            params["doc_ids"] = ",".join(id_list(document_ids, "document_ids"))
        reply = self._request("GET", f"/datasets/{dataset_id}/metadata/summary", params=params)
        data = reply.data if isinstance(reply.data, Mapping) else {}
        summary = data.get("summary", data)
        if not isinstance(summary, Mapping):
            return {}
        return {
            key: dict(value)
            if isinstance(value, Mapping)
            else {"type": None, "values": list(value or [])}
            for key, value in summary.items()
        }

    def update_metadata(
        self,
        dataset_id: str,
        *,
        document_ids: Sequence[str] | None = None,
        metadata_condition: Mapping[str, Any] | None = None,
        updates: Sequence[Mapping[str, Any]] = (),
        deletes: Sequence[Mapping[str, Any]] = (),
        all_documents: bool = False,
    ) -> dict[str, Any]:
        """Batch-update or delete metadata keys of many documents at once.

        ``updates`` items are ``{"key", "value"[, "match"]}``; ``deletes`` items are
        ``{"key"[, "value"]}``. Select documents by ``document_ids`` and/or
        ``metadata_condition`` (both: the intersection). The server treats "no selector" as
        "every document"; this method requires ``all_documents=True`` for that, and sends
        nothing for an empty ``document_ids`` list. Returns ``{"updated", "matched_docs"}``.

        Example:
            >>> client.update_metadata(ds.id, document_ids=[doc.id],  # doctest: +SKIP
            ...                        updates=[{"key": "team", "value": "docs"}])
            {'updated': 1, 'matched_docs': 1}
        """
        if document_ids is not None and len(document_ids) == 0 and not metadata_condition:
            return {"updated": 0, "matched_docs": 0}
        if document_ids is None and not metadata_condition and not all_documents:
            raise ValueError(
                "give document_ids or metadata_condition, or all_documents=True to change every "
                "document of the dataset"
            )
        ids: list[str] | None = id_list(document_ids, "document_ids") if document_ids else None
        if metadata_condition and ids is None:
            # The server intersects the condition with the (empty) id list, matching nothing, so
            # resolve the condition through the document listing first.
            ids = [
                d.id for d in self.iter_documents(dataset_id, metadata_condition=metadata_condition)
            ]
            if not ids:
                return {"updated": 0, "matched_docs": 0}
        body = {"updates": [dict(u) for u in updates], "deletes": [dict(d) for d in deletes]}
        if ids is None:  # all_documents
            reply = self._request(
                "POST", f"/datasets/{dataset_id}/metadata/update", json={"selector": {}, **body}
            )
            return dict(reply.data) if isinstance(reply.data, Mapping) else {}
        total: dict[str, Any] = {"updated": 0, "matched_docs": 0}
        for batch in batches(ids, MAX_IDS_PER_CALL):
            selector: dict[str, Any] = {"document_ids": batch}
            if metadata_condition:
                selector["metadata_condition"] = dict(metadata_condition)
            reply = self._request(
                "POST",
                f"/datasets/{dataset_id}/metadata/update",
                json={"selector": selector, **body},
            )
            data = reply.data if isinstance(reply.data, Mapping) else {}
            for key in ("updated", "matched_docs"):
                total[key] += int(data.get(key) or 0)
        return total


def _chunks_page(reply: Reply) -> tuple[list[Any], int | None] | None:
    """Items and total of a chunk page; None when the reply lacks the listing's shape."""
    data = reply.data
    if not isinstance(data, Mapping):
        return None
    items = [c for c in data.get("chunks") or [] if isinstance(c, Mapping)]
    total = data.get("total")
    return items, int(total) if isinstance(total, (int, float)) else None
