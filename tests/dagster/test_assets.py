"""The asset graph inside real Dagster runs, against the sandbox server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from ragflow_dagster.assets import DatasetConfig, build_ragflow_ingestion
from ragflow_dagster.checks import RetrievalProbe
from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.resource import RAGFlowResource
from ragflow_dagster.sync.identity import managed_path, partition_key

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

TREE = {
    "guide/intro.md": "# Intro\nThe sandbox retrieves by keywords like zeppelin.\n",
    "guide/setup.txt": "Install the package, then run make demo to see the sync.\n",
    "data/table.csv": "city,country\nLisbon,Portugal\nPorto,Portugal\n",
    "notes.json": '{"topic": "quokkas live on Rottnest island"}',
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "src"
    write_tree(root, TREE)
    return root


@pytest.fixture
def dataset_name(request) -> str:
    return "assets_" + request.node.name[:60]


@pytest.fixture
def resources(ragflow_sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_RAGFLOW_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("TEST_RAGFLOW_KEY", ragflow_sandbox.api_key)
    return {
        "ragflow": RAGFlowResource(
            base_url=dg.EnvVar("TEST_RAGFLOW_URL"), api_key=dg.EnvVar("TEST_RAGFLOW_KEY")
        ),
    }


@pytest.fixture
def client(ragflow_sandbox):
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as c:
        yield c


def docs_by_path(client: RAGFlowClient, name: str) -> dict[str, object]:
    ds = client.find_dataset(name)
    assert ds is not None
    return {
        managed_path(d.meta_fields): d
        for d in client.iter_documents(ds.id)
        if managed_path(d.meta_fields)
    }


def run(
    ingestion, resources, tmp_path, *, instance=None, tags=None, partition_key=None, run_config=None
):
    return dg.materialize(
        ingestion.assets,
        resources={**resources, **ingestion.resources(frames_dir=str(tmp_path / "frames"))},
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags=tags,
        partition_key=partition_key,
        run_config=run_config,
        raise_on_error=False,
    )


def checks_of(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_specs_read_well_in_the_ui():
    ing = build_ragflow_ingestion(
        source="/tmp",
        dataset="HR Handbook (2024)",
        freshness=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2)),
    )
    keys = {a.key.to_user_string() for a in ing.assets}
    assert keys == {
        "ragflow/hr_handbook_2024/source_files",
        "ragflow/hr_handbook_2024/documents",
        "ragflow/hr_handbook_2024/chunks",
    }
    by_name = {a.key.path[-1]: a for a in ing.assets}
    docs_spec = next(iter(by_name["documents"].specs))
    assert "ragflow" in docs_spec.kinds
    assert docs_spec.group_name == "ragflow_hr_handbook_2024"
    assert docs_spec.freshness_policy is not None
    assert docs_spec.freshness_policy.fail_window.to_timedelta() == timedelta(hours=2)
    assert next(iter(by_name["chunks"].specs)).freshness_policy is not None
    assert {d.asset_key for d in docs_spec.deps} == {by_name["source_files"].key}
    checks = {c.name: c for a in ing.assets for c in a.check_specs}
    assert checks["documents_match_source"].blocking and checks["chunks_healthy"].blocking
    assert not checks["sync_lag"].blocking
    assert by_name["documents"].backfill_policy == dg.BackfillPolicy.single_run()
    assert isinstance(ing.partitions_def, dg.DynamicPartitionsDefinition)
    assert ing.partitions_def.name == "hr_handbook_2024_files"
    assert by_name["documents"].op.pool == "ragflow"


def test_default_freshness_policy_is_present():
    ing = build_ragflow_ingestion(source="/tmp", dataset="x", partitioning="none")
    spec = next(s for a in ing.assets for s in a.specs if s.key.path[-1] == "documents")
    assert spec.freshness_policy is not None
    assert ing.partitions_def is None


def test_unpartitioned_sync_with_envvar_resource(tree, resources, client, dataset_name, tmp_path):
    ing = build_ragflow_ingestion(
        source=str(tree),
        dataset=DatasetConfig(dataset_name, parser_config={"chunk_token_num": 128}),
        partitioning="none",
        retrieval_probes=[RetrievalProbe("quokkas Rottnest", "notes.json")],
    )
    result = run(ing, resources, tmp_path)
    assert result.success
    assert checks_of(result) == {
        "documents_match_source": True,
        "sync_lag": True,
        "chunks_healthy": True,
        "retrieval_smoke_test": True,
    }
    mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    meta = mats["documents"].materialization.metadata
    assert meta["uploaded"].value == 4 and meta["failed"].value == 0
    assert "dataset_url" in meta or "dataset_id" in meta
    frame = result.output_for_node(ing.assets[0].op.name)
    assert sorted(frame["path"]) == sorted(TREE)
    chunks = result.output_for_node(ing.assets[2].op.name)
    assert set(chunks["run"]) == {"DONE"} and (chunks["chunk_count"] > 0).all()
    assert sorted(docs_by_path(client, dataset_name)) == sorted(TREE)

    again = run(ing, resources, tmp_path)
    meta = {m.asset_key.path[-1]: m for m in again.get_asset_materialization_events()}
    assert meta["documents"].materialization.metadata["uploaded"].value == 0
    assert meta["documents"].materialization.metadata["unchanged"].value == 4


def test_dry_run_fails_the_blocking_check_and_skips_chunks(tree, resources, dataset_name, tmp_path):
    import os
    import time

    old = time.time() - 3 * 3600  # changes made three hours ago, never synced
    for p in tree.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    ing = build_ragflow_ingestion(source=str(tree), dataset=dataset_name, partitioning="none")
    docs_op = next(a for a in ing.assets if a.key.path[-1] == "documents").op.name
    result = run(
        ing, resources, tmp_path, run_config={"ops": {docs_op: {"config": {"dry_run": True}}}}
    )
    assert not result.success
    assert checks_of(result)["documents_match_source"] is False
    assert checks_of(result)["sync_lag"] is False  # warns: three-hour-old changes are missing
    assert not any(
        m.asset_key.path[-1] == "chunks" for m in result.get_asset_materialization_events()
    )


def test_file_partitions_one_key_a_range_and_a_full_reconcile(
    tree, resources, client, dataset_name, tmp_path
):
    ing = build_ragflow_ingestion(source=str(tree), dataset=dataset_name)
    instance = dg.DagsterInstance.ephemeral()
    keys = sorted(partition_key(p) for p in TREE)
    instance.add_dynamic_partitions(ing.partitions_def.name, keys)

    one = run(ing, resources, tmp_path, instance=instance, partition_key="notes.json")
    assert one.success
    assert sorted(docs_by_path(client, dataset_name)) == ["notes.json"]

    rng = run(
        ing, resources, tmp_path, instance=instance, tags={RANGE_START: keys[0], RANGE_END: keys[1]}
    )
    assert rng.success
    assert sorted(docs_by_path(client, dataset_name)) == sorted([*keys[:2], "notes.json"])
    mats = [
        m for m in rng.get_asset_materialization_events() if m.asset_key.path[-1] == "documents"
    ]
    assert len(mats) == 2  # one materialization per partition of the range

    full = run(
        ing,
        resources,
        tmp_path,
        instance=instance,
        tags={RANGE_START: keys[0], RANGE_END: keys[-1]},
    )
    assert full.success and sorted(docs_by_path(client, dataset_name)) == sorted(TREE)

    # a removed file: the full reconcile deletes its document
    (tree / "guide/setup.txt").unlink()
    rerun = run(
        ing,
        resources,
        tmp_path,
        instance=instance,
        tags={RANGE_START: keys[0], RANGE_END: keys[-1]},
    )
    assert rerun.success
    assert "guide/setup.txt" not in docs_by_path(client, dataset_name)


def test_shard_partitions(tree, resources, client, dataset_name, tmp_path):
    ing = build_ragflow_ingestion(
        source=str(tree), dataset=dataset_name, partitioning="shards", shards=4
    )
    shard = ing.partitioning.key_for("notes.json")
    result = run(ing, resources, tmp_path, partition_key=shard)
    assert result.success
    expected = sorted(p for p in TREE if ing.partitioning.key_for(p) == shard)
    assert sorted(docs_by_path(client, dataset_name)) == expected


def test_parse_failure_fails_the_chunks_check(tmp_path, resources, dataset_name, ragflow_sandbox):
    root = tmp_path / "bad"
    write_tree(root, {"ok.txt": "fine text\n"})
    (root / "broken.pdf").write_bytes(b"this is not a pdf at all")
    ing = build_ragflow_ingestion(source=str(root), dataset=dataset_name, partitioning="none")
    result = run(ing, resources, tmp_path)
    assert not result.success
    assert checks_of(result)["chunks_healthy"] is False
    assert checks_of(result)["documents_match_source"] is True


def test_retrieval_probe_that_misses_fails_its_check(tree, resources, dataset_name, tmp_path):
    ing = build_ragflow_ingestion(
        source=str(tree),
        dataset=dataset_name,
        partitioning="none",
        retrieval_probes=[RetrievalProbe("zeppelin keywords", "notes.json", top_n=1)],
    )
    result = run(ing, resources, tmp_path)
    assert result.success  # a WARN check does not fail the run
    assert checks_of(result)["retrieval_smoke_test"] is False
    assert checks_of(result)["chunks_healthy"] is True
