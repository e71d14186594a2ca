"""Throughput of the sandbox server, so it is never the bottleneck of the other benchmarks.

Measures, against a sandbox in its own process (``mode="subprocess"``, as in real use):

* uploads of 4 KiB files from 8 concurrent clients, one file per request and 10 per request
  (goal: at least 200 files/s);
* listing 100,000 documents in pages of the maximum size (100) (goal: a few seconds);
* the parse queue: small text files from ``POST .../documents/parse`` to ``DONE``.

Usage::

    python -m benchmarks.bench_sandbox                 # full size
    python -m benchmarks.bench_sandbox --quick         # smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from ragflow_sandbox import run_sandbox
from ragflow_sandbox.constants import default_parser_config
from ragflow_sandbox.store import Store, new_id

FILE_SIZE = 4096


def _session(key: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def _dataset(api: str, key: str, name: str) -> str:
    res = _session(key).post(f"{api}/datasets", json={"name": name}, timeout=30).json()
    assert res["code"] == 0, res
    return res["data"]["id"]


def bench_uploads(
    api: str, key: str, *, files: int, clients: int, per_request: int
) -> dict[str, Any]:
    """Upload ``files`` 4 KiB files from ``clients`` threads, ``per_request`` files per POST."""
    kb = _dataset(api, key, f"uploads-{per_request}-{new_id()[:6]}")
    payload = os.urandom(FILE_SIZE // 2).hex().encode()
    requests_total = files // per_request
    counter = iter(range(requests_total))
    lock = threading.Lock()
    errors: list[str] = []
    local = threading.local()

    def worker() -> None:
        session = getattr(local, "session", None) or _session(key)
        local.session = session
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            parts = [("file", (f"f{i}-{j}.txt", payload)) for j in range(per_request)]
            res = session.post(f"{api}/datasets/{kb}/documents", files=parts, timeout=60).json()
            if res.get("code") != 0:
                errors.append(str(res)[:200])

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(worker)
    elapsed = time.perf_counter() - start
    uploaded = requests_total * per_request
    return {
        "files": uploaded,
        "clients": clients,
        "files_per_request": per_request,
        "seconds": round(elapsed, 2),
        "files_per_s": round(uploaded / elapsed, 1),
        "errors": len(errors),
    }


def seed_documents(data_dir: Path, kb_name: str, count: int) -> str:
    """Insert ``count`` documents straight into a data dir (faster than 100k uploads)."""
    store = Store(data_dir)
    parser_config = default_parser_config("naive", None)  # what POST /datasets stores
    kb = store.create_dataset({"name": kb_name, "parser_config": parser_config})
    pc = json.dumps(kb["parser_config"])
    batch = []
    for i in range(count):
        batch.append(
            {
                "id": new_id(),
                "kb_id": kb["id"],
                "parser_id": "naive",
                "pipeline_id": None,
                "parser_config": pc,
                "created_by": store.tenant_id,
                "type": "doc",
                "name": f"doc-{i:06d}.txt",
                "source_type": "local",
                "suffix": "txt",
                "location": f"doc-{i:06d}.txt",
                "size": FILE_SIZE,
                "thumbnail": "",
                "content_hash": "",
            }
        )
        if len(batch) == 5000:
            store.insert_documents(kb["id"], batch)
            batch = []
    store.insert_documents(kb["id"], batch)
    store.close()
    return kb["id"]


def bench_listing(api: str, key: str, kb: str, *, expected: int) -> dict[str, Any]:
    """Page through a dataset with ``page_size=100`` (newest first), as a sync client does."""
    session = _session(key)
    seen = 0
    page = 1
    start = time.perf_counter()
    while True:
        res = session.get(
            f"{api}/datasets/{kb}/documents", params={"page": page, "page_size": 100}, timeout=60
        ).json()
        docs = res["data"]["docs"]
        seen += len(docs)
        if len(docs) < 100:
            break
        page += 1
    elapsed = time.perf_counter() - start
    assert seen == expected, (seen, expected)
    return {
        "documents": seen,
        "pages": page,
        "seconds": round(elapsed, 2),
        "ms_per_page": round(1000 * elapsed / page, 2),
    }


def bench_parse(api: str, key: str, *, files: int) -> dict[str, Any]:
    """Upload small files, parse them in one request and wait until all are DONE."""
    session = _session(key)
    kb = _dataset(api, key, f"parse-{new_id()[:6]}")
    ids: list[str] = []
    for start_i in range(0, files, 100):
        parts = [
            ("file", (f"p{i}.txt", f"document {i} about sync and parse\n".encode() * 20))
            for i in range(start_i, min(files, start_i + 100))
        ]
        ids += [
            d["id"]
            for d in session.post(f"{api}/datasets/{kb}/documents", files=parts).json()["data"]
        ]
    start = time.perf_counter()
    for part in range(0, len(ids), 1000):
        res = session.post(
            f"{api}/datasets/{kb}/documents/parse", json={"document_ids": ids[part : part + 1000]}
        ).json()
        assert res["code"] == 0, res
    while True:
        running = session.get(
            f"{api}/datasets/{kb}/documents", params={"run": ["RUNNING", "UNSTART"], "page_size": 1}
        ).json()["data"]["total"]
        if running == 0:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    return {
        "documents": files,
        "seconds": round(elapsed, 2),
        "docs_per_s": round(files / elapsed, 1),
    }


def run(
    *, uploads: int = 4000, clients: int = 8, documents: int = 100_000, parse: int = 2000
) -> dict:
    """Run all measurements; returns a JSON-able dict with the numbers and the goals."""
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        data_dir = Path(tmp)
        t0 = time.perf_counter()
        kb = seed_documents(data_dir, "listing", documents)
        results["seed_seconds"] = round(time.perf_counter() - t0, 2)
        with run_sandbox(data_dir=data_dir, mode="subprocess") as server:
            api, key = server.api_url, server.api_key
            results["uploads_1_per_request"] = bench_uploads(
                api, key, files=uploads, clients=clients, per_request=1
            )
            results["uploads_10_per_request"] = bench_uploads(
                api, key, files=uploads, clients=clients, per_request=10
            )
            results["listing"] = bench_listing(api, key, kb, expected=documents)
            results["listing_again"] = bench_listing(api, key, kb, expected=documents)
            results["parse"] = bench_parse(api, key, files=parse)
    results["goals"] = {
        "uploads >= 200 files/s (8 clients, 1 file/request)": {
            "value": results["uploads_1_per_request"]["files_per_s"],
            "met": results["uploads_1_per_request"]["files_per_s"] >= 200,
        },
        f"list {documents} docs in pages of 100 within 10 s": {
            "value": results["listing"]["seconds"],
            "met": results["listing"]["seconds"] <= 10,
        },
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--output", type=Path, default=None, help="write the JSON results here")
    args = parser.parse_args(argv)
    sizes = {"uploads": 1000, "documents": 20_000, "parse": 500} if args.quick else {}
    results = run(**sizes)
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0 if all(g["met"] for g in results["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
