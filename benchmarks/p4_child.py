"""P4's child process: sync one folder into one dataset and print its own peak RSS as JSON.

Run by :mod:`benchmarks.p4_memory` as ``python -m benchmarks.p4_child ROOT DATASET_ID``; the
server comes from ``RAGFLOW_BASE_URL`` / ``RAGFLOW_API_KEY``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _hwm_mb() -> float:
    """Peak RSS of this process image (``VmHWM``). Unlike ``ru_maxrss``, which Linux carries
    over an ``exec`` from the forking parent, it starts afresh with the new program."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def main(argv: list[str]) -> int:
    root, dataset_id = argv[0], argv[1]
    parse = "--parse" in argv
    from ragflow_dagster.client import RAGFlowClient
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    baseline = _rss_mb()
    peak_before = _hwm_mb()
    t0 = time.perf_counter()
    with RAGFlowClient(os.environ["RAGFLOW_BASE_URL"], os.environ["RAGFLOW_API_KEY"]) as client:
        report = sync_source(
            client,
            LocalFolderSource(root),
            dataset_id,
            SyncOptions(max_workers=4, parse=parse, wait=parse),
        )
    seconds = time.perf_counter() - t0
    peak = _hwm_mb()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # inherited
    d = report.to_dict()
    print(
        json.dumps(
            {
                "baseline_rss_mb": round(baseline, 1),
                "peak_rss_before_sync_mb": round(peak_before, 1),
                "peak_rss_mb": round(peak, 1),
                "ru_maxrss_mb_incl_parent": round(maxrss, 1),
                "seconds": round(seconds, 2),
                "uploaded": d["uploaded"],
                "failed": d["failed"],
                "bytes_uploaded": d["bytes_uploaded"],
                "errors": d["errors"][:3],
            }
        )
    )
    return 0 if d["uploaded"] == 1 and d["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
