"""Persistence of the sandbox: SQLite (WAL) for records, plain files for document blobs.

Layout under ``data_dir``::

    sandbox.db            datasets, documents, chunks, users, API tokens
    blobs/<kb>/<doc>      the uploaded bytes of each document

One SQLite connection per thread; writes use short ``BEGIN IMMEDIATE`` transactions so the
request thread and the parser threads never block each other for long. Ordered id lists and
flattened metadata are cached per dataset and invalidated by in-memory version counters,
so paging through 100k documents does not pay an ``OFFSET`` scan per page.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from . import constants as C

_SCHEMA = """
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
_DOC_SELECT = ", ".join(DOC_COLUMNS) + ", meta_fields, task_gen, has_task"


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


class Store:
    """All state of one sandbox server.

    Args:
        data_dir: Directory for ``sandbox.db`` and the blobs (created if missing).

    Example:
        >>> import tempfile
        >>> store = Store(tempfile.mkdtemp())
        >>> store.tenant_id != ""
        True
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.blob_dir = self.data_dir / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / "sandbox.db"
        self._local = threading.local()
        self._lock = threading.RLock()
        self._conns: list[sqlite3.Connection] = []
        self._versions: dict[tuple[str, str], int] = {}
        self._order_cache: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self._meta_cache: dict[str, tuple[int, dict[str, dict[str, list[str]]]]] = {}
        self._filter_cache: dict[tuple[str, str], tuple[int, list[str]]] = {}
        conn = self.conn()
        conn.executescript(_SCHEMA)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.tenant_id = self._meta_value("tenant_id") or self._init_tenant()

    # --- connections and transactions ----------------------------------------------------------

    def conn(self) -> sqlite3.Connection:
        """The calling thread's connection (created on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-32000")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success."""
        conn = self.conn()
        if conn.in_transaction:  # nested use: join the outer transaction
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    # --- versions and caches --------------------------------------------------------------------

    def _bump(self, kb_id: str, *kinds: str) -> None:
        with self._lock:
            for kind in kinds:
                key = (kb_id, kind)
                self._versions[key] = self._versions.get(key, 0) + 1

    def version(self, kb_id: str, kind: str) -> int:
        """A dataset's change counter of ``kind`` (``docs``, ``upd``, ``meta``, ``chunks``)."""
        return self._versions.get((kb_id, kind), 0)

    # --- tenant, users and tokens ---------------------------------------------------------------

    def _meta_value(self, key: str) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _init_tenant(self) -> str:
        tenant = new_id()
        with self.tx() as conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('tenant_id', ?)", (tenant,))
        return self._meta_value("tenant_id") or tenant

    def add_token(self, token: str, *, kind: str = "api") -> None:
        """Register an API key (or a login token) for the sandbox tenant."""
        beta = secrets.token_urlsafe(32).replace("-", "")[:32]
        with self.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO tokens VALUES (?, ?, ?, ?, ?)",
                (token, self.tenant_id, beta, kind, now_ms()),
            )

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` is a known API key or login token."""
        row = self.conn().execute("SELECT 1 FROM tokens WHERE token=?", (token,)).fetchone()
        return row is not None

    def token_row(self, token: str) -> dict[str, Any] | None:
        """The stored token record."""
        row = self.conn().execute("SELECT * FROM tokens WHERE token=?", (token,)).fetchone()
        return dict(row) if row else None

    def add_user(self, email: str, nickname: str, password: str) -> bool:
        """Register a user; False when the e-mail is taken."""
        with self.tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?, ?, ?)",
                (self.tenant_id, email, nickname, password, "", now_ms()),
            )
            if cur.rowcount == 0:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?, ?, ?)",
                    (new_id(), email, nickname, password, "", now_ms()),
                )
            return cur.rowcount == 1

    def get_user(self, email: str) -> dict[str, Any] | None:
        """A registered user by e-mail."""
        row = self.conn().execute("SELECT * FROM users WHERE email=?", (email,)).fetchone()
        return dict(row) if row else None

    def nickname(self) -> str:
        """The display name of the tenant owner."""
        row = (
            self.conn()
            .execute("SELECT nickname FROM users ORDER BY create_time LIMIT 1")
            .fetchone()
        )
        return row[0] if row else "sandbox"

    # --- datasets -------------------------------------------------------------------------------

    def dataset_name_taken(self, name: str, *, exclude_id: str | None = None) -> bool:
        """Whether a dataset (case-insensitively) has ``name``."""
        row = (
            self.conn()
            .execute(
                "SELECT id FROM datasets WHERE name=? AND id IS NOT ? LIMIT 1", (name, exclude_id)
            )
            .fetchone()
        )
        return row is not None

    def unique_dataset_name(self, name: str) -> str:
        """``name`` or the first free ``name(n)``."""
        for _ in range(1000):
            if not self.dataset_name_taken(name):
                return name
            name = next_duplicate_name(name)
        raise RuntimeError(f"Failed to generate unique name within 1000 attempts. Original: {name}")

    def create_dataset(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Insert a dataset; ``fields`` uses the internal column names."""
        ts, date = now_ms(), iso_now()
        row = {
            "id": new_id(),
            "tenant_id": self.tenant_id,
            "name": fields["name"],
            "avatar": fields.get("avatar"),
            "description": fields.get("description"),
            "language": fields.get("language") or "English",
            "embd_id": fields.get("embd_id") or C.DEFAULT_EMBEDDING_MODEL,
            "permission": fields.get("permission") or "me",
            "created_by": self.tenant_id,
            "parser_id": fields.get("parser_id") or "naive",
            "pipeline_id": fields.get("pipeline_id"),
            "parser_config": json.dumps(fields.get("parser_config") or {}),
            "pagerank": fields.get("pagerank") or 0,
            "create_time": ts,
            "create_date": date,
            "update_time": ts,
            "update_date": date,
        }
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.tx() as conn:
            conn.execute(f"INSERT INTO datasets ({cols}) VALUES ({marks})", tuple(row.values()))
        got = self.get_dataset(row["id"])
        assert got is not None
        return got

    def get_dataset(self, kb_id: str) -> dict[str, Any] | None:
        """A dataset row (``parser_config`` decoded) or None."""
        row = self.conn().execute("SELECT * FROM datasets WHERE id=?", (kb_id,)).fetchone()
        return self._dataset(row) if row else None

    @staticmethod
    def _dataset(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        out.pop("rid", None)
        out["parser_config"] = json.loads(out["parser_config"] or "{}")
        return out

    def list_datasets(
        self,
        *,
        page: int,
        page_size: int,
        orderby: str,
        desc: bool,
        kb_id: str | None = None,
        name: str | None = None,
        ids: list[str] | None = None,
        keywords: str = "",
        parser_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Datasets of the tenant, filtered and paged like ``KnowledgebaseService.get_list``."""
        where, args = ["status='1'"], []
        if kb_id:
            where.append("id=?")
            args.append(kb_id)
        if ids:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if name:
            where.append("name=?")
            args.append(name)
        if keywords:
            where.append("lower(name) LIKE ?")
            args.append(f"%{keywords.lower()}%")
        if parser_id:
            where.append("parser_id=?")
            args.append(parser_id)
        column = "update_time" if orderby == "update_time" else "create_time"
        direction = "DESC" if desc else "ASC"
        clause = " AND ".join(where)
        conn = self.conn()
        total = conn.execute(f"SELECT COUNT(*) FROM datasets WHERE {clause}", args).fetchone()[0]
        rows = conn.execute(
            f"SELECT * FROM datasets WHERE {clause} ORDER BY {column} {direction}, rid {direction} "
            "LIMIT ? OFFSET ?",
            [*args, page_size, (page - 1) * page_size],
        ).fetchall()
        return [self._dataset(r) for r in rows], total

    def all_dataset_ids(self) -> list[str]:
        """Every dataset id."""
        return [r[0] for r in self.conn().execute("SELECT id FROM datasets ORDER BY rid")]

    def existing_dataset_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` that exist."""
        ids = list(ids)
        if not ids:
            return set()
        rows = self.conn().execute(
            f"SELECT id FROM datasets WHERE id IN ({','.join('?' * len(ids))})", ids
        )
        return {r[0] for r in rows}

    def update_dataset(self, kb_id: str, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (internal column names) to a dataset."""
        allowed = {
            "name",
            "avatar",
            "description",
            "language",
            "embd_id",
            "permission",
            "parser_id",
            "pipeline_id",
            "parser_config",
            "pagerank",
        }
        sets = {k: v for k, v in changes.items() if k in allowed}
        if "parser_config" in sets:
            sets["parser_config"] = json.dumps(sets["parser_config"])
        sets["update_time"] = now_ms()
        sets["update_date"] = iso_now()
        assignments = ", ".join(f"{k}=?" for k in sets)
        with self.tx() as conn:
            conn.execute(f"UPDATE datasets SET {assignments} WHERE id=?", [*sets.values(), kb_id])

    def delete_dataset(self, kb_id: str) -> None:
        """Delete a dataset with its documents, chunks and blobs."""
        with self.tx() as conn:
            conn.execute("DELETE FROM chunks WHERE kb_id=?", (kb_id,))
            conn.execute("DELETE FROM documents WHERE kb_id=?", (kb_id,))
            conn.execute("DELETE FROM datasets WHERE id=?", (kb_id,))
            conn.execute("DELETE FROM index_tasks WHERE kb_id=?", (kb_id,))
        self._bump(kb_id, "docs", "upd", "meta", "chunks")
        shutil.rmtree(self.blob_dir / kb_id, ignore_errors=True)

    def dataset_size(self, kb_id: str) -> int:
        """Total bytes of a dataset's documents."""
        row = (
            self.conn()
            .execute("SELECT SUM(size) FROM documents WHERE kb_id=?", (kb_id,))
            .fetchone()
        )
        return int(row[0] or 0)

    def parsing_status(self, kb_ids: list[str]) -> dict[str, dict[str, int]]:
        """Per dataset, the number of documents in each run state (text names)."""
        out: dict[str, dict[str, int]] = {
            k: {
                "unstart_count": 0,
                "running_count": 0,
                "cancel_count": 0,
                "done_count": 0,
                "fail_count": 0,
            }
            for k in kb_ids
        }
        if not kb_ids:
            return out
        rows = self.conn().execute(
            "SELECT kb_id, run, COUNT(*) FROM documents "
            f"WHERE kb_id IN ({','.join('?' * len(kb_ids))}) "
            "GROUP BY kb_id, run",
            kb_ids,
        )
        for kb_id, run, count in rows:
            text = C.RUN_TEXT.get(run or "0", "UNSTART").lower()
            out[kb_id][f"{text}_count"] = out[kb_id].get(f"{text}_count", 0) + count
        return out

    # --- dataset-wide index tasks (graph / raptor / mindmap ...) ---------------------------------

    def set_index_task(self, kb_id: str, kind: str, task: dict[str, Any] | None) -> None:
        """Record (or with None forget) the latest index task of a kind."""
        with self.tx() as conn:
            if task is None:
                conn.execute("DELETE FROM index_tasks WHERE kb_id=? AND kind=?", (kb_id, kind))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO index_tasks VALUES (?, ?, ?)",
                    (kb_id, kind, json.dumps(task)),
                )

    def index_task(self, kb_id: str, kind: str) -> dict[str, Any] | None:
        """The latest index task of a kind, or None."""
        row = (
            self.conn()
            .execute("SELECT task FROM index_tasks WHERE kb_id=? AND kind=?", (kb_id, kind))
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    # --- documents ------------------------------------------------------------------------------

    def blob_path(self, kb_id: str, doc_id: str) -> Path:
        """Where a document's bytes live."""
        return self.blob_dir / kb_id / doc_id

    def doc_name_taken(self, kb_id: str, name: str) -> bool:
        """Whether a document of the dataset (case-insensitively) has ``name``."""
        row = (
            self.conn()
            .execute("SELECT 1 FROM documents WHERE kb_id=? AND name=? LIMIT 1", (kb_id, name))
            .fetchone()
        )
        return row is not None

    def docs_named(self, kb_id: str, name: str) -> list[dict[str, Any]]:
        """Documents of a dataset called ``name`` (case-insensitive, like MySQL)."""
        rows = (
            self.conn()
            .execute(f"SELECT {_DOC_SELECT} FROM documents WHERE kb_id=? AND name=?", (kb_id, name))
            .fetchall()
        )
        return [dict(r) for r in rows]

    def insert_documents(self, kb_id: str, docs: list[dict[str, Any]]) -> None:
        """Insert new documents (internal column names) and bump the dataset's ``doc_num``."""
        if not docs:
            return
        ts, date = now_ms(), iso_now()
        cols = (
            "id",
            "kb_id",
            "thumbnail",
            "parser_id",
            "pipeline_id",
            "parser_config",
            "source_type",
            "type",
            "created_by",
            "name",
            "location",
            "size",
            "suffix",
            "content_hash",
            "create_time",
            "create_date",
            "update_time",
            "update_date",
        )
        values = []
        for doc in docs:
            doc.setdefault("create_time", ts)
            doc.setdefault("create_date", date)
            doc.setdefault("update_time", ts)
            doc.setdefault("update_date", date)
            pc = doc["parser_config"]
            values.append(
                tuple(
                    json.dumps(pc)
                    if c == "parser_config" and not isinstance(pc, str)
                    else doc.get(c)
                    for c in cols
                )
            )
        with self.tx() as conn:
            conn.executemany(
                f"INSERT INTO documents ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                values,
            )
            conn.execute("UPDATE datasets SET doc_num=doc_num+? WHERE id=?", (len(docs), kb_id))
        self._bump(kb_id, "docs", "upd")

    def get_document(self, doc_id: str, kb_id: str | None = None) -> dict[str, Any] | None:
        """A document row (raw columns) or None; with ``kb_id`` it must belong to that dataset."""
        if kb_id is None:
            row = (
                self.conn()
                .execute(f"SELECT {_DOC_SELECT} FROM documents WHERE id=?", (doc_id,))
                .fetchone()
            )
        else:
            row = (
                self.conn()
                .execute(
                    f"SELECT {_DOC_SELECT} FROM documents WHERE id=? AND kb_id=?", (doc_id, kb_id)
                )
                .fetchone()
            )
        return dict(row) if row else None

    def documents_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        """Rows for ``ids`` in the given order (missing ids are skipped)."""
        if not ids:
            return []
        found: dict[str, dict[str, Any]] = {}
        conn = self.conn()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            for row in conn.execute(
                f"SELECT {_DOC_SELECT} FROM documents WHERE id IN ({','.join('?' * len(part))})",
                part,
            ):
                found[row["id"]] = dict(row)
        return [found[i] for i in ids if i in found]

    _DOC_JSON = (
        "json_object('id', id, 'thumbnail', thumbnail, 'dataset_id', kb_id, "
        "'chunk_method', parser_id, 'pipeline_id', pipeline_id, "
        "'parser_config', json(COALESCE(parser_config, '{}')), "
        "'source_type', CASE WHEN instr(source_type, '/') > 0 "
        "THEN substr(source_type, 1, instr(source_type, '/') - 1) ELSE source_type END, "
        "'type', type, 'created_by', created_by, 'name', name, 'location', location, "
        "'size', size, 'token_count', token_num, 'chunk_count', chunk_num, "
        "'progress', progress, 'progress_msg', progress_msg, "
        "'process_begin_at', process_begin_at, 'process_duration', process_duration, "
        "'suffix', suffix, 'run', CASE run WHEN '1' THEN 'RUNNING' WHEN '2' THEN 'CANCEL' "
        "WHEN '3' THEN 'DONE' WHEN '4' THEN 'FAIL' ELSE 'UNSTART' END, "
        "'status', status, 'create_time', create_time, 'create_date', create_date, "
        "'update_time', update_time, 'update_date', update_date, 'pipeline_name', NULL, "
        "'nickname', ?, 'meta_fields', json(CASE WHEN ? THEN '{}' "
        "ELSE COALESCE(meta_fields, '{}') END))"
    )

    def documents_json(
        self,
        ids: list[str],
        *,
        nickname: str,
        empty_meta: bool = False,
        time_from: int = 0,
        time_to: int = 0,
    ) -> list[str]:
        """The list-route JSON of documents ``ids`` (in that order), rendered by SQLite.

        ``time_from``/``time_to`` (ms, 0 = open) drop documents outside the range, as RAGFlow
        does after paging.
        """
        if not ids:
            return []
        found: dict[str, str] = {}
        conn = self.conn()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            sql = (
                f"SELECT id, {self._DOC_JSON} FROM documents "
                f"WHERE id IN ({','.join('?' * len(part))}) "
                "AND (? = 0 OR create_time >= ?) AND (? = 0 OR create_time <= ?)"
            )
            params = [
                nickname,
                1 if empty_meta else 0,
                *part,
                time_from,
                time_from,
                time_to,
                time_to,
            ]
            for doc_id, text in conn.execute(sql, params):
                found[doc_id] = text
        return [found[i] for i in ids if i in found]

    def doc_ids_of(self, kb_id: str) -> list[str]:
        """Every document id of a dataset (insertion order)."""
        return [
            r[0]
            for r in self.conn().execute(
                "SELECT id FROM documents WHERE kb_id=? ORDER BY rid", (kb_id,)
            )
        ]

    def count_documents(self, kb_id: str | None = None) -> int:
        """Number of documents (of one dataset or overall)."""
        if kb_id is None:
            return int(self.conn().execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        return int(
            self.conn()
            .execute("SELECT COUNT(*) FROM documents WHERE kb_id=?", (kb_id,))
            .fetchone()[0]
        )

    _ORDER_SQL = {
        "create_time": "create_time, rid",
        "update_time": "update_time, rid",
        "name": "name COLLATE NOCASE, rid",
    }

    def ordered_doc_ids(
        self,
        kb_id: str,
        orderby: str,
        *,
        where: list[str] | None = None,
        args: list[Any] | None = None,
    ) -> list[str]:
        """Ids of a dataset's documents in ascending ``orderby`` order.

        Without ``where`` the list is cached until the dataset's documents change.
        """
        order = self._ORDER_SQL[orderby]
        conditions = "".join(" AND " + w for w in (where or []))
        sql = f"SELECT id FROM documents WHERE kb_id=?{conditions} ORDER BY {order}"
        if where:
            return [r[0] for r in self.conn().execute(sql, [kb_id, *(args or [])])]
        kind = "upd" if orderby == "update_time" else "docs"
        key = (kb_id, orderby)
        version = self.version(kb_id, kind)
        cached = self._order_cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        ids = [r[0] for r in self.conn().execute(sql, (kb_id,))]
        with self._lock:
            if self.version(kb_id, kind) == version:
                self._order_cache[key] = (version, ids)
        return ids

    def cached_filter(self, kb_id: str, key: str, compute: Any) -> list[str]:
        """Memoise ``compute()`` (ids) until the dataset's documents or metadata change."""
        version = self.version(kb_id, "docs") * 1_000_003 + self.version(kb_id, "meta")
        cached = self._filter_cache.get((kb_id, key))
        if cached is not None and cached[0] == version:
            return cached[1]
        result = compute()
        with self._lock:
            if len(self._filter_cache) > 256:
                self._filter_cache.clear()
            self._filter_cache[(kb_id, key)] = (version, result)
        return result

    def update_document(
        self, doc_id: str, changes: dict[str, Any], *, kb_id: str | None = None
    ) -> int:
        """Set columns of a document (``update_time`` refreshed). Returns rows changed."""
        sets = dict(changes)
        if "parser_config" in sets and not isinstance(sets["parser_config"], str):
            sets["parser_config"] = json.dumps(sets["parser_config"])
        sets["update_time"] = now_ms()
        sets["update_date"] = iso_now()
        assignments = ", ".join(f"{k}=?" for k in sets)
        with self.tx() as conn:
            cur = conn.execute(
                f"UPDATE documents SET {assignments} WHERE id=?", [*sets.values(), doc_id]
            )
            if kb_id is None:
                row = conn.execute("SELECT kb_id FROM documents WHERE id=?", (doc_id,)).fetchone()
                kb_id = row[0] if row else None
        if kb_id:
            kinds = ["upd"]
            if "name" in changes:
                kinds.append("docs")
            self._bump(kb_id, *kinds)
        return cur.rowcount

    def set_meta_fields(self, kb_id: str, doc_id: str, meta: dict[str, Any] | None) -> None:
        """Replace a document's metadata (``None`` removes it); kept with sorted keys, since
        RAGFlow returns ``meta_fields`` that way."""
        with self.tx() as conn:
            conn.execute(
                "UPDATE documents SET meta_fields=? WHERE id=?",
                (None if meta is None else json.dumps(meta, sort_keys=True), doc_id),
            )
        self._bump(kb_id, "meta")

    def metas_of(self, kb_id: str, doc_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """``{doc_id: meta_fields}`` for documents that have metadata."""
        conn = self.conn()
        if doc_ids is None:
            rows = conn.execute(
                "SELECT id, meta_fields FROM documents WHERE kb_id=? AND meta_fields IS NOT NULL",
                (kb_id,),
            ).fetchall()
        else:
            rows = []
            for start in range(0, len(doc_ids), 500):
                part = doc_ids[start : start + 500]
                rows.extend(
                    conn.execute(
                        "SELECT id, meta_fields FROM documents "
                        "WHERE kb_id=? AND meta_fields IS NOT NULL "
                        f"AND id IN ({','.join('?' * len(part))})",
                        [kb_id, *part],
                    ).fetchall()
                )
        return {r[0]: json.loads(r[1]) for r in rows}

    def flattened_metas(self, kb_ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """``{key: {str(value): [doc_ids]}}`` over datasets (list values expanded), cached."""
        merged: dict[str, dict[str, list[str]]] = {}
        for kb_id in kb_ids:
            version = self.version(kb_id, "meta") * 1_000_003 + self.version(kb_id, "docs")
            cached = self._meta_cache.get(kb_id)
            if cached is None or cached[0] != version:
                flat: dict[str, dict[str, list[str]]] = {}
                for doc_id, meta in self.metas_of(kb_id).items():
                    if not isinstance(meta, dict):
                        continue
                    for key, value in meta.items():
                        bucket = flat.setdefault(key, {})
                        for item in value if isinstance(value, list) else [value]:
                            if item is None:
                                continue
                            bucket.setdefault(str(item), []).append(doc_id)
                with self._lock:
                    self._meta_cache[kb_id] = (version, flat)
                cached = (version, flat)
            if len(kb_ids) == 1:
                return cached[1]
            for key, values in cached[1].items():
                bucket = merged.setdefault(key, {})
                for value, ids in values.items():
                    bucket.setdefault(value, []).extend(ids)
        return merged

    def delete_documents(self, kb_id: str, doc_ids: list[str]) -> int:
        """Delete documents with their chunks, counters and blobs. Returns how many existed."""
        if not doc_ids:
            return 0
        deleted = 0
        with self.tx() as conn:
            for start in range(0, len(doc_ids), 500):
                part = doc_ids[start : start + 500]
                marks = ",".join("?" * len(part))
                row = conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(chunk_num),0), COALESCE(SUM(token_num),0) "
                    f"FROM documents WHERE kb_id=? AND id IN ({marks})",
                    [kb_id, *part],
                ).fetchone()
                count, chunks, tokens = row
                conn.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part)
                conn.execute(
                    f"DELETE FROM documents WHERE kb_id=? AND id IN ({marks})", [kb_id, *part]
                )
                conn.execute(
                    "UPDATE datasets SET doc_num=MAX(doc_num-?,0), chunk_num=MAX(chunk_num-?,0), "
                    "token_num=MAX(token_num-?,0) WHERE id=?",
                    (count, chunks, tokens, kb_id),
                )
                deleted += count
        self._bump(kb_id, "docs", "upd", "meta", "chunks")
        for doc_id in doc_ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.blob_path(kb_id, doc_id))
        return deleted

    # --- parsing state --------------------------------------------------------------------------

    def _release_counters(self, conn: sqlite3.Connection, doc: dict[str, Any]) -> None:
        conn.execute(
            "UPDATE datasets SET chunk_num=MAX(chunk_num-?,0), token_num=MAX(token_num-?,0) "
            "WHERE id=?",
            (doc["chunk_num"] or 0, doc["token_num"] or 0, doc["kb_id"]),
        )
        conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc["id"],))

    def begin_parse(self, doc_id: str, *, clear_msg: bool) -> int | None:
        """Queue a document for parsing: RUNNING, progress 0, old chunks dropped.

        Returns:
            The new task generation, or None if the document is already running.
        """
        with self.tx() as conn:
            row = conn.execute(
                f"SELECT {_DOC_SELECT} FROM documents WHERE id=?", (doc_id,)
            ).fetchone()
            if row is None or row["run"] == C.RUN_RUNNING:
                return None
            doc = dict(row)
            self._release_counters(conn, doc)
            gen = (doc["task_gen"] or 0) + 1
            msg = "" if clear_msg else (doc["progress_msg"] or "")
            conn.execute(
                "UPDATE documents SET run='1', progress=0, progress_msg=?, chunk_num=0, "
                "token_num=0, process_duration=0, task_gen=?, has_task=1, update_time=?, "
                "update_date=? WHERE id=?",
                (msg, gen, now_ms(), iso_now(), doc_id),
            )
        self._bump(doc["kb_id"], "upd", "chunks")
        return gen

    def stop_parse(self, doc_id: str, *, note: str | None) -> bool:
        """Cancel a document's parse: CANCEL, progress 0, chunks dropped."""
        with self.tx() as conn:
            row = conn.execute(
                f"SELECT {_DOC_SELECT} FROM documents WHERE id=?", (doc_id,)
            ).fetchone()
            if row is None:
                return False
            doc = dict(row)
            self._release_counters(conn, doc)
            msg = (doc["progress_msg"] or "") + (note or "")
            conn.execute(
                "UPDATE documents SET run='2', progress=0, progress_msg=?, chunk_num=0, "
                "token_num=0, "
                "task_gen=task_gen+1, update_time=?, update_date=? WHERE id=?",
                (msg, now_ms(), iso_now(), doc_id),
            )
        self._bump(doc["kb_id"], "upd", "chunks")
        return True

    def reset_document(self, doc_id: str, changes: dict[str, Any]) -> None:
        """Back to UNSTART (chunk method changed): chunks and counters dropped."""
        with self.tx() as conn:
            row = conn.execute(
                f"SELECT {_DOC_SELECT} FROM documents WHERE id=?", (doc_id,)
            ).fetchone()
            if row is None:
                return
            doc = dict(row)
            self._release_counters(conn, doc)
            sets = {
                "progress": 0,
                "progress_msg": "",
                "run": C.RUN_UNSTART,
                "chunk_num": 0,
                "token_num": 0,
                "process_duration": 0,
                **changes,
                "update_time": now_ms(),
                "update_date": iso_now(),
            }
            conn.execute(
                f"UPDATE documents SET {', '.join(f'{k}=?' for k in sets)}, "
                "task_gen=task_gen+1 WHERE id=?",
                [*sets.values(), doc_id],
            )
        self._bump(doc["kb_id"], "upd", "chunks")

    def parse_progress(self, doc_id: str, gen: int, changes: dict[str, Any]) -> bool:
        """Record progress of task ``gen``; False if the task was cancelled or superseded."""
        sets = {**changes, "update_time": now_ms(), "update_date": iso_now()}
        with self.tx() as conn:
            cur = conn.execute(
                f"UPDATE documents SET {', '.join(f'{k}=?' for k in sets)} "
                "WHERE id=? AND task_gen=? AND run='1'",
                [*sets.values(), doc_id, gen],
            )
            row = conn.execute("SELECT kb_id FROM documents WHERE id=?", (doc_id,)).fetchone()
        if row:
            self._bump(row[0], "upd")
        return cur.rowcount == 1

    def finish_parse(
        self,
        doc_id: str,
        gen: int,
        *,
        chunks: list[dict[str, Any]],
        changes: dict[str, Any],
    ) -> bool:
        """Store the chunks and the final state of task ``gen`` atomically."""
        tokens = sum(c.get("token_num", 0) for c in chunks)
        with self.tx() as conn:
            row = conn.execute(
                "SELECT kb_id FROM documents WHERE id=? AND task_gen=? AND run='1'", (doc_id, gen)
            ).fetchone()
            if row is None:
                return False
            kb_id = row[0]
            self._insert_chunks(conn, chunks)
            real = conn.execute("SELECT COUNT(*) FROM chunks WHERE doc_id=?", (doc_id,)).fetchone()[
                0
            ]
            sets = {
                **changes,
                "chunk_num": real,
                "token_num": tokens,
                "update_time": now_ms(),
                "update_date": iso_now(),
            }
            conn.execute(
                f"UPDATE documents SET {', '.join(f'{k}=?' for k in sets)} WHERE id=?",
                [*sets.values(), doc_id],
            )
            conn.execute(
                "UPDATE datasets SET chunk_num=chunk_num+?, token_num=token_num+? WHERE id=?",
                (real, tokens, kb_id),
            )
        self._bump(kb_id, "upd", "chunks")
        return True

    def running_tasks(self) -> list[tuple[str, int]]:
        """``(doc_id, task_gen)`` of documents left RUNNING (to resume after a restart)."""
        return [
            (r[0], r[1])
            for r in self.conn().execute(
                "SELECT id, task_gen FROM documents WHERE run='1' ORDER BY update_time, rid"
            )
        ]

    # --- chunks ---------------------------------------------------------------------------------

    @staticmethod
    def _insert_chunks(conn: sqlite3.Connection, chunks: list[dict[str, Any]]) -> None:
        cols = (
            "id",
            "kb_id",
            "doc_id",
            "docnm_kwd",
            "content",
            "important_kwd",
            "question_kwd",
            "tag_kwd",
            "tag_feas",
            "img_id",
            "doc_type_kwd",
            "available_int",
            "position_int",
            "create_time",
            "create_timestamp_flt",
            "ord",
            "token_num",
        )
        json_cols = {"important_kwd", "question_kwd", "tag_kwd", "tag_feas", "position_int"}
        rows = [
            tuple(json.dumps(c.get(col)) if col in json_cols else c.get(col) for col in cols)
            for c in chunks
        ]
        conn.executemany(
            f"INSERT OR REPLACE INTO chunks ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' * len(cols))})",
            rows,
        )

    @staticmethod
    def _chunk(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        for col in ("important_kwd", "question_kwd", "tag_kwd", "tag_feas", "position_int"):
            out[col] = json.loads(out[col]) if out.get(col) else None
        return out

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        """Insert (or overwrite) one chunk and count it on its document and dataset."""
        with self.tx() as conn:
            self._insert_chunks(conn, [chunk])
            n = 1  # counted even when the id already existed (an overwrite), like RAGFlow
            conn.execute(
                "UPDATE documents SET chunk_num=chunk_num+?, token_num=token_num+? WHERE id=?",
                (n, chunk.get("token_num", 0), chunk["doc_id"]),
            )
            conn.execute(
                "UPDATE datasets SET chunk_num=chunk_num+?, token_num=token_num+? WHERE id=?",
                (n, chunk.get("token_num", 0), chunk["kb_id"]),
            )
        self._bump(chunk["kb_id"], "chunks", "upd")

    def get_chunk(self, chunk_id: str, kb_id: str | None = None) -> dict[str, Any] | None:
        """A chunk row (JSON columns decoded) or None."""
        if kb_id is None:
            row = self.conn().execute("SELECT * FROM chunks WHERE id=?", (chunk_id,)).fetchone()
        else:
            row = (
                self.conn()
                .execute("SELECT * FROM chunks WHERE id=? AND kb_id=?", (chunk_id, kb_id))
                .fetchone()
            )
        return self._chunk(row) if row else None

    def update_chunk(self, chunk_id: str, changes: dict[str, Any]) -> None:
        """Set columns of a chunk."""
        json_cols = {"important_kwd", "question_kwd", "tag_kwd", "tag_feas", "position_int"}
        sets = {k: (json.dumps(v) if k in json_cols else v) for k, v in changes.items()}
        with self.tx() as conn:
            conn.execute(
                f"UPDATE chunks SET {', '.join(f'{k}=?' for k in sets)} WHERE id=?",
                [*sets.values(), chunk_id],
            )
            row = conn.execute("SELECT kb_id FROM chunks WHERE id=?", (chunk_id,)).fetchone()
        if row:
            self._bump(row[0], "chunks")

    def doc_chunks(
        self,
        doc_id: str,
        *,
        ids: list[str] | None = None,
        available: int | None = None,
    ) -> list[dict[str, Any]]:
        """Chunks of a document in reading order (parsed first, then added ones)."""
        where, args = ["doc_id=?"], [doc_id]
        if ids:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if available is not None:
            where.append("available_int=?")
            args.append(available)
        rows = (
            self.conn()
            .execute(
                f"SELECT * FROM chunks WHERE {' AND '.join(where)} "
                "ORDER BY ord IS NULL, ord, create_timestamp_flt, rid",
                args,
            )
            .fetchall()
        )
        return [self._chunk(r) for r in rows]

    def delete_chunks(self, kb_id: str, doc_id: str, ids: list[str] | None) -> int:
        """Delete chunks of a document (all when ``ids`` is None). Returns how many."""
        with self.tx() as conn:
            if ids is None:
                cur = conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
            else:
                cur = conn.execute(
                    f"DELETE FROM chunks WHERE doc_id=? AND id IN ({','.join('?' * len(ids))})",
                    [doc_id, *ids],
                )
            n = cur.rowcount
            if n:
                conn.execute(
                    "UPDATE documents SET chunk_num=MAX(chunk_num-?,0), "
                    "token_num=MAX(token_num-1,0) WHERE id=?",
                    (n, doc_id),
                )
                conn.execute(
                    "UPDATE datasets SET chunk_num=MAX(chunk_num-?,0), "
                    "token_num=MAX(token_num-1,0) WHERE id=?",
                    (n, kb_id),
                )
        self._bump(kb_id, "chunks", "upd")
        return n

    def set_chunks_available(self, doc_id: str, available: int) -> None:
        """Enable or disable every chunk of a document (document ``status``)."""
        with self.tx() as conn:
            conn.execute("UPDATE chunks SET available_int=? WHERE doc_id=?", (available, doc_id))
            row = conn.execute("SELECT kb_id FROM documents WHERE id=?", (doc_id,)).fetchone()
        if row:
            self._bump(row[0], "chunks")

    def rename_chunks_doc(self, doc_id: str, name: str) -> None:
        """Keep ``docnm_kwd`` of a document's chunks in step with its name."""
        with self.tx() as conn:
            conn.execute("UPDATE chunks SET docnm_kwd=? WHERE doc_id=?", (name, doc_id))

    def chunks_of_datasets(self, kb_ids: list[str]) -> Iterator[dict[str, Any]]:
        """Every chunk of the datasets (for the retrieval index)."""
        if not kb_ids:
            return iter(())
        rows = self.conn().execute(
            f"SELECT * FROM chunks WHERE kb_id IN ({','.join('?' * len(kb_ids))}) ORDER BY rid",
            kb_ids,
        )
        return (self._chunk(r) for r in rows)
