"""Rows of the store in RAGFlow's public shapes (``map_doc_keys``, ``remap_dictionary_keys``)."""

from __future__ import annotations

import json
from typing import Any

from . import constants as C
from .store import DATASET_TASK_FIELDS

__all__ = ["chunk_list_item", "dataset_api", "doc_api"]


def doc_api(row: dict[str, Any], *, with_hash: bool = True) -> dict[str, Any]:
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


def dataset_api(row: dict[str, Any]) -> dict[str, Any]:
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


def chunk_list_item(chunk: dict[str, Any], content: str | None = None) -> dict[str, Any]:
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
