"""Carry a plan out against a RAGFlow server: the I/O half of the sync.

Order of work (each phase bounded in concurrency):

1. uploads of new and replaced files, several files per request, streamed from the source and
   hashed on the way. Each document travels under its *upload name* (the path with
   :data:`~ragflow_dagster.sync.identity.UPLOAD_MARK`) and takes its path's name in the same
   update that labels it, so a kill in between leaves a leftover the next run can recognise.
   Parse requests go out in batches as documents are labelled
   (:class:`~ragflow_dagster.sync.parse_wait.EarlyParses`);
2. proofs, relabels, moves and adoptions (a download to prove content, then metadata updates),
   while the server parses (the last partial batch of parse requests goes out before them);
   an adoption whose proof fails is uploaded after them;
3. one batched parse request per 100 documents not requested yet;
4. waiting (:mod:`ragflow_dagster.sync.parse_wait`): the awaited ids are polled in lists of 100
   until each was *seen* ``DONE``, failed, or vanished, or the deadline passed;
5. deletes that had to wait for a successor to parse (replaced versions, duplicates), then the
   rest. A document already deleted by someone else counts as deleted.

The executor never decides what to do: a run's :mod:`engine <ragflow_dagster.sync.engine>`
lists again afterwards and plans once more for whatever is still wrong.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ragflow_dagster.client import (
    Document,
    RAGFlowClient,
    RAGFlowConflictError,
    RAGFlowError,
    RAGFlowNotFoundError,
    RAGFlowPartialUploadError,
    RAGFlowRateLimitedError,
    RAGFlowUnavailableError,
    RAGFlowUploadAmbiguousError,
    UploadFile,
)
from ragflow_dagster.client.naming import is_supported_name
from ragflow_dagster.sources import HashingReader, Source, SourceEntry
from ragflow_dagster.sync.counting import HashSink, count_outcomes, planned_detail
from ragflow_dagster.sync.decide import Rechunk, rule_fields
from ragflow_dagster.sync.desired import DesiredBook
from ragflow_dagster.sync.identity import document_name, managed_meta, upload_name
from ragflow_dagster.sync.parse_wait import (
    EarlyParses,
    ParseTracker,
    ParseWaitOptions,
    start_parses,
    wait_for_parses,
)
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
from ragflow_dagster.sync.retire import Retirement, Successor
from ragflow_dagster.sync.upload_match import align_partial

logger = logging.getLogger("ragflow_dagster.sync")

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: called as work completes."""


@dataclass(frozen=True, slots=True)
class ExecuteOptions:
    """How a plan is carried out.

    Attributes:
        max_workers: Concurrent requests (uploads, metadata updates, proofs).
        parse: Ask the server to parse new and changed documents.
        wait: Wait until parsing has finished (then replaced versions are deleted).
        parse_timeout: Deadline for the wait, in seconds.
        parse_retries: How many times a failed parse is started again.
        poll_interval: First polling interval; it grows to ``max_poll_interval``.
        max_poll_interval: Longest polling interval, in seconds.
        desired: The mapped metadata and parse rules (:mod:`.desired`), merged into labels.
    """

    max_workers: int = 4
    parse: bool = True
    wait: bool = True
    parse_timeout: float = 3600.0
    parse_retries: int = 1
    poll_interval: float = 0.2
    max_poll_interval: float = 2.0
    desired: DesiredBook = field(default_factory=DesiredBook, compare=False)


class PlanExecutor(Retirement):
    """Executes one :class:`~ragflow_dagster.sync.plan.Plan` and fills a report.

    After :meth:`run`: ``retry_paths`` holds paths worth planning again in the same run
    (retryable failures, awaited documents that vanished), ``failed_paths`` the paths that
    failed for good (a refused file type, an unreadable file, a parse that failed its retries).
    ``record_unchanged=False`` (later rounds) leaves in-sync paths out of the outcomes, which
    already hold them.
    """

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
        record_unchanged: bool = True,
    ) -> None:
        self.record_unchanged = record_unchanged
        self.client = client
        self.source = source
        self.dataset_id = dataset_id
        self.report = report
        self.opts = options
        self.progress = progress or (lambda _phase, _done, _total: None)
        self.log = log or logger
        self.parses = ParseTracker()
        # parse requests go out in batches while the uploads continue (see EarlyParses)
        self._early = EarlyParses(client, dataset_id, self.parses) if options.parse else None
        self._successors: dict[str, Successor] = {}
        self._doc_path: dict[str, str] = {}
        self._late_uploads: list[Upload | Replace] = []
        self.retry_paths: set[str] = set()
        self.failed_paths: set[str] = set()

    # ------------------------------------------------------------------ entry point
    def run(self, plan: Plan) -> None:
        by_kind: dict[str, list[Action]] = {}
        for action in plan.actions:
            by_kind.setdefault(action.kind, []).append(action)
        started = time.monotonic()

        unchanged = [a for a in by_kind.get("unchanged", []) if isinstance(a, Unchanged)]
        if self.record_unchanged:
            self.report.record_ok("unchanged", ((a.path, a.doc_id) for a in unchanged))
        for action in unchanged:
            if action.pending:
                self._doc_path[action.doc_id] = action.path
                self.parses.watch(action.doc_id)

        # New content first, so that its parsing (the slow part) overlaps the metadata-only work
        # of relabels and moves; adoptions that fail their proof are uploaded after them.
        uploads: list[Action] = [a for k in ("upload", "replace") for a in by_kind.get(k, [])]
        self._timed("upload", self._uploads, uploads)
        self._timed("parse", self._flush_parses, None)
        self._timed(
            "labels",
            self._labels,
            [a for k in ("relabel", "rechunk", "move", "adopt") for a in by_kind.get(k, [])],
        )
        self._timed("upload", self._uploads, list(self._late_uploads))
        for action in by_kind.get("reparse", []):
            assert isinstance(action, Reparse)
            self._want_parse(action.doc_id, action.path)
            self.report.record(
                action.path, "reparse", "ok", doc_id=action.doc_id, detail=action.reason
            )
        if self.opts.parse:
            self._timed("parse", self._start_parses, None)
        deletes = [a for a in by_kind.get("delete", []) if isinstance(a, Delete)]
        for d in deletes:
            if d.wait_for:
                self._successor(d.wait_for, d.path).deletes.append((d.doc_ids, d.reason))
                self._doc_path.setdefault(d.wait_for, d.path)
                self.parses.watch(d.wait_for)
        if self.opts.wait:
            self._timed("wait", self._wait_for_parses, None)
        self._timed("delete", self._finish, [d for d in deletes if not d.wait_for])
        self.report.durations["execute"] = self.report.durations.get("execute", 0.0) + (
            time.monotonic() - started
        )

    def _timed(self, phase: str, fn: Callable[..., None], arg: Any) -> None:
        t0 = time.monotonic()
        if arg is None:
            fn()
        else:
            fn(arg)
        self.report.durations[phase] = self.report.durations.get(phase, 0.0) + (
            time.monotonic() - t0
        )

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

    def _successor(self, doc_id: str, path: str) -> Successor:
        return self._successors.setdefault(doc_id, Successor(path=path))

    # ------------------------------------------------------------------ labels and proofs
    def _labels(self, actions: Sequence[Action]) -> None:
        if actions:
            self._in_pool("labels", self._label_one, [(a,) for a in actions], len(actions))

    def _label_one(self, action: Action) -> None:
        assert isinstance(action, (Relabel, Rechunk, Move, Adopt))
        entry = action.entry
        try:
            if isinstance(action, Adopt):
                self._adopt(action)
                return
            if entry.sha256 is None and action.known_sha256:
                meta = self._meta(entry, action.known_sha256, entry.size)
            elif entry.sha256 is None:
                meta = self._meta(entry, *self._hash_source(entry))
            else:
                meta = self._meta(entry, entry.sha256, entry.size)
            if isinstance(action, (Relabel, Rechunk)) and action.kept:
                meta = {**action.kept, **meta}  # keys set by hand stay
            if isinstance(action, Move):
                self._rename(action.doc_id, entry.path, meta)
            elif isinstance(action, Rechunk):
                self.client.update_document(
                    self.dataset_id,
                    action.doc_id,
                    meta_fields=meta,
                    chunk_method=action.chunk_method,
                    parser_config=action.parser_config or None,
                    returning=False,
                )
            else:
                self.client.update_document(
                    self.dataset_id, action.doc_id, meta_fields=meta, returning=False
                )
        except (RAGFlowError, OSError) as exc:
            self._fail(action.path, action.kind, exc, doc_id=action.doc_id)
            return
        detail = planned_detail(action)
        self.report.record(action.path, action.kind, "ok", doc_id=action.doc_id, detail=detail)
        if isinstance(action, Rechunk) or action.needs_parse:
            self._want_parse(action.doc_id, action.path)

    def _adopt(self, action: Adopt) -> None:
        """Prove the document's bytes equal the file's, then label it; else fall back."""
        entry = action.entry
        sha, size = (
            (entry.sha256, entry.size) if entry.sha256 is not None else self._hash_source(entry)
        )
        stored = self._hash_document(action.doc_id)
        if stored != (sha, size):
            why = "content differs from the file" if stored else "content could not be read"
            if action.leftover:
                self._delete(action.path, (action.doc_id,), "stray")
                old = action.old_ids
            else:
                old = (*action.old_ids, action.doc_id)
            self.log.info("%s: %s %s; uploading it again", entry.path, action.doc_name, why)
            detail = f"{'leftover' if action.leftover else 'label'} not adopted: {why}"
            late: Upload | Replace = (
                Replace(entry=entry, old_ids=old, detail=detail) if old else Upload(entry=entry)
            )
            self._late_uploads.append(late)
            return
        meta = self._meta(entry, sha, size)
        if action.leftover:
            name = self._rename(action.doc_id, entry.path, meta, taken=bool(action.old_ids))
        else:
            self.client.update_document(
                self.dataset_id, action.doc_id, meta_fields=meta, returning=False
            )
            name = action.doc_name
        kind = "adopt" if action.leftover else "relabel"
        detail = "content proven" if action.leftover else "hand-edited label repaired"
        self.report.record(action.path, kind, "ok", doc_id=action.doc_id, detail=detail)
        if action.needs_parse:
            self._want_parse(action.doc_id, action.path)
        if action.old_ids:
            succ = self._successor(action.doc_id, action.path)
            succ.deletes.append((action.old_ids, "superseded"))
            succ.name = name
            self._doc_path[action.doc_id] = action.path
            if not action.needs_parse:
                self.parses.watch(action.doc_id)

    def _hash_source(self, entry: SourceEntry) -> tuple[str, int]:
        """sha256 and size of a file whose sha256 is unknown (S3), by streaming it once."""
        with self.source.open(entry.path) as raw:
            reader = HashingReader(raw)
            while reader.read(1 << 20):
                pass
        return reader.hexdigest(), reader.bytes_read

    def _hash_document(self, doc_id: str) -> tuple[str, int] | None:
        """sha256 and size of a document's stored bytes (downloaded), or None if unreadable."""
        sink = HashSink()
        try:
            self.client.download_document(self.dataset_id, doc_id, sink)
        except RAGFlowUnavailableError:
            raise
        except (RAGFlowError, OSError) as exc:
            self.log.info("could not download document %s to prove it: %s", doc_id, exc)
            return None
        return sink.hexdigest(), sink.size

    def _meta(self, entry: SourceEntry, sha256: str | None, size: int) -> dict[str, Any]:
        """The label: the mapped metadata, then the identity keys (which always win)."""
        return self.opts.desired.meta_fields(entry.path) | managed_meta(
            source_uri=self.source.uri_for(entry.path),
            path=entry.path,
            sha256=sha256 or "",
            size=size,
            change_token=entry.change_token,
        )

    def _rename(
        self,
        doc_id: str,
        path: str,
        meta: dict[str, Any] | None,
        *,
        taken: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Give ``doc_id`` the name of ``path`` (or ``name(k).ext`` when taken), setting
        ``meta`` (and ``extra``: a parse rule) in the same update; returns the name it got
        (``""``: it kept its own).

        ``taken``: the plain name is known to be in use (the old version of a replace)."""
        extra = extra or {}
        wanted = document_name(path)
        stem, dot, ext = wanted.rpartition(".")
        if not dot or "/" in ext:
            stem, ext = wanted, ""
        candidates = [wanted] + [
            f"{stem}({k}).{ext}" if ext else f"{stem}({k})" for k in range(1, 6)
        ]
        for name in candidates[1:] if taken else candidates:
            try:
                self.client.update_document(
                    self.dataset_id, doc_id, name=name, meta_fields=meta, returning=False, **extra
                )
                return name
            except RAGFlowConflictError:
                continue
        if meta is not None:
            self.client.update_document(
                self.dataset_id, doc_id, meta_fields=meta, returning=False, **extra
            )
        return ""

    # ------------------------------------------------------------------ uploads
    def _uploads(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        entries = {a.path: a for a in actions}
        files = [UploadFile(upload_name(a.path), a.path, size=a.entry.size) for a in actions]  # type: ignore[union-attr]
        # A type the server refuses travels alone: its refusal must not share a request.
        shared = [f for f in files if is_supported_name(f.name)]
        alone = [[f] for f in files if not is_supported_name(f.name)]
        batches = [*self.client.iter_upload_batches(shared), *alone]
        self._in_pool("upload", self._upload_batch, [(b, entries) for b in batches], len(files))

    def _upload_batch(self, batch: list[UploadFile], actions: dict[str, Action]) -> int:
        readers: list[tuple[Upload | Replace, HashingReader]] = []
        try:
            for item in batch:
                action = actions[str(item.source)]
                assert isinstance(action, (Upload, Replace))
                try:
                    raw = self.source.open(action.path)
                except OSError as exc:
                    self._fail(action.path, action.kind, exc, retryable=False)
                    continue
                readers.append((action, HashingReader(raw)))
            if not readers:
                return len(batch)
            files = [
                UploadFile(upload_name(a.path), r, size=_stream_size(r, a)) for a, r in readers
            ]
            try:
                docs: list[Document | None] = list(
                    self.client.upload_documents(self.dataset_id, files)
                )
            except RAGFlowPartialUploadError as exc:
                docs = align_partial([f.name for f in files], exc.uploaded)
                for (action, _r), doc in zip(readers, docs, strict=True):
                    if doc is None:
                        self._fail(action.path, action.kind, exc, retryable=False)
            except RAGFlowUploadAmbiguousError as exc:
                for action, _r in readers:
                    self._fail(
                        action.path,
                        action.kind,
                        exc,
                        detail="outcome unknown; the next round adopts what landed",
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

    def _label_upload(self, action: Upload | Replace, reader: HashingReader, doc: Document) -> None:
        self.report.add_bytes(reader.bytes_read)
        meta = self._meta(action.entry, reader.hexdigest(), reader.bytes_read)
        replacing = isinstance(action, Replace) and bool(action.old_ids)
        try:
            name = self._rename(
                doc.id,
                action.path,
                meta,
                taken=replacing,
                extra=rule_fields(self.opts.desired.get(action.path), doc),
            )
        except RAGFlowError as exc:
            self._fail(
                action.path,
                action.kind,
                exc,
                doc_id=doc.id,
                detail="uploaded but not labelled; the next round proves and adopts it",
            )
            return
        detail = action.detail if isinstance(action, Replace) else ""
        self.report.record(action.path, action.kind, "ok", doc_id=doc.id, detail=detail)
        self._want_parse(doc.id, action.path)
        if replacing:
            assert isinstance(action, Replace)
            succ = self._successor(doc.id, action.path)
            succ.deletes.append((action.old_ids, "retired"))
            succ.name = name or doc.name

    # ------------------------------------------------------------------ parsing
    def _want_parse(self, doc_id: str, path: str) -> None:
        self._doc_path[doc_id] = path
        if self._early is not None:
            sent = self._early.want(doc_id)
            if sent:
                self.report.add("parse_requested", sent)

    def _flush_parses(self) -> None:
        """The last partial batch of early parse requests, sent before the metadata-only work
        (moves, relabels) so that the server is parsing while it runs."""
        if self._early is not None:
            self.report.add("parse_requested", self._early.flush())

    def _start_parses(self) -> None:
        before = self.parses.requested
        start_parses(self.client, self.dataset_id, self.parses)
        self.report.add("parse_requested", self.parses.requested - before)

    def _wait_for_parses(self) -> None:
        wait_for_parses(
            self.client,
            self.dataset_id,
            self.parses,
            ParseWaitOptions(
                parse_timeout=self.opts.parse_timeout,
                parse_retries=self.opts.parse_retries,
                poll_interval=self.opts.poll_interval,
                max_poll_interval=self.opts.max_poll_interval,
            ),
            progress=self.progress,
            log=self.log,
            on_done=self._retire_done,
        )

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
        (self.retry_paths if retryable else self.failed_paths).add(path)
        self.log.warning("%s %s failed: %s", action, path, text)


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RAGFlowNotFoundError):
        return True  # the document went away under us (another run): plan it again
    return isinstance(
        exc,
        (RAGFlowUploadAmbiguousError, RAGFlowRateLimitedError, RAGFlowUnavailableError, OSError),
    ) or (isinstance(exc, RAGFlowError) and (exc.http_status or 0) >= 500)


def _stream_size(reader: HashingReader, action: Upload | Replace) -> int:
    """Size to declare for an upload: the open file's own size when it is a real file."""
    raw = reader.raw
    try:
        return os.fstat(raw.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return action.entry.size


__all__ = ["ExecuteOptions", "PlanExecutor", "Progress", "count_outcomes", "planned_detail"]
