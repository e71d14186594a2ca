"""The Dagster events of one sync run: materializations with per-asset (or per-partition)
metadata and check results, all computed from what the run already holds.

Used by :meth:`ragflow_dagster.resource.RAGFlowResource.sync`; nothing here lists the dataset.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ragflow_dagster.checks import (
    CheckOutcome,
    RetrievalProbe,
    RunEvidence,
    chunks_after_run,
    documents_after_run,
    retrieval_hits,
    sync_lag_after_run,
)
from ragflow_dagster.client import Document, RAGFlowClient
from ragflow_dagster.sources import Inventory
from ragflow_dagster.sync.identity import managed_path
from ragflow_dagster.sync.report import SyncReport
from ragflow_dagster.translator import RAGFlowTarget

__all__ = ["METADATA_KEY_STAGE", "RunView", "sync_events"]

METADATA_KEY_STAGE = "dagster_ragflow/stage"
"""Asset metadata key naming the stage (``documents`` / ``chunks``) of an asset."""

_ACTIONS_TABLE_ROWS = 500
_ACTION_COLUMNS = ("path", "action", "status", "doc_id", "detail")


@dataclass(frozen=True)
class RunView:
    """What a step is asked to do: which stages, partitions and checks.

    Attributes:
        target: The ingestion.
        keys: Asset key of each stage present in the step's assets.
        selected: Asset keys selected in this step.
        checks: Check keys selected in this step.
        partition_keys: The run's partition keys (None: unpartitioned).
        full: The run covers the whole source (unpartitioned, or every partition).
    """

    target: RAGFlowTarget
    keys: Mapping[str, dg.AssetKey]
    selected: frozenset[dg.AssetKey]
    checks: frozenset[dg.AssetCheckKey]
    partition_keys: tuple[str, ...] | None
    full: bool

    @classmethod
    def of(cls, context: dg.AssetExecutionContext, target: RAGFlowTarget) -> RunView:
        """Read the step's selection and partitions from its context."""
        keys = {
            str(meta[METADATA_KEY_STAGE]): key
            for key, meta in context.assets_def.metadata_by_key.items()
            if METADATA_KEY_STAGE in meta
        }
        pdef = context.assets_def.partitions_def
        pkeys: tuple[str, ...] | None = None
        full = True
        if pdef is not None and (context.has_partition_key or context.has_partition_key_range):
            pkeys = tuple(context.partition_keys)
            every = pdef.get_partition_keys(dynamic_partitions_store=context.instance)
            full = len(pkeys) == len(every) and set(pkeys) == set(every)
        return cls(
            target=target,
            keys=keys,
            selected=frozenset(context.selected_asset_keys),
            checks=frozenset(context.selected_asset_check_keys),
            partition_keys=pkeys,
            full=full,
        )

    @property
    def scope(self) -> Callable[[str], bool] | None:
        """The path predicate of this run (None: everything)."""
        if self.full or self.partition_keys is None:
            return None
        return self.target.partitioning.scope(self.partition_keys)

    @property
    def per_partition(self) -> bool:
        """Record one materialization per partition, with that partition's own figures (any
        partitioned run; the whole run's report goes to the step log)."""
        return self.partition_keys is not None

    def wants(self, stage: str) -> dg.AssetKey | None:
        key = self.keys.get(stage)
        return key if key is not None and key in self.selected else None

    def wants_check(self, stage: str, name: str) -> dg.AssetCheckKey | None:
        key = self.keys.get(stage)
        if key is None:
            return None
        check = dg.AssetCheckKey(key, name)
        return check if check in self.checks else None


def sync_events(
    view: RunView,
    report: SyncReport,
    *,
    inventory: Inventory,
    before: Sequence[Document],
    client: RAGFlowClient,
    dataset_id: str,
    dataset_url: str | None,
    api_calls: Callable[[], int],
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckResult]:
    """The events of one finished engine run (see :meth:`RAGFlowResource.sync`)."""
    t = view.target
    scope = view.scope
    evidence = RunEvidence.from_report(report)
    entries = inventory.entries
    # The checks read the engine's own last complete listing when it has one (taken after the
    # run's last change: the end state itself); else the listing before the run plus what the
    # run did.
    final = report.final_documents
    seen, seen_evidence = (
        (final, RunEvidence(parse_pending=evidence.parse_pending))
        if final is not None
        else (before, evidence)
    )
    docs_out = documents_after_run(entries, seen, seen_evidence, in_scope=scope)
    chunks_out = chunks_after_run(entries, seen, seen_evidence, in_scope=scope)
    blocking = t.blocking_checks

    docs_key = view.wants("documents")
    if docs_key is not None:
        meta = _documents_metadata(report, dataset_id, dataset_url, api_calls())
        yield from _materialize(view, docs_key, meta, report, inventory, evidence, "documents")
    chunks_key = view.wants("chunks")
    if chunks_key is not None and not report.dry_run:
        meta = _chunks_metadata(report, seen, seen_evidence, scope)
        yield from _materialize(view, chunks_key, meta, report, inventory, evidence, "chunks")

    if report.guard_message:
        dg.get_dagster_logger("ragflow_dagster").error(report.guard_message)
    if (key := view.wants_check("documents", "documents_match_source")) is not None:
        yield _result(key, docs_out, severity=_severity(blocking))
    if (key := view.wants_check("documents", "sync_lag")) is not None:
        lag = sync_lag_after_run(entries, seen, seen_evidence, max_lag=t.max_lag, in_scope=scope)
        yield _result(key, lag, severity=dg.AssetCheckSeverity.WARN)
    if report.dry_run:
        return
    if (key := view.wants_check("chunks", "chunks_healthy")) is not None:
        yield _result(key, chunks_out, severity=_severity(blocking))
    if (key := view.wants_check("chunks", "retrieval_smoke_test")) is not None:
        outcome = _probe(t.retrieval_probes, client, dataset_id, seen, report)
        yield _result(key, outcome, severity=dg.AssetCheckSeverity.WARN)


# ------------------------------------------------------------------------------------------------
# materializations
# ------------------------------------------------------------------------------------------------


def _materialize(
    view: RunView,
    key: dg.AssetKey,
    meta: dict[str, Any],
    report: SyncReport,
    inventory: Inventory,
    evidence: RunEvidence,
    stage: str,
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
    if not view.per_partition:
        yield dg.MaterializeResult(asset_key=key, metadata=meta)
        return
    parts = view.target.partitioning
    wanted = set(view.partition_keys or ())
    files: dict[str, list[Any]] = defaultdict(list)
    for e in inventory.entries:
        pk = parts.key_for(e.path)
        if pk in wanted:
            files[pk].append(e)
    actions: dict[str, Counter[str]] = defaultdict(Counter)
    for o in report.outcomes:
        pk = parts.key_for(o.path)
        if pk in wanted:
            actions[pk][f"{o.action}_{o.status}" if o.status != "ok" else o.action] += 1
    bad = {parts.key_for(p) for p in evidence.broken | evidence.parse_failed}
    changed = {parts.key_for(p) for p in evidence.fixed}
    # A full reconcile over per-file partitions records only what it changed (unchanged
    # partitions keep their last materialization); a run over a range records each partition
    # whose files are there and healthy. Removed files' partitions are never recorded.
    for pk in view.partition_keys or ():
        if pk in bad or (parts.kind == "files" and pk not in files):
            continue
        if view.full and parts.kind == "files" and pk not in changed:
            continue
        entries = files.get(pk, [])
        pmeta: dict[str, Any] = {
            "files": len(entries),
            "bytes": sum(e.size for e in entries),
            "dataset_id": meta.get("dataset_id", ""),
            **{k: v for k, v in sorted(actions[pk].items())},
        }
        if parts.kind == "files" and entries:
            pmeta["path"] = entries[0].path
        if stage == "chunks":
            pmeta["parse_failed"] = sum(1 for e in entries if e.path in evidence.parse_failed)
        yield dg.AssetMaterialization(asset_key=key, partition=pk, metadata=pmeta)


def _documents_metadata(
    report: SyncReport, dataset_id: str, dataset_url: str | None, api_calls: int
) -> dict[str, Any]:
    data = report.to_dict()
    meta: dict[str, Any] = {
        k: v for k, v in data.items() if isinstance(v, (int, float, bool)) and v is not None
    }
    meta["api_calls"] = api_calls
    meta["dataset_id"] = dataset_id
    meta["summary"] = dg.MetadataValue.md(_markdown(report, api_calls))
    meta["report"] = dg.MetadataValue.json(data)
    meta["actions"] = _actions_table(report)
    if data.get("decisions"):  # metadata and parse-rule changes, by change
        meta["decisions"] = dg.MetadataValue.json(data["decisions"])
    if dataset_url:
        meta["dataset_url"] = dg.MetadataValue.url(dataset_url)
    return meta


def _chunks_metadata(
    report: SyncReport,
    before: Sequence[Document],
    evidence: RunEvidence,
    scope: Callable[[str], bool] | None,
) -> dict[str, Any]:
    untouched = [
        d
        for d in before
        if (p := managed_path(d.meta_fields)) is not None
        and p not in evidence.fixed
        and (scope is None or scope(p))
    ]
    c = report.counts
    return {
        "parse_requested": c.get("parse_requested", 0),
        "parsed": c.get("parsed", 0),
        "parse_failed": c.get("parse_failed", 0),
        "still_parsing": c.get("parse_pending", 0),
        "documents_unchanged": len(untouched),
        "chunks_of_unchanged": sum(d.chunk_count or 0 for d in untouched),
        "tokens_of_unchanged": sum(d.token_count or 0 for d in untouched),
        "by_run_state_of_unchanged": dg.MetadataValue.json(
            dict(Counter(d.run or "" for d in untouched))
        ),
    }


def _actions_table(report: SyncReport) -> dg.MetadataValue:
    interesting = [o for o in report.outcomes if o.action != "unchanged" or o.status != "ok"]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in _ACTION_COLUMNS])
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "path": o.path,
                    "action": o.action,
                    "status": o.status,
                    "doc_id": o.doc_id or "",
                    "detail": o.detail[:300],
                }
            )
            for o in interesting[:_ACTIONS_TABLE_ROWS]
        ],
        schema=schema,
    )


def _markdown(report: SyncReport, api_calls: int) -> str:
    c = report.counts
    lines = [
        f"**{report.dataset_name or report.dataset_id}** ← `{report.source_uri}`"
        + (" (dry run)" if report.dry_run else ""),
        "",
        "| scanned | uploaded | replaced | moved | deleted | unchanged | skipped | failed |",
        "|---|---|---|---|---|---|---|---|",
        f"| {c['scanned']} | {c['uploaded']} | {c['replaced']} | {c['moved']} | {c['deleted']} "
        f"| {c['unchanged']} | {c['skipped']} | {c['failed']} |",
        "",
        f"{report.bytes_uploaded / 1e6:.1f} MB uploaded in {report.total_seconds:.1f}s "
        f"with {api_calls} API calls.",
    ]
    verb = {"relabel": "relabel", "rechunk": "re-chunk"}
    for kind, changes in report.decisions().items():
        lines += [
            "",
            *[f"- {verb[kind]} {n}: {change}" for change, n in list(changes.items())[:10]],
        ]
    if report.guard_message:
        lines += ["", f"> **{report.guard_message}**"]
    if report.errors:
        lines += ["", "Errors:", *[f"- {e}" for e in report.errors[:20]]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------------


def _severity(blocking: bool) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN


def _result(
    key: dg.AssetCheckKey, outcome: CheckOutcome, *, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=key.name,
        asset_key=key.asset_key,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata={
            k: (dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v)
            for k, v in outcome.metadata.items()
        },
    )


def _probe(
    probes: Sequence[RetrievalProbe],
    client: RAGFlowClient,
    dataset_id: str,
    before: Sequence[Document],
    report: SyncReport,
) -> CheckOutcome:
    by_id: dict[str, str] = {d.id: p for d in before if (p := managed_path(d.meta_fields))}
    by_id.update({o.doc_id: o.path for o in report.outcomes if o.doc_id})

    def retrieve(probe: RetrievalProbe) -> list[str]:
        res = client.retrieve(
            probe.question, dataset_ids=[dataset_id], page_size=max(probe.top_n, 10)
        )
        return [by_id.get(c.document_id) or "" for c in res.chunks]

    return retrieval_hits(probes, retrieve)
