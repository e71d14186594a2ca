"""A listing is complete only when proven complete (issue: exactly-once, item 2).

A proxy in front of the sandbox serves short pages, drops ``data`` from 200 replies, or the
test deletes documents by raw HTTP between two pages. Before the fix every unseen managed
document was taken as missing and uploaded again, and the run said ``converged``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import requests

from ragflow_dagster.client import RAGFlowClient, RAGFlowError, RAGFlowIncompleteListingError
from ragflow_dagster.sources import LocalFolderSource
from ragflow_dagster.sync.engine import SyncAbortedError, SyncOptions, sync_source

from .proxy import LyingProxy, Seen
from .raw import assert_exact, raw_documents, read_tree

N = 250


def _tree(root: Path, n: int = N) -> dict[str, bytes]:
    rng = random.Random(n)
    for i in range(n):
        p = root / f"d{i % 5}" / f"f{i:04d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"file {i} {rng.random()}\n".encode())
    return read_tree(root)


@pytest.fixture
def synced(ragflow_sandbox, tmp_path):
    """A dataset in sync with a 250-file folder; returns (sandbox, dataset id, folder, files)."""
    files = _tree(tmp_path / "src")
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as c:
        ds = c.create_dataset(f"listing-{tmp_path.name}"[:100])
        assert sync_source(c, LocalFolderSource(tmp_path / "src"), ds.id).converged
    return ragflow_sandbox, ds.id, tmp_path / "src", files


def _hand_upload(sb, ds: str, names: list[str]) -> list[str]:
    r = requests.post(
        f"{sb.base_url}/api/v1/datasets/{ds}/documents",
        files=[("file", (n, f"{n} by hand\n".encode())) for n in names],
        headers={"Authorization": f"Bearer {sb.api_key}"},
        timeout=30,
    )
    assert r.json()["code"] == 0, r.text
    return [d["id"] for d in r.json()["data"]]


def _hand_delete(sb, ds: str, ids: list[str]) -> None:
    r = requests.delete(
        f"{sb.base_url}/api/v1/datasets/{ds}/documents",
        json={"ids": ids},
        headers={"Authorization": f"Bearer {sb.api_key}"},
        timeout=30,
    )
    assert r.json()["code"] == 0, r.text


def _sync_through(proxy: LyingProxy, key: str, ds: str, src: Path, **opts):
    with RAGFlowClient(proxy.base_url, key, max_retries=1, backoff=0.01) as c:
        return sync_source(c, LocalFolderSource(src), ds, SyncOptions(**opts))


def test_a_page_without_data_is_never_an_empty_dataset(synced):
    sb, ds, src, files = synced
    with LyingProxy(sb.base_url) as proxy:
        proxy.rewrite = lambda seen, body: {"code": 0} if seen.page == 2 else body
        with pytest.raises(SyncAbortedError) as aborted:
            _sync_through(proxy, sb.api_key, ds, src)
    assert isinstance(aborted.value.__cause__, RAGFlowIncompleteListingError)
    report = aborted.value.report
    assert not report.converged and report.counts["uploaded"] == 0
    assert_exact(sb.base_url, sb.api_key, ds, files)


def test_a_short_page_before_total_is_never_the_end(synced):
    sb, ds, src, files = synced

    def short(seen: Seen, body: dict) -> dict:
        if seen.page == 2 and "data" in body:
            body["data"]["docs"] = body["data"]["docs"][:37]
        return body

    with LyingProxy(sb.base_url) as proxy:
        proxy.rewrite = short
        with pytest.raises(SyncAbortedError):
            _sync_through(proxy, sb.api_key, ds, src)
    assert_exact(sb.base_url, sb.api_key, ds, files)


def test_a_transient_bad_page_is_fetched_again_and_the_run_converges(synced):
    sb, ds, src, files = synced
    (src / "d0" / "new.txt").write_bytes(b"a new file\n")
    files = read_tree(src)
    broken = {"left": 2}

    def flaky(seen: Seen, body: dict) -> dict:
        if seen.page == 2 and broken["left"] > 0:
            broken["left"] -= 1
            return {"code": 0, "message": "success"}
        return body

    with LyingProxy(sb.base_url) as proxy:
        proxy.rewrite = flaky
        report = _sync_through(proxy, sb.api_key, ds, src)
    assert report.converged and report.counts["uploaded"] == 1
    assert_exact(sb.base_url, sb.api_key, ds, files)


def test_documents_deleted_between_two_pages_are_neither_skipped_nor_duplicated(synced):
    """50 documents deleted by hand (raw HTTP) while the sync pages through the dataset."""
    sb, ds, src, files = synced
    victims = [d["id"] for d in raw_documents(sb.base_url, sb.api_key, ds)[:50]]
    done = {"deleted": False}

    def delete_between_pages(seen: Seen) -> None:
        if seen.is_listing and seen.page == 2 and not done["deleted"]:
            done["deleted"] = True
            _hand_delete(sb, ds, victims)

    with LyingProxy(sb.base_url) as proxy:
        proxy.before = delete_between_pages
        report = _sync_through(proxy, sb.api_key, ds, src)
    assert done["deleted"]
    # the folder still has those 50 files: they are uploaded again, once each
    assert report.converged and report.counts["uploaded"] == 50
    assert_exact(sb.base_url, sb.api_key, ds, files)


def test_a_chunk_page_without_data_raises_incomplete_listing(synced):
    sb, ds, _src, _files = synced
    with RAGFlowClient(sb.base_url, sb.api_key) as c:
        doc = next(c.iter_documents(ds))
    with LyingProxy(sb.base_url) as proxy, RAGFlowClient(proxy.base_url, sb.api_key) as c:
        proxy.rewrite = lambda seen, body: {"code": 0} if seen.path.endswith("/chunks") else body
        with pytest.raises(RAGFlowIncompleteListingError, match="chunk page"):
            c.list_chunks(ds, doc.id)
        with pytest.raises(RAGFlowIncompleteListingError):
            list(c.iter_chunks(ds, doc.id))


def test_an_empty_2xx_reply_is_an_error_not_an_empty_listing(synced):
    sb, ds, _src, _files = synced
    with LyingProxy(sb.base_url) as proxy, RAGFlowClient(proxy.base_url, sb.api_key) as c:
        proxy.rewrite = lambda seen, body: b""  # HTTP 200 with an empty body
        with pytest.raises(RAGFlowError, match="not a JSON object"):
            c.list_documents(ds)
        with pytest.raises(RAGFlowError, match="not a JSON object"):
            list(c.iter_documents(ds))


def test_a_page_that_only_stdlib_json_reads_is_still_read(synced):
    """The client decodes with orjson and falls back to the stdlib for what orjson refuses
    (``NaN``, integers beyond 64 bits): such a page is read, not taken as a page without data."""
    sb, ds, _src, _files = synced

    def odd(seen: Seen, body: dict) -> bytes:
        docs = body.get("data", {}).get("docs")
        if seen.query.get("desc") == ["true"]:  # the newest page, read first
            pass
        elif seen.page == 1 and docs:
            docs[0]["progress"] = float("nan")
        elif seen.page == 2 and docs:  # alone on its page: orjson would read it as 1e20
            docs[0]["meta_fields"]["big"] = 10**20
        return json.dumps(body).encode()  # the stdlib writes NaN as it is

    with LyingProxy(sb.base_url) as proxy, RAGFlowClient(proxy.base_url, sb.api_key) as c:
        proxy.rewrite = odd
        docs = list(c.iter_documents(ds))
    assert len(docs) == N
    assert sum(1 for d in docs if d.progress != d.progress) == 1  # the NaN came through
    bigs = [d.meta_fields["big"] for d in docs if "big" in d.meta_fields]
    assert bigs == [10**20] and type(bigs[0]) is int  # not orjson's float 1e20


def test_a_delete_and_a_create_between_two_pages_are_never_a_complete_listing(synced):
    """One document deleted and one uploaded by hand while the sync pages through the dataset.

    The total stays the same, so it proves nothing: oldest first, the delete shifts the first
    document of the next page onto the page already read, and the new document lands at the
    end. Before the fix that shifted document (here one whose file was removed) was never seen,
    the listing passed its count, and the run said ``converged`` over a dataset that still held
    it and had lost the deleted file's document.
    """
    sb, ds, src, _ = synced
    order = raw_documents(sb.base_url, sb.api_key, ds)  # oldest first, as the sync lists
    victim, shifted = order[0], order[100]  # the first of page 1; the first of page 2
    (src / shifted["meta_fields"]["source_path"]).unlink()
    files = read_tree(src)
    hand: dict[str, str] = {}

    def delete_and_create(seen: Seen) -> None:
        oldest_first = seen.query.get("desc", ["true"])[0] == "false"
        if seen.is_listing and oldest_first and seen.page == 2 and not hand:
            [hand["id"]] = _hand_upload(sb, ds, ["by-hand.txt"])
            _hand_delete(sb, ds, [victim["id"]])

    with LyingProxy(sb.base_url) as proxy:
        proxy.before = delete_and_create
        report = _sync_through(proxy, sb.api_key, ds, src)
    assert hand, "the hand edit never ran"
    assert report.converged
    assert report.counts["uploaded"] == 1 and report.counts["deleted"] == 1
    assert_exact(sb.base_url, sb.api_key, ds, files, others=[hand["id"]])


def _at_oldest_page_2(action):
    """A proxy hook running ``action`` once, before the oldest-first page 2 is answered."""
    ran: list[object] = []

    def hook(seen: Seen) -> None:
        oldest_first = seen.query.get("desc") == ["false"]
        if seen.is_listing and oldest_first and seen.page == 2 and not ran:
            ran.append(action())

    return hook, ran


@pytest.mark.parametrize("width", [1, 4])
def test_uploads_during_a_listing_change_nothing_it_must_prove(synced, width):
    """Oldest first, documents uploaded meanwhile land at the end: nothing shifts, the listing
    is complete and has them (no false alarm: overlapping runs upload all the time)."""
    sb, ds, _src, _files = synced
    before = {d["id"] for d in raw_documents(sb.base_url, sb.api_key, ds)}
    with LyingProxy(sb.base_url) as proxy, RAGFlowClient(proxy.base_url, sb.api_key) as c:
        c.list_concurrency = width
        proxy.before, ran = _at_oldest_page_2(lambda: _hand_upload(sb, ds, ["x.txt", "y.txt"]))
        seen = [d.id for d in c.iter_documents(ds)]
    assert ran and len(seen) == len(set(seen))
    assert before | set(ran[0]) == set(seen)


@pytest.mark.parametrize("width", [1, 4])
def test_a_delete_and_an_upload_during_a_listing_raise_changed(synced, width):
    sb, ds, _src, _files = synced
    oldest = raw_documents(sb.base_url, sb.api_key, ds)[0]["id"]

    def delete_and_upload() -> None:
        _hand_upload(sb, ds, ["z.txt"])
        _hand_delete(sb, ds, [oldest])

    with LyingProxy(sb.base_url) as proxy, RAGFlowClient(proxy.base_url, sb.api_key) as c:
        c.list_concurrency = width
        proxy.before, ran = _at_oldest_page_2(delete_and_upload)
        with pytest.raises(RAGFlowIncompleteListingError) as changed:
            list(c.iter_documents(ds))
        assert ran and changed.value.changed
        # a fresh pass, with nothing changing, is complete again
        assert len(list(c.iter_documents(ds))) == N


def test_the_newest_page_read_first_costs_no_request(synced, ragflow_sandbox):
    """250 documents: the newest page, then the two oldest-first pages that hold the other 150
    (as many requests as pages); a dataset of one page: one request."""
    sb, ds, _src, _files = synced
    with LyingProxy(sb.base_url) as proxy, RAGFlowClient(proxy.base_url, sb.api_key) as c:
        assert len(list(c.iter_documents(ds))) == N
        assert proxy.listings == 3
        small = c.create_dataset(f"small-{ds[:8]}")
        _hand_upload(sb, small.id, ["a.txt", "b.txt"])
        proxy.listings = 0
        assert [d.name for d in c.iter_documents(small.id)] == ["a.txt", "b.txt"]
        assert proxy.listings == 1


def test_churn_by_hand_on_every_listing_still_ends_exact(ragflow_sandbox, tmp_path):
    """Someone deletes their oldest document and uploads a new one while each of the sync's
    listings is read (the first, the ones read again, the proof after the deletes): the run
    must converge on exactly the folder, their documents untouched. Before the fix a document
    skipped by the shift was taken as missing and uploaded again, and three rounds ended with a
    duplicate left (not converged)."""
    sb = ragflow_sandbox
    with RAGFlowClient(sb.base_url, sb.api_key) as c:
        ds = c.create_dataset(f"churn-{tmp_path.name}"[:100]).id
    theirs = _hand_upload(sb, ds, [f"theirs-{i}.txt" for i in range(8)])  # the oldest documents
    src = tmp_path / "src"
    files = _tree(src)
    with RAGFlowClient(sb.base_url, sb.api_key) as c:
        assert sync_source(c, LocalFolderSource(src), ds).converged
    for path in sorted(files)[::12]:  # 21 files removed: their documents must go
        (src / path).unlink()
    files = read_tree(src)
    churned: list[str] = []
    after_its_deletes: list[str] = []  # churns while the sync proves what its deletes left

    def churn(seen: Seen) -> None:
        if seen.method == "DELETE" and seen.path.endswith("/documents"):
            after_its_deletes.append("")  # the sync deleted: its next listing is a proof
            return
        oldest_first = seen.query.get("desc") == ["false"]
        wanted = not churned or (after_its_deletes and len(churned) < 3)
        if seen.is_listing and oldest_first and seen.page == 2 and wanted:
            oldest = theirs.pop(0)
            theirs.extend(_hand_upload(sb, ds, [f"theirs-new-{len(churned)}.txt"]))
            _hand_delete(sb, ds, [oldest])
            churned.append(oldest)

    with LyingProxy(sb.base_url) as proxy:
        proxy.before = churn
        report = _sync_through(proxy, sb.api_key, ds, src)
    assert len(churned) == 3 and after_its_deletes, churned
    assert report.converged and report.counts["deleted"] == 21
    assert report.counts["uploaded"] == 0
    assert_exact(sb.base_url, sb.api_key, ds, files, others=theirs)
