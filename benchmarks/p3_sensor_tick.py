"""P3: one sensor tick over a large source, in steady state (every file already a partition).

* local: 100,000 files on disk; goal: a tick in at most 3 s.
* S3: N keys in moto's server (own process); the tick vs a bare ``list_objects_v2`` paging loop
  against the same server, measured side by side; goal at most 1.2x.

The tick is the real sensor (``build_ragflow_sensor``) evaluated with ``build_sensor_context`` on
an ephemeral instance, as the daemon would; the first tick (which records the digests) is not
timed, the second (nothing changed) is.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from benchmarks.bench_sources import make_tree
from benchmarks.common import log
from benchmarks.moto_proc import moto_server
from benchmarks.sensor_driver import SensorDriver

GOAL_LOCAL_S = 3.0
GOAL_S3_RATIO = 1.2


def _steady_tick(source: Any, keys: list[str], **sensor_opts: Any) -> dict[str, Any]:
    from ragflow_dagster.assets import build_ragflow_ingestion
    from ragflow_dagster.sensors import build_ragflow_sensor

    ing = build_ragflow_ingestion(source=source, dataset="p3", partitioning="files")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(ing.partitions_def.name, keys)
    sensor = build_ragflow_sensor(ing, settle_seconds=0, **sensor_opts)
    driver = SensorDriver(sensor, instance)
    first = driver.tick()
    second = driver.tick()
    return {
        "first_tick_seconds": round(first.seconds, 3),
        "tick_seconds": round(second.seconds, 3),
        "runs_requested": len(second.runs),
        "cursor_bytes": second.cursor_bytes,
    }


def run(*, files: int = 100_000, keys: int = 20_000, workdir: str | None = None) -> dict[str, Any]:
    """Run P3 and return its result record."""
    from ragflow_dagster.sources import LocalFolderSource, S3Source
    from ragflow_dagster.sync.identity import partition_key

    result: dict[str, Any] = {"name": "P3 sensor tick", "files": files, "keys": keys}
    with tempfile.TemporaryDirectory(
        prefix="bench-p3-", dir=workdir, ignore_cleanup_errors=True
    ) as scratch:
        tmp = Path(scratch)
        make_tree(str(tmp), files)
        src = LocalFolderSource(tmp)
        paths = [e.path for e in src.scan() if hasattr(e, "change_token")]
        log(f"P3: {len(paths)} local files; ticking")
        local = _steady_tick(src, [partition_key(p) for p in paths])
        local.update(files=len(paths), goal_met=local["tick_seconds"] <= GOAL_LOCAL_S)
        result["local"] = local
        log(f"P3:   local tick {local['tick_seconds']}s")

    with moto_server(keys) as srv:
        s3 = srv.client()
        t0 = time.perf_counter()
        listed = 0
        token = None
        while True:
            kw: dict[str, Any] = {"Bucket": srv.bucket, "MaxKeys": 1000}
            if token:
                kw["ContinuationToken"] = token
            page = s3.list_objects_v2(**kw)
            listed += len(page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        bare = time.perf_counter() - t0
        log(f"P3:   bare list_objects_v2 over {listed} keys: {bare:.2f}s")
        source = S3Source(srv.bucket, "", client=s3)
        s3_keys = [partition_key(e.path) for e in source.scan() if hasattr(e, "change_token")]
        tick = _steady_tick(source, s3_keys, list_budget_seconds=3600)
        log(f"P3:   S3 tick {tick['tick_seconds']}s")
        ratio = tick["tick_seconds"] / bare
        result["s3"] = {
            **tick,
            "keys": listed,
            "bare_seconds": round(bare, 3),
            "ratio": round(ratio, 3),
            "goal_met": ratio <= GOAL_S3_RATIO,
        }

    result["ratios"] = {"s3_tick_over_bare": round(ratio, 3)}
    result["goals"] = {
        "local_tick_s": {"goal": f"<= {GOAL_LOCAL_S} s", "met": local["goal_met"]},
        "s3_tick_over_bare": {"goal": f"<= {GOAL_S3_RATIO}", "met": ratio <= GOAL_S3_RATIO},
    }
    return result
