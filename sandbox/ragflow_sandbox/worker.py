"""Background parser: the RAGFlow run-state machine without the heavy models.

A parse request puts a document in ``RUNNING`` (progress 0) at once. The worker threads
then take it through ``progress_msg`` ("Task has been received." ... "Task done") to
``DONE`` (progress 1, chunks stored, ``chunk_count``/``token_count`` set) or ``FAIL``
(progress -1, ``[ERROR]`` in the message). ``stop`` moves a document to ``CANCEL``; a
stale task notices through the document's task generation and discards its work.

``parse_delay`` (seconds) keeps every document in ``RUNNING`` for that long before it is
parsed, to simulate a slow server; documents wait in parallel, each one ``parse_delay``
after its parse request. It can be changed at run time (``PUT /_sandbox/config``).

``serial`` mode models a real server's one task executor instead: a single thread spends the
delay of each document in turn (the queue drains at one document per ``parse_delay``, in
request order), so parsing 1,000 documents takes ``1000 * parse_delay`` however they were sent.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import threading
import time
from datetime import datetime
from typing import Any

import xxhash

from . import constants as C
from .chunker import ParseError, chunk_document
from .store import Store, iso_now

log = logging.getLogger(__name__)


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


def chunk_id(content: str, doc_id: str) -> str:
    """The chunk id RAGFlow derives from content and document: xxh64 hex of both.

    Example:
        >>> chunk_id("hello", "doc1")
        'b3bc8f53cdfcf9aa'
    """
    return xxhash.xxh64((content + doc_id).encode("utf-8", "surrogatepass")).hexdigest()


class ParseWorker:
    """Threads that parse queued documents.

    Args:
        store: Where documents, blobs and chunks live.
        parse_delay: Seconds each document stays RUNNING before it is parsed.
        threads: Number of parser threads (1 when ``serial``).
        serial: Parse one document at a time, each taking ``parse_delay`` of the one thread.
        max_parse_bytes: Files above this size fail (RAGFlow: 128 MiB).

    Example:
        >>> import tempfile
        >>> worker = ParseWorker(Store(tempfile.mkdtemp()), threads=1)
        >>> worker.start(); worker.stop()
    """

    def __init__(
        self,
        store: Store,
        *,
        parse_delay: float = 0.0,
        threads: int = 2,
        serial: bool = False,
        max_parse_bytes: int = C.DEFAULT_MAX_PARSE_BYTES,
    ) -> None:
        self.store = store
        self.parse_delay = parse_delay
        self.serial = serial
        self.threads = 1 if serial else threads
        self.max_parse_bytes = max_parse_bytes
        self._heap: list[tuple[float, int, str, int, int]] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads and resume documents left RUNNING by a previous run."""
        self._stopping = False
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"sandbox-parser-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)
        for doc_id, gen in self.store.running_tasks():
            self.submit(doc_id, gen)

    def stop(self) -> None:
        """Stop the threads (queued work stays RUNNING in the database and resumes later)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._workers:
            thread.join(timeout=5)
        self._workers.clear()

    def submit(self, doc_id: str, gen: int) -> None:
        """Queue task ``gen`` of a document."""
        self._push(time.monotonic(), doc_id, gen, 0)

    def pending(self) -> int:
        """Number of queued task steps."""
        with self._cond:
            return len(self._heap)

    def _push(self, due: float, doc_id: str, gen: int, stage: int) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, doc_id, gen, stage))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(timeout=min(wait, 0.5))
                    else:
                        self._cond.wait(timeout=0.5)
                if self._stopping:
                    return
                _, _, doc_id, gen, stage = heapq.heappop(self._heap)
            try:
                self._step(doc_id, gen, stage)
            except Exception:  # a broken document must not kill the worker
                log.exception("sandbox parser failed on %s", doc_id)
                with contextlib.suppress(Exception):
                    self._fail(
                        doc_id, gen, "", time.monotonic(), "Internal server error while chunking"
                    )

    def _step(self, doc_id: str, gen: int, stage: int) -> None:
        doc = self.store.get_document(doc_id)
        if doc is None or doc["task_gen"] != gen or doc["run"] != C.RUN_RUNNING:
            return
        delay = self.parse_delay
        if stage == 0:
            begin = iso_now()
            msg = f"{_clock()} Task has been received."
            if delay > 0 and self.serial:
                # the one executor is busy with this document for the whole delay
                started = time.monotonic()
                if not self.store.parse_progress(
                    doc_id, gen, {"process_begin_at": begin, "progress": 0.05, "progress_msg": msg}
                ):
                    return
                self._sleep_until(started + delay)
                doc = self.store.get_document(doc_id)
                if doc is None or doc["task_gen"] != gen or doc["run"] != C.RUN_RUNNING:
                    return
                self._parse(doc, gen, doc["progress_msg"] or msg, begin, started)
                return
            if delay > 0:
                if self.store.parse_progress(
                    doc_id, gen, {"process_begin_at": begin, "progress": 0.05, "progress_msg": msg}
                ):
                    self._push(time.monotonic() + delay, doc_id, gen, 1)
                return
            self._parse(doc, gen, msg, begin, time.monotonic())
            return
        started = time.monotonic() - delay
        self._parse(
            doc, gen, doc["progress_msg"] or "", doc["process_begin_at"] or iso_now(), started
        )

    def _sleep_until(self, due: float) -> None:
        """Sleep until ``due`` (monotonic), waking early when the worker stops."""
        with self._cond:
            while not self._stopping:
                wait = due - time.monotonic()
                if wait <= 0:
                    return
                self._cond.wait(timeout=wait)

    def _parse(self, doc: dict[str, Any], gen: int, msg: str, begin: str, started: float) -> None:
        doc_id = doc["id"]
        page = "Page(1~100000001)"
        msg += f"\n{_clock()} {page}: Start to parse."
        path = self.store.blob_path(doc["kb_id"], doc_id)
        try:
            size = path.stat().st_size if path.exists() else 0
            if size > self.max_parse_bytes:
                limit_mb = self.max_parse_bytes // (1024 * 1024)
                raise ParseError(f"File size exceeds( <= {limit_mb}Mb )")
            blob = path.read_bytes() if path.exists() else b""
            parser_config = json.loads(doc["parser_config"] or "{}")
            pieces = chunk_document(
                doc["name"] or "",
                blob,
                doc["type"] or "",
                doc["parser_id"] or "naive",
                parser_config,
            )
        except ParseError as exc:
            self._fail(doc_id, gen, msg, started, str(exc), begin=begin)
            return
        msg += f"\n{_clock()} {page}: Finish parsing."
        now = time.time()
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        image = doc["type"] == C.FILE_VISUAL
        chunks = []
        for i, piece in enumerate(pieces):
            chunks.append(
                {
                    "id": chunk_id(piece.content, doc_id),
                    "kb_id": doc["kb_id"],
                    "doc_id": doc_id,
                    "docnm_kwd": doc["name"],
                    "content": piece.content,
                    "important_kwd": [],
                    "question_kwd": [],
                    "tag_kwd": [],
                    "tag_feas": None,
                    "img_id": "",
                    "doc_type_kwd": "image" if image else "text",
                    "available_int": 1 if doc["status"] != "0" else 0,
                    "position_int": [],
                    "create_time": stamp,
                    "create_timestamp_flt": now + i * 1e-6,
                    "ord": i,
                    "token_num": piece.tokens,
                }
            )
        elapsed = time.monotonic() - started
        msg += f"\n{_clock()} {page}: Generate {len(chunks)} chunks"
        msg += f"\n{_clock()} {page}: Indexing done ({elapsed:.2f}s). Task done ({elapsed:.2f}s)"
        self.store.finish_parse(
            doc_id,
            gen,
            chunks=chunks,
            changes={
                "run": C.RUN_DONE,
                "progress": 1.0,
                "progress_msg": msg,
                "process_begin_at": begin,
                "process_duration": max(round(elapsed, 4), 0.0001),
            },
        )

    def _fail(
        self,
        doc_id: str,
        gen: int,
        msg: str,
        started: float,
        error: str,
        *,
        begin: str | None = None,
    ) -> None:
        elapsed = time.monotonic() - started
        changes: dict[str, Any] = {
            "run": C.RUN_FAIL,
            "progress": -1,
            "progress_msg": (msg + "\n" if msg else "") + f"{_clock()} [ERROR]{error}",
            "process_duration": max(round(elapsed, 4), 0.0001),
        }
        if begin:
            changes["process_begin_at"] = begin
        self.store.parse_progress(doc_id, gen, changes)
