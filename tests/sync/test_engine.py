"""The sync engine end to end against the sandbox server over real HTTP."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ragflow_dagster.client import RAGFlowClient, UploadFile
from ragflow_dagster.sources import LocalFolderSource
from ragflow_dagster.sync.engine import SyncAbortedError, SyncOptions, sync_source
from ragflow_dagster.sync.identity import MANAGED_BY, managed_path, upload_name


@pytest.fixture
def client(ragflow_sandbox):
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as c:
        yield c


@pytest.fixture
def dataset(client, request):
    ds = client.create_dataset(f"engine_{request.node.name}"[:120])
    yield ds
    client.delete_datasets([ds.id])


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def managed_docs(client, dataset_id):
    docs = list(client.iter_documents(dataset_id))
    return {managed_path(d.meta_fields): d for d in docs if managed_path(d.meta_fields)}, docs


TREE = {
    "a.txt": "alpha apples are crisp and red\n" * 5,
    "docs/b.md": "# Bravo\nbananas ripen in the sun\n" * 5,
    "docs/deep/c.csv": "name,value\ncherry,3\n" * 5,
    "d.json": '{"delta": "dates are sweet"}',
}


def test_first_sync_uploads_labels_and_parses_everything(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    report = sync_source(client, LocalFolderSource(tmp_path), dataset.id)
    assert report.counts["scanned"] == 4
    assert report.counts["uploaded"] == 4 and report.counts["failed"] == 0
    assert report.counts["parsed"] == 4 and report.converged
    by_path, docs = managed_docs(client, dataset.id)
    assert sorted(by_path) == sorted(TREE)
    assert len(docs) == 4
    doc = by_path["docs/deep/c.csv"]
    assert doc.name == "docs/deep/c.csv"
    assert doc.run == "DONE" and doc.chunk_count > 0
    meta = doc.meta_fields
    assert meta["managed_by"] == MANAGED_BY
    assert meta["source_uri"] == (tmp_path / "docs/deep/c.csv").resolve().as_uri()
    import hashlib

    assert meta["sha256"] == hashlib.sha256(TREE["docs/deep/c.csv"].encode()).hexdigest()
    assert int(meta["size"]) == len(TREE["docs/deep/c.csv"])


def test_noop_resync_uploads_and_parses_nothing_with_one_listing(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    sync_source(client, LocalFolderSource(tmp_path), dataset.id)
    report = sync_source(client, LocalFolderSource(tmp_path), dataset.id)
    c = report.counts
    assert (c["uploaded"], c["replaced"], c["moved"], c["deleted"]) == (0, 0, 0, 0)
    assert c["unchanged"] == 4 and c["parse_requested"] == 0 and c["parsed"] == 0
    assert report.api_calls == 1  # one page of the document listing, nothing else


def test_change_replaces_without_a_window_and_keeps_one_document(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    src = LocalFolderSource(tmp_path)
    sync_source(client, src, dataset.id)
    before, _ = managed_docs(client, dataset.id)
    (tmp_path / "a.txt").write_text("alpha changed: apricots now\n" * 5)
    report = sync_source(client, src, dataset.id)
    assert report.counts["replaced"] == 1 and report.counts["unchanged"] == 3
    after, docs = managed_docs(client, dataset.id)
    assert len(docs) == 4
    assert after["a.txt"].id != before["a.txt"].id
    assert after["a.txt"].name == "a.txt"  # renamed back once the old version was deleted
    assert after["a.txt"].run == "DONE"


def test_touch_without_content_change_relabels_only(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    src = LocalFolderSource(tmp_path)
    sync_source(client, src, dataset.id)
    before, _ = managed_docs(client, dataset.id)
    st = os.stat(tmp_path / "a.txt")
    os.utime(tmp_path / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    report = sync_source(client, src, dataset.id)
    assert report.counts["relabelled"] == 1 and report.counts["uploaded"] == 0
    assert report.counts["parse_requested"] == 0
    after, _ = managed_docs(client, dataset.id)
    assert after["a.txt"].id == before["a.txt"].id
    assert after["a.txt"].meta_fields["change_token"] != before["a.txt"].meta_fields["change_token"]


def test_move_renames_without_reupload_or_reparse(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    src = LocalFolderSource(tmp_path)
    sync_source(client, src, dataset.id)
    before, _ = managed_docs(client, dataset.id)
    (tmp_path / "archive").mkdir()
    shutil.move(tmp_path / "docs/b.md", tmp_path / "archive/b.md")
    report = sync_source(client, src, dataset.id)
    assert report.counts["moved"] == 1
    assert report.counts["uploaded"] == 0 and report.counts["deleted"] == 0
    assert report.counts["parse_requested"] == 0
    after, docs = managed_docs(client, dataset.id)
    assert len(docs) == 4
    assert after["archive/b.md"].id == before["docs/b.md"].id
    assert after["archive/b.md"].name == "archive/b.md"
    assert after["archive/b.md"].chunk_count == before["docs/b.md"].chunk_count


def test_delete_removes_the_document(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    src = LocalFolderSource(tmp_path)
    sync_source(client, src, dataset.id)
    (tmp_path / "d.json").unlink()
    report = sync_source(client, src, dataset.id)
    assert report.counts["deleted"] == 1
    after, docs = managed_docs(client, dataset.id)
    assert "d.json" not in after and len(docs) == 3


def test_mass_delete_guard_refuses_and_can_be_lifted(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    sync_source(client, LocalFolderSource(tmp_path), dataset.id)
    empty = tmp_path / "empty"
    empty.mkdir()
    report = sync_source(client, LocalFolderSource(empty), dataset.id)
    assert report.guard_refused and not report.converged
    assert report.counts["deleted"] == 0
    assert len(list(client.iter_documents(dataset.id))) == 4
    report = sync_source(
        client, LocalFolderSource(empty), dataset.id, SyncOptions(allow_mass_delete=True)
    )
    assert report.counts["deleted"] == 4
    assert list(client.iter_documents(dataset.id)) == []


def test_dry_run_touches_nothing(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    report = sync_source(client, LocalFolderSource(tmp_path), dataset.id, SyncOptions(dry_run=True))
    assert report.dry_run and report.counts["uploaded"] == 4
    assert {o.status for o in report.outcomes} == {"planned"}
    assert list(client.iter_documents(dataset.id)) == []


def test_unmanaged_documents_are_left_alone(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    mine = tmp_path.parent / f"{tmp_path.name}-own.txt"
    mine.write_text("uploaded by hand, with the same name as a synced file")
    [own] = client.upload_documents(dataset.id, [UploadFile("a.txt", mine)])
    client.parse_documents(dataset.id, [own.id])
    report = sync_source(client, LocalFolderSource(tmp_path), dataset.id)
    assert report.counts["uploaded"] == 4
    (tmp_path / "a.txt").unlink()
    sync_source(client, LocalFolderSource(tmp_path), dataset.id)
    ids = {d.id for d in client.iter_documents(dataset.id)}
    assert own.id in ids
    by_path, docs = managed_docs(client, dataset.id)
    assert "a.txt" not in by_path and len(docs) == 4


def test_interrupted_upload_is_adopted_not_duplicated(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    # an earlier run uploaded a.txt and died before labelling it
    [left] = client.upload_documents(
        dataset.id, [UploadFile(upload_name("a.txt"), tmp_path / "a.txt")]
    )
    report = sync_source(client, LocalFolderSource(tmp_path), dataset.id)
    assert report.counts["adopted"] == 1 and report.counts["uploaded"] == 3
    assert report.converged
    by_path, docs = managed_docs(client, dataset.id)
    assert by_path["a.txt"].id == left.id and len(docs) == 4
    assert by_path["a.txt"].name == "a.txt"


def test_dedupe_after_an_interrupted_replace(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    src = LocalFolderSource(tmp_path)
    sync_source(client, src, dataset.id)
    before, _ = managed_docs(client, dataset.id)
    (tmp_path / "a.txt").write_text("new content of a\n" * 3)
    # an interrupted replace: the new version landed (unlabelled), the old one is still there
    [left] = client.upload_documents(
        dataset.id, [UploadFile(upload_name("a.txt"), tmp_path / "a.txt")]
    )
    report = sync_source(client, src, dataset.id)
    assert report.counts["adopted"] == 1 and report.counts["uploaded"] == 0
    by_path, docs = managed_docs(client, dataset.id)
    assert len(docs) == 4
    assert by_path["a.txt"].id == left.id and before["a.txt"].id not in {d.id for d in docs}
    assert by_path["a.txt"].name == "a.txt"


def test_scope_restricts_the_sync_to_some_paths(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    opts = SyncOptions(in_scope=lambda p: p.startswith("docs/"))
    report = sync_source(client, LocalFolderSource(tmp_path), dataset.id, opts)
    assert report.counts["uploaded"] == 2
    by_path, _ = managed_docs(client, dataset.id)
    assert sorted(by_path) == ["docs/b.md", "docs/deep/c.csv"]


def test_no_wait_starts_parsing_and_returns(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    report = sync_source(client, LocalFolderSource(tmp_path), dataset.id, SyncOptions(wait=False))
    assert report.counts["uploaded"] == 4 and report.counts["parse_requested"] == 4
    # still parsing: not (yet) converged, and it says why; the next run that waits converges
    if not report.converged:
        assert "still parsing" in (report.reason or "")
    again = sync_source(client, LocalFolderSource(tmp_path), dataset.id)
    assert again.converged and again.counts["uploaded"] == 0


def test_a_failing_server_stops_the_run_at_once_instead_of_per_file(
    ragflow_sandbox_factory, tmp_path
):
    from ragflow_dagster.client import RAGFlowUnavailableError

    sb = ragflow_sandbox_factory()
    for i in range(60):
        (tmp_path / f"f{i:02d}.txt").write_text(f"file {i}\n")
    with RAGFlowClient(sb.base_url, sb.api_key, max_retries=2, backoff=0.01) as c:
        ds = c.create_dataset("down")
        sb.set_faults(rate=1.0, kinds=["503"], methods=["PATCH"], retry_after=0)
        before = c.request_count
        with pytest.raises(SyncAbortedError) as aborted:
            sync_source(c, LocalFolderSource(tmp_path), ds.id, SyncOptions(max_workers=2))
        assert isinstance(aborted.value.__cause__, RAGFlowUnavailableError)
        assert not aborted.value.report.converged and aborted.value.report.error
        sb.clear_faults()
        # 2 upload requests, then a handful of labels (3 attempts each) — not 60 x 3
        assert c.request_count - before < 30
        # what landed is adopted by the next run: nothing lost, nothing doubled
        report = sync_source(c, LocalFolderSource(tmp_path), ds.id)
        assert report.converged
        by_path, docs = managed_docs(c, ds.id)
        assert len(by_path) == 60 and len(docs) == 60


def test_an_old_version_is_retired_as_soon_as_its_successor_is_parsed(
    ragflow_sandbox_factory, tmp_path
):
    """Replaced files: each old version goes when its own new version is DONE, not after the
    last parse of the run (it is served twice only for the length of one parse)."""
    import requests

    server = ragflow_sandbox_factory(parse_serial=True)
    files = {f"f{i}.txt": f"version one of {i}\n" * 20 for i in range(3)}
    write_tree(tmp_path, files)
    src = LocalFolderSource(tmp_path)
    with RAGFlowClient(server.base_url, server.api_key) as c:
        ds = c.create_dataset("retire-early")
        assert sync_source(c, src, ds.id).converged
        write_tree(tmp_path, {p: t.replace("one", "two") for p, t in files.items()})
        server.set_parse_delay(0.5)  # one parser, half a second per document
        seen: list[tuple[int, int]] = []

        def raw_count() -> int:
            r = requests.get(
                f"{server.base_url}/api/v1/datasets/{ds.id}/documents",
                params={"page": 1, "page_size": 100},
                headers={"Authorization": f"Bearer {server.api_key}"},
                timeout=10,
            )
            return len(r.json()["data"]["docs"])

        def progress(phase: str, done: int, total: int) -> None:
            if phase == "parse" and 0 < done < total:
                seen.append((done, raw_count()))

        report = sync_source(c, src, ds.id, SyncOptions(), progress=progress)
    assert report.converged and report.counts["replaced"] == 3
    assert seen, "no poll saw some parses done and others still running"
    # while parses are still running, each parsed file has one document, the others two
    assert all(count == 6 - done for done, count in seen), seen


def test_the_last_parse_requests_go_out_before_the_moves(ragflow_sandbox_factory, tmp_path):
    """An edit among many moves: the new version's parse request is sent as soon as it is
    uploaded and labelled, not after the moves' updates (the server would sit idle meanwhile)."""
    server = ragflow_sandbox_factory(parse_serial=True)
    write_tree(tmp_path, {f"f{i:02d}.txt": f"file {i}\n" * 20 for i in range(12)})
    src = LocalFolderSource(tmp_path)
    with RAGFlowClient(server.base_url, server.api_key) as c:
        ds = c.create_dataset("parse-before-moves")
        assert sync_source(c, src, ds.id).converged
        (tmp_path / "moved").mkdir()
        for i in range(1, 12):
            os.rename(tmp_path / f"f{i:02d}.txt", tmp_path / "moved" / f"f{i:02d}.txt")
        (tmp_path / "f00.txt").write_text("file 0, edited\n" * 20)
        order: list[str] = []

        def hook(response, *args, **kwargs):
            order.append(f"{response.request.method} {response.request.path_url.split('?')[0]}")

        c._session.hooks.setdefault("response", []).append(hook)
        report = sync_source(c, src, ds.id)
    assert report.converged
    assert report.counts["moved"] == 11 and report.counts["replaced"] == 1
    parse = order.index(f"POST /api/v1/datasets/{ds.id}/chunks")
    updates = [i for i, r in enumerate(order) if r.startswith("PATCH")]
    # the new version's label comes first, then its parse request, then the 11 moves
    assert len([i for i in updates if i < parse]) == 1, order
    assert len([i for i in updates if i > parse]) >= 11, order
