"""Benchmark: listing sources against the bare minimum that gets the same facts.

* Local: 100k files. Baseline = a bare ``os.scandir`` walk (stack of directories,
  ``DirEntry.is_dir`` + ``DirEntry.stat``, collecting ``(relative path, size, mtime_ns)``).
  Compared: ``LocalFolderSource.scan()`` and ``build_inventory`` (no hashing, and the steady
  state of a sensor: every file known and unchanged). Goal: at most 1.3x the baseline.
* S3: 100k keys in moto's standalone server on 127.0.0.1 (run in its own process, filled through
  moto's backend because 100k PUTs over HTTP would take minutes). Baseline = a bare
  ``list_objects_v2`` loop (``ContinuationToken`` paging, collecting key, size, ETag,
  LastModified) with the same boto3 client. Compared: ``S3Source.scan()`` and
  ``build_inventory``. Goal: at most 1.2x.

Local timings: the variants run interleaved round-robin in one process (one warm-up round,
then ``--rounds``; medians), which keeps ratios fair on a busy machine. S3: one listing per
variant (moto's listing dominates the wall time; the client's CPU time is reported too). Peak
memory: each variant once in a fresh process, as the growth of ``ru_maxrss`` over its state after
imports and set-up.

Run::

    .venv/bin/python -m benchmarks.bench_sources            # 100k files + 100k keys (~5 min)
    .venv/bin/python -m benchmarks.bench_sources --files 20000 --keys 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import scandir_walk

LOCAL_GOAL = 1.3
S3_GOAL = 1.2


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ------------------------------------------------------------------------------------------------
# Local
# ------------------------------------------------------------------------------------------------


def make_tree(root: str, files: int, per_dir: int = 100) -> None:
    """``files`` empty files, ``per_dir`` per folder, folders grouped 30 to a parent."""
    for i in range(max(files // per_dir, 1)):
        d = os.path.join(root, f"g{i // 30:03d}", f"d{i:04d}")
        os.makedirs(d, exist_ok=True)
        for j in range(min(per_dir, files - i * per_dir)):
            with open(os.path.join(d, f"file_{j:03d}.txt"), "wb"):
                pass


def _local_variant(name: str, root: str) -> Callable[[], int]:
    from ragflow_dagster.sources import KnownFile, LocalFolderSource, build_inventory

    src = LocalFolderSource(root)
    if name == "local-bare":
        return lambda: len(scandir_walk(root))
    if name == "local-scan":
        return lambda: len(list(src.scan()))
    if name == "local-inventory":
        return lambda: len(build_inventory(src, compute_sha256=False).entries)
    if name == "local-inventory-known":
        listed = build_inventory(src, compute_sha256=False)
        known = {e.path: KnownFile(e.change_token, "0" * 64, e.size) for e in listed.entries}
        del listed

        def run() -> int:
            inv = build_inventory(src, known=known)
            assert inv.hashed == 0
            return len(inv.entries)

        return run
    raise ValueError(name)


# ------------------------------------------------------------------------------------------------
# S3
# ------------------------------------------------------------------------------------------------


def serve_moto(keys: int, bucket: str) -> None:
    """Child process: a moto S3 server with ``keys`` objects, until stdin closes."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    body = b"x" * 64
    for i in range(keys):
        backend.put_object(bucket, f"docs/g{i // 3000:03d}/d{i // 100:05d}/file_{i:06d}.txt", body)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"READY http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


def _s3_variant(name: str, endpoint: str, bucket: str) -> Callable[[], int]:
    from ragflow_dagster.sources import S3Source, build_inventory

    src = S3Source(bucket, "docs", endpoint_url=endpoint, region="us-east-1")
    client = src.client

    def bare() -> int:
        out: list[tuple[str, int, str, Any]] = []
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": "docs/", "MaxKeys": 1000}
        while True:
            response = client.list_objects_v2(**request)
            for o in response.get("Contents", ()):
                out.append((o["Key"], o["Size"], o["ETag"], o["LastModified"]))
            if not response.get("IsTruncated"):
                return len(out)
            request["ContinuationToken"] = response["NextContinuationToken"]

    if name == "s3-bare":
        return bare
    if name == "s3-scan":
        return lambda: len(list(src.scan()))
    if name == "s3-inventory":
        return lambda: len(build_inventory(src).entries)
    raise ValueError(name)


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------


def _variant(name: str, args: list[str]) -> Callable[[], int]:
    """A variant by name; ``<name>@paused`` runs it with the cyclic collector paused (as the
    package's own consumers of a listing run: the inventory and the sync)."""
    base, _, how = name.partition("@")
    run = _local_variant(base, *args) if base.startswith("local") else _s3_variant(base, *args)
    if how != "paused":
        return run

    def paused() -> int:
        from ragflow_dagster.gcpause import gc_paused

        with gc_paused():
            return run()

    return paused


def child_time(names: list[str], rounds: int, warmup: int, args: list[str]) -> None:
    """Child process: the variants interleaved round-robin (fair under a noisy machine)."""
    runs = {name: _variant(name, args) for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, int] = {}
    for r in range(warmup + rounds):
        for name in names:
            t, c = time.perf_counter(), time.process_time()
            n = runs[name]()
            dt, dc = time.perf_counter() - t, time.process_time() - c
            assert counts.setdefault(name, n) == n
            if r >= warmup:
                wall[name].append(dt)
                cpu[name].append(dc)
    print(json.dumps({"wall": wall, "cpu": cpu, "counts": counts}))


def child_mem(name: str, args: list[str]) -> None:
    """Child process: one run of one variant; growth of peak RSS over the set-up state."""
    run = _variant(name, args)
    before = _maxrss_kb()
    t, c = time.perf_counter(), time.process_time()
    n = run()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"peak_kb": _maxrss_kb() - before, "count": n, "wall": dt, "cpu": dc}))


def _child(*args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_sources", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=7200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(
    title: str,
    names: list[str],
    wall: dict[str, float],
    cpu: dict[str, float],
    mem: dict[str, float],
    counts: dict[str, int],
    goal: float,
    goal_on: list[str],
) -> dict[str, Any]:
    base, base_cpu = wall[names[0]], cpu[names[0]]
    print(f"\n{title}")
    head = f"  {'variant':<24}{'items':>9}{'wall s':>9}{'ratio':>7}{'cpu s':>8}{'cpu ratio':>10}"
    print(head + f"{'peak MB':>9}")
    out: dict[str, Any] = {}
    for name in names:
        ratio, cpu_ratio = wall[name] / base, cpu[name] / base_cpu
        print(
            f"  {name:<24}{counts[name]:>9}{wall[name]:>9.3f}{ratio:>7.2f}{cpu[name]:>8.3f}"
            f"{cpu_ratio:>10.2f}{mem[name]:>9.1f}"
        )
        out[name] = {
            "items": counts[name],
            "wall_s": wall[name],
            "ratio": ratio,
            "cpu_s": cpu[name],
            "cpu_ratio": cpu_ratio,
            "peak_mb": mem[name],
        }
    worst = max(out[n]["ratio"] for n in goal_on)
    verdict = "OK" if worst <= goal else "OVER GOAL"
    print(f"  goal: {', '.join(goal_on)} <= {goal}x {names[0]} (wall): {worst:.2f} {verdict}")
    out["goal"] = {"ratio": worst, "limit": goal, "met": worst <= goal}
    return out


def bench_local(files: int, rounds: int) -> dict[str, Any]:
    root = tempfile.mkdtemp(prefix="bench-sources-")
    try:
        t = time.perf_counter()
        make_tree(root, files)
        print(f"local: {files} files created in {time.perf_counter() - t:.1f}s")
        names = ["local-bare", "local-scan", "local-inventory", "local-inventory-known"]
        timed = _child("--child-time", str(rounds), "1", ",".join(names), root)
        mem = {n: _child("--child-mem", n, root)["peak_kb"] / 1024 for n in names}
        wall = {n: statistics.median(v) for n, v in timed["wall"].items()}
        cpu = {n: statistics.median(v) for n, v in timed["cpu"].items()}
        title = f"Local folder, {files} files (median of {rounds} interleaved rounds)"
        goal_on = ["local-scan", "local-inventory"]
        return _table(title, names, wall, cpu, mem, timed["counts"], LOCAL_GOAL, goal_on)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_s3(keys: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
    env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    os.environ.update(env)
    bucket = "bench-sources"
    t = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_sources", "--moto-server", str(keys), bucket],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"moto server did not start: {line!r}")
        endpoint = line.split(" ", 1)[1]
        print(f"\ns3: moto at {endpoint} with {keys} keys ({time.perf_counter() - t:.1f}s)")
        names = ["s3-bare", "s3-scan", "s3-inventory"]
        # One listing per variant, each in its own process (time, client CPU and memory):
        # moto re-sorts every key for every page, so a 100k listing takes about a minute and
        # the wall time is the server's; the client CPU time is the precise comparison.
        runs = {n: _child("--child-mem", n, endpoint, bucket) for n in names}
        wall = {n: r["wall"] for n, r in runs.items()}
        cpu = {n: r["cpu"] for n, r in runs.items()}
        mem = {n: r["peak_kb"] / 1024 for n, r in runs.items()}
        counts = {n: r["count"] for n, r in runs.items()}
        title = f"S3 (moto on 127.0.0.1), {keys} keys, one listing each"
        return _table(title, names, wall, cpu, mem, counts, S3_GOAL, ["s3-scan", "s3-inventory"])
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved local rounds")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--child-time", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--child-mem", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--moto-server", nargs=2, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.child_time:
        rounds, warmup, names, *rest = ns.child_time
        child_time(names.split(","), int(rounds), int(warmup), rest)
        return 0
    if ns.child_mem:
        child_mem(ns.child_mem[0], ns.child_mem[1:])
        return 0
    if ns.moto_server:
        serve_moto(int(ns.moto_server[0]), ns.moto_server[1])
        return 0

    numbers: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if not ns.skip_local:
        numbers["local"] = bench_local(ns.files, ns.rounds)
    if not ns.skip_s3:
        numbers["s3"] = bench_s3(ns.keys)
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(numbers, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
