"""``RAGFlowIngestionComponent`` with ``routes:``: loads from YAML in a temp dg project, builds
one asset per dataset, its sensor requests the one routed job, and the job runs against the
sandbox (end states by raw HTTP listings)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from ragflow_dagster.sync.identity import managed_path
from tests.reliability.raw import dataset_id, raw_documents

TYPE = "ragflow_dagster.components.RAGFlowIngestionComponent"


def _tree(root: Path) -> Path:
    stamp = time.time() - 600
    for rel in ("eng/a.md", "eng/deep/b.md", "sales/c.md", "misc/d.md", "top.md"):
        p = root / "docs" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# {rel}\nsome words about {rel}\n")
        os.utime(p, (stamp, stamp))
    return root / "docs"


def _write(sandbox, name: str, attributes: dict) -> Path:
    path = sandbox.defs_folder_path / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "defs.yaml").write_text(yaml.safe_dump({"type": TYPE, "attributes": attributes}))
    return path


def _attributes(folder: Path, prefix: str) -> dict:
    return {
        "source": str(folder),
        "routes": [
            {"glob": "eng/**", "dataset": f"{prefix}_eng"},
            {
                "glob": ["sales/**", "misc/**"],
                "dataset": {"name": f"{prefix}_sales", "parser_config": {"chunk_token_num": 64}},
            },
        ],
        "default_dataset": f"{prefix}_general",
        "sensor": {"settle_seconds": 0},
        "freshness": {"fail_window": "12h"},
    }


def test_routes_in_yaml_load_build_one_asset_per_dataset_and_run(
    tmp_path, ragflow_sandbox, monkeypatch
):
    monkeypatch.setenv("RAGFLOW_BASE_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", ragflow_sandbox.api_key)
    folder = _tree(tmp_path)
    p = "cr"
    with create_defs_folder_sandbox() as sandbox:
        path = _write(sandbox, "by_team", _attributes(folder, p))
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert component.routes is not None and len(component.routes) == 2
            keys = {a.key.to_user_string() for a in defs.resolve_all_asset_specs()}
            assert keys == {"ragflow/by_team/source"} | {
                f"ragflow/{p}_{d}/{s}"
                for d in ("eng", "sales", "general")
                for s in ("documents", "chunks")
            }
            multi = defs.resolve_assets_def(dg.AssetKey(["ragflow", f"{p}_eng", "documents"]))
            assert len(multi.check_keys) == 9  # three checks for each of three datasets
            spec = multi.specs_by_key[dg.AssetKey(["ragflow", f"{p}_sales", "chunks"])]
            assert spec.freshness_policy is not None
            assert multi.op.pool == "ragflow_by_team"

            # the sensor requests the whole routed job
            sensor = defs.resolve_sensor_def("by_team_sensor")
            with dg.instance_for_test() as instance:
                (req,) = sensor(dg.build_sensor_context(instance=instance)).run_requests
                assert req.job_name == "by_team_sync"

            result = defs.resolve_job_def("by_team_sync").execute_in_process(
                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
            )
            assert result.success
            verdicts = [e.passed for e in result.get_asset_check_evaluations()]
            assert len(verdicts) == 9 and all(verdicts)

    sb = ragflow_sandbox

    def paths(name: str) -> set[str]:
        docs = raw_documents(sb.base_url, sb.api_key, dataset_id(sb.base_url, sb.api_key, name))
        assert all(d["run"] == "DONE" for d in docs)
        return {managed_path(d["meta_fields"]) for d in docs}  # type: ignore[misc]

    assert paths(f"{p}_eng") == {"eng/a.md", "eng/deep/b.md"}
    assert paths(f"{p}_sales") == {"sales/c.md", "misc/d.md"}
    assert paths(f"{p}_general") == {"top.md"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"dataset": "x"}, "cannot be combined with dataset"),
        ({"partitioning": "files"}, "cannot be combined with partitioning"),
    ],
)
def test_routes_refuse_what_they_cannot_do(tmp_path, extra, message):
    folder = _tree(tmp_path)
    with create_defs_folder_sandbox() as sandbox:
        path = _write(sandbox, "bad", {**_attributes(folder, "bad"), **extra})
        with (
            pytest.raises(Exception) as info,
            sandbox.load_component_and_build_defs(defs_path=path),
        ):
            pass
        assert message in _chain(info.value)


def test_neither_dataset_nor_routes_is_an_error(tmp_path):
    with create_defs_folder_sandbox() as sandbox:
        path = _write(sandbox, "none", {"source": str(_tree(tmp_path))})
        with (
            pytest.raises(Exception) as info,
            sandbox.load_component_and_build_defs(defs_path=path),
        ):
            pass
        assert "give a dataset, or routes" in _chain(info.value)


def _chain(exc: BaseException | None) -> str:
    """The messages of an exception and its causes (dg wraps load errors)."""
    out = []
    while exc is not None:
        out.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)
