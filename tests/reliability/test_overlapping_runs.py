"""Overlapping runs converge (issue: exactly-once, item 1).

Two and three ``ragflow-dagster sync`` processes of one folder into one dataset, released at
the same moment. Without the lease they race (each sees an empty dataset and uploads); every
run then proves its end state and removes the duplicates, all agreeing on which copy stays.
With the lease the later runs wait and find nothing to do.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ragflow_dagster.client import RAGFlowClient

from .raw import assert_exact, read_tree

BARRIER = Path(__file__).with_name("barrier_cli.py")
N = 300


def _tree(root: Path) -> dict[str, bytes]:
    rng = random.Random(7)
    for i in range(N):
        p = root / f"d{i % 6}" / f"f{i:04d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"file {i} {rng.random()} {'x' * rng.randrange(200)}\n".encode())
    return read_tree(root)


def _race(sb, tmp_path: Path, src: Path, dataset: str, runs: int, *extra: str) -> list[dict]:
    go = tmp_path / "go"
    env = {
        **os.environ,
        "RAGFLOW_BASE_URL": sb.base_url,
        "RAGFLOW_API_KEY": sb.api_key,
    }
    procs = []
    for i in range(runs):
        stats = tmp_path / f"stats-{i}.json"
        cmd = [sys.executable, str(BARRIER), str(go), "sync", str(src), "--dataset", dataset]
        cmd += ["--stats-file", str(stats), "--no-progress", "--parse-timeout", "120", *extra]
        procs.append(
            (
                subprocess.Popen(
                    cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                ),
                stats,
            )
        )
    go.write_text("go")
    reports = []
    for proc, stats in procs:
        _out, err = proc.communicate(timeout=240)
        report = json.loads(stats.read_text())
        assert proc.returncode == 0, f"exit {proc.returncode}\n{err[-2000:]}\n{report['errors']}"
        reports.append(report)
    return reports


@pytest.mark.parametrize("runs", [2, 3])
def test_concurrent_cli_syncs_without_lease_end_exact(ragflow_sandbox, tmp_path, runs):
    sb = ragflow_sandbox
    files = _tree(tmp_path / "src")
    name = f"race-{runs}"
    with RAGFlowClient(sb.base_url, sb.api_key) as c:
        ds = c.create_dataset(name).id
    reports = _race(sb, tmp_path, tmp_path / "src", name, runs, "--no-lease")
    assert all(r["converged"] and r["verified"] for r in reports)
    uploaded = sum(r["uploaded"] for r in reports)
    assert uploaded >= N  # every file at least once; the surplus was deduplicated
    assert sum(r["deduplicated"] for r in reports) >= uploaded - N
    assert_exact(sb.base_url, sb.api_key, ds, files)


def test_concurrent_cli_syncs_with_the_lease_do_the_work_once(ragflow_sandbox, tmp_path):
    sb = ragflow_sandbox
    files = _tree(tmp_path / "src")
    with RAGFlowClient(sb.base_url, sb.api_key) as c:
        ds = c.create_dataset("race-lease").id
    reports = _race(sb, tmp_path, tmp_path / "src", "race-lease", 3)
    assert all(r["converged"] for r in reports)
    assert sum(r["uploaded"] for r in reports) == N
    assert sum(r["deduplicated"] for r in reports) == 0
    assert_exact(sb.base_url, sb.api_key, ds, files)
