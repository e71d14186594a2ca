"""FsspecSource against real protocol servers on 127.0.0.1, synced into the RAGFlow sandbox.

Each protocol (WebDAV via wsgidav, SFTP via a paramiko server, Azure Blob via azurite) goes
through one scenario: initial sync, change, move, delete, a file vanishing between listing and
reading, a listing that fails half way (nothing deleted), and credentials absent from every
output. End states are checked by raw HTTP against the sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sources import SourceError, build_inventory
from ragflow_dagster.sources.fsspec import FsspecSource
from ragflow_dagster.sync.engine import SyncAbortedError, SyncOptions, sync_source

FILES = {
    "a.txt": b"alpha: the first file\n",
    "docs/b.md": b"# bravo\nsecond file\n",
    "docs/c.md": b"# charlie\nthird file, it will move\n",
    "keep/d.txt": b"delta stays until the listing is whole again\n",
    "locked/e.txt": b"echo sits in a folder that will fail to list\n",
    "odd names/ünï cödé #1, 50% + more.md": b"foxtrot: a name URLs must escape\n",
}
ODD = "odd names/ünï cödé #1, 50% + more.md"

_CONTAINERS = itertools.count()


def raw_docs(sb: Any, dataset_id: str) -> dict[str, dict[str, Any]]:
    """Managed documents of a dataset by source path, read by raw HTTP (not our client)."""
    out: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        res = requests.get(
            f"{sb.base_url}/api/v1/datasets/{dataset_id}/documents",
            params={"page": page, "page_size": 100},
            headers={"Authorization": f"Bearer {sb.api_key}"},
            timeout=10,
        )
        body = res.json()
        assert body["code"] == 0, body
        docs = body["data"]["docs"]
        for d in docs:
            meta = d.get("meta_fields") or {}
            if meta.get("managed_by") == "ragflow-dagster":
                out[meta["source_path"]] = d
        if len(docs) < 100:
            return out
        page += 1


class Harness:
    """One protocol: how to change files on the server and build a source for it."""

    name = ""
    secret = ""

    def put(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    def remove(self, path: str) -> None:
        raise NotImplementedError

    def move(self, old: str, new: str) -> None:
        self.put(new, self.read(old))
        self.remove(old)

    def read(self, path: str) -> bytes:
        raise NotImplementedError

    def source(self, cls: type[FsspecSource] = FsspecSource) -> FsspecSource:
        raise NotImplementedError

    def fail_listing(self, folder: str) -> None:
        """Make the listing of ``folder`` fail on the server side."""
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError

    def content_reads(self) -> int:
        raise NotImplementedError


class FolderHarness(Harness):
    """Servers that serve a local folder (WebDAV, SFTP)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def put(self, path: str, data: bytes) -> None:
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)

    def remove(self, path: str) -> None:
        os.remove(os.path.join(self.root, path))

    def read(self, path: str) -> bytes:
        with open(os.path.join(self.root, path), "rb") as f:
            return f.read()

    def move(self, old: str, new: str) -> None:
        full = os.path.join(self.root, new)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        shutil.move(os.path.join(self.root, old), full)


class WebDAV(FolderHarness):
    name = "webdav"

    def __init__(self, server: Any) -> None:
        super().__init__(server.root)
        self.server = server
        self.secret = server.password

    def source(self, cls: type[FsspecSource] = FsspecSource) -> FsspecSource:
        return cls(
            f"webdav+{self.server.url}/",
            storage_options={"auth": (self.server.user, self.server.password)},
        )

    def fail_listing(self, folder: str) -> None:
        self.server.fail_propfind.add(folder)

    def heal(self) -> None:
        self.server.fail_propfind.clear()

    def content_reads(self) -> int:
        return self.server.methods["GET"]


class SFTP(FolderHarness):
    name = "sftp"

    def __init__(self, server: Any) -> None:
        super().__init__(server.root)
        self.server = server
        self.secret = server.password

    def source(self, cls: type[FsspecSource] = FsspecSource) -> FsspecSource:
        return cls(
            f"sftp://{self.server.user}@127.0.0.1:{self.server.port}/",
            storage_options={
                "password": self.server.password,
                "look_for_keys": False,
                "allow_agent": False,
            },
        )

    def fail_listing(self, folder: str) -> None:
        self.server.deny_listing.add(folder)

    def heal(self) -> None:
        self.server.deny_listing.clear()

    def content_reads(self) -> int:
        return self.server.ops["open"]


class Azure(Harness):
    name = "azure"

    def __init__(self, azurite: Any, container: str, *, listing: str = "auto") -> None:
        self.azurite = azurite
        self.container = container
        self.listing = listing
        self.client = azurite.service().get_container_client(container)
        self.client.create_container()
        self.secret = azurite.connection_string.split("AccountKey=")[1].split(";")[0]
        self.failing: set[str] = set()

    def put(self, path: str, data: bytes) -> None:
        self.client.upload_blob(f"kb/{path}", data, overwrite=True)

    def remove(self, path: str) -> None:
        self.client.delete_blob(f"kb/{path}")

    def read(self, path: str) -> bytes:
        return self.client.download_blob(f"kb/{path}").readall()

    def source(self, cls: type[FsspecSource] = FsspecSource) -> FsspecSource:
        return cls(
            f"az://{self.container}/kb",
            storage_options={"connection_string": self.azurite.connection_string},
            listing=self.listing,  # type: ignore[arg-type]
        )

    def fail_listing(self, folder: str) -> None:
        self.failing.add(folder)
        container = self.container

        def refuse(method: str, target: str) -> bool:
            if method != "GET" or "comp=list" not in target or f"/{container}?" not in target:
                return False
            if self.listing == "flat":  # a flat listing has one request: it fails whole
                return True
            return any(f"prefix=kb/{f}/" in target for f in self.failing)

        self.azurite.proxy.refuse = refuse

    def heal(self) -> None:
        self.failing.clear()
        self.azurite.proxy.refuse = lambda method, target: False

    def content_reads(self) -> int:
        return self.azurite.proxy.count(
            lambda m, t: m == "GET" and "comp=" not in t and "restype=" not in t
        )


@pytest.fixture(params=["webdav", "sftp", "azure", "azure-walk"])
def harness(request, tmp_path) -> Iterator[Harness]:
    kind = request.param
    if kind == "webdav":
        yield WebDAV(request.getfixturevalue("webdav_server"))
    elif kind == "sftp":
        yield SFTP(request.getfixturevalue("sftp_server"))
    else:
        azurite = request.getfixturevalue("azurite")
        container = f"c{os.getpid()}x{next(_CONTAINERS)}"
        h = Azure(azurite, container, listing="walk" if kind == "azure-walk" else "flat")
        try:
            yield h
        finally:
            h.heal()


@pytest.fixture
def client(ragflow_sandbox) -> Iterator[RAGFlowClient]:
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as c:
        yield c


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sync_lifecycle_against_a_real_server(harness, client, ragflow_sandbox, caplog, request):
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    sb = ragflow_sandbox
    for path, data in FILES.items():
        harness.put(path, data)
    src = harness.source()
    outputs += [repr(src), src.uri, src.uri_for("docs/b.md"), str(vars(src).get("_uri"))]
    ds = client.create_dataset(f"{harness.name}_{request.node.name[-40:]}")

    def sync() -> Any:
        report = sync_source(client, harness.source(), ds.id, SyncOptions())
        outputs.append(report.to_json(max_outcomes=None))
        return report

    # -- initial sync: listing reads no content; every file uploaded and verified -------------
    before = harness.content_reads()
    listed = list(src.scan())
    assert harness.content_reads() == before, "the listing must not read content"
    assert sorted(e.path for e in listed) == sorted(FILES)
    first = sync()
    assert first.counts["uploaded"] == len(FILES) and first.converged, first.to_dict()
    docs = raw_docs(sb, ds.id)
    assert sorted(docs) == sorted(FILES)
    for path, data in FILES.items():
        meta = docs[path]["meta_fields"]
        assert meta["sha256"] == _sha(data)
        assert meta["source_uri"] == src.uri_for(path)
    outputs.append(json.dumps(docs))

    # -- nothing changed: nothing to do, nothing read ------------------------------------------
    before = harness.content_reads()
    again = sync()
    assert again.counts.get("uploaded", 0) == 0 and again.counts["unchanged"] == len(FILES)
    assert harness.content_reads() == before

    # -- change, move, delete ------------------------------------------------------------------
    harness.put("docs/b.md", b"# bravo\nrewritten, and longer than before\n")
    harness.move("docs/c.md", "archive/c.md")
    harness.remove("a.txt")
    changed = sync()
    assert changed.counts["replaced"] == 1, changed.to_dict()
    assert changed.counts["moved"] == 1 and changed.counts["deleted"] == 1, changed.to_dict()
    after = raw_docs(sb, ds.id)
    assert sorted(after) == ["archive/c.md", "docs/b.md", "keep/d.txt", "locked/e.txt", ODD]
    assert after["archive/c.md"]["id"] == docs["docs/c.md"]["id"]  # moved, not re-uploaded
    assert after["docs/b.md"]["meta_fields"]["sha256"] == _sha(
        b"# bravo\nrewritten, and longer than before\n"
    )

    # -- a file vanishing between listing and reading is skipped, not uploaded -----------------
    victim = "docs/vanishing.md"
    harness.put(victim, b"here for the listing only\n")

    class Vanishing(type(src)):  # type: ignore[misc]
        def scan_batches(self, filters=None, *, known=None):
            yield from super().scan_batches(filters, known=known)
            harness.remove(victim)

    vsrc = harness.source(Vanishing)
    inv = build_inventory(vsrc, compute_sha256=True)
    assert [(s.path, s.reason) for s in inv.skipped if s.path == victim] == [(victim, "vanished")]
    assert victim not in inv.by_path and inv.complete
    outputs += [s.detail for s in inv.skipped]

    # -- a listing failing half way: nothing is deleted ----------------------------------------
    harness.remove("keep/d.txt")
    harness.fail_listing("locked")
    if getattr(harness, "listing", "walk") == "flat":
        with pytest.raises(SyncAbortedError) as err:
            sync_source(client, harness.source(), ds.id, SyncOptions())
        assert isinstance(err.value.__cause__, SourceError)
        outputs.append(str(err.value))
        assert "cannot list" in str(err.value) and not err.value.report.converged
    else:
        inv = build_inventory(harness.source())
        assert not inv.complete and inv.unlisted_prefixes == ["locked/"]
        outputs += [s.detail for s in inv.skipped]
        partial = sync()
        assert partial.counts.get("deleted", 0) == 0, partial.to_dict()
        assert not partial.listing_complete
    kept = raw_docs(sb, ds.id)
    assert {"keep/d.txt", "locked/e.txt"} <= set(kept)  # neither deleted on a partial view
    harness.heal()
    whole = sync()
    assert whole.counts["deleted"] == 1 and whole.converged, whole.to_dict()
    assert sorted(raw_docs(sb, ds.id)) == ["archive/c.md", "docs/b.md", "locked/e.txt", ODD]

    # -- credentials appear nowhere ------------------------------------------------------------
    outputs.append(caplog.text)
    secret = harness.secret
    assert secret and len(secret) >= 8
    for text in outputs:
        assert secret not in text


def test_a_wrong_password_fails_clearly_without_echoing_it(harness):
    wrong = "wrong-pw-Q7mZ3x"
    if harness.name == "azure":
        wrong = base64.b64encode(b"not the account key, but one that looks like it").decode()
        conn = harness.azurite.connection_string.replace(harness.secret, wrong)
        src = FsspecSource(
            f"az://{harness.container}/kb",
            storage_options={"connection_string": conn},
            listing=harness.listing,  # type: ignore[arg-type]
        )
        with pytest.raises(SourceError) as err:
            build_inventory(src)
    elif harness.name == "webdav":
        src = FsspecSource(
            f"webdav+{harness.server.url}/",
            storage_options={"auth": (harness.server.user, wrong)},
        )
        with pytest.raises(SourceError) as err:
            list(src.scan())
    else:
        with pytest.raises(SourceError) as err:  # paramiko fails while connecting
            FsspecSource(
                f"sftp://{harness.server.user}@127.0.0.1:{harness.server.port}/",
                storage_options={"password": wrong, "look_for_keys": False, "allow_agent": False},
            )
    text = str(err.value)
    assert wrong not in text and harness.secret not in text
    assert "cannot" in text


def test_a_missing_container_is_an_error_and_an_empty_prefix_is_empty(azurite):
    options = {"connection_string": azurite.connection_string}
    with pytest.raises(SourceError, match="does not exist"):
        build_inventory(FsspecSource("az://no-such-container/kb", storage_options=options))
    azurite.service().create_container("emptyprefix")
    inv = build_inventory(FsspecSource("az://emptyprefix/kb", storage_options=options))
    assert inv.complete and inv.entries == []


def test_credentials_from_fsspec_configuration_reach_the_server_and_stay_hidden(
    webdav_server, monkeypatch
):
    """``FSSPEC_WEBDAV='{"auth": [...]}'`` (fsspec's own configuration): the route for the CLI."""
    from fsspec.config import conf

    monkeypatch.setitem(conf, "webdav", {"auth": [webdav_server.user, webdav_server.password]})
    (Path(webdav_server.root) / "a.txt").write_bytes(b"configured")
    src = FsspecSource(f"webdav+{webdav_server.url}/")
    assert [e.path for e in src.scan()] == ["a.txt"]
    webdav_server.fail_propfind.add("")
    with pytest.raises(SourceError) as err:
        list(FsspecSource(f"webdav+{webdav_server.url}/").scan())
    for text in (str(err.value), repr(src), src.uri, src.uri_for("a.txt")):
        assert webdav_server.password not in text
    assert src._scrubber(f"pw={webdav_server.password}") == "pw=***"
