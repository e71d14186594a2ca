"""S3Source against moto's standalone S3 server on 127.0.0.1 (real HTTP, real paging)."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ragflow_dagster.sources import (
    ContentChangedError,
    FileFilters,
    HashingReader,
    KnownFile,
    S3Source,
    Source,
    SourceEntry,
    SourceError,
    build_inventory,
    source_from_uri,
)

BULK = 2000


def _body(i: int) -> bytes:
    return f"object {i}\n".encode() * (1 + i % 7)


@pytest.fixture(scope="module")
def bulk_bucket(s3_endpoint) -> str:
    """A bucket with ``BULK`` objects under ``bulk/`` (uploaded once per module)."""
    bucket = s3_endpoint.new_bucket("bulk")
    client = s3_endpoint.client()

    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"bulk/d{i % 10}/k{i:05d}.txt", Body=_body(i))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(BULK)))
    return bucket


def _source(s3_endpoint, bucket: str, prefix: str = "", **kwargs) -> S3Source:
    return S3Source(bucket, prefix, endpoint_url=s3_endpoint.endpoint_url, **kwargs)


def test_lists_thousands_of_keys_across_pages(s3_endpoint, bulk_bucket):
    started = time.time()
    src = _source(s3_endpoint, bulk_bucket, "bulk", page_size=1000)
    assert isinstance(src, Source) and src.uri == f"s3://{bulk_bucket}/bulk"
    pages = list(src.scan_batches())
    assert [len(entries) for entries, _ in pages] == [1000, 1000]
    entries = [e for batch, _ in pages for e in batch]
    assert len({e.path for e in entries}) == BULK
    e = next(e for e in entries if e.path == "d7/k00017.txt")
    assert e.size == len(_body(17))
    assert e.change_token == hashlib.md5(_body(17)).hexdigest()  # the ETag, without quotes
    assert started - 300 < e.modified < time.time() + 5
    assert src.uri_for(e.path) == f"s3://{bulk_bucket}/bulk/d7/k00017.txt"


def test_iter_pages_resumes_after_a_key(s3_endpoint, bulk_bucket):
    src = _source(s3_endpoint, bulk_bucket, "bulk/", page_size=700)
    pages = list(src.iter_pages())
    assert [len(items) for items, _ in pages] == [700, 700, 600]
    assert pages[-1][1] is None
    first_resume = pages[0][1]
    assert first_resume is not None and first_resume.startswith("bulk/")
    rest = list(src.iter_pages(start_after=first_resume))
    assert [len(items) for items, _ in rest] == [700, 600]
    seen = {i.path for items, _ in pages[1:] for i in items}
    assert {i.path for items, _ in rest for i in items} == seen


def test_inventory_does_not_hash_s3_by_default_and_reuses_known(s3_endpoint, bulk_bucket):
    src = _source(s3_endpoint, bulk_bucket, "bulk/d3")
    inv = build_inventory(src)
    assert len(inv.entries) == BULK // 10 and inv.hashed == 0 and inv.complete
    assert all(e.sha256 is None for e in inv.entries)
    known = {
        e.path: KnownFile(e.change_token, hashlib.sha256(b"stored").hexdigest())
        for e in inv.entries
    }
    reused = build_inventory(src, known=known)
    assert reused.reused_sha256 == BULK // 10
    hashed = build_inventory(src, compute_sha256=True, max_workers=4)
    e = hashed.by_path["k00003.txt"]
    assert hashed.hashed == BULK // 10 and e.sha256 == hashlib.sha256(_body(3)).hexdigest()


def test_filters_apply_to_keys(s3_endpoint, bulk_bucket):
    src = _source(s3_endpoint, bulk_bucket, "bulk")
    f = FileFilters(include=["d1/*", "d2/*"], exclude_dirs=["d2"], max_size=50)
    inv = build_inventory(src, f)
    assert inv.entries and all(e.path.startswith("d1/") and e.size <= 50 for e in inv.entries)
    reasons = {s.reason for s in inv.skipped}
    assert reasons == {"filtered", "too_large"}
    assert len(inv.entries) + len(inv.skipped) == BULK


@pytest.fixture(scope="module")
def odd_bucket(s3_endpoint) -> str:
    bucket = s3_endpoint.new_bucket("odd")
    client = s3_endpoint.client()
    for key in [
        "root/ok.txt",
        "root/../escape.txt",
        "root/a/../b.txt",
        "root/./dot.txt",
        "root//double.txt",
        "root/folder/",
        "root/.hidden/x.txt",
        "root/bad-folder/",
        "root/unicode/é ☕.md",
    ]:
        body = b"data" if key != "root/folder/" else b""
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def test_unsafe_keys_are_skipped_with_a_reason(s3_endpoint, odd_bucket):
    src = _source(s3_endpoint, odd_bucket, "root")
    inv = build_inventory(src)
    assert sorted(inv.by_path) == ["ok.txt", "unicode/é ☕.md"]
    reasons = {s.path: s.reason for s in inv.skipped}
    assert reasons == {
        "../escape.txt": "unsafe_key",
        "a/../b.txt": "unsafe_key",
        "./dot.txt": "unsafe_key",
        "/double.txt": "unsafe_key",
        "folder/": "special_file",
        ".hidden/x.txt": "filtered",
        "bad-folder/": "unsafe_key",
    }
    assert inv.complete
    for bad in ("../escape.txt", "/double.txt", "a//b"):
        with pytest.raises(FileNotFoundError):
            src.open(bad)


def test_open_streams_and_checks_the_etag(s3_endpoint):
    bucket = s3_endpoint.new_bucket("open")
    client = s3_endpoint.client()
    payload = b"0123456789" * 300_000  # 3 MB, several reads
    client.put_object(Bucket=bucket, Key="p/big.bin", Body=payload)
    src = _source(s3_endpoint, bucket, "p")
    (entry,) = list(src.scan())
    assert isinstance(entry, SourceEntry) and src.stat("big.bin") == entry
    with HashingReader(src.open("big.bin", expected_token=entry.change_token)) as reader:
        while reader.read(1 << 20):
            pass
    assert reader.bytes_read == len(payload)
    assert reader.hexdigest() == hashlib.sha256(payload).hexdigest()
    client.put_object(Bucket=bucket, Key="p/big.bin", Body=b"replaced")
    with pytest.raises(ContentChangedError):
        src.open("big.bin", expected_token=entry.change_token)
    with src.open("big.bin") as f:
        assert f.read() == b"replaced"
        with pytest.raises(OSError):
            f.fileno()
    with pytest.raises(FileNotFoundError):
        src.open("missing.bin")
    with pytest.raises(FileNotFoundError):
        src.stat("missing.bin")


def test_object_replaced_between_listing_and_hashing_is_rehashed(s3_endpoint):
    bucket = s3_endpoint.new_bucket("swap")
    client = s3_endpoint.client()
    client.put_object(Bucket=bucket, Key="a.txt", Body=b"version 1")

    class Swapping(S3Source):
        def scan_batches(self, filters=None):
            yield from super().scan_batches(filters)
            client.put_object(Bucket=bucket, Key="a.txt", Body=b"version 2!")

    inv = build_inventory(
        Swapping(bucket, endpoint_url=s3_endpoint.endpoint_url), compute_sha256=True
    )
    (entry,) = inv.entries
    assert entry.sha256 == hashlib.sha256(b"version 2!").hexdigest()
    assert entry.size == 10 and entry.change_token == hashlib.md5(b"version 2!").hexdigest()


def test_content_filters_on_s3(s3_endpoint):
    bucket = s3_endpoint.new_bucket("mime")
    client = s3_endpoint.client()
    client.put_object(Bucket=bucket, Key="a.pdf", Body=b"%PDF-1.4\n" + b"x" * 100_000)
    client.put_object(Bucket=bucket, Key="b.txt", Body=b"plain text with a needle")
    src = _source(s3_endpoint, bucket)
    inv = build_inventory(src, FileFilters(mime_types=["application/pdf"]))
    assert [(e.path, e.mime) for e in inv.entries] == [("a.pdf", "application/pdf")]
    assert inv.content_checked == 2 and inv.hashed == 0
    inv = build_inventory(src, FileFilters(content_patterns=["needle"]))
    assert list(inv.by_path) == ["b.txt"]


def test_missing_bucket_raises_and_a_broken_listing_is_incomplete(s3_endpoint):
    with pytest.raises(SourceError, match="no-such-bucket"):
        build_inventory(_source(s3_endpoint, "no-such-bucket"))

    bucket = s3_endpoint.new_bucket("vanish")
    client = s3_endpoint.client()
    for i in range(5):
        client.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")

    class BucketDeletedMidway(S3Source):
        def scan_batches(self, filters=None):
            for n, batch in enumerate(super().scan_batches(filters)):
                yield batch
                if n == 0:
                    for i in range(5):
                        client.delete_object(Bucket=bucket, Key=f"k{i}")
                    client.delete_bucket(Bucket=bucket)

    src = BucketDeletedMidway(bucket, endpoint_url=s3_endpoint.endpoint_url, page_size=2)
    inv = build_inventory(src)
    assert [e.path for e in inv.entries] == ["k0", "k1"]
    assert inv.complete is False and inv.unlisted_prefixes == [""]
    (gap,) = inv.skipped
    assert gap.unlisted and "broke off after key 'k1'" in gap.detail


def test_dagster_aws_style_resource_and_uri(s3_endpoint, odd_bucket):
    class FakeS3Resource:  # the shape of dagster_aws.s3.S3Resource: get_client()
        def __init__(self) -> None:
            self.calls = 0

        def get_client(self):
            self.calls += 1
            return s3_endpoint.client()

    resource = FakeS3Resource()
    src = S3Source(odd_bucket, "root", s3_resource=resource)
    assert "ok.txt" in build_inventory(src).by_path
    assert "ok.txt" in build_inventory(src).by_path
    assert resource.calls == 1  # one client, made lazily, reused
    via_client_arg = S3Source(odd_bucket, "root", client=FakeS3Resource())
    assert "ok.txt" in build_inventory(via_client_arg).by_path
    src2 = source_from_uri(f"s3://{odd_bucket}/root", endpoint_url=s3_endpoint.endpoint_url)
    assert isinstance(src2, S3Source) and src2.prefix == "root/"
    assert "ok.txt" in build_inventory(src2).by_path  # its own client, env credentials
    with pytest.raises(ValueError):
        S3Source("b/c")
    with pytest.raises(ValueError):
        source_from_uri("s3:///prefix")
