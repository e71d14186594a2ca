"""P2: no-op resync of N unchanged files — ours vs its floor.

Setup (not timed): N small files are generated and synced once (parsed, labelled) into a dataset
of a sandbox running in its own process.

Then, alternately and ``repeat`` times each (the best of each is kept), each in a fresh
process (``python -m benchmarks.p2_noop_resync --child ours|floor``), so that its peak RSS is
its own and not the seeding parent's:

* ``floor``: a bare recursive ``os.scandir`` walk collecting ``(path, size, mtime_ns)``, then one
  paged listing of the dataset's documents (raw ``requests``, page size 100, keep-alive), one
  after the other;
* ``ours``: ``sync_source`` over the same folder and dataset; it must change nothing.

Ratio: ``ours / floor`` (goal ≤ 1.2; stretch < 1.0, by overlapping the walk with the listing and
fetching listing pages concurrently). API calls of ours are counted on the wire (goal ≤
⌈N/100⌉ + 5); peak RSS of the process (goal ≤ 300 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CallCounter,
    ceil_div,
    dump,
    generate_tree,
    list_all_documents,
    log,
    sandbox,
    scandir_walk,
    session_for,
)

GOAL_RATIO = 1.2
GOAL_RSS_MB = 300.0
DEFAULT_FILES = 100_000
QUICK_FILES = 20_000


def measure_floor(base_url: str, api_key: str, root: Path, dataset_id: str) -> dict[str, Any]:
    session = session_for(api_key)
    t0 = time.perf_counter()
    files = scandir_walk(str(root))
    t_walk = time.perf_counter() - t0
    docs = list_all_documents(session, base_url, dataset_id)
    seconds = time.perf_counter() - t0
    session.close()
    return {
        "seconds": seconds,
        "walk_seconds": round(t_walk, 3),
        "list_seconds": round(seconds - t_walk, 3),
        "files": len(files),
        "documents": len(docs),
        "requests": ceil_div(max(len(docs), 1), 100),
    }


def measure_ours(client: Any, root: Path, dataset_id: str, *, workers: int) -> dict[str, Any]:
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    counter = CallCounter()
    counter.attach_client(client)
    t0 = time.perf_counter()
    report = sync_source(
        client, LocalFolderSource(root), dataset_id, SyncOptions(max_workers=workers)
    )
    seconds = time.perf_counter() - t0
    client._session.hooks["response"].remove(counter.hook)
    d = report.to_dict()
    return {
        "seconds": seconds,
        "durations": d["durations_s"],
        "counts": {
            k: d[k]
            for k in ("scanned", "unchanged", "uploaded", "replaced", "moved", "deleted", "failed")
        },
        "converged": d["converged"],
        "api_calls": counter.total,
        "calls_by_route": dict(counter.by_route),
    }


def _peak_mb() -> float:
    from benchmarks.common import peak_rss_mb

    return peak_rss_mb()


def child(kind: str, base_url: str, root: Path, dataset_id: str, *, workers: int) -> dict[str, Any]:
    """One measurement in this (fresh) process; the API key comes from ``RFD_BENCH_API_KEY``."""
    api_key = os.environ["RFD_BENCH_API_KEY"]
    if kind == "floor":
        out = measure_floor(base_url, api_key, root, dataset_id)
    else:
        from ragflow_dagster.client import RAGFlowClient

        with RAGFlowClient(base_url, api_key, pool_size=max(16, 2 * workers)) as client:
            out = measure_ours(client, root, dataset_id, workers=workers)
    out["peak_rss_mb"] = _peak_mb()
    return out


def in_child(
    kind: str, base_url: str, api_key: str, root: Path, dataset_id: str, *, workers: int
) -> dict[str, Any]:
    """:func:`child` in a fresh interpreter."""
    cmd = [sys.executable, "-m", "benchmarks.p2_noop_resync", "--child", kind, "--base-url"]
    cmd += [base_url, "--root", str(root), "--dataset", dataset_id, "--workers", str(workers)]
    env = {**os.environ, "RFD_BENCH_API_KEY": api_key}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"P2 {kind} child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def seed(client: Any, root: Path, dataset_id: str, *, workers: int) -> dict[str, Any]:
    """The first sync (not timed as part of the benchmark)."""
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    t0 = time.perf_counter()
    report = sync_source(
        client,
        LocalFolderSource(root),
        dataset_id,
        SyncOptions(max_workers=workers, parse_timeout=1800),
    )
    d = report.to_dict()
    if d["uploaded"] != d["scanned"] or not d["converged"]:
        raise RuntimeError(f"P2 setup sync did not converge: {report.summary()}")
    return {"seconds": round(time.perf_counter() - t0, 1), "uploaded": d["uploaded"]}


def run(
    *,
    files: int = DEFAULT_FILES,
    workers: int = 8,
    repeat: int = 2,
    min_size: int = 64,
    max_size: int = 1024,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Run P2 and return its result record."""
    from ragflow_dagster.client import RAGFlowClient

    with tempfile.TemporaryDirectory(
        prefix="bench-p2-", dir=workdir, ignore_cleanup_errors=True
    ) as scratch:
        tmp = Path(scratch)
        root = tmp / "tree"
        t0 = time.perf_counter()
        _, total = generate_tree(
            root, files, min_size=min_size, max_size=max_size, per_dir=1000, seed=11
        )
        log(f"P2: generated {files} files in {time.perf_counter() - t0:.1f}s")
        result: dict[str, Any] = {"name": "P2 no-op resync", "files": files, "bytes": total}
        with (
            sandbox() as srv,
            RAGFlowClient(srv.base_url, srv.api_key, pool_size=max(16, 2 * workers)) as client,
        ):
            ds = client.create_dataset(f"p2-{int(time.time())}")
            log("P2: seeding (first sync, not timed)")
            result["setup"] = seed(client, root, ds.id, workers=workers)
            log(f"P2: seeded in {result['setup']['seconds']}s")
            floors: list[dict[str, Any]] = []
            ours: list[dict[str, Any]] = []
            args = (srv.base_url, srv.api_key, root, ds.id)
            for i in range(repeat):
                floors.append(in_child("floor", *args, workers=workers))
                ours.append(in_child("ours", *args, workers=workers))
                log(
                    f"P2: round {i + 1}: floor {floors[-1]['seconds']:.2f}s, "
                    f"ours {ours[-1]['seconds']:.2f}s ({ours[-1]['api_calls']} calls)"
                )
        best_floor = min(floors, key=lambda r: r["seconds"])
        best_ours = min(ours, key=lambda r: r["seconds"])
        ratio = best_ours["seconds"] / best_floor["seconds"]
        call_budget = ceil_div(files, 100) + 5
        max_calls = max(r["api_calls"] for r in ours)
        peak_rss = max(r["peak_rss_mb"] for r in ours)
        noop = all(
            r["counts"]["unchanged"] == files
            and r["counts"]["uploaded"] + r["counts"]["replaced"] + r["counts"]["deleted"] == 0
            for r in ours
        )
        result.update(
            floor=best_floor,
            ours=best_ours,
            all_seconds={
                "floor": [round(r["seconds"], 3) for r in floors],
                "ours": [round(r["seconds"], 3) for r in ours],
            },
            ratios={"ours_over_floor": round(ratio, 3)},
            api_calls={"ours_max": max_calls, "budget": call_budget},
            peak_rss_mb={"ours": peak_rss, "floor": max(r["peak_rss_mb"] for r in floors)},
            noop=noop,
            goals={
                "ours_over_floor": {"goal": f"<= {GOAL_RATIO}", "met": ratio <= GOAL_RATIO},
                "stretch_below_floor": {"goal": "< 1.0", "met": ratio < 1.0},
                "peak_rss_mb": {"goal": f"<= {GOAL_RSS_MB:.0f}", "met": peak_rss <= GOAL_RSS_MB},
                "api_calls": {"goal": f"<= {call_budget}", "met": max_calls <= call_budget},
                "nothing_changed": {"goal": "true", "met": noop},
            },
        )
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=DEFAULT_FILES)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_FILES} files")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child", choices=("ours", "floor"), help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        res = child(args.child, args.base_url, Path(args.root), args.dataset, workers=args.workers)
        print(json.dumps(res, default=str))
        return 0
    files = QUICK_FILES if args.quick else args.files
    print(dump(run(files=files, workers=args.workers, repeat=args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
