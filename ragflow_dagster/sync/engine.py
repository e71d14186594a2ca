"""The sync, end to end and without Dagster: list → plan → execute → report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ragflow_dagster.client import Document, RAGFlowClient
from ragflow_dagster.sources import FileFilters, Inventory, KnownFile, Source, build_inventory
from ragflow_dagster.sync.execute import ExecuteOptions, PlanExecutor, Progress, count_outcomes
from ragflow_dagster.sync.identity import (
    META_CHANGE_TOKEN,
    META_SHA256,
    META_SIZE,
    managed_path,
)
from ragflow_dagster.sync.plan import Delete, Plan, PlanOptions, plan_sync
from ragflow_dagster.sync.report import SyncReport

logger = logging.getLogger("ragflow_dagster.sync")


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
        max_rounds: A round that leaves retryable failures (timeouts, 5xx, dropped connections) is
            followed by a fresh listing and a new plan for the failed paths, up to this many rounds.
        in_scope: Only these paths are acted on (a partition subset); None = all.
        mass_delete_hint: How this caller lifts the guard, named in the guard's message.
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
    mass_delete_hint: str = "allow_mass_delete=True"


def known_files(documents: Iterable[Document]) -> dict[str, KnownFile]:
    """Fingerprints stored on the RAGFlow side, by source path (what the inventory need not
    re-hash)."""
    known: dict[str, KnownFile] = {}
    for doc in documents:
        path = managed_path(doc.meta_fields)
        if path is None:
            continue
        meta = doc.meta_fields
        sha = meta.get(META_SHA256) or None
        token = meta.get(META_CHANGE_TOKEN)
        try:
            size = int(meta.get(META_SIZE))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            size = None
        if token is not None:
            known[path] = KnownFile(change_token=str(token), sha256=sha, size=size)
    return known


def list_documents(client: RAGFlowClient, dataset_id: str) -> list[Document]:
    """Every document of the dataset, paged at the server's maximum page size."""
    return list(client.iter_documents(dataset_id))


def make_plan(
    inventory: Inventory,
    documents: Iterable[Document],
    options: SyncOptions,
    *,
    token_is_content: bool,
    in_scope: Callable[[str], bool] | None = None,
) -> Plan:
    """The planner's view of one sync."""
    return plan_sync(
        inventory.entries,
        documents,
        PlanOptions(
            listing_complete=inventory.complete,
            unlisted_prefixes=tuple(getattr(inventory, "unlisted_prefixes", ()) or ()),
            in_scope=in_scope,
            max_delete_fraction=options.max_delete_fraction,
            allow_mass_delete=options.allow_mass_delete,
            delete_removed=options.delete_removed,
            reparse_failed=options.reparse_failed,
            change_token_is_content_hash=token_is_content,
            mass_delete_hint=options.mass_delete_hint,
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
        >>> from ragflow_dagster import RAGFlowClient, LocalFolderSource, sync_source
        >>> client = RAGFlowClient("http://127.0.0.1:9380", "ragflow-...")  # doctest: +SKIP
        >>> report = sync_source(client, LocalFolderSource("docs"), "ds-id")  # doctest: +SKIP
        >>> report.counts["uploaded"]  # doctest: +SKIP
        12
    """
    opts = options or SyncOptions()
    log = log or logger
    t0 = time.monotonic()
    calls0 = client.request_count if api_calls_since is None else api_calls_since
    report = SyncReport(
        dataset_id=dataset_id,
        source_uri=source.uri,
        dataset_name=dataset_name,
        dry_run=opts.dry_run,
    )

    t = time.monotonic()
    docs = documents if documents is not None else list_documents(client, dataset_id)
    report.durations["list_documents"] = time.monotonic() - t
    if inventory is None:
        t = time.monotonic()
        inventory = build_inventory(source, opts.filters, known=known_files(docs))
        report.durations["inventory"] = time.monotonic() - t
    report.counts["scanned"] = len(inventory.entries)
    report.counts["skipped"] = len(inventory.skipped)
    report.listing_complete = inventory.complete
    token_is_content = bool(getattr(source, "change_token_is_content_hash", False))

    t = time.monotonic()
    plan = make_plan(
        inventory, docs, opts, token_is_content=token_is_content, in_scope=opts.in_scope
    )
    report.durations["plan"] = time.monotonic() - t
    report.guard_message = plan.guard_message
    if plan.guard_message:
        log.error(plan.guard_message)
    log.info("plan for %s: %s", dataset_name or dataset_id, plan.counts())

    if opts.dry_run:
        _record_planned(report, plan)
    else:
        exec_opts = ExecuteOptions(
            max_workers=opts.max_workers,
            parse=opts.parse,
            wait=opts.wait,
            parse_timeout=opts.parse_timeout,
            parse_retries=opts.parse_retries,
        )
        for round_no in range(1, max(1, opts.max_rounds) + 1):
            report.rounds = round_no
            executor = PlanExecutor(
                client, source, dataset_id, report, exec_opts, progress=progress, log=log
            )
            executor.run(plan)
            retry = executor.retryable_paths
            if not retry or round_no == opts.max_rounds:
                break
            log.info(
                "round %d left %d paths with retryable failures; re-planning them",
                round_no,
                len(retry),
            )
            _forget(report, retry)
            docs = list_documents(client, dataset_id)

            def scope(p: str, _r: set[str] = set(retry), _s=opts.in_scope) -> bool:  # noqa: B006
                return p in _r and (_s is None or _s(p))

            plan = make_plan(
                inventory, docs, opts, token_is_content=token_is_content, in_scope=scope
            )
        count_outcomes(report)
    report.durations["total"] = time.monotonic() - t0
    report.api_calls = client.request_count - calls0
    log.info("sync finished: %s", report.to_json())
    return report


def _retry_scope(paths: set[str], outer: Callable[[str], bool] | None) -> Callable[[str], bool]:
    return lambda p: p in paths and (outer is None or outer(p))


def _forget(report: SyncReport, paths: set[str]) -> None:
    """Drop the outcomes of ``paths`` before they are planned again (the new round's count)."""
    with report._lock:
        report.outcomes = [o for o in report.outcomes if o.path not in paths]
        report.errors = [e for e in report.errors if e.split(":", 1)[0] not in paths]


def _record_planned(report: SyncReport, plan: Plan) -> None:
    counts = {
        "upload": "uploaded",
        "replace": "replaced",
        "move": "moved",
        "unchanged": "unchanged",
        "adopt": "adopted",
        "relabel": "relabelled",
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
        report.record(action.path, action.kind, "planned", doc_id=getattr(action, "doc_id", None))
    for d in plan.withheld_deletes:
        for doc_id in d.doc_ids:
            report.record(d.path, "delete", "withheld", doc_id=doc_id, detail="mass-delete guard")


__all__ = ["SyncOptions", "known_files", "list_documents", "make_plan", "sync_source"]
