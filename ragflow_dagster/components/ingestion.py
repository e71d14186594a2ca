"""``RAGFlowIngestionComponent``: one YAML file builds the whole graph of one ingestion.

Example ``defs.yaml``::

    type: ragflow_dagster.RAGFlowIngestionComponent
    attributes:
      source: "s3://acme-docs/handbook"
      dataset:
        name: handbook
        chunk_method: naive
        parser_config: {chunk_token_num: 256}
      filters:
        extensions: [pdf, docx, md]
        exclude_dirs: [.git, node_modules]
        max_size: 50MB
      metadata:
        static: [{glob: "hr/**", set: {department: HR}}]
        front_matter: {keys: [title, author]}
      rules:
        - {glob: "faq/**", chunk_method: qa}
      partitioning: none
      sensor: {minimum_interval_seconds: 30, settle_seconds: 60}
      schedule: {cron: "0 2 * * *"}
      freshness: {fail_window: 24h, warn_window: 6h}
      checks: {max_lag: 1h, blocking: true}
      resource: {base_url_env: RAGFLOW_BASE_URL, api_key_env: RAGFLOW_API_KEY}

It builds, through :func:`~ragflow_dagster.assets.build_ragflow_ingestion` (itself a thin user of
``@ragflow_ingestion_assets`` and ``DagsterRAGFlowTranslator``), the external ``source`` asset and
the ``documents`` → ``chunks`` multi-asset with its checks and freshness, the sync job, the sensor,
the reconcile schedule and the RAGFlow resource.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from ragflow_dagster.components.models import (
    ChecksModel,
    DatasetModel,
    FiltersModel,
    FreshnessModel,
    MetadataModel,
    ParseRuleModel,
    ResourceModel,
    RouteModel,
    ScheduleModel,
    SensorModel,
    SourceModel,
    SyncModel,
    parse_duration,
)
from ragflow_dagster.components.scaffolder import RAGFlowIngestionScaffolder

_SHARED: dict[Any, Any] = {}
_SHARED_LOCK = threading.Lock()


def _shared(cls: type, **kwargs: Any) -> Any:
    """One instance per class and settings, so several components providing the same resource
    merge into one set of definitions (Definitions.merge compares resources by identity)."""
    key = (cls, tuple(sorted((k, type(v).__name__, repr(v)) for k, v in kwargs.items())))
    with _SHARED_LOCK:
        obj = _SHARED.get(key)
        if obj is None:
            obj = _SHARED[key] = cls(**kwargs)
        return obj


def _size(value: int | str | None, name: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    from ragflow_dagster.cli import parse_size

    try:
        return parse_size(value)
    except Exception as exc:
        raise ValueError(f"filters.{name}: {exc}") from None


@dg.scaffold_with(RAGFlowIngestionScaffolder)
class RAGFlowIngestionComponent(dg.Component, dg.Model, dg.Resolvable):
    """Keeps one RAGFlow dataset in sync with one folder or S3 prefix.

    Builds the external ``source`` asset and the ``documents`` → ``chunks`` multi-asset (with its
    checks and freshness policy; one engine run per Dagster run), the sync job, a sensor that
    watches the source, a nightly full-reconcile schedule and the RAGFlow resource.

    With ``routes:`` (instead of ``dataset:``) it routes the source into several datasets:
    one ``documents`` → ``chunks`` pair per dataset, each with its own checks, all materialized
    by one step that lists the source once; the sensor then requests that whole step.

    Example:
        >>> component = RAGFlowIngestionComponent(source="/data/handbook", dataset="handbook")
        >>> component.partitioning
        'none'
        >>> routed = RAGFlowIngestionComponent(source="/data/docs", routes=[
        ...     {"glob": "eng/**", "dataset": "eng"}], default_dataset="general")
        >>> routed.build_route_table().dataset_names
        ('eng', 'general')
    """

    source: str | SourceModel = Field(
        description="A folder (relative to this defs.yaml, or absolute) or s3://bucket/prefix; "
        "or a mapping with uri, endpoint_url, region, ..."
    )
    dataset: str | DatasetModel | None = Field(
        default=None, description="The dataset's name, or its settings (unless routes are set)."
    )
    routes: list[RouteModel] | None = Field(
        default=None,
        description="Route the source into several datasets instead of one: "
        "[{glob: 'eng/**', dataset: eng}, ...]; the first match wins. One asset per dataset, "
        "one listing of the source per run.",
    )
    default_dataset: str | DatasetModel | None = Field(
        default=None,
        description="With routes: where files no route matches go (unset: skipped as 'unrouted').",
    )
    name: str | None = Field(
        default=None,
        description="Base of the job, partitions and sensor names (default: the dataset name).",
    )
    filters: FiltersModel | None = Field(default=None, description="Which files take part.")
    metadata: MetadataModel | None = Field(
        default=None, description="Metadata mapped into each document's meta_fields."
    )
    rules: list[ParseRuleModel] = Field(
        default_factory=list,
        description="Per-file parsing rules, first match wins: [{glob, chunk_method, "
        "parser_config}]; else the dataset's default.",
    )
    partitioning: Literal["none", "shards", "files"] = Field(
        default="none",
        description="none: unpartitioned, a reconcile is one run (default); shards: static "
        "hash shards to select and backfill; files: a dynamic partition per file (small trees).",
    )
    shards: int = Field(default=64, description="Number of hash shards (partitioning: shards).")
    sync: SyncModel = Field(default_factory=SyncModel, description="How runs sync.")
    sensor: SensorModel = Field(default_factory=SensorModel, description="The source sensor.")
    schedule: ScheduleModel = Field(
        default_factory=ScheduleModel, description="The full-reconcile schedule."
    )
    freshness: FreshnessModel = Field(
        default_factory=FreshnessModel, description="Freshness policy of documents and chunks."
    )
    checks: ChecksModel = Field(default_factory=ChecksModel, description="Asset checks.")
    resource: ResourceModel = Field(
        default_factory=ResourceModel, description="The RAGFlow server."
    )
    group_name: str | None = Field(default=None, description="Asset group.")
    key_prefix: list[str] | None = Field(
        default=None, description="Asset key prefix (default [ragflow, <name>])."
    )
    pool: str | None = Field(
        default=None,
        description="Concurrency pool of the sync step (default: ragflow_<name>, one per "
        "dataset, limit 1).",
    )

    # -- pieces (override to customise) -------------------------------------------------------
    def build_source(self, context: dg.ComponentLoadContext) -> Any:
        """The :class:`~ragflow_dagster.sources.Source` (relative folders: from defs.yaml)."""
        from ragflow_dagster.sources import source_from_uri

        spec = self.source if isinstance(self.source, SourceModel) else SourceModel(uri=self.source)
        uri = spec.uri.strip()
        if uri.startswith("s3://"):
            kwargs: dict[str, Any] = {}
            if spec.endpoint_url:
                kwargs["endpoint_url"] = spec.endpoint_url
            if spec.region:
                kwargs["region"] = spec.region
            if spec.page_size:
                kwargs["page_size"] = spec.page_size
            return source_from_uri(uri, **kwargs)
        if uri.startswith("file:"):
            return source_from_uri(uri, follow_symlinks=spec.follow_symlinks)
        if urlsplit(uri).scheme not in ("", "s3", "file") and len(urlsplit(uri).scheme) > 1:
            return source_from_uri(uri, storage_options=dict(spec.storage_options or {}))
        path = Path(uri).expanduser()
        if not path.is_absolute():
            path = Path(context.path) / path
        return source_from_uri(str(path), follow_symlinks=spec.follow_symlinks)

    def build_filters(self) -> Any:
        """The :class:`~ragflow_dagster.sources.FileFilters` (None when none are set)."""
        if self.filters is None:
            return None
        from ragflow_dagster.sources import FileFilters

        f = self.filters
        return FileFilters(
            extensions=f.extensions,
            include=f.include,
            exclude=f.exclude,
            exclude_dirs=f.exclude_dirs,
            min_size=_size(f.min_size, "min_size"),
            max_size=_size(f.max_size, "max_size"),
            modified_after=f.modified_after,
            modified_before=f.modified_before,
            max_depth=f.max_depth,
            include_hidden=f.include_hidden,
            mime_types=f.mime_types,
            content_patterns=f.content_patterns,
            min_text_ratio=f.min_text_ratio,
            encoding=f.encoding,
        )

    def build_mapping(self) -> tuple[Any, Any]:
        """The :class:`~ragflow_dagster.sync.metadata.MetadataSpec` and
        :class:`~ragflow_dagster.sync.rules.ParseRules` (``None`` when not set).

        Raises:
            ValueError: A malformed mapping or an unknown chunk method (names the section).
        """
        from pydantic import ValidationError

        from ragflow_dagster.sync.metadata import load_spec
        from ragflow_dagster.sync.rules import load_rules

        try:
            spec = None if self.metadata is None else load_spec(self.metadata.model_dump())
        except ValidationError as exc:
            raise ValueError(f"metadata: {exc}") from None
        try:
            rules = load_rules([r.model_dump() for r in self.rules]) if self.rules else None
        except ValidationError as exc:
            raise ValueError(f"rules: {exc}") from None
        return spec, rules

    def build_sync_options(self) -> Any:
        """The :class:`~ragflow_dagster.sync.engine.SyncOptions` of ``sync:``."""
        from ragflow_dagster.sync.engine import SyncOptions

        s = self.sync
        metadata, rules = self.build_mapping()
        return SyncOptions(
            max_workers=s.max_workers,
            wait=s.wait,
            parse=s.parse,
            parse_timeout=parse_duration(s.parse_timeout).total_seconds(),
            max_delete_fraction=s.max_delete_fraction,
            allow_mass_delete=s.allow_mass_delete,
            delete_removed=s.delete_removed,
            metadata=metadata,
            rules=rules,
        )

    def build_freshness(self) -> dg.FreshnessPolicy:
        """The freshness policy of ``freshness:``."""
        fresh = self.freshness
        return dg.FreshnessPolicy.time_window(
            fail_window=parse_duration(fresh.fail_window),
            warn_window=(
                parse_duration(fresh.warn_window) if fresh.warn_window is not None else None
            ),
        )

    def build_route_table(self) -> Any:
        """The :class:`~ragflow_dagster.sync.routing.RouteTable` of ``routes:`` (None without)."""
        if self.routes is None:
            return None
        from ragflow_dagster.sync.routing import RouteTable

        def ds(value: str | DatasetModel) -> Any:
            return value if isinstance(value, str) else value.model_dump()

        return RouteTable.model_validate(
            {
                "routes": [{"glob": r.glob, "dataset": ds(r.dataset)} for r in self.routes],
                "default_dataset": (
                    ds(self.default_dataset) if self.default_dataset is not None else None
                ),
            }
        )

    def build_routed_ingestion(self, context: dg.ComponentLoadContext) -> Any:
        """The :class:`~ragflow_dagster.routed_assets.RAGFlowRoutedIngestion` of ``routes:``."""
        from ragflow_dagster.routed_assets import build_ragflow_routed_ingestion

        refused = {
            "dataset": self.dataset is not None,
            "partitioning": self.partitioning != "none",
            "key_prefix": self.key_prefix is not None,
            "checks.retrieval_probes": bool(self.checks.retrieval_probes),
        }
        if any(refused.values()):
            given = ", ".join(k for k, v in refused.items() if v)
            raise ValueError(f"routes: cannot be combined with {given}")
        return build_ragflow_routed_ingestion(
            source=self.build_source(context),
            routes=self.build_route_table(),
            name=self.name or Path(context.path).name,
            resource_key=self.resource.key,
            filters=self.build_filters(),
            group_name=self.group_name,
            sync_options=self.build_sync_options(),
            freshness=self.build_freshness(),
            max_lag=parse_duration(self.checks.max_lag),
            pool=self.pool,
            blocking_checks=self.checks.blocking,
        )

    def build_ingestion(self, context: dg.ComponentLoadContext) -> Any:
        """The :class:`~ragflow_dagster.assets.RAGFlowIngestion` (assets, checks, job); with
        ``routes:`` the routed ingestion instead."""
        from ragflow_dagster.assets import DatasetConfig, build_ragflow_ingestion
        from ragflow_dagster.checks import RetrievalProbe

        if self.routes is not None:
            return self.build_routed_ingestion(context)
        if self.dataset is None:
            raise ValueError("give a dataset, or routes")
        if self.default_dataset is not None:
            raise ValueError("default_dataset only applies with routes")
        ds = (
            self.dataset
            if isinstance(self.dataset, DatasetModel)
            else DatasetModel(name=self.dataset)
        )
        return build_ragflow_ingestion(
            source=self.build_source(context),
            dataset=DatasetConfig(
                ds.name,
                chunk_method=ds.chunk_method,
                parser_config=ds.parser_config,
                embedding_model=ds.embedding_model,
                description=ds.description,
                permission=ds.permission,
            ),
            name=self.name,
            resource_key=self.resource.key,
            filters=self.build_filters(),
            partitioning=self.partitioning,
            shards=self.shards,
            key_prefix=self.key_prefix,
            group_name=self.group_name,
            sync_options=self.build_sync_options(),
            freshness=self.build_freshness(),
            max_lag=parse_duration(self.checks.max_lag),
            retrieval_probes=[
                RetrievalProbe(p.question, p.expected_path, p.top_n)
                for p in self.checks.retrieval_probes
            ],
            pool=self.pool,
            blocking_checks=self.checks.blocking,
        )

    def build_sensors(self, ingestion: Any) -> Sequence[dg.SensorDefinition]:
        """The source sensor (none when ``sensor.enabled`` is false)."""
        from ragflow_dagster.sensors import build_ragflow_sensor

        sn = self.sensor
        if not sn.enabled:
            return []
        return [
            build_ragflow_sensor(
                ingestion,
                minimum_interval_seconds=sn.minimum_interval_seconds,
                settle_seconds=sn.settle_seconds,
                max_partition_adds=sn.max_partition_adds,
                max_partition_deletes=sn.max_partition_deletes,
                list_budget_seconds=sn.list_budget_seconds,
                default_status=(
                    dg.DefaultSensorStatus.RUNNING
                    if sn.default_status == "running"
                    else dg.DefaultSensorStatus.STOPPED
                ),
            )
        ]

    def build_schedules(self, ingestion: Any) -> Sequence[dg.ScheduleDefinition]:
        """The full-reconcile schedule (none when ``schedule.enabled`` is false)."""
        from ragflow_dagster.sensors import build_ragflow_reconcile_schedule

        sc = self.schedule
        if not sc.enabled:
            return []
        return [
            build_ragflow_reconcile_schedule(
                ingestion,
                cron_schedule=sc.cron,
                execution_timezone=sc.timezone,
                default_status=(
                    dg.DefaultScheduleStatus.RUNNING
                    if sc.default_status == "running"
                    else dg.DefaultScheduleStatus.STOPPED
                ),
            )
        ]

    def build_resources(self, ingestion: Any) -> dict[str, Any]:
        """The RAGFlow resource (unless ``resource.provide`` is false)."""
        from ragflow_dagster.resource import RAGFlowResource

        resources: dict[str, Any] = {}
        r = self.resource
        if r.provide:
            kwargs: dict[str, Any] = {
                "base_url": r.base_url or dg.EnvVar(r.base_url_env),
                "api_key": r.api_key or dg.EnvVar(r.api_key_env),
            }
            if r.timeout is not None:
                kwargs["timeout"] = r.timeout
            if r.verify_ssl is not None:
                kwargs["verify_ssl"] = r.verify_ssl
            if r.dataset_url_template is not None:
                kwargs["dataset_url_template"] = r.dataset_url_template
            resources[r.key] = _shared(RAGFlowResource, **kwargs)
        return resources

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        ingestion = self.build_ingestion(context)
        return dg.Definitions(
            assets=list(ingestion.assets),
            jobs=[ingestion.job],
            sensors=list(self.build_sensors(ingestion)),
            schedules=list(self.build_schedules(ingestion)),
            resources=self.build_resources(ingestion),
        )


__all__ = ["RAGFlowIngestionComponent"]
