"""Every filter, on a real folder (and the flat-path form used for S3)."""

from __future__ import annotations

import io
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from ragflow_dagster.sources import (
    FileFilters,
    KnownFile,
    LocalFolderSource,
    SourceEntry,
    build_inventory,
    compile_globs,
    text_ratio,
)

T0 = datetime(2024, 6, 1, tzinfo=timezone.utc).timestamp()


def _kept(root, filters: FileFilters, **kwargs) -> list[str]:
    inv = build_inventory(LocalFolderSource(root), filters, compute_sha256=False, **kwargs)
    return sorted(e.path for e in inv.entries)


def _reasons(root, filters: FileFilters) -> dict[str, tuple[str, str]]:
    inv = build_inventory(LocalFolderSource(root), filters, compute_sha256=False)
    return {s.path: (s.reason, s.detail) for s in inv.skipped}


@pytest.fixture
def tree(sh, tmp_path):
    w = sh.write
    w(tmp_path, "a.PDF", b"%PDF-1.4\n" + b"x" * 100, mtime=T0)
    w(tmp_path, "b.md", b"# title\nsome invoice text\n", mtime=T0 + 86400)
    w(tmp_path, "c.tar.gz", b"\x1f\x8b" + b"\x00" * 50, mtime=T0 - 86400)
    w(tmp_path, "~$lock.md", b"lock", mtime=T0)
    w(tmp_path, "notes.tmp", b"tmp", mtime=T0)
    w(tmp_path, "docs/guide.md", b"guide " * 50, mtime=T0)
    w(tmp_path, "docs/drafts/wip.md", b"wip", mtime=T0)
    w(tmp_path, "docs/deep/er/deepest.md", b"deep", mtime=T0)
    w(tmp_path, "node_modules/x/readme.md", b"dep", mtime=T0)
    w(tmp_path, "build/out.md", b"out", mtime=T0)
    w(tmp_path, ".cache/c.md", b"cache", mtime=T0)
    w(tmp_path, ".env", b"SECRET=1", mtime=T0)
    w(tmp_path, "bin.dat", bytes(range(256)) * 4, mtime=T0)
    return tmp_path


def test_no_filters_keeps_all_but_hidden(tree):
    kept = _kept(tree, FileFilters())
    assert ".env" not in kept and not any(p.startswith(".cache/") for p in kept)
    assert len(kept) == 11
    assert _kept(tree, FileFilters(include_hidden=True)) == sorted([*kept, ".env", ".cache/c.md"])


def test_extensions_are_case_insensitive_and_multi_part(tree):
    assert _kept(tree, FileFilters(extensions=["pdf", ".tar.gz"])) == ["a.PDF", "c.tar.gz"]
    reasons = _reasons(tree, FileFilters(extensions=["pdf"]))
    assert reasons["b.md"] == ("filtered", "extension not allowed")


def test_include_globs_on_relative_path(tree):
    assert _kept(tree, FileFilters(include=["docs/*.md"])) == [
        "docs/deep/er/deepest.md",  # fnmatch: * crosses /
        "docs/drafts/wip.md",
        "docs/guide.md",
    ]
    assert _kept(tree, FileFilters(include=["docs/**/guide.md"])) == ["docs/guide.md"]
    assert _kept(tree, FileFilters(include=["*.pdf"])) == []  # case-sensitive like fnmatchcase


def test_exclude_globs_match_path_and_base_name(tree):
    kept = _kept(tree, FileFilters(exclude=["~$*", "*.tmp", "docs/drafts/*"]))
    assert "~$lock.md" not in kept and "notes.tmp" not in kept
    assert "docs/drafts/wip.md" not in kept and "docs/guide.md" in kept
    reasons = _reasons(tree, FileFilters(exclude=["~$*"]))
    assert reasons["~$lock.md"] == ("filtered", "exclude pattern ~$*")


def test_exclude_dirs_by_name_and_glob_at_any_depth(tree):
    kept = _kept(tree, FileFilters(exclude_dirs=["node_modules", "dr*"]))
    assert not any(p.startswith("node_modules/") or "/drafts/" in p for p in kept)
    reasons = _reasons(tree, FileFilters(exclude_dirs=["node_modules", "dr*"]))
    assert reasons["node_modules/"] == ("filtered", "excluded directory")
    assert reasons["docs/drafts/"] == ("filtered", "excluded directory")
    assert "node_modules/x/readme.md" not in reasons  # pruned: never entered


def test_size_bounds_and_too_large(tree):
    kept = _kept(tree, FileFilters(min_size=100, max_size=300))
    assert kept == ["a.PDF", "docs/guide.md"]
    reasons = _reasons(tree, FileFilters(max_size=300))
    assert reasons["bin.dat"] == ("too_large", "1024 bytes > max_size 300")
    assert reasons.get("b.md") is None


def test_modified_bounds_naive_is_utc_and_strings_work(tree):
    day = datetime(2024, 6, 1)  # naive = UTC = T0
    after = _kept(tree, FileFilters(modified_after=day + timedelta(hours=1)))
    assert after == ["b.md"]
    before = _kept(tree, FileFilters(modified_before="2024-05-31T12:00:00+00:00"))
    assert before == ["c.tar.gz"]
    both = _kept(tree, FileFilters(modified_after=day, modified_before=day, extensions=["pdf"]))
    assert both == ["a.PDF"]  # bounds are inclusive


def test_max_depth_prunes_during_the_walk(tree):
    assert _kept(tree, FileFilters(max_depth=1, extensions=["md"])) == ["b.md", "~$lock.md"]
    kept2 = _kept(tree, FileFilters(max_depth=2, extensions=["md"]))
    assert "docs/guide.md" in kept2 and "docs/drafts/wip.md" not in kept2
    reasons = _reasons(tree, FileFilters(max_depth=2))
    assert reasons["docs/drafts/"][1] == "deeper than max_depth 2"
    with pytest.raises(ValueError):
        FileFilters(max_depth=0)


def test_mime_types_prefix_match(tree):
    kept = _kept(tree, FileFilters(mime_types=["application/pdf", "application/gzip"]))
    assert kept == ["a.PDF", "c.tar.gz"]
    inv = build_inventory(LocalFolderSource(tree), FileFilters(mime_types=["text/"]))
    assert {e.mime for e in inv.entries} <= {"text/plain", "text/markdown", "text/x-markdown"}
    assert "b.md" in inv.by_path and "a.PDF" not in inv.by_path
    skipped = {s.path: s.detail for s in inv.skipped}
    assert skipped["a.PDF"].startswith("mime application/pdf not in text/")


def test_content_patterns_any_of(tree):
    kept = _kept(tree, FileFilters(content_patterns=["invoice", "guide"]))
    assert kept == ["b.md", "docs/guide.md"]


def test_min_text_ratio(tree):
    kept = _kept(tree, FileFilters(min_text_ratio=0.9, exclude_dirs=["docs"]))
    assert "bin.dat" not in kept and "a.PDF" in kept and "b.md" in kept
    assert "c.tar.gz" not in kept
    assert text_ratio(b"") == 1.0
    assert text_ratio("héllo".encode("latin-1"), "latin-1") == 1.0
    assert text_ratio("héllo".encode("latin-1"), "utf-8") < 1.0


def test_encoding_is_used_by_content_filters(sh, tmp_path):
    sh.write(tmp_path, "u16.txt", "grüße invoice".encode("utf-16"))
    sh.write(tmp_path, "u8.txt", "grüße invoice".encode())
    assert _kept(tmp_path, FileFilters(content_patterns=["grüße"])) == ["u8.txt"]
    utf16 = FileFilters(content_patterns=["grüße"], encoding="utf-16")
    assert _kept(tmp_path, utf16) == ["u16.txt"]
    with pytest.raises(LookupError):
        FileFilters(encoding="no-such-codec")


class CountingReader(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.consumed += len(data)
        return data


def test_content_checks_read_only_what_they_need():
    data = b"%PDF-1.5\n" + b"x" * 5_000_000
    f = FileFilters(mime_types=["application/pdf"], min_text_ratio=0.5, sniff_bytes=4096)
    reader = CountingReader(data)
    assert f.check_content("a.pdf", reader) == (None, "application/pdf")
    assert reader.consumed == 4096
    # a pattern near the start stops the search early
    early = CountingReader(b"needle" + b"x" * 5_000_000)
    assert FileFilters(content_patterns=["needle"]).check_content("a", early)[0] is None
    assert early.consumed < 600_000
    # a pattern across a block boundary is found; content_max_bytes bounds the search
    far = b"x" * (256 * 1024 - 3) + b"needle" + b"y" * 10
    assert FileFilters(content_patterns=["needle"]).check_content("a", io.BytesIO(far))[0] is None
    bounded = FileFilters(content_patterns=["needle"], content_max_bytes=1000)
    skipped, _ = bounded.check_content("a", io.BytesIO(far))
    assert (
        skipped is not None and skipped.detail == "no content pattern found in the first 1000 bytes"
    )


def test_known_unchanged_files_keep_their_content_verdict(tree):
    src = LocalFolderSource(tree)
    flt = FileFilters(content_patterns=["invoice"])
    first = build_inventory(src, flt)
    assert first.content_checked == 11 and [e.path for e in first.entries] == ["b.md"]
    known = {e.path: KnownFile(e.change_token, e.sha256, e.size) for e in first.entries}
    again = build_inventory(src, flt, known=known)
    assert [e.path for e in again.entries] == ["b.md"]
    assert again.content_checked == 10  # the kept, unchanged file is not read again
    assert again.hashed == 0 and again.reused_sha256 == 1
    rechecked = build_inventory(src, flt, known=known, recheck_content=True)
    assert rechecked.content_checked == 11


def test_check_path_flat_form_for_s3_keys():
    f = FileFilters(exclude_dirs=["tmp"], max_depth=2, extensions=["md"], max_size=10)
    assert f.check_path("a/b.md") is None
    assert f.check_path("a/b/c.md").detail == "deeper than max_depth 2"
    assert f.check_path("tmp/b.md").detail == "excluded directory"
    assert f.check_path("a/.hidden/b.md").detail == "hidden directory"
    assert f.check_path(".b.md").detail == "hidden file"
    assert f.check_path("a.txt").detail == "extension not allowed"
    assert f.check_path("a.md", size=11).reason == "too_large"
    entry = SourceEntry("x/y.md", 3, T0, "t")
    assert f.check_entry(entry) is None


def test_globs():
    rx = compile_globs(["docs/**/*.md", "/root-anchored.txt"])
    assert rx.match("docs/a.md") and rx.match("docs/x/y/a.md") and rx.match("root-anchored.txt")
    assert not rx.match("other/a.md")
    assert compile_globs([]) is None


def test_filters_are_values_validated_and_picklable():
    f = FileFilters(extensions="pdf", include=("a/*",), modified_after="2024-01-01")
    assert f.extensions == (".pdf",)
    assert f.modified_after == datetime(2024, 1, 1, tzinfo=timezone.utc)
    g = pickle.loads(pickle.dumps(f))
    assert g == f and hash(g) == hash(f)
    assert g.check_path("a/x.pdf") is None and g.check_path("b/x.pdf") is not None
    assert FileFilters().is_cheap_only and not FileFilters(min_text_ratio=0.5).is_cheap_only
    for bad in (
        {"min_size": 10, "max_size": 5},
        {"min_text_ratio": 2.0},
        {"sniff_bytes": 0},
        {"min_size": -1},
        {"extensions": [""]},
        {"content_patterns": [""]},
        {"modified_after": "yesterday"},
    ):
        with pytest.raises(ValueError):
            FileFilters(**bad)
