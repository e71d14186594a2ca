"""The SQLite schema and column lists of the sandbox store, its ids, clocks and RAGFlow's
duplicate-name rule."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, email TEXT UNIQUE COLLATE NOCASE, nickname TEXT, password TEXT,
    access_token TEXT, create_time INTEGER);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, tenant_id TEXT, beta TEXT, kind TEXT, create_time INTEGER);
CREATE TABLE IF NOT EXISTS datasets (
    rid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, tenant_id TEXT, name TEXT COLLATE NOCASE, avatar TEXT,
    description TEXT, language TEXT, embd_id TEXT, permission TEXT, created_by TEXT,
    doc_num INTEGER DEFAULT 0, token_num INTEGER DEFAULT 0, chunk_num INTEGER DEFAULT 0,
    similarity_threshold REAL DEFAULT 0.2, vector_similarity_weight REAL DEFAULT 0.3,
    parser_id TEXT, pipeline_id TEXT, parser_config TEXT, pagerank INTEGER DEFAULT 0,
    status TEXT DEFAULT '1', create_time INTEGER, create_date TEXT, update_time INTEGER,
    update_date TEXT);
CREATE INDEX IF NOT EXISTS ds_name ON datasets(name COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS documents (
    rid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, kb_id TEXT NOT NULL, thumbnail TEXT, parser_id TEXT,
    pipeline_id TEXT, parser_config TEXT, source_type TEXT, type TEXT, created_by TEXT,
    name TEXT COLLATE NOCASE, location TEXT, size INTEGER, token_num INTEGER DEFAULT 0,
    chunk_num INTEGER DEFAULT 0, progress REAL DEFAULT 0, progress_msg TEXT DEFAULT '',
    process_begin_at TEXT, process_duration REAL DEFAULT 0, suffix TEXT, content_hash TEXT,
    run TEXT DEFAULT '0', status TEXT DEFAULT '1', meta_fields TEXT, task_gen INTEGER DEFAULT 0,
    has_task INTEGER DEFAULT 0, create_time INTEGER, create_date TEXT, update_time INTEGER,
    update_date TEXT);
CREATE INDEX IF NOT EXISTS doc_kb_ct ON documents(kb_id, create_time, rid);
CREATE INDEX IF NOT EXISTS doc_kb_ut ON documents(kb_id, update_time, rid);
CREATE INDEX IF NOT EXISTS doc_kb_name ON documents(kb_id, name COLLATE NOCASE, rid);
CREATE INDEX IF NOT EXISTS doc_run ON documents(run);
CREATE INDEX IF NOT EXISTS doc_kb_loc ON documents(kb_id, location);
CREATE TABLE IF NOT EXISTS chunks (
    rid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, kb_id TEXT NOT NULL, doc_id TEXT NOT NULL, docnm_kwd TEXT,
    content TEXT, important_kwd TEXT, question_kwd TEXT, tag_kwd TEXT, tag_feas TEXT,
    img_id TEXT, doc_type_kwd TEXT, available_int INTEGER DEFAULT 1, position_int TEXT,
    create_time TEXT, create_timestamp_flt REAL, ord INTEGER, token_num INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS chunk_doc ON chunks(doc_id, ord, create_timestamp_flt);
CREATE INDEX IF NOT EXISTS chunk_kb ON chunks(kb_id);
CREATE TABLE IF NOT EXISTS index_tasks (
    kb_id TEXT NOT NULL, kind TEXT NOT NULL, task TEXT NOT NULL, PRIMARY KEY (kb_id, kind));
"""

DATASET_TASK_FIELDS = (
    "graphrag_task_id",
    "graphrag_task_finish_at",
    "raptor_task_id",
    "raptor_task_finish_at",
    "mindmap_task_id",
    "mindmap_task_finish_at",
    "wiki_task_id",
    "wiki_task_finish_at",
    "skill_task_id",
    "skill_task_finish_at",
    "structure_graph_task_id",
    "structure_graph_task_finish_at",
    "structure_mindmap_task_id",
    "structure_mindmap_task_finish_at",
    "timeline_task_id",
    "timeline_task_finish_at",
    "session_graph_task_id",
    "session_graph_task_finish_at",
    "session_essence_task_id",
    "session_essence_task_finish_at",
    "structure_task_id",
    "structure_task_finish_at",
)

DOC_COLUMNS = (
    "id",
    "thumbnail",
    "kb_id",
    "parser_id",
    "pipeline_id",
    "parser_config",
    "source_type",
    "type",
    "created_by",
    "name",
    "location",
    "size",
    "token_num",
    "chunk_num",
    "progress",
    "progress_msg",
    "process_begin_at",
    "process_duration",
    "suffix",
    "content_hash",
    "run",
    "status",
    "create_time",
    "create_date",
    "update_time",
    "update_date",
)
DOC_SELECT = ", ".join(DOC_COLUMNS) + ", meta_fields, task_gen, has_task"


def new_id() -> str:
    """A RAGFlow-style id: ``uuid1().hex`` (32 lowercase hex characters)."""
    return uuid.uuid1().hex


def now_ms() -> int:
    """Current time in epoch milliseconds (RAGFlow's ``current_timestamp``)."""
    return int(time.time() * 1000)


def iso_now() -> str:
    """Local time as RAGFlow serialises datetimes (``2026-11-22T07:40:06``)."""
    return datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def split_name_counter(stem: str) -> tuple[str, int | None]:
    """Split ``"name(3)"`` into ``("name", 3)``."""
    if stem.endswith(")") and "(" in stem:
        head, _, tail = stem[:-1].rpartition("(")
        if tail.isdigit():
            return head.rstrip(), int(tail)
    return stem, None


def next_duplicate_name(name: str) -> str:
    """The name RAGFlow tries after ``name`` is taken: ``a.txt`` → ``a(1).txt`` → ``a(2).txt``."""
    base = name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    if dot > 0:
        stem, suffix = name[: len(name) - len(base) + dot], base[dot:]
    else:
        stem, suffix = name, ""
    main, counter = split_name_counter(stem)
    return f"{main}({(counter or 0) + 1}){suffix}"
