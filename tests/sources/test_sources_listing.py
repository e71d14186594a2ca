"""The one listing adapter: declared capabilities honoured, budgets, resume, break-offs."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from ragflow_dagster.sources import (
    FileFilters,
    KnownFile,
    Listing,
    LocalFolderSource,
    S3Source,
    SkippedEntry,
    Source,
    SourceEntry,
)


class Plain(Source):
    """A third-party source declaring nothing: it lists everything, filters nothing."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.scans = 0

    @property
    def uri(self) -> str:
        return "plain://"

    def uri_for(self, path: str) -> str:
        return "plain://" + path

    def scan(self, filters=None) -> Iterator[SourceEntry | SkippedEntry]:
        self.scans += 1
        for path, data in self.files.items():
            yield SourceEntry(path, len(data), 0.0, f"{len(data)}-0")

    def open(self, path, *, expected_token=None):
        return io.BytesIO(self.files[path])


def test_a_source_must_implement_one_listing_method():
    class Nothing(Source):
        uri = "x://"

        def uri_for(self, path):
            return path

        def open(self, path, *, expected_token=None):
            raise FileNotFoundError(path)

    with pytest.raises(TypeError, match="scan\\(\\) or scan_batches\\(\\)"):
        list(Nothing().scan())


def test_the_adapter_applies_filters_and_known_fingerprints_a_source_does_not():
    src = Plain({"a.md": b"aa", ".hidden.md": b"h", "b.txt": b"bbb"})
    known = {"a.md": KnownFile("2-0", "f" * 64, 2), "b.txt": KnownFile("stale", "e" * 64, 3)}
    listing = Listing(src, filters=FileFilters(extensions=["md", "txt"]), known=known)
    pages = list(listing)
    entries = [e for p in pages for e in p.entries]
    assert [(e.path, e.sha256) for e in entries] == [("a.md", "f" * 64), ("b.txt", None)]
    assert [(s.path, s.reason) for p in pages for s in p.skipped] == [(".hidden.md", "filtered")]
    assert listing.done and not listing.resumable and listing.resume is None
    assert listing.cursor_after("a.md") is None
    with pytest.raises(RuntimeError):
        list(listing)


def test_a_source_that_cannot_page_is_listed_whole_even_when_paging_is_asked(sh, tmp_path):
    for i in range(5):
        sh.write(tmp_path, f"d{i}/f.txt")
    listing = Listing(
        LocalFolderSource(tmp_path), start_after="d2/f.txt", paged=True, max_entries=1
    )
    assert sorted(e.path for p in listing for e in p.entries) == [f"d{i}/f.txt" for i in range(5)]
    assert listing.done and not listing.resumable


def test_s3_pages_resume_within_an_entry_budget(s3_endpoint):
    bucket = s3_endpoint.new_bucket("listing")
    s3 = s3_endpoint.client()
    keys = [f"kb/{i:02d}.txt" for i in range(7)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    src = S3Source(bucket, "kb", client=s3, page_size=2)
    seen: list[str] = []
    cursor = None
    ticks = 0
    while True:
        ticks += 1
        listing = Listing(src, start_after=cursor, paged=True, max_entries=2)
        for page in listing:
            assert page.start == cursor or page.start is not None
            seen += [e.path for e in page.entries]
        if listing.done:
            break
        cursor = listing.resume
        assert cursor == "kb/" + seen[-1] == listing.cursor_after(seen[-1])
    assert seen == [k.removeprefix("kb/") for k in keys] and ticks == 4


def test_a_listing_that_breaks_off_says_so_and_where_to_retry(s3_endpoint):
    bucket = s3_endpoint.new_bucket("brk")
    s3 = s3_endpoint.client()
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"{i}.txt", Body=b"x")

    class Flaky(S3Source):
        def iter_pages(self, *, start_after=None, filters=None):
            for n, (items, resume) in enumerate(
                super().iter_pages(start_after=start_after, filters=filters)
            ):
                if n == 1:
                    yield [SkippedEntry("", "unreadable", "reset", True)], start_after
                    return
                start_after = resume
                yield items, resume

    listing = Listing(Flaky(bucket, client=s3, page_size=2), paged=True)
    pages = list(listing)
    assert listing.broke_off and not listing.done and listing.resume == "1.txt"
    assert pages[-1].broke_off and [e.path for e in pages[0].entries] == ["0.txt", "1.txt"]


def test_a_time_budget_stops_after_the_page_that_crosses_it(s3_endpoint):
    bucket = s3_endpoint.new_bucket("time")
    s3 = s3_endpoint.client()
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"{i}.txt", Body=b"x")
    ticks = iter(range(100))
    listing = Listing(
        S3Source(bucket, client=s3, page_size=2),
        paged=True,
        time_budget_s=1.5,
        clock=lambda: float(next(ticks)),
    )
    pages = list(listing)
    assert len(pages) == 2 and not listing.done and listing.resume == "3.txt"
