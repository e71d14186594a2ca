"""Parse and stop routes, the current ones and the legacy ``/chunks`` pair ragflow-sdk uses."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from ..responses import construct, err, ok
from .base import Endpoint, Router, check_duplicates, clock


class ParsingRoutes(Router):
    """``/documents/parse``, ``/documents/stop`` and ``POST``/``DELETE /chunks``."""

    def routes(self, e: Endpoint) -> list[Route]:
        ds = "/api/v1/datasets/{dataset_id}"
        return [
            Route(f"{ds}/documents/parse", e(self.parse_documents), methods=["POST"]),
            Route(f"{ds}/documents/stop", e(self.stop_documents), methods=["POST"]),
            Route(f"{ds}/chunks", e(self.legacy_parse), methods=["POST"]),
            Route(f"{ds}/chunks", e(self.legacy_stop), methods=["DELETE"]),
        ]

    def _start(self, doc_id: str, *, clear_msg: bool) -> bool:
        gen = self.store.begin_parse(doc_id, clear_msg=clear_msg)
        if gen is None:
            return False
        self.worker.submit(doc_id, gen)
        return True

    async def parse_documents(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}.")
        req = await self._loose_json(request)
        ids = req.get("document_ids")
        if not isinstance(ids, list) or not ids:
            return err("`document_ids` is required")
        unique, dup_messages = check_duplicates(ids, "document")
        errors = list(dup_messages)
        valid = [i for i in unique if self.store.get_document(i, kb_id) is not None]
        missing = [i for i in unique if i not in set(valid)]
        if missing:
            errors.append(f"Documents not found: {missing}")
            if not valid:
                return err(f"Documents not found: {missing}")
        success = 0
        for doc_id in valid:
            doc = self.store.get_document(doc_id)
            if doc is None:
                errors.append(f"Document not found: {doc_id}")
                continue
            if doc["run"] == C.RUN_RUNNING:
                # the real server re-queues a running document; so does the sandbox
                self.store.update_document(doc_id, {"run": C.RUN_CANCEL}, kb_id=kb_id)
            if self._start(doc_id, clear_msg=doc["run"] == C.RUN_DONE):
                success += 1
        if missing:
            return err(f"Documents not found: {missing}")
        result: dict[str, Any] = {"success_count": success}
        if errors:
            result["errors"] = errors
        return ok(result)

    async def stop_documents(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}.")
        req = await self._loose_json(request)
        ids = req.get("document_ids")
        if not isinstance(ids, list) or not ids:
            return err("`document_ids` is required")
        unique, dup_messages = check_duplicates(ids, "document")
        errors = list(dup_messages)
        missing = [i for i in unique if self.store.get_document(i, kb_id) is None]
        if missing:
            return err(f"Documents not found: {missing}")
        success = 0
        for doc_id in unique:
            doc = self.store.get_document(doc_id)
            if doc is None:
                errors.append(f"Document not found: {doc_id}")
                continue
            unfinished = bool(doc["has_task"]) and doc["run"] == C.RUN_FAIL
            if doc["run"] not in (C.RUN_RUNNING, C.RUN_CANCEL) and not unfinished:
                errors.append(
                    "Can't stop parsing document that has not started or already completed"
                )
                continue
            note = f"\n{clock()} Task stopped by user."
            self.store.stop_parse(doc_id, note=note)
            success += 1
        result: dict[str, Any] = {"success_count": success}
        if errors:
            result["errors"] = errors
        return ok(result)

    async def legacy_parse(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        kb = self._own_dataset(kb_id)
        if kb is None:
            return err(f"You don't own the dataset {kb_id}.")
        if kb["pipeline_id"]:
            return err(
                "Datasets configured with an ingestion pipeline cannot be parsed with "
                "`/datasets/{dataset_id}/chunks`. Use `/documents/ingest` instead.",
                C.ARGUMENT_ERROR,
            )
        req = await self._loose_json(request)
        ids = req.get("document_ids")
        if not ids:
            return err("`document_ids` is required")
        unique, dup_messages = check_duplicates(ids, "document")
        missing = []
        success = 0
        for doc_id in unique:
            doc = self.store.get_document(doc_id, kb_id)
            if doc is None:
                missing.append(doc_id)
                continue
            if not self._start(doc_id, clear_msg=True):
                return err("Can't parse document that is currently being processed")
            success += 1
        if missing:
            return err(f"Documents not found: {missing}")
        if dup_messages:
            if success:
                return ok({"success_count": success, "errors": dup_messages})
            return err(";".join(dup_messages))
        return ok()

    async def legacy_stop(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}.")
        req = await self._loose_json(request)
        ids = req.get("document_ids")
        if not ids:
            return err("`document_ids` is required")
        unique, dup_messages = check_duplicates(ids, "document")
        success = 0
        for doc_id in unique:
            doc = self.store.get_document(doc_id, kb_id)
            if doc is None:
                return err(f"you don't own the document {doc_id}")
            if doc["run"] != C.RUN_RUNNING:
                return construct(
                    C.DATA_ERROR,
                    "Can't stop parsing document that has not started or already completed",
                    {"error_code": "DOC_STOP_PARSING_INVALID_STATE"},
                )
            self.store.stop_parse(doc_id, note=None)
            success += 1
        if dup_messages:
            if success:
                return ok({"success_count": success, "errors": dup_messages})
            return err(";".join(dup_messages))
        return ok()
