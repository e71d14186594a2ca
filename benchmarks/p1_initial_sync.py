"""P1: initial sync of N generated files (4–64 KB) — ours vs the ragflow-sdk loop vs the floor.

Contestants, each against a fresh sandbox (own process, parse delay 0), same files:

* ``ours``: ``sync_source`` with ``max_workers=W``; uploads, labels (meta_fields), parses and
  waits until every document is parsed.
* ``sdk``: the official ragflow-sdk used the obvious way: ``DataSet.upload_documents`` once per
  file, then ``async_parse_documents`` with the ids, then waiting by paging ``list_documents``
  (page size 100, 1 s apart: the SDK's own polling interval) until every document is parsed.
* ``floor``: bare concurrent multipart POSTs of the same files at the same concurrency ``W``
  (plain ``requests``, keep-alive, no labels), measured with one file per request and with the
  same files per request as ours (the faster counts), then bare parse calls (100 ids each) and a
  paged wait: the same work as ours minus the labels, so the ratio shows our overhead.

Ratios: ``sdk / ours`` (goal ≥ 10) and ``floor / ours`` (goal ≥ 0.7; higher is better).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
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
    sandbox,
    session_for,
    wait_until_parsed,
)

GOAL_VS_SDK = 10.0
GOAL_VS_FLOOR = 0.7
DEFAULT_FILES = 5000
QUICK_FILES = 1000


def run_ours(
    base_url: str, api_key: str, root: Path, *, workers: int, files_per_request: int = 32
) -> dict[str, Any]:
    """Our sync of ``root`` into a new dataset; returns timings, counts and checks."""
    from ragflow_dagster.client import RAGFlowClient
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    with RAGFlowClient(
        base_url,
        api_key,
        pool_size=max(16, workers * 2),
        max_files_per_request=files_per_request,
    ) as client:
        counter = CallCounter()
        counter.attach_client(client)
        ds = client.create_dataset(f"p1-ours-{int(time.time() * 1000)}")
        t0 = time.perf_counter()
        report = sync_source(
            client, LocalFolderSource(root), ds.id, SyncOptions(max_workers=workers, wait=True)
        )
        seconds = time.perf_counter() - t0
        docs = list(client.iter_documents(ds.id))
    return {
        "seconds": seconds,
        "dataset_id": ds.id,
        "report": report.to_dict(),
        "durations": {k: round(v, 3) for k, v in report.durations.items()},
        "api_calls": counter.total,
        "calls_by_route": dict(counter.by_route),
        "docs": _doc_summary(docs, root=root, managed=True),
    }


def run_sdk(base_url: str, api_key: str, root: Path, paths: list[str]) -> dict[str, Any]:
    """The ragflow-sdk loop: one ``upload_documents`` call per file, parse, wait."""
    from ragflow_sdk import RAGFlow

    rag = RAGFlow(api_key=api_key, base_url=base_url)
    ds = rag.create_dataset(name=f"p1-sdk-{int(time.time() * 1000)}")
    t0 = time.perf_counter()
    ids: list[str] = []
    for rel in paths:
        blob = (root / rel).read_bytes()
        docs = ds.upload_documents([{"display_name": rel, "blob": blob}])
        ids.extend(d.id for d in docs)
    t_upload = time.perf_counter() - t0
    ds.async_parse_documents(ids)
    t_parse_call = time.perf_counter() - t0 - t_upload
    pending = set(ids)
    polls = 0
    while pending:
        page = 1
        while True:
            docs = ds.list_documents(page=page, page_size=100)
            polls += 1
            for d in docs:
                if str(d.run).upper() in ("DONE", "FAIL", "CANCEL") or float(d.progress or 0) >= 1:
                    pending.discard(d.id)
            if len(docs) < 100:
                break
            page += 1
        if pending:
            time.sleep(1.0)
    seconds = time.perf_counter() - t0
    session = session_for(api_key)
    docs_raw = list_all_documents(session, base_url, ds.id)
    return {
        "seconds": seconds,
        "upload_seconds": round(t_upload, 3),
        "parse_call_seconds": round(t_parse_call, 3),
        "list_calls_while_waiting": polls,
        "dataset_id": ds.id,
        "docs": _doc_summary_raw(docs_raw),
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
    """Bare concurrent multipart POSTs of the files, ``files_per_request`` per request."""
    session = session_for(api_key, pool=max(16, workers * 2))
    ds_id = create_dataset(session, base_url, f"p1-floor{files_per_request}-{time.time_ns()}")
    url = f"{base_url}{API}/datasets/{ds_id}/documents"
    batches = [paths[i : i + files_per_request] for i in range(0, len(paths), files_per_request)]

    def post(batch: list[str]) -> int:
        handles = [open(root / rel, "rb") for rel in batch]  # noqa: SIM115
        try:
            files = [("file", (rel, fh)) for rel, fh in zip(batch, handles, strict=True)]
            return len(api_json(session.post(url, files=files)))
        finally:
            for fh in handles:
                fh.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        stored = sum(pool.map(post, batches))
    seconds = time.perf_counter() - t0
    docs_raw = list_all_documents(session, base_url, ds_id)
    return {
        "seconds": seconds,
        "stored": stored,
        "requests": len(batches),
        "files_per_request": files_per_request,
        "dataset_id": ds_id,
        "docs": _doc_summary_raw(docs_raw),
    }


def run_floor_parsed(
    base_url: str, api_key: str, dataset_id: str, *, expected: int
) -> dict[str, Any]:
    """What parsing adds on top of the floor: bare parse calls (100 ids each) and a paged wait."""
    session = session_for(api_key)
    t0 = time.perf_counter()
    ids = [d["id"] for d in list_all_documents(session, base_url, dataset_id)]
    for i in range(0, len(ids), 100):
        api_json(
            session.post(
                f"{base_url}{API}/datasets/{dataset_id}/chunks",
                json={"document_ids": ids[i : i + 100]},
            )
        )
    runs = wait_until_parsed(session, base_url, dataset_id, expected=expected)
    return {"seconds": time.perf_counter() - t0, "runs": runs}


def _doc_summary_raw(docs: list[dict[str, Any]]) -> dict[str, Any]:
    names = [d.get("name") for d in docs]
    runs: dict[str, int] = {}
    for d in docs:
        runs[str(d.get("run"))] = runs.get(str(d.get("run")), 0) + 1
    return {"count": len(docs), "distinct_names": len(set(names)), "runs": runs}


def _doc_summary(docs: list[Any], *, root: Path, managed: bool) -> dict[str, Any]:
    from ragflow_dagster.sync.identity import managed_path

    runs: dict[str, int] = {}
    by_path: dict[str, int] = {}
    sha_ok = 0
    for d in docs:
        runs[d.run] = runs.get(d.run, 0) + 1
        path = managed_path(d.meta_fields)
        if path is None:
            continue
        by_path[path] = by_path.get(path, 0) + 1
        if managed:
            sha = hashlib.sha256((root / path).read_bytes()).hexdigest()
            sha_ok += int(d.meta_fields.get("sha256") == sha)
    return {
        "count": len(docs),
        "managed_paths": len(by_path),
        "duplicates": sum(n - 1 for n in by_path.values() if n > 1),
        "sha256_match": sha_ok,
        "runs": runs,
    }


def run(
    *,
    files: int = DEFAULT_FILES,
    workers: int = 8,
    files_per_request: int = 32,
    min_size: int = 4 * 1024,
    max_size: int = 64 * 1024,
    skip_sdk: bool = False,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Run P1 and return its result record (see module docstring)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-p1-", dir=workdir))
    try:
        root = tmp / "tree"
        t0 = time.perf_counter()
        paths, total = generate_tree(root, files, min_size=min_size, max_size=max_size)
        log(f"P1: generated {files} files, {total / 1e6:.1f} MB in {time.perf_counter() - t0:.1f}s")
        result: dict[str, Any] = {
            "name": "P1 initial sync",
            "files": files,
            "bytes": total,
            "workers": workers,
            "files_per_request": files_per_request,
        }
        with sandbox() as srv:
            log("P1: floor, 1 file per request")
            result["floor_single"] = run_floor(
                srv.base_url, srv.api_key, root, paths, workers=workers, files_per_request=1
            )
            log(f"P1:   {result['floor_single']['seconds']:.2f}s")
        with sandbox() as srv:
            log(f"P1: floor, {files_per_request} files per request")
            fb = run_floor(
                srv.base_url,
                srv.api_key,
                root,
                paths,
                workers=workers,
                files_per_request=files_per_request,
            )
            result["floor_batched"] = fb
            log(f"P1:   {fb['seconds']:.2f}s; parsing them with bare calls")
            result["floor_batched_parse"] = run_floor_parsed(
                srv.base_url, srv.api_key, fb["dataset_id"], expected=files
            )
        with sandbox() as srv:
            log("P1: ours")
            result["ours"] = run_ours(
                srv.base_url,
                srv.api_key,
                root,
                workers=workers,
                files_per_request=files_per_request,
            )
            log(f"P1:   {result['ours']['seconds']:.2f}s")
        if not skip_sdk:
            with sandbox() as srv:
                log("P1: ragflow-sdk loop")
                result["sdk"] = run_sdk(srv.base_url, srv.api_key, root, paths)
                log(f"P1:   {result['sdk']['seconds']:.2f}s")
        ours = result["ours"]["seconds"]
        # The floor does the same work as ours minus the labels: bare concurrent POSTs (the
        # faster of 1 and 32 files per request), then bare parse calls and a paged wait.
        upload_floor = min(result["floor_single"]["seconds"], result["floor_batched"]["seconds"])
        floor = upload_floor + result["floor_batched_parse"]["seconds"]
        result["floor_upload_seconds"] = upload_floor
        result["floor_seconds"] = floor
        result["ours_upload_phase_seconds"] = result["ours"]["durations"].get("upload")
        if "sdk" in result:
            result["sdk_upload_phase_seconds"] = result["sdk"]["upload_seconds"]
        result["ratios"] = {
            "floor_over_ours": round(floor / ours, 3),
            "floor_single_over_ours": round(result["floor_single"]["seconds"] / ours, 3),
            "floor_batched_over_ours": round(result["floor_batched"]["seconds"] / ours, 3),
            "floor_batched_parsed_over_ours": round(
                (fb["seconds"] + result["floor_batched_parse"]["seconds"]) / ours, 3
            ),
        }
        goals = {"floor_over_ours": {"goal": f">= {GOAL_VS_FLOOR}", "met": floor / ours >= 0.7}}
        if "sdk" in result:
            r = result["sdk"]["seconds"] / ours
            result["ratios"]["sdk_over_ours"] = round(r, 3)
            goals["sdk_over_ours"] = {"goal": f">= {GOAL_VS_SDK}", "met": r >= GOAL_VS_SDK}
        result["goals"] = goals
        result["files_per_s"] = {
            "ours": round(files / ours, 1),
            "floor": round(files / floor, 1),
            **({"sdk": round(files / result["sdk"]["seconds"], 1)} if "sdk" in result else {}),
        }
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=DEFAULT_FILES)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_FILES} files")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--skip-sdk", action="store_true")
    args = ap.parse_args(argv)
    res = run(
        files=QUICK_FILES if args.quick else args.files,
        workers=args.workers,
        skip_sdk=args.skip_sdk,
    )
    print(dump(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
