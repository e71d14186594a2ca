"""Sensors and schedules that decide *when* an ingestion runs.

* :mod:`~ragflow_dagster.sensors.tick` (with ``tick_files``): the pure tick logic, no Dagster;
* :mod:`~ragflow_dagster.sensors.cursor`: the cursor (kilobytes of digests);
* :mod:`~ragflow_dagster.sensors.builders`: the Dagster glue (sensor, schedule, run lookups,
  the per-dataset pool limit).

Example:
    >>> from ragflow_dagster.assets import build_ragflow_ingestion
    >>> ingestion = build_ragflow_ingestion(source="docs/", dataset="handbook")
    >>> sensor = build_ragflow_sensor(ingestion, minimum_interval_seconds=30, settle_seconds=60)
    >>> schedule = build_ragflow_reconcile_schedule(ingestion, cron_schedule="0 2 * * *")
    >>> sensor.name, schedule.name
    ('handbook_sensor', 'handbook_reconcile_schedule')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragflow_dagster.sensors.builders import (
        PARTITION_TAG,
        RANGE_END_TAG,
        RANGE_START_TAG,
        REASON_TAG,
        RECONCILE_TAG,
        RUN_KEY_TAG,
        TRIGGER_TAG,
        InstanceRunLookup,
        build_ragflow_reconcile_schedule,
        build_ragflow_sensor,
        ensure_pool_limit,
    )
    from ragflow_dagster.sensors.cursor import (
        PassState,
        ReconcileState,
        SensorCursor,
        file_hash,
        key_hash,
    )
    from ragflow_dagster.sensors.tick import (
        RunLookup,
        RunSpec,
        SensorSettings,
        TickOutcome,
        evaluate_tick,
    )

# public name -> module (loaded on first use: importing the pure ``tick`` module must not
# import Dagster through this package)
_EXPORTS: dict[str, str] = {
    "PARTITION_TAG": "ragflow_dagster.sensors.builders",
    "RANGE_END_TAG": "ragflow_dagster.sensors.builders",
    "RANGE_START_TAG": "ragflow_dagster.sensors.builders",
    "REASON_TAG": "ragflow_dagster.sensors.builders",
    "RECONCILE_TAG": "ragflow_dagster.sensors.builders",
    "RUN_KEY_TAG": "ragflow_dagster.sensors.builders",
    "TRIGGER_TAG": "ragflow_dagster.sensors.builders",
    "InstanceRunLookup": "ragflow_dagster.sensors.builders",
    "build_ragflow_reconcile_schedule": "ragflow_dagster.sensors.builders",
    "build_ragflow_sensor": "ragflow_dagster.sensors.builders",
    "ensure_pool_limit": "ragflow_dagster.sensors.builders",
    "PassState": "ragflow_dagster.sensors.cursor",
    "ReconcileState": "ragflow_dagster.sensors.cursor",
    "SensorCursor": "ragflow_dagster.sensors.cursor",
    "file_hash": "ragflow_dagster.sensors.cursor",
    "key_hash": "ragflow_dagster.sensors.cursor",
    "RunLookup": "ragflow_dagster.sensors.tick",
    "RunSpec": "ragflow_dagster.sensors.tick",
    "SensorSettings": "ragflow_dagster.sensors.tick",
    "TickOutcome": "ragflow_dagster.sensors.tick",
    "evaluate_tick": "ragflow_dagster.sensors.tick",
}

__all__ = [
    "PARTITION_TAG",
    "RANGE_END_TAG",
    "RANGE_START_TAG",
    "REASON_TAG",
    "RECONCILE_TAG",
    "RUN_KEY_TAG",
    "TRIGGER_TAG",
    "InstanceRunLookup",
    "PassState",
    "ReconcileState",
    "RunLookup",
    "RunSpec",
    "SensorCursor",
    "SensorSettings",
    "TickOutcome",
    "build_ragflow_reconcile_schedule",
    "build_ragflow_sensor",
    "ensure_pool_limit",
    "evaluate_tick",
    "file_hash",
    "key_hash",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragflow_dagster.sensors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
