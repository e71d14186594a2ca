"""The Dagster glue of the sensors: the sensor and schedule definitions, the run lookups over an
instance, and the per-dataset pool limit."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg

from ragflow_dagster.sensors.cursor import SensorCursor
from ragflow_dagster.sensors.tick import RunSpec, RunState, SensorSettings, evaluate_tick
from ragflow_dagster.sources.base import SourceError
from ragflow_dagster.sync.identity import shard_key
from ragflow_dagster.translator import DATASET_TAG

if TYPE_CHECKING:
    from ragflow_dagster.partitions import Partitioning
    from ragflow_dagster.sources import FileFilters, Source

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_KEY_TAG = "dagster/run_key"
PARTITION_TAG = "dagster/partition"
RECONCILE_TAG = "ragflow_dagster/reconcile"
"""Tag on runs that act on every partition (``"full"``): the sensor's reconcile runs and the
schedule's. Any successful run of the job carrying it lets the sensor delete the partitions of
removed files it has seen before that run was created."""
REASON_TAG = "ragflow_dagster/reason"
TRIGGER_TAG = "ragflow_dagster/trigger"


class SensedIngestion(Protocol):
    """What the sensor and schedule read from an ingestion
    (:class:`~ragflow_dagster.assets.RAGFlowIngestion` has it all)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> Source: ...
    @property
    def partitioning(self) -> Partitioning: ...
    @property
    def filters(self) -> FileFilters | None: ...
    @property
    def job(self) -> dg.UnresolvedAssetJobDefinition: ...
    @property
    def pool(self) -> str: ...
    @property
    def run_tags(self) -> Mapping[str, str]: ...
    @property
    def asset_keys(self) -> Mapping[str, dg.AssetKey]: ...


_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class InstanceRunLookup:
    """:class:`RunLookup` over a Dagster instance.

    Args:
        instance: The Dagster instance.
        job_name: The ingestion's job.
        run_tags: Tags every run of the dataset carries (the job's dataset tag).
        asset_keys: The ingestion's assets: an in-flight run of any job that materializes one of
            them (e.g. launched from the UI) also makes the dataset busy.

    Example:
        >>> lookup = InstanceRunLookup(dg.DagsterInstance.ephemeral(), "handbook_sync")
        >>> lookup.status("nope", 0.0), lookup.busy()
        ('missing', None)
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        job_name: str,
        *,
        run_tags: Mapping[str, str] | None = None,
        asset_keys: frozenset[dg.AssetKey] = frozenset(),
    ) -> None:
        self.instance = instance
        self.job_name = job_name
        self.run_tags = dict(run_tags or {})
        self.asset_keys = asset_keys

    def busy(self) -> str | None:
        if self.run_tags.get(DATASET_TAG):
            tagged = self.instance.get_runs(
                filters=dg.RunsFilter(
                    tags={DATASET_TAG: self.run_tags[DATASET_TAG]}, statuses=_IN_FLIGHT
                ),
                limit=1,
            )
            if tagged:
                return f"run {tagged[0].run_id[:8]} ({tagged[0].status.value})"
        own = self.instance.get_runs(
            filters=dg.RunsFilter(job_name=self.job_name, statuses=_IN_FLIGHT), limit=1
        )
        if own:
            return f"run {own[0].run_id[:8]} ({own[0].status.value})"
        if self.asset_keys:
            for run in self.instance.get_runs(
                filters=dg.RunsFilter(statuses=_IN_FLIGHT), limit=200
            ):
                if run.asset_selection and run.asset_selection & self.asset_keys:
                    return f"run {run.run_id[:8]} ({run.status.value}) of {run.job_name}"
        return None

    def status(self, run_key: str, since: float) -> RunState:
        own = self.instance.get_runs(
            filters=dg.RunsFilter(job_name=self.job_name, tags={RUN_KEY_TAG: run_key}), limit=10
        )
        full = self.instance.get_runs(
            filters=dg.RunsFilter(
                job_name=self.job_name,
                tags={RECONCILE_TAG: "full"},
                statuses=[dg.DagsterRunStatus.SUCCESS],
                created_after=datetime.fromtimestamp(since, tz=timezone.utc),
            ),
            limit=1,
        )
        statuses = {r.status for r in own}
        if full or dg.DagsterRunStatus.SUCCESS in statuses:
            return "success"
        if statuses & {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED}:
            return "queued"
        if statuses & {
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.CANCELING,
        }:
            return "running"
        if statuses:
            return "failed"
        return "missing"

    def pinned_keys(self) -> frozenset[str]:
        keys: set[str] = set()
        runs = self.instance.get_runs(
            filters=dg.RunsFilter(job_name=self.job_name, statuses=_IN_FLIGHT), limit=1000
        )
        for run in runs:
            for tag in (RANGE_START_TAG, RANGE_END_TAG, PARTITION_TAG):
                value = run.tags.get(tag)
                if value:
                    keys.add(value)
        return frozenset(keys)


def _run_request(spec: RunSpec, *, job_name: str, trigger: str) -> dg.RunRequest:
    tags = {REASON_TAG: spec.reason, TRIGGER_TAG: trigger}
    if spec.range_start is not None and spec.range_end is not None:
        tags[RANGE_START_TAG] = spec.range_start
        tags[RANGE_END_TAG] = spec.range_end
    if spec.reconcile:
        tags[RECONCILE_TAG] = "full"
    return dg.RunRequest(run_key=spec.run_key, job_name=job_name, tags=tags)


def _settings_from(settings: SensorSettings | None, overrides: Mapping[str, Any]) -> SensorSettings:
    base = settings or SensorSettings()
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given) if given else base


def build_ragflow_sensor(
    ingestion: SensedIngestion,
    *,
    name: str | None = None,
    minimum_interval_seconds: int = 30,
    settle_seconds: float | None = None,
    max_partition_adds: int | None = None,
    max_partition_deletes: int | None = None,
    list_budget_seconds: float | None = None,
    settings: SensorSettings | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    description: str | None = None,
) -> dg.SensorDefinition:
    """A sensor that keeps an ingestion's partitions and runs in step with its source.

    Works for a local folder and for an S3 bucket, and for every partitioning (``files``:
    dynamic partitions per file; ``shards``: a run over the changed shards; ``none``: a run
    when anything changed).

    Args:
        ingestion: What :func:`~ragflow_dagster.assets.build_ragflow_ingestion` returned.
        name: Sensor name (default ``<ingestion name>_sensor``).
        minimum_interval_seconds: Seconds between ticks.
        settle_seconds: Files modified more recently than this are left for a later tick
            (default 60).
        max_partition_adds: Partitions added per tick at most (default 1000).
        max_partition_deletes: Partitions deleted per tick at most (default 1000).
        list_budget_seconds: Time a resumable (S3) listing may take per tick (default 35).
        settings: All knobs at once (the keyword arguments above override it).
        default_status: Whether the sensor runs as soon as it is loaded.
        description: Shown in the UI.

    Returns:
        The :class:`dagster.SensorDefinition` (targets ``ingestion.job``).

    Example:
        >>> from ragflow_dagster.assets import build_ragflow_ingestion
        >>> ingestion = build_ragflow_ingestion(source="s3://bucket/docs", dataset="manuals")
        >>> build_ragflow_sensor(ingestion, settle_seconds=120).name
        'manuals_sensor'
    """
    conf = _settings_from(
        settings,
        {
            "settle_seconds": settle_seconds,
            "max_partition_adds": max_partition_adds,
            "max_partition_deletes": max_partition_deletes,
            "list_budget_seconds": list_budget_seconds,
        },
    )
    parts = ingestion.partitioning
    sensor_name = name or f"{ingestion.name}_sensor"
    job_name = ingestion.job.name
    shards = parts.shards if parts.kind == "shards" else conf.digest_shards
    source = ingestion.source
    filters = ingestion.filters

    def evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        ensure_pool_limit(context.instance, ingestion.pool)
        cursor = SensorCursor.decode(context.cursor, mode=parts.kind, shards=shards)
        keys = (
            context.instance.get_dynamic_partitions(parts.name) if parts.kind == "files" else None
        )
        try:
            outcome = evaluate_tick(
                source=source,
                partitioning=parts,
                cursor=cursor,
                settings=conf,
                runs=InstanceRunLookup(
                    context.instance,
                    job_name,
                    run_tags=ingestion.run_tags,
                    asset_keys=frozenset(ingestion.asset_keys.values()),
                ),
                partitions=keys,
                filters=filters,
                name=sensor_name,
            )
        except SourceError as exc:
            return dg.SkipReason(f"cannot list {source.uri}: {exc}")
        context.log.info("%s tick: %s", sensor_name, json.dumps(dict(outcome.stats)))
        requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if outcome.add_keys:
            requests.append(dg.AddDynamicPartitionsRequest(parts.name, list(outcome.add_keys)))
        if outcome.delete_keys:
            requests.append(
                dg.DeleteDynamicPartitionsRequest(parts.name, list(outcome.delete_keys))
            )
        return dg.SensorResult(
            run_requests=[
                _run_request(spec, job_name=job_name, trigger=sensor_name) for spec in outcome.runs
            ],
            dynamic_partitions_requests=requests or None,
            cursor=outcome.cursor.encode(),
            skip_reason=outcome.skip_reason if not outcome.runs else None,
        )

    return dg.SensorDefinition(
        name=sensor_name,
        evaluation_fn=evaluate,
        minimum_interval_seconds=minimum_interval_seconds,
        description=description
        or f"Watches {source.uri} (settle {conf.settle_seconds:g}s, up to "
        f"{conf.max_partition_adds} partition adds / {conf.max_partition_deletes} deletes per "
        "tick) and requests runs of "
        f"{job_name}: one over the files added in a tick, a full reconcile when files changed "
        "or were removed.",
        job=ingestion.job,
        default_status=default_status,
    )


def build_ragflow_reconcile_schedule(
    ingestion: SensedIngestion,
    *,
    cron_schedule: str = "0 2 * * *",
    name: str | None = None,
    execution_timezone: str | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
    description: str | None = None,
) -> dg.ScheduleDefinition:
    """A schedule that runs a full reconcile of the ingestion (nightly by default).

    The run covers every partition (the range from the first to the last dynamic partition,
    every shard, or the unpartitioned assets), so the ``documents`` asset also deletes
    documents whose file is gone. It is tagged ``ragflow_dagster/reconcile: full``, which also
    lets the sensor finish deleting partitions of removed files.

    Args:
        ingestion: What :func:`~ragflow_dagster.assets.build_ragflow_ingestion` returned.
        cron_schedule: When (cron syntax).
        name: Schedule name (default ``<ingestion name>_reconcile_schedule``).
        execution_timezone: Time zone of the cron expression (default UTC).
        default_status: Whether the schedule runs as soon as it is loaded.
        description: Shown in the UI.

    Example:
        >>> from ragflow_dagster.assets import build_ragflow_ingestion
        >>> ingestion = build_ragflow_ingestion(source="docs/", dataset="handbook",
        ...                                     partitioning="shards", shards=16)
        >>> build_ragflow_reconcile_schedule(ingestion, cron_schedule="30 3 * * *").cron_schedule
        '30 3 * * *'
    """
    parts = ingestion.partitioning
    job_name = ingestion.job.name
    schedule_name = name or f"{ingestion.name}_reconcile_schedule"

    def evaluate(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        ensure_pool_limit(context.instance, ingestion.pool)
        try:
            when = context.scheduled_execution_time
        except Exception:  # evaluated outside the daemon (tests, previews)
            when = None
        stamp = when.isoformat() if when is not None else str(int(time.time()))
        tags = {RECONCILE_TAG: "full", REASON_TAG: "schedule", TRIGGER_TAG: schedule_name}
        if parts.kind == "files":
            keys = context.instance.get_dynamic_partitions(parts.name)
            if not keys:
                return dg.SkipReason(f"no partitions of {parts.name} yet (the sensor adds them)")
            tags[RANGE_START_TAG] = keys[0]
            tags[RANGE_END_TAG] = keys[-1]
        elif parts.kind == "shards":
            tags[RANGE_START_TAG] = shard_key(0, parts.shards)
            tags[RANGE_END_TAG] = shard_key(parts.shards - 1, parts.shards)
        return dg.RunRequest(run_key=f"{schedule_name}:{stamp}", job_name=job_name, tags=tags)

    return dg.ScheduleDefinition(
        name=schedule_name,
        cron_schedule=cron_schedule,
        job=ingestion.job,
        execution_fn=evaluate,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description=description
        or f"Full reconcile of {ingestion.source.uri} into RAGFlow ({cron_schedule}).",
    )


__all__ = [
    "PARTITION_TAG",
    "RANGE_END_TAG",
    "RANGE_START_TAG",
    "REASON_TAG",
    "RECONCILE_TAG",
    "RUN_KEY_TAG",
    "TRIGGER_TAG",
    "InstanceRunLookup",
    "SensedIngestion",
    "build_ragflow_reconcile_schedule",
    "build_ragflow_sensor",
    "ensure_pool_limit",
]


def ensure_pool_limit(instance: dg.DagsterInstance, pool: str, *, limit: int = 1) -> bool:
    """Give the concurrency pool ``pool`` a limit of ``limit`` unless it already has one.

    The sensors and schedules of an ingestion call it on every evaluation, so a dataset's
    runs are serialized without any setup (with ``concurrency: pools: granularity: run`` in
    ``dagster.yaml`` the run queue holds the second run; otherwise its step waits for the slot).

    Returns:
        True when the limit was set by this call.

    Example:
        >>> import dagster as dg
        >>> with dg.instance_for_test() as instance:
        ...     ensure_pool_limit(instance, "ragflow_handbook"), ensure_pool_limit(
        ...         instance, "ragflow_handbook")
        (True, False)
    """
    storage = instance.event_log_storage
    if pool in storage.get_concurrency_keys():
        return False
    storage.set_concurrency_slots(pool, limit)
    return True
