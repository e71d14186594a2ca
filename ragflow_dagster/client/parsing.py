"""Parsing and index building of :class:`~ragflow_dagster.client.RAGFlowClient`: parse/stop
documents, GraphRAG and RAPTOR tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ragflow_dagster.client.models import IndexTask
from ragflow_dagster.client.params import batches, id_list
from ragflow_dagster.client.transport import MAX_IDS_PER_CALL, Transport

__all__ = ["Parsing"]


class Parsing(Transport):
    """Parse queueing and the dataset-wide GraphRAG/RAPTOR index tasks."""

    def parse_documents(self, dataset_id: str, ids: Sequence[str]) -> None:
        """Queue documents for parsing (returns at once; poll :meth:`iter_documents`).

        Uses ``POST /datasets/{id}/chunks``, which every version has. Re-parsing a parsed
        document clears its chunks first. Ids go out in lists of at most 100.

        Raises:
            RAGFlowConflictError: A document is being parsed already (first attempt only; a
                retry that meets its own earlier, lost request counts as success).

        Example:
            >>> client.parse_documents(ds.id, [d.id for d in docs])  # doctest: +SKIP
        """
        unique_ids = id_list(ids, "ids")
        for batch in batches(unique_ids, MAX_IDS_PER_CALL):
            self._retry_tolerant(
                "POST", f"/datasets/{dataset_id}/chunks", {"document_ids": batch}, "processed"
            )

    def stop_parsing(self, dataset_id: str, ids: Sequence[str]) -> None:
        """Stop parsing documents (``DELETE /datasets/{id}/chunks``; every version has it).

        Example:
            >>> client.stop_parsing(ds.id, [doc.id])  # doctest: +SKIP
        """
        unique_ids = id_list(ids, "ids")
        for batch in batches(unique_ids, MAX_IDS_PER_CALL):
            self._retry_tolerant(
                "DELETE",
                f"/datasets/{dataset_id}/chunks",
                {"document_ids": batch},
                "already completed",
            )

    # ------------------------------------------------------------------ GraphRAG / RAPTOR
    def run_graphrag(self, dataset_id: str) -> str:
        """Start building the dataset's knowledge graph; return the task id.

        Example:
            >>> task_id = client.run_graphrag(ds.id)  # doctest: +SKIP
        """
        return self._run_index(dataset_id, "run_graphrag", "graphrag_task_id")

    def graphrag_status(self, dataset_id: str) -> IndexTask | None:
        """Return the dataset's knowledge-graph task, or ``None`` if none was ever started.

        Example:
            >>> client.graphrag_status(ds.id).done  # doctest: +SKIP
            True
        """
        return self._trace_index(dataset_id, "trace_graphrag")

    def get_knowledge_graph(self, dataset_id: str) -> dict[str, Any]:
        """Return the dataset's knowledge graph (``{"graph": ..., "mind_map": ...}``).

        Example:
            >>> len(client.get_knowledge_graph(ds.id)["graph"].get("nodes", []))  # doctest: +SKIP
        """
        reply = self._request("GET", f"/datasets/{dataset_id}/knowledge_graph")
        return dict(reply.data) if isinstance(reply.data, Mapping) else {}

    def delete_graphrag(self, dataset_id: str) -> None:
        """Delete the dataset's knowledge graph.

        Example:
            >>> client.delete_graphrag(ds.id)  # doctest: +SKIP
        """
        self._request("DELETE", f"/datasets/{dataset_id}/knowledge_graph")

    def run_raptor(self, dataset_id: str) -> str:
        """Start building the dataset's RAPTOR summaries; return the task id.

        Example:
            >>> task_id = client.run_raptor(ds.id)  # doctest: +SKIP
        """
        return self._run_index(dataset_id, "run_raptor", "raptor_task_id")

    def raptor_status(self, dataset_id: str) -> IndexTask | None:
        """Return the dataset's RAPTOR task, or ``None`` if none was ever started.

        Example:
            >>> client.raptor_status(ds.id)  # doctest: +SKIP
        """
        return self._trace_index(dataset_id, "trace_raptor")

    def _run_index(self, dataset_id: str, route: str, key: str) -> str:
        reply = self._request("POST", f"/datasets/{dataset_id}/{route}", idempotent=False)
        data = reply.data if isinstance(reply.data, Mapping) else {}
        return str(data.get(key) or data.get("task_id") or data.get("id") or "")

    def _trace_index(self, dataset_id: str, route: str) -> IndexTask | None:
        reply = self._request("GET", f"/datasets/{dataset_id}/{route}")
        data = reply.data
        if not isinstance(data, Mapping) or not data:
            return None
        return IndexTask.from_api(data)
