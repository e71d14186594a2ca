"""P1a: the upload phase of an initial sync — N files (4–64 KB) uploaded and labelled, no parse.

Contestants, each against a fresh sandbox (its own process), same files, ``W`` = 8 threads:

* ``ours``: ``sync_source(..., parse=False, wait=False)``: uploads (several files per request)
  and labels every document (one PATCH with name and ``meta_fields`` each, RAGFlow has no bulk
  metadata route), the labels overlapping the uploads; then the verifying listing.
* ``bare``: a plain ``requests`` script doing the same requests: concurrent multi-file POSTs
  (``F`` files each, ``W`` threads, sha256 computed while reading) under the same upload names,
  then one PATCH per document with the same body (its name and ``meta_fields``, ``W``
  threads). No verifying listing, no retries, no proofs.
* ``bare_meta_only``: the same script labelling only (the files uploaded under their final
  names, PATCH bodies without ``name``): what the rename costs the server, for the record.
* ``sdk``: the ragflow-sdk one-file loop (``DataSet.upload_documents`` per file); it labels
  nothing.

Ratios (speed, higher is better): ``bare / ours`` (goal ≥ 0.9) and ``sdk / ours`` (goal ≥ 1.3).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
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
)

GOAL_VS_BARE = 0.9
GOAL_VS_SDK = 1.3
DEFAULT_FILES = 5000


def run_ours(
    base_url: str, api_key: str, root: Path, *, workers: int, files_per_request: int
) -> dict[str, Any]:
    """Our sync without parsing: uploads and labels."""
    from ragflow_dagster.sync.engine import SyncOptions

    run = our_sync(
        base_url,
        api_key,
        root,
        name="p1a-ours",
        workers=workers,
        files_per_request=files_per_request,
        options=SyncOptions(max_workers=workers, parse=False, wait=False),
    )
    docs = list_all_documents(session_for(api_key), base_url, run.dataset_id)
    labelled = sum(
        1 for d in docs if (d.get("meta_fields") or {}).get("managed_by") == "ragflow-dagster"
    )
    return {
        **run.record(),
        "uploaded": run.report.counts.get("uploaded", 0),
        "documents": len(docs),
        "labelled": labelled,
    }


def run_bare(
    base_url: str,
    api_key: str,
    root: Path,
    paths: list[str],
    *,
    workers: int,
    files_per_request: int,
    rename: bool = True,
) -> dict[str, Any]:
    """Concurrent multi-file POSTs, then one PATCH per document (``rename``: uploaded under the
    upload name, the PATCH also gives it its name, as ours does)."""
    from ragflow_dagster.sync.identity import document_name, managed_meta, upload_name

    session = session_for(api_key, pool=max(16, workers * 2))
    counter = CallCounter()
    counter.attach(session)
    ds_id = create_dataset(session, base_url, f"p1a-bare-{time.time_ns()}")
    url = f"{base_url}{API}/datasets/{ds_id}/documents"
    batches = [paths[i : i + files_per_request] for i in range(0, len(paths), files_per_request)]
    uri = root.as_uri()

    def post(batch: list[str]) -> list[tuple[str, dict[str, Any]]]:
        blobs = [(rel, (root / rel).read_bytes()) for rel in batch]
        files = [("file", (upload_name(rel) if rename else rel, data)) for rel, data in blobs]
        docs = api_json(session.post(url, files=files))
        out = []
        for (rel, data), doc in zip(blobs, docs, strict=True):
            meta = managed_meta(
                source_uri=f"{uri}/{rel}",
                path=rel,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                change_token=f"{len(data)}-0",
            )
            body: dict[str, Any] = {"meta_fields": meta}
            if rename:
                body["name"] = document_name(rel)
            out.append((doc["id"], body))
        return out

    def patch(item: tuple[str, dict[str, Any]]) -> None:
        doc_id, body = item
        api_json(session.patch(f"{url}/{doc_id}", json=body))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        labels = [item for got in pool.map(post, batches) for item in got]
    t_upload = time.perf_counter() - t0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(patch, labels))
    seconds = time.perf_counter() - t0
    docs = list_all_documents(session, base_url, ds_id)
    return {
        "seconds": seconds,
        "upload_seconds": round(t_upload, 3),
        "label_seconds": round(seconds - t_upload, 3),
        "documents": len(docs),
        "labelled": sum(1 for d in docs if (d.get("meta_fields") or {}).get("managed_by")),
        "api_calls": counter.total - 1,  # without the dataset's creation
    }


def run_sdk(base_url: str, api_key: str, root: Path, paths: list[str]) -> dict[str, Any]:
    """The ragflow-sdk loop: one ``upload_documents`` call per file (no labels)."""
    from ragflow_sdk import RAGFlow

    rag = RAGFlow(api_key=api_key, base_url=base_url)
    ds = rag.create_dataset(name=f"p1a-sdk-{time.time_ns()}")
    t0 = time.perf_counter()
    for rel in paths:
        ds.upload_documents([{"display_name": rel, "blob": (root / rel).read_bytes()}])
    seconds = time.perf_counter() - t0
    docs = list_all_documents(session_for(api_key), base_url, ds.id)
    return {"seconds": seconds, "documents": len(docs), "api_calls": len(paths)}


def _settle_disk() -> None:
    """Flush what the previous contestant's sandbox wrote (172 MB of blobs for 5,000 files), so
    that its writeback does not slow the next contestant down."""
    if hasattr(os, "sync"):
        os.sync()


def run(
    *,
    files: int = DEFAULT_FILES,
    workers: int = 8,
    files_per_request: int = 32,
    skip_sdk: bool = False,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Run P1a and return its result record (see the module docstring)."""
    with tempfile.TemporaryDirectory(
        prefix="bench-p1a-", dir=workdir, ignore_cleanup_errors=True
    ) as scratch:
        tmp = Path(scratch)
        root = tmp / "tree"
        paths, total = generate_tree(root, files)
        log(f"P1a: generated {files} files, {total / 1e6:.1f} MB")
        result: dict[str, Any] = {
            "name": "P1a upload phase",
            "files": files,
            "bytes": total,
            "workers": workers,
            "files_per_request": files_per_request,
        }
        fpr = files_per_request
        contestants: dict[str, tuple[str, Callable[[str, str], dict[str, Any]]]] = {
            "ours": (
                "ours",
                lambda url, key: run_ours(url, key, root, workers=workers, files_per_request=fpr),
            ),
            "bare": (
                "bare script",
                lambda url, key: run_bare(
                    url, key, root, paths, workers=workers, files_per_request=fpr
                ),
            ),
            "bare_meta_only": (
                "bare script, labels without the rename",
                lambda url, key: run_bare(
                    url, key, root, paths, workers=workers, files_per_request=fpr, rename=False
                ),
            ),
        }
        if not skip_sdk:
            contestants["sdk"] = (
                "ragflow-sdk loop",
                lambda url, key: run_sdk(url, key, root, paths),
            )
        for key, (title, contest) in contestants.items():  # each against a fresh sandbox
            _settle_disk()
            with sandbox() as srv:
                log(f"P1a: {title}")
                result[key] = contest(srv.base_url, srv.api_key)
                log(f"P1a:   {result[key]['seconds']:.2f}s")
        ours = result["ours"]["seconds"]
        r_bare = result["bare"]["seconds"] / ours
        result["ratios"] = {
            "bare_over_ours": round(r_bare, 3),
            "bare_meta_only_over_ours": round(result["bare_meta_only"]["seconds"] / ours, 3),
        }
        goals = {
            "bare_over_ours": {"goal": f">= {GOAL_VS_BARE}", "met": r_bare >= GOAL_VS_BARE},
            "all_labelled": {
                "goal": f"== {files}",
                "met": result["ours"]["labelled"] == files == result["ours"]["documents"],
            },
        }
        if "sdk" in result:
            r_sdk = result["sdk"]["seconds"] / ours
            result["ratios"]["sdk_over_ours"] = round(r_sdk, 3)
            goals["sdk_over_ours"] = {"goal": f">= {GOAL_VS_SDK}", "met": r_sdk >= GOAL_VS_SDK}
        result["goals"] = goals
        contestants = [k for k in ("ours", "bare", "bare_meta_only", "sdk") if k in result]
        result["files_per_s"] = {k: round(files / result[k]["seconds"], 1) for k in contestants}
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=DEFAULT_FILES)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--skip-sdk", action="store_true")
    args = ap.parse_args(argv)
    print(dump(run(files=args.files, workers=args.workers, skip_sdk=args.skip_sdk)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
