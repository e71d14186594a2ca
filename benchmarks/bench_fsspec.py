"""Benchmark: FsspecSource listings against the bare fsspec ``find()`` walk of the same tree.

* WebDAV: ``files`` files (100 per folder) served by wsgidav (cheroot, basic auth) in its own
  process on 127.0.0.1. Baseline: ``WebdavFileSystem.find(root, detail=True)`` (fsspec's walk: one
  PROPFIND per folder). Compared: ``FsspecSource.scan_batches()`` (path-ordered walk, filters,
  change tokens) and ``build_inventory(compute_sha256=False)``.
* Azure Blob: ``files`` blobs in azurite (``make tools``) on 127.0.0.1. Baseline: adlfs
  ``find(container/prefix, detail=True)`` (one flat paged listing). Compared: the same two.

Variants run interleaved round-robin (one warm-up round, then ``--rounds``; medians), so the
ratios stay fair on a busy machine. Goal: at most 1.2x the baseline (wall time).

Run::

    .venv/bin/python -m benchmarks.bench_fsspec                 # 10,000 files each
    .venv/bin/python -m benchmarks.bench_fsspec --files 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GOAL = 1.2
REPO = Path(__file__).resolve().parents[1]


def _servers() -> Any:
    path = REPO / "tests" / "sources" / "servers.py"
    spec = importlib.util.spec_from_file_location("_rfd_bench_servers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_tree(root: str, files: int, per_dir: int = 100) -> None:
    """``files`` small files, ``per_dir`` per folder, folders grouped 10 to a parent."""
    for i in range(max(files // per_dir, 1)):
        d = os.path.join(root, f"g{i // 10:02d}", f"d{i:03d}")
        os.makedirs(d, exist_ok=True)
        for j in range(min(per_dir, files - i * per_dir)):
            with open(os.path.join(d, f"file_{j:03d}.txt"), "wb") as f:
                f.write(b"x")


def _rounds(variants: dict[str, Callable[[], int]], rounds: int) -> dict[str, Any]:
    wall: dict[str, list[float]] = {n: [] for n in variants}
    counts: dict[str, int] = {}
    for r in range(rounds + 1):
        for name, run in variants.items():
            t = time.perf_counter()
            counts[name] = run()
            if r:  # round 0 warms up connections and caches
                wall[name].append(time.perf_counter() - t)
    return {"wall": {n: statistics.median(v) for n, v in wall.items()}, "counts": counts}


def _table(title: str, result: dict[str, Any]) -> dict[str, Any]:
    wall, counts = result["wall"], result["counts"]
    names = list(wall)
    base = wall[names[0]]
    print(f"\n{title}")
    print(f"  {'variant':<22}{'items':>8}{'wall s':>9}{'ratio':>7}")
    out: dict[str, Any] = {}
    for name in names:
        ratio = wall[name] / base
        print(f"  {name:<22}{counts[name]:>8}{wall[name]:>9.3f}{ratio:>7.2f}")
        out[name] = {
            "items": counts[name],
            "wall_s": round(wall[name], 4),
            "ratio": round(ratio, 3),
        }
    worst = max(out[n]["ratio"] for n in names[1:])
    mark = "OK" if worst <= GOAL else "❌ OVER GOAL"
    print(f"  goal: <= {GOAL}x {names[0]}: worst {worst:.2f} {mark}")
    out["goal"] = {"ratio": worst, "limit": GOAL, "met": worst <= GOAL}
    return out


def serve_webdav(root: str, port: int) -> None:
    """Child process: a WebDAV server until stdin closes."""
    mod = _servers()
    server = mod.WebDAVServer(root)
    server.port = port
    server.start()
    print("READY", flush=True)
    sys.stdin.read()
    server.stop()


def bench_webdav(files: int, rounds: int) -> dict[str, Any]:
    from webdav4.fsspec import WebdavFileSystem

    from ragflow_dagster.sources import build_inventory
    from ragflow_dagster.sources.fsspec import FsspecSource

    mod = _servers()
    root = tempfile.mkdtemp(prefix="bench-fsspec-dav-")
    port = mod.free_port()
    proc = None
    try:
        t = time.perf_counter()
        make_tree(root, files)
        print(f"webdav: {files} files created in {time.perf_counter() - t:.1f}s")
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_fsspec", "--serve-webdav", root, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("the WebDAV server did not start")
        auth = ("alice", "dav-pw-7Hq2")
        url = f"http://127.0.0.1:{port}/"
        bare_fs = WebdavFileSystem(url, auth=auth)
        src = FsspecSource(f"webdav+{url}", storage_options={"auth": auth})
        variants = {
            "webdav-bare-find": lambda: len(bare_fs.find("", detail=True)),
            "webdav-scan": lambda: sum(len(e) for e, _ in src.scan_batches()),
            "webdav-inventory": lambda: len(build_inventory(src, compute_sha256=False).entries),
        }
        title = f"WebDAV (wsgidav on 127.0.0.1), {files} files (median of {rounds} rounds)"
        return _table(title, _rounds(variants, rounds))
    finally:
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def bench_azure(files: int, rounds: int) -> dict[str, Any]:
    import adlfs
    from azure.storage.blob import BlobServiceClient

    from ragflow_dagster.sources import build_inventory
    from ragflow_dagster.sources.fsspec import FsspecSource

    mod = _servers()
    if not mod.Azurite.available():
        print("azure: azurite is not installed (make tools); skipped")
        return {"skipped": "azurite not installed"}
    azurite = mod.Azurite().start()
    try:
        conn = azurite.direct_connection_string
        service = BlobServiceClient.from_connection_string(conn)
        container = service.create_container("bench")
        t = time.perf_counter()
        names = [
            f"kb/g{i // 1000:02d}/d{i // 100:03d}/file_{i % 100:03d}.txt" for i in range(files)
        ]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: container.upload_blob(n, b"x"), names))
        print(f"\nazure: {files} blobs uploaded in {time.perf_counter() - t:.1f}s")
        bare_fs = adlfs.AzureBlobFileSystem(connection_string=conn, skip_instance_cache=True)
        src = FsspecSource("az://bench/kb", storage_options={"connection_string": conn})
        variants = {
            "azure-bare-find": lambda: len(bare_fs.find("bench/kb", detail=True)),
            "azure-scan": lambda: sum(len(e) for e, _ in src.scan_batches()),
            "azure-inventory": lambda: len(build_inventory(src, compute_sha256=False).entries),
        }
        title = f"Azure Blob (azurite on 127.0.0.1), {files} blobs (median of {rounds} rounds)"
        return _table(title, _rounds(variants, rounds))
    finally:
        azurite.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-webdav", action="store_true")
    parser.add_argument("--skip-azure", action="store_true")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--serve-webdav", nargs=2, metavar=("ROOT", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_webdav:
        serve_webdav(args.serve_webdav[0], int(args.serve_webdav[1]))
        return 0
    results: dict[str, Any] = {}
    if not args.skip_webdav:
        results["webdav"] = bench_webdav(args.files, args.rounds)
    if not args.skip_azure:
        results["azure"] = bench_azure(args.files, args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    met = all(r.get("goal", {}).get("met", True) for r in results.values())
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
