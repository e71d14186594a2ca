"""The HTTP routes of the sandbox: RAGFlow's ``/api/v1`` contract for datasets, documents,
parsing, chunks, retrieval and document metadata, plus the ``/_sandbox`` control routes.

Every route answers like a RAGFlow v0.27 server: business errors are HTTP 200 with a non-zero
``code``, a missing or wrong API key is HTTP 401, unknown routes are 404, and an exception is
``{"code": 100, "message": repr(exc)}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import logging
import math
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, quote

import xxhash
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import constants as C
from . import metadata as M
from . import validation as V
from .chunker import count_tokens
from .faults import FaultError, FaultMiddleware, Faults
from .retrieval import Retriever, highlight_text, keyword_match
from .store import DATASET_TASK_FIELDS, Store, iso_now, new_id, next_duplicate_name, now_ms
from .worker import ParseWorker, chunk_id

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


# --- responses --------------------------------------------------------------------------------


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode(
        "utf-8"
    )


def respond(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(
        _dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def ok(data: Any = None, *, total: int | None = None) -> Response:
    """``get_result``: ``{"code": 0[, "data"][, "total_datasets"]}``."""
    payload: dict[str, Any] = {"code": 0}
    if data is not None:
        payload["data"] = data
    if total is not None:
        payload["total_datasets"] = total
    return respond(payload)


def err(message: str, code: int = C.DATA_ERROR) -> Response:
    """``get_error_data_result`` / ``get_result(code != 0)``: ``{"code", "message"}``."""
    return respond({"code": code, "message": message})


def json_result(data: Any = None, *, code: int = 0, message: str = "success") -> Response:
    """``get_json_result``: always ``{"code", "message", "data"}``."""
    return respond({"code": code, "message": message, "data": data})


def construct(code: int, message: str, data: Any = None) -> Response:
    """``construct_json_result``: ``data`` omitted when None."""
    payload: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        payload["data"] = data
    return respond(payload)


def unauthorized() -> Response:
    """RAGFlow's answer to a missing or wrong API key."""
    return respond({"code": C.UNAUTHORIZED, "message": C.UNAUTHORIZED_MESSAGE, "data": None}, 401)


class _ReprError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __repr__(self) -> str:
        return self.text


# --- configuration ----------------------------------------------------------------------------


@dataclass
class SandboxConfig:
    """Runtime settings of one sandbox server."""

    data_dir: str
    api_key: str
    parse_delay: float = 0.0
    fault_rate: float = 0.0
    fault_seed: int | None = None
    max_body_bytes: int = C.DEFAULT_MAX_BODY_BYTES
    max_parse_bytes: int = C.DEFAULT_MAX_PARSE_BYTES
    parser_threads: int = 2
    max_file_num_per_user: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# --- the application --------------------------------------------------------------------------


def _doc_api(row: dict[str, Any], *, with_hash: bool = True) -> dict[str, Any]:
    """A document row with RAGFlow's public key names (``map_doc_keys``)."""
    pc = row["parser_config"]
    out = {
        "id": row["id"],
        "thumbnail": row["thumbnail"],
        "dataset_id": row["kb_id"],
        "chunk_method": row["parser_id"],
        "pipeline_id": row["pipeline_id"],
        "parser_config": json.loads(pc) if isinstance(pc, str) else pc,
        "source_type": row["source_type"],
        "type": row["type"],
        "created_by": row["created_by"],
        "name": row["name"],
        "location": row["location"],
        "size": row["size"],
        "token_count": row["token_num"],
        "chunk_count": row["chunk_num"],
        "progress": row["progress"],
        "progress_msg": row["progress_msg"],
        "process_begin_at": row["process_begin_at"],
        "process_duration": row["process_duration"],
        "suffix": row["suffix"],
    }
    if with_hash:
        out["content_hash"] = row["content_hash"]
    out["run"] = C.RUN_TEXT.get(str(row["run"]), "UNSTART")
    out["status"] = row["status"]
    out["create_time"] = row["create_time"]
    out["create_date"] = row["create_date"]
    out["update_time"] = row["update_time"]
    out["update_date"] = row["update_date"]
    return out


def _dataset_api(row: dict[str, Any]) -> dict[str, Any]:
    """A dataset row with RAGFlow's public key names (``remap_dictionary_keys``)."""
    out: dict[str, Any] = {
        "id": row["id"],
        "avatar": row["avatar"],
        "tenant_id": row["tenant_id"],
        "name": row["name"],
        "language": row["language"],
        "description": row["description"],
        "embedding_model": row["embd_id"],
        "tenant_embd_id": None,
        "permission": row["permission"],
        "created_by": row["created_by"],
        "document_count": row["doc_num"],
        "token_num": row["token_num"],
        "chunk_count": row["chunk_num"],
        "similarity_threshold": row["similarity_threshold"],
        "vector_similarity_weight": row["vector_similarity_weight"],
        "chunk_method": row["parser_id"],
        "pipeline_id": row["pipeline_id"],
        "parser_config": row["parser_config"],
        "pagerank": row["pagerank"],
    }
    for name in DATASET_TASK_FIELDS:  # the server's 22 task keys; no task ever runs here
        out[name] = None
    out["status"] = row["status"]
    out["create_time"] = row["create_time"]
    out["create_date"] = row["create_date"]
    out["update_time"] = row["update_time"]
    out["update_date"] = row["update_date"]
    return out


def _chunk_list_item(chunk: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    return {
        "id": chunk["id"],
        "content": chunk["content"] if content is None else content,
        "document_id": chunk["doc_id"],
        "docnm_kwd": chunk["docnm_kwd"],
        "important_keywords": chunk.get("important_kwd") or [],
        "tag_kwd": chunk.get("tag_kwd") or [],
        "questions": chunk.get("question_kwd") or [],
        "dataset_id": chunk["kb_id"],
        "image_id": chunk.get("img_id") or "",
        "doc_type_kwd": chunk.get("doc_type_kwd") or "text",
        "available": bool(chunk.get("available_int", 1)),
        "positions": chunk.get("position_int") or [],
    }


def _query_list(request: Request, name: str) -> list[str]:
    values = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


class SandboxApp:
    """Holds the store, the parser and the fault switch; builds the ASGI app.

    Args:
        config: Settings of this server.

    Example:
        >>> import tempfile
        >>> sandbox = SandboxApp(SandboxConfig(data_dir=tempfile.mkdtemp(), api_key="k"))
        >>> callable(sandbox.asgi)
        True
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.store.add_token(config.api_key)
        self.worker = ParseWorker(
            self.store,
            parse_delay=config.parse_delay,
            threads=config.parser_threads,
            max_parse_bytes=config.max_parse_bytes,
        )
        self.retriever = Retriever(self.store)
        self.faults = Faults(config.fault_rate, seed=config.fault_seed)
        self._reserved: dict[str, set[str]] = {}
        self._reserved_locations: dict[str, set[str]] = {}
        self._auth_cache: dict[str, bool] = {}
        self.starlette = Starlette(
            routes=self._routes(),
            exception_handlers={404: self._not_found, 405: self._method_not_allowed},
            lifespan=self._lifespan,
        )
        self.asgi = FaultMiddleware(_Limits(self.starlette, config.max_body_bytes), self.faults)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> Any:
        self.worker.start()
        try:
            yield
        finally:
            self.worker.stop()
            self.store.close()

    # --- plumbing ---------------------------------------------------------------------------

    async def _not_found(self, request: Request, _exc: Exception) -> Response:
        return respond(
            {
                "code": C.NOT_FOUND,
                "message": f"Not Found: {request.url.path}",
                "data": None,
                "error": "Not Found",
            },
            404,
        )

    async def _method_not_allowed(self, request: Request, _exc: Exception) -> Response:
        return json_result(
            code=C.EXCEPTION_ERROR, message="<MethodNotAllowed '405: Method Not Allowed'>"
        )

    def _token(self, request: Request) -> str | None:
        header = request.headers.get("authorization")
        if not header:
            return None
        if header[:7].lower() == "bearer ":
            parts = header.split(None, 1)
            return parts[1] if len(parts) == 2 else None
        return header

    def _authorized(self, request: Request) -> bool:
        token = self._token(request)
        if not token:
            return False
        known = self._auth_cache.get(token)
        if known is None:
            known = self.store.token_valid(token)
            if known:
                self._auth_cache[token] = True
        return known

    def _endpoint(self, handler: Handler, *, auth: bool = True) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: Request) -> Response:
            if auth and not self._authorized(request):
                return unauthorized()
            try:
                return await handler(request)
            except _BodyTooLarge:
                return _too_large_response()
            except Exception as exc:  # RAGFlow's server_error_response
                log.debug("sandbox handler error", exc_info=True)
                return json_result(code=C.EXCEPTION_ERROR, message=repr(exc))

        return wrapped

    def _routes(self) -> list[Route]:
        e = self._endpoint
        api = "/api/v1"
        ds = f"{api}/datasets/{{dataset_id}}"
        doc = f"{ds}/documents/{{document_id}}"
        return [
            # bootstrap (what RAGFlow's own test-suite needs)
            Route(f"{api}/users", e(self.register, auth=False), methods=["POST"]),
            Route(f"{api}/auth/login", e(self.login, auth=False), methods=["POST"]),
            Route(f"{api}/system/tokens", e(self.new_token), methods=["POST"]),
            Route(f"{api}/system/tokens", e(self.list_tokens), methods=["GET"]),
            Route(f"{api}/system/ping", e(self.ping, auth=False), methods=["GET"]),
            Route(f"{api}/system/healthz", e(self.ping, auth=False), methods=["GET"]),
            Route(f"{api}/models", e(self.list_models), methods=["GET"]),
            Route(f"{api}/models/default", e(self.accept), methods=["PATCH"]),
            Route(f"{api}/providers", e(self.accept), methods=["PUT"]),
            Route(f"{api}/providers/{{name}}/instances", e(self.accept), methods=["POST"]),
            # datasets
            Route(f"{api}/datasets", e(self.create_dataset), methods=["POST"]),
            Route(f"{api}/datasets", e(self.list_datasets), methods=["GET"]),
            Route(f"{api}/datasets", e(self.delete_datasets), methods=["DELETE"]),
            Route(f"{api}/datasets/tags/aggregation", e(self.aggregate_tags), methods=["GET"]),
            Route(f"{api}/datasets/search", e(self.search_datasets), methods=["POST"]),
            Route(
                f"{api}/datasets/metadata/flattened", e(self.flattened_metadata), methods=["GET"]
            ),
            Route(ds, e(self.get_dataset), methods=["GET"]),
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
            Route(f"{ds}/search", e(self.search_dataset), methods=["POST"]),
            Route(f"{ds}/metadata/config", e(self.get_metadata_config), methods=["GET"]),
            Route(f"{ds}/metadata/config", e(self.put_metadata_config), methods=["PUT"]),
            Route(f"{doc}/metadata/config", e(self.put_doc_metadata_config), methods=["PUT"]),
            Route(ds, e(self.update_dataset), methods=["PUT"]),
            # documents
            Route(f"{ds}/documents", e(self.upload_documents), methods=["POST"]),
            Route(f"{ds}/documents", e(self.list_documents), methods=["GET"]),
            Route(f"{ds}/documents", e(self.delete_documents), methods=["DELETE"]),
            Route(f"{ds}/documents/parse", e(self.parse_documents), methods=["POST"]),
            Route(f"{ds}/documents/stop", e(self.stop_documents), methods=["POST"]),
            Route(f"{ds}/documents/metadatas", e(self.metadata_update), methods=["PATCH"]),
            Route(doc, e(self.download_document), methods=["GET"]),
            Route(doc, e(self.update_document), methods=["PATCH", "PUT"]),
            Route(
                f"{api}/documents/{{document_id}}", e(self.download_any_document), methods=["GET"]
            ),
            Route(f"{api}/documents/images/{{image_id}}", e(self.get_image), methods=["GET"]),
            Route(f"{ds}/metadata/summary", e(self.metadata_summary), methods=["GET"]),
            Route(f"{ds}/metadata/update", e(self.metadata_update), methods=["POST"]),
            # legacy parse / stop (ragflow-sdk)
            Route(f"{ds}/chunks", e(self.legacy_parse), methods=["POST"]),
            Route(f"{ds}/chunks", e(self.legacy_stop), methods=["DELETE"]),
            # chunks
            Route(f"{doc}/chunks", e(self.list_chunks), methods=["GET"]),
            Route(f"{doc}/chunks", e(self.add_chunk), methods=["POST"]),
            Route(f"{doc}/chunks", e(self.delete_chunks), methods=["DELETE"]),
            Route(f"{doc}/chunks", e(self.switch_chunks), methods=["PATCH"]),
            Route(f"{doc}/chunks/{{chunk_id}}", e(self.get_chunk), methods=["GET"]),
            Route(f"{doc}/chunks/{{chunk_id}}", e(self.update_chunk), methods=["PATCH", "PUT"]),
            Route(f"{api}/retrieval", e(self.retrieval), methods=["POST"]),
            # catch-all last: it would shadow every DELETE /datasets/{id}/<something>
            Route(f"{ds}/{{index_type}}", e(self.delete_index), methods=["DELETE"]),
            # sandbox control
            Route("/_sandbox/health", e(self.health, auth=False), methods=["GET"]),
            Route("/_sandbox/faults", e(self.get_faults), methods=["GET"]),
            Route("/_sandbox/faults", e(self.put_faults), methods=["PUT"]),
            Route("/_sandbox/config", e(self.get_config), methods=["GET"]),
            Route("/_sandbox/config", e(self.put_config), methods=["PUT"]),
        ]

    def _own_dataset(self, kb_id: str) -> dict[str, Any] | None:
        kb = self.store.get_dataset(kb_id)
        if kb is None or kb["status"] != "1" or kb["tenant_id"] != self.store.tenant_id:
            return None
        return kb

    async def _loose_json(self, request: Request) -> dict[str, Any]:
        """``get_request_json``: JSON object, form fallback, ``{}`` for an empty body."""
        body = await request.body()
        if not body:
            return {}
        content_type = (request.headers.get("content-type") or "").lower()
        if content_type.startswith("application/json"):
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise _ReprError("<BadRequest '400: Bad Request'>") from None
            if isinstance(payload, dict):
                return payload
            if isinstance(payload, str):
                raise AttributeError("'str' object has no attribute 'get'")
            raise TypeError("JSON payload must be an object.")
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return {}

    async def _strict_json(self, request: Request) -> dict[str, Any]:
        return V.parse_json_object(await request.body(), request.headers.get("content-type"))

    # --- bootstrap and control ----------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        req = await self._loose_json(request)
        email, nickname, password = req.get("email"), req.get("nickname"), req.get("password")
        if (
            not email
            or not isinstance(email, str)
            or not re.match(r"^[\w\._-]+@([\w_-]+\.)+[\w-]{2,}$", email)
        ):
            return json_result(code=C.OPERATING_ERROR, message=f"Invalid email address: {email}!")
        if not self.store.add_user(
            email, str(nickname or email.split("@")[0]), str(password or "")
        ):
            return json_result(
                code=C.OPERATING_ERROR, message=f"Email: {email} has already registered!"
            )
        return json_result(
            {"id": self.store.tenant_id, "email": email, "nickname": nickname},
            message=f"{nickname}, welcome aboard!",
        )

    async def login(self, request: Request) -> Response:
        req = await self._loose_json(request)
        user = self.store.get_user(str(req.get("email") or ""))
        if user is None:
            return json_result(
                code=C.AUTHENTICATION_ERROR, message=f"Email: {req.get('email')} is not registered!"
            )
        if str(req.get("password") or "") != user["password"]:
            return json_result(
                code=C.AUTHENTICATION_ERROR, message="Email and password do not match!"
            )
        token = "sandbox-jwt-" + secrets.token_hex(24)
        self.store.add_token(token, kind="jwt")
        data = {
            "id": user["id"],
            "email": user["email"],
            "nickname": user["nickname"],
            "access_token": token,
        }
        return respond(
            {"code": 0, "message": "Welcome back!", "data": data}, headers={"Authorization": token}
        )

    async def new_token(self, request: Request) -> Response:
        token = "ragflow-" + secrets.token_urlsafe(32)
        self.store.add_token(token)
        row = self.store.token_row(token) or {}
        return json_result(
            {
                "tenant_id": self.store.tenant_id,
                "token": token,
                "beta": row.get("beta"),
                "create_time": row.get("create_time"),
                "create_date": iso_now(),
                "update_time": None,
                "update_date": None,
            }
        )

    async def list_tokens(self, request: Request) -> Response:
        rows = (
            self.store.conn()
            .execute("SELECT * FROM tokens WHERE kind='api' ORDER BY create_time")
            .fetchall()
        )
        return json_result(
            [{"token": r["token"], "tenant_id": r["tenant_id"], "beta": r["beta"]} for r in rows]
        )

    async def ping(self, request: Request) -> Response:
        return Response("pong", media_type="text/plain")

    async def list_models(self, request: Request) -> Response:
        models = []
        for factory in sorted(C.AUTHORIZED_FACTORIES):
            for name in sorted(C.EMBEDDING_CATALOG.get(factory, ())):
                models.append(
                    {
                        "model_provider": factory,
                        "provider_name": factory,
                        "model_name": name,
                        "model_type": "embedding",
                    }
                )
        models.append(
            {
                "model_provider": "ZHIPU-AI",
                "provider_name": "ZHIPU-AI",
                "model_name": "glm-4-flash",
                "model_type": "chat",
            }
        )
        return json_result(models)

    async def accept(self, request: Request) -> Response:
        await request.body()
        return json_result(True)

    async def health(self, request: Request) -> Response:
        return respond({"ok": True, "tenant_id": self.store.tenant_id})

    async def get_faults(self, request: Request) -> Response:
        return respond({"code": 0, "data": self.faults.config.public()})

    async def put_faults(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            return respond({"code": 0, "data": self.faults.configure(body)})
        except (ValueError, FaultError) as exc:
            return respond({"code": C.ARGUMENT_ERROR, "message": str(exc)}, 400)

    async def get_config(self, request: Request) -> Response:
        return respond(
            {
                "code": 0,
                "data": {
                    "parse_delay": self.worker.parse_delay,
                    "max_body_bytes": self.config.max_body_bytes,
                    "max_parse_bytes": self.worker.max_parse_bytes,
                    "data_dir": str(self.store.data_dir),
                    "documents": self.store.count_documents(),
                    "parse_queue": self.worker.pending(),
                },
            }
        )

    async def put_config(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return respond({"code": C.ARGUMENT_ERROR, "message": str(exc)}, 400)
        if not isinstance(body, dict) or set(body) - {"parse_delay"}:
            return respond(
                {"code": C.ARGUMENT_ERROR, "message": "only 'parse_delay' can be set"}, 400
            )
        delay = body.get("parse_delay", self.worker.parse_delay)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            return respond({"code": C.ARGUMENT_ERROR, "message": "parse_delay must be >= 0"}, 400)
        self.worker.parse_delay = float(delay)
        return await self.get_config(request)

    # --- datasets -----------------------------------------------------------------------------

    async def create_dataset(self, request: Request) -> Response:
        try:
            payload = await self._strict_json(request)
            req = V.CREATE_DATASET.validate(payload)
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
        return ok(_dataset_api(row))

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
            args = V.LIST_DATASETS.validate(params)
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
            item = _dataset_api(row)
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
        data = _dataset_api(kb)
        data["size"] = self.store.dataset_size(kb_id)
        data["connectors"] = []
        return ok(data)

    async def update_dataset(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        try:
            payload = await self._strict_json(request)
            given = set(payload)
            payload["dataset_id"] = kb_id
            validated = V.UPDATE_DATASET.validate(payload)
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
        data = _dataset_api(row)
        data["connectors"] = connectors
        return ok(data)

    async def delete_datasets(self, request: Request) -> Response:
        try:
            payload = await self._strict_json(request)
            req = V.DELETE_DATASETS.validate(payload)
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

    # --- dataset extras (tags, graph, ingestion, search) ---------------------------------------

    def _no_permission(self, kb_id: str) -> Response:
        return err(f"User '{self.store.tenant_id}' lacks permission for dataset '{kb_id}'")

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
            cfg = V.AUTO_METADATA.validate(await self._strict_json(request))
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
        self._merge_doc_parser_config(doc_id, {"metadata": req["metadata"]})
        row = self.store.get_document(doc_id)
        assert row is not None
        out = _doc_api(row)
        for new, old in (("dataset_id", "kb_id"), ("chunk_method", "parser_id")):
            out[old] = out.pop(new)
        out["chunk_num"], out["token_num"] = out.pop("chunk_count"), out.pop("token_count")
        out["run"] = row["run"]
        return ok(out)

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
            "progress_msg": f"{_clock()} Task has been received.\n{_clock()} sandbox: no {kind} "
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

    async def search_dataset(self, request: Request) -> Response:
        return await self._search(request, request.path_params["dataset_id"])

    async def search_datasets(self, request: Request) -> Response:
        return await self._search(request, None)

    async def _search(self, request: Request, kb_id: str | None) -> Response:
        """``POST /datasets/{id}/search`` and ``POST /datasets/search`` (retrieval test)."""
        try:
            req = await self._strict_json(request)
        except V.BadRequest as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        if kb_id is None:
            kb_ids = req.get("dataset_ids")
            if not isinstance(kb_ids, list) or not kb_ids:
                shown = (
                    "Field required"
                    if "dataset_ids" not in req
                    else "List should have at least 1 item"
                )
                return err(
                    f"Field: <dataset_ids> - Message: <{shown}> - Value: <{req}>", C.ARGUMENT_ERROR
                )
        else:
            kb_ids = [kb_id]
        question = req.get("question")
        if "question" not in req:
            return err(
                f"Field: <question> - Message: <Field required> - Value: <{req}>", C.ARGUMENT_ERROR
            )
        if not isinstance(question, str) or not question.strip():
            return err(
                "Field: <question> - Message: <String should have at least 1 character> - "
                f"Value: <{question}>",
                C.ARGUMENT_ERROR,
            )
        for one in kb_ids:
            if self._own_dataset(one) is None:
                return err(f"You don't own the dataset {one}.")
        try:
            page = max(int(req.get("page", 1)), 1)
            size = max(int(req.get("size", 30)), 1)
            top = max(int(req.get("top_k", 1024)), 1)
            threshold = float(req.get("similarity_threshold", 0.0))
            weight = float(req.get("vector_similarity_weight", 0.3))
        except (TypeError, ValueError) as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        doc_ids = list(req.get("doc_ids") or [])
        meta_filter = req.get("meta_data_filter") or {}
        if isinstance(meta_filter, dict) and meta_filter.get("method") == "manual":
            filters = [
                {
                    "op": M.OP_ALIASES.get(f.get("op"), f.get("op")),
                    "key": f.get("key"),
                    "value": f.get("value"),
                }
                for f in meta_filter.get("manual", [])
                if isinstance(f, dict)
            ]
            matched = M.meta_filter(
                self.store.flattened_metas(kb_ids), filters, meta_filter.get("logic", "and")
            )
            if filters and not matched:
                matched = ["-999"]
            doc_ids.extend(matched)
        ranks = self.retriever.search(
            question,
            kb_ids,
            page=page,
            page_size=size,
            doc_ids=doc_ids or None,
            similarity_threshold=threshold,
            vector_similarity_weight=weight,
            top_k=top,
        )
        ranks["labels"] = []
        return ok(ranks)

    # --- documents ----------------------------------------------------------------------------

    async def upload_documents(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        kb = self.store.get_dataset(kb_id)
        if kb is None:
            return err(f"Can't find the dataset with ID {kb_id}!")
        if kb["tenant_id"] != self.store.tenant_id and kb["permission"] != "team":
            return err("no authorization", C.AUTHENTICATION_ERROR)
        upload_type = (request.query_params.get("type") or "local").lower()
        if upload_type == "empty":
            return await self._upload_empty(request, kb)
        if upload_type == "web":
            return err("Web crawling is not available in the sandbox.", C.SERVER_ERROR)
        if upload_type != "local":
            return err('`type` must be one of "local", "web", or "empty".', C.ARGUMENT_ERROR)
        form = await request.form(max_files=100_000, max_fields=100_000)
        try:
            files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
            if not files:
                return err("No file part!", C.ARGUMENT_ERROR)
            for upload in files:
                if upload.filename:
                    upload.filename = _form_filename(upload.filename)
                if not upload.filename:
                    return err("No file selected!", C.ARGUMENT_ERROR)
                if len(upload.filename.encode("utf-8")) > C.FILE_NAME_LEN_LIMIT:
                    return err(
                        f"File name must be {C.FILE_NAME_LEN_LIMIT} bytes or less.",
                        C.ARGUMENT_ERROR,
                    )
            override = None
            raw_pc = form.get("parser_config")
            if isinstance(raw_pc, str) and raw_pc:
                with contextlib.suppress(ValueError, TypeError):
                    parsed = json.loads(raw_pc)
                    if isinstance(parsed, dict):
                        override = {
                            k: v
                            for k, v in parsed.items()
                            if k in ("table_column_mode", "table_column_roles")
                        }
                        override = override or None
            parent = form.get("parent_path")
            parent_path = _sanitize_path(parent if isinstance(parent, str) else None)
            return await self._store_uploads(request, kb, files, parent_path, override)
        finally:
            await form.close()

    async def _store_uploads(
        self,
        request: Request,
        kb: dict[str, Any],
        files: list[UploadFile],
        parent_path: str,
        override: dict[str, Any] | None,
    ) -> Response:
        kb_id = kb["id"]
        errors: list[str] = []
        planned: list[tuple[UploadFile, dict[str, Any]]] = []
        reserved = self._reserved.setdefault(kb_id, set())
        locations = self._reserved_locations.setdefault(kb_id, set())
        mine: list[str] = []
        mine_loc: list[str] = []
        base_pc = kb["parser_config"]
        pc = {**base_pc, **override} if override else base_pc
        pc_text = json.dumps(pc)
        limit = self.config.max_file_num_per_user
        existing = self.store.count_documents() if limit else 0
        try:
            for upload in files:
                filename = upload.filename or ""
                try:
                    if limit and existing + len(planned) >= limit:
                        raise RuntimeError("Exceed the maximum file number of a free user!")
                    name = filename
                    for _ in range(1000):
                        if name.lower() not in reserved and not self.store.doc_name_taken(
                            kb_id, name
                        ):
                            break
                        name = next_duplicate_name(name)
                    else:
                        raise RuntimeError(
                            "Failed to generate unique name within 1000 attempts. "
                            f"Original: {filename}"
                        )
                    file_type = C.filename_type(name)
                    if file_type == C.FILE_OTHER:
                        raise RuntimeError("This type of file has not been supported yet!")
                    location = name if not parent_path else f"{parent_path}/{name}"
                    while location in locations or self._location_taken(kb_id, location):
                        location += "_"
                    reserved.add(name.lower())
                    locations.add(location)
                    mine.append(name.lower())
                    mine_loc.append(location)
                    doc_id = new_id()
                    planned.append(
                        (
                            upload,
                            {
                                "id": doc_id,
                                "kb_id": kb_id,
                                "parser_id": C.parser_for(file_type, name, kb["parser_id"]),
                                "pipeline_id": kb["pipeline_id"],
                                "parser_config": pc_text,
                                "created_by": self.store.tenant_id,
                                "type": file_type,
                                "name": name,
                                "source_type": "local",
                                "suffix": PurePosixPath(name).suffix.lstrip("."),
                                "location": location,
                                "size": 0,
                                "thumbnail": "",
                                "content_hash": "",
                            },
                        )
                    )
                except RuntimeError as exc:
                    errors.append(f"{filename}: {exc}")
            await self._write_blobs(kb_id, planned)
            docs = [doc for _, doc in planned]
            self.store.insert_documents(kb_id, docs)
        finally:
            for name in mine:
                reserved.discard(name)
            for loc in mine_loc:
                locations.discard(loc)
        out = []
        for doc in docs:
            item = {
                "id": doc["id"],
                "dataset_id": kb_id,
                "chunk_method": doc["parser_id"],
                "pipeline_id": doc["pipeline_id"],
                "parser_config": pc,
                "created_by": doc["created_by"],
                "type": doc["type"],
                "name": doc["name"],
                "source_type": "local",
                "suffix": doc["suffix"],
                "location": doc["location"],
                "size": doc["size"],
                "thumbnail": doc["thumbnail"],
                "content_hash": doc["content_hash"],
                "run": "UNSTART",
            }
            out.append(item)
        if errors and not out:
            return err("\n".join(errors), C.SERVER_ERROR)
        if not out:
            return err(
                "There seems to be an issue with your file format. "
                "please verify it is correct and not corrupted."
            )
        if errors:
            return construct(C.SERVER_ERROR, "\n".join(errors), out)
        return ok(out)

    def _location_taken(self, kb_id: str, location: str) -> bool:
        row = (
            self.store.conn()
            .execute(
                "SELECT 1 FROM documents WHERE kb_id=? AND location=? LIMIT 1", (kb_id, location)
            )
            .fetchone()
        )
        return row is not None

    async def _write_blobs(
        self, kb_id: str, planned: list[tuple[UploadFile, dict[str, Any]]]
    ) -> None:
        folder = self.store.blob_dir / kb_id
        folder.mkdir(parents=True, exist_ok=True)
        small, large = [], []
        for upload, doc in planned:
            rolled = getattr(upload.file, "_rolled", True)
            (large if rolled else small).append((upload, doc))
        for upload, doc in small:
            upload.file.seek(0)
            data = upload.file.read()
            _write_small(folder / doc["id"], data)
            doc["size"] = len(data)
            doc["content_hash"] = xxhash.xxh128(data).hexdigest()  # as RAGFlow stores it
        if large:
            await asyncio.to_thread(_write_large, folder, large)

    async def _upload_empty(self, request: Request, kb: dict[str, Any]) -> Response:
        req = await self._loose_json(request)
        name = str(req.get("name") or "").strip()
        if not name:
            return err("File name can't be empty.", C.ARGUMENT_ERROR)
        if len(name.encode("utf-8")) > C.FILE_NAME_LEN_LIMIT:
            return err(
                f"File name must be {C.FILE_NAME_LEN_LIMIT} bytes or less.", C.ARGUMENT_ERROR
            )
        if self.store.doc_name_taken(kb["id"], name):
            return err("Duplicated document name in the same dataset.")
        doc = {
            "id": new_id(),
            "kb_id": kb["id"],
            "parser_id": kb["parser_id"],
            "pipeline_id": kb["pipeline_id"],
            "parser_config": kb["parser_config"],
            "created_by": self.store.tenant_id,
            "type": C.FILE_VIRTUAL,
            "name": name,
            "source_type": "local",
            "suffix": PurePosixPath(name).suffix.lstrip("."),
            "location": "",
            "size": 0,
            "thumbnail": "",
            "content_hash": "",
        }
        self.store.insert_documents(kb["id"], [doc])
        row = self.store.get_document(doc["id"])
        assert row is not None
        return ok(_doc_api(row))

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
            for s in _query_list(request, "run") + _query_list(request, "run_status")
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
            req = V.DELETE_DOCUMENTS.validate(payload)
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
        data = await asyncio.to_thread(path.read_bytes) if path.exists() else b""
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
            pc["raptor"] = V._raptor_legacy(pc["raptor"], {})
        if "name" in req and req["name"] is None:
            return err("Field: <name> - Message: <Input should be a valid string> - Value: <None>")
        kb = self._own_dataset(kb_id)
        if kb is None:
            return err("you don't own the dataset")
        doc = self.store.get_document(doc_id, kb_id)
        if doc is None:
            return err("the dataset doesn't own the document")
        try:
            upd = V.UPDATE_DOCUMENT.validate(req)
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
        if "name" in req and new_name != doc["name"]:
            self.store.update_document(doc_id, {"name": new_name}, kb_id=kb_id)
            self.store.rename_chunks_doc(doc_id, new_name)
        if upd["parser_config"]:
            raw = dict(req["parser_config"])
            raw.update(upd["parser_config"].get("ext") or {})
            self._merge_doc_parser_config(doc_id, raw)
        if "pipeline_id" in req:
            self.store.reset_document(doc_id, {"pipeline_id": upd["pipeline_id"] or ""})
        elif upd["chunk_method"]:
            method = upd["chunk_method"]
            if (doc["parser_id"] or "").lower() != method.lower():
                self.store.reset_document(doc_id, {"parser_id": method, "pipeline_id": ""})
            elif doc["pipeline_id"]:
                self.store.reset_document(doc_id, {"pipeline_id": ""})
            if not req.get("parser_config"):
                self._merge_doc_parser_config(doc_id, C.default_parser_config(method, None))
        if "enabled" in req and upd["enabled"] is not None:
            status = int(upd["enabled"])
            if doc["status"] is None or int(doc["status"]) != status:
                self.store.update_document(doc_id, {"status": str(status)}, kb_id=kb_id)
                self.store.set_chunks_available(doc_id, status)
        row = self.store.get_document(doc_id)
        if row is None:
            return err(f"Can not get document by id:{doc_id}")
        return ok(_doc_api(row))

    def _merge_doc_parser_config(self, doc_id: str, config: dict[str, Any]) -> None:
        if not config:
            return
        row = self.store.get_document(doc_id)
        if row is None:
            return
        current = json.loads(row["parser_config"] or "{}")

        def dfs(old: dict[str, Any], new: dict[str, Any]) -> None:
            for key, value in new.items():
                if key in old and isinstance(value, dict) and isinstance(old[key], dict):
                    dfs(old[key], value)
                else:
                    old[key] = value

        dfs(current, config)
        if not config.get("raptor") and current.get("raptor"):
            del current["raptor"]
        self.store.update_document(doc_id, {"parser_config": current})

    # --- parsing --------------------------------------------------------------------------------

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
        unique, dup_messages = _check_duplicates(ids, "document")
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
        unique, dup_messages = _check_duplicates(ids, "document")
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
            note = f"\n{_clock()} Task stopped by user."
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
        unique, dup_messages = _check_duplicates(ids, "document")
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
        unique, dup_messages = _check_duplicates(ids, "document")
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

    # --- metadata -------------------------------------------------------------------------------

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

    # --- chunks ---------------------------------------------------------------------------------

    def _chunk_scope(
        self, kb_id: str, doc_id: str
    ) -> tuple[Response | None, dict[str, Any] | None]:
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}."), None
        doc = self.store.get_document(doc_id, kb_id)
        if doc is None:
            return err(f"you don't own the document {doc_id}"), None
        return None, doc

    async def list_chunks(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        problem, doc = self._chunk_scope(kb_id, doc_id)
        if problem is not None or doc is None:
            return problem or err("document not found")
        q = request.query_params
        page = V.rest_page(q.get("page", C.DEFAULT_PAGE))
        size = V.rest_page_size(q.get("page_size", C.DEFAULT_PAGE_SIZE))
        question = q.get("keywords", "")
        chunk_ids: list[str] = []
        for value in q.getlist("chunk_ids"):
            for item in str(value or "").split(","):
                if item.strip() and item.strip() not in chunk_ids:
                    chunk_ids.append(item.strip())
        try:
            V.check_ids_limit(chunk_ids, "chunk_ids")
        except ValueError as exc:
            return err(str(exc), C.ARGUMENT_ERROR)
        available = None
        if "available" in q:
            available = 1 if q["available"] == "true" else 0
        res: dict[str, Any] = {"total": 0, "chunks": [], "doc": _doc_api(doc)}
        single = q.get("id")
        if single:
            chunk = self.store.get_chunk(single, kb_id)
            if chunk is None or chunk["doc_id"] != doc_id:
                return err(f"Chunk not found: {kb_id}/{single}")
            res["total"] = 1
            item = _chunk_list_item(chunk)
            item["tag_feas"] = chunk.get("tag_feas") or {}
            res["chunks"].append(item)
            return ok(res)
        chunks = self.store.doc_chunks(doc_id, ids=chunk_ids or None, available=available)
        if question:
            chunks = [c for c in chunks if keyword_match(c["content"] or "", question)]
        res["total"] = len(chunks)
        terms = set(question.lower().split()) if question else set()
        for chunk in chunks[(page - 1) * size : page * size]:
            content = highlight_text(chunk["content"] or "", terms) if terms else None
            res["chunks"].append(_chunk_list_item(chunk, content))
        return ok(res)

    async def get_chunk(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        problem, _doc = self._chunk_scope(kb_id, doc_id)
        if problem is not None:
            return problem
        chunk = self.store.get_chunk(request.path_params["chunk_id"], kb_id)
        if chunk is None or chunk["doc_id"] != doc_id:
            return respond({"code": C.DATA_ERROR, "message": "Chunk not found!"})
        return ok(
            {
                "id": chunk["id"],
                "doc_id": chunk["doc_id"],
                "kb_id": chunk["kb_id"],
                "docnm_kwd": chunk["docnm_kwd"],
                "content_with_weight": chunk["content"],
                "important_kwd": chunk.get("important_kwd") or [],
                "question_kwd": chunk.get("question_kwd") or [],
                "tag_kwd": chunk.get("tag_kwd") or [],
                "img_id": chunk.get("img_id") or "",
                "doc_type_kwd": chunk.get("doc_type_kwd") or "text",
                "available_int": chunk.get("available_int", 1),
                "position_int": chunk.get("position_int") or [],
                "create_time": chunk.get("create_time"),
                "create_timestamp_flt": chunk.get("create_timestamp_flt"),
            }
        )

    async def add_chunk(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        problem, doc = self._chunk_scope(kb_id, doc_id)
        if problem is not None or doc is None:
            return problem or err("document not found")
        req = await self._loose_json(request)
        content = req.get("content")
        if content is None or not str(content).strip():
            return err("`content` is required")
        for key in ("important_keywords", "questions"):
            if key in req:
                if not isinstance(req[key], list):
                    return err(f"`{key}` is required to be a list")
                if not all(isinstance(k, str) for k in req[key]):
                    return err(f"`{key}` must be a list of strings")
        content = str(content) if not isinstance(content, str) else content
        cid = chunk_id(content, doc_id)
        now = datetime.now()
        chunk: dict[str, Any] = {
            "id": cid,
            "kb_id": kb_id,
            "doc_id": doc_id,
            "docnm_kwd": doc["name"],
            "content": content,
            "important_kwd": req.get("important_keywords", []),
            "question_kwd": [str(q).strip() for q in req.get("questions", []) if str(q).strip()],
            "tag_kwd": None,
            "tag_feas": None,
            "img_id": "",
            "doc_type_kwd": "text",
            "available_int": 1,
            "position_int": [],
            "create_time": str(now).replace("T", " ")[:19],
            "create_timestamp_flt": now.timestamp(),
            "ord": None,
            "token_num": 0,
        }
        if "tag_kwd" in req:
            if not isinstance(req["tag_kwd"], list):
                return err("`tag_kwd` is required to be a list")
            if not all(isinstance(t, str) for t in req["tag_kwd"]):
                return err("`tag_kwd` must be a list of strings")
            chunk["tag_kwd"] = req["tag_kwd"]
        if "tag_feas" in req:
            chunk["tag_feas"] = req["tag_feas"]
        if "image_base64" in req:
            problem = self._attach_image(kb_id, cid, req.get("image_base64"), chunk)
            if problem is not None:
                return problem
        chunk["token_num"] = count_tokens(doc["name"] or "") + count_tokens(content)
        self.store.add_chunk(chunk)
        out: dict[str, Any] = {
            "id": cid,
            "content": content,
            "document_id": doc_id,
            "important_keywords": chunk["important_kwd"],
        }
        if chunk["tag_kwd"] is not None:
            out["tag_kwd"] = chunk["tag_kwd"]
        out["questions"] = chunk["question_kwd"]
        out["dataset_id"] = kb_id
        out["create_timestamp"] = chunk["create_timestamp_flt"]
        out["create_time"] = chunk["create_time"]
        if chunk["img_id"]:
            out["image_id"] = chunk["img_id"]
        out["doc_type_kwd"] = chunk["doc_type_kwd"]
        return ok({"chunk": out})

    def _image_path(self, kb_id: str, name: str) -> Any:
        return self.store.blob_dir / kb_id / "images" / name.replace("/", "_")

    def _attach_image(
        self, kb_id: str, cid: str, image: Any, fields: dict[str, Any]
    ) -> Response | None:
        """Store a chunk's ``image_base64`` and point ``fields`` at it; an error reply if bad."""
        if not isinstance(image, str) or not image.strip():
            return err("`image_base64` must be a non-empty string")
        try:
            binary = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            return err("Invalid `image_base64`")
        if not binary:
            return err("`image_base64` is empty")
        self._store_image(kb_id, cid, binary)
        fields["img_id"] = f"{kb_id}-{cid}"
        fields["doc_type_kwd"] = "image"
        return None

    def _store_image(self, kb_id: str, name: str, data: bytes) -> None:
        path = self._image_path(kb_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    async def get_image(self, request: Request) -> Response:
        image_id = request.path_params["image_id"]
        kb_id, sep, name = image_id.partition("-")
        if not sep or not kb_id or not name or self._own_dataset(kb_id) is None:
            return err("Image not found.")
        path = self._image_path(kb_id, name)
        data = path.read_bytes() if path.is_file() else b""
        if not data:
            return err("Image not found.")
        kind = "application/octet-stream"
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            kind = "image/png"
        elif data[:3] == b"\xff\xd8\xff":
            kind = "image/jpeg"
        elif data[:6] in (b"GIF87a", b"GIF89a"):
            kind = "image/gif"
        return Response(data, media_type=kind)

    async def delete_chunks(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        problem, _doc = self._chunk_scope(kb_id, doc_id)
        if problem is not None:
            return problem
        req = await self._loose_json(request)
        if not req:
            return ok()
        ids = req.get("chunk_ids")
        if not ids:
            if req.get("delete_all") is True:
                self.store.delete_chunks(kb_id, doc_id, None)
            return ok()
        unique, dup_messages = _check_duplicates(ids, "chunk")
        deleted = self.store.delete_chunks(kb_id, doc_id, unique)
        if deleted != len(unique):
            if not unique:
                return ok()
            return err(f"rm_chunk deleted chunks {deleted}, expect {len(unique)}")
        if dup_messages:
            return ok({"success_count": deleted, "errors": dup_messages})
        return ok()

    async def update_chunk(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        cid = request.path_params["chunk_id"]
        problem, doc = self._chunk_scope(kb_id, doc_id)
        if problem is not None or doc is None:
            return problem or err("document not found")
        chunk = self.store.get_chunk(cid, kb_id)
        if chunk is None or chunk["doc_id"] != doc_id:
            return err(f"Can't find this chunk {cid}")
        req = await self._loose_json(request)
        changes: dict[str, Any] = {}
        content = req.get("content")
        if content is not None:
            if not str(content).strip():
                return err("`content` is required")
            changes["content"] = str(content)
        if "important_keywords" in req:
            if not isinstance(req["important_keywords"], list):
                return err("`important_keywords` should be a list")
            _join_check(req["important_keywords"])  # RAGFlow tokenizes " ".join(...) here
            changes["important_kwd"] = req["important_keywords"]
        if "questions" in req:
            if not isinstance(req["questions"], list):
                return err("`questions` should be a list")
            _join_check(req["questions"])
            changes["question_kwd"] = [str(q).strip() for q in req["questions"] if str(q).strip()]
        if "available" in req:
            changes["available_int"] = int(req["available"])
        if "positions" in req:
            if not isinstance(req["positions"], list):
                return err("`positions` should be a list")
            changes["position_int"] = req["positions"]
        if "tag_kwd" in req:
            if not isinstance(req["tag_kwd"], list):
                return err("`tag_kwd` should be a list")
            if not all(isinstance(t, str) for t in req["tag_kwd"]):
                return err("`tag_kwd` must be a list of strings")
            changes["tag_kwd"] = req["tag_kwd"]
        if "tag_feas" in req:
            changes["tag_feas"] = req["tag_feas"]
        if "image_base64" in req:
            problem = self._attach_image(kb_id, cid, req.get("image_base64"), changes)
            if problem is not None:
                return problem
        if doc["parser_id"] == "qa":
            text = changes.get("content", chunk["content"] or "")
            parts = [t for t in re.split(r"[\n\t]", text) if len(t) > 1]
            if len(parts) != 2:
                return err("Q&A must be separated by TAB/ENTER key.")
        if changes:
            self.store.update_chunk(cid, changes)
        return ok()

    async def switch_chunks(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        doc_id = request.path_params["document_id"]
        if self._own_dataset(kb_id) is None:
            return err(f"You don't own the dataset {kb_id}.")
        req = await self._loose_json(request)
        if not req.get("chunk_ids"):
            return err("`chunk_ids` is required.")
        if "available_int" not in req and "available" not in req:
            return err("`available_int` or `available` is required.")
        value = (
            int(req["available_int"])
            if "available_int" in req
            else (1 if req.get("available") else 0)
        )
        doc = self.store.get_document(doc_id)
        if doc is None or doc["kb_id"] != kb_id:
            return err("document not found")
        for cid in req["chunk_ids"]:
            chunk = self.store.get_chunk(cid, kb_id)
            if chunk is None:
                return err("Index updating failure")
            self.store.update_chunk(cid, {"available_int": value})
        return ok(True)

    async def retrieval(self, request: Request) -> Response:
        req = await self._loose_json(request)
        kb_ids = req.get("dataset_ids")
        if not kb_ids:
            return err("`dataset_ids` is required.")
        if not isinstance(kb_ids, list):
            return err("`dataset_ids` should be a list")
        kbs = []
        for kb_id in kb_ids:
            kb = self._own_dataset(kb_id)
            if kb is None:
                return err(f"You don't own the dataset {kb_id}.")
            kbs.append(kb)
        models = {(kb["embd_id"] or "").split("@")[0] for kb in kbs}
        if len(models) > 1:
            return err("Datasets use different embedding models.")
        if "question" not in req:
            return err("`question` is required.")
        page = V.rest_page(req.get("page", C.DEFAULT_PAGE))
        size = V.rest_page_size(req.get("page_size", C.DEFAULT_PAGE_SIZE))
        question = req["question"].strip() if isinstance(req["question"], str) else req["question"]
        if not question:
            return ok({"total": 0, "chunks": [], "doc_aggs": {}})
        doc_ids = req.get("document_ids", [])
        if not isinstance(doc_ids, list):
            return err("`documents` should be a list")
        if doc_ids:
            known: set[str] = set()
            for kb_id in kb_ids:
                known.update(self.store.doc_ids_of(kb_id))
            for doc_id in doc_ids:
                if doc_id not in known:
                    return err(f"The datasets don't own the document {doc_id}")
        if not doc_ids:
            condition = req.get("metadata_condition")
            if condition:
                metas = self.store.flattened_metas(kb_ids)
                doc_ids = M.meta_filter(
                    metas, M.convert_conditions(condition), condition.get("logic", "and")
                )
                if not doc_ids and condition.get("conditions"):
                    return ok({"total": 0, "chunks": [], "doc_aggs": {}})
                if not doc_ids:
                    doc_ids = ["-999"]
            else:
                doc_ids = None
        threshold = float(req.get("similarity_threshold", 0.2))
        weight = float(req.get("vector_similarity_weight", 0.3))
        top = int(req.get("top_k", 1024))
        if top <= 0:
            return err("`top_k` must be greater than 0")
        highlight_val = req.get("highlight")
        if highlight_val is None:
            highlight = False
        elif isinstance(highlight_val, bool):
            highlight = highlight_val
        elif isinstance(highlight_val, str) and highlight_val.lower() in ("true", "false"):
            highlight = highlight_val.lower() == "true"
        else:
            return err("`highlight` should be a boolean")
        if not isinstance(question, str):
            raise TypeError(f"unsupported question type: {type(question).__name__}")
        if req.get("rerank_id"):
            problem = C.check_model(str(req["rerank_id"]), "rerank")
            if problem:
                raise LookupError(problem)
        ranks = self.retriever.search(
            question,
            kb_ids,
            page=page,
            page_size=size,
            doc_ids=doc_ids,
            similarity_threshold=threshold,
            vector_similarity_weight=weight,
            top_k=top,
            highlight=highlight,
        )
        mapping = {
            "chunk_id": "id",
            "content_with_weight": "content",
            "doc_id": "document_id",
            "important_kwd": "important_keywords",
            "question_kwd": "questions",
            "docnm_kwd": "document_keyword",
            "kb_id": "dataset_id",
        }
        ranks["chunks"] = [{mapping.get(k, k): v for k, v in c.items()} for c in ranks["chunks"]]
        return ok(ranks)


# --- helpers -----------------------------------------------------------------------------------


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


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


def _join_check(items: list[Any]) -> None:
    """Raise the TypeError ``str.join`` raises on a non-string item (RAGFlow's behaviour)."""
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(
                f"sequence item {i}: expected str instance, {type(item).__name__} found"
            )


def _check_duplicates(ids: list[Any], kind: str) -> tuple[list[Any], list[str]]:
    counts: dict[Any, int] = {}
    for value in ids:
        key = value if isinstance(value, (str, int, float)) else json.dumps(value)
        counts[key] = counts.get(key, 0) + 1
    messages = [f"Duplicate {kind} ids: {k}" for k, n in counts.items() if n > 1]
    return list(counts), messages


def _sanitize_path(raw: str | None) -> str:
    if not raw:
        return ""
    parts = [p for p in raw.replace("\\", "/").split("/") if p and p not in (".", "..")]
    return "/".join(parts)


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


def _form_filename(name: str) -> str:
    """The file name as RAGFlow's form parser (werkzeug) reads it: a browser or ``requests``
    sends ``"`` in a quoted ``filename`` as ``%22``, and the server turns it back into ``"``.

    Example:
        >>> _form_filename('say %22hi%22.txt')
        'say "hi".txt'
    """
    return name.replace("%22", '"')


def _write_small(path: Any, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _write_large(folder: Any, items: list[tuple[UploadFile, dict[str, Any]]]) -> None:
    for upload, doc in items:
        upload.file.seek(0)
        digest = xxhash.xxh128()
        size = 0
        with open(folder / doc["id"], "wb") as out:
            while True:
                block = upload.file.read(1024 * 1024)
                if not block:
                    break
                digest.update(block)
                size += len(block)
                out.write(block)
        doc["size"] = size
        doc["content_hash"] = digest.hexdigest()


class _Limits:
    """Request body limit (413) and RAGFlow's lenient trailing slashes."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if "//" in path:  # werkzeug merges repeated slashes (redirecting GETs)
            path = re.sub("/{2,}", "/", path)
            scope = dict(scope)
            scope["path"] = path
            scope["raw_path"] = path.encode()
        if len(path) > 1 and path.endswith("/"):
            scope = dict(scope)
            scope["path"] = path.rstrip("/")
            scope["raw_path"] = scope["path"].encode()
        length = None
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                with contextlib.suppress(ValueError):
                    length = int(value)
        if length is not None and length > self.max_body:
            await _too_large(send)
            return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send)


class _BodyTooLarge(Exception):
    pass


_TOO_LARGE = (
    b"<!doctype html>\n<html lang=en>\n<title>413 Request Entity Too Large</title>\n"
    b"<h1>Request Entity Too Large</h1>\n"
    b"<p>The data value transmitted exceeds the capacity limit.</p>\n"
)


def _too_large_response() -> Response:
    return Response(_TOO_LARGE, status_code=413, media_type="text/html; charset=utf-8")


async def _too_large(send: Any) -> None:
    body = _TOO_LARGE
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_app(config: SandboxConfig) -> SandboxApp:
    """Create the sandbox application for ``config``."""
    os.makedirs(config.data_dir, exist_ok=True)
    return SandboxApp(config)
