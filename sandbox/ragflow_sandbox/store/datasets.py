"""Datasets and their dataset-wide index tasks."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable
from typing import Any

from .. import constants as C
from .base import StoreBase
from .schema import iso_now, new_id, next_duplicate_name, now_ms


class DatasetStore(StoreBase):
    """Dataset rows, names and index tasks."""

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
