"""One ingestion in one call: :func:`build_ragflow_ingestion`.

A thin user of :func:`~ragflow_dagster.asset_decorator.ragflow_ingestion_assets` and
:class:`~ragflow_dagster.translator.DagsterRAGFlowTranslator`: the external ``source`` asset, the
``documents`` → ``chunks`` multi-asset (one engine run per Dagster run) with its checks, and a
job tagged with the dataset (one run per dataset at a time).
"""

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dagster as dg

from ragflow_dagster.asset_decorator import get_ragflow_source_spec, ragflow_ingestion_assets
from ragflow_dagster.checks import RetrievalProbe
from ragflow_dagster.partitions import Partitioning, PartitioningKind
from ragflow_dagster.resource import RAGFlowResource
from ragflow_dagster.sources import FileFilters, Source
from ragflow_dagster.sync.engine import SyncOptions
from ragflow_dagster.sync.metadata import MetadataSpec, load_spec
from ragflow_dagster.sync.rules import ParseRules, load_rules
from ragflow_dagster.translator import (
    DagsterRAGFlowTranslator,
    DatasetConfig,
    RAGFlowTarget,
    dataset_tag,
    slugify,
)

__all__ = [
    "DatasetConfig",
    "RAGFlowIngestion",
    "SyncRunConfig",
    "build_ragflow_ingestion",
    "default_freshness",
    "slugify",
]


@dataclass(frozen=True)
class RAGFlowIngestion:
    """What :func:`build_ragflow_ingestion` returns: put ``assets`` and ``job`` in
    ``Definitions``.

    Attributes:
        target: What is synced, and how.
        resource_key: Key of the :class:`~ragflow_dagster.resource.RAGFlowResource`.
        assets: The external ``source`` spec and the ``documents``/``chunks`` multi-asset.
        job: The sync job (tagged with the dataset).
        asset_keys: ``source``, ``documents`` and ``chunks`` keys.
    """

    target: RAGFlowTarget
    resource_key: str
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec]
    job: "dg.UnresolvedAssetJobDefinition"
    asset_keys: Mapping[str, dg.AssetKey] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def source(self) -> Source:
        return self.target.source

    @property
    def dataset(self) -> DatasetConfig:
        return self.target.dataset

    @property
    def partitioning(self) -> Partitioning:
        return self.target.partitioning

    @property
    def filters(self) -> FileFilters | None:
        return self.target.sync_options.filters

    @property
    def sync_options(self) -> SyncOptions:
        return self.target.sync_options

    @property
    def pool(self) -> str:
        return self.target.pool

    @property
    def partitions_def(self) -> dg.PartitionsDefinition | None:
        return self.target.partitioning.partitions_def

    @property
    def run_tags(self) -> dict[str, str]:
        """The tags of this ingestion's runs (the per-dataset run limit keys on them)."""
        return dataset_tag(self.target.name)


def default_freshness() -> dg.FreshnessPolicy:
    """24 h to fail, 6 h to warn: a nightly reconcile keeps it green."""
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=24), warn_window=timedelta(hours=6)
    )


class SyncRunConfig(dg.Config):
    """Run-time switches of a sync (set them in the launchpad)."""

    dry_run: bool = False
    allow_mass_delete: bool = False


def build_ragflow_ingestion(
    *,
    source: Source | str,
    dataset: DatasetConfig | str,
    name: str | None = None,
    resource_key: str = "ragflow",
    filters: FileFilters | None = None,
    partitioning: PartitioningKind = "none",
    shards: int = 64,
    key_prefix: Sequence[str] | None = None,
    group_name: str | None = None,
    translator: DagsterRAGFlowTranslator | None = None,
    sync_options: SyncOptions | None = None,
    freshness: dg.FreshnessPolicy | None = None,
    max_lag: timedelta = timedelta(hours=1),
    retrieval_probes: Sequence[RetrievalProbe] = (),
    pool: str | None = None,
    blocking_checks: bool = True,
    metadata: MetadataSpec | Mapping[str, Any] | None = None,
    rules: ParseRules | Sequence[Mapping[str, Any]] | None = None,
) -> RAGFlowIngestion:
    """Build the assets, checks and job that keep one RAGFlow dataset in sync with one source.

    Args:
        source: A :class:`~ragflow_dagster.sources.Source`, a folder path or ``s3://bucket/prefix``.
        dataset: The dataset's name or a :class:`DatasetConfig`.
        name: Base of the job, pool and sensor names (default: the dataset name, slugified).
        resource_key: Key of the :class:`~ragflow_dagster.resource.RAGFlowResource`.
        filters: Which files take part.
        partitioning: ``"none"`` (default: a reconcile is one run), ``"shards"`` (static hash
            shards to select and backfill) or ``"files"`` (a dynamic partition per file; opt-in
            for small trees).
        shards: Number of hash shards for ``partitioning="shards"``.
        key_prefix: Asset key prefix (default ``["ragflow", <name>]``).
        group_name: Asset group (default ``ragflow_<name>``).
        translator: A custom translator (then ``key_prefix``/``group_name`` are ignored).
        sync_options: How the sync runs (workers, waiting, guard, ...).
        freshness: Freshness policy of ``documents`` and ``chunks`` (default 24 h fail / 6 h warn).
        max_lag: The sync-lag check fails when a change older than this is still missing.
        retrieval_probes: Optional retrieval smoke tests checked on ``chunks``.
        pool: Concurrency pool of the sync step (default: ``ragflow_<name>``, one per dataset).
        blocking_checks: Failed checks fail the step.
        metadata: The metadata mapping (:class:`~ragflow_dagster.sync.metadata.MetadataSpec`
            or its mapping form) merged into each document's ``meta_fields``.
        rules: Per-file parsing rules (:class:`~ragflow_dagster.sync.rules.ParseRules` or a
            list of ``{glob, chunk_method, parser_config}``); unknown methods fail here.

    Returns:
        The :class:`RAGFlowIngestion`.

    Example:
        >>> import dagster as dg
        >>> from ragflow_dagster import RAGFlowResource, build_ragflow_ingestion
        >>> ingestion = build_ragflow_ingestion(source="docs/", dataset="handbook")
        >>> defs = dg.Definitions(
        ...     assets=ingestion.assets, jobs=[ingestion.job],
        ...     resources={"ragflow": RAGFlowResource(base_url="http://127.0.0.1:9380",
        ...                api_key=dg.EnvVar("RAGFLOW_API_KEY"))})
    """
    ds = DatasetConfig(dataset) if isinstance(dataset, str) else dataset
    slug = slugify(name or ds.name)
    if metadata is not None or rules is not None:
        base = sync_options or SyncOptions()
        sync_options = dataclasses.replace(
            base,
            metadata=load_spec(metadata) if metadata is not None else base.metadata,
            rules=load_rules(rules) if rules is not None else base.rules,
        )
    target = RAGFlowTarget.create(
        source=source,
        dataset=ds,
        name=slug,
        filters=filters,
        sync_options=sync_options,
        partitioning=Partitioning.of(partitioning, name=f"{slug}_files", shards=shards),
        max_lag=max_lag,
        retrieval_probes=retrieval_probes,
        blocking_checks=blocking_checks,
    )
    tr = translator or DagsterRAGFlowTranslator(key_prefix=key_prefix, group_name=group_name)
    fresh = freshness if freshness is not None else default_freshness()
    # The step is named after the asset it is first about (what demo.py and log readers look
    # up, as for a single @asset); it materializes chunks in the same run.
    op_name = tr.get_asset_spec(target.props("documents")).key.to_python_identifier()

    @ragflow_ingestion_assets(
        target=target,
        translator=tr,
        name=op_name,
        freshness=fresh,
        pool=pool,
        required_resource_keys={resource_key},
    )
    def _sync(context: dg.AssetExecutionContext, config: SyncRunConfig) -> Any:
        ragflow: RAGFlowResource = getattr(context.resources, resource_key)
        yield from ragflow.sync(
            context=context, dry_run=config.dry_run, allow_mass_delete=config.allow_mass_delete
        )

    source_spec = get_ragflow_source_spec(target, translator=tr)
    keys = {"source": source_spec.key}
    for key, meta in _sync.metadata_by_key.items():
        keys[str(meta["dagster_ragflow/stage"])] = key
    job = dg.define_asset_job(
        name=f"{slug}_sync",
        selection=dg.AssetSelection.assets(*_sync.keys),
        tags=dataset_tag(slug),
        description=f"Sync {target.source.uri} into the RAGFlow dataset '{ds.name}'.",
    )
    return RAGFlowIngestion(
        target=target,
        resource_key=resource_key,
        assets=[source_spec, _sync],
        job=job,
        asset_keys=keys,
    )
