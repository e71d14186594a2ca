"""The runnable project from the command line: ``dagster asset materialize --select '*'``
works with its defaults (unpartitioned), and a second run changes nothing."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

from ragflow_dagster.sync.identity import managed_path

ROOT = Path(__file__).resolve().parents[2]


def _docs(sandbox, name: str) -> dict[str, tuple[str, str]]:
    """``path -> (document id, update time)`` of the dataset's managed documents, by raw HTTP."""
    h = {"Authorization": f"Bearer {sandbox.api_key}"}
    base = f"{sandbox.base_url}/api/v1/datasets"
    (ds,) = requests.get(base, params={"name": name}, headers=h, timeout=10).json()["data"]
    body = requests.get(
        f"{base}/{ds['id']}/documents", params={"page_size": 100}, headers=h, timeout=10
    ).json()["data"]
    out = {}
    for d in body["docs"]:
        path = managed_path(d.get("meta_fields") or {})
        if path:
            out[path] = (d["id"], str(d.get("update_time")), json.dumps(d.get("meta_fields")))
    return out


def _materialize(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(dagster), "asset", "materialize", "--select", "*", "-m", "definitions"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_materialize_everything_from_the_cli_twice(ragflow_sandbox, tmp_path):
    source = tmp_path / "docs"
    shutil.copytree(ROOT / "examples" / "sample_docs", source)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RAGFLOW_BASE_URL": ragflow_sandbox.base_url,
        "RAGFLOW_API_KEY": ragflow_sandbox.api_key,
        "RAGFLOW_SOURCE": str(source),
        "RAGFLOW_DATASET": "cli_project",
    }
    env.pop("RAGFLOW_PARTITIONING", None)
    first = _materialize(env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "RUN_SUCCESS" in first.stderr + first.stdout
    files = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    state = _docs(ragflow_sandbox, "cli_project")
    assert sorted(state) == files

    second = _materialize(env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _docs(ragflow_sandbox, "cli_project") == state  # same ids, times and metadata
    log = second.stderr + second.stdout
    assert f'"unchanged": {len(files)}' in log and '"uploaded": 0' in log
