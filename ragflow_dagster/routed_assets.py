"""A routed ingestion: one source into several datasets, one multi-asset, one listing per run.

:func:`build_ragflow_routed_ingestion` makes one ``documents`` and one ``chunks`` asset **per
dataset** (keys, groups and kinds from the
:class:`~ragflow_dagster.translator.DagsterRAGFlowTranslator`, so
``ragflow/<dataset>/documents`` by default), each with its own checks and freshness policy, all
depending on one external ``source`` asset and all materialized by **one** step: it lists
the source once and runs the engine once per dataset
(:func:`~ragflow_dagster.sync.routed.sync_routed`). Selecting some datasets' assets syncs only
those datasets (the source is still listed once).

Example:
    >>> import dagster as dg
    >>> from ragflow_dagster.sync.routing import RouteTable
    >>> routes = RouteTable.model_validate({
    ...     "routes": [{"glob": "engineering/**", "dataset": "eng"},
    ...                {"glob": "policies/**", "dataset": "policies"}],
    ...     "default_dataset": "general"})
    >>> ingestion = build_ragflow_routed_ingestion(source="docs/", routes=routes, name="acme")
    >>> sorted(k.to_user_string() for k in ingestion.assets[1].keys)[:2]
    ['ragflow/eng/chunks', 'ragflow/eng/documents']
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import dagster as dg

from ragflow_dagster.asset_decorator import get_ragflow_check_specs, get_ragflow_specs
from ragflow_dagster.client.ensure import settings_of
from ragflow_dagster.events import METADATA_KEY_STAGE
from ragflow_dagster.partitions import Partitioning
from ragflow_dagster.sources import FileFilters, Source, source_from_uri
from ragflow_dagster.sync.engine import SyncOptions
from ragflow_dagster.sync.routing import RouteDataset, RouteTable
from ragflow_dagster.translator import (
    DagsterRAGFlowTranslator,
    DatasetConfig,
    RAGFlowTarget,
    dataset_tag,
    slugify,
)

__all__ = [
    "METADATA_KEY_ROUTED",
    "METADATA_KEY_ROUTE_DATASET",
    "RAGFlowRoutedIngestion",
    "RAGFlowRoutedTarget",
    "build_ragflow_routed_ingestion",
    "get_ragflow_routed_specs",
    "ragflow_routed_ingestion_assets",
]

METADATA_KEY_ROUTED = "dagster_ragflow/routed_target"
"""Asset metadata key holding the :class:`RAGFlowRoutedTarget` (read back by
:meth:`ragflow_dagster.resource.RAGFlowResource.sync_routed`)."""

METADATA_KEY_ROUTE_DATASET = "dagster_ragflow/route_dataset"
"""Asset metadata key naming the dataset an asset of a routed ingestion stands for."""


@dataclass(frozen=True)
class RAGFlowRoutedTarget:
    """What one routed ingestion syncs: a source into the datasets of a route table.

    Attributes:
        name: Base of the job, pool and sensor names (slug).
        source: Where the files live.
        routes: Which files go to which dataset (first match wins).
        sync_options: How the engine runs (filters included), the same for every dataset.
        max_lag: The ``sync_lag`` checks fail when a change older than this is still missing.
        blocking_checks: Failed ERROR checks fail the step.

    Example:
        >>> t = RAGFlowRoutedTarget.create(source="docs/", name="Acme", routes={
        ...     "routes": [{"glob": "eng/**", "dataset": "Eng Docs"}]})
        >>> t.name, t.pool, t.dataset_target("Eng Docs").name
        ('acme', 'ragflow_acme', 'eng_docs')
    """

    name: str
    source: Source
    routes: RouteTable
    sync_options: SyncOptions = field(default_factory=SyncOptions)
    max_lag: timedelta = timedelta(hours=1)
    blocking_checks: bool = True

    @classmethod
    def create(
        cls,
        *,
        source: Source | str,
        routes: RouteTable | Mapping[str, Any],
        name: str,
        filters: FileFilters | None = None,
        sync_options: SyncOptions | None = None,
        max_lag: timedelta = timedelta(hours=1),
        blocking_checks: bool = True,
    ) -> "RAGFlowRoutedTarget":
        """Build a routed target from a source (or its URI) and routes (or their mapping)."""
        table = routes if isinstance(routes, RouteTable) else RouteTable.model_validate(routes)
        src = source_from_uri(source) if isinstance(source, str) else source
        opts = sync_options or SyncOptions()
        if filters is not None:
            opts = replace(opts, filters=filters)
        target = cls(
            name=slugify(name),
            source=src,
            routes=table,
            sync_options=opts,
            max_lag=max_lag,
            blocking_checks=blocking_checks,
        )
        slugs = [slugify(d) for d in table.dataset_names]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"routes: dataset names {table.dataset_names} give clashing keys")
        return target

    @property
    def pool(self) -> str:
        """The concurrency pool (limit 1) of this ingestion's step."""
        return f"ragflow_{self.name}"

    @property
    def source_kind(self) -> str:
        return "s3" if self.source.uri.startswith("s3://") else "file"

    def dataset_target(self, dataset: str) -> RAGFlowTarget:
        """The single-dataset view of one routed dataset (what the translator and checks see)."""
        ds = next(d for d in self.routes.datasets if d.name == dataset)
        return RAGFlowTarget(
            name=slugify(ds.name),
            source=self.source,
            dataset=_dataset_config(ds),
            sync_options=self.sync_options,
            partitioning=Partitioning.unpartitioned(),
            max_lag=self.max_lag,
            blocking_checks=self.blocking_checks,
        )

    def source_target(self) -> RAGFlowTarget:
        """The target the external ``source`` asset is drawn from (named after the ingestion)."""
        return RAGFlowTarget(
            name=self.name,
            source=self.source,
            dataset=DatasetConfig(self.name),
            sync_options=self.sync_options,
        )


def _dataset_config(ds: RouteDataset) -> DatasetConfig:
    return DatasetConfig(ds.name, **settings_of(ds))


def get_ragflow_routed_specs(
    target: RAGFlowRoutedTarget,
    *,
    translator: DagsterRAGFlowTranslator | None = None,
    freshness: dg.FreshnessPolicy | None = None,
) -> tuple[dg.AssetSpec, list[dg.AssetSpec], list[dg.AssetCheckSpec]]:
    """The external ``source`` spec, the ``documents``/``chunks`` specs of every dataset (each
    ``documents`` depending on that one source) and every dataset's checks.

    Example:
        >>> t = RAGFlowRoutedTarget.create(source="docs/", name="acme",
        ...     routes={"routes": [{"glob": "eng/**", "dataset": "eng"}]})
        >>> source, specs, checks = get_ragflow_routed_specs(t)
        >>> source.key.path, [s.key.path[-2:] for s in specs], sorted({c.name for c in checks})
        (['ragflow', 'acme', 'source'], [['eng', 'documents'], ['eng', 'chunks']], \
['chunks_healthy', 'documents_match_source', 'sync_lag'])
    """
    tr = translator or DagsterRAGFlowTranslator()
    source_spec = tr.get_asset_spec(target.source_target().props("source")).replace_attributes(
        description=f"The files under {target.source.uri}, routed into "
        f"{len(target.routes.dataset_names)} datasets (listed once by each sync, never copied).",
    )
    specs: list[dg.AssetSpec] = []
    checks: list[dg.AssetCheckSpec] = []
    for name in target.routes.dataset_names:
        ds_target = target.dataset_target(name)
        own = get_ragflow_specs(ds_target, translator=tr, freshness=freshness)
        # the single-dataset default source key would name a source per dataset: there is one
        own = [
            s.replace_attributes(deps=[source_spec.key])
            if s.metadata[METADATA_KEY_STAGE] == "documents"
            else s
            for s in own
        ]
        own = [
            s.merge_attributes(
                metadata={METADATA_KEY_ROUTED: target, METADATA_KEY_ROUTE_DATASET: name}
            )
            for s in own
        ]
        specs.extend(own)
        checks.extend(get_ragflow_check_specs(ds_target, own))
    return source_spec, specs, checks


def ragflow_routed_ingestion_assets(
    *,
    target: RAGFlowRoutedTarget,
    translator: DagsterRAGFlowTranslator | None = None,
    name: str | None = None,
    freshness: dg.FreshnessPolicy | None = None,
    pool: str | None = None,
    op_tags: Mapping[str, Any] | None = None,
    required_resource_keys: set[str] | None = None,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """Build the multi-asset of a routed ingestion (every dataset's assets) around a body.

    Example:
        >>> from ragflow_dagster import RAGFlowResource
        >>> t = RAGFlowRoutedTarget.create(source="docs/", name="acme",
        ...     routes={"routes": [{"glob": "eng/**", "dataset": "eng"}]})
        >>> @ragflow_routed_ingestion_assets(target=t)
        ... def acme(context: dg.AssetExecutionContext, ragflow: RAGFlowResource):
        ...     yield from ragflow.sync_routed(context=context)
        >>> len(acme.keys), len(acme.check_keys)
        (2, 3)
    """
    _, specs, checks = get_ragflow_routed_specs(target, translator=translator, freshness=freshness)
    return dg.multi_asset(
        name=name or f"{target.name}_routed_ingestion",
        specs=[s.replace_attributes(skippable=True) for s in specs],
        check_specs=checks,
        can_subset=True,
        pool=pool or target.pool,
        op_tags=op_tags,
        required_resource_keys=required_resource_keys,
    )


@dataclass(frozen=True)
class RAGFlowRoutedIngestion:
    """What :func:`build_ragflow_routed_ingestion` returns: put ``assets`` and ``job`` in
    ``Definitions``. It has what the sensor and schedule builders read (unpartitioned: a
    sensor tick requests the whole multi-asset, every dataset, in one run).

    Attributes:
        target: What is synced, and how.
        resource_key: Key of the :class:`~ragflow_dagster.resource.RAGFlowResource`.
        assets: The external ``source`` spec and the multi-asset.
        job: The sync job (tagged with the ingestion's name).
        dataset_keys: Per dataset name, the key of its ``documents`` and ``chunks``.
    """

    target: RAGFlowRoutedTarget
    resource_key: str
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec]
    job: "dg.UnresolvedAssetJobDefinition"
    dataset_keys: Mapping[str, Mapping[str, dg.AssetKey]] = field(default_factory=dict)
    source_key: dg.AssetKey | None = None

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def source(self) -> Source:
        return self.target.source

    @property
    def routes(self) -> RouteTable:
        return self.target.routes

    @property
    def partitioning(self) -> Partitioning:
        return Partitioning.unpartitioned()

    @property
    def partitions_def(self) -> None:
        return None

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
    def run_tags(self) -> dict[str, str]:
        return dataset_tag(self.target.name)

    @property
    def asset_keys(self) -> dict[str, dg.AssetKey]:
        """Every key: ``source`` and ``<dataset>/documents``, ``<dataset>/chunks``."""
        keys: dict[str, dg.AssetKey] = {}
        if self.source_key is not None:
            keys["source"] = self.source_key
        for ds, stages in self.dataset_keys.items():
            for stage, key in stages.items():
                keys[f"{ds}/{stage}"] = key
        return keys


def build_ragflow_routed_ingestion(
    *,
    source: Source | str,
    routes: RouteTable | Mapping[str, Any],
    name: str,
    resource_key: str = "ragflow",
    filters: FileFilters | None = None,
    group_name: str | None = None,
    translator: DagsterRAGFlowTranslator | None = None,
    sync_options: SyncOptions | None = None,
    freshness: dg.FreshnessPolicy | None = None,
    max_lag: timedelta = timedelta(hours=1),
    pool: str | None = None,
    blocking_checks: bool = True,
) -> RAGFlowRoutedIngestion:
    """Build the assets, checks and job that route one source into several datasets.

    Args:
        source: A :class:`~ragflow_dagster.sources.Source`, a folder path or a URI.
        routes: A :class:`~ragflow_dagster.sync.routing.RouteTable` or its mapping
            (``{"routes": [{"glob": "eng/**", "dataset": "eng"}, ...], "default_dataset": ...}``).
        name: Base of the job, pool, group and sensor names.
        resource_key: Key of the :class:`~ragflow_dagster.resource.RAGFlowResource`.
        filters: Which files take part (before routing).
        group_name: Asset group of every dataset's assets (default ``ragflow_<name>``).
        translator: A custom translator (then ``group_name`` is ignored); its default keys are
            ``ragflow/<dataset>/documents`` and ``.../chunks``.
        sync_options: How the sync runs (workers, waiting, guard, ...), for every dataset.
        freshness: Freshness policy of every ``documents`` and ``chunks`` (default 24 h / 6 h).
        max_lag: The sync-lag checks fail when a change older than this is still missing.
        pool: Concurrency pool of the step (default ``ragflow_<name>``).
        blocking_checks: Failed checks fail the step.

    Returns:
        The :class:`RAGFlowRoutedIngestion`.

    Example:
        >>> from ragflow_dagster import RAGFlowResource
        >>> ingestion = build_ragflow_routed_ingestion(source="docs/", name="acme", routes={
        ...     "routes": [{"glob": "eng/**", "dataset": "eng"}], "default_dataset": "general"})
        >>> defs = dg.Definitions(assets=ingestion.assets, jobs=[ingestion.job],
        ...     resources={"ragflow": RAGFlowResource(base_url="http://127.0.0.1:9380",
        ...                api_key=dg.EnvVar("RAGFLOW_API_KEY"))})
        >>> sorted(ingestion.dataset_keys)
        ['eng', 'general']
    """
    from ragflow_dagster.assets import SyncRunConfig, default_freshness

    target = RAGFlowRoutedTarget.create(
        source=source,
        routes=routes,
        name=name,
        filters=filters,
        sync_options=sync_options,
        max_lag=max_lag,
        blocking_checks=blocking_checks,
    )
    tr = translator or DagsterRAGFlowTranslator(group_name=group_name or f"ragflow_{target.name}")
    fresh = freshness if freshness is not None else default_freshness()

    @ragflow_routed_ingestion_assets(
        target=target,
        translator=tr,
        name=f"{target.name}_routed_ingestion",
        freshness=fresh,
        pool=pool,
        required_resource_keys={resource_key},
    )
    def _sync(context: dg.AssetExecutionContext, config: SyncRunConfig) -> Any:
        ragflow = getattr(context.resources, resource_key)
        yield from ragflow.sync_routed(
            context=context, dry_run=config.dry_run, allow_mass_delete=config.allow_mass_delete
        )

    source_spec, _, _ = get_ragflow_routed_specs(target, translator=tr, freshness=fresh)
    dataset_keys: dict[str, dict[str, dg.AssetKey]] = {}
    for key, meta in _sync.metadata_by_key.items():
        ds = str(meta[METADATA_KEY_ROUTE_DATASET])
        dataset_keys.setdefault(ds, {})[str(meta[METADATA_KEY_STAGE])] = key
    ordered = {d: dataset_keys[d] for d in target.routes.dataset_names}
    job = dg.define_asset_job(
        name=f"{target.name}_sync",
        selection=dg.AssetSelection.assets(*_sync.keys),
        tags=dataset_tag(target.name),
        description=f"Route {target.source.uri} into the RAGFlow datasets "
        + ", ".join(repr(d) for d in target.routes.dataset_names)
        + " (one listing of the source per run).",
    )
    return RAGFlowRoutedIngestion(
        target=target,
        resource_key=resource_key,
        assets=[source_spec, _sync],
        job=job,
        dataset_keys=ordered,
        source_key=source_spec.key,
    )
