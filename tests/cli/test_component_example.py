"""``examples/component_project`` works out of the box: every check of its handbook ingestion
passes on the sandbox, and with no ``RAGFLOW_*`` set it falls back to the embedded sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import requests

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "component_project"
SAMPLE_DOCS = EXAMPLE.parent / "sample_docs"


def test_the_handbook_ingestion_passes_all_its_checks(
    ragflow_sandbox_factory, tmp_path, monkeypatch
):
    import dagster as dg

    sb = ragflow_sandbox_factory()  # its own server: the example's dataset name is fixed
    monkeypatch.setenv("RAGFLOW_BASE_URL", sb.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", sb.api_key)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from component_project.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def("acme_handbook_sync")
    keys = sorted(
        p.relative_to(SAMPLE_DOCS).as_posix() for p in SAMPLE_DOCS.rglob("*") if p.is_file()
    )
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("acme_handbook_files", keys)
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
    verdicts = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert result.success
    assert verdicts == {
        "documents_match_source": True,
        "sync_lag": True,
        "chunks_healthy": True,
        "retrieval_smoke_test": True,
    }
    # the end state, seen from outside
    headers = {"Authorization": f"Bearer {sb.api_key}"}
    ds = requests.get(
        f"{sb.base_url}/api/v1/datasets", params={"name": "acme_handbook"}, headers=headers
    ).json()["data"][0]
    docs = requests.get(
        f"{sb.base_url}/api/v1/datasets/{ds['id']}/documents",
        params={"page_size": 100},
        headers=headers,
    ).json()["data"]["docs"]
    assert sorted(d["meta_fields"]["source_path"] for d in docs) == keys
    assert all(d["run"] == "DONE" for d in docs)


def test_without_ragflow_settings_it_falls_back_to_the_embedded_sandbox(tmp_path):
    code = (
        "import json, os; from component_project.definitions import _server_env; _server_env(); "
        "print(json.dumps({k: os.environ[k] for k in ('RAGFLOW_BASE_URL', 'RAGFLOW_API_KEY')}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGFLOW_")}
    env.update(DAGSTER_HOME=str(tmp_path), PYTHONPATH=str(EXAMPLE / "src"))
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOCAL RAGFlow SANDBOX" in proc.stderr
    server = json.loads(proc.stdout.strip().splitlines()[-1])
    assert server["RAGFLOW_BASE_URL"].startswith("http://127.0.0.1:")
    # the sandbox kept its data (and its key) beside the instance, for the next load to reuse
    state = json.loads((tmp_path / "ragflow-sandbox" / "server.json").read_text())
    assert state["api_key"] == server["RAGFLOW_API_KEY"]
    # and it stopped with the process that started it
    try:
        requests.get(server["RAGFLOW_BASE_URL"] + "/api/v1/datasets", timeout=2)
    except requests.ConnectionError:
        pass
    else:  # pragma: no cover
        raise AssertionError("the embedded sandbox outlived its process")


def test_the_routed_ingestion_fills_three_datasets_from_one_listing(
    ragflow_sandbox_factory, tmp_path, monkeypatch
):
    import dagster as dg

    sb = ragflow_sandbox_factory()  # its own server: the example's dataset names are fixed
    monkeypatch.setenv("RAGFLOW_BASE_URL", sb.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", sb.api_key)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from component_project.definitions import defs

    job = defs().resolve_job_def("by_team_sync")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    verdicts = {
        (e.asset_key.path[1], e.check_name): e.passed for e in result.get_asset_check_evaluations()
    }
    assert len(verdicts) == 9 and all(verdicts.values())
    files = sorted(
        p.relative_to(SAMPLE_DOCS).as_posix() for p in SAMPLE_DOCS.rglob("*") if p.is_file()
    )
    expected = {
        "acme_engineering": {f for f in files if f.startswith("engineering/")},
        "acme_policies": {f for f in files if f.startswith("policies/")},
        "acme_general": {f for f in files if not f.startswith(("engineering/", "policies/"))},
    }
    headers = {"Authorization": f"Bearer {sb.api_key}"}
    for name, paths in expected.items():
        ds = requests.get(
            f"{sb.base_url}/api/v1/datasets", params={"name": name}, headers=headers
        ).json()["data"][0]
        docs = requests.get(
            f"{sb.base_url}/api/v1/datasets/{ds['id']}/documents",
            params={"page_size": 100},
            headers=headers,
        ).json()["data"]["docs"]
        assert {d["meta_fields"]["source_path"] for d in docs} == paths, name
        assert all(d["run"] == "DONE" for d in docs)
        for d in docs:  # the example's metadata mapping and parsing rule
            path = d["meta_fields"]["source_path"]
            if "/" in path:
                assert d["meta_fields"]["team"] == path.split("/")[0], path
            else:
                assert "team" not in d["meta_fields"], path
            assert (d["meta_fields"].get("confidential") == "no") == path.startswith("policies/")
            assert d["chunk_method"] == ("table" if path.endswith(".csv") else "naive"), path
