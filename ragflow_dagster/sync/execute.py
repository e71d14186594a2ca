"""Carry a plan out against a RAGFlow server: the I/O half of the sync.

Order of work (each phase bounded in concurrency):

1. relabel, move and adopt (metadata updates only);
2. uploads of new and replaced files, several files per request, streamed from the source and
   hashed on the way, each followed by its metadata update;
3. one batched parse request per 100 documents;
4. waiting: the dataset's document list is polled in pages (filtered on the run state), never one
   GET per document, until every document has finished or the deadline passes; failed parses are
   retried a configurable number of times;
5. deletes that had to wait for a successor to parse (replaced versions), then the rest.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ragflow_dagster.client import (
    Document,
    RAGFlowClient,
    RAGFlowConflictError,
    RAGFlowError,
    RAGFlowPartialUploadError,
    RAGFlowUnavailableError,
    RAGFlowUploadAmbiguousError,
    UploadFile,
)
from ragflow_dagster.sources import HashingReader, Source, SourceEntry
from ragflow_dagster.sync.identity import document_name, managed_meta
from ragflow_dagster.sync.plan import (
    Action,
    Adopt,
    Delete,
    Move,
    Plan,
    Relabel,
    Reparse,
    Replace,
    Unchanged,
    Upload,
)
from ragflow_dagster.sync.report import SyncReport

logger = logging.getLogger("ragflow_dagster.sync")

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: called as work completes."""

_PENDING = ("UNSTART", "RUNNING")
_FAILED = ("FAIL", "CANCEL")
_ACTION_COUNT = {
    "upload": "uploaded",
    "replace": "replaced",
    "adopt": "adopted",
    "move": "moved",
    "relabel": "relabelled",
    "reparse": "reparsed",
    "unchanged": "unchanged",
}


@dataclass(frozen=True, slots=True)
class ExecuteOptions:
    """How a plan is carried out.

    Attributes:
        max_workers: Concurrent requests (uploads, metadata updates).
        parse: Ask the server to parse new and changed documents.
        wait: Wait until parsing has finished (then replaced versions are deleted).
        parse_timeout: Deadline for the wait, in seconds.
        parse_retries: How many times a failed parse is started again.
        poll_interval: First polling interval; it grows to ``max_poll_interval``.
        max_poll_interval: Longest polling interval, in seconds.
    """

    max_workers: int = 4
    parse: bool = True
    wait: bool = True
    parse_timeout: float = 3600.0
    parse_retries: int = 1
    poll_interval: float = 0.2
    max_poll_interval: float = 2.0


@dataclass
class _ParseTracker:
    """Documents whose parse this run started or waits for."""

    pending: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)


class PlanExecutor:
    """Executes one :class:`~ragflow_dagster.sync.plan.Plan` and fills a report."""

    def __init__(
        self,
        client: RAGFlowClient,
        source: Source,
        dataset_id: str,
        report: SyncReport,
        options: ExecuteOptions,
        *,
        progress: Progress | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.source = source
        self.dataset_id = dataset_id
        self.report = report
        self.opts = options
        self.progress = progress or (lambda _phase, _done, _total: None)
        self.log = log or logger
        self.parses = _ParseTracker()
        # doc id of the new version of a path -> (path, old ids to delete once it parsed, its name)
        self._successors: dict[str, tuple[str, tuple[str, ...], str]] = {}
        self.retryable_paths: set[str] = set()

    # ------------------------------------------------------------------ entry point
    def run(self, plan: Plan) -> None:
        by_kind: dict[str, list[Action]] = {}
        for action in plan.actions:
            by_kind.setdefault(action.kind, []).append(action)
        started = time.monotonic()

        for action in by_kind.get("unchanged", []):
            assert isinstance(action, Unchanged)
            self.report.record(action.path, "unchanged", "ok", doc_id=action.doc_id)
            if action.pending:
                self.parses.pending.add(action.doc_id)

        self._timed(
            "labels",
            self._labels,
            [a for k in ("relabel", "move", "adopt") for a in by_kind.get(k, [])],
        )
        uploads = [a for k in ("upload", "replace") for a in by_kind.get(k, [])]
        self._timed("upload", self._uploads, uploads)
        for action in by_kind.get("reparse", []):
            assert isinstance(action, Reparse)
            self._want_parse(action.doc_id)
            self.report.record(
                action.path, "reparse", "ok", doc_id=action.doc_id, detail=action.reason
            )
        self._timed("parse", self._start_parses, None)
        deletes = [a for a in by_kind.get("delete", []) if isinstance(a, Delete)]
        for d in deletes:
            if d.wait_for:
                path, old, name = self._successors.get(d.wait_for, (d.path, (), ""))
                self._successors[d.wait_for] = (path, old + d.doc_ids, name)
                self.parses.pending.add(d.wait_for)
        if self.opts.wait:
            self._timed("wait", self._wait_for_parses, None)
        self._timed("delete", self._finish, [d for d in deletes if not d.wait_for])
        self.report.durations["execute"] = self.report.durations.get("execute", 0.0) + (
            time.monotonic() - started
        )

    def _timed(self, phase: str, fn: Callable[[Any], None], arg: Any) -> None:
        t0 = time.monotonic()
        if arg is None:
            fn()
        else:
            fn(arg)
        self.report.durations[phase] = self.report.durations.get(phase, 0.0) + (
            time.monotonic() - t0
        )

    # ------------------------------------------------------------------ labels
    def _labels(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        self._in_pool("labels", self._label_one, [(a,) for a in actions], len(actions))

    def _in_pool(
        self,
        phase: str,
        fn: Callable[..., int | None],
        calls: Sequence[tuple[Any, ...]],
        total: int,
    ) -> None:
        """Run ``fn(*args)`` for each call on the worker pool, reporting progress; the first
        error cancels what has not started and is raised."""
        done = 0
        with ThreadPoolExecutor(max_workers=self.opts.max_workers) as pool:
            futures = [pool.submit(fn, *args) for args in calls]
            try:
                for fut in futures:
                    done += fut.result() or 1
                    self.progress(phase, min(done, total), total)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise

    def _label_one(self, action: Action) -> None:
        assert isinstance(action, (Relabel, Move, Adopt))
        entry = action.entry
        meta = self._meta(entry, entry.sha256, entry.size)
        try:
            if entry.sha256 is None and isinstance(action, Move) and action.known_sha256:
                meta = self._meta(entry, action.known_sha256, entry.size)
            elif entry.sha256 is None:
                meta = self._meta_hashing(entry)
            if isinstance(action, Move):
                self._rename(action.doc_id, entry.path, meta)
            else:
                self.client.update_document(self.dataset_id, action.doc_id, meta_fields=meta)
        except (RAGFlowError, OSError) as exc:
            self._fail(action.path, action.kind, exc, doc_id=action.doc_id)
            return
        detail = f"from {action.from_path}" if isinstance(action, Move) else ""
        self.report.record(action.path, action.kind, "ok", doc_id=action.doc_id, detail=detail)
        if isinstance(action, Adopt):
            self._want_parse(action.doc_id)
            if action.old_ids:
                self._successors[action.doc_id] = (action.path, action.old_ids, action.doc_name)
        elif action.needs_parse:
            self._want_parse(action.doc_id)

    def _meta_hashing(self, entry: SourceEntry) -> dict[str, Any]:
        """Metadata for an entry whose sha256 is unknown (S3): hash by streaming it once."""
        with self.source.open(entry.path) as raw:
            reader = HashingReader(raw)
            while reader.read(1 << 20):
                pass
        return self._meta(entry, reader.hexdigest(), reader.bytes_read)

    def _meta(self, entry: SourceEntry, sha256: str | None, size: int) -> dict[str, Any]:
        return managed_meta(
            source_uri=self.source.uri_for(entry.path),
            path=entry.path,
            sha256=sha256 or "",
            size=size,
            change_token=entry.change_token,
        )

    def _rename(self, doc_id: str, path: str, meta: dict[str, Any] | None) -> str:
        """Give ``doc_id`` the name of ``path`` (or ``name(k).ext`` when taken); returns it."""
        wanted = document_name(path)
        stem, dot, ext = wanted.rpartition(".")
        if not dot or "/" in ext:
            stem, ext = wanted, ""
        candidates = [wanted] + [
            f"{stem}({k}).{ext}" if ext else f"{stem}({k})" for k in range(1, 6)
        ]
        for name in candidates:
            try:
                self.client.update_document(self.dataset_id, doc_id, name=name, meta_fields=meta)
                return name
            except RAGFlowConflictError:
                continue
        if meta is not None:
            self.client.update_document(self.dataset_id, doc_id, meta_fields=meta)
        return ""

    # ------------------------------------------------------------------ uploads
    def _uploads(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        entries = {a.path: a for a in actions}
        files = [
            UploadFile(document_name(a.path), a.path, size=a.entry.size)  # type: ignore[union-attr]
            for a in actions
        ]
        batches = list(self.client.iter_upload_batches(files))
        self._in_pool("upload", self._upload_batch, [(b, entries) for b in batches], len(files))

    def _upload_batch(self, batch: list[UploadFile], actions: dict[str, Action]) -> int:
        readers: list[tuple[Action, HashingReader]] = []
        try:
            for item in batch:
                action = actions[str(item.source)]
                try:
                    raw = self.source.open(action.path)
                except OSError as exc:
                    self._fail(action.path, action.kind, exc, retryable=False)
                    continue
                readers.append((action, HashingReader(raw)))
            if not readers:
                return len(batch)
            files = [
                UploadFile(document_name(a.path), r, size=_stream_size(r, a)) for a, r in readers
            ]
            try:
                docs: list[Document | None] = list(
                    self.client.upload_documents(self.dataset_id, files)
                )
            except RAGFlowPartialUploadError as exc:
                docs = _align_partial(files, exc.uploaded)
                for (action, _r), doc in zip(readers, docs, strict=True):
                    if doc is None:
                        self._fail(action.path, action.kind, exc)
            except RAGFlowUploadAmbiguousError as exc:
                for action, _r in readers:
                    self._fail(
                        action.path,
                        action.kind,
                        exc,
                        detail="outcome unknown; the next round finds and adopts what landed",
                    )
                return len(batch)
            except (RAGFlowError, OSError) as exc:
                for action, _r in readers:
                    self._fail(action.path, action.kind, exc)
                return len(batch)
            for (action, reader), doc in zip(readers, docs, strict=True):
                if doc is not None:
                    self._label_upload(action, reader, doc)
            return len(batch)
        finally:
            for _a, reader in readers:
                reader.close()

    def _label_upload(self, action: Action, reader: HashingReader, doc: Document) -> None:
        assert isinstance(action, (Upload, Replace))
        self.report.add_bytes(reader.bytes_read)
        meta = self._meta(action.entry, reader.hexdigest(), reader.bytes_read)
        try:
            self.client.update_document(self.dataset_id, doc.id, meta_fields=meta)
        except RAGFlowError as exc:
            self._fail(
                action.path,
                action.kind,
                exc,
                doc_id=doc.id,
                detail="uploaded but not labelled; the next round adopts it",
            )
            return
        self.report.record(action.path, action.kind, "ok", doc_id=doc.id)
        self._want_parse(doc.id)
        if isinstance(action, Replace):
            self._successors[doc.id] = (action.path, action.old_ids, doc.name)

    # ------------------------------------------------------------------ parsing
    def _want_parse(self, doc_id: str) -> None:
        if self.opts.parse:
            self.parses.attempts.setdefault(doc_id, 0)

    def _start_parses(self, ids: Iterable[str] | None = None) -> None:
        todo = [
            i
            for i in (ids if ids is not None else self.parses.attempts)
            if i not in self.parses.pending
        ]
        if not todo:
            return
        for batch in _chunks(todo, 100):
            try:
                self.client.parse_documents(self.dataset_id, batch)
                started = batch
            except RAGFlowUnavailableError:
                raise
            except RAGFlowError:
                started = []
                for doc_id in batch:  # isolate the document the server refuses
                    try:
                        self.client.parse_documents(self.dataset_id, [doc_id])
                        started.append(doc_id)
                    except RAGFlowUnavailableError:
                        raise
                    except RAGFlowError as exc:
                        self.parses.failed[doc_id] = f"parse request refused: {exc}"
            for doc_id in started:
                self.parses.attempts[doc_id] = self.parses.attempts.get(doc_id, 0) + 1
                self.parses.pending.add(doc_id)
        self.report.add("parse_requested", len(todo))

    def _wait_for_parses(self) -> None:
        deadline = time.monotonic() + self.opts.parse_timeout
        interval = self.opts.poll_interval
        total = len(self.parses.pending)
        while self.parses.pending:
            still = {
                d.id
                for d in self.client.iter_documents(self.dataset_id, run=list(_PENDING))
                if d.run in _PENDING and d.id in self.parses.pending
            }
            finished = self.parses.pending - still
            if finished:
                self._settle(finished)
            self.progress("parse", total - len(self.parses.pending), total)
            if not self.parses.pending:
                break
            if time.monotonic() >= deadline:
                self.log.warning(
                    "parse deadline of %.0fs passed with %d documents still parsing",
                    self.opts.parse_timeout,
                    len(self.parses.pending),
                )
                break
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 1.5, self.opts.max_poll_interval)

    def _settle(self, finished: set[str]) -> None:
        failed_now = {
            d.id: (d.progress_msg or d.run)
            for d in self.client.iter_documents(self.dataset_id, run=list(_FAILED))
            if d.run in _FAILED and d.id in finished
        }
        retry = []
        for doc_id in finished:
            self.parses.pending.discard(doc_id)
            if doc_id not in failed_now:
                self.parses.done.add(doc_id)
            elif self.parses.attempts.get(doc_id, 0) <= self.opts.parse_retries:
                retry.append(doc_id)
            else:
                self.parses.failed[doc_id] = _last_line(failed_now[doc_id])
        if retry:
            self.log.info("re-parsing %d documents that failed", len(retry))
            self._start_parses(retry)

    # ------------------------------------------------------------------ deletes
    def _finish(self, deletes: Sequence[Delete] = ()) -> None:
        for new_id, (path, old_ids, name) in list(self._successors.items()):
            if not old_ids:
                continue
            if new_id in self.parses.done:
                if self._delete(path, old_ids, "retired") and name != document_name(path):
                    # the server named the new version "name(1).ext" while the old one existed
                    try:
                        self._rename(new_id, path, None)
                    except RAGFlowError as exc:
                        self.log.warning("could not rename %s back to its path: %s", path, exc)
            elif new_id in self.parses.failed:
                self.report.record(
                    path,
                    "delete",
                    "withheld",
                    doc_id=new_id,
                    detail="new version failed to parse; old version kept",
                )
        for d in deletes:
            self._delete(d.path, d.doc_ids, d.reason)
        self.report.add("parsed", len(self.parses.done))
        self.report.add("parse_failed", len(self.parses.failed))
        if self.opts.wait:
            self.report.add("parse_pending", len(self.parses.pending))
        for doc_id, msg in self.parses.failed.items():
            self.report.errors.append(f"document {doc_id}: parse failed: {msg}")

    def _delete(self, path: str, doc_ids: Sequence[str], reason: str) -> bool:
        """``reason``: removed / duplicate / superseded / stray, or ``retired`` (the old version of
        a path this run replaced; part of the replace, not counted on its own)."""
        action = {"removed": "delete", "retired": "retire"}.get(reason, "deduplicate")
        try:
            self.client.delete_documents(self.dataset_id, list(doc_ids))
        except RAGFlowError as exc:
            self._fail(path, action, exc)
            return False
        for doc_id in doc_ids:
            self.report.record(path, action, "ok", doc_id=doc_id, detail=reason)
        return True

    # ------------------------------------------------------------------ helpers
    def _fail(
        self,
        path: str,
        action: str,
        exc: BaseException,
        *,
        doc_id: str | None = None,
        detail: str = "",
        retryable: bool | None = None,
    ) -> None:
        text = f"{type(exc).__name__}: {exc}" + (f" ({detail})" if detail else "")
        self.report.record(path, action, "failed", doc_id=doc_id, detail=text)
        if isinstance(exc, RAGFlowUnavailableError):
            # The client already retried with backoff: the server is down or failing. Stop
            # here with one clear error instead of trying every remaining file against it;
            # the next run carries on from what landed.
            raise exc
        if retryable is None:
            retryable = _is_retryable(exc)
        if retryable:
            self.retryable_paths.add(path)
        self.log.warning("%s %s failed: %s", action, path, text)


def count_outcomes(report: SyncReport) -> None:
    """Derive the action counts of ``report`` from its per-file outcomes."""
    for key in set(_ACTION_COUNT.values()) | {"deleted", "deduplicated", "failed"}:
        report.counts[key] = 0
    failed_paths = set()
    for o in report.outcomes:
        if o.status == "failed":
            failed_paths.add(o.path)
        elif o.status == "ok":
            if o.action == "delete":
                report.counts["deleted"] += 1
            elif o.action == "deduplicate":
                report.counts["deduplicated"] += 1
            elif o.action in _ACTION_COUNT:
                report.counts[_ACTION_COUNT[o.action]] += 1
    report.counts["failed"] = len(failed_paths)


def _is_retryable(exc: BaseException) -> bool:
    from ragflow_dagster.client import RAGFlowRateLimitedError, RAGFlowUnavailableError

    return isinstance(
        exc,
        (RAGFlowUploadAmbiguousError, RAGFlowRateLimitedError, RAGFlowUnavailableError, OSError),
    ) or (isinstance(exc, RAGFlowError) and (exc.http_status or 0) >= 500)


def _stream_size(reader: HashingReader, action: Action) -> int:
    """Size to declare for an upload: the open file's own size when it is a real file."""
    raw = reader.raw
    try:
        return os.fstat(raw.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return action.entry.size  # type: ignore[union-attr]


def _align_partial(
    files: Sequence[UploadFile], uploaded: Sequence[Document]
) -> list[Document | None]:
    """Match the successful documents of a partial upload to the files, by name."""
    from ragflow_dagster.sync.identity import matches_document_name

    pool = list(uploaded)
    aligned: list[Document | None] = []
    for f in files:
        hit = next((d for d in pool if matches_document_name(d.name, f.name)), None)
        if hit is not None:
            pool.remove(hit)
        aligned.append(hit)
    return aligned


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "failed"
