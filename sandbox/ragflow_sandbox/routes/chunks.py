"""Chunk routes: list, get, add, update, delete, switch, and chunk images."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from .. import validation as V
from ..chunker import count_tokens
from ..records import chunk_list_item, doc_api
from ..responses import err, ok, respond
from ..retrieval import highlight_text, keyword_match
from ..worker import chunk_id
from .base import Endpoint, Router, check_duplicates


def _join_check(items: list[Any]) -> None:
    """Raise the TypeError ``str.join`` raises on a non-string item (RAGFlow's behaviour)."""
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(
                f"sequence item {i}: expected str instance, {type(item).__name__} found"
            )


class ChunkRoutes(Router):
    """``/datasets/{id}/documents/{doc}/chunks`` and ``/documents/images/{image_id}``."""

    def routes(self, e: Endpoint) -> list[Route]:
        api = "/api/v1"
        doc = f"{api}/datasets/{{dataset_id}}/documents/{{document_id}}"
        return [
            Route(f"{api}/documents/images/{{image_id}}", e(self.get_image), methods=["GET"]),
            Route(f"{doc}/chunks", e(self.list_chunks), methods=["GET"]),
            Route(f"{doc}/chunks", e(self.add_chunk), methods=["POST"]),
            Route(f"{doc}/chunks", e(self.delete_chunks), methods=["DELETE"]),
            Route(f"{doc}/chunks", e(self.switch_chunks), methods=["PATCH"]),
            Route(f"{doc}/chunks/{{chunk_id}}", e(self.get_chunk), methods=["GET"]),
            Route(f"{doc}/chunks/{{chunk_id}}", e(self.update_chunk), methods=["PATCH", "PUT"]),
        ]

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
        res: dict[str, Any] = {"total": 0, "chunks": [], "doc": doc_api(doc)}
        single = q.get("id")
        if single:
            chunk = self.store.get_chunk(single, kb_id)
            if chunk is None or chunk["doc_id"] != doc_id:
                return err(f"Chunk not found: {kb_id}/{single}")
            res["total"] = 1
            listed = chunk_list_item(chunk)
            listed["tag_feas"] = chunk.get("tag_feas") or {}
            res["chunks"].append(listed)
            return ok(res)
        chunks = self.store.doc_chunks(doc_id, ids=chunk_ids or None, available=available)
        if question:
            chunks = [c for c in chunks if keyword_match(c["content"] or "", question)]
        res["total"] = len(chunks)
        terms = set(question.lower().split()) if question else set()
        for chunk in chunks[(page - 1) * size : page * size]:
            content = highlight_text(chunk["content"] or "", terms) if terms else None
            res["chunks"].append(chunk_list_item(chunk, content))
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
        unique, dup_messages = check_duplicates(ids, "chunk")
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
