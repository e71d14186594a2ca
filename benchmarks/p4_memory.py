"""P4: peak RSS of a process syncing one large (sparse) file — goal ≤ 150 MB.

A child process (:mod:`benchmarks.p4_child`) syncs a folder holding one sparse file of
``size`` bytes (1 GiB by default) into a sandbox running in its own process (with a body limit
raised above the file size). The child reports its own ``ru_maxrss``; the parent also samples the
child's RSS with psutil as a cross-check and notes the sandbox's RSS (the server's memory is not
ours). Parsing is off: a real server refuses to parse files over 128 MiB anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import dump, log, sandbox

GOAL_MB = 150.0
GiB = 1 << 30
DEFAULT_SIZE = GiB
QUICK_SIZE = 256 << 20


def _sample(pid: int, stop: threading.Event, out: dict[str, float]) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
        while not stop.is_set():
            rss = proc.memory_info().rss / 1e6
            out["max"] = max(out.get("max", 0.0), rss)
            stop.wait(0.05)
    except psutil.Error:
        return


def run(*, size: int = DEFAULT_SIZE, workdir: str | None = None) -> dict[str, Any]:
    """Run P4 and return its result record."""
    import psutil

    from ragflow_dagster.client import RAGFlowClient

    with tempfile.TemporaryDirectory(
        prefix="bench-p4-", dir=workdir, ignore_cleanup_errors=True
    ) as scratch:
        tmp = Path(scratch)
        root = tmp / "tree"
        root.mkdir()
        big = root / "big.txt"
        with open(big, "wb") as fh:
            fh.truncate(size)
        with sandbox(max_body_bytes=size + (64 << 20)) as srv:
            with RAGFlowClient(srv.base_url, srv.api_key) as client:
                ds = client.create_dataset(f"p4-{int(time.time())}")
            env = dict(os.environ, RAGFLOW_BASE_URL=srv.base_url, RAGFLOW_API_KEY=srv.api_key)
            server_pid = _server_pid(srv)
            server_rss: dict[str, float] = {}
            child_rss: dict[str, float] = {}
            stop = threading.Event()
            log(f"P4: syncing one {size / GiB:.2f} GiB sparse file in a child process")
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.p4_child", str(root), ds.id],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=str(Path(__file__).resolve().parent.parent),
            )
            samplers = [threading.Thread(target=_sample, args=(proc.pid, stop, child_rss))]
            if server_pid:
                samplers.append(
                    threading.Thread(target=_sample, args=(server_pid, stop, server_rss))
                )
            for t in samplers:
                t.start()
            out, err = proc.communicate(timeout=1800)
            stop.set()
            for t in samplers:
                t.join()
            seconds = time.perf_counter() - t0
        if proc.returncode not in (0, 1) or not out.strip():
            raise RuntimeError(f"P4 child failed ({proc.returncode}): {err[-2000:]}")
        child = json.loads(out.strip().splitlines()[-1])
        peak = float(child["peak_rss_mb"])
        ok = peak <= GOAL_MB and child["uploaded"] == 1
        return {
            "name": "P4 peak RSS, one large file",
            "file_bytes": size,
            "seconds": round(seconds, 2),
            "child": child,
            "child_rss_sampled_max_mb": round(child_rss.get("max", 0.0), 1),
            "sandbox_rss_sampled_max_mb": round(server_rss.get("max", 0.0), 1)
            if server_rss
            else None,
            "upload_mb_per_s": round(size / 1e6 / max(child["seconds"], 1e-9), 1),
            "peak_rss_mb": peak,
            "goals": {"peak_rss_mb": {"goal": f"<= {GOAL_MB:.0f}", "met": ok}},
            "psutil": psutil.__version__,
        }


def _server_pid(srv: Any) -> int | None:
    for attr in ("pid", "process", "_process", "proc", "_proc"):
        value = getattr(srv, attr, None)
        if isinstance(value, int):
            return value
        pid = getattr(value, "pid", None)
        if isinstance(pid, int):
            return pid
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=DEFAULT_SIZE >> 20)
    ap.add_argument("--quick", action="store_true", help="256 MiB")
    args = ap.parse_args(argv)
    print(dump(run(size=QUICK_SIZE if args.quick else args.size_mib << 20)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
