"""Bytes and build time per listed ``Document`` (issue 16; behind P2's and SCALE's memory).

One synced, parsed document is listed raw from a sandbox (the real listing item: nested
``parser_config``, ``progress_msg``, ``meta_fields``, a dozen extra keys); ``N`` copies of it with
distinct ids, names and labels are decoded from JSON pages of 100, as a listing gets them, and
turned into records one listing at a time. Printed: the raw dicts' bytes per item, the records'
bytes per item once the raw pages are gone (``tracemalloc``), and ``from_api`` µs per item.

Usage: ``python -m benchmarks.record_bytes [--items 20000]``
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any


def listed_item() -> dict[str, Any]:
    """One document as the sandbox lists it after a sync (parsed and labelled)."""
    import requests

    from benchmarks.common import sandbox
    from ragflow_dagster.client import RAGFlowClient
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "d").mkdir()
        (Path(tmp) / "d" / "f0000001.txt").write_text("hello world " * 60)
        with sandbox() as srv, RAGFlowClient(srv.base_url, srv.api_key) as client:
            ds = client.create_dataset("record-bytes")
            sync_source(client, LocalFolderSource(tmp), ds.id, SyncOptions(parse_timeout=60))
            reply = requests.get(
                f"{srv.base_url}/api/v1/datasets/{ds.id}/documents",
                headers={"Authorization": f"Bearer {srv.api_key}"},
                timeout=30,
            )
    return reply.json()["data"]["docs"][0]  # type: ignore[no-any-return]


def pages(item: dict[str, Any], items: int) -> list[str]:
    """``items`` copies of ``item`` with their own id, name and labels, as JSON pages of 100."""
    out = []
    for start in range(0, items, 100):
        docs = []
        for i in range(start, min(start + 100, items)):
            name = f"d{i // 1000:04d}/f{i:07d}.txt"
            meta = dict(item["meta_fields"], sha256=f"{i:064x}", source_path=name)
            meta.update(source_uri=f"file:///data/{name}", change_token=f"700-{10**18 + i}")
            docs.append(dict(item, id=f"{i:032x}", name=name, meta_fields=meta))
        out.append(json.dumps({"code": 0, "data": {"docs": docs, "total": items}}))
    return out


def measure(item: dict[str, Any], items: int) -> dict[str, float]:
    from ragflow_dagster.client import Document
    from ragflow_dagster.client.shared import Shared

    text = pages(item, items)
    gc.collect()
    tracemalloc.start()
    raw = [json.loads(p)["data"]["docs"] for p in text]
    raw_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    flat = [r for page in raw for r in page]
    del raw
    gc.disable()
    t0 = time.perf_counter()
    shared = Shared()
    built = [Document.from_api(r, shared=shared) for r in flat]
    seconds = time.perf_counter() - t0
    gc.enable()
    del built, flat
    gc.collect()
    tracemalloc.start()
    docs: list[Document] = []
    shared = Shared()  # one listing
    for p in text:
        docs.extend(Document.from_api(r, shared=shared) for r in json.loads(p)["data"]["docs"])
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "raw_bytes_per_item": round(raw_bytes / items),
        "record_bytes_per_item": round(kept / items),
        "from_api_us": round(seconds / items * 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20_000)
    args = ap.parse_args(argv)
    print(json.dumps(measure(listed_item(), args.items)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
