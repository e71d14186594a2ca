"""A CLI sync racing a Dagster run of the same dataset (issue: exactly-once, item 1).

Both start at the same moment, without the lease; both must succeed, and the dataset must end
with exactly one parsed document per file (raw HTTP), whoever uploaded it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import dagster as dg
import requests

from ragflow_dagster.assets import build_ragflow_ingestion
from ragflow_dagster.resource import RAGFlowResource
from ragflow_dagster.sync.engine import SyncOptions

from .raw import assert_exact, dataset_id, read_tree

BARRIER = Path(__file__).with_name("barrier_cli.py")


def test_a_cli_sync_racing_a_dagster_run_ends_exact(ragflow_sandbox, tmp_path, monkeypatch):
    sb = ragflow_sandbox
    src = tmp_path / "src"
    rng = random.Random(11)
    for i in range(200):
        p = src / f"d{i % 4}" / f"f{i:04d}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# file {i}\n\n{rng.random()} {'word ' * rng.randrange(40)}\n")
    files = read_tree(src)
    name = "race-dagster"
    monkeypatch.setenv("RACE_RAGFLOW_URL", sb.base_url)
    monkeypatch.setenv("RACE_RAGFLOW_KEY", sb.api_key)
    ingestion = build_ragflow_ingestion(
        source=str(src), dataset=name, sync_options=SyncOptions(lease=False)
    )
    defs = dg.Definitions(
        assets=ingestion.assets,
        jobs=[ingestion.job],
        resources={
            "ragflow": RAGFlowResource(
                base_url=dg.EnvVar("RACE_RAGFLOW_URL"), api_key=dg.EnvVar("RACE_RAGFLOW_KEY")
            )
        },
    )
    job = defs.resolve_job_def(ingestion.job.name)
    # the dataset exists already, so that both runs race on documents, not on its creation
    requests.post(
        f"{sb.base_url}/api/v1/datasets",
        json={"name": name},
        headers={"Authorization": f"Bearer {sb.api_key}"},
        timeout=30,
    ).raise_for_status()
    go, stats = tmp_path / "go", tmp_path / "stats.json"
    env = {**os.environ, "RAGFLOW_BASE_URL": sb.base_url, "RAGFLOW_API_KEY": sb.api_key}
    cli = subprocess.Popen(
        [
            sys.executable,
            str(BARRIER),
            str(go),
            "sync",
            str(src),
            "--dataset",
            name,
            "--no-lease",
            "--no-progress",
            "--stats-file",
            str(stats),
            "--parse-timeout",
            "120",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    go.write_text("go")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    _out, err = cli.communicate(timeout=240)
    report = json.loads(stats.read_text())
    assert cli.returncode == 0, f"{err[-2000:]}\n{report.get('errors')}"
    assert report["converged"] and report["verified"]
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["documents_match_source"] and checks["chunks_healthy"]
    assert_exact(sb.base_url, sb.api_key, dataset_id(sb.base_url, sb.api_key, name), files)
