"""P5: Dagster runs the sensor launches for the initial sync of 10,000 files (goal: at most 25).

The real sensor is evaluated tick after tick on an ephemeral instance, its partition requests
applied as the daemon applies them, until two ticks in a row change nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from benchmarks.bench_sources import make_tree
from benchmarks.common import log
from benchmarks.sensor_driver import SensorDriver

GOAL_RUNS = 25


def run(*, files: int = 10_000, workdir: str | None = None) -> dict[str, Any]:
    """Run P5 and return its result record."""
    from ragflow_dagster.assets import build_ragflow_ingestion
    from ragflow_dagster.sensors import build_ragflow_sensor

    with tempfile.TemporaryDirectory(
        prefix="bench-p5-", dir=workdir, ignore_cleanup_errors=True
    ) as scratch:
        tmp = Path(scratch)
        make_tree(str(tmp), files)
        ing = build_ragflow_ingestion(source=str(tmp), dataset="p5", partitioning="files")
        instance = dg.DagsterInstance.ephemeral()
        driver = SensorDriver(build_ragflow_sensor(ing, settle_seconds=0), instance)
        ticks = driver.until_quiet()
        partitions = len(instance.get_dynamic_partitions(ing.partitions_def.name))
        runs = len(driver.launched)
        covered = sum(1 for r in driver.launched if r.tags)
        log(f"P5: {files} files -> {partitions} partitions, {runs} runs in {ticks} ticks")
        return {
            "name": "P5 sensor runs",
            "files": files,
            "partitions": partitions,
            "runs": runs,
            "ranged_runs": covered,
            "ticks": ticks,
            "max_tick_s": round(max(t.seconds for t in driver.ticks), 3),
            "max_cursor_bytes": max(t.cursor_bytes for t in driver.ticks),
            "goals": {"runs": {"goal": f"<= {GOAL_RUNS}", "met": runs <= GOAL_RUNS}},
        }
