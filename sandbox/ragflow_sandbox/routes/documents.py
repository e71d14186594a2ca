"""Document routes: list with every filter, download, update, delete (uploads: ``uploads``)."""

from __future__ import annotations

import json
import math
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from .. import metadata as M
from .. import validation as V
from ..models import DeleteDocumentReq, UpdateDocumentReq, normalize_raptor
from ..records import doc_api
from ..responses import construct, err, json_result, ok
from .base import Endpoint, Router, merge_doc_parser_config, query_list

_MIME = {
    "pdf": "application/pdf",
    "txt": "text/plain",
    "md": "text/markdown",
    "csv": "text/csv",
    "json": "application/json",
    "html": "text/html",
    "htm": "text/html",
    "xml": "application/xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


def _mimetype(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MIME.get(suffix, "application/octet-stream")


class DocumentRoutes(Router):
    """``/datasets/{id}/documents`` and ``/datasets/{id}/documents/{doc}``."""

    def routes(self, e: Endpoint) -> list[Route]:
        api = "/api/v1"
        ds = f"{api}/datasets/{{dataset_id}}"
        doc = f"{ds}/documents/{{document_id}}"
        return [
            Route(f"{ds}/documents", e(self.list_documents), methods=["GET"]),
            Route(f"{ds}/documents", e(self.delete_documents), methods=["DELETE"]),
            Route(doc, e(self.download_document), methods=["GET"]),
            Route(doc, e(self.update_document), methods=["PATCH", "PUT"]),
            Route(
                f"{api}/documents/{{document_id}}", e(self.download_any_document), methods=["GET"]
            ),
        ]

    async def list_documents(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}. ")
        q = request.query_params
        if q.get("type") == "filter":
            return self._document_filters(kb_id, q)
        page = V.rest_page(q.get("page", C.DEFAULT_PAGE))
        page_size = V.rest_page_size(q.get("page_size", C.DEFAULT_PAGE_SIZE))
        orderby = q.get("orderby", "create_time")
        if orderby not in ("create_time", "update_time", "name"):
            return err(f"invalid orderby field: {orderby}", C.ARGUMENT_ERROR)
        desc = str(q.get("desc", "true")).strip().lower() != "false"
        keywords = q.get("keywords", "")
        suffix = q.getlist("suffix")
        types = q.getlist("types")
        if types:
            invalid = {t for t in types if t not in C.VALID_FILE_TYPES}
            if invalid:
                plural = "s" if len(invalid) > 1 else ""
                return err(f"Invalid filter conditions: {', '.join(invalid)} type{plural}")
        runs = [
            C.RUN_CODES.get(s.upper(), s)
            for s in query_list(request, "run") + query_list(request, "run_status")
        ]
        invalid_runs = {s for s in runs if s not in C.RUN_CODES.values()}
        if invalid_runs:
            return err(f"Invalid filter run status conditions: {', '.join(invalid_runs)}")
        problem, id_filter, empty_meta, meta_key = self._metadata_doc_filter(kb_id, q)
        if problem is not None:
            return err(problem)
        doc_name = q.get("name")
        doc_id = q.get("id")
        if doc_id:
            if self.store.get_document(doc_id, kb_id) is None:
                return err(f"you don't own the document {doc_id}")
            id_filter = [doc_id]
        if doc_name and not self.store.doc_name_taken(kb_id, doc_name):
            return err(f"you don't own the document {doc_name}")
        ids_param = q.getlist("ids")
        try:
            V.check_ids_limit(ids_param)
        except ValueError as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        if doc_id and ids_param:
            raise ValueError("not enough values to unpack (expected 4, got 2)")
        if ids_param:
            id_filter = ids_param

        where: list[str] = []
        args: list[Any] = []
        if keywords:
            where.append("instr(lower(name), ?) > 0")
            args.append(keywords.lower())
        if runs:
            where.append(f"run IN ({','.join('?' * len(runs))})")
            args.extend(runs)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            args.extend(types)
        if suffix:
            where.append(f"suffix IN ({','.join('?' * len(suffix))})")
            args.extend(suffix)
        if doc_name:
            where.append("name=?")
            args.append(doc_name)
        if empty_meta:
            where.append("meta_fields IS NULL")

        if id_filter is not None and len(id_filter) <= 500:
            unique = list(dict.fromkeys(id_filter))
            where.append(f"id IN ({','.join('?' * len(unique))})")
            args.extend(unique)
            id_filter = None
        if id_filter is not None and meta_key and not where and orderby != "update_time":
            # paging through a metadata filter: keep the filtered order between pages
            base, wanted_ids = self.store.ordered_doc_ids(kb_id, orderby), id_filter

            def filtered() -> list[str]:
                wanted = set(wanted_ids)
                return [i for i in base if i in wanted]

            ordered = self.store.cached_filter(kb_id, f"order|{orderby}|{meta_key}", filtered)
        else:
            ordered = self.store.ordered_doc_ids(kb_id, orderby, where=where, args=args)
            if id_filter is not None:
                wanted = set(id_filter)
                ordered = [i for i in ordered if i in wanted]
        total = len(ordered)
        if desc:
            end = total - (page - 1) * page_size
            start = max(end - page_size, 0)
            page_ids = ordered[start:end][::-1] if end > 0 else []
        else:
            page_ids = ordered[(page - 1) * page_size : page * page_size]
        time_from = int(q.get("create_time_from", 0))
        time_to = int(q.get("create_time_to", 0))
        docs = self.store.documents_json(
            page_ids,
            nickname=self.store.nickname(),
            empty_meta=empty_meta,
            time_from=time_from,
            time_to=time_to,
        )
        body = (
            f'{{"code":0,"message":"success","data":{{"total":{total},"docs":[{",".join(docs)}]}}}}'
        )
        return Response(body.encode("utf-8"), media_type="application/json")

    def _document_filters(self, kb_id: str, q: Any) -> Response:
        ids = self.store.ordered_doc_ids(kb_id, "create_time")
        rows = self.store.documents_by_ids(ids)
        suffix: dict[str, int] = {}
        run_status: dict[str, int] = {}
        metas: dict[str, dict[str, int]] = {}
        for row in rows:
            suffix[row["suffix"]] = suffix.get(row["suffix"], 0) + 1
            run_status[row["run"]] = run_status.get(row["run"], 0) + 1
            if row.get("meta_fields"):
                for key, value in json.loads(row["meta_fields"]).items():
                    for item in value if isinstance(value, list) else [value]:
                        metas.setdefault(key, {})
                        metas[key][str(item)] = metas[key].get(str(item), 0) + 1
        payload = {"suffix": suffix, "run_status": run_status, "metadata": metas}
        return json_result({"total": len(rows), "filter": payload})

    def _metadata_doc_filter(
        self, kb_id: str, q: Any
    ) -> tuple[str | None, list[str] | None, bool, str | None]:
        """Apply ``metadata_condition`` / ``metadata`` / ``return_empty_metadata``.

        Returns ``(error, doc_ids or None, empty_metadata, cache_key or None)``.
        """
        empty = str(q.get("return_empty_metadata", "false")).lower() == "true"
        try:
            condition = json.loads(q.get("metadata_condition", "{}"))
        except ValueError:
            return (
                f"metadata_condition must be valid JSON: {q.get('metadata_condition')}.",
                None,
                empty,
                None,
            )
        try:
            simple = json.loads(q.get("metadata", "{}"))
        except ValueError:
            return "metadata must be valid JSON.", None, empty, None
        if isinstance(simple, dict) and simple.get("empty_metadata"):
            empty = True
            simple = {k: v for k, v in simple.items() if k != "empty_metadata"}
        if empty:
            return None, None, True, None
        if condition and not isinstance(condition, dict):
            return "metadata_condition must be an object.", None, empty, None
        if simple and not isinstance(simple, dict):
            return "metadata must be an object.", None, empty, None
        if not condition and not simple:
            return None, None, empty, None
        key = json.dumps([condition, simple], sort_keys=True)

        def compute() -> list[str]:
            metas = self.store.flattened_metas([kb_id])
            result: set[str] | None = None
            if condition:
                result = set(
                    M.meta_filter(
                        metas, M.convert_conditions(condition), condition.get("logic", "and")
                    )
                )
                if condition.get("conditions") and not result:
                    return []
            if simple:
                found: set[str] | None = None
                for name, values in simple.items():
                    if not values:
                        continue
                    values = values if isinstance(values, list) else [values]
                    values = [str(v) for v in values if v is not None and str(v).strip()]
                    if not values:
                        continue
                    ids: set[str] = set()
                    for value in values:
                        ids.update(metas.get(name, {}).get(value, []))
                    found = ids if found is None else found & ids
                    if not found:
                        return []
                if found is not None:
                    result = found if result is None else result & found
            return sorted(result) if result is not None else ["*"]

        ids = self.store.cached_filter(kb_id, key, compute)
        if ids == ["*"]:
            return None, None, empty, None
        return None, ids, empty, key

    async def delete_documents(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        try:
            payload = await self._strict_json(request)
            req = V.validate(DeleteDocumentReq, payload)
        except V.BadRequest as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        except V.ValidationFailed as exc:
            return err(exc.message(), C.ARGUMENT_ERROR)
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}. ")
        ids = req["ids"] or []
        delete_all = req["delete_all"]
        if not delete_all and not ids:
            return err(f"should either provide doc ids or set delete_all(true), dataset: {kb_id}. ")
        if ids and delete_all:
            return err(f"should not provide both doc ids and delete_all(true), dataset: {kb_id}. ")
        if delete_all:
            ids = self.store.doc_ids_of(kb_id)
        existing = set(self.store.doc_ids_of(kb_id)) if len(ids) > 200 else None
        invalid = [
            i
            for i in ids
            if (
                i not in existing
                if existing is not None
                else self.store.get_document(i, kb_id) is None
            )
        ]
        if invalid:
            return err(
                f"These documents do not belong to dataset {kb_id} or Document not found: "
                f"{', '.join(invalid)}"
            )
        unique = list(dict.fromkeys(ids))
        self.store.delete_documents(kb_id, unique)
        return ok({"deleted": len(ids)})

    async def download_document(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        if self._own_dataset(kb_id) is None or self.store.get_document(doc_id) is None:
            return err("document not found")
        doc = self.store.get_document(doc_id, kb_id)
        if doc is None:
            return err(f"The dataset not own the document {doc_id}.")
        return await self._send_blob(doc)

    async def download_any_document(self, request: Request) -> Response:
        doc_id = request.path_params["document_id"]
        doc = self.store.get_document(doc_id)
        if doc is None or self._own_dataset(doc["kb_id"]) is None:
            return err("document not found")
        return await self._send_blob(doc)

    async def _send_blob(self, doc: dict[str, Any]) -> Response:
        path = self.store.blob_path(doc["kb_id"], doc["id"])
        data = path.read_bytes() if path.exists() else b""  # off the loop (SandboxApp.offload)
        if not data:
            return construct(C.DATA_ERROR, "This file is empty.")
        name = doc["name"] or doc["id"]
        disposition = f"attachment; filename*=UTF-8''{quote(name)}"
        return Response(
            data, media_type=_mimetype(name), headers={"Content-Disposition": disposition}
        )

    async def update_document(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        req = await self._loose_json(request)
        pc = req.get("parser_config")
        if isinstance(pc, dict) and isinstance(pc.get("raptor"), dict):
            pc["raptor"] = normalize_raptor(pc["raptor"])
        if "name" in req and req["name"] is None:
            return err("Field: <name> - Message: <Input should be a valid string> - Value: <None>")
        kb = self._own_dataset(kb_id)
        if kb is None:
            return err("you don't own the dataset")
        doc = self.store.get_document(doc_id, kb_id)
        if doc is None:
            return err("the dataset doesn't own the document")
        try:
            upd = V.validate(UpdateDocumentReq, req)
        except V.ValidationFailed as exc:
            return err(exc.message())
        if upd["chunk_count"] is not None and upd["chunk_count"] != int(doc["chunk_num"] or 0):
            return err("can't change `chunk_count`")
        if upd["token_count"] is not None and upd["token_count"] != int(doc["token_num"] or 0):
            return err("can't change `token_count`")
        if upd["progress"] is not None and not math.isclose(
            upd["progress"], float(doc["progress"] or 0)
        ):
            return err("can't change `progress`")
        new_name = req.get("name")
        if "name" in req and new_name != doc["name"]:
            if not isinstance(new_name, str):
                return err(
                    f"AttributeError('{type(new_name).__name__}' object has no attribute 'encode')",
                    100,
                )
            if len(new_name.encode("utf-8")) > C.FILE_NAME_LEN_LIMIT:
                return err(
                    f"File name must be {C.FILE_NAME_LEN_LIMIT} bytes or less.", C.ARGUMENT_ERROR
                )
            if (
                PurePosixPath(new_name.lower()).suffix
                != PurePosixPath((doc["name"] or "").lower()).suffix
            ):
                return err("The extension of file can't be changed", C.ARGUMENT_ERROR)
            if any(d["name"] == new_name for d in self.store.docs_named(kb_id, new_name)):
                return err("Duplicated document name in the same dataset.")
        if "chunk_method" in req:
            method = req["chunk_method"]
            if method is not None and len(str(method)) == 0:
                return err("`chunk_method` (empty string) is not valid")
            name = doc["name"] or ""
            if (
                (doc["type"] == C.FILE_VISUAL and method != "picture")
                or (doc["type"] == C.FILE_AURAL and method != "audio")
                or (re.search(r"\.(ppt|pptx|pages)$", name) and method != "presentation")
                or (re.search(r"\.(msg|eml)$", name) and method != "email")
            ):
                return err("the automatically detected parser type cannot be changed")
        if "meta_fields" in req:
            meta = upd["meta_fields"]
            self.store.set_meta_fields(
                kb_id, doc_id, None if meta is None else M.split_combined_values(meta)
            )
        if "name" in req and isinstance(new_name, str) and new_name != doc["name"]:
            self.store.update_document(doc_id, {"name": new_name}, kb_id=kb_id)
            self.store.rename_chunks_doc(doc_id, new_name)
        if upd["parser_config"]:
            raw = dict(req["parser_config"])
            raw.update(upd["parser_config"].get("ext") or {})
            merge_doc_parser_config(self.store, doc_id, raw)
        if "pipeline_id" in req:
            self.store.reset_document(doc_id, {"pipeline_id": upd["pipeline_id"] or ""})
        elif upd["chunk_method"]:
            method = upd["chunk_method"]
            if (doc["parser_id"] or "").lower() != method.lower():
                self.store.reset_document(doc_id, {"parser_id": method, "pipeline_id": ""})
            elif doc["pipeline_id"]:
                self.store.reset_document(doc_id, {"pipeline_id": ""})
            if not req.get("parser_config"):
                merge_doc_parser_config(self.store, doc_id, C.default_parser_config(method, None))
        if "enabled" in req and upd["enabled"] is not None:
            status = int(upd["enabled"])
            if doc["status"] is None or int(doc["status"]) != status:
                self.store.update_document(doc_id, {"status": str(status)}, kb_id=kb_id)
                self.store.set_chunks_available(doc_id, status)
        row = self.store.get_document(doc_id)
        if row is None:
            return err(f"Can not get document by id:{doc_id}")
        return ok(doc_api(row))
