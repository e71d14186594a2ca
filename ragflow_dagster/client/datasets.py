"""Datasets of :class:`~ragflow_dagster.client.RAGFlowClient`: create, get, find, update, delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ragflow_dagster.client.errors import (
    RAGFlowError,
    RAGFlowNotFoundError,
    RAGFlowOutcomeUnknownError,
)
from ragflow_dagster.client.models import Dataset
from ragflow_dagster.client.params import batches, count_from, id_list, is_not_found
from ragflow_dagster.client.transport import API_PREFIX, MAX_IDS_PER_CALL, Transport

__all__ = ["Datasets"]


class Datasets(Transport):
    """Dataset calls (the listing of all datasets is :meth:`Paging.iter_datasets`)."""

    def create_dataset(
        self,
        name: str,
        *,
        chunk_method: str | None = None,
        parser_config: Mapping[str, Any] | None = None,
        embedding_model: str | None = None,
        description: str | None = None,
        permission: str | None = None,
        **extra: Any,
    ) -> Dataset:
        """Create a dataset and return it.

        Only the options given are sent (the server applies its defaults to the rest). Today's
        server renames a duplicate name to ``name(1)``; older ones refuse it with an error
        (:class:`RAGFlowConflictError`). Use :func:`~ragflow_dagster.client.ensure_dataset` to
        get-or-create by name.

        Example:
            >>> ds = client.create_dataset("manuals", chunk_method="naive",  # doctest: +SKIP
            ...                            parser_config={"chunk_token_num": 256})
        """
        body: dict[str, Any] = {"name": name}
        for key, value in (
            ("chunk_method", chunk_method),
            ("parser_config", dict(parser_config) if parser_config is not None else None),
            ("embedding_model", embedding_model),
            ("description", description),
            ("permission", permission),
            *extra.items(),
        ):
            if value is not None:
                body[key] = value
        attempt = 0
        while True:
            try:
                reply = self._request("POST", "/datasets", json=body, idempotent=False)
                break
            except RAGFlowOutcomeUnknownError:
                # the answer was lost: the listing says whether the dataset landed; if it did not,
                # sending again cannot make a duplicate
                found = self.find_dataset(name)
                if found is not None:
                    return found
                attempt += 1
                if attempt > self.max_retries:
                    raise
        if isinstance(reply.data, Mapping) and reply.data.get("id"):
            return Dataset.from_api(reply.data)
        found = self.find_dataset(name)  # old servers answer {"code": 0} without data
        if found is None:
            raise RAGFlowError(
                f"dataset {name!r} was created but cannot be found",
                method="POST",
                route=API_PREFIX + "/datasets",
            )
        return found

    def get_dataset(self, dataset_id: str) -> Dataset:
        """Return the dataset with this id.

        Raises:
            RAGFlowNotFoundError: No such dataset visible to this key.

        Example:
            >>> client.get_dataset("3b4de7d4241d11f0a6a79f24fc270c7f").name  # doctest: +SKIP
            'manuals'
        """
        reply = self._request("GET", "/datasets", params={"id": dataset_id, "page": 1})
        for raw in reply.data or []:
            if isinstance(raw, Mapping) and raw.get("id") == dataset_id:
                return Dataset.from_api(raw)
        raise RAGFlowNotFoundError(
            f"dataset {dataset_id} not found", method="GET", route=API_PREFIX + "/datasets"
        )

    def find_dataset(self, name: str) -> Dataset | None:
        """Return the dataset with this exact name (case-insensitive, as the server), or ``None``.

        Example:
            >>> client.find_dataset("manuals") is None  # doctest: +SKIP
            False
        """
        try:
            reply = self._request("GET", "/datasets", params={"name": name, "page": 1})
        except RAGFlowNotFoundError:
            return None
        wanted = name.strip().casefold()
        for raw in reply.data or []:
            if isinstance(raw, Mapping) and str(raw.get("name", "")).casefold() == wanted:
                return Dataset.from_api(raw)
        return None

    def update_dataset(self, dataset_id: str, **fields: Any) -> Dataset:
        """Change a dataset's settings (``name``, ``chunk_method``, ``parser_config``, ...).

        ``None`` values are not sent. Returns the dataset as stored after the change.

        Example:
            >>> client.update_dataset(ds.id, description="Product manuals")  # doctest: +SKIP
        """
        body = {k: v for k, v in fields.items() if v is not None}
        if not body:
            return self.get_dataset(dataset_id)
        reply = self._request("PUT", f"/datasets/{dataset_id}", json=body)
        if isinstance(reply.data, Mapping) and reply.data.get("id"):
            return Dataset.from_api(reply.data)
        return self.get_dataset(dataset_id)

    def delete_datasets(self, ids: Sequence[str]) -> int:
        """Delete these datasets (and their documents); return how many were deleted.

        An empty list sends nothing. Ids go out in lists of at most 100; ``null`` is never sent
        (it meant "delete all" before v0.25).

        Example:
            >>> client.delete_datasets([ds.id])  # doctest: +SKIP
            1
        """
        unique_ids = id_list(ids, "ids")
        deleted = 0
        for batch in batches(unique_ids, MAX_IDS_PER_CALL):
            reply = self._retry_tolerant("DELETE", "/datasets", {"ids": batch}, is_not_found)
            if reply is None:  # a lost earlier attempt deleted some or all: finish the rest
                left = [i for i in batch if self._dataset_exists(i)]
                if left:
                    self._request("DELETE", "/datasets", json={"ids": left})
                deleted += len(batch)
                continue
            deleted += count_from(reply.data, "success_count", "deleted", default=len(batch))
        return deleted

    def _dataset_exists(self, dataset_id: str) -> bool:
        try:
            self.get_dataset(dataset_id)
        except RAGFlowNotFoundError:
            return False
        return True
