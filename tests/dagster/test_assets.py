"""The asset graph inside real Dagster runs, against the sandbox server: the event stream of
``RAGFlowResource.sync``, the translator, the decorator, partitions."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import requests

from ragflow_dagster.asset_decorator import ragflow_ingestion_assets
from ragflow_dagster.assets import DatasetConfig, build_ragflow_ingestion
from ragflow_dagster.checks import RetrievalProbe
from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.resource import RAGFlowResource
from ragflow_dagster.sync.identity import managed_path, partition_key
from ragflow_dagster.translator import DagsterRAGFlowTranslator, RAGFlowAssetProps, RAGFlowTarget

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


def run(ingestion, resources, *, instance=None, tags=None, partition_key=None, run_config=None):
    defs = dg.Definitions(assets=ingestion.assets, jobs=[ingestion.job], resources=resources)
    job = defs.resolve_job_def(ingestion.job.name)
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags=tags,
        partition_key=partition_key,
        run_config=run_config,
        raise_on_error=False,
    )


def checks_of(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def mats_of(result, stage: str) -> list[dg.AssetMaterialization]:
    return [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == stage
    ]


def raw_docs(sandbox, name: str) -> dict[str, dict]:
    """The dataset's managed documents by source path, read by raw HTTP."""
    h = {"Authorization": f"Bearer {sandbox.api_key}"}
    ds = requests.get(
        f"{sandbox.base_url}/api/v1/datasets", params={"name": name}, headers=h, timeout=10
    ).json()["data"]
    assert len(ds) == 1
    out: dict[str, dict] = {}
    page = 1
    while True:
        body = requests.get(
            f"{sandbox.base_url}/api/v1/datasets/{ds[0]['id']}/documents",
            params={"page": page, "page_size": 100},
            headers=h,
            timeout=10,
        ).json()["data"]
        for d in body["docs"]:
            path = managed_path(d.get("meta_fields") or {})
            if path:
                out[path] = d
        if len(body["docs"]) < 100:
            return out
        page += 1


def test_specs_read_well_in_the_ui():
    ing = build_ragflow_ingestion(
        source="/tmp",
        dataset="HR Handbook (2024)",
        freshness=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2)),
    )
    specs = {s.key.path[-1]: s for a in ing.assets for s in _specs(a)}
    assert {s.key.to_user_string() for s in specs.values()} == {
        "ragflow/hr_handbook_2024/source",
        "ragflow/hr_handbook_2024/documents",
        "ragflow/hr_handbook_2024/chunks",
    }
    docs_spec = specs["documents"]
    assert {"ragflow", "file"} <= set(docs_spec.kinds)
    assert docs_spec.group_name == "ragflow_hr_handbook_2024"
    assert docs_spec.tags["ragflow_dagster/dataset"] == "hr_handbook_2024"
    assert docs_spec.freshness_policy.fail_window.to_timedelta() == timedelta(hours=2)
    assert specs["chunks"].freshness_policy is not None
    assert {d.asset_key for d in docs_spec.deps} == {specs["source"].key}
    assert {d.asset_key for d in specs["chunks"].deps} == {docs_spec.key}
    multi = ing.assets[1]
    checks = {c.name: c for c in multi.check_specs}
    assert checks["documents_match_source"].blocking and checks["chunks_healthy"].blocking
    assert not checks["sync_lag"].blocking
    assert ing.partitions_def is None and multi.backfill_policy is None
    assert multi.op.pool == "ragflow_hr_handbook_2024"  # one pool per dataset
    assert ing.job.tags == {"ragflow_dagster/dataset": "hr_handbook_2024"}


def _specs(a):
    return [a] if isinstance(a, dg.AssetSpec) else list(a.specs)


def test_opt_in_partitions_are_single_run_backfills():
    files = build_ragflow_ingestion(source="/tmp", dataset="x", partitioning="files")
    assert isinstance(files.partitions_def, dg.DynamicPartitionsDefinition)
    assert files.partitions_def.name == "x_files"
    assert files.assets[1].backfill_policy == dg.BackfillPolicy.single_run()
    shards = build_ragflow_ingestion(source="/tmp", dataset="x", partitioning="shards", shards=8)
    assert len(shards.partitions_def.get_partition_keys()) == 8
    with pytest.raises(ValueError, match="partitioning must be"):
        build_ragflow_ingestion(source="/tmp", dataset="x", partitioning="per-file")  # type: ignore[arg-type]


def test_a_five_line_translator_subclass_moves_keys_and_sets_owners():
    class Mine(DagsterRAGFlowTranslator):
        def get_asset_spec(self, props: RAGFlowAssetProps) -> dg.AssetSpec:
            spec = super().get_asset_spec(props)
            return spec.replace_attributes(
                key=spec.key.with_prefix("kb"), owners=["team:search"], group_name="search"
            )

    ing = build_ragflow_ingestion(source="/tmp", dataset="manuals", translator=Mine())
    specs = {s.key.path[-1]: s for a in ing.assets for s in _specs(a)}
    assert specs["documents"].key.path == ["kb", "ragflow", "manuals", "documents"]
    assert specs["chunks"].owners == ["team:search"] and specs["chunks"].group_name == "search"
    assert {c.asset_key for c in ing.assets[1].check_specs} == {
        specs["documents"].key,
        specs["chunks"].key,
    }


def test_event_stream_of_one_sync_and_a_noop_rerun(tree, resources, dataset_name, ragflow_sandbox):
    ing = build_ragflow_ingestion(
        source=str(tree),
        dataset=DatasetConfig(dataset_name, parser_config={"chunk_token_num": 128}),
        retrieval_probes=[RetrievalProbe("quokkas Rottnest", "notes.json")],
    )
    result = run(ing, resources)
    assert result.success
    assert checks_of(result) == {
        "documents_match_source": True,
        "sync_lag": True,
        "chunks_healthy": True,
        "retrieval_smoke_test": True,
    }
    (docs,) = mats_of(result, "documents")
    (chunks,) = mats_of(result, "chunks")
    assert docs.partition is None
    assert docs.metadata["uploaded"].value == 4 and docs.metadata["failed"].value == 0
    assert docs.metadata["dataset_id"].value
    assert chunks.metadata["parsed"].value == 4 and chunks.metadata["parse_failed"].value == 0
    state = raw_docs(ragflow_sandbox, dataset_name)
    assert sorted(state) == sorted(TREE)
    assert {d["run"] for d in state.values()} == {"DONE"}

    wire: list[str] = []

    class OnTheWire(RAGFlowResource):
        """Records every request the run's client sends (a response hook on its session)."""

        def get_client(self) -> RAGFlowClient:
            client = super().get_client()
            hooks = client._session.hooks["response"]
            if not hooks:
                hooks.append(lambda r, *a, **k: wire.append(f"{r.request.method} {r.request.url}"))
            return client

    counted = {
        "ragflow": OnTheWire(base_url=ragflow_sandbox.base_url, api_key=ragflow_sandbox.api_key)
    }
    again = run(ing, counted)
    assert again.success and all(checks_of(again).values())
    (docs,) = mats_of(again, "documents")
    assert docs.metadata["uploaded"].value == 0 and docs.metadata["unchanged"].value == 4
    # one dataset lookup and one listing of its documents: no second listing, no parse wait
    listings = [u for u in wire if u.startswith("GET") and "/documents" in u]
    assert len(listings) == 1 and "run=" not in listings[0]
    assert docs.metadata["api_calls"].value == 2  # and the retrieval probe's one question:
    assert len(wire) == 3 and wire[-1].startswith("POST") and wire[-1].endswith("/retrieval")
    assert raw_docs(ragflow_sandbox, dataset_name).keys() == state.keys()


def test_a_user_owned_body_around_resource_sync(tree, resources, dataset_name, ragflow_sandbox):
    target = RAGFlowTarget.create(source=str(tree), dataset=dataset_name)
    seen: list[str] = []

    @ragflow_ingestion_assets(target=target)
    def handbook(context: dg.AssetExecutionContext, ragflow: RAGFlowResource):
        for event in ragflow.sync(context=context):
            seen.append(type(event).__name__)
            yield event

    result = dg.materialize([handbook], resources=resources, raise_on_error=False)
    assert result.success
    assert seen.count("MaterializeResult") == 2 and seen.count("AssetCheckResult") == 3
    assert sorted(raw_docs(ragflow_sandbox, dataset_name)) == sorted(TREE)

    # a subset: only documents (and its checks) is materialized
    docs_key = next(k for k in handbook.keys if k.path[-1] == "documents")
    sub = dg.materialize([handbook], resources=resources, selection=[docs_key])
    assert sub.success
    assert [
        m.asset_key for m in (e.materialization for e in sub.get_asset_materialization_events())
    ] == [docs_key]
    assert set(checks_of(sub)) == {"documents_match_source", "sync_lag"}


def test_dry_run_fails_the_blocking_check_and_skips_chunks(
    tree, resources, dataset_name, ragflow_sandbox
):
    import os
    import time

    old = time.time() - 3 * 3600  # changes made three hours ago, never synced
    for p in tree.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    ing = build_ragflow_ingestion(source=str(tree), dataset=dataset_name)
    op = ing.assets[1].op.name
    result = run(ing, resources, run_config={"ops": {op: {"config": {"dry_run": True}}}})
    assert not result.success
    assert checks_of(result)["documents_match_source"] is False
    assert checks_of(result)["sync_lag"] is False  # warns: three-hour-old changes are missing
    assert mats_of(result, "chunks") == []
    assert raw_docs(ragflow_sandbox, dataset_name) == {}


def test_file_partitions_record_only_their_own_partition(
    tree, resources, dataset_name, ragflow_sandbox
):
    ing = build_ragflow_ingestion(source=str(tree), dataset=dataset_name, partitioning="files")
    instance = dg.DagsterInstance.ephemeral()
    keys = sorted(partition_key(p) for p in TREE)
    instance.add_dynamic_partitions(ing.partitions_def.name, keys)

    one = run(ing, resources, instance=instance, partition_key="notes.json")
    assert one.success
    assert sorted(raw_docs(ragflow_sandbox, dataset_name)) == ["notes.json"]
    (m,) = mats_of(one, "documents")  # about its partition only, not the whole run
    assert m.partition == "notes.json"
    assert m.metadata["files"].value == 1 and m.metadata["upload"].value == 1
    assert "scanned" not in m.metadata

    rng = run(ing, resources, instance=instance, tags={RANGE_START: keys[0], RANGE_END: keys[1]})
    assert rng.success
    assert sorted(raw_docs(ragflow_sandbox, dataset_name)) == sorted([*keys[:2], "notes.json"])
    mats = mats_of(rng, "documents")
    assert sorted(m.partition for m in mats) == keys[:2]  # one per partition of the range...
    for m in mats:  # ... each about its own file
        assert m.metadata["files"].value == 1 and m.metadata["upload"].value == 1
        assert m.metadata["path"].value == m.partition

    full = run(ing, resources, instance=instance, tags={RANGE_START: keys[0], RANGE_END: keys[-1]})
    assert full.success and sorted(raw_docs(ragflow_sandbox, dataset_name)) == sorted(TREE)
    assert sorted(m.partition for m in mats_of(full, "documents")) == sorted(
        set(keys) - {*keys[:2], "notes.json"}
    )  # a full reconcile records only the partitions it changed

    # a removed file: the full reconcile deletes its document, its partition is not recorded
    (tree / "guide/setup.txt").unlink()
    rerun = run(ing, resources, instance=instance, tags={RANGE_START: keys[0], RANGE_END: keys[-1]})
    assert rerun.success
    assert "guide/setup.txt" not in raw_docs(ragflow_sandbox, dataset_name)
    assert mats_of(rerun, "documents") == []


def test_shard_partitions_carry_their_shards_figures(
    tree, resources, dataset_name, ragflow_sandbox
):
    ing = build_ragflow_ingestion(
        source=str(tree), dataset=dataset_name, partitioning="shards", shards=4
    )
    keys = ing.partitions_def.get_partition_keys()
    result = run(ing, resources, tags={RANGE_START: keys[0], RANGE_END: keys[-1]})
    assert result.success
    assert sorted(raw_docs(ragflow_sandbox, dataset_name)) == sorted(TREE)
    mats = {m.partition: m for m in mats_of(result, "documents")}
    assert sorted(mats) == keys
    for key, m in mats.items():
        mine = [p for p in TREE if ing.partitioning.key_for(p) == key]
        assert m.metadata["files"].value == len(mine)
        assert (m.metadata["upload"].value if "upload" in m.metadata else 0) == len(mine)

    shard = ing.partitioning.key_for("notes.json")
    (tree / "notes.json").write_text('{"topic": "quokkas, changed"}')
    one = run(ing, resources, partition_key=shard)
    assert one.success
    (m,) = mats_of(one, "documents")
    assert m.partition == shard and m.metadata["replace"].value == 1


def test_parse_failure_fails_the_chunks_check_and_its_partition_is_not_green(
    tmp_path, resources, dataset_name, ragflow_sandbox
):
    root = tmp_path / "bad"
    write_tree(root, {"ok.txt": "fine text\n"})
    (root / "broken.pdf").write_bytes(b"this is not a pdf at all")
    ing = build_ragflow_ingestion(source=str(root), dataset=dataset_name, partitioning="files")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(ing.partitions_def.name, ["broken.pdf", "ok.txt"])
    result = run(
        ing, resources, instance=instance, tags={RANGE_START: "broken.pdf", RANGE_END: "ok.txt"}
    )
    assert not result.success
    assert checks_of(result)["chunks_healthy"] is False
    assert checks_of(result)["documents_match_source"] is True
    assert [m.partition for m in mats_of(result, "chunks")] == ["ok.txt"]
    assert raw_docs(ragflow_sandbox, dataset_name)["broken.pdf"]["run"] == "FAIL"


def test_retrieval_probe_that_misses_fails_its_check(tree, resources, dataset_name):
    ing = build_ragflow_ingestion(
        source=str(tree),
        dataset=dataset_name,
        retrieval_probes=[RetrievalProbe("zeppelin keywords", "notes.json", top_n=1)],
    )
    result = run(ing, resources)
    assert result.success  # a WARN check does not fail the run
    assert checks_of(result)["retrieval_smoke_test"] is False
    assert checks_of(result)["chunks_healthy"] is True


def test_no_deprecation_or_beta_warnings_from_our_code(tree, resources, dataset_name):
    import warnings

    from ragflow_dagster.sensors import build_ragflow_reconcile_schedule, build_ragflow_sensor

    with warnings.catch_warnings(record=True) as caught, dg.instance_for_test() as instance:
        warnings.simplefilter("always")
        for kind in ("none", "shards", "files"):
            ing = build_ragflow_ingestion(source=str(tree), dataset=dataset_name, partitioning=kind)
            sensor = build_ragflow_sensor(ing, settle_seconds=0)
            schedule = build_ragflow_reconcile_schedule(ing)
            defs = dg.Definitions(
                assets=ing.assets,
                jobs=[ing.job],
                sensors=[sensor],
                schedules=[schedule],
                resources=resources,
            )
            defs.resolve_job_def(ing.job.name)
            sensor(dg.build_sensor_context(instance=instance))
            schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
        assert run(
            build_ragflow_ingestion(source=str(tree), dataset=dataset_name), resources
        ).success
    noisy = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if issubclass(w.category, (DeprecationWarning, dg.BetaWarning, dg.PreviewWarning))
        or "deprecat" in str(w.message).lower()
    ]
    assert noisy == []


def test_metadata_and_rules_through_the_assets(tree, resources, dataset_name, ragflow_sandbox):
    (tree / "notes.json.meta.yaml").write_text("owner: ada\n")
    ing = build_ragflow_ingestion(
        source=str(tree),
        dataset=dataset_name,
        metadata={"static": [{"glob": "**", "set": {"origin": "assets"}}], "sidecar": True},
        rules=[{"glob": "*.json", "chunk_method": "one"}],
    )
    result = run(ing, resources)
    assert result.success and all(checks_of(result).values())  # the sidecar is not "missing"
    (docs,) = mats_of(result, "documents")
    assert docs.metadata["uploaded"].value == len(TREE)
    state = raw_docs(ragflow_sandbox, dataset_name)
    assert sorted(state) == sorted(TREE)
    assert state["notes.json"]["meta_fields"]["owner"] == "ada"
    assert state["notes.json"]["chunk_method"] == "one"
    assert {d["meta_fields"]["origin"] for d in state.values()} == {"assets"}
    relabel = build_ragflow_ingestion(
        source=str(tree),
        dataset=dataset_name,
        metadata={"static": [{"glob": "**", "set": {"origin": "dagster"}}], "sidecar": True},
        rules=[{"glob": "*.json", "chunk_method": "one"}],
    )
    again = run(relabel, resources)
    (docs,) = mats_of(again, "documents")
    assert docs.metadata["relabelled"].value == len(TREE)
    assert docs.metadata["decisions"].value == {"relabel": {"origin assets→dagster": len(TREE)}}
    assert f"relabel {len(TREE)}: origin assets→dagster" in docs.metadata["summary"].value
    with pytest.raises(ValueError, match="chunk_method 'nope'"):
        build_ragflow_ingestion(
            source=str(tree), dataset=dataset_name, rules=[{"glob": "*", "chunk_method": "nope"}]
        )
