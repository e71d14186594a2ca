"""The sync, end to end and without Dagster: list → plan → execute → report."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ragflow_dagster.client import Document, RAGFlowClient, RAGFlowError
from ragflow_dagster.gcpause import gc_paused
from ragflow_dagster.sources import (
    FileFilters,
    Inventory,
    KnownFile,
    Source,
    SourceError,
    build_inventory,
)
from ragflow_dagster.sync.desired import DesiredBook, resolve_desired
from ragflow_dagster.sync.execute import (
    ExecuteOptions,
    PlanExecutor,
    Progress,
    count_outcomes,
    planned_detail,
)
from ragflow_dagster.sync.identity import (
    META_CHANGE_TOKEN,
    META_SHA256,
    META_SIZE,
    LabelChecks,
    managed_path,
)
from ragflow_dagster.sync.lease import dataset_lease
from ragflow_dagster.sync.metadata import MetadataSpec
from ragflow_dagster.sync.overlap import list_both
from ragflow_dagster.sync.plan import (
    Delete,
    Plan,
    PlanOptions,
    Replace,
    Unchanged,
    Upload,
    plan_sync,
)
from ragflow_dagster.sync.report import SyncReport
from ragflow_dagster.sync.rules import ParseRules
from ragflow_dagster.sync.verify import list_complete, only_waiting, verdict

logger = logging.getLogger("ragflow_dagster.sync")

_WAIT_ROUNDS = 3
"""Extra rounds a run may spend only waiting for parses it did not start (see ``_sync``)."""


@dataclass(frozen=True)
class SyncOptions:
    """Everything a sync can be told.

    Attributes:
        filters: Which source files take part.
        dry_run: Plan only; touch nothing.
        wait: Wait until parsing has finished (and only then delete replaced versions).
        parse: Start parsing new and changed documents.
        max_workers: Concurrent requests.
        parse_timeout: Deadline for waiting on parsing, in seconds.
        parse_retries: How often a failed parse is started again.
        max_delete_fraction: Mass-delete guard threshold (fraction of managed documents).
        allow_mass_delete: Lift the guard.
        delete_removed: Delete documents whose file is gone.
        reparse_failed: Re-parse documents in FAIL/CANCEL.
        max_rounds: After a round that changed anything the dataset is listed again and planned
            again (the proof behind ``converged``); whatever is still wrong (a retryable
            failure, a duplicate left by an overlapping run, a document deleted under us) is
            acted on in another round, up to this many.
        in_scope: Only these paths are acted on (a partition subset); None = all.
        lease: Take the dataset's lease on this machine first (:mod:`.lease`), so that a
            second run waits for the first instead of redoing its work.
        lease_timeout: How long to wait for the lease before syncing anyway, in seconds.
        mass_delete_hint: How this caller lifts the guard, named in the guard's message.
        metadata: The metadata mapping merged into each document's ``meta_fields``
            (:mod:`.metadata`); ``None`` leaves the keys a mapping set earlier as they are.
        rules: Per-file parsing rules (:mod:`.rules`); ``None``: the dataset's default.
    """

    filters: FileFilters | None = None
    dry_run: bool = False
    wait: bool = True
    parse: bool = True
    max_workers: int = 4
    parse_timeout: float = 3600.0
    parse_retries: int = 1
    max_delete_fraction: float = 0.5
    allow_mass_delete: bool = False
    delete_removed: bool = True
    reparse_failed: bool = True
    max_rounds: int = 3
    in_scope: Callable[[str], bool] | None = field(default=None, compare=False)
    lease: bool = True
    lease_timeout: float = 600.0
    mass_delete_hint: str = "allow_mass_delete=True"
    metadata: MetadataSpec | None = None
    rules: ParseRules | None = None


class SyncAbortedError(RAGFlowError):
    """A sync stopped before it could finish (the server went away, a listing could not be
    proven complete, ...). ``report`` holds what it did until then, with ``converged`` False
    and ``error`` set, so that callers can still write it out."""

    def __init__(self, message: str, *, report: SyncReport, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.report = report


def known_files(
    documents: Iterable[Document], *, label_checks: LabelChecks | None = None
) -> dict[str, KnownFile]:
    """Fingerprints stored on the RAGFlow side, by source path (what the inventory need not
    re-hash). A hand-edited label is not trusted: its file is hashed again.

    ``label_checks``: shared with the planner, so each label is checked once per sync.

    Example:
        >>> known_files([])
        {}
    """
    known: dict[str, KnownFile] = {}
    consistent = (label_checks or LabelChecks()).consistent
    with gc_paused():
        _fill_known(known, documents, consistent)
    return known


def _fill_known(
    known: dict[str, KnownFile],
    documents: Iterable[Document],
    consistent: Callable[[str, Any], bool],
) -> None:
    for doc in documents:
        meta = doc.meta_fields
        path = managed_path(meta)
        if path is None:
            continue
        token = meta.get(META_CHANGE_TOKEN)
        if token is None or not consistent(doc.id, meta):
            continue
        raw_size = meta.get(META_SIZE)
        try:
            size = int(raw_size) if raw_size is not None else None
        except (TypeError, ValueError):
            size = None
        known[path] = KnownFile(str(token), meta.get(META_SHA256) or None, size)


def list_documents(client: RAGFlowClient, dataset_id: str) -> list[Document]:
    """Every document of the dataset, from a listing proven complete (see :mod:`.verify`)."""
    return list_complete(client, dataset_id)


def make_plan(
    inventory: Inventory,
    documents: Iterable[Document],
    options: SyncOptions,
    *,
    token_is_content: bool,
    in_scope: Callable[[str], bool] | None = None,
    desired: DesiredBook | None = None,
    label_checks: LabelChecks | None = None,
) -> Plan:
    """The planner's view of one sync."""
    return plan_sync(
        inventory.entries,
        documents,
        PlanOptions(
            listing_complete=inventory.complete,
            unlisted_prefixes=tuple(inventory.unlisted_prefixes),
            in_scope=in_scope,
            max_delete_fraction=options.max_delete_fraction,
            allow_mass_delete=options.allow_mass_delete,
            delete_removed=options.delete_removed,
            reparse_failed=options.reparse_failed,
            change_token_is_content_hash=token_is_content,
            mass_delete_hint=options.mass_delete_hint,
            desired=desired.get if desired is not None and desired.active else None,
            label_checks=label_checks,
        ),
    )


def sync_source(
    client: RAGFlowClient,
    source: Source,
    dataset_id: str,
    options: SyncOptions | None = None,
    *,
    dataset_name: str | None = None,
    inventory: Inventory | None = None,
    documents: list[Document] | None = None,
    progress: Progress | None = None,
    log: logging.Logger | None = None,
    api_calls_since: int | None = None,
) -> SyncReport:
    """Bring a RAGFlow dataset in sync with a source.

    Args:
        client: The RAGFlow client.
        source: Where the files live.
        dataset_id: The dataset to keep in sync.
        options: What to do and how.
        dataset_name: Shown in the report.
        inventory: A ready inventory (else the source is listed, re-hashing only changed files).
        documents: A ready listing of the dataset (else it is listed).
        progress: ``progress(phase, done, total)`` callback.
        log: Logger for progress lines.
        api_calls_since: The client's ``request_count`` when the caller's work for this sync
            began (before its own listing of ``documents``), so ``api_calls`` counts it too;
            default: the count when this function starts.

    Returns:
        The :class:`SyncReport`.

    Example:
        >>> from ragflow_dagster import LocalFolderSource
        >>> for name in ("x.txt", "y.txt"):
        ...     with open(f"{tmp}/{name}", "w") as f:
        ...         _ = f.write(name)
        >>> handbook = client.create_dataset("handbook")
        >>> first = sync_source(client, LocalFolderSource(tmp), handbook.id)
        >>> again = sync_source(client, LocalFolderSource(tmp), handbook.id)
        >>> first.counts["uploaded"], again.counts["uploaded"], again.counts["unchanged"]
        (2, 0, 2)
    """
    opts = options or SyncOptions()
    log = log or logger
    report = SyncReport(
        dataset_id=dataset_id,
        source_uri=source.uri,
        dataset_name=dataset_name,
        dry_run=opts.dry_run,
    )
    lease = (
        dataset_lease(client.base_url, dataset_id, timeout=opts.lease_timeout, log=log)
        if opts.lease and not opts.dry_run
        else contextlib.nullcontext(False)
    )
    t0 = time.monotonic()
    calls0 = client.request_count if api_calls_since is None else api_calls_since
    # The collector is paused from the listings to the plan's decision (every record built there
    # lives on; see ragflow_dagster.gcpause), and on again while a plan is executed.
    planning = contextlib.ExitStack()
    try:
        with lease, planning:
            planning.enter_context(gc_paused())
            _sync(
                client,
                source,
                dataset_id,
                opts,
                report,
                inventory,
                documents,
                progress,
                log,
                planning,
            )
    except (RAGFlowError, SourceError, OSError) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        report.durations["total"] = time.monotonic() - t0
        report.api_calls = client.request_count - calls0
        count_outcomes(report)
        log.error("sync of %s aborted: %s", dataset_name or dataset_id, report.error)
        raise SyncAbortedError(report.error, report=report) from exc
    report.durations["total"] = time.monotonic() - t0
    report.api_calls = client.request_count - calls0
    log.info("sync finished: %s", report.to_json())
    return report


def _sync(
    client: RAGFlowClient,
    source: Source,
    dataset_id: str,
    opts: SyncOptions,
    report: SyncReport,
    inventory: Inventory | None,
    documents: list[Document] | None,
    progress: Progress | None,
    log: logging.Logger,
    planning: contextlib.ExitStack,
) -> None:
    """List, plan, act, and list again until a plan over a complete listing has nothing left
    to do (``verified``) or the rounds run out. ``planning`` holds the collector's pause: it is
    closed while a plan is executed and entered again for the next listing."""
    checks = LabelChecks()  # each label checked once per listing, shared by all that ask

    def known_of(listed: list[Document]) -> dict[str, KnownFile]:
        return known_files(listed, label_checks=checks)

    if documents is None and inventory is None:
        # the source is walked while the dataset is listed (see .overlap)
        t = time.monotonic()
        docs, inventory, overlapped = list_both(
            lambda: list_complete(client, dataset_id, log=log), source, opts.filters, known_of
        )
        report.durations.update(overlapped)
        report.durations["list_and_walk"] = time.monotonic() - t
    else:
        t = time.monotonic()
        docs = documents if documents is not None else list_complete(client, dataset_id, log=log)
        report.durations["list_documents"] = time.monotonic() - t
        if inventory is None:
            t = time.monotonic()
            inventory = build_inventory(source, opts.filters, known=known_of(docs))
            report.durations["inventory"] = time.monotonic() - t
    inventory, desired = resolve_desired(
        source,
        inventory,
        docs,
        spec=opts.metadata,
        rules=opts.rules,
        default_method=lambda: client.get_dataset(dataset_id).chunk_method,
        max_workers=opts.max_workers,
    )
    report.counts["metadata_reads"] = sum(desired.reads.values())
    report.counts["scanned"] = len(inventory.entries)
    report.counts["skipped"] = len(inventory.skipped)
    report.listing_complete = inventory.complete
    token_is_content = source.change_token_is_content_hash
    exec_opts = ExecuteOptions(
        max_workers=opts.max_workers,
        parse=opts.parse,
        wait=opts.wait,
        parse_timeout=opts.parse_timeout,
        parse_retries=opts.parse_retries,
        desired=desired,
    )
    given_up: set[str] = set()  # paths that failed for good in an earlier round
    retried: set[str] = set()  # paths that failed in a way another round could mend

    def scope(p: str) -> bool:
        return p not in given_up and (opts.in_scope is None or opts.in_scope(p))

    round_no = 0
    while True:
        t = time.monotonic()
        plan = make_plan(
            inventory,
            docs,
            opts,
            token_is_content=token_is_content,
            in_scope=scope if (given_up or opts.in_scope) else None,
            desired=desired,
            label_checks=checks,
        )
        report.durations["plan"] = report.durations.get("plan", 0.0) + time.monotonic() - t
        report.guard_message = plan.guard_message
        reason = verdict(plan, parse=opts.parse)
        if round_no == 0:
            log.info("plan for %s: %s", report.dataset_name or dataset_id, plan.counts())
            if plan.guard_message:
                log.error(plan.guard_message)
        if opts.dry_run:
            _record_planned(report, plan)
            report.verified = reason is None
            report.verification = reason
            return
        done = reason is None
        report.verified = done
        report.verification = reason
        waiting = only_waiting(plan, parse=opts.parse)
        stuck = waiting and not (opts.wait and plan.pending)
        # a round that only waits for parses (an overlapping run's keeper still parsing) does
        # not count against max_rounds, up to a few of them
        limit = max(1, opts.max_rounds) + (_WAIT_ROUNDS if waiting else 0)
        if done or stuck or round_no >= limit:
            if round_no == 0:  # nothing was executed: the in-sync paths are the outcome
                report.record_ok(
                    "unchanged",
                    ((a.path, a.doc_id) for a in plan.actions if isinstance(a, Unchanged)),
                )
            break
        round_no += 1
        if round_no > 1:
            log.info("round %d: %s", round_no, reason)
            _forget(report, {a.path for a in plan.actions if not isinstance(a, Unchanged)})
        report.rounds = round_no
        executor = PlanExecutor(
            client,
            source,
            dataset_id,
            report,
            exec_opts,
            progress=progress,
            log=log,
            record_unchanged=round_no == 1,
        )
        planning.close()
        executor.run(plan)
        planning.enter_context(gc_paused())
        given_up |= executor.failed_paths
        retried |= executor.retry_paths
        t = time.monotonic()
        docs = list_complete(client, dataset_id, log=log)
        report.durations["verify"] = report.durations.get("verify", 0.0) + time.monotonic() - t
    # A transient failure (a document deleted under us by an overlapping run, a dropped
    # connection) that the final, complete listing shows mended is no failure of the run.
    in_sync = {a.path for a in plan.actions if isinstance(a, Unchanged)}
    _forget(report, (retried - given_up) & in_sync)
    count_outcomes(report)
    report.final_documents = docs
    if not report.verified and not plan.actionable and not plan.withheld_deletes:
        report.awaiting_parse = True
        report.counts["parse_pending"] = len(plan.pending)
    if not report.verified:
        log.warning("%s not converged: %s", report.dataset_name or dataset_id, report.verification)


def _forget(report: SyncReport, paths: set[str]) -> None:
    """Drop the failed outcomes of ``paths`` before they are tried again (the new round's
    outcome counts instead)."""
    with report._lock:
        report.outcomes = [
            o for o in report.outcomes if not (o.status == "failed" and o.path in paths)
        ]
        report.errors = [e for e in report.errors if e.split(":", 1)[0] not in paths]


def _record_planned(report: SyncReport, plan: Plan) -> None:
    counts = {
        "upload": "uploaded",
        "replace": "replaced",
        "move": "moved",
        "unchanged": "unchanged",
        "adopt": "adopted",
        "relabel": "relabelled",
        "rechunk": "rechunked",
        "reparse": "reparsed",
    }
    for action in plan.actions:
        if isinstance(action, Delete):
            key = "deleted" if action.reason == "removed" else "deduplicated"
            report.add(key, len(action.doc_ids))
            for doc_id in action.doc_ids:
                report.record(action.path, "delete", "planned", doc_id=doc_id, detail=action.reason)
            continue
        report.add(counts[action.kind])
        report.record(
            action.path,
            action.kind,
            "planned",
            doc_id=None if isinstance(action, (Upload, Replace)) else action.doc_id,
            detail=planned_detail(action),
        )
    for d in plan.withheld_deletes:
        for doc_id in d.doc_ids:
            report.record(d.path, "delete", "withheld", doc_id=doc_id, detail="mass-delete guard")


__all__ = [
    "SyncAbortedError",
    "SyncOptions",
    "known_files",
    "list_documents",
    "make_plan",
    "sync_source",
]
