"""Retrieval routes: ``POST /retrieval`` (BM25 over chunks) and the dataset search routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from .. import metadata as M
from .. import validation as V
from ..responses import err, ok
from .base import Endpoint, Router


class RetrievalRoutes(Router):
    """``/retrieval``, ``/datasets/search`` and ``/datasets/{id}/search``."""

    def routes(self, e: Endpoint) -> list[Route]:
        api = "/api/v1"
        return [
            Route(f"{api}/retrieval", e(self.retrieval), methods=["POST"]),
            Route(f"{api}/datasets/search", e(self.search_datasets), methods=["POST"]),
            Route(
                f"{api}/datasets/{{dataset_id}}/search", e(self.search_dataset), methods=["POST"]
            ),
        ]

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
                    "op": _op_name(f.get("op")),
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


def _op_name(op: object) -> object:
    """A filter operator's canonical name (aliases resolved); anything else unchanged."""
    return M.OP_ALIASES.get(op, op) if isinstance(op, str) else op
