"""Small versions of P1a, P1b, P2 (overlap), P6, LIST and SCALE: counts, never wall time."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from benchmarks.common import CallCounter, generate_tree
from ragflow_dagster.client import RAGFlowClient, UploadFile
from ragflow_dagster.sources import LocalFolderSource
from ragflow_dagster.sync import identity
from ragflow_dagster.sync.engine import SyncOptions, sync_source

UPLOADS = "POST /api/v1/datasets/{id}/documents"
PARSES = "POST /api/v1/datasets/{id}/chunks"
LABELS = "PATCH /api/v1/datasets/{id}/documents/{id}"


class RouteLog(CallCounter):
    """A :class:`CallCounter` that also keeps the order in which replies came back."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def hook(self, response, *args, **kwargs):  # type: ignore[no-untyped-def]
        route = self.route_of(response)
        with self._lock:
            self.by_route[route] += 1
            self.order.append(route)


def _routes(counter: CallCounter) -> dict[str, int]:
    return dict(counter.by_route)


def test_p1a_small_uploads_and_labels_without_parsing(ragflow_sandbox, tmp_path: Path) -> None:
    n = 120
    generate_tree(tmp_path, n, min_size=512, max_size=4096)
    with RAGFlowClient(
        ragflow_sandbox.base_url, ragflow_sandbox.api_key, max_files_per_request=32
    ) as client:
        counter = CallCounter()
        counter.attach_client(client)
        ds = client.create_dataset("p1a-small")
        report = sync_source(
            client,
            LocalFolderSource(tmp_path),
            ds.id,
            SyncOptions(max_workers=8, parse=False, wait=False),
        )
        docs = list(client.iter_documents(ds.id))
    routes = _routes(counter)
    assert report.counts["uploaded"] == n and report.counts.get("parse_requested", 0) == 0
    assert routes[UPLOADS] == math.ceil(n / 32)  # several files per request
    assert routes[LABELS] == n  # one label each (no bulk metadata route)
    assert PARSES not in routes
    assert len(docs) == n and all(identity.managed_path(d.meta_fields) for d in docs)


def test_p1b_small_parse_requests_start_while_uploads_continue(
    ragflow_sandbox_factory, tmp_path: Path
) -> None:
    n = 400
    generate_tree(tmp_path, n, min_size=256, max_size=2048)
    server = ragflow_sandbox_factory(parse_delay=0.005, parse_serial=True)
    with RAGFlowClient(server.base_url, server.api_key, max_files_per_request=32) as client:
        log = RouteLog()
        log.attach_client(client)
        ds = client.create_dataset("p1b-small")
        report = sync_source(client, LocalFolderSource(tmp_path), ds.id, SyncOptions(max_workers=8))
    routes = _routes(log)
    assert report.counts["uploaded"] == n and report.counts["parsed"] == n
    assert report.counts["parse_requested"] == n and report.verified
    # the first 10 labelled, then every 100: 1 + 3 early requests, the last 90 after the uploads
    assert routes[PARSES] == 1 + (n - 10) // 100 + (1 if (n - 10) % 100 else 0)
    first_parse = log.order.index(PARSES)
    last_upload = len(log.order) - 1 - log.order[::-1].index(UPLOADS)
    assert first_parse < last_upload


def test_p2_small_overlapped_noop_lists_once(ragflow_sandbox, tmp_path: Path) -> None:
    n = 350
    generate_tree(tmp_path, n, min_size=64, max_size=256, per_dir=50)
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as client:
        ds = client.create_dataset("p2-small-overlap")
        sync_source(client, LocalFolderSource(tmp_path), ds.id)
        report = sync_source(client, LocalFolderSource(tmp_path), ds.id)
    assert report.counts["unchanged"] == n and report.counts["uploaded"] == 0
    assert report.api_calls == math.ceil(n / 100)
    assert {"walk", "list_documents", "list_and_walk"} <= set(report.durations)  # overlapped


def test_p6_small_moves_rename_and_only_edits_are_reparsed(ragflow_sandbox, tmp_path: Path) -> None:
    from benchmarks.p6_moves import mutate

    n = 200
    paths, _ = generate_tree(tmp_path, n, min_size=256, max_size=2048, seed=5)
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as client:
        ds = client.create_dataset("p6-small")
        sync_source(client, LocalFolderSource(tmp_path), ds.id)
        change = mutate(tmp_path, paths)
        counter = CallCounter()
        counter.attach_client(client)
        report = sync_source(client, LocalFolderSource(tmp_path), ds.id)
        docs = list(client.iter_documents(ds.id))
    moved, edited = len(change["moved"]), len(change["edited"])
    assert (moved, edited) == (20, 2)
    assert report.counts["moved"] == moved and report.counts["replaced"] == edited
    assert report.counts["uploaded"] == 0
    assert report.counts["parse_requested"] == edited and report.counts["parsed"] == edited
    assert _routes(counter)[UPLOADS] == 1 and report.verified
    by_path = {identity.managed_path(d.meta_fields) for d in docs}
    assert len(docs) == n and {new for _old, new in change["moved"]} <= by_path


def test_list_small_scan_finds_what_a_bare_walk_finds(tmp_path: Path) -> None:
    from benchmarks.bench_sources import make_tree
    from benchmarks.common import scandir_walk

    make_tree(str(tmp_path), 1000, per_dir=40)
    bare = {p for p, _size, _mtime in scandir_walk(str(tmp_path))}
    scanned = [e for e in LocalFolderSource(tmp_path).scan() if hasattr(e, "change_token")]
    assert len(bare) == 1000 and {e.path for e in scanned} == bare
    st = os.stat(tmp_path / scanned[0].path)
    assert scanned[0].change_token == f"{st.st_size}-{st.st_mtime_ns}"


def test_scale_small_each_label_is_checked_once(monkeypatch) -> None:
    from benchmarks import scale_plan

    calls = []
    real = identity.label_is_consistent

    def counting(meta):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(meta)

    monkeypatch.setattr(identity, "label_is_consistent", counting)
    result = scale_plan.measure(3000)  # raises unless the plan is all unchanged
    assert result["counts"] == {"unchanged": 3000}
    assert len(calls) == 3000  # known_files and the planner share one check per document


def test_p2_small_concurrent_pages_fetch_each_page_once(ragflow_sandbox) -> None:
    n = 730
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as client:
        ds = client.create_dataset("pages-concurrent")
        for start in range(0, n, 50):
            names = [f"p{i:04d}.txt" for i in range(start, min(n, start + 50))]
            client.upload_documents(ds.id, [UploadFile(nm, io.BytesIO(b"x")) for nm in names])
        results = {}
        for width in (1, 4):
            client.list_concurrency = width
            before = client.request_count
            docs = list(client.iter_documents(ds.id))
            results[width] = (client.request_count - before, [d.id for d in docs])
    assert results[1][0] == results[4][0] == math.ceil(n / 100)  # no page beyond total
    assert results[1][1] == results[4][1] and len(set(results[4][1])) == n  # same order, once
