"""SCALE: planning N files against N documents, pure and in memory (no server, no disk).

The inventory (``SourceEntry`` records, sha256 unknown as for a local folder) and the dataset
(``Document`` records labelled as this package labels them, all parsed) are built first, then
timed: ``known_files`` (the fingerprints the inventory may reuse) and ``plan_sync`` make the
figure; filling the inventory's known sha256 in between is timed apart (``fill_seconds``: the
listing does it inside the walk, so LIST and P2 count it). The plan must be all-unchanged. Run
in a fresh process (``python -m benchmarks.scale_plan --files N --json``) so that its peak RSS is
its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

DEFAULT_FILES = 1_000_000
GOAL_SECONDS = 10.0
GOAL_RSS_MB = 1500.0


def build(files: int) -> tuple[list[Any], list[Any]]:
    """``files`` entries and as many matching, labelled, parsed documents."""
    from ragflow_dagster.client import Document
    from ragflow_dagster.sources.base import SourceEntry
    from ragflow_dagster.sync.identity import managed_meta, upload_name

    entries: list[Any] = []
    docs: list[Any] = []
    for i in range(files):
        path = f"d{i // 1000:04d}/f{i:07d}.txt"
        size = 100 + i % 900
        token = f"{size}-{1_700_000_000_000_000_000 + i}"
        sha = f"{i:064x}"
        entries.append(SourceEntry(path, size, 1.7e9, token))
        docs.append(
            Document(
                id=f"{i:032x}",
                dataset_id="ds",
                name=path,
                size=size,
                run="DONE",
                progress=1.0,
                chunk_count=1,
                meta_fields=managed_meta(
                    source_uri=f"file:///data/{path}",
                    path=path,
                    sha256=sha,
                    size=size,
                    change_token=token,
                ),
                create_time=1_700_000_000_000 + i,
            )
        )
    del upload_name
    return entries, docs


def measure(files: int) -> dict[str, Any]:
    """Build, then time ``known_files`` + fingerprint reuse + ``plan_sync``; this process's peak
    RSS comes with it."""
    from ragflow_dagster.sources.base import SourceEntry
    from ragflow_dagster.sync.engine import known_files
    from ragflow_dagster.sync.identity import LabelChecks
    from ragflow_dagster.sync.plan import PlanOptions, plan_sync

    t0 = time.perf_counter()
    entries, docs = build(files)
    t_build = time.perf_counter() - t0
    rss_built = _peak_mb()
    t0 = time.perf_counter()
    checks = LabelChecks()
    known = known_files(docs, label_checks=checks)
    t_known = time.perf_counter() - t0
    t0 = time.perf_counter()
    filled = []
    get = known.get
    for e in entries:  # what the listing does with ``known`` (sources/local.py)
        k = get(e.path)
        sha = k.sha256 if k is not None and k.change_token == e.change_token else None
        filled.append(SourceEntry(e.path, e.size, e.modified, e.change_token, sha))
    t_fill = time.perf_counter() - t0
    del entries, known, get  # as the engine: the fingerprints go once the inventory has them
    t0 = time.perf_counter()
    plan = plan_sync(filled, docs, PlanOptions(label_checks=checks))
    t_plan = time.perf_counter() - t0
    counts = plan.counts()
    if counts != {"unchanged": files} or plan.pending:
        raise RuntimeError(f"SCALE plan is not a no-op: {counts}")
    return {
        "files": files,
        "build_seconds": round(t_build, 2),
        "known_seconds": round(t_known, 3),
        "fill_seconds": round(t_fill, 3),
        "plan_seconds": round(t_plan, 3),
        "seconds": round(t_known + t_plan, 3),
        "rss_after_build_mb": rss_built,
        "peak_rss_mb": _peak_mb(),
        "counts": counts,
    }


def _peak_mb() -> float:
    from benchmarks.common import peak_rss_mb

    return peak_rss_mb()


def measure_in_child(files: int) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (its peak RSS is not the parent's)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale_plan", "--files", str(files), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def run(
    *, files: int = DEFAULT_FILES, compare: int = 100_000, workdir: str | None = None
) -> dict[str, Any]:
    """SCALE at ``files`` next to ``compare`` (is it linear?)."""
    del workdir
    big = measure_in_child(files)
    small = measure_in_child(compare) if compare and compare < files else None
    result: dict[str, Any] = {"name": "SCALE plan", "files": files, "big": big}
    goals = {
        "seconds": {"goal": f"<= {GOAL_SECONDS}", "met": big["seconds"] <= GOAL_SECONDS},
        "peak_rss_mb": {"goal": f"<= {GOAL_RSS_MB}", "met": big["peak_rss_mb"] <= GOAL_RSS_MB},
    }
    if small is not None:
        result["small"] = small
        per_big = big["seconds"] / files
        per_small = small["seconds"] / small["files"]
        result["linearity"] = round(per_big / per_small, 2)
    result["goals"] = goals
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=DEFAULT_FILES)
    ap.add_argument("--json", action="store_true", help="measure in this process, print JSON")
    ap.add_argument("--profile", action="store_true", help="cProfile the timed part")
    args = ap.parse_args(argv)
    if args.profile:
        import cProfile
        import pstats

        entries, docs = build(args.files)
        from ragflow_dagster.sync.engine import known_files
        from ragflow_dagster.sync.identity import LabelChecks
        from ragflow_dagster.sync.plan import PlanOptions, plan_sync

        prof = cProfile.Profile()
        prof.enable()
        checks = LabelChecks()
        known_files(docs, label_checks=checks)
        plan_sync(entries, docs, PlanOptions(label_checks=checks))
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    if args.json:
        print(json.dumps(measure(args.files)))
        return 0
    print(json.dumps(run(files=args.files), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
