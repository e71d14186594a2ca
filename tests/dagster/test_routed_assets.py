"""A routed ingestion inside real Dagster runs (in-process execution) against the sandbox: one
asset per dataset with its own checks, all materialized by one step that lists the source once.
End states are checked by raw HTTP listings (tests/reliability/raw.py)."""

from pathlib import Path

import dagster as dg
import pytest

from ragflow_dagster.resource import RAGFlowResource
from ragflow_dagster.routed_assets import build_ragflow_routed_ingestion
from ragflow_dagster.sources import LocalFolderSource
from ragflow_dagster.sync.identity import managed_path
from tests.reliability.raw import dataset_id, raw_documents

TREE = {
    "eng/a.md": "# alpha\nengines and gears\n" * 4,
    "eng/b.md": "# bravo\nbearings and bolts\n" * 4,
    "sales/c.md": "# charlie\ncustomers and contracts\n" * 4,
    "misc/d.md": "# delta\ndinners and dances\n" * 4,
}


class CountingSource(LocalFolderSource):
    listings = 0

    def scan_batches(self, filters=None, *, known=None):  # type: ignore[override]
        type(self).listings += 1
        yield from super().scan_batches(filters, known=known)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


@pytest.fixture
def names(request) -> dict[str, str]:
    base = "rd_" + request.node.name[5:40]
    return {k: f"{base}_{k}" for k in ("eng", "sales", "general")}


@pytest.fixture
def resources(ragflow_sandbox):
    return {
        "ragflow": RAGFlowResource(
            base_url=ragflow_sandbox.base_url, api_key=ragflow_sandbox.api_key
        )
    }


def routes(names: dict[str, str], *, default: bool = False) -> dict:
    return {
        "routes": [
            {"glob": "eng/**", "dataset": names["eng"]},
            {"glob": "sales/**", "dataset": {"name": names["sales"], "chunk_method": "naive"}},
        ],
        "default_dataset": names["general"] if default else None,
    }


def run(ingestion, resources, *, selection=None, run_config=None):
    defs = dg.Definitions(assets=ingestion.assets, jobs=[ingestion.job], resources=resources)
    job = defs.resolve_job_def(ingestion.job.name)
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=selection,
        run_config=run_config,
        raise_on_error=False,
    )


def checks_of(result) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.path[-2], e.check_name): e.passed for e in result.get_asset_check_evaluations()
    }


def mats_of(result) -> dict[tuple[str, str], dg.AssetMaterialization]:
    return {
        (m.asset_key.path[-2], m.asset_key.path[-1]): m
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }


def raw_paths(sb, name: str) -> set[str]:
    docs = raw_documents(sb.base_url, sb.api_key, dataset_id(sb.base_url, sb.api_key, name))
    assert all(d["run"] == "DONE" for d in docs)
    paths = [managed_path(d.get("meta_fields") or {}) for d in docs]
    assert len(paths) == len(set(paths)), "duplicates"
    return set(paths)  # type: ignore[arg-type]


def test_one_asset_per_dataset_with_its_own_checks_and_freshness(names, tmp_path):
    ing = build_ragflow_routed_ingestion(
        source=str(tmp_path), routes=routes(names, default=True), name="acme"
    )
    source_spec, multi = ing.assets
    assert source_spec.key.path == ["ragflow", "acme", "source"]
    assert sorted(k.to_user_string() for k in multi.keys) == sorted(
        f"ragflow/{n}/{stage}" for n in names.values() for stage in ("documents", "chunks")
    )
    checks = {(c.asset_key.path[-2], c.name) for c in multi.check_keys}
    assert checks == {
        (n, c)
        for n in names.values()
        for c in ("documents_match_source", "sync_lag", "chunks_healthy")
    }
    for spec in multi.specs:
        assert spec.freshness_policy is not None, spec.key
        if spec.key.path[-1] == "documents":
            assert [d.asset_key for d in spec.deps] == [source_spec.key]
    assert list(ing.dataset_keys) == [names["eng"], names["sales"], names["general"]]
    assert ing.partitions_def is None and ing.pool == "ragflow_acme"


def test_one_run_lists_once_and_materializes_every_dataset(
    names, tmp_path, resources, ragflow_sandbox
):
    write(tmp_path, TREE)
    source = CountingSource(tmp_path)
    ing = build_ragflow_routed_ingestion(source=source, routes=routes(names), name="acme_r")
    CountingSource.listings = 0
    result = run(ing, resources)
    assert result.success
    assert CountingSource.listings == 1
    eng, sales = names["eng"], names["sales"]
    assert checks_of(result) == {
        (n, c): True
        for n in (eng, sales)
        for c in ("documents_match_source", "sync_lag", "chunks_healthy")
    }
    mats = mats_of(result)
    assert set(mats) == {(n, s) for n in (eng, sales) for s in ("documents", "chunks")}
    assert mats[(eng, "documents")].metadata["uploaded"].value == 2
    assert mats[(sales, "documents")].metadata["uploaded"].value == 1
    assert mats[(eng, "documents")].metadata["unrouted"].value == 1
    assert mats[(eng, "documents")].metadata["source_listings"].value == 1
    assert raw_paths(ragflow_sandbox, eng) == {"eng/a.md", "eng/b.md"}
    assert raw_paths(ragflow_sandbox, sales) == {"sales/c.md"}

    # a move from eng to sales: a delete in one and an upload in the other, one listing
    (tmp_path / "sales/b.md").write_text(TREE["eng/b.md"])
    (tmp_path / "eng/b.md").unlink()
    CountingSource.listings = 0
    again = run(ing, resources)
    assert again.success and all(checks_of(again).values()) and CountingSource.listings == 1
    mats = mats_of(again)
    assert mats[(eng, "documents")].metadata["deleted"].value == 1
    assert mats[(sales, "documents")].metadata["uploaded"].value == 1
    assert raw_paths(ragflow_sandbox, eng) == {"eng/a.md"}
    assert raw_paths(ragflow_sandbox, sales) == {"sales/b.md", "sales/c.md"}


def test_guard_fails_only_its_own_datasets_check(names, tmp_path, resources, ragflow_sandbox):
    write(tmp_path, {**{f"eng/{i}.md": f"engine {i}\n" * 3 for i in range(4)}, **TREE})
    ing = build_ragflow_routed_ingestion(source=str(tmp_path), routes=routes(names), name="g")
    assert run(ing, resources).success
    for rel in ("eng/0.md", "eng/1.md", "eng/2.md", "eng/3.md", "eng/a.md"):
        (tmp_path / rel).unlink()  # 5 of eng's 6
    result = run(ing, resources)
    assert not result.success  # the blocking check of eng failed
    checks = checks_of(result)
    assert checks[(names["eng"], "documents_match_source")] is False
    assert checks[(names["sales"], "documents_match_source")] is True
    assert len(raw_paths(ragflow_sandbox, names["eng"])) == 6


def test_a_subset_syncs_only_the_selected_datasets(names, tmp_path, resources, ragflow_sandbox):
    write(tmp_path, TREE)
    ing = build_ragflow_routed_ingestion(
        source=str(tmp_path), routes=routes(names, default=True), name="sub"
    )
    eng_keys = list(ing.dataset_keys[names["eng"]].values())
    result = run(ing, resources, selection=eng_keys)
    assert result.success
    assert set(mats_of(result)) == {(names["eng"], "documents"), (names["eng"], "chunks")}
    assert {k[0] for k in checks_of(result)} == {names["eng"]}
    assert raw_paths(ragflow_sandbox, names["eng"]) == {"eng/a.md", "eng/b.md"}
    from ragflow_dagster.client import RAGFlowClient

    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as c:
        assert c.find_dataset(names["sales"]) is None and c.find_dataset(names["general"]) is None


def test_a_dataset_that_aborts_fails_the_step_after_the_others_events(
    names, tmp_path, resources, ragflow_sandbox
):
    write(tmp_path, TREE)
    bad = "b" * 300  # the server refuses a dataset name this long
    ing = build_ragflow_routed_ingestion(
        source=str(tmp_path),
        routes={
            "routes": [
                {"glob": "eng/**", "dataset": bad},
                {"glob": "sales/**", "dataset": names["sales"]},
            ]
        },
        name="abort",
    )
    result = run(ing, resources)
    assert not result.success
    assert set(mats_of(result)) == {(names["sales"], "documents"), (names["sales"], "chunks")}
    assert {k[0] for k in checks_of(result)} == {names["sales"]}
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "routed sync aborted for" in failure.event_specific_data.error.message
    assert raw_paths(ragflow_sandbox, names["sales"]) == {"sales/c.md"}


@pytest.mark.parametrize("method", ["sync", "sync_routed"])
def test_a_plain_asset_without_a_target_fails_naming_the_decorator(ragflow_sandbox, method):
    sb = ragflow_sandbox

    @dg.asset
    def plain(context: dg.AssetExecutionContext, ragflow: RAGFlowResource):
        yield from getattr(ragflow, method)(context=context)

    resource = RAGFlowResource(base_url=sb.base_url, api_key=sb.api_key)
    result = dg.materialize([plain], resources={"ragflow": resource}, raise_on_error=False)
    assert not result.success
    error = result.failure_data_for_node("plain").error
    message = error.cause.message if error.cause is not None else error.message
    decorator = (
        "ragflow_routed_ingestion_assets"
        if method == "sync_routed"
        else ("ragflow_ingestion_assets")
    )
    assert "carry no" in message and f"@{decorator}(target=...)" in message, message
