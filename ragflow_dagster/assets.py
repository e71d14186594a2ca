"""The asset graph of one ingestion: ``source_files`` → ``documents`` → ``chunks``.

Built by :func:`build_ragflow_ingestion`, in the manner of ``dagster-sling`` / ``dagster-dlt``: one
call returns the assets with their checks, the partitions and a job, ready for ``Definitions``.
"""

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import dagster as dg
import pandas as pd

from ragflow_dagster.checks import (
    CheckOutcome,
    RetrievalProbe,
    chunks_healthy,
    documents_match_source,
    retrieval_hits,
    sync_lag,
)
from ragflow_dagster.io_manager import PARTITION_COLUMN, PartitionedFrameIOManager
from ragflow_dagster.partitions import Partitioning, PartitioningKind
from ragflow_dagster.sources import FileFilters, Source, build_inventory, source_from_uri
from ragflow_dagster.sync.engine import SyncOptions, known_files, list_documents, sync_source
from ragflow_dagster.sync.identity import managed_path

FRAMES_IO_MANAGER_KEY = "ragflow_frames_io_manager"
_ACTIONS_TABLE_ROWS = 500
_SAMPLE_ROWS = 20
_COMPACT_ABOVE = 50


@dataclass(frozen=True)
class DatasetConfig:
    """The RAGFlow dataset an ingestion fills, created on first use.

    Example:
        >>> DatasetConfig("handbook", chunk_method="naive", parser_config={"chunk_token_num": 256})
        ... # doctest: +ELLIPSIS
        DatasetConfig(name='handbook', ...)
    """

    name: str
    chunk_method: str | None = "naive"
    parser_config: Mapping[str, Any] | None = None
    embedding_model: str | None = None
    description: str | None = None
    permission: str | None = None


@dataclass(frozen=True)
class RAGFlowIngestion:
    """What :func:`build_ragflow_ingestion` returns."""

    name: str
    source: Source
    dataset: DatasetConfig
    resource_key: str
    partitioning: Partitioning
    assets: Sequence[dg.AssetsDefinition]
    job: "dg.UnresolvedAssetJobDefinition"
    sync_options: SyncOptions
    filters: FileFilters | None
    asset_keys: Mapping[str, dg.AssetKey] = field(default_factory=dict)

    @property
    def partitions_def(self) -> dg.PartitionsDefinition | None:
        return self.partitioning.partitions_def

    def resources(self, *, frames_dir: str | None = None) -> dict[str, Any]:
        """The resources the assets need besides the RAGFlow resource."""
        return {FRAMES_IO_MANAGER_KEY: PartitionedFrameIOManager(base_dir=frames_dir)}


def slugify(name: str) -> str:
    """An asset-key-safe form of a dataset name (``[A-Za-z0-9_]``).

    Example:
        >>> slugify("HR Handbook (2024)")
        'hr_handbook_2024'
    """
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower()
    return slug or "dataset"


def default_freshness() -> dg.FreshnessPolicy:
    """24 h to fail, 6 h to warn: a nightly reconcile keeps it green."""
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=24), warn_window=timedelta(hours=6)
    )


class SyncRunConfig(dg.Config):
    """Run-time switches of the ``documents`` asset (set them in the launchpad)."""

    dry_run: bool = False
    allow_mass_delete: bool = False


def build_ragflow_ingestion(
    *,
    source: Source | str,
    dataset: DatasetConfig | str,
    name: str | None = None,
    resource_key: str = "ragflow",
    filters: FileFilters | None = None,
    partitioning: PartitioningKind = "files",
    shards: int = 64,
    key_prefix: Sequence[str] | None = None,
    group_name: str | None = None,
    sync_options: SyncOptions | None = None,
    freshness: dg.FreshnessPolicy | None = None,
    max_lag: timedelta = timedelta(hours=1),
    retrieval_probes: Sequence[RetrievalProbe] = (),
    export_chunks: bool = False,
    pool: str | None = "ragflow",
    blocking_checks: bool = True,
) -> RAGFlowIngestion:
    """Build the assets, checks and job that keep one RAGFlow dataset in sync with one source.

    Args:
        source: A :class:`~ragflow_dagster.sources.Source`, a folder path or ``s3://bucket/prefix``.
        dataset: The dataset's name or a :class:`DatasetConfig`.
        name: Base of the job, partitions and sensor names (default: the dataset name, slugified).
        resource_key: Key of the :class:`~ragflow_dagster.resource.RAGFlowResource`.
        filters: Which files take part.
        partitioning: ``"files"`` (a dynamic partition per file), ``"shards"`` or ``"none"``.
        shards: Number of hash shards for ``partitioning="shards"``.
        key_prefix: Asset key prefix (default ``["ragflow", <name>]``).
        group_name: Asset group (default ``ragflow_<name>``).
        sync_options: How the sync runs (workers, waiting, guard, ...).
        freshness: Freshness policy of ``documents`` and ``chunks`` (default 24 h fail / 6 h warn).
        max_lag: The sync-lag check fails when a change older than this is still missing.
        retrieval_probes: Optional retrieval smoke tests checked on ``chunks``.
        export_chunks: Put the chunk texts themselves in the ``chunks`` table.
        pool: Dagster concurrency pool of the RAGFlow-facing assets (None: no pool).
        blocking_checks: Failed checks stop downstream assets.

    Returns:
        The :class:`RAGFlowIngestion`.

    Example:
        >>> import dagster as dg
        >>> from ragflow_dagster import RAGFlowResource, build_ragflow_ingestion
        >>> ingestion = build_ragflow_ingestion(source="docs/", dataset="handbook")
        >>> defs = dg.Definitions(
        ...     assets=ingestion.assets, jobs=[ingestion.job],
        ...     resources={"ragflow": RAGFlowResource(base_url="http://127.0.0.1:9380",
        ...                api_key=dg.EnvVar("RAGFLOW_API_KEY")), **ingestion.resources()})
    """
    src = source_from_uri(source) if isinstance(source, str) else source
    ds = DatasetConfig(dataset) if isinstance(dataset, str) else dataset
    slug = slugify(name or ds.name)
    prefix = list(key_prefix) if key_prefix is not None else ["ragflow", slug]
    group = group_name or f"ragflow_{slug}"
    if partitioning == "files":
        parts = Partitioning.files(f"{slug}_files")
    elif partitioning == "shards":
        parts = Partitioning.sharded(shards)
    elif partitioning == "none":
        parts = Partitioning.unpartitioned()
    else:
        raise ValueError(f"partitioning must be 'files', 'shards' or 'none', got {partitioning!r}")
    opts = replace(sync_options or SyncOptions(), filters=filters)
    fresh = freshness if freshness is not None else default_freshness()
    partitions_def = parts.partitions_def
    backfill = dg.BackfillPolicy.single_run() if partitions_def is not None else None
    source_kind = "s3" if src.uri.startswith("s3://") else "file"

    files_key = dg.AssetKey([*prefix, "source_files"])
    docs_key = dg.AssetKey([*prefix, "documents"])
    chunks_key = dg.AssetKey([*prefix, "chunks"])

    docs_checks = [
        dg.AssetCheckSpec(
            "documents_match_source",
            asset=docs_key,
            blocking=blocking_checks,
            description="Every file has exactly one up-to-date managed document; "
            "no orphans, no duplicates.",
        ),
        dg.AssetCheckSpec(
            "sync_lag",
            asset=docs_key,
            description=f"No source change older than {max_lag} is missing.",
        ),
    ]
    chunk_checks = [
        dg.AssetCheckSpec(
            "chunks_healthy",
            asset=chunks_key,
            blocking=blocking_checks,
            description="No document in FAIL/CANCEL; no non-empty file without chunks.",
        ),
    ]
    if retrieval_probes:
        chunk_checks.append(
            dg.AssetCheckSpec(
                "retrieval_smoke_test",
                asset=chunks_key,
                description="Configured questions retrieve their expected document.",
            )
        )

    def _keys(context: dg.AssetExecutionContext) -> list[str] | None:
        """The partition keys of this run; None for an unpartitioned run or one over every
        partition (a full reconcile, which also deletes documents whose partition is gone)."""
        if partitions_def is None or not (
            context.has_partition_key_range or context.has_partition_key
        ):
            return None
        keys = list(context.partition_keys)
        all_keys = partitions_def.get_partition_keys(dynamic_partitions_store=context.instance)
        if len(keys) == len(all_keys) and set(keys) == set(all_keys):
            return None
        return keys

    def _ensure(context: dg.AssetExecutionContext) -> Any:
        resource = getattr(context.resources, resource_key)
        dataset_rec = resource.ensure_dataset(
            ds.name,
            chunk_method=ds.chunk_method,
            parser_config=dict(ds.parser_config) if ds.parser_config else None,
            embedding_model=ds.embedding_model,
            description=ds.description,
        )
        return resource, dataset_rec

    @dg.asset(
        key=files_key,
        group_name=group,
        partitions_def=partitions_def,
        backfill_policy=backfill,
        kinds={"ragflow", source_kind, "pandas"},
        io_manager_key=FRAMES_IO_MANAGER_KEY,
        required_resource_keys={resource_key},
        description=f"Inventory of the files under {src.uri} that take part in the sync "
        "(stat only; sha256 as stored on the RAGFlow side).",
        metadata={"source_uri": src.uri},
    )
    def source_files(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
        resource, dataset_rec = _ensure(context)
        client = resource.get_client()
        known = known_files(list_documents(client, dataset_rec.id))
        inventory = build_inventory(src, filters, known=known, compute_sha256=False)
        scope = parts.scope(_keys(context))
        frame = inventory.to_frame()
        if scope is not None:
            frame = frame[frame["path"].map(scope)].reset_index(drop=True)
        frame[PARTITION_COLUMN] = frame["path"].map(parts.key_for) if len(frame) else []
        skipped = inventory.skipped_frame()
        reasons = skipped["reason"].value_counts().to_dict() if len(skipped) else {}
        return dg.Output(
            frame,
            metadata={
                "dagster/row_count": len(frame),
                "files": len(frame),
                "bytes": int(frame["size"].sum()) if len(frame) else 0,
                "skipped": len(skipped),
                "skipped_by_reason": dg.MetadataValue.json(reasons),
                "listing_complete": inventory.complete,
                "source_uri": src.uri,
                **(
                    {}
                    if _compact(context)
                    else {"sample": _table(frame.head(_SAMPLE_ROWS), ["path", "size", "sha256"])}
                ),
            },
        )

    @dg.asset(
        key=docs_key,
        group_name=group,
        partitions_def=partitions_def,
        backfill_policy=backfill,
        deps=[files_key],
        kinds={"ragflow"},
        pool=pool,
        freshness_policy=fresh,
        check_specs=docs_checks,
        required_resource_keys={resource_key},
        description=f"The RAGFlow dataset '{ds.name}' kept in sync with {src.uri}: uploads, "
        "replacements, moves, deletions.",
        metadata={"dataset": ds.name, "source_uri": src.uri},
    )
    def documents(context: dg.AssetExecutionContext, config: SyncRunConfig):
        resource, dataset_rec = _ensure(context)
        client = resource.get_client()
        scope = parts.scope(_keys(context))
        run_opts = replace(
            opts,
            in_scope=scope,
            dry_run=config.dry_run or opts.dry_run,
            allow_mass_delete=config.allow_mass_delete or opts.allow_mass_delete,
        )
        docs = list_documents(client, dataset_rec.id)
        inventory = build_inventory(src, filters, known=known_files(docs))
        report = sync_source(
            client,
            src,
            dataset_rec.id,
            run_opts,
            dataset_name=dataset_rec.name,
            inventory=inventory,
            documents=docs,
            log=context.log,  # type: ignore[arg-type]
        )
        changed = any(
            report.counts.get(k)
            for k in (
                "uploaded",
                "replaced",
                "moved",
                "deleted",
                "adopted",
                "relabelled",
                "deduplicated",
                "reparsed",
            )
        )
        after = list_documents(client, dataset_rec.id) if changed else docs
        url = resource.dataset_url(dataset_rec.id) if hasattr(resource, "dataset_url") else None
        metadata: dict[str, Any] = {
            **{
                k: v
                for k, v in report.to_dict().items()
                if isinstance(v, (int, float, bool)) and v is not None
            },
            "dataset_id": dataset_rec.id,
            "summary": dg.MetadataValue.md(_markdown(report)),
        }
        if _compact(context):
            context.log.info("sync report: %s", report.to_json(max_outcomes=_ACTIONS_TABLE_ROWS))
        else:
            metadata["report"] = dg.MetadataValue.json(report.to_dict())
            metadata["actions"] = _actions_table(report)
        if url:
            metadata["dataset_url"] = dg.MetadataValue.url(url)
        yield dg.MaterializeResult(metadata=metadata)
        if report.guard_message:
            context.log.error(report.guard_message)
        yield _result(
            "documents_match_source",
            docs_key,
            documents_match_source(inventory.entries, after, in_scope=scope),
        )
        yield _result(
            "sync_lag",
            docs_key,
            sync_lag(inventory.entries, after, max_lag=max_lag, in_scope=scope),
            severity=dg.AssetCheckSeverity.WARN,
        )

    @dg.asset(
        key=chunks_key,
        group_name=group,
        partitions_def=partitions_def,
        backfill_policy=backfill,
        deps=[docs_key],
        kinds={"ragflow", "pandas"},
        pool=pool,
        freshness_policy=fresh,
        check_specs=chunk_checks,
        io_manager_key=FRAMES_IO_MANAGER_KEY,
        required_resource_keys={resource_key},
        description="Parsing finished, summarised per document (run state, chunks, tokens).",
    )
    def chunks(context: dg.AssetExecutionContext):
        resource, dataset_rec = _ensure(context)
        client = resource.get_client()
        scope = parts.scope(_keys(context))
        docs = _wait_parsed(client, dataset_rec.id, scope, opts.parse_timeout if opts.wait else 0)
        rows = []
        for doc in docs:
            path = managed_path(doc.meta_fields)
            if path is None or (scope is not None and not scope(path)):
                continue
            rows.append(
                {
                    "path": path,
                    "document_id": doc.id,
                    "name": doc.name,
                    "run": doc.run,
                    "chunk_count": doc.chunk_count,
                    "token_count": doc.token_count,
                    "size": doc.size,
                    "progress_msg": _last_line(doc.progress_msg),
                    PARTITION_COLUMN: parts.key_for(path),
                }
            )
        frame = pd.DataFrame(
            rows,
            columns=[
                "path",
                "document_id",
                "name",
                "run",
                "chunk_count",
                "token_count",
                "size",
                "progress_msg",
                PARTITION_COLUMN,
            ],
        )
        if export_chunks and len(frame):
            frame = _with_chunk_texts(client, dataset_rec.id, frame)
        by_run = frame["run"].value_counts().to_dict() if len(frame) else {}
        yield dg.Output(
            frame,
            metadata={
                "dagster/row_count": len(frame),
                "documents": len(frame),
                "chunks": int(frame["chunk_count"].sum()) if len(frame) else 0,
                "tokens": int(frame["token_count"].sum()) if len(frame) else 0,
                "by_run_state": dg.MetadataValue.json(by_run),
                **(
                    {}
                    if _compact(context)
                    else {
                        "sample": _table(
                            frame.head(_SAMPLE_ROWS), ["path", "run", "chunk_count", "token_count"]
                        )
                    }
                ),
            },
        )
        yield _result("chunks_healthy", chunks_key, chunks_healthy([], docs, in_scope=scope))
        if retrieval_probes:
            by_id = {d.id: managed_path(d.meta_fields) for d in docs}

            def _retrieve(probe: RetrievalProbe) -> list[str]:
                res = client.retrieve(
                    probe.question, dataset_ids=[dataset_rec.id], page_size=max(probe.top_n, 10)
                )
                return [by_id.get(c.document_id) or "" for c in res.chunks]

            yield _result(
                "retrieval_smoke_test",
                chunks_key,
                retrieval_hits(retrieval_probes, _retrieve),
                severity=dg.AssetCheckSeverity.WARN,
            )

    job = dg.define_asset_job(
        name=f"{slug}_sync",
        selection=dg.AssetSelection.assets(files_key, docs_key, chunks_key),
        description=f"Sync {src.uri} into the RAGFlow dataset '{ds.name}'.",
    )
    return RAGFlowIngestion(
        name=slug,
        source=src,
        dataset=ds,
        resource_key=resource_key,
        partitioning=parts,
        assets=[source_files, documents, chunks],
        job=job,
        sync_options=opts,
        filters=filters,
        asset_keys={"source_files": files_key, "documents": docs_key, "chunks": chunks_key},
    )


def _compact(context: dg.AssetExecutionContext) -> bool:
    """A run over many partitions records one materialization per partition, each carrying the
    metadata: keep it to numbers then (the full report goes to the run log)."""
    return context.has_partition_key_range and len(context.partition_keys) > _COMPACT_ABOVE


def _result(
    name: str,
    key: dg.AssetKey,
    outcome: CheckOutcome,
    *,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=key,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata={
            k: (dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v)
            for k, v in outcome.metadata.items()
        },
    )


def _wait_parsed(client: Any, dataset_id: str, scope: Any, timeout: float) -> list[Any]:
    """The dataset's documents once the in-scope managed ones stopped parsing (or the deadline)."""
    deadline = time.monotonic() + timeout
    interval = 0.2
    while True:
        docs = list_documents(client, dataset_id)
        pending = [
            d
            for d in docs
            if d.run in ("UNSTART", "RUNNING")
            and (p := managed_path(d.meta_fields)) is not None
            and (scope is None or scope(p))
        ]
        if not pending or time.monotonic() >= deadline:
            return docs
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 5.0)


def _with_chunk_texts(client: Any, dataset_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for rec in frame.to_dict("records"):
        for chunk in client.iter_chunks(dataset_id, rec["document_id"]):
            rows.append({**rec, "chunk_id": chunk.id, "content": chunk.content})
    return pd.DataFrame(rows) if rows else frame.assign(chunk_id=None, content=None)


def _table(frame: pd.DataFrame, columns: Sequence[str]) -> dg.MetadataValue:
    cols = [c for c in columns if c in frame.columns]
    records = [
        dg.TableRecord({c: _cell(row[c]) for c in cols}) for row in frame[cols].to_dict("records")
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in cols])
    return dg.MetadataValue.table(records=records, schema=schema)


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def _actions_table(report: Any) -> dg.MetadataValue:
    interesting = [o for o in report.outcomes if o.action != "unchanged" or o.status != "ok"]
    rows = interesting[:_ACTIONS_TABLE_ROWS]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(c, "string") for c in ("path", "action", "status", "doc_id", "detail")
        ]
    )
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
            for o in rows
        ],
        schema=schema,
    )


def _markdown(report: Any) -> str:
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
        f"with {report.api_calls} API calls.",
    ]
    if report.guard_message:
        lines += ["", f"> **{report.guard_message}**"]
    if report.errors:
        lines += ["", "Errors:", *[f"- {e}" for e in report.errors[:20]]]
    return "\n".join(lines)
