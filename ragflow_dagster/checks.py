"""What the ingestion's asset checks decide, as pure functions of (inventory, documents).

The Dagster layer (:mod:`ragflow_dagster.assets`) turns these outcomes into ``AssetCheckResult``s;
keeping the logic here makes every check testable without a run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sync.identity import META_CHANGE_TOKEN, META_SHA256, managed_path
from ragflow_dagster.sync.plan import RemoteDocument

__all__ = [
    "CheckOutcome",
    "RetrievalProbe",
    "RunEvidence",
    "chunks_after_run",
    "chunks_healthy",
    "documents_after_run",
    "documents_match_source",
    "retrieval_hits",
    "sync_lag",
    "sync_lag_after_run",
]

_SAMPLE = 20


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of one check, with the evidence."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrievalProbe:
    """A retrieval smoke test: ``question`` must return a chunk of the document of
    ``expected_path`` among the first ``top_n`` chunks.

    Example:
        >>> RetrievalProbe("vacation policy", "hr/leave.md")
        RetrievalProbe(question='vacation policy', expected_path='hr/leave.md', top_n=10)
    """

    question: str
    expected_path: str
    top_n: int = 10


def _managed_by_path(
    documents: Iterable[RemoteDocument], in_scope: Callable[[str], bool] | None
) -> dict[str, list[RemoteDocument]]:
    out: dict[str, list[RemoteDocument]] = defaultdict(list)
    for doc in documents:
        path = managed_path(doc.meta_fields)
        if path is not None and (in_scope is None or in_scope(path)):
            out[path].append(doc)
    return out


def _in_sync(entry: SourceEntry, doc: RemoteDocument) -> bool:
    meta = doc.meta_fields or {}
    if entry.sha256 is not None:
        return meta.get(META_SHA256) == entry.sha256
    return str(meta.get(META_CHANGE_TOKEN)) == entry.change_token


def documents_match_source(
    entries: Sequence[SourceEntry],
    documents: Iterable[RemoteDocument],
    *,
    in_scope: Callable[[str], bool] | None = None,
) -> CheckOutcome:
    """Every inventory file has exactly one managed document with its content; no managed
    document whose file is gone; no duplicates."""
    scoped = [e for e in entries if in_scope is None or in_scope(e.path)]
    managed = _managed_by_path(documents, in_scope)
    paths = {e.path for e in scoped}
    missing = [e.path for e in scoped if not any(_in_sync(e, d) for d in managed.get(e.path, []))]
    duplicates = sorted(p for p, docs in managed.items() if len(docs) > 1)
    orphans = sorted(p for p in managed if p not in paths)
    passed = not (missing or duplicates or orphans)
    desc = (
        f"{len(scoped)} files, each with exactly one up-to-date document"
        if passed
        else f"{len(missing)} missing or stale, {len(duplicates)} duplicated, "
        f"{len(orphans)} orphaned documents"
    )
    return CheckOutcome(
        passed,
        desc,
        {
            "files": len(scoped),
            "missing_or_stale": len(missing),
            "duplicates": len(duplicates),
            "orphans": len(orphans),
            "sample_missing": missing[:_SAMPLE],
            "sample_duplicates": duplicates[:_SAMPLE],
            "sample_orphans": orphans[:_SAMPLE],
        },
    )


def chunks_healthy(
    entries: Sequence[SourceEntry],
    documents: Iterable[RemoteDocument],
    *,
    in_scope: Callable[[str], bool] | None = None,
) -> CheckOutcome:
    """No managed document in FAIL/CANCEL; no non-empty file parsed into zero chunks."""
    sizes = {e.path: e.size for e in entries}
    failed: list[str] = []
    empty: list[str] = []
    pending: list[str] = []
    for path, docs in _managed_by_path(documents, in_scope).items():
        for doc in docs:
            if doc.run in ("FAIL", "CANCEL"):
                failed.append(path)
            elif doc.run == "DONE" and not doc.chunk_count and sizes.get(path, doc.size or 0) > 0:
                empty.append(path)
            elif doc.run in ("UNSTART", "RUNNING"):
                pending.append(path)
    passed = not (failed or empty)
    desc = (
        "every document parsed into chunks"
        if passed
        else f"{len(failed)} documents failed to parse, {len(empty)} non-empty files gave no chunks"
    )
    if pending:
        desc += f" ({len(pending)} still parsing)"
    return CheckOutcome(
        passed,
        desc,
        {
            "failed": len(failed),
            "zero_chunks": len(empty),
            "still_parsing": len(pending),
            "sample_failed": sorted(failed)[:_SAMPLE],
            "sample_zero_chunks": sorted(empty)[:_SAMPLE],
        },
    )


def sync_lag(
    entries: Sequence[SourceEntry],
    documents: Iterable[RemoteDocument],
    *,
    max_lag: timedelta,
    now: float | None = None,
    in_scope: Callable[[str], bool] | None = None,
) -> CheckOutcome:
    """No source change older than ``max_lag`` is still missing from RAGFlow."""
    now = time.time() if now is None else now
    managed = _managed_by_path(documents, in_scope)
    late: list[tuple[str, float]] = []
    for entry in entries:
        if in_scope is not None and not in_scope(entry.path):
            continue
        if any(_in_sync(entry, d) for d in managed.get(entry.path, [])):
            continue
        age = now - entry.modified
        if age > max_lag.total_seconds():
            late.append((entry.path, age))
    late.sort(key=lambda item: -item[1])
    oldest = late[0][1] if late else 0.0
    return CheckOutcome(
        not late,
        f"no change older than {max_lag} is missing"
        if not late
        else f"{len(late)} changes older than {max_lag} are missing (oldest {oldest:.0f}s)",
        {
            "late_files": len(late),
            "oldest_lag_s": round(oldest, 1),
            "max_lag_s": max_lag.total_seconds(),
            "sample_late": [p for p, _ in late[:_SAMPLE]],
        },
    )


def retrieval_hits(
    probes: Sequence[RetrievalProbe],
    retrieve: Callable[[RetrievalProbe], Sequence[str]],
) -> CheckOutcome:
    """Each probe's question returns a chunk of its expected document.

    Args:
        probes: The smoke tests.
        retrieve: Returns the source paths of the chunks retrieved for a probe, best first.
    """
    misses = []
    for probe in probes:
        paths = list(retrieve(probe))[: probe.top_n]
        if probe.expected_path not in paths:
            misses.append(
                {"question": probe.question, "expected": probe.expected_path, "got": paths[:3]}
            )
    return CheckOutcome(
        not misses,
        f"{len(probes) - len(misses)} of {len(probes)} retrieval probes hit",
        {"probes": len(probes), "misses": len(misses), "sample_misses": misses[:_SAMPLE]},
    )


# ------------------------------------------------------------------------------------------------
# checks of one sync run, from what the run already holds (no second listing)
# ------------------------------------------------------------------------------------------------

_REMEDIES = frozenset(
    {
        "upload",
        "replace",
        "move",
        "adopt",
        "relabel",
        "reparse",
        "delete",
        "deduplicate",
        "retire",
    }
)


@dataclass(frozen=True)
class RunEvidence:
    """What one sync run knows about the end state, without listing the dataset again.

    Built by :meth:`from_report` from the listing taken before the run and the run's report.

    Attributes:
        fixed: Paths the run acted on successfully.
        broken: Paths with a failed or withheld action (or only planned: a dry run).
        parse_failed: Paths whose new document failed to parse in this run.
        parse_pending: True when the run stopped waiting with documents still parsing.

    Example:
        >>> from ragflow_dagster.sync.report import SyncReport
        >>> r = SyncReport(dataset_id="d", source_uri="file:///x")
        >>> r.record("a.md", "upload", "ok", doc_id="1")
        >>> RunEvidence.from_report(r).fixed
        frozenset({'a.md'})
    """

    fixed: frozenset[str] = frozenset()
    broken: frozenset[str] = frozenset()
    parse_failed: frozenset[str] = frozenset()
    parse_pending: bool = False

    @classmethod
    def from_report(cls, report: Any) -> RunEvidence:
        """Read the per-file outcomes and parse errors of a :class:`SyncReport`."""
        fixed: set[str] = set()
        broken: set[str] = set()
        for o in report.outcomes:
            if o.status == "ok" and o.action in _REMEDIES:
                fixed.add(o.path)
            elif o.status in ("failed", "withheld", "planned") and o.action != "unchanged":
                broken.add(o.path)
        parse_failed = {
            o.path for o in report.outcomes if o.action == "parse" and o.status == "failed"
        }
        return cls(
            fixed=frozenset(fixed - broken),
            broken=frozenset(broken),
            parse_failed=frozenset(parse_failed),
            parse_pending=bool(report.counts.get("parse_pending", 0)),
        )


def documents_after_run(
    entries: Sequence[SourceEntry],
    before: Iterable[RemoteDocument],
    evidence: RunEvidence,
    *,
    in_scope: Callable[[str], bool] | None = None,
) -> CheckOutcome:
    """``documents_match_source`` for the end of a run: what was wrong before the run and was
    not fixed by it, plus whatever the run failed or withheld."""
    docs = list(before)
    first = documents_match_source(entries, docs, in_scope=in_scope)
    scoped = [e for e in entries if in_scope is None or in_scope(e.path)]
    managed = _managed_by_path(docs, in_scope)
    paths = {e.path for e in scoped}

    def still(bad: Iterable[str]) -> list[str]:
        return sorted(p for p in bad if p not in evidence.fixed or p in evidence.broken)

    missing = still(
        e.path for e in scoped if not any(_in_sync(e, d) for d in managed.get(e.path, []))
    )
    duplicates = still(p for p, ds in managed.items() if len(ds) > 1)
    orphans = still(p for p in managed if p not in paths)
    others = sorted(
        p
        for p in evidence.broken
        if (in_scope is None or in_scope(p)) and p not in {*missing, *duplicates, *orphans}
    )
    passed = not (missing or duplicates or orphans or others)
    desc = (
        f"{len(scoped)} files, each with exactly one up-to-date document"
        if passed
        else f"{len(missing)} missing or stale, {len(duplicates)} duplicated, "
        f"{len(orphans)} orphaned documents, {len(others)} other failed actions"
    )
    return CheckOutcome(
        passed,
        desc,
        {
            "files": len(scoped),
            "missing_or_stale": len(missing),
            "duplicates": len(duplicates),
            "orphans": len(orphans),
            "failed_actions": len(others),
            "fixed_by_run": first.metadata["missing_or_stale"]
            + first.metadata["duplicates"]
            + first.metadata["orphans"]
            - len(missing)
            - len(duplicates)
            - len(orphans),
            "sample_missing": missing[:_SAMPLE],
            "sample_duplicates": duplicates[:_SAMPLE],
            "sample_orphans": orphans[:_SAMPLE],
            "sample_failed_actions": others[:_SAMPLE],
        },
    )


def chunks_after_run(
    entries: Sequence[SourceEntry],
    before: Iterable[RemoteDocument],
    evidence: RunEvidence,
    *,
    in_scope: Callable[[str], bool] | None = None,
) -> CheckOutcome:
    """``chunks_healthy`` for the end of a run: documents the run did not touch are judged by
    the listing taken before it; those it uploaded or re-parsed by the run's parse results."""
    untouched = [
        d
        for d in before
        if (p := managed_path(d.meta_fields)) is not None and p not in evidence.fixed
    ]
    first = chunks_healthy(entries, untouched, in_scope=in_scope)
    failed = sorted(
        set(first.metadata["sample_failed"])
        | {p for p in evidence.parse_failed if in_scope is None or in_scope(p)}
    )
    n_failed = first.metadata["failed"] + len(
        [p for p in evidence.parse_failed if in_scope is None or in_scope(p)]
    )
    n_empty = first.metadata["zero_chunks"]
    pending = first.metadata["still_parsing"] + (1 if evidence.parse_pending else 0)
    passed = not (n_failed or n_empty)
    desc = (
        "every document parsed into chunks"
        if passed
        else f"{n_failed} documents failed to parse, {n_empty} non-empty files gave no chunks"
    )
    if evidence.parse_pending:
        desc += " (the run stopped waiting with documents still parsing)"
    return CheckOutcome(
        passed,
        desc,
        {
            "failed": n_failed,
            "zero_chunks": n_empty,
            "still_parsing": pending,
            "sample_failed": failed[:_SAMPLE],
            "sample_zero_chunks": first.metadata["sample_zero_chunks"],
        },
    )


def sync_lag_after_run(
    entries: Sequence[SourceEntry],
    before: Iterable[RemoteDocument],
    evidence: RunEvidence,
    *,
    max_lag: timedelta,
    now: float | None = None,
    in_scope: Callable[[str], bool] | None = None,
) -> CheckOutcome:
    """``sync_lag`` for the end of a run: changes the run brought over are no longer late."""
    pending = [e for e in entries if e.path not in evidence.fixed or e.path in evidence.broken]
    return sync_lag(pending, before, max_lag=max_lag, now=now, in_scope=in_scope)
