"""Parsing: start it in batches, and wait until every document was *seen* finished.

"Parsed" is a claim about a document, so it is made only from a listing of that document's id
that shows it ``DONE``. Absence from a listing of pending documents proves nothing (the listing
may be short, or the document deleted); a document that vanished is reported as such, never as
parsed. Waiting holds no thread per document: the ids are polled in lists of 100.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ragflow_dagster.client import (
    RAGFlowClient,
    RAGFlowConflictError,
    RAGFlowError,
    RAGFlowIncompleteListingError,
    RAGFlowNotFoundError,
    RAGFlowUnavailableError,
)

logger = logging.getLogger("ragflow_dagster.sync")

_FAILED = frozenset({"FAIL", "CANCEL"})
_PENDING = frozenset({"UNSTART", "RUNNING"})
_MAX_BAD_POLLS = 5
_MIN_POLL_INTERVAL = 0.02
"""The shortest pause between polls (one request per 100 pending ids each)."""


@dataclass(frozen=True, slots=True)
class ParseWaitOptions:
    """How parsing is started and waited for.

    Attributes:
        parse_timeout: Deadline for the wait, in seconds.
        parse_retries: How many times a failed parse is started again.
        poll_interval: First polling interval; it grows to ``max_poll_interval``.
        max_poll_interval: Longest polling interval, in seconds.
    """

    parse_timeout: float = 3600.0
    parse_retries: int = 1
    poll_interval: float = 0.2
    max_poll_interval: float = 2.0


@dataclass
class ParseTracker:
    """The documents whose parse a run started or waits for, and what became of them.

    Attributes:
        wanted: Documents to start (id -> attempts so far).
        pending: Documents started (or found running) and not seen finished yet.
        done: Documents seen ``DONE``.
        failed: Documents that failed (after retries) or whose parse request was refused, with
            the server's last message line.
        vanished: Documents that disappeared while they were awaited (deleted by someone else).

    Example:
        >>> t = ParseTracker()
        >>> t.want("d1"); sorted(t.wanted)
        ['d1']
    """

    wanted: dict[str, int] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    vanished: set[str] = field(default_factory=set)
    requested: int = 0

    def want(self, doc_id: str) -> None:
        """Ask for ``doc_id`` to be parsed (sent by :func:`start_parses`)."""
        self.wanted.setdefault(doc_id, 0)

    def watch(self, doc_id: str) -> None:
        """Wait for ``doc_id``, whose parse is already running."""
        if doc_id not in self.done:
            self.pending.add(doc_id)


def start_parses(
    client: RAGFlowClient,
    dataset_id: str,
    tracker: ParseTracker,
    ids: Iterable[str] | None = None,
) -> None:
    """Send parse requests (100 ids per request) for ``ids`` (default: every wanted document
    not started yet). A request the server refuses is split to isolate the document it refuses;
    a document another run is parsing already counts as started, one deleted meanwhile as
    vanished."""
    todo = [
        i
        for i in (tracker.wanted if ids is None else ids)
        if i not in tracker.pending and i not in tracker.vanished
    ]
    for batch in _chunks(todo, 100):
        try:
            client.parse_documents(dataset_id, batch)
            started = list(batch)
        except RAGFlowUnavailableError:
            raise
        except RAGFlowError:
            started = []
            for doc_id in batch:
                try:
                    client.parse_documents(dataset_id, [doc_id])
                    started.append(doc_id)
                except RAGFlowUnavailableError:
                    raise
                except RAGFlowConflictError:
                    started.append(doc_id)  # being parsed already (another run): wait for it
                except RAGFlowNotFoundError:
                    tracker.vanished.add(doc_id)  # deleted meanwhile (another run's dedupe)
                except RAGFlowError as exc:
                    tracker.failed[doc_id] = f"parse request refused: {_last_line(str(exc))}"
        for doc_id in started:
            tracker.wanted[doc_id] = tracker.wanted.get(doc_id, 0) + 1
            tracker.pending.add(doc_id)
        tracker.requested += len(batch)


class EarlyParses:
    """Parse requests sent while uploads continue: each batch as soon as it is full.

    Uploading threads call :meth:`want` for every document they labelled; the first
    ``first_batch`` ids, then every ``batch`` ids, go out in one parse request (sent by the
    thread that filled the batch, one request at a time), so the server parses the first
    documents while the rest are still uploading. Whatever is left over is sent by
    :func:`start_parses` once the uploads are done.

    Example:
        >>> early = EarlyParses(client, ds.id, ParseTracker(), first_batch=2)
        >>> early.want(ids[0]), early.want(ids[1])  # the second fills the first batch
        (0, 2)
    """

    def __init__(
        self,
        client: RAGFlowClient,
        dataset_id: str,
        tracker: ParseTracker,
        *,
        batch: int = 100,
        first_batch: int = 10,
    ) -> None:
        self.client = client
        self.dataset_id = dataset_id
        self.tracker = tracker
        self.batch = max(1, batch)
        self._next = max(1, min(first_batch, self.batch))
        self._ready: list[str] = []
        self._lock = threading.Lock()
        self._send = threading.Lock()

    def want(self, doc_id: str) -> int:
        """Ask for ``doc_id`` to be parsed; returns the ids this call sent a request for."""
        with self._lock:
            self.tracker.want(doc_id)
            self._ready.append(doc_id)
            if len(self._ready) < self._next:
                return 0
            ids, self._ready = self._ready, []
            self._next = self.batch
        return self._sent(ids)

    def flush(self) -> int:
        """Send what is waiting for its batch to fill (the uploads are over: the server should
        parse it while the run does metadata-only work); returns the ids a request was sent for.
        """
        with self._lock:
            ids, self._ready = self._ready, []
        return self._sent(ids) if ids else 0

    def _sent(self, ids: list[str]) -> int:
        with self._send:
            before = self.tracker.requested
            start_parses(self.client, self.dataset_id, self.tracker, ids)
            return self.tracker.requested - before


def wait_for_parses(
    client: RAGFlowClient,
    dataset_id: str,
    tracker: ParseTracker,
    options: ParseWaitOptions,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    log: logging.Logger | None = None,
    on_done: Callable[[list[str]], None] | None = None,
) -> None:
    """Poll the pending documents by id until each was seen finished, vanished, or the deadline
    passed. Failed parses are started again up to ``options.parse_retries`` times.

    ``on_done``: called after each poll with the documents it saw ``DONE`` (before ``progress``),
    so that what waits on them (the old version of a replaced file) need not wait for the rest.
    """
    log = log or logger
    deadline = time.monotonic() + options.parse_timeout
    interval = options.poll_interval
    total = len(tracker.pending)
    bad_polls = 0
    # the parse rate is measured from the first poll on (what finished before it says nothing
    # about how fast the rest goes): when it began, and how many were pending after it
    first: tuple[float, int] | None = None
    while tracker.pending:
        before = len(tracker.pending)
        now = time.monotonic()
        try:
            states = client.documents_by_id(dataset_id, sorted(tracker.pending))
            bad_polls = 0
        except RAGFlowIncompleteListingError as exc:
            bad_polls += 1
            log.warning("parse status listing incomplete (%s); polling again", exc)
            if bad_polls >= _MAX_BAD_POLLS:
                log.warning(
                    "giving up the parse wait: %d listings in a row were incomplete", bad_polls
                )
                return
            states = None
        if states is not None:
            done_before = len(tracker.done)
            _settle(client, dataset_id, tracker, states, options, log)
            if on_done is not None and len(tracker.done) > done_before:
                on_done(sorted(i for i in states if i in tracker.done))
        if progress is not None:
            progress("parse", total - len(tracker.pending), total)
        if not tracker.pending:
            return
        if time.monotonic() >= deadline:
            log.warning(
                "parse deadline of %.0fs passed with %d documents still parsing",
                options.parse_timeout,
                len(tracker.pending),
            )
            return
        per_document = None
        if first is None:
            first = (now, len(tracker.pending))
        elif first[1] > len(tracker.pending):
            per_document = (now - first[0]) / (first[1] - len(tracker.pending))
        interval = _next_interval(
            interval,
            before - len(tracker.pending),
            len(tracker.pending),
            options,
            per_document=per_document,
        )
        # the pause counts from when this poll began: its request and the work on its answer
        # (retiring replaced versions) are part of it
        time.sleep(max(0.0, min(now + interval, deadline) - time.monotonic()))


def _next_interval(
    interval: float,
    finished: int,
    pending: int,
    options: ParseWaitOptions,
    *,
    per_document: float | None = None,
) -> float:
    """The pause before the next poll.

    While nothing finishes, the pause grows by half up to the longest interval. Once documents
    finish, a step is chosen: the first interval stretched by the requests one poll costs (one
    per 100 pending ids), at least the time one document takes (``per_document``, the rate
    measured since the first poll: a poll more often sees nothing new), at most the longest
    interval. The time the pending documents should still take is then cut into equal pauses
    no longer than that step, so that a poll lands when the last of them should be done (one of
    them counted half done: it is being parsed) and the end of a parse is seen soon after it
    happens.

    Example:
        >>> opts = ParseWaitOptions(poll_interval=0.2)
        >>> _next_interval(0.2, 0, 8, opts), _next_interval(0.2, 4, 1000, opts)
        (0.30000000000000004, 2.0)
        >>> round(_next_interval(0.2, 4, 8, opts, per_document=0.055), 3)  # 0.41 s in 3 polls
        0.137
    """
    if finished <= 0:
        return min(interval * 1.5, options.max_poll_interval)
    step = min(options.max_poll_interval, options.poll_interval * max(1, -(-pending // 100)))
    if per_document is None:
        return step
    step = min(options.max_poll_interval, max(step, per_document))
    # one of them is being parsed and, on average, half done
    remaining = per_document * max(0.5, pending - 0.5)
    return max(_MIN_POLL_INTERVAL, remaining / max(1, math.ceil(remaining / step)))


def _settle(
    client: RAGFlowClient,
    dataset_id: str,
    tracker: ParseTracker,
    states: dict,
    options: ParseWaitOptions,
    log: logging.Logger,
) -> None:
    retry: list[str] = []
    for doc_id in sorted(tracker.pending):
        doc = states.get(doc_id)
        if doc is None:
            tracker.pending.discard(doc_id)
            tracker.vanished.add(doc_id)
        elif doc.run == "DONE":
            tracker.pending.discard(doc_id)
            tracker.done.add(doc_id)
        elif doc.run in _FAILED:
            tracker.pending.discard(doc_id)
            if tracker.wanted.get(doc_id, 0) <= options.parse_retries:
                retry.append(doc_id)
            else:
                tracker.failed[doc_id] = _last_line(doc.progress_msg or doc.run)
    if retry:
        log.info("re-parsing %d documents that failed", len(retry))
        start_parses(client, dataset_id, tracker, retry)


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "failed"


__all__ = ["EarlyParses", "ParseTracker", "ParseWaitOptions", "start_parses", "wait_for_parses"]
