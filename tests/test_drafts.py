"""Records built as drafts (ragflow_dagster.drafts) are the records themselves."""

from __future__ import annotations

import dataclasses
import gc
import pickle
from pathlib import Path

import pytest

from ragflow_dagster.client import Document
from ragflow_dagster.drafts import draft_class
from ragflow_dagster.sources import LocalFolderSource, SourceEntry
from ragflow_dagster.sources.base import new_entry
from ragflow_dagster.sync.report import FileOutcome, SyncReport


@dataclasses.dataclass(frozen=True, slots=True)
class Pair:
    a: int
    b: str = ""


def test_a_draft_becomes_an_equal_frozen_record() -> None:
    draft = draft_class(Pair)()
    draft.a, draft.b = 1, "x"
    draft.__class__ = Pair
    assert type(draft) is Pair
    assert draft == Pair(1, "x") and hash(draft) == hash(Pair(1, "x"))
    assert pickle.loads(pickle.dumps(draft)) == Pair(1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        draft.a = 2  # type: ignore[misc]


def test_records_that_cannot_share_a_layout_are_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Loose:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True, weakref_slot=True)
    class Weak:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Child(Pair):
        c: int = 0

    for record in (Loose, Weak, Child):
        with pytest.raises(TypeError, match=record.__name__):
            draft_class(record)


def test_the_package_records_built_as_drafts_equal_their_constructors(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    st = (tmp_path / "a.txt").stat()
    (walked,) = LocalFolderSource(tmp_path).scan()
    assert type(walked) is SourceEntry
    assert walked == SourceEntry("a.txt", 3, st.st_mtime, f"3-{st.st_mtime_ns}")
    assert new_entry("b", 1, 0.0, "t", "s", "m") == SourceEntry("b", 1, 0.0, "t", "s", "m")

    raw = {"id": "d1", "name": "a.txt", "kb_id": "ds", "run": "DONE", "chunk_num": 2}
    doc = Document.from_api(raw)
    assert type(doc) is Document
    assert doc == Document(
        id="d1", dataset_id="ds", name="a.txt", suffix="txt", run="DONE", chunk_count=2
    )

    class Tagged(Document):
        __slots__ = ()

    assert type(Tagged.from_api(raw)) is Tagged

    report = SyncReport(dataset_id="ds", source_uri="file:///x")
    report.record_ok("unchanged", [("a.txt", "d1")])
    assert report.outcomes == [FileOutcome("a.txt", "unchanged", "ok", "d1", "")]
    assert type(report.outcomes[0]) is FileOutcome


def test_the_local_walk_gives_the_collector_back(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"{i}.txt").write_bytes(b"x")
    assert gc.isenabled()
    walk = LocalFolderSource(tmp_path).scan_batches()
    next(walk)
    assert not gc.isenabled()  # paused while the walk is under way ...
    walk.close()
    assert gc.isenabled()  # ... and on again once it is closed
    assert len(list(LocalFolderSource(tmp_path).scan())) == 3
    assert gc.isenabled()
