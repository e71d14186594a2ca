"""Small versions of the benchmarks P1, P2 and P5, as correctness checks (counts, not times)."""

from __future__ import annotations

import math
from pathlib import Path

import dagster as dg
import pytest

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sources import LocalFolderSource
from ragflow_dagster.sync.engine import sync_source
from ragflow_dagster.sync.identity import managed_path


def make_files(root: Path, n: int) -> None:
    for i in range(n):
        p = root / f"d{i % 10}" / f"f{i:05d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"document {i} about topic {i % 17}\n" * (1 + i % 5))


def test_p1_small_ours_and_the_sdk_loop_end_in_the_same_documents(ragflow_sandbox, tmp_path):
    # the dev extra installs ragflow-sdk only below Python 3.13 (it pins old dependencies)
    ragflow_sdk = pytest.importorskip("ragflow_sdk")

    n = 40
    make_files(tmp_path, n)
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as client:
        ds = client.create_dataset("p1-small-ours")
        report = sync_source(client, LocalFolderSource(tmp_path), ds.id)
        assert report.counts["uploaded"] == n and report.counts["parsed"] == n
        # 40 files: 2 upload requests, 40 labels, 1 parse request, a few polls and listings
        assert report.api_calls <= math.ceil(n / 32) + n + 1 + 15
        ours = {managed_path(d.meta_fields): d.run for d in client.iter_documents(ds.id)}
    rag = ragflow_sdk.RAGFlow(api_key=ragflow_sandbox.api_key, base_url=ragflow_sandbox.base_url)
    sds = rag.create_dataset(name="p1-small-sdk")
    ids = []
    for p in sorted(tmp_path.rglob("*.txt")):
        rel = p.relative_to(tmp_path).as_posix()
        ids += [d.id for d in sds.upload_documents([{"display_name": rel, "blob": p.read_bytes()}])]
    sds.async_parse_documents(ids)
    assert sorted(ours) == sorted(d.name for d in sds.list_documents(page_size=100))
    assert set(ours.values()) == {"DONE"}


def test_p2_small_noop_resync_lists_once_and_uploads_nothing(ragflow_sandbox, tmp_path):
    n = 500
    make_files(tmp_path, n)
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as client:
        ds = client.create_dataset("p2-small")
        sync_source(client, LocalFolderSource(tmp_path), ds.id)
        report = sync_source(client, LocalFolderSource(tmp_path), ds.id)
    assert report.counts["uploaded"] == 0 and report.counts["unchanged"] == n
    assert report.counts["parse_requested"] == 0
    assert report.api_calls == math.ceil(n / 100)


def test_p5_small_initial_sync_through_the_sensor_takes_few_runs(tmp_path):
    from benchmarks.sensor_driver import SensorDriver
    from ragflow_dagster.assets import build_ragflow_ingestion
    from ragflow_dagster.sensors import build_ragflow_sensor

    make_files(tmp_path, 2000)
    ing = build_ragflow_ingestion(source=str(tmp_path), dataset="p5-small", partitioning="files")
    instance = dg.DagsterInstance.ephemeral()
    driver = SensorDriver(build_ragflow_sensor(ing, settle_seconds=0), instance)
    driver.until_quiet()
    assert len(instance.get_dynamic_partitions(ing.partitions_def.name)) == 2000
    assert 1 <= len(driver.launched) <= 5
    assert max(t.cursor_bytes for t in driver.ticks) < 8192
