"""Helpers for the sensor tests: a RAGFlow-free ingestion and a small stand-in for the daemon.

The sensors only list sources and manage partitions and run requests, so their tests need no
RAGFlow: the job here materialises a no-op asset with the ingestion's partitions, which lets the
tests create real successful (or failed) runs in the instance.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ragflow_dagster.partitions import Partitioning
from ragflow_dagster.sensors import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    RUN_KEY_TAG,
    build_ragflow_sensor,
)
from ragflow_dagster.sources import FileFilters, Source


@dataclass(frozen=True)
class StandInIngestion:
    """The attributes of ``RAGFlowIngestion`` a sensor uses, with a no-op job."""

    name: str
    source: Source
    partitioning: Partitioning
    job: dg.UnresolvedAssetJobDefinition
    assets: list[dg.AssetsDefinition]
    filters: FileFilters | None = None

    @property
    def pool(self) -> str:
        return f"ragflow_{self.name}"

    @property
    def run_tags(self) -> dict[str, str]:
        return {"ragflow_dagster/dataset": self.name}

    @property
    def asset_keys(self) -> dict[str, dg.AssetKey]:
        return {"documents": self.assets[0].key}


_NAMES = itertools.count()


def make_ingestion(
    source: Source,
    *,
    name: str | None = None,
    kind: str = "files",
    shards: int = 8,
    filters: FileFilters | None = None,
) -> StandInIngestion:
    name = name or f"docs{next(_NAMES)}"
    if kind == "files":
        parts = Partitioning.files(f"{name}_files")
    elif kind == "shards":
        parts = Partitioning.sharded(shards)
    else:
        parts = Partitioning.unpartitioned()
    pdef = parts.partitions_def

    @dg.multi_asset(
        name=f"{name}_documents",
        specs=[dg.AssetSpec(f"{name}_documents", partitions_def=pdef)],
        partitions_def=pdef,
        backfill_policy=dg.BackfillPolicy.single_run() if pdef is not None else None,
    )
    def documents(context) -> dg.MaterializeResult:  # unannotated: string annotations
        if context.run.tags.get("test/fail") == "1":
            raise RuntimeError("asked to fail")
        keys = list(context.partition_keys) if pdef is not None else []
        return dg.MaterializeResult(metadata={"partitions": len(keys)})

    job = dg.define_asset_job(
        f"{name}_sync", selection=[documents], tags={"ragflow_dagster/dataset": name}
    )
    return StandInIngestion(name, source, parts, job, [documents], filters)


@dataclass
class Tick:
    runs: list[dg.RunRequest]
    added: list[str]
    deleted: list[str]
    skip: str | None
    cursor: str | None


@dataclass
class Driver:
    """Evaluates a sensor against an instance and applies its partition requests, like the
    daemon does (requests first, then runs)."""

    ingestion: StandInIngestion
    instance: dg.DagsterInstance
    sensor: dg.SensorDefinition
    cursor: str | None = None
    ticks: list[Tick] = field(default_factory=list)

    @property
    def defs(self) -> dg.Definitions:
        return dg.Definitions(
            assets=self.ingestion.assets, jobs=[self.ingestion.job], sensors=[self.sensor]
        )

    def partitions(self) -> list[str]:
        parts = self.ingestion.partitioning
        if parts.kind != "files":
            return []
        return list(self.instance.get_dynamic_partitions(parts.name))

    def tick(self) -> Tick:
        ctx = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        result = self.sensor(ctx)
        added: list[str] = []
        deleted: list[str] = []
        runs: list[dg.RunRequest] = []
        skip = None
        if isinstance(result, dg.SkipReason):
            skip = result.skip_message
            tick = Tick([], [], [], skip, self.cursor)
            self.ticks.append(tick)
            return tick
        assert isinstance(result, dg.SensorResult)
        for req in result.dynamic_partitions_requests or ():
            if isinstance(req, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(req.partitions_def_name, req.partition_keys)
                added.extend(req.partition_keys)
            else:
                for key in req.partition_keys:
                    self.instance.delete_dynamic_partition(req.partitions_def_name, key)
                deleted.extend(req.partition_keys)
        runs = list(result.run_requests or ())
        keys = self.partitions()
        for run in runs:
            start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
            if self.ingestion.partitioning.kind == "files":
                assert start in keys and end in keys, (start, end)
                assert keys.index(start) <= keys.index(end)
        skip = result.skip_reason.skip_message if result.skip_reason else None
        self.cursor = result.cursor
        tick = Tick(runs, added, deleted, skip, result.cursor)
        self.ticks.append(tick)
        return tick

    def run_keys(self, run: dg.RunRequest) -> list[str]:
        """The partition keys a run request covers."""
        keys = self.partitions()
        start, end = run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]
        return keys[keys.index(start) : keys.index(end) + 1]

    def execute(self, run: dg.RunRequest, *, fail: bool = False) -> dg.DagsterRunStatus:
        """Execute a requested run in the instance (as the daemon would launch it)."""
        job = self.defs.resolve_job_def(self.ingestion.job.name)
        tags: dict[str, Any] = {**run.tags, RUN_KEY_TAG: run.run_key}
        if fail:
            tags["test/fail"] = "1"
        result = job.execute_in_process(instance=self.instance, tags=tags, raise_on_error=False)
        return result.dagster_run.status


@pytest.fixture(scope="session")
def instance() -> Iterator[dg.DagsterInstance]:
    """One instance for the session (creating one costs 1-2 s); every ingestion of these tests
    has its own name, so partitions and runs do not mix."""
    with dg.instance_for_test() as inst:
        yield inst


def drive(ingestion: StandInIngestion, instance: dg.DagsterInstance, **kwargs: Any) -> Driver:
    kwargs.setdefault("settle_seconds", 0)
    return Driver(ingestion, instance, build_ragflow_sensor(ingestion, **kwargs))


def write(root: Path, rel: str, text: str = "x", *, age: float = 600.0) -> Path:
    """Write a file and date it ``age`` seconds back (settled)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def kit() -> Any:
    """The helpers above (test modules cannot import conftest under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(make_ingestion=make_ingestion, drive=drive, write=write)
