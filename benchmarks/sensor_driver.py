"""Drive a sensor the way the Dagster daemon does, in process (for P3, P5 and tests/bench).

Each :meth:`SensorDriver.tick` evaluates the sensor with the stored cursor, applies its dynamic
partition requests to the instance, stores the new cursor and hands each run request to
``launch`` (which may execute it, e.g. with :func:`dagster.materialize`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg


@dataclass(frozen=True)
class TickRecord:
    """What one tick did."""

    seconds: float
    runs: tuple[dg.RunRequest, ...]
    added: int
    deleted: int
    skip: str | None
    cursor_bytes: int


@dataclass
class SensorDriver:
    """Evaluates ``sensor`` tick after tick against ``instance``."""

    sensor: dg.SensorDefinition
    instance: dg.DagsterInstance
    launch: Callable[[dg.RunRequest], Any] | None = None
    cursor: str | None = None
    ticks: list[TickRecord] = field(default_factory=list)
    launched: list[dg.RunRequest] = field(default_factory=list)

    def tick(self) -> TickRecord:
        ctx = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        t0 = time.perf_counter()
        result = self.sensor(ctx)
        seconds = time.perf_counter() - t0
        runs: list[dg.RunRequest] = []
        added = deleted = 0
        skip: str | None = None
        if isinstance(result, dg.SkipReason):
            skip = result.skip_message
        elif isinstance(result, dg.SensorResult):
            for req in result.dynamic_partitions_requests or ():
                if isinstance(req, dg.AddDynamicPartitionsRequest):
                    self.instance.add_dynamic_partitions(
                        req.partitions_def_name, list(req.partition_keys)
                    )
                    added += len(req.partition_keys)
                elif isinstance(req, dg.DeleteDynamicPartitionsRequest):
                    for key in req.partition_keys:
                        self.instance.delete_dynamic_partition(req.partitions_def_name, key)
                    deleted += len(req.partition_keys)
            if result.cursor is not None:
                self.cursor = result.cursor
            runs = list(result.run_requests or ())
            if result.skip_reason is not None:
                skip = result.skip_reason.skip_message
        elif result is not None:
            raise TypeError(f"unexpected sensor result {result!r}")
        record = TickRecord(
            seconds=seconds,
            runs=tuple(runs),
            added=added,
            deleted=deleted,
            skip=skip,
            cursor_bytes=len(self.cursor or ""),
        )
        self.ticks.append(record)
        for run in runs:
            self.launched.append(run)
            if self.launch is not None:
                self.launch(run)
        return record

    def until_quiet(self, *, max_ticks: int = 200, quiet_ticks: int = 2) -> int:
        """Tick until ``quiet_ticks`` ticks in a row change nothing; returns the ticks taken."""
        quiet = 0
        for n in range(1, max_ticks + 1):
            rec = self.tick()
            if rec.runs or rec.added or rec.deleted:
                quiet = 0
            else:
                quiet += 1
                if quiet >= quiet_ticks:
                    return n
        raise RuntimeError(f"the sensor was still busy after {max_ticks} ticks")


def run_tags(request: dg.RunRequest) -> dict[str, str]:
    """The tags a daemon would give the run (the request's tags plus its run key)."""
    tags = dict(request.tags or {})
    if request.run_key:
        tags["dagster/run_key"] = request.run_key
    return tags
