"""P7: a no-op reconcile through the Dagster job vs the headless engine.

Setup (not timed): two trees (10 files, and N files) are generated and synced once into two
datasets of a sandbox running in its own process.

Then each contestant runs in a fresh child process (imports excluded from the time; the peak RSS
of the child is reported), ``repeat`` times per tree (the best is kept):

* ``engine``: what the headless CLI does, ``ensure_dataset`` + ``sync_source``;
* ``dagster``: the unpartitioned ``build_ragflow_ingestion`` job, built into ``Definitions`` and
  run with ``execute_in_process`` on an ephemeral instance (one step: ``RAGFlowResource.sync``).

The fixed cost of each is its time at 10 files; the marginal cost per file is
``(t(N) - t(10)) / (N - 10)``. Goals: Dagster's marginal cost ≤ 1.5× the engine's; Dagster's
API calls (counted on the wire) ≤ the engine's + 5; both change nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import CallCounter, dump, generate_tree, log, sandbox

GOAL_MARGINAL_RATIO = 1.5
CALL_SLACK = 5
DEFAULT_FILES = 10_000
SMALL = 10


# ------------------------------------------------------------------------------------------------
# children
# ------------------------------------------------------------------------------------------------


def _child_engine(root: str, dataset: str, base_url: str, api_key: str) -> dict[str, Any]:
    from ragflow_dagster.client import RAGFlowClient, ensure_dataset
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    counter = CallCounter()
    t0 = time.perf_counter()
    with RAGFlowClient(base_url, api_key) as client:
        counter.attach_client(client)
        ds = ensure_dataset(client, dataset).dataset
        report = sync_source(client, LocalFolderSource(root), ds.id, SyncOptions())
    seconds = time.perf_counter() - t0
    c = report.counts
    return {
        "seconds": seconds,
        "api_calls": counter.total,
        "changed": c["uploaded"] + c["replaced"] + c["moved"] + c["deleted"],
        "unchanged": c["unchanged"],
        "converged": report.converged,
    }


def _child_dagster(root: str, dataset: str, base_url: str, api_key: str) -> dict[str, Any]:
    import dagster as dg

    from ragflow_dagster.assets import build_ragflow_ingestion
    from ragflow_dagster.resource import RAGFlowResource

    counter = CallCounter()
    counted: set[int] = set()

    class CountedResource(RAGFlowResource):
        def get_client(self) -> Any:
            client = super().get_client()
            if id(client) not in counted:
                counted.add(id(client))
                counter.attach_client(client)
            return client

    t0 = time.perf_counter()
    ing = build_ragflow_ingestion(source=root, dataset=dataset)
    defs = dg.Definitions(
        assets=ing.assets,
        jobs=[ing.job],
        resources={"ragflow": CountedResource(base_url=base_url, api_key=api_key)},
    )
    job = defs.resolve_job_def(ing.job.name)
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    seconds = time.perf_counter() - t0
    mats = {
        e.materialization.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    meta = mats["documents"]
    changed = sum(meta[k].value for k in ("uploaded", "replaced", "moved", "deleted"))
    return {
        "seconds": seconds,
        "api_calls": counter.total,
        "changed": changed,
        "unchanged": meta["unchanged"].value,
        "converged": bool(result.success and meta["converged"].value),
        "materializations": len(result.get_asset_materialization_events()),
    }


def _child_main(args: argparse.Namespace) -> int:
    fn = _child_engine if args.child == "engine" else _child_dagster
    out = fn(args.root, args.dataset, args.base_url, args.api_key)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("P7RESULT " + json.dumps(out))
    return 0


def _spawn(kind: str, root: Path, dataset: str, srv: Any) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.p7_dagster_noop", "--child", kind]
    cmd += ["--root", str(root), "--dataset", dataset]
    cmd += ["--base-url", srv.base_url, "--api-key", srv.api_key]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("P7RESULT "):
            return json.loads(line[len("P7RESULT ") :])  # type: ignore[no-any-return]
    raise RuntimeError(f"P7 {kind} child failed ({proc.returncode}): {proc.stderr[-3000:]}")


# ------------------------------------------------------------------------------------------------
# the benchmark
# ------------------------------------------------------------------------------------------------


def _seed(srv: Any, root: Path, dataset: str) -> None:
    from ragflow_dagster.client import RAGFlowClient, ensure_dataset
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    with RAGFlowClient(srv.base_url, srv.api_key, pool_size=16) as client:
        ds = ensure_dataset(client, dataset).dataset
        report = sync_source(
            client, LocalFolderSource(root), ds.id, SyncOptions(max_workers=8, parse_timeout=1800)
        )
    if not report.converged or report.counts["uploaded"] != report.counts["scanned"]:
        raise RuntimeError(f"P7 setup sync did not converge: {report.summary()}")


def run(
    *, files: int = DEFAULT_FILES, repeat: int = 2, workdir: str | None = None
) -> dict[str, Any]:
    """Run P7 and return its result record."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-p7-", dir=workdir))
    try:
        trees = {SMALL: tmp / "small", files: tmp / "large"}
        for n, root in trees.items():
            generate_tree(root, n, min_size=64, max_size=1024, per_dir=1000, seed=7)
        result: dict[str, Any] = {"name": "P7 Dagster no-op reconcile", "files": files}
        with sandbox() as srv:
            stamp = int(time.time())
            names = {n: f"p7-{n}-{stamp}" for n in trees}
            t0 = time.perf_counter()
            for n, root in trees.items():
                _seed(srv, root, names[n])
            log(f"P7: seeded {SMALL} + {files} files in {time.perf_counter() - t0:.1f}s")
            best: dict[str, dict[int, dict[str, Any]]] = {"engine": {}, "dagster": {}}
            for i in range(repeat):
                for n, root in trees.items():
                    for kind in ("engine", "dagster"):
                        r = _spawn(kind, root, names[n], srv)
                        log(
                            f"P7: round {i + 1} {kind} {n} files: {r['seconds']:.2f}s, "
                            f"{r['api_calls']} calls, {r['peak_rss_mb']} MB"
                        )
                        if n not in best[kind] or r["seconds"] < best[kind][n]["seconds"]:
                            best[kind][n] = r
        marginal = {
            kind: (best[kind][files]["seconds"] - best[kind][SMALL]["seconds"]) / (files - SMALL)
            for kind in best
        }
        fixed = {kind: best[kind][SMALL]["seconds"] for kind in best}
        ratio = marginal["dagster"] / marginal["engine"] if marginal["engine"] > 0 else None
        calls = {kind: best[kind][files]["api_calls"] for kind in best}
        budget = calls["engine"] + CALL_SLACK
        noop = all(
            r["changed"] == 0 and r["converged"] for kind in best for r in best[kind].values()
        )
        result.update(
            engine={str(n): r for n, r in best["engine"].items()},
            dagster={str(n): r for n, r in best["dagster"].items()},
            fixed_seconds={k: round(v, 3) for k, v in fixed.items()},
            marginal_ms_per_file={k: round(v * 1000, 4) for k, v in marginal.items()},
            ratios={"dagster_over_engine_marginal": round(ratio, 3) if ratio else None},
            api_calls={**calls, "budget": budget},
            peak_rss_mb={kind: best[kind][files]["peak_rss_mb"] for kind in best},
            noop=noop,
            goals={
                "marginal_ratio": {
                    "goal": f"<= {GOAL_MARGINAL_RATIO}",
                    "met": ratio is not None and ratio <= GOAL_MARGINAL_RATIO,
                },
                "api_calls": {"goal": f"<= {budget}", "met": calls["dagster"] <= budget},
                "nothing_changed": {"goal": "true", "met": noop},
            },
        )
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--files", type=int, default=DEFAULT_FILES)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child", choices=("engine", "dagster"), help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    ap.add_argument("--api-key", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child_main(args)
    print(dump(run(files=args.files, repeat=args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
