"""Chunks of parsed documents: insert, get, update, delete, availability, retrieval feed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from .base import StoreBase


def insert_chunks(conn: sqlite3.Connection, chunks: list[dict[str, Any]]) -> None:
    """Insert (or overwrite) chunk rows in one statement (inside the caller's transaction)."""
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
        f"INSERT OR REPLACE INTO chunks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        rows,
    )


class ChunkStore(StoreBase):
    """Chunk rows."""

    @staticmethod
    def _chunk(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        for col in ("important_kwd", "question_kwd", "tag_kwd", "tag_feas", "position_int"):
            out[col] = json.loads(out[col]) if out.get(col) else None
        return out

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        """Insert (or overwrite) one chunk and count it on its document and dataset."""
        with self.tx() as conn:
            insert_chunks(conn, [chunk])
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
        where: list[str] = ["doc_id=?"]
        args: list[object] = [doc_id]
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
