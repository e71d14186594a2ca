"""The asset checks' verdicts, decided from (inventory, documents) without a server."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ragflow_dagster.checks import (
    RetrievalProbe,
    chunks_healthy,
    documents_match_source,
    retrieval_hits,
    sync_lag,
)
from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sync.identity import managed_meta


@dataclass
class Doc:
    id: str
    name: str
    size: int = 10
    run: str = "DONE"
    chunk_count: int = 2
    meta_fields: dict[str, Any] = field(default_factory=dict)
    create_time: int = 0
    chunk_method: str = "naive"
    parser_config: dict[str, Any] = field(default_factory=dict)
    progress_msg: str = ""
    process_begin_at: str | None = None


def entry(path: str, sha: str = "s", modified: float = 0.0) -> SourceEntry:
    return SourceEntry(path, 10, modified, "t", sha256=sha)


def doc(path: str, sha: str = "s", **kw: Any) -> Doc:
    meta = managed_meta(
        source_uri="file:///r/" + path, path=path, sha256=sha, size=10, change_token="t"
    )
    return Doc(id=f"id-{path}-{sha}-{kw.get('run', 'DONE')}", name=path, meta_fields=meta, **kw)


def test_documents_match_passes_when_in_sync():
    out = documents_match_source([entry("a"), entry("b")], [doc("a"), doc("b"), Doc("x", "own")])
    assert out.passed and out.metadata["files"] == 2


def test_documents_match_reports_missing_stale_duplicate_and_orphan():
    out = documents_match_source(
        [entry("a"), entry("b", sha="new"), entry("c")],
        [doc("a"), doc("a", run="RUNNING"), doc("b", sha="old"), doc("gone")],
    )
    assert not out.passed
    assert out.metadata["missing_or_stale"] == 2  # b stale, c missing
    assert out.metadata["duplicates"] == 1 and out.metadata["orphans"] == 1
    assert out.metadata["sample_orphans"] == ["gone"]


def test_documents_match_respects_scope():
    out = documents_match_source([entry("a"), entry("b")], [doc("a")], in_scope={"a"}.__contains__)
    assert out.passed


def test_chunks_healthy_flags_failures_and_empty_parses():
    docs = [doc("a"), doc("b", run="FAIL"), doc("c", chunk_count=0), doc("d", run="RUNNING")]
    out = chunks_healthy([], docs)
    assert not out.passed
    assert out.metadata["failed"] == 1 and out.metadata["zero_chunks"] == 1
    assert out.metadata["still_parsing"] == 1
    assert chunks_healthy([], [doc("a"), doc("d", run="RUNNING")]).passed


def test_zero_chunks_from_an_empty_file_is_fine():
    empty = doc("e", chunk_count=0)
    assert chunks_healthy([SourceEntry("e", 0, 0.0, "t", sha256="s")], [empty]).passed


def test_sync_lag_only_fails_on_old_changes():
    now = 10_000.0
    entries = [
        entry("fresh", sha="n", modified=now - 60),
        entry("old", sha="n", modified=now - 7200),
    ]
    docs = [doc("fresh", sha="o"), doc("old", sha="o")]
    out = sync_lag(entries, docs, max_lag=timedelta(hours=1), now=now)
    assert not out.passed and out.metadata["sample_late"] == ["old"]
    assert sync_lag(entries, docs, max_lag=timedelta(hours=3), now=now).passed


def test_retrieval_hits():
    probes = [RetrievalProbe("q1", "a.md"), RetrievalProbe("q2", "b.md", top_n=1)]
    answers = {"q1": ["x.md", "a.md"], "q2": ["x.md", "b.md"]}
    out = retrieval_hits(probes, lambda p: answers[p.question])
    assert not out.passed and out.metadata["misses"] == 1
    assert out.metadata["sample_misses"][0]["question"] == "q2"
