"""FsspecSource on fsspec's in-memory filesystem: the fast unit cases of the contract."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import random

import fsspec
import pytest

from ragflow_dagster.sources import (
    ContentChangedError,
    FileFilters,
    KnownFile,
    Listing,
    SourceError,
    build_inventory,
    source_from_uri,
)
from ragflow_dagster.sources.fsspec import FsspecSource
from ragflow_dagster.sources.secrets import Scrubber

_ROOTS = itertools.count()


@pytest.fixture
def mem():
    """A fresh folder of the (process-wide) memory filesystem: ``(fs, "/rootN", put)``."""
    fs = fsspec.filesystem("memory")
    root = f"/t{next(_ROOTS)}"

    def put(rel: str, data: bytes = b"x") -> None:
        fs.pipe(f"{root}/{rel}", data)

    yield fs, root, put
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_paths_filters_and_skip_reasons(mem):
    _fs, root, put = mem
    for rel in ["a.txt", "b/c.md", "b/.h.txt", ".git/config", "b/d/e.md", "b0.txt", "big.bin"]:
        put(rel, b"y" * (100 if rel == "big.bin" else 3))
    src = FsspecSource(f"memory://{root}")
    assert src.uri == f"memory://{root}" and src.uri_for("a b.txt") == f"memory://{root}/a%20b.txt"
    inv = build_inventory(src, FileFilters(max_size=50, exclude_dirs=["d"]))
    assert [e.path for e in inv.entries] == ["a.txt", "b/c.md", "b0.txt"]
    assert {s.path: s.reason for s in inv.skipped} == {
        ".git/": "filtered",
        "b/.h.txt": "filtered",
        "b/d/": "filtered",
        "big.bin": "too_large",
    }
    assert inv.complete and inv.hashed == 3  # size+mtime tokens are no content hash
    assert inv.by_path["a.txt"].sha256 == hashlib.sha256(b"yyy").hexdigest()


def test_excluded_directories_are_never_listed(mem):
    _fs, root, put = mem
    put("keep/a.txt")
    put("node_modules/pkg/index.js")
    listed: list[str] = []

    class Recording(FsspecSource):
        def _ls(self, rel_dir):
            listed.append(rel_dir)
            return super()._ls(rel_dir)

    src = Recording(f"memory://{root}")
    records = list(src.scan(FileFilters(exclude_dirs=["node_modules"])))
    assert [(r.path, type(r).__name__) for r in records] == [
        ("node_modules/", "SkippedEntry"),
        ("keep/a.txt", "SourceEntry"),
    ]
    assert listed == ["", "keep/"]


def test_change_token_and_known_fingerprints(mem):
    _fs, root, put = mem
    put("a.txt", b"one")
    src = FsspecSource(f"memory://{root}")
    (entry,) = src.scan()
    assert entry.change_token == f"3-{round(entry.modified * 1e6) * 1000}"
    assert src.stat("a.txt").change_token == entry.change_token  # ls and info agree
    first = build_inventory(src)
    known = {e.path: KnownFile(e.change_token, e.sha256, e.size) for e in first.entries}
    again = build_inventory(src, known=known)
    assert again.hashed == 0 and again.reused_sha256 == 1
    put("a.txt", b"two!")
    changed = build_inventory(src, known=known)
    assert (
        changed.hashed == 1
        and changed.by_path["a.txt"].sha256 == hashlib.sha256(b"two!").hexdigest()
    )


def test_a_named_token_missing_from_the_metadata_protects_the_file(mem):
    _fs, root, put = mem
    put("a.txt")
    src = FsspecSource(f"memory://{root}", change_token="md5")
    assert src.change_token_is_content_hash
    inv = build_inventory(src)
    assert inv.entries == [] and inv.unlisted_prefixes == ["a.txt"]
    (skip,) = inv.skipped
    assert skip.reason == "unreadable" and "no md5" in skip.detail


def test_open_checks_the_token_and_inventory_rehashes_a_swapped_file(mem):
    _fs, root, put = mem
    put("a.txt", b"version 1")
    src = FsspecSource(f"memory://{root}")
    (entry,) = src.scan()
    put("a.txt", b"version 2!")
    with pytest.raises(ContentChangedError):
        src.open("a.txt", expected_token=entry.change_token)
    with pytest.raises(FileNotFoundError):
        src.open("missing.txt")
    with pytest.raises(FileNotFoundError):
        src.open("../escape.txt")

    class Swapping(FsspecSource):
        def scan_batches(self, filters=None, *, known=None):
            yield from super().scan_batches(filters, known=known)
            put("a.txt", b"version three")

    (e,) = build_inventory(Swapping(f"memory://{root}")).entries
    assert e.sha256 == hashlib.sha256(b"version three").hexdigest() and e.size == 13


def test_missing_root_and_root_that_is_a_file(mem):
    _fs, root, put = mem
    with pytest.raises(SourceError, match="does not exist"):
        build_inventory(FsspecSource(f"memory://{root}/nothing"))
    put("file.txt")
    with pytest.raises(SourceError, match="not a directory"):
        build_inventory(FsspecSource(f"memory://{root}/file.txt"))


def test_a_directory_vanishing_mid_walk_is_skipped_not_fatal(mem):
    fs, root, put = mem
    put("a/1.txt")
    put("b/2.txt")

    class Vanishing(FsspecSource):
        def _ls(self, rel_dir):
            items = super()._ls(rel_dir)
            if rel_dir == "":
                fs.rm(f"{root}/b", recursive=True)
            return items

    inv = build_inventory(Vanishing(f"memory://{root}"))
    assert [e.path for e in inv.entries] == ["a/1.txt"]
    assert [(s.path, s.reason, s.unlisted) for s in inv.skipped] == [("b/", "vanished", False)]
    assert inv.complete  # gone for real: its documents may be deleted


def test_a_directory_failing_to_list_is_an_unlisted_gap(mem):
    _fs, root, put = mem
    put("a/1.txt")
    put("b/2.txt")

    class Broken(FsspecSource):
        def _ls(self, rel_dir):
            if rel_dir == "b/":
                raise ConnectionError("connection reset")
            return super()._ls(rel_dir)

    inv = build_inventory(Broken(f"memory://{root}"))
    assert [e.path for e in inv.entries] == ["a/1.txt"]
    assert not inv.complete and inv.unlisted_prefixes == ["b/"]
    assert inv.skipped[0].detail == "cannot list directory: connection reset"


def test_the_walk_is_in_path_order_and_resumes_after_any_path(mem):
    _fs, root, put = mem
    rng = random.Random(7)
    names = ["a", "a.b", "a0", "b", "é", "Z", "a-b", "a_b"]
    paths = set()
    for _ in range(60):
        depth = rng.randint(1, 3)
        rel = "/".join(rng.choice(names) for _ in range(depth)) + rng.choice(["", ".txt"])
        if any(p.startswith(rel + "/") or rel.startswith(p + "/") for p in paths):
            continue  # a name cannot be both a file and a folder
        paths.add(rel)
        put(rel)
    src = FsspecSource(f"memory://{root}", page_size=7)
    full = [e.path for e in src.scan()]
    assert full == sorted(paths)
    for cut in range(0, len(full), 5):
        rest = [r.path for records, _ in src.iter_pages(start_after=full[cut]) for r in records]
        assert rest == full[cut + 1 :]


def test_a_paged_listing_within_budget_covers_everything_once(mem):
    _fs, root, put = mem
    for i in range(30):
        put(f"d{i % 4}/f{i:02d}.txt")
    src = FsspecSource(f"memory://{root}", page_size=4)
    seen: list[str] = []
    cursor = None
    rounds = 0
    while True:
        rounds += 1
        listing = Listing(src, start_after=cursor, paged=True, max_entries=5)
        for page in listing:
            seen += [e.path for e in page.entries]
        if listing.done:
            break
        cursor = listing.resume
        assert cursor == seen[-1]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 30 and rounds == 4


def test_a_filesystem_instance_and_flat_listing(mem):
    fs, root, put = mem
    put("x/y.txt", b"12")
    put("z.txt", b"3")
    src = FsspecSource(fs, root=root, listing="flat")
    assert src.uri == f"memory://{root}"
    assert [(e.path, e.size) for e in src.scan()] == [("x/y.txt", 2), ("z.txt", 1)]
    assert [r.path for records, _ in src.iter_pages(start_after="x/y.txt") for r in records] == [
        "z.txt"
    ]
    with pytest.raises(ValueError, match="storage_options"):
        FsspecSource(fs, storage_options={"a": 1})


def test_source_from_uri_and_clear_errors():
    assert isinstance(source_from_uri("memory://somewhere"), FsspecSource)
    with pytest.raises(ValueError) as err:
        source_from_uri("webdav+https://me:hunter2-pw@dav.example/docs")
    assert "hunter2-pw" not in str(err.value) and "storage_options" in str(err.value)
    with pytest.raises(ValueError, match="query string"):
        source_from_uri("az://container/prefix?sig=abcdef")
    with pytest.raises(ValueError, match="transport"):
        source_from_uri("webdav://dav.example/docs")
    with pytest.raises(ValueError, match="no fsspec implementation"):
        source_from_uri("nosuchproto://x/y")
    for uri, module, extra in [
        ("gcs://bucket/prefix", "gcsfs", "gcs"),
        ("smb://host/share/dir", "smbprotocol", "smb"),
    ]:
        if importlib.util.find_spec(module) is not None:
            continue  # installed here: nothing is missing
        with pytest.raises(ImportError, match=rf"pip install 'ragflow-dagster\[{extra}\]'"):
            source_from_uri(uri)
    with pytest.raises(ValueError, match="change_token"):
        FsspecSource("memory://x", change_token="crc")  # type: ignore[arg-type]


def test_scrubber_hides_every_kind_of_secret():
    conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleQ==;"
    scrub = Scrubber.from_options(
        {
            "auth": ("alice", "pw-for-alice"),
            "password": "sftp-secret",
            "connection_string": conn,
            "account_name": "acct",
            "key_filename": "/home/alice/.ssh/id",
        },
        environ={"AZURE_STORAGE_SAS_TOKEN": "sv=2020&sig=zzzz9999"},
    )
    text = scrub(f"alice pw-for-alice sftp-secret {conn} c2VjcmV0LWtleQ== sig=zzzz9999 acct")
    for secret in ("pw-for-alice", "sftp-secret", "c2VjcmV0LWtleQ==", "zzzz9999"):
        assert secret not in text
    assert "alice" in text and "acct" in text  # user and account names are not secrets
    assert "pw-for-alice" not in repr(scrub) and "sftp-secret" not in repr(scrub)


def test_a_filesystem_instance_has_its_own_secrets_scrubbed(mem):
    _fs, root, put = mem
    put("a.txt")

    class Keyed(type(_fs)):  # a memory filesystem that was handed a credential
        protocol = ("keyed",)

    fs = Keyed(password="instance-secret-42", skip_instance_cache=True)
    src = FsspecSource(fs, root=root)
    assert src._scrubber("boom: instance-secret-42") == "boom: ***"
    assert [e.path for e in src.scan()] == ["a.txt"]
