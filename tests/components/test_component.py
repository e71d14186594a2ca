"""``RAGFlowIngestionComponent`` loaded from YAML in a temp dg project (no RAGFlow needed)."""

from __future__ import annotations

import importlib.metadata
import os
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

import ragflow_dagster
from ragflow_dagster.components import RAGFlowIngestionComponent, parse_duration
from ragflow_dagster.sensors import RECONCILE_TAG

TYPE = "ragflow_dagster.components.RAGFlowIngestionComponent"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "component_project"


def _docs(root: Path, n: int = 3) -> Path:
    stamp = time.time() - 600
    for i in range(n):
        p = root / "docs" / f"d{i}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"doc {i}")
        os.utime(p, (stamp, stamp))
    return root / "docs"


def _write(sandbox, name: str, attributes: dict, type_name: str = TYPE) -> Path:
    path = sandbox.defs_folder_path / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "defs.yaml").write_text(yaml.safe_dump({"type": type_name, "attributes": attributes}))
    return path


def test_yaml_builds_the_whole_graph(tmp_path):
    folder = _docs(tmp_path)
    attributes = {
        "source": str(folder),
        "dataset": {
            "name": "HR Handbook",
            "chunk_method": "naive",
            "parser_config": {"chunk_token_num": 256},
        },
        "filters": {"extensions": ["md"], "exclude_dirs": [".git"], "max_size": "50MB"},
        "partitioning": "files",
        "sensor": {"minimum_interval_seconds": 45, "settle_seconds": 5, "max_partition_adds": 200},
        "schedule": {"cron": "15 3 * * *"},
        "freshness": {"fail_window": "12h", "warn_window": 90},
        "checks": {
            "max_lag": "30m",
            "blocking": True,
            "retrieval_probes": [{"question": "doc?", "expected_path": "d1.md"}],
        },
        "resource": {"base_url_env": "MY_RAGFLOW_URL", "api_key_env": "MY_RAGFLOW_KEY"},
    }
    with create_defs_folder_sandbox() as sandbox:
        path = _write(sandbox, "handbook", attributes)
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, RAGFlowIngestionComponent)
            assert component.sensor.max_partition_adds == 200
            prefix = ["ragflow", "hr_handbook"]
            keys = {a.key for a in defs.resolve_all_asset_specs()}
            assert keys == {dg.AssetKey([*prefix, k]) for k in ("source", "documents", "chunks")}
            docs = defs.resolve_assets_def(dg.AssetKey([*prefix, "documents"]))
            policy = docs.specs_by_key[dg.AssetKey([*prefix, "documents"])].freshness_policy
            assert policy.fail_window.to_timedelta() == timedelta(hours=12)
            assert policy.warn_window.to_timedelta() == timedelta(minutes=90)
            checks = {c.name: c for c in docs.check_specs}
            assert checks["documents_match_source"].blocking is True
            assert "retrieval_smoke_test" in checks  # one multi-asset holds every check
            assert docs.op.pool == "ragflow_hr_handbook"
            job = defs.resolve_job_def("hr_handbook_sync")
            assert job.partitions_def == dg.DynamicPartitionsDefinition(name="hr_handbook_files")
            sensor = defs.resolve_sensor_def("hr_handbook_sensor")
            assert sensor.minimum_interval_seconds == 45
            assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
            schedule = defs.resolve_schedule_def("hr_handbook_reconcile_schedule")
            assert schedule.cron_schedule == "15 3 * * *"
            resource = defs.resources["ragflow"]
            assert type(resource).__name__ == "RAGFlowResource"
            assert resource.api_key == dg.EnvVar("MY_RAGFLOW_KEY")
            assert resource.base_url == dg.EnvVar("MY_RAGFLOW_URL")
            assert set(defs.resources) == {"ragflow"}  # no IO manager: state lives in RAGFlow


def test_the_components_sensor_adds_partitions_and_requests_a_run(tmp_path):
    folder = _docs(tmp_path, 4)
    with create_defs_folder_sandbox() as sandbox:
        path = _write(
            sandbox,
            "kb",
            {
                "source": str(folder),
                "dataset": "kb",
                "partitioning": "files",
                "sensor": {"settle_seconds": 0},
            },
        )
        with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
            sensor = defs.resolve_sensor_def("kb_sensor")
            with dg.instance_for_test() as instance:
                result = sensor(dg.build_sensor_context(instance=instance))
                (add,) = result.dynamic_partitions_requests
                assert add.partitions_def_name == "kb_files"
                assert sorted(add.partition_keys) == [f"d{i}.md" for i in range(4)]
                (run,) = result.run_requests
                assert run.job_name == "kb_sync"
                assert RECONCILE_TAG not in run.tags
                assert len(result.cursor) < 4096


def test_shards_s3_and_switches(s3_endpoint, monkeypatch):
    monkeypatch.setenv("MANUALS_ENDPOINT", s3_endpoint.endpoint_url)
    attributes = {
        "source": {"uri": "s3://manuals/en", "endpoint_url": "{{ env.MANUALS_ENDPOINT }}"},
        "dataset": "manuals",
        "partitioning": "shards",
        "shards": 16,
        "sensor": {"enabled": False},
        "schedule": {"default_status": "stopped"},
        "group_name": "docs",
    }
    with create_defs_folder_sandbox() as sandbox:
        path = _write(sandbox, "manuals", attributes)
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            source = component.build_source(None)
            assert source.uri == "s3://manuals/en"
            assert source.endpoint_url == s3_endpoint.endpoint_url
            job = defs.resolve_job_def("manuals_sync")
            assert len(job.partitions_def.get_partition_keys()) == 16
            assert not list(defs.sensors or [])
            schedule = defs.resolve_schedule_def("manuals_reconcile_schedule")
            assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
            specs = defs.resolve_all_asset_specs()
            assert {s.group_name for s in specs} == {"docs"}


def test_ingestions_share_one_resource(tmp_path):
    a, b, c = (_docs(tmp_path / n) for n in "abc")
    with create_defs_folder_sandbox() as sandbox:
        _write(sandbox, "first", {"source": str(a), "dataset": "first"})
        _write(sandbox, "second", {"source": str(b), "dataset": "second", "partitioning": "none"})
        _write(
            sandbox, "third", {"source": str(c), "dataset": "third", "resource": {"provide": False}}
        )
        with sandbox.build_all_defs() as defs:
            assert {s.name for s in defs.sensors} == {
                "first_sensor",
                "second_sensor",
                "third_sensor",
            }
            assert len(defs.resolve_all_asset_specs()) == 9
            assert set(defs.resources) == {"ragflow"}
            defs.resolve_job_def("third_sync")  # its resource comes from the others


def test_relative_folders_are_relative_to_the_defs_yaml():
    with create_defs_folder_sandbox() as sandbox:
        path = _write(sandbox, "rel", {"source": "docs", "dataset": "rel"})
        _docs(path)
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, _defs):
            ctx = type("Ctx", (), {"path": path})()
            assert component.build_source(ctx).root == str(path / "docs")


def test_bad_yaml_names_the_field():
    with create_defs_folder_sandbox() as sandbox:
        path = _write(
            sandbox, "bad", {"source": "/tmp", "dataset": "x", "freshness": {"fail_window": "soon"}}
        )
        assert "fail_window" in _load_error(sandbox, path)
        path = _write(
            sandbox, "bad2", {"source": "/tmp", "dataset": "x", "partitioning": "per-file"}
        )
        assert "partitioning" in _load_error(sandbox, path)


def test_metadata_and_rules_sections_reach_the_sync_options(tmp_path):
    folder = _docs(tmp_path)
    attributes = {
        "source": str(folder),
        "dataset": "mapped",
        "metadata": {
            "static": [{"glob": "hr/**", "set": {"department": "HR"}}],
            "from_path": [{"regex": "^(?P<team>[^/]+)/", "types": {}}],
            "front_matter": {"keys": ["title"]},
            "sidecar": True,
        },
        "rules": [{"glob": "faq/**", "chunk_method": "qa", "parser_config": {"raptor": {}}}],
    }
    with create_defs_folder_sandbox() as sandbox:
        path = _write(sandbox, "mapped", attributes)
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, _defs):
            ingestion = component.build_ingestion(None)
            opts = ingestion.target.sync_options
            assert opts.metadata.static[0].set == {"department": "HR"}
            assert opts.metadata.sidecar and opts.metadata.front_matter.keys == ("title",)
            assert opts.rules.rule_for("faq/a.csv").chunk_method == "qa"
        bad = _write(
            sandbox,
            "badrule",
            {"source": str(folder), "dataset": "x", "rules": [{"glob": "*", "chunk_method": "x"}]},
        )
        assert "rules:" in _load_error(sandbox, bad) and "chunk_method 'x'" in _load_error(
            sandbox, bad
        )


def _load_error(sandbox, path: Path) -> str:
    """The whole chain of messages of the error loading a component."""
    try:
        with sandbox.load_component_and_build_defs(defs_path=path):
            pass
    except Exception as exc:
        parts, e = [], exc
        while e is not None:
            parts.append(str(e))
            e = e.__cause__ or e.__context__
        return "\n".join(parts)
    raise AssertionError("the component loaded")


def test_scaffolder_writes_a_commented_defs_yaml_that_loads(tmp_path):
    folder = _docs(tmp_path)
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            component_cls=RAGFlowIngestionComponent,
            defs_path="scaffolded",
            scaffold_params={"source": str(folder), "dataset": "scaffolded_kb"},
        )
        text = (path / "defs.yaml").read_text()
        assert "# none: a reconcile is one run" in text
        assert "RAGFlowIngestionComponent" in text.splitlines()[0]
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert component.dataset.name == "scaffolded_kb"
            assert defs.resolve_sensor_def("scaffolded_kb_sensor") is not None
            assert (
                defs.resolve_schedule_def("scaffolded_kb_reconcile_schedule").cron_schedule
                == "0 2 * * *"
            )


def test_durations():
    assert parse_duration(90) == timedelta(minutes=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("45s") == timedelta(seconds=45)
    assert parse_duration("2d") == timedelta(days=2)
    with pytest.raises(ValueError):
        parse_duration("1 fortnight")


def test_registered_for_dg():
    groups = importlib.metadata.entry_points(group="dagster_dg_cli.registry_modules")
    assert "ragflow_dagster" in {ep.value for ep in groups}


@pytest.mark.skipif(
    not hasattr(ragflow_dagster, "RAGFlowIngestionComponent"),
    reason="ragflow_dagster/__init__.py does not export RAGFlowIngestionComponent yet",
)
def test_top_level_type_name_loads(tmp_path):
    folder = _docs(tmp_path)
    with create_defs_folder_sandbox() as sandbox:
        path = _write(
            sandbox,
            "top",
            {"source": str(folder), "dataset": "top"},
            type_name="ragflow_dagster.RAGFlowIngestionComponent",
        )
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, _defs):
            assert isinstance(component, RAGFlowIngestionComponent)


@pytest.mark.skipif(
    not hasattr(ragflow_dagster, "RAGFlowIngestionComponent"),
    reason="ragflow_dagster/__init__.py does not export RAGFlowIngestionComponent yet",
)
def test_example_project_loads_with_its_sensors(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    defs = dg.load_from_defs_folder(path_within_project=EXAMPLE)
    assert {s.name for s in defs.sensors} == {
        "acme_handbook_sensor",
        "product_manuals_sensor",
        "by_team_sensor",
    }
    assert {s.name for s in defs.schedules} == {
        "acme_handbook_reconcile_schedule",
        "product_manuals_reconcile_schedule",
        "by_team_reconcile_schedule",
    }
