"""Documents: rows, blobs, ordered listings (cached per dataset), metadata and deletion."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from .base import StoreBase
from .schema import DOC_SELECT, iso_now, now_ms


class DocumentStore(StoreBase):
    """Document rows, blobs, cached listings and metadata."""

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
            .execute(f"SELECT {DOC_SELECT} FROM documents WHERE kb_id=? AND name=?", (kb_id, name))
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
                .execute(f"SELECT {DOC_SELECT} FROM documents WHERE id=?", (doc_id,))
                .fetchone()
            )
        else:
            row = (
                self.conn()
                .execute(
                    f"SELECT {DOC_SELECT} FROM documents WHERE id=? AND kb_id=?", (doc_id, kb_id)
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
                f"SELECT {DOC_SELECT} FROM documents WHERE id IN ({','.join('?' * len(part))})",
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
