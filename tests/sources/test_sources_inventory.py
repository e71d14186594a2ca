"""build_inventory: hashing only on change, the DataFrame schema, foreign sources."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator

import pandas as pd
import pytest

from ragflow_dagster.sources import (
    INVENTORY_COLUMNS,
    FileFilters,
    Inventory,
    KnownFile,
    LocalFolderSource,
    SkippedEntry,
    Source,
    SourceEntry,
    build_inventory,
    entries_frame,
)


class RecordingSource(LocalFolderSource):
    """A local folder that remembers which files were opened."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.opened: list[str] = []

    def open(self, path, *, expected_token=None):
        self.opened.append(path)
        return super().open(path, expected_token=expected_token)


def _known(inv: Inventory) -> dict[str, KnownFile]:
    return {e.path: KnownFile(e.change_token, e.sha256, e.size) for e in inv.entries}


@pytest.fixture
def folder(sh, tmp_path):
    for i in range(20):
        sh.write(tmp_path, f"d{i % 3}/f{i:02d}.txt", f"file {i}\n".encode() * (i + 1))
    return tmp_path


def test_hashing_happens_only_on_change(sh, folder):
    src = RecordingSource(folder)
    first = build_inventory(src)
    assert first.hashed == 20 and len(src.opened) == 20
    assert all(e.sha256 for e in first.entries)
    assert first.bytes_hashed == sum(e.size for e in first.entries)

    # unchanged tree: nothing is read at all
    src.opened.clear()
    same = build_inventory(src, known=_known(first))
    assert src.opened == [] and same.hashed == 0 and same.reused_sha256 == 20
    assert same.to_frame().equals(first.to_frame())

    # one edit, one touch (same bytes, new mtime), one new file, one deletion
    sh.write(folder, "d0/f00.txt", b"edited")
    touched = folder / "d1" / "f01.txt"
    os.utime(touched, (1_600_000_000, 1_600_000_000))
    sh.write(folder, "new.txt", b"new")
    os.remove(folder / "d2" / "f02.txt")
    src.opened.clear()
    second = build_inventory(src, known=_known(first))
    assert sorted(src.opened) == ["d0/f00.txt", "d1/f01.txt", "new.txt"]
    assert second.hashed == 3 and second.reused_sha256 == 17
    by = second.by_path
    assert by["d0/f00.txt"].sha256 == hashlib.sha256(b"edited").hexdigest()
    assert by["d1/f01.txt"].sha256 == first.by_path["d1/f01.txt"].sha256  # touched, same bytes
    assert "d2/f02.txt" not in by and len(by) == 20


def test_known_fingerprint_mismatches_force_a_read(folder):
    first = build_inventory(LocalFolderSource(folder))
    entry = first.by_path["d0/f00.txt"]
    known = _known(first)
    known["d0/f00.txt"] = KnownFile(entry.change_token, entry.sha256, size=entry.size + 1)
    known["d0/f03.txt"] = KnownFile(first.by_path["d0/f03.txt"].change_token, None)
    src = RecordingSource(folder)
    inv = build_inventory(src, known=known)
    assert sorted(src.opened) == ["d0/f00.txt", "d0/f03.txt"]
    assert inv.by_path["d0/f03.txt"].sha256 == first.by_path["d0/f03.txt"].sha256


def test_no_hashing_and_mime_detection_options(folder):
    src = RecordingSource(folder)
    inv = build_inventory(src, compute_sha256=False)
    assert src.opened == [] and all(e.sha256 is None for e in inv.entries)
    mimed = build_inventory(src, compute_sha256=False, detect_mime=True, max_workers=1)
    assert {e.mime for e in mimed.entries} == {"text/plain"}


def test_parallel_and_serial_agree(folder):
    a = build_inventory(LocalFolderSource(folder), max_workers=1).to_frame()
    b = build_inventory(LocalFolderSource(folder), max_workers=8).to_frame()
    assert (
        a.sort_values("path")
        .reset_index(drop=True)
        .equals(b.sort_values("path").reset_index(drop=True))
    )


def test_frame_schema(folder):
    inv = build_inventory(LocalFolderSource(folder), FileFilters(max_size=100))
    df = inv.to_frame()
    assert list(df.columns) == list(INVENTORY_COLUMNS)
    assert str(df["size"].dtype) == "int64"
    assert str(df["modified"].dtype) == "datetime64[ns, UTC]"
    assert df["mime"].isna().all() and df["sha256"].notna().all()
    row = df.set_index("path").loc["d0/f00.txt"]
    st = os.stat(folder / "d0" / "f00.txt")
    assert row["modified"] == pd.Timestamp(st.st_mtime, unit="s", tz="UTC")
    assert row["change_token"] == f"{st.st_size}-{st.st_mtime_ns}"
    skipped = inv.skipped_frame()
    assert list(skipped.columns) == ["path", "reason", "detail"]
    assert set(skipped["reason"]) == {"too_large"} and len(skipped) + len(df) == 20
    summary = inv.summary()
    json.dumps(summary)
    assert summary["files"] == len(df) and summary["skipped_by_reason"] == {
        "too_large": len(skipped)
    }
    empty = Inventory([], [], True, "file:///x", 0, 0.0)
    assert list(empty.to_frame().columns) == list(INVENTORY_COLUMNS)
    assert str(empty.to_frame()["modified"].dtype) == "datetime64[ns, UTC]"
    assert len(entries_frame(inv.entries)) == len(df)


class MemorySource(Source):
    """A third-party source that declares nothing: no filters, batches or expected tokens."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    @property
    def uri(self) -> str:
        return "mem://"

    def uri_for(self, path: str) -> str:
        return "mem://" + path

    def scan(self, filters=None) -> Iterator[SourceEntry | SkippedEntry]:
        for path, data in self.files.items():
            yield SourceEntry(path, len(data), 0.0, f"{len(data)}-0")
        yield SkippedEntry("broken/", "unreadable", "boom", unlisted=True)

    def open(self, path: str, *, expected_token=None) -> io.BytesIO:
        if path == "gone.txt":
            raise FileNotFoundError(path)
        if path == "explodes.txt":
            return Exploding(self.files[path])
        return io.BytesIO(self.files[path])


class Exploding(io.BytesIO):
    """A third-party reader failing with something that is not an OSError."""

    def read(self, size: int | None = -1) -> bytes:
        raise RuntimeError("connection reset by a library")

    readinto = None  # type: ignore[assignment]


def test_foreign_source_gets_filters_applied_afterwards():
    files = {"a.md": b"# a", ".hidden.md": b"h", "b.txt": b"b", "gone.txt": b"g"}
    src = MemorySource({**files, "explodes.txt": b"boom"})
    inv = build_inventory(src, FileFilters(extensions=["md", "txt"]))
    assert sorted(inv.by_path) == ["a.md", "b.txt"]
    reasons = {s.path: s.reason for s in inv.skipped}
    assert reasons == {
        ".hidden.md": "filtered",
        "gone.txt": "vanished",
        "broken/": "unreadable",
        "explodes.txt": "unreadable",
    }
    assert "RuntimeError" in next(s.detail for s in inv.skipped if s.path == "explodes.txt")
    assert inv.by_path["a.md"].sha256 == hashlib.sha256(b"# a").hexdigest()
    assert inv.complete is False and inv.unlisted_prefixes == ["broken/", "explodes.txt"]
    assert inv.source_uri == "mem://" and inv.scanned == 6


def test_local_small_files_are_read_in_the_calling_thread(tmp_path):
    """A local folder's small files are hashed one after the other by the caller (threads cost
    more than the reads); large ones, and every file of a source whose reads wait on a network,
    by the inventory's threads."""
    import threading

    from ragflow_dagster.sources import LocalFolderSource, build_inventory
    from ragflow_dagster.sources.hashing import BLOCK_SIZE

    for i in range(6):
        (tmp_path / f"small{i}.txt").write_bytes(b"x" * 1000 * (i + 1))
    for i in range(3):
        (tmp_path / f"big{i}.bin").write_bytes(bytes([i]) * (BLOCK_SIZE + 1))
    readers: dict[str, str] = {}

    class Recording(LocalFolderSource):
        def open(self, path, *, expected_token=None):
            readers[path] = threading.current_thread().name
            return super().open(path, expected_token=expected_token)

    class Remote(Recording):
        reads_wait_on_network = True

    inv = build_inventory(Recording(tmp_path), max_workers=4)
    assert inv.hashed == 9
    main = threading.current_thread().name
    assert {p for p, t in readers.items() if t == main} == {f"small{i}.txt" for i in range(6)}
    assert all(readers[f"big{i}.bin"].startswith("inventory") for i in range(3))
    readers.clear()
    assert build_inventory(Remote(tmp_path), max_workers=4).hashed == 9
    assert all(t.startswith("inventory") for t in readers.values()), readers
