"""LocalFolderSource on a generated hostile tree: nothing crashes, everything has a reason."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator

import pytest

from ragflow_dagster.sources import (
    SKIP_REASONS,
    ContentChangedError,
    FileFilters,
    Inventory,
    LocalFolderSource,
    SkippedEntry,
    Source,
    SourceEntry,
    SourceError,
    build_inventory,
    source_from_uri,
)


@pytest.fixture(scope="module")
def hostile(sh) -> Iterator[tuple[str, dict]]:
    with sh.world_readable_tmpdir() as root:
        yield root, sh.build_hostile_tree(root)


@pytest.fixture(scope="module")
def hostile_inventory(sh, hostile) -> Inventory:
    root, _ = hostile
    return sh.run_unprivileged(lambda: build_inventory(LocalFolderSource(root)))


def test_hostile_tree_lists_every_file_and_gives_every_skip_a_reason(hostile, hostile_inventory):
    _, expected = hostile
    inv = hostile_inventory

    listed = {e.path for e in inv.entries}
    assert listed == expected["entries"] - expected["protected"]
    reasons = {s.path: s.reason for s in inv.skipped}
    for path, reason in expected["skipped"].items():
        assert reasons.get(path) == reason, path
    assert reasons["noread.txt"] == "unreadable"
    assert all(s.reason in SKIP_REASONS for s in inv.skipped)
    # nothing from inside pruned / unreadable / undecodable folders leaks out
    assert not any(p.startswith(("locked/", ".git/", "dir-")) for p in listed)


def test_hostile_tree_completeness_is_exact(hostile_inventory):
    inv = hostile_inventory
    # the unreadable folder makes the listing incomplete and is named ...
    assert inv.complete is False
    assert "locked/" in inv.unlisted_prefixes
    # ... the unreadable file is protected from deletion without making the listing incomplete
    assert "noread.txt" in inv.unlisted_prefixes
    unreadable = next(s for s in inv.skipped if s.path == "locked/")
    assert unreadable.unlisted and "Permission denied" in unreadable.detail


def test_hostile_tree_entries_are_exact(hostile):
    root, _ = hostile
    inv = build_inventory(LocalFolderSource(root))  # as the current user (root reads all)
    by_path = inv.by_path
    assert by_path["empty.txt"].size == 0
    assert by_path["empty.txt"].sha256 == hashlib.sha256(b"").hexdigest()
    assert by_path["a.txt"].sha256 == hashlib.sha256(b"hello world\n").hexdigest()
    # a symlink inside the root is listed under its own path with its target's content
    assert by_path["link-in.txt"].sha256 == by_path["a.txt"].sha256
    assert by_path["link-dir/report.md"].sha256 == by_path["docs/report.md"].sha256
    st = os.stat(os.path.join(root, "docs", "report.md"))
    entry = by_path["docs/report.md"]
    assert entry.change_token == f"{st.st_size}-{st.st_mtime_ns}"
    assert entry.modified == st.st_mtime
    assert "unicode/café ☕.txt" in by_path and "new\nline.txt" in by_path


def test_symlinks_not_followed_when_disabled(hostile):
    root, _ = hostile
    items = list(LocalFolderSource(root, follow_symlinks=False).scan())
    paths = {i.path for i in items if isinstance(i, SourceEntry)}
    assert "link-in.txt" not in paths and not any(p.startswith("link-dir/") for p in paths)
    skipped = {i.path: i.reason for i in items if isinstance(i, SkippedEntry)}
    assert skipped["link-in.txt"] == "special_file"
    assert skipped["link-out"] == "special_file"


def test_indirect_symlink_loop_is_detected(sh, tmp_path):
    sh.write(tmp_path, "a/file.txt", b"a")
    sh.write(tmp_path, "b/file.txt", b"b")
    os.symlink(tmp_path / "b", tmp_path / "a" / "to-b")
    os.symlink(tmp_path / "a", tmp_path / "b" / "to-a")
    items = list(LocalFolderSource(tmp_path).scan())
    paths = sorted(i.path for i in items if isinstance(i, SourceEntry))
    assert paths == ["a/file.txt", "a/to-b/file.txt", "b/file.txt", "b/to-a/file.txt"]
    loops = sorted(i.path for i in items if isinstance(i, SkippedEntry))
    assert loops == ["a/to-b/to-a/", "b/to-a/to-b/"]
    assert all(i.reason == "symlink_loop" for i in items if isinstance(i, SkippedEntry))


def test_missing_root_raises_naming_it(sh, tmp_path):
    missing = tmp_path / "not-mounted"
    with pytest.raises(SourceError, match=r"not-mounted.*does not exist"):
        build_inventory(LocalFolderSource(missing))
    sh.write(tmp_path, "file", b"")
    with pytest.raises(SourceError, match="is not a directory"):
        list(LocalFolderSource(tmp_path / "file").scan())


def test_unlistable_root_raises(sh):
    with sh.world_readable_tmpdir() as root:
        locked = os.path.join(root, "locked")
        os.mkdir(locked, 0)

        def attempt() -> str:
            try:
                list(LocalFolderSource(locked).scan())
            except SourceError as exc:
                return str(exc)
            return "no error"

        assert "cannot be listed" in sh.run_unprivileged(attempt)


def test_root_vanishing_mid_walk_makes_the_inventory_incomplete(sh, tmp_path):
    root = tmp_path / "root"
    for i in range(5):
        sh.write(root, f"d{i}/f.txt", b"x")

    class Unmounting(LocalFolderSource):
        def scan_batches(self, filters=None):
            for n, batch in enumerate(super().scan_batches(filters)):
                yield batch
                if n == 0:
                    shutil.rmtree(self.root)

    inv = build_inventory(Unmounting(root), compute_sha256=False)
    assert inv.complete is False
    assert "" in inv.unlisted_prefixes
    assert any(s.reason == "vanished" for s in inv.skipped)


def test_file_vanishing_between_listing_and_reading(sh, tmp_path):
    sh.write(tmp_path, "stays.txt", b"1")
    victim = sh.write(tmp_path, "goes.txt", b"2")

    class Vanishing(LocalFolderSource):
        def scan_batches(self, filters=None):
            yield from super().scan_batches(filters)
            os.remove(victim)

    inv = build_inventory(Vanishing(tmp_path))
    assert [e.path for e in inv.entries] == ["stays.txt"]
    assert [(s.path, s.reason) for s in inv.skipped] == [("goes.txt", "vanished")]
    assert inv.complete and inv.unlisted_prefixes == []  # gone for real: may be deleted


class Growing(LocalFolderSource):
    """Appends to ``grow.txt`` right after it is opened, ``times`` times."""

    def __init__(self, root, times: int) -> None:
        super().__init__(root)
        self.times = times

    def open(self, path, *, expected_token=None):
        reader = super().open(path, expected_token=expected_token)
        if path == "grow.txt" and self.times > 0:
            self.times -= 1
            with open(os.path.join(self.root, path), "ab") as f:
                f.write(b"+more")
        return reader


def test_file_growing_while_hashed_is_rehashed_consistently(sh, tmp_path):
    sh.write(tmp_path, "grow.txt", b"start")
    inv = build_inventory(Growing(tmp_path, times=1))
    (entry,) = inv.entries
    assert entry.size == len(b"start+more")
    assert entry.sha256 == hashlib.sha256(b"start+more").hexdigest()
    st = os.stat(tmp_path / "grow.txt")
    assert entry.change_token == f"{st.st_size}-{st.st_mtime_ns}"


def test_file_that_never_settles_is_skipped_and_protected(sh, tmp_path):
    sh.write(tmp_path, "grow.txt", b"start")
    inv = build_inventory(Growing(tmp_path, times=99))
    assert inv.entries == []
    (skip,) = inv.skipped
    assert skip.reason == "unstable" and skip.path == "grow.txt"
    assert inv.unlisted_prefixes == ["grow.txt"] and inv.complete


def test_open_and_stat(sh, tmp_path):
    sh.write(tmp_path, "sub/a.txt", b"content")
    src = LocalFolderSource(tmp_path)
    (entry,) = list(src.scan())
    assert src.stat("sub/a.txt") == entry
    with src.open("sub/a.txt", expected_token=entry.change_token) as f:
        assert f.read() == b"content"
        assert os.fstat(f.fileno()).st_size == 7
    sh.write(tmp_path, "sub/a.txt", b"changed!")
    with pytest.raises(ContentChangedError):
        src.open("sub/a.txt", expected_token=entry.change_token)
    for bad in ("../etc/passwd", "/etc/passwd", "sub//a.txt", "./a", ""):
        with pytest.raises(FileNotFoundError):
            src.open(bad)
    with pytest.raises(FileNotFoundError):
        src.open("sub/gone.txt")


def test_open_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="FIFO"):
        LocalFolderSource(tmp_path).open("pipe")


def test_open_refuses_symlink_escaping_the_root(sh, tmp_path):
    root = tmp_path / "root"
    sh.write(tmp_path, "outside.txt", b"secret")
    root.mkdir()
    os.symlink(tmp_path / "outside.txt", root / "link.txt")
    with pytest.raises(PermissionError):
        LocalFolderSource(root).open("link.txt")


def test_uri_and_source_from_uri(tmp_path):
    src = LocalFolderSource(tmp_path / "a b")
    assert src.uri == (tmp_path / "a b").as_uri()
    assert src.uri_for("x y/z.txt") == src.uri + "/x%20y/z.txt"
    assert isinstance(src, Source)
    again = source_from_uri(src.uri)
    assert isinstance(again, LocalFolderSource) and again.root == str(tmp_path / "a b")
    assert source_from_uri(str(tmp_path)).root == str(tmp_path)
    with pytest.raises(ValueError, match="scheme"):
        source_from_uri("nope://host/x")


def test_exclude_dirs_are_pruned_during_the_walk(sh, tmp_path):
    sh.write(tmp_path, "keep/a.txt")
    sh.write(tmp_path, "node_modules/pkg/index.js")
    os.mkfifo(tmp_path / "node_modules" / "pipe")  # would be reported if the walk entered
    os.symlink("nope", tmp_path / "node_modules" / "pkg" / "broken")
    items = list(LocalFolderSource(tmp_path).scan(FileFilters(exclude_dirs=["node_modules"])))
    summary = sorted((i.path, type(i).__name__, getattr(i, "reason", "")) for i in items)
    assert summary == [
        ("keep/a.txt", "SourceEntry", ""),
        ("node_modules/", "SkippedEntry", "filtered"),
    ]
