"""The parse state machine of documents (RUNNING, CANCEL, DONE, FAIL) and its counters."""

from __future__ import annotations

import sqlite3
from typing import Any

from .. import constants as C
from .base import StoreBase
from .chunks import insert_chunks
from .schema import DOC_SELECT, iso_now, now_ms


class ParseStateStore(StoreBase):
    """Begin, stop, progress and finish of parse runs."""

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
                f"SELECT {DOC_SELECT} FROM documents WHERE id=?", (doc_id,)
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
                f"SELECT {DOC_SELECT} FROM documents WHERE id=?", (doc_id,)
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
                f"SELECT {DOC_SELECT} FROM documents WHERE id=?", (doc_id,)
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
            insert_chunks(conn, chunks)
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
