"""One source into several datasets: one listing of the source, one engine run per dataset.

:func:`sync_routed` lists every routed dataset (each listing proven complete), builds **one**
inventory of the source (re-hashing only files whose change token none of the datasets knows),
cuts it into per-dataset slices with :func:`~ragflow_dagster.sync.routing.split_inventory`, and
runs :func:`~ragflow_dagster.sync.engine.sync_source` on each dataset with its slice and its
listing. The source is never listed again: the engine takes the slice as its inventory and reads
file contents from the real source.

* **Moves between datasets** are a delete in one and an upload in the other, and the upload
  comes first: datasets are synced one after another (in the order the routes name them, the
  default last), and a dataset that has documents of files no longer routed to it is synced
  in two steps: first everything but those deletions (``delete_removed=False``), and only after
  every dataset had its turn, the deletions (a second engine run from the first one's final
  listing: no extra listing when there is nothing to delete, one verification listing when
  there is). So a file moved from one dataset to another is never in neither. Within one
  dataset the engine's own order holds (a replacement is parsed before the old version is
  deleted). The two steps' reports are merged into one per dataset.
* **Safety per dataset**: each dataset has its own plan, so the mass-delete guard counts that
  dataset's documents only; a dataset deletes documents of removed files only when its own
  listing and the one source listing were complete (the slices carry the source's
  ``complete`` and every unlisted prefix).
* **Failures per dataset**: a dataset whose run aborts (its report says why) does not stop the
  others; :attr:`RoutedSyncReport.converged` is True only when every dataset converged.

Example:
    >>> from pathlib import Path
    >>> from ragflow_dagster.sources import LocalFolderSource
    >>> from ragflow_dagster.sync.routing import RouteTable
    >>> for rel in ("eng/api.md", "eng/cli.md", "hr/leave.txt"):
    ...     p = Path(tmp, "docs", rel)
    ...     p.parent.mkdir(parents=True, exist_ok=True)
    ...     _ = p.write_text(f"text of {rel}")
    >>> routes = RouteTable.model_validate(
    ...     {"routes": [{"glob": "eng/**", "dataset": "eng"}], "default_dataset": "general"})
    >>> report = sync_routed(client, LocalFolderSource(Path(tmp, "docs")), routes)
    >>> {name: r.counts["uploaded"] for name, r in report.reports.items()}
    {'eng': 2, 'general': 1}
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ragflow_dagster.client import Dataset, Document, RAGFlowClient, RAGFlowError, ensure_dataset
from ragflow_dagster.client.ensure import settings_of
from ragflow_dagster.sources import Inventory, KnownFile, SkippedEntry, Source, build_inventory
from ragflow_dagster.sync.engine import (
    SyncAbortedError,
    SyncOptions,
    known_files,
    list_documents,
    make_plan,
    sync_source,
)
from ragflow_dagster.sync.execute import Progress, count_outcomes
from ragflow_dagster.sync.identity import managed_path
from ragflow_dagster.sync.report import SyncReport
from ragflow_dagster.sync.routing import RouteDataset, RoutedInventory, RouteTable, split_inventory

__all__ = ["DatasetRun", "RoutedSyncReport", "merge_reports", "sync_routed"]

logger = logging.getLogger("ragflow_dagster.sync")

_UNROUTED_SHOWN = 100


@dataclass(frozen=True)
class DatasetRun:
    """One dataset's part of a routed run.

    Attributes:
        name: The dataset's name.
        dataset_id: Its id (``""`` when it does not exist: a dry run, or its creation failed).
        report: The engine's report for it.
        inventory: The slice of the source routed to it.
        documents_before: Its documents as listed before the run.
    """

    name: str
    dataset_id: str
    report: SyncReport
    inventory: Inventory
    documents_before: list[Document] = field(default_factory=list, repr=False)


@dataclass
class RoutedSyncReport:
    """What one routed run did: a :class:`SyncReport` per dataset, and the unrouted files.

    Attributes:
        source_uri: The source.
        runs: Per dataset name (in route order), its :class:`DatasetRun`.
        unrouted: Files no route matched (reason ``unrouted``), when there is no default.
        listing_complete: The one source listing was complete.
        source_listings: How many times the source was listed (1).
        api_calls: Requests of the whole run (the dataset listings before it included).
        inventory_seconds: Time of the one listing of the source (with hashing).
        total_seconds: Wall time of the whole run.
        dry_run: Nothing was changed.

    Example:
        >>> r = RoutedSyncReport(source_uri="file:///d")
        >>> r.converged, r.to_dict()["unrouted"]
        (True, 0)
    """

    source_uri: str
    runs: dict[str, DatasetRun] = field(default_factory=dict)
    unrouted: list[SkippedEntry] = field(default_factory=list)
    listing_complete: bool = True
    source_listings: int = 0
    api_calls: int = 0
    inventory_seconds: float = 0.0
    total_seconds: float = 0.0
    dry_run: bool = False

    @property
    def reports(self) -> dict[str, SyncReport]:
        """The engine's report of each dataset."""
        return {name: run.report for name, run in self.runs.items()}

    @property
    def failed(self) -> list[str]:
        """Datasets whose run did not converge (for a dry run: could not be planned fully)."""
        return [name for name, r in self.reports.items() if not _ok(r)]

    @property
    def converged(self) -> bool:
        """Every dataset converged (a dry run: every dataset could be planned)."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: per dataset its report (the keys of a single sync's report)."""
        return {
            "source_uri": self.source_uri,
            "dry_run": self.dry_run,
            "converged": self.converged,
            "failed_datasets": self.failed,
            "listing_complete": self.listing_complete,
            "source_listings": self.source_listings,
            "unrouted": len(self.unrouted),
            "unrouted_paths": [s.path for s in self.unrouted[:_UNROUTED_SHOWN]],
            "api_calls": self.api_calls,
            "durations_s": {
                "inventory": round(self.inventory_seconds, 3),
                "total": round(self.total_seconds, 3),
            },
            "datasets": {name: r.to_dict() for name, r in self.reports.items()},
        }

    def summary(self) -> str:
        """One block per dataset (its report's summary and verdict), then the unrouted files."""
        blocks = []
        for name, report in self.reports.items():
            verdict = "converged" if report.converged else "NOT converged"
            if self.dry_run:
                verdict = "dry run: nothing changed" + ("" if _ok(report) else "; NOT converged")
            reason = "" if _ok(report) or report.reason is None else f" ({report.reason})"
            blocks.append(f"{report.summary()}\n{name}: {verdict}{reason}")
        n = len(self.unrouted)
        tail = f"unrouted: {n} file{'s' if n != 1 else ''} matched no route (skipped)"
        if self.unrouted:
            shown = ", ".join(s.path for s in self.unrouted[:5])
            tail += f": {shown}" + (", ..." if n > 5 else "")
        return "\n\n".join([*blocks, tail])


def _ok(report: SyncReport) -> bool:
    if report.converged:
        return True
    if report.dry_run:
        return report.error is None and report.listing_complete and not report.guard_refused
    return False


def sync_routed(
    client: RAGFlowClient,
    source: Source,
    routes: RouteTable,
    options: SyncOptions | None = None,
    *,
    only: Collection[str] | None = None,
    ensure: Callable[[RouteDataset, Dataset | None], Dataset] | None = None,
    progress: Progress | None = None,
    log: logging.Logger | None = None,
) -> RoutedSyncReport:
    """Sync one source into the datasets of a route table, listing the source once.

    Args:
        client: The RAGFlow client.
        source: Where the files live.
        routes: Which files go to which dataset.
        options: What to do and how (the same for every dataset; ``in_scope`` is ignored).
        only: Sync only these datasets (the others' files are still routed, never moved).
        ensure: ``ensure(settings, existing)`` returns the dataset to sync, creating it when
            ``existing`` is None (default: :func:`~ragflow_dagster.client.ensure_dataset`).
        progress: ``progress(phase, done, total)`` callback.
        log: Logger for progress lines.

    Returns:
        The :class:`RoutedSyncReport`.

    Raises:
        SourceError: The source cannot be listed at all (then no dataset was created).
        RAGFlowError: A dataset could not be looked up or listed before the source listing
            (nothing was changed).

    Example:
        >>> from pathlib import Path
        >>> from ragflow_dagster.sources import LocalFolderSource
        >>> _ = Path(tmp, "a.txt").write_text("a")
        >>> routes = RouteTable.model_validate({"routes": [{"glob": "*", "dataset": "all"}]})
        >>> report = sync_routed(client, LocalFolderSource(tmp), routes)
        >>> report.converged, report.source_listings
        (True, 1)
    """
    opts = options or SyncOptions()
    log = log or logger
    t0 = time.monotonic()
    calls0 = client.request_count
    wanted = [d for d in routes.datasets if only is None or d.name in only]
    out = RoutedSyncReport(source_uri=source.uri, dry_run=opts.dry_run)

    # 1. every dataset's listing (what the one inventory need not re-hash)
    existing: dict[str, Dataset | None] = {}
    before: dict[str, list[Document]] = {}
    for ds in wanted:
        found = client.find_dataset(ds.name)
        existing[ds.name] = found
        before[ds.name] = list_documents(client, found.id) if found is not None else []

    # 2. one listing of the source (before any dataset is created)
    t = time.monotonic()
    inventory = build_inventory(
        source, opts.filters, known=_merged_known(routes, before, wanted=[d.name for d in wanted])
    )
    out.inventory_seconds = time.monotonic() - t
    out.source_listings = 1
    out.listing_complete = inventory.complete
    routed: RoutedInventory = split_inventory(inventory, routes)
    out.unrouted = list(routed.unrouted)
    if routed.unrouted:
        log.info("%d files match no route (skipped as unrouted)", len(routed.unrouted))

    # 3. one engine run per dataset, with its slice and its listing; deletions of files that
    # left a dataset wait until every dataset has had its uploads (step 4)
    make = ensure or _ensurer(client, log)
    two_step = opts.delete_removed and not opts.dry_run
    deferred: list[str] = []
    for ds in wanted:
        slice_ = routed.slices[ds.name]
        docs = before[ds.name]
        found = existing[ds.name]
        try:
            if found is None and opts.dry_run:
                out.runs[ds.name] = DatasetRun(
                    ds.name, "", _dry_run_new(source, ds.name, slice_, opts), slice_, []
                )
                continue
            record = make(ds, found)
            if found is None or found.id != record.id:
                docs = list_documents(client, record.id)
            defer = two_step and _has_removals(docs, slice_)
            report = sync_source(
                client,
                source,
                record.id,
                dataclasses.replace(opts, delete_removed=False) if defer else opts,
                dataset_name=record.name,
                inventory=slice_,
                documents=docs,
                progress=progress,
                log=log,
            )
            out.runs[ds.name] = DatasetRun(ds.name, record.id, report, slice_, docs)
            if defer:
                deferred.append(ds.name)
        except SyncAbortedError as exc:
            out.runs[ds.name] = DatasetRun(ds.name, exc.report.dataset_id, exc.report, slice_, docs)
        except RAGFlowError as exc:  # the dataset could not be created or listed
            report = SyncReport(
                dataset_id=found.id if found is not None else "",
                source_uri=source.uri,
                dataset_name=ds.name,
                dry_run=opts.dry_run,
                error=f"{type(exc).__name__}: {exc}",
            )
            log.error("sync of %s aborted: %s", ds.name, report.error)
            out.runs[ds.name] = DatasetRun(ds.name, report.dataset_id, report, slice_, docs)
    # 4. the deletions held back in step 3, now that every upload is done
    for name in deferred:
        run = out.runs[name]
        try:
            second = sync_source(
                client,
                source,
                run.dataset_id,
                opts,
                dataset_name=run.report.dataset_name,
                inventory=run.inventory,
                documents=run.report.final_documents,
                progress=progress,
                log=log,
            )
        except SyncAbortedError as exc:
            second = exc.report
        out.runs[name] = dataclasses.replace(run, report=merge_reports(run.report, second))
    out.api_calls = client.request_count - calls0
    out.total_seconds = time.monotonic() - t0
    return out


def _has_removals(documents: list[Document], inventory: Inventory) -> bool:
    """The dataset holds managed documents of paths not in its slice (removed, moved away or
    unrouted now)."""
    paths = inventory.by_path
    return any((p := managed_path(d.meta_fields)) is not None and p not in paths for d in documents)


def merge_reports(first: SyncReport, second: SyncReport) -> SyncReport:
    """One report for a dataset synced in two steps: ``first`` without the deletions of removed
    files, ``second`` (from ``first``'s final listing) with them. The verdict, the guard and the
    final listing are ``second``'s; the per-file outcomes are both runs' (``second``'s
    "unchanged" ones left out), and the counts are derived from them.

    Example:
        >>> a = SyncReport(dataset_id="d", source_uri="file:///x")
        >>> a.record("new.md", "upload", "ok", doc_id="2")
        >>> b = SyncReport(dataset_id="d", source_uri="file:///x", verified=True)
        >>> b.record("old.md", "delete", "ok", doc_id="1")
        >>> m = merge_reports(a, b)
        >>> m.counts["uploaded"], m.counts["deleted"], m.verified
        (1, 1, True)
    """
    merged = dataclasses.replace(
        first,
        counts=dict(first.counts),
        durations=dict(first.durations),
        outcomes=[*first.outcomes, *(o for o in second.outcomes if o.action != "unchanged")],
        errors=[*first.errors, *second.errors],
        guard_message=second.guard_message,
        api_calls=first.api_calls + second.api_calls,
        rounds=first.rounds + second.rounds,
        verified=second.verified,
        verification=second.verification,
        awaiting_parse=second.awaiting_parse,
        final_documents=second.final_documents,
        error=second.error,
        bytes_uploaded=first.bytes_uploaded + second.bytes_uploaded,
        _lock=threading.Lock(),
    )
    for key, value in second.durations.items():
        merged.durations[key] = merged.durations.get(key, 0.0) + value
    for key in ("parse_requested", "parsed", "parse_failed"):
        merged.counts[key] = first.counts.get(key, 0) + second.counts.get(key, 0)
    merged.counts["parse_pending"] = second.counts.get("parse_pending", 0)
    count_outcomes(merged)
    return merged


def _merged_known(
    routes: RouteTable, before: Mapping[str, list[Document]], *, wanted: list[str]
) -> dict[str, KnownFile]:
    """Fingerprints of every dataset, by path; for a path known to several datasets, the one
    of the dataset the path routes to now."""
    merged: dict[str, KnownFile] = {}
    for name in wanted:
        for path, known in known_files(before[name]).items():
            if path not in merged or routes.dataset_for(path) == name:
                merged[path] = known
    return merged


def _ensurer(
    client: RAGFlowClient, log: logging.Logger
) -> Callable[[RouteDataset, Dataset | None], Dataset]:
    def make(ds: RouteDataset, found: Dataset | None) -> Dataset:
        return ensure_dataset(
            client,
            ds.name,
            **settings_of(ds),
            log=log,
            existing=found,
        ).dataset

    return make


def _dry_run_new(source: Source, name: str, inventory: Inventory, opts: SyncOptions) -> SyncReport:
    """A dry run for a dataset that does not exist yet: every routed file would be uploaded."""
    report = SyncReport(dataset_id="", source_uri=source.uri, dataset_name=name, dry_run=True)
    report.counts["scanned"] = len(inventory.entries)
    report.counts["skipped"] = len(inventory.skipped)
    report.listing_complete = inventory.complete
    plan = make_plan(inventory, [], opts, token_is_content=source.change_token_is_content_hash)
    for action in plan.actions:
        report.add("uploaded")
        report.record(action.path, action.kind, "planned")
    report.verified = True
    return report
