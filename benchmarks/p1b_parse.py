"""P1b: an initial sync end to end, until every document is parsed — ours vs the floor.

The sandbox parses as a real server does: one task executor, ``parse_delay`` (0.05 s) per
document, one after the other (``parse_serial``), so parsing dominates. Same files, fresh
sandbox each:

* ``ours``: ``sync_source`` with ``wait=True`` (uploads, labels, parse requests sent in batches
  while uploads continue, the wait by id, the verifying listing).
* ``floor``: bare concurrent multi-file POSTs (``W`` threads, ``F`` files each), then bare parse
  requests (100 ids each), then a paged wait (the whole listing every 0.2 s) until every
  document is DONE. No labels.

Figures: ``ours / floor`` wall time (goal ≤ 1.05) and the time to the first DONE document of
each (from the documents' ``update_time``: parse requests must start while uploads continue).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import (
    API,
    CallCounter,
    api_json,
    create_dataset,
    dump,
    generate_tree,
    list_all_documents,
    log,
    our_sync,
    sandbox,
    session_for,
    wait_until_parsed,
)

GOAL_RATIO = 1.05
DEFAULT_FILES = 5000
PARSE_DELAY = 0.05


def _first_done(docs: list[dict[str, Any]], t0_ms: float) -> float | None:
    done = [int(d.get("update_time") or 0) for d in docs if d.get("run") == "DONE"]
    return round((min(done) - t0_ms) / 1000, 3) if done else None


def run_ours(
    base_url: str, api_key: str, root: Path, *, workers: int, files_per_request: int
) -> dict[str, Any]:
    """Our sync, waiting until everything is parsed."""
    from ragflow_dagster.sync.engine import SyncOptions

    run = our_sync(
        base_url,
        api_key,
        root,
        name="p1b-ours",
        workers=workers,
        files_per_request=files_per_request,
        options=SyncOptions(max_workers=workers, wait=True, parse_timeout=3600),
    )
    report = run.report
    docs = list_all_documents(session_for(api_key), base_url, run.dataset_id)
    runs: dict[str, int] = {}
    for d in docs:
        runs[str(d.get("run"))] = runs.get(str(d.get("run")), 0) + 1
    return {
        **run.record(),
        "first_done_seconds": _first_done(docs, run.started_ms),
        "counts": {
            k: report.counts.get(k, 0) for k in ("uploaded", "parsed", "parse_requested", "failed")
        },
        "converged": report.verified,
        "runs": runs,
    }


def run_floor(
    base_url: str,
    api_key: str,
    root: Path,
    paths: list[str],
    *,
    workers: int,
    files_per_request: int,
) -> dict[str, Any]:
    """Bare POSTs, bare parse requests, a paged wait."""
    session = session_for(api_key, pool=max(16, workers * 2))
    counter = CallCounter()
    counter.attach(session)
    ds_id = create_dataset(session, base_url, f"p1b-floor-{time.time_ns()}")
    url = f"{base_url}{API}/datasets/{ds_id}/documents"
    batches = [paths[i : i + files_per_request] for i in range(0, len(paths), files_per_request)]

    def post(batch: list[str]) -> list[str]:
        files = [("file", (rel, (root / rel).read_bytes())) for rel in batch]
        return [d["id"] for d in api_json(session.post(url, files=files))]

    t0_ms = time.time() * 1000
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ids = [i for got in pool.map(post, batches) for i in got]
    t_upload = time.perf_counter() - t0
    for i in range(0, len(ids), 100):
        api_json(
            session.post(
                f"{base_url}{API}/datasets/{ds_id}/chunks", json={"document_ids": ids[i : i + 100]}
            )
        )
    runs = wait_until_parsed(session, base_url, ds_id, expected=len(paths), timeout=3600)
    seconds = time.perf_counter() - t0
    docs = list_all_documents(session, base_url, ds_id)
    return {
        "seconds": seconds,
        "upload_seconds": round(t_upload, 3),
        "first_done_seconds": _first_done(docs, t0_ms),
        "runs": runs,
        "api_calls": counter.total - 1,
    }


def run(
    *,
    files: int = DEFAULT_FILES,
    workers: int = 8,
    files_per_request: int = 32,
    parse_delay: float = PARSE_DELAY,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Run P1b and return its result record (see the module docstring)."""
    with tempfile.TemporaryDirectory(
        prefix="bench-p1b-", dir=workdir, ignore_cleanup_errors=True
    ) as scratch:
        tmp = Path(scratch)
        root = tmp / "tree"
        paths, total = generate_tree(root, files)
        log(f"P1b: generated {files} files, {total / 1e6:.1f} MB")
        result: dict[str, Any] = {
            "name": "P1b end to end",
            "files": files,
            "bytes": total,
            "workers": workers,
            "parse_delay": parse_delay,
            "parse_serial": True,
            "parse_floor_seconds": round(files * parse_delay, 1),
        }
        opts = {"parse_delay": parse_delay, "parse_serial": True}
        with sandbox(**opts) as srv:
            log("P1b: floor")
            result["floor"] = run_floor(
                srv.base_url,
                srv.api_key,
                root,
                paths,
                workers=workers,
                files_per_request=files_per_request,
            )
            log(f"P1b:   {result['floor']['seconds']:.2f}s")
        with sandbox(**opts) as srv:
            log("P1b: ours")
            fpr = files_per_request
            result["ours"] = run_ours(
                srv.base_url, srv.api_key, root, workers=workers, files_per_request=fpr
            )
            log(f"P1b:   {result['ours']['seconds']:.2f}s")
        ratio = result["ours"]["seconds"] / result["floor"]["seconds"]
        result["ratios"] = {"ours_over_floor": round(ratio, 3)}
        ours = result["ours"]
        all_parsed = ours["counts"]["parsed"] == files and ours["runs"].get("DONE") == files
        result["goals"] = {
            "ours_over_floor": {"goal": f"<= {GOAL_RATIO}", "met": ratio <= GOAL_RATIO},
            "all_parsed": {"goal": f"== {files}", "met": all_parsed},
        }
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=DEFAULT_FILES)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--parse-delay", type=float, default=PARSE_DELAY)
    args = ap.parse_args(argv)
    print(dump(run(files=args.files, workers=args.workers, parse_delay=args.parse_delay)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
