"""Dataset routes: create, list, get, update, delete, plus tags, graph, ingestion logs
and index tasks (answered as a server without LLM features would)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from .. import validation as V
from ..models import CreateDatasetReq, DeleteDatasetReq, ListDatasetReq, UpdateDatasetReq
from ..records import dataset_api
from ..responses import err, json_result, ok
from ..store import iso_now, new_id, now_ms
from .base import Endpoint, Router, clock

_INDEX_TYPES = {
    "graph",
    "raptor",
    "mindmap",
    "wiki",
    "skill",
    "structure_graph",
    "structure_mindmap",
    "timeline",
    "session_graph",
    "session_essence",
    "structure",
}


class DatasetRoutes(Router):
    """``/datasets`` and ``/datasets/{id}`` with tags, graph, ingestions and index."""

    def routes(self, e: Endpoint) -> list[Route]:
        api = "/api/v1"
        ds = f"{api}/datasets/{{dataset_id}}"
        return [
            Route(f"{api}/datasets", e(self.create_dataset), methods=["POST"]),
            Route(f"{api}/datasets", e(self.list_datasets), methods=["GET"]),
            Route(f"{api}/datasets", e(self.delete_datasets), methods=["DELETE"]),
            Route(f"{api}/datasets/tags/aggregation", e(self.aggregate_tags), methods=["GET"]),
            Route(ds, e(self.get_dataset), methods=["GET"]),
            Route(ds, e(self.update_dataset), methods=["PUT"]),
            Route(f"{ds}/ingestions/summary", e(self.ingestion_summary), methods=["GET"]),
            Route(f"{ds}/ingestions", e(self.ingestion_logs), methods=["GET"]),
            Route(f"{ds}/ingestions/{{log_id}}", e(self.ingestion_log), methods=["GET"]),
            Route(f"{ds}/tags", e(self.list_tags), methods=["GET"]),
            Route(f"{ds}/tags", e(self.delete_tags), methods=["DELETE"]),
            Route(f"{ds}/tags", e(self.rename_tag), methods=["PUT"]),
            Route(f"{ds}/graph", e(self.get_graph), methods=["GET"]),
            Route(f"{ds}/graph", e(self.delete_graph), methods=["DELETE"]),
            Route(f"{ds}/knowledge_graph", e(self.get_graph), methods=["GET"]),
            Route(f"{ds}/knowledge_graph", e(self.delete_graph), methods=["DELETE"]),
            Route(f"{ds}/index", e(self.run_index), methods=["POST"]),
            Route(f"{ds}/index", e(self.trace_index), methods=["GET"]),
            Route(f"{ds}/run_graphrag", e(self.legacy_index), methods=["POST"]),
            Route(f"{ds}/trace_graphrag", e(self.legacy_index), methods=["GET"]),
            Route(f"{ds}/run_raptor", e(self.legacy_index), methods=["POST"]),
            Route(f"{ds}/trace_raptor", e(self.legacy_index), methods=["GET"]),
        ]

    def fallback_routes(self, e: Endpoint) -> list[Route]:
        """``DELETE /datasets/{id}/{index_type}``: mounted after every other route, since it
        would shadow each ``DELETE /datasets/{id}/<something>``."""
        ds = "/api/v1/datasets/{dataset_id}"
        return [Route(f"{ds}/{{index_type}}", e(self.delete_index), methods=["DELETE"])]

    async def create_dataset(self, request: Request) -> Response:
        try:
            payload = await self._strict_json(request)
            req = V.validate(CreateDatasetReq, payload)
        except V.BadRequest as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        except V.ValidationFailed as exc:
            return err(exc.message(), C.ARGUMENT_ERROR)
        ext = req.pop("ext", {}) or {}
        auto_meta = req.pop("auto_metadata_config", None)
        parser_config = req.get("parser_config")
        if auto_meta:
            parser_config = dict(parser_config or {})
            parser_config["metadata"] = [
                {
                    "name": f.get("name", ""),
                    "type": f.get("type", ""),
                    "description": f.get("description"),
                    "examples": f.get("examples"),
                    "restrict_values": f.get("restrict_values", False),
                }
                for f in auto_meta.get("fields", [])
            ]
            parser_config["enable_metadata"] = auto_meta.get("enabled", True)
        name = req["name"]
        if len(name.encode("utf-8")) > C.DATASET_NAME_LIMIT:
            return err(
                f"Dataset name length is {len(name)} which is large than {C.DATASET_NAME_LIMIT}"
            )
        embd = req.get("embedding_model")
        if embd:
            problem = C.check_embedding_model(embd)
            if problem:
                return err(problem)
        merged = C.default_parser_config(req.get("chunk_method"), parser_config)
        merged["llm_id"] = C.DEFAULT_LLM_ID
        fields = {
            "name": self.store.unique_dataset_name(name),
            "avatar": req.get("avatar"),
            "description": req.get("description"),
            "embd_id": embd or C.DEFAULT_EMBEDDING_MODEL,
            "permission": req.get("permission"),
            "parser_id": req.get("chunk_method") or "naive",
            "pipeline_id": req.get("pipeline_id"),
            "parser_config": merged,
            "language": ext.get("language"),
        }
        row = self.store.create_dataset(fields)
        return ok(dataset_api(row))

    async def list_datasets(self, request: Request) -> Response:
        params: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            params.setdefault(key, value)
        if "ids" in request.query_params:
            params["ids"] = [
                v for item in request.query_params.getlist("ids") for v in item.split(",") if v
            ]
        if isinstance(params.get("ext"), str):
            with contextlib.suppress(ValueError):
                params["ext"] = json.loads(params["ext"])
        if params.get("type") == "filter":
            return ok(
                {
                    "owner": [
                        {"id": self.store.tenant_id, "label": self.store.nickname(), "count": 0}
                    ]
                }
            )
        try:
            args = V.validate(ListDatasetReq, params)
        except V.ValidationFailed as exc:
            return err(exc.message(), C.ARGUMENT_ERROR)
        kb_id, ids, name = args["id"], args["ids"], args["name"]
        tenant = self.store.tenant_id
        if kb_id and ids:
            return err(f"Should not provide both 'id':{kb_id} and 'ids'{ids}")
        if kb_id and self._own_dataset(kb_id) is None:
            return err(f"User '{tenant}' lacks permission for dataset '{kb_id}'")
        if name and not self.store.dataset_name_taken(name):
            return err(f"User '{tenant}' lacks permission for dataset '{name}'")
        if ids:
            ids = [i for i in ids if i in self.store.existing_dataset_ids(ids)]
            if not ids:
                return ok([], total=0)
        ext = args["ext"] or {}
        rows, total = self.store.list_datasets(
            page=args["page"],
            page_size=args["page_size"],
            orderby=args["orderby"],
            desc=args["desc"],
            kb_id=kb_id,
            name=name,
            ids=ids,
            keywords=ext.get("keywords", "") or "",
            parser_id=ext.get("parser_id"),
        )
        nickname = self.store.nickname()
        status = (
            self.store.parsing_status([r["id"] for r in rows])
            if args["include_parsing_status"]
            else {}
        )
        data = []
        for row in rows:
            item = dataset_api(row)
            item["nickname"] = nickname
            item["tenant_avatar"] = None
            if status:
                item["parsing_status"] = status.get(row["id"], {})
            item["embedding_model_name"] = row["embd_id"]
            data.append(item)
        return ok(data, total=total)

    async def get_dataset(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        kb = self._own_dataset(kb_id)
        if kb is None:
            return err(f"User '{self.store.tenant_id}' lacks permission for dataset '{kb_id}'")
        data = dataset_api(kb)
        data["size"] = self.store.dataset_size(kb_id)
        data["connectors"] = []
        return ok(data)

    async def update_dataset(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        try:
            payload = await self._strict_json(request)
            given = set(payload)
            payload["dataset_id"] = kb_id
            validated = V.validate(UpdateDatasetReq, payload)
        except V.BadRequest as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        except V.ValidationFailed as exc:
            return err(exc.message(), C.ARGUMENT_ERROR)
        req = {k: validated[k] for k in given if k in validated}
        if not req:
            return err("no properties were modified")
        kb_hex = validated["dataset_id"]
        kb = self._own_dataset(kb_hex)
        if kb is None:
            return err(f"User '{self.store.tenant_id}' lacks permission for dataset '{kb_hex}'")
        ext = req.pop("ext", {}) or {}
        auto_meta = req.pop("auto_metadata_config", None)
        if auto_meta:
            pc = dict(req.get("parser_config") or {})
            pc["metadata"] = auto_meta.get("metadata", [])
            req["parser_config"] = pc
        req.update(ext)
        connectors = req.pop("connectors", [])
        changes: dict[str, Any] = {}
        if req.get("parser_config"):
            pc = dict(req["parser_config"])
            parent_child = pc.get("parent_child", {}) or {}
            if parent_child.get("use_parent_child"):
                pc["children_delimiter"] = parent_child.get("children_delimiter", "\n")
                pc["enable_children"] = parent_child.get("use_parent_child", True)
            else:
                pc["children_delimiter"] = ""
                pc["enable_children"] = False
                pc["parent_child"] = {}
            pc.update(pc.pop("ext", {}) or {})
            changes["parser_config"] = C.deep_merge(kb["parser_config"], pc)
        method = req.get("chunk_method")
        if method and method != kb["parser_id"]:
            changes["parser_id"] = method
            if not req.get("parser_config"):
                changes["parser_config"] = C.default_parser_config(method, None)
        if "pipeline_id" in req:
            changes["pipeline_id"] = req["pipeline_id"]
        elif kb["pipeline_id"] and method:
            changes["pipeline_id"] = ""
        if "name" in req:
            if req["name"].lower() != (kb["name"] or "").lower() and self.store.dataset_name_taken(
                req["name"], exclude_id=kb_hex
            ):
                return err(f"Dataset name '{req['name']}' already exists")
            changes["name"] = req["name"]
        if "embedding_model" in req:
            embd = req["embedding_model"] or kb["embd_id"]
            problem = C.check_embedding_model(embd)
            if problem:
                return err(problem)
            changes["embd_id"] = embd
        for key in ("avatar", "description", "permission", "pagerank", "language"):
            if key in req:
                changes[key] = req[key]
        self.store.update_dataset(kb_hex, changes)
        row = self.store.get_dataset(kb_hex)
        assert row is not None
        data = dataset_api(row)
        data["connectors"] = connectors
        return ok(data)

    async def delete_datasets(self, request: Request) -> Response:
        try:
            payload = await self._strict_json(request)
            req = V.validate(DeleteDatasetReq, payload)
        except V.BadRequest as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        except V.ValidationFailed as exc:
            return err(exc.message(), C.ARGUMENT_ERROR)
        ids = req["ids"]
        if not ids:
            if not req["delete_all"]:
                return ok({"success_count": 0})
            ids = self.store.all_dataset_ids()
        missing = [i for i in ids if self._own_dataset(i) is None]
        if missing:
            return err(
                f"User '{self.store.tenant_id}' lacks permission for datasets: "
                f"'{', '.join(missing)}'"
            )
        for kb_id in ids:
            self.store.delete_dataset(kb_id)
        return ok({"success_count": len(ids)})

    async def ingestion_summary(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        kb = self._own_dataset(kb_id)
        if kb is None:
            return self._no_permission(kb_id)
        status = self.store.parsing_status([kb_id])[kb_id]
        return ok(
            {
                "doc_num": kb["doc_num"],
                "chunk_num": kb["chunk_num"],
                "token_num": kb["token_num"],
                "status": status,
            }
        )

    async def ingestion_logs(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return err("no authorization")
        if request.query_params.get("log_type", "dataset") not in ("dataset", "file"):
            return err('Invalid "log_type", expected "dataset" or "file"')
        return ok({"total": 0, "logs": []})  # the sandbox runs no ingestion pipelines

    async def ingestion_log(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return err("no authorization")
        return err("Log not found")

    def _tag_counts(self, kb_ids: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for chunk in self.store.chunks_of_datasets(kb_ids):
            for tag in chunk.get("tag_kwd") or []:
                counts[tag] = counts.get(tag, 0) + 1
        return counts

    async def list_tags(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return self._no_permission(kb_id)
        return ok(sorted(self._tag_counts([kb_id]).items(), key=lambda kv: -kv[1]))

    async def aggregate_tags(self, request: Request) -> Response:
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
        return ok(sorted(self._tag_counts(ids).items(), key=lambda kv: -kv[1]))

    async def delete_tags(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        req = await self._loose_json(request)
        if not req or "tags" not in req:
            return err("Lack of tags in request body")
        tags = req["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return err("tags must be a list of strings", C.ARGUMENT_ERROR)
        if self._own_dataset(kb_id) is None:
            return self._no_permission(kb_id)
        for chunk in list(self.store.chunks_of_datasets([kb_id])):
            current = chunk.get("tag_kwd") or []
            kept = [t for t in current if t not in tags]
            if kept != current:
                self.store.update_chunk(chunk["id"], {"tag_kwd": kept})
        return ok(True)

    async def rename_tag(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        req = await self._loose_json(request)
        if not req or "from_tag" not in req or "to_tag" not in req:
            return err("Lack of from_tag or to_tag in request body")
        old, new = req["from_tag"], req["to_tag"]
        if not isinstance(old, str) or not isinstance(new, str):
            return err("from_tag and to_tag must be strings", C.ARGUMENT_ERROR)
        if not old.strip() or not new.strip():
            return err("from_tag and to_tag must not be empty", C.ARGUMENT_ERROR)
        if self._own_dataset(kb_id) is None:
            return self._no_permission(kb_id)
        for chunk in list(self.store.chunks_of_datasets([kb_id])):
            current = chunk.get("tag_kwd") or []
            if old in current:
                self.store.update_chunk(
                    chunk["id"], {"tag_kwd": [new if t == old else t for t in current]}
                )
        return ok(True)

    async def get_graph(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return self._no_permission(kb_id)
        return ok({"graph": {}, "mind_map": {}})  # knowledge graphs need an LLM: always empty

    async def delete_graph(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        if self._own_dataset(kb_id) is None:
            return self._no_permission(kb_id)
        return ok(True)

    async def delete_index(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        index_type = request.path_params["index_type"].lower()
        if index_type == "index":
            index_type = request.query_params.get("type", "").lower()
        if index_type not in _INDEX_TYPES:
            return err(f"Invalid index type '{index_type}'", C.ARGUMENT_ERROR)
        if self._own_dataset(kb_id) is None:
            return err("no authorization")
        self.store.set_index_task(kb_id, index_type, None)
        return ok({})

    def _run_index(self, kb_id: str, kind: str) -> tuple[bool, Any]:
        """Graphs, RAPTOR trees and mind maps need an LLM: the sandbox records a task that
        finishes at once without building anything, so clients can exercise the routes."""
        if kind not in _INDEX_TYPES:
            return False, f"Invalid index type '{kind}'. Must be one of {sorted(_INDEX_TYPES)}"
        if self._own_dataset(kb_id) is None:
            return False, "no authorization"
        rows = self.store.documents_by_ids(self.store.doc_ids_of(kb_id))
        rows = [r for r in rows if str(r["status"]) != "0"]
        if not rows:
            return False, f"No documents in Dataset {kb_id}"
        ts, date = now_ms(), iso_now()
        task = {
            "id": new_id(),
            "doc_id": "graph_raptor_x",
            "from_page": 100000000,
            "to_page": 100000000,
            "task_type": kind,
            "priority": 0,
            "begin_at": date,
            "process_duration": 0.0,
            "progress": 1.0,
            "progress_msg": f"{clock()} Task has been received.\n{clock()} sandbox: no {kind} "
            "index is built (it needs an LLM). Task done (0.00s)",
            "retry_count": 0,
            "digest": "",
            "chunk_ids": "",
            "create_time": ts,
            "create_date": date,
            "update_time": ts,
            "update_date": date,
        }
        self.store.set_index_task(kb_id, kind, task)
        return True, {"task_id": task["id"]}

    def _trace_index(self, kb_id: str, kind: str) -> tuple[bool, Any]:
        if kind not in _INDEX_TYPES:
            return False, f"Invalid index type '{kind}'. Must be one of {sorted(_INDEX_TYPES)}"
        if self._own_dataset(kb_id) is None:
            return False, "no authorization"
        return True, self.store.index_task(kb_id, kind) or {}

    async def run_index(self, request: Request) -> Response:
        kind = request.query_params.get("type", "").lower()
        done, result = self._run_index(request.path_params["dataset_id"], kind)
        return ok(result) if done else err(result)

    async def trace_index(self, request: Request) -> Response:
        kind = request.query_params.get("type", "").lower()
        done, result = self._trace_index(request.path_params["dataset_id"], kind)
        return ok(result) if done else err(result)

    async def legacy_index(self, request: Request) -> Response:
        """``run_graphrag`` / ``trace_graphrag`` / ``run_raptor`` / ``trace_raptor``."""
        kb_id = request.path_params["dataset_id"]
        name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        kind = "graph" if name.endswith("graphrag") else "raptor"
        action = self._run_index if name.startswith("run_") else self._trace_index
        done, result = action(kb_id, kind)
        if not done:
            return err(result)
        return json_result(result)
