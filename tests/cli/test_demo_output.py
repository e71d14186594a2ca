"""``make demo``'s output: a failed run says ``converged: false`` and why; a good run is recorded
in the persistent instance that ``make dev`` opens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragflow_dagster import demo


@pytest.fixture
def docs(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.md").write_text("# Alpha\nVacation policy: 25 days.\n")
    (root / "b.txt").write_text("Bravo travel rules.\n")
    return root


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_a_failed_demo_prints_converged_false_and_its_error(
    ragflow_sandbox, docs, home, monkeypatch, capsys
):
    monkeypatch.setenv("RAGFLOW_BASE_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", "ragflow-not-the-key")
    monkeypatch.setenv("RAGFLOW_SOURCE", str(docs))
    monkeypatch.setenv("RAGFLOW_DATASET", "demo-failed")
    assert demo.main([]) == 1
    captured = capsys.readouterr()
    line = _last_json(captured.out)
    assert line["converged"] is False
    assert "refused the API key" in line["error"] and "RAGFLOW_API_KEY" in line["error"]
    assert "failed" not in line and "uploaded" not in line  # no zero-filled success shape
    assert "ragflow-not-the-key" not in captured.out + captured.err
    assert "DEBUG" not in captured.err  # a quiet default: no Dagster event log


def test_the_demo_run_is_recorded_in_the_shared_instance(
    ragflow_sandbox, docs, home, monkeypatch, capsys
):
    import dagster as dg

    monkeypatch.setenv("RAGFLOW_BASE_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", ragflow_sandbox.api_key)
    monkeypatch.setenv("RAGFLOW_SOURCE", str(docs))
    monkeypatch.setenv("RAGFLOW_DATASET", "demo-recorded")
    assert demo.main([]) == 0
    captured = capsys.readouterr()
    line = _last_json(captured.out)
    assert line["converged"] is True and line["uploaded"] == 2 and "error" not in line
    assert "BetaWarning" not in captured.err and "DEBUG" not in captured.err
    # what `make dev` will open: the same instance, with the run, the partitions and the checks
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].is_success
        records = instance.fetch_materializations(
            dg.AssetKey(["ragflow", "demo_recorded", "documents"]), limit=10
        ).records
        assert len(records) == 1  # unpartitioned by default: one materialization per run
        meta = records[0].asset_materialization.metadata
        assert meta["uploaded"].value == 2 and meta["converged"].value is True
        checks = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(
                dg.AssetKey(["ragflow", "demo_recorded", "documents"]), "documents_match_source"
            )
        )
        assert checks is not None
    assert (home / "dagster.yaml").exists()


def test_the_readme_states_the_sensor_default_that_make_dev_shows(monkeypatch):
    """The README's first screen says the root project's sensor and schedule start stopped."""
    import dagster as dg

    from ragflow_dagster.project import ServerInfo, build_project

    monkeypatch.delenv("RAGFLOW_SOURCE", raising=False)
    monkeypatch.delenv("RAGFLOW_DATASET", raising=False)
    project = build_project(ServerInfo("http://127.0.0.1:9", "ragflow-unused", embedded=True))
    defs = project.defs
    sensor = defs.resolve_sensor_def("acme_handbook_sensor")
    schedule = defs.resolve_schedule_def("acme_handbook_reconcile_schedule")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    first_screen = readme.split("## What it does")[0]
    assert "`acme_handbook_sensor` and `acme_handbook_reconcile_schedule` are **stopped**" in (
        " ".join(first_screen.split())
    )
