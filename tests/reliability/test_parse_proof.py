"""Parsed means seen DONE (issue: exactly-once, item 4).

A proxy makes the listings by id (what the parse wait polls) come back empty or without
``data`` while the new versions are still RUNNING. Before the fix, absence from the pending
listing counted as parsed: the old versions were deleted and the run said ``parsed N``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sources import LocalFolderSource
from ragflow_dagster.sync.engine import SyncOptions, sync_source

from .proxy import LyingProxy, Seen
from .raw import assert_exact, raw_documents, read_tree


def _empty(seen: Seen, body: dict) -> dict:
    if "ids" in seen.query and isinstance(body.get("data"), dict):
        body["data"] = {"total": 0, "docs": []}
    return body


def _no_data(seen: Seen, body: dict) -> dict:
    return {"code": 0, "message": "success"} if "ids" in seen.query else body


@pytest.mark.parametrize("lie", [_empty, _no_data], ids=["empty", "no-data"])
def test_old_versions_are_deleted_only_after_their_successor_was_seen_done(
    ragflow_sandbox_factory, tmp_path: Path, lie
):
    sb = ragflow_sandbox_factory(parse_delay=1.0)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.txt").write_text(f"first version {i}\n")
    with RAGFlowClient(sb.base_url, sb.api_key) as c:
        ds = c.create_dataset("parse-proof").id
        assert sync_source(c, LocalFolderSource(src), ds).converged
    old = {d["id"] for d in raw_documents(sb.base_url, sb.api_key, ds)}
    for i in range(3):
        (src / f"f{i}.txt").write_text(f"second version {i}, longer\n")

    early_deletes: list[str] = []

    def watch_deletes(seen: Seen) -> None:
        if seen.method == "DELETE" and seen.path.endswith("/documents"):
            states = {d["id"]: d["run"] for d in raw_documents(sb.base_url, sb.api_key, ds)}
            new = [i for i in states if i not in old]
            early_deletes.extend(i for i in new if states[i] != "DONE")

    with LyingProxy(sb.base_url) as proxy:
        proxy.rewrite = lie
        proxy.before = watch_deletes
        with RAGFlowClient(proxy.base_url, sb.api_key, max_retries=0) as c:
            report = sync_source(
                c, LocalFolderSource(src), ds, SyncOptions(parse_timeout=1.5, max_rounds=1)
            )
    assert not early_deletes, "an old version was deleted before its successor was DONE"
    assert report.counts["parsed"] == 0
    assert not report.converged
    # the old versions are all still there: no window without content
    assert old <= {d["id"] for d in raw_documents(sb.base_url, sb.api_key, ds)}
    # a later honest run finishes the job
    with RAGFlowClient(sb.base_url, sb.api_key) as c:
        again = sync_source(c, LocalFolderSource(src), ds, SyncOptions(parse_timeout=60))
    assert again.converged, again.reason
    assert_exact(sb.base_url, sb.api_key, ds, read_tree(src))
    assert not old & {d["id"] for d in raw_documents(sb.base_url, sb.api_key, ds)}
