"""Document metadata routes: summary, batch update, flattened view and metadata config."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from .. import metadata as M
from .. import validation as V
from ..models import AutoMetadataConfig
from ..records import doc_api
from ..responses import err, ok
from .base import Endpoint, Router, merge_doc_parser_config


class MetadataRoutes(Router):
    """``/metadata/*`` of a dataset, ``/documents/metadatas`` and the flattened view."""

    def routes(self, e: Endpoint) -> list[Route]:
        api = "/api/v1"
        ds = f"{api}/datasets/{{dataset_id}}"
        doc = f"{ds}/documents/{{document_id}}"
        return [
            Route(
                f"{api}/datasets/metadata/flattened", e(self.flattened_metadata), methods=["GET"]
            ),
            Route(f"{ds}/metadata/config", e(self.get_metadata_config), methods=["GET"]),
            Route(f"{ds}/metadata/config", e(self.put_metadata_config), methods=["PUT"]),
            Route(f"{doc}/metadata/config", e(self.put_doc_metadata_config), methods=["PUT"]),
            # before the documents router: PATCH /documents/{document_id} would take it
            Route(f"{ds}/documents/metadatas", e(self.metadata_update), methods=["PATCH"]),
            Route(f"{ds}/metadata/summary", e(self.metadata_summary), methods=["GET"]),
            Route(f"{ds}/metadata/update", e(self.metadata_update), methods=["POST"]),
        ]

    async def flattened_metadata(self, request: Request) -> Response:
        ids = [d for d in request.query_params.get("dataset_ids", "").split(",") if d]
        if not ids:
            return err("Lack of dataset_ids in query parameters")
        try:
            V.check_ids_limit(ids, "dataset_ids")
        except ValueError as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        for kb_id in ids:
            if self._own_dataset(kb_id) is None:
                return self._no_permission(kb_id)
        return ok(self.store.flattened_metas(ids))

    async def get_metadata_config(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        kb = self._own_dataset(kb_id)
        if kb is None:
            return self._no_permission(kb_id)
        pc = kb["parser_config"]
        return ok(
            {
                "metadata": pc.get("metadata") or [],
                "built_in_metadata": pc.get("built_in_metadata") or [],
            }
        )

    async def put_metadata_config(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        try:
            cfg = V.validate(AutoMetadataConfig, await self._strict_json(request))
        except V.BadRequest as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        except V.ValidationFailed as exc:
            return err(exc.message(), C.ARGUMENT_ERROR)
        kb = self._own_dataset(kb_id)
        if kb is None:
            return self._no_permission(kb_id)
        pc = dict(kb["parser_config"])
        pc["metadata"] = cfg["metadata"]
        pc["built_in_metadata"] = cfg["built_in_metadata"]
        self.store.update_dataset(kb_id, {"parser_config": pc})
        return ok(cfg)

    async def put_doc_metadata_config(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        if self._own_dataset(kb_id) is None:
            return err("you don't own the dataset")
        if self.store.get_document(doc_id, kb_id) is None:
            return err(f"document {doc_id} not found in dataset {kb_id}")
        req = await self._loose_json(request)
        if "metadata" not in req:
            return err("metadata is required", C.ARGUMENT_ERROR)
        merge_doc_parser_config(self.store, doc_id, {"metadata": req["metadata"]})
        row = self.store.get_document(doc_id)
        assert row is not None
        out = doc_api(row)
        for new, old in (("dataset_id", "kb_id"), ("chunk_method", "parser_id")):
            out[old] = out.pop(new)
        out["chunk_num"], out["token_num"] = out.pop("chunk_count"), out.pop("token_count")
        out["run"] = row["run"]
        return ok(out)

    async def metadata_summary(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}. ")
        raw = request.query_params.get("doc_ids", "")
        doc_ids = raw.split(",") if raw else None
        try:
            V.check_ids_limit(doc_ids, "doc_ids")
        except ValueError as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        metas = self.store.metas_of(kb_id, doc_ids)
        return ok({"summary": M.summary(metas)})

    async def metadata_update(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        dot = "." if request.method == "PATCH" else ". "
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}{dot}")
        req = await self._loose_json(request)
        selector = req.get("selector", {}) or {}
        updates = req.get("updates", []) or []
        deletes = req.get("deletes", []) or []
        if not isinstance(selector, dict):
            return err("selector must be an object.")
        if not isinstance(updates, list) or not isinstance(deletes, list):
            return err("updates and deletes must be lists.")
        condition = selector.get("metadata_condition", {}) or {}
        if condition and not isinstance(condition, dict):
            return err("metadata_condition must be an object.")
        doc_ids = selector.get("document_ids", []) or []
        if doc_ids and not isinstance(doc_ids, list):
            return err("document_ids must be a list.")
        for upd in updates:
            if not isinstance(upd, dict) or not upd.get("key") or "value" not in upd:
                return err("Each update requires key and value.")
        for item in deletes:
            if not isinstance(item, dict) or not item.get("key"):
                return err("Each delete requires key.")
        target: set[str] = set()
        if doc_ids:
            known = set(self.store.doc_ids_of(kb_id))
            invalid = [i for i in doc_ids if i not in known]
            if invalid:
                return err(
                    f"These documents do not belong to dataset {kb_id}: {', '.join(invalid)}"
                )
            target = set(doc_ids)
        if condition:
            metas = self.store.flattened_metas([kb_id])
            matched = set(
                M.meta_filter(metas, M.convert_conditions(condition), condition.get("logic", "and"))
            )
            target &= matched
            if condition.get("conditions") and not target:
                return ok({"updated": 0, "matched_docs": 0})
        targets = sorted(target)
        current = self.store.metas_of(kb_id, targets) if targets else {}
        changes = M.batch_edit(current, targets, updates, deletes)
        for doc_id, meta in changes.items():
            self.store.set_meta_fields(kb_id, doc_id, meta)
        return ok({"updated": len(changes), "matched_docs": len(targets)})
