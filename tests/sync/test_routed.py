"""Routing one source into several datasets, against the sandbox over real HTTP; end states
checked by raw HTTP listings (tests/reliability/raw.py)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sources import Inventory, LocalFolderSource, SkippedEntry, SourceEntry
from ragflow_dagster.sync.engine import SyncOptions
from ragflow_dagster.sync.routed import sync_routed
from ragflow_dagster.sync.routing import UNROUTED, Route, RouteTable, split_inventory
from tests.reliability.raw import dataset_id, raw_documents


class CountingSource(LocalFolderSource):
    """A local folder that counts how often it is listed."""

    listings = 0

    def scan_batches(self, filters=None, *, known=None):  # type: ignore[override]
        type(self).listings += 1
        yield from super().scan_batches(filters, known=known)


@pytest.fixture
def client(ragflow_sandbox):
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as c:
        yield c


@pytest.fixture
def names(request, client):
    """Unique dataset names for this test; deleted afterwards."""
    base = f"rt_{request.node.name}"[:60]
    made = {k: f"{base}_{k}" for k in ("eng", "sales", "general")}
    yield made
    ids = [d.id for n in made.values() if (d := client.find_dataset(n)) is not None]
    if ids:
        client.delete_datasets(ids)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def raw_paths(sb, name: str) -> dict[str, str]:
    """source_path -> sha256 of the managed documents of a dataset, by raw HTTP."""
    docs = raw_documents(sb.base_url, sb.api_key, dataset_id(sb.base_url, sb.api_key, name))
    out = {}
    for d in docs:
        meta = d.get("meta_fields") or {}
        assert meta.get("managed_by") == "ragflow-dagster", d
        assert d["run"] == "DONE", d
        assert meta["source_path"] not in out, "duplicate document"
        out[meta["source_path"]] = meta["sha256"]
    return out


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


TREE = {
    "eng/a.md": "# alpha\nengines and gears\n" * 4,
    "eng/deep/b.md": "# bravo\nbearings and bolts\n" * 4,
    "sales/c.md": "# charlie\ncustomers and contracts\n" * 4,
    "misc/d.md": "# delta\ndinners and dances\n" * 4,
}


def table(names: dict[str, str], *, default: bool = False) -> RouteTable:
    return RouteTable.model_validate(
        {
            "routes": [
                {"glob": "eng/**", "dataset": names["eng"]},
                {"glob": ["sales/**", "*.sales.md"], "dataset": names["sales"]},
            ],
            "default_dataset": names["general"] if default else None,
        }
    )


def test_moves_across_datasets_and_unrouted_files_with_one_listing(
    client, names, tmp_path, ragflow_sandbox
):
    write(tmp_path, TREE)
    source = CountingSource(tmp_path)
    CountingSource.listings = 0
    routes = table(names)

    first = sync_routed(client, source, routes)
    assert CountingSource.listings == 1 and first.source_listings == 1
    assert first.converged, first.to_dict()
    assert list(first.reports) == [names["eng"], names["sales"]]  # route order
    assert first.reports[names["eng"]].counts["uploaded"] == 2
    assert first.reports[names["sales"]].counts["uploaded"] == 1
    assert [(s.path, s.reason) for s in first.unrouted] == [("misc/d.md", UNROUTED)]
    assert client.find_dataset(names["general"]) is None  # no default: nothing created
    assert raw_paths(ragflow_sandbox, names["eng"]) == {
        "eng/a.md": sha(TREE["eng/a.md"]),
        "eng/deep/b.md": sha(TREE["eng/deep/b.md"]),
    }
    assert raw_paths(ragflow_sandbox, names["sales"]) == {"sales/c.md": sha(TREE["sales/c.md"])}

    # a move from eng to sales (and one into sales by the second glob), an edit in sales
    (tmp_path / "sales/b.md").write_text(TREE["eng/deep/b.md"])
    (tmp_path / "eng/deep/b.md").unlink()
    shutil.move(tmp_path / "misc/d.md", tmp_path / "d.sales.md")
    (tmp_path / "sales/c.md").write_text("# charlie\nnew terms\n" * 4)
    CountingSource.listings = 0
    wire: list[tuple[str, str]] = []
    hook = lambda r, *a, **k: wire.append((r.request.method, r.request.url))  # noqa: E731
    client._session.hooks["response"].append(hook)
    try:
        second = sync_routed(client, source, routes)
    finally:
        client._session.hooks["response"].remove(hook)
    assert CountingSource.listings == 1
    assert second.converged, second.to_dict()
    # eng is synced first, yet the moved file is uploaded to sales before eng deletes it
    eng_id, sales_id = (second.runs[names[k]].dataset_id for k in ("eng", "sales"))
    uploads = [i for i, (m, u) in enumerate(wire) if m == "POST" and f"{sales_id}/documents" in u]
    deletes = [i for i, (m, u) in enumerate(wire) if m == "DELETE" and f"{eng_id}/documents" in u]
    assert uploads and deletes and max(uploads) < min(deletes)
    eng, sales = second.reports[names["eng"]].counts, second.reports[names["sales"]].counts
    assert (eng["uploaded"], eng["deleted"], eng["unchanged"]) == (0, 1, 1)
    assert (sales["uploaded"], sales["replaced"], sales["deleted"]) == (2, 1, 0)
    assert second.unrouted == []
    assert raw_paths(ragflow_sandbox, names["eng"]) == {"eng/a.md": sha(TREE["eng/a.md"])}
    assert raw_paths(ragflow_sandbox, names["sales"]) == {
        "sales/b.md": sha(TREE["eng/deep/b.md"]),
        "sales/c.md": sha("# charlie\nnew terms\n" * 4),
        "d.sales.md": sha(TREE["misc/d.md"]),
    }

    # a no-op rerun: one listing of the source, one listing per dataset, nothing else
    CountingSource.listings = 0
    third = sync_routed(client, source, routes)
    assert CountingSource.listings == 1 and third.converged
    assert all(r.counts["uploaded"] == r.counts["deleted"] == 0 for r in third.reports.values())
    # per dataset: find_dataset + one listing page; nothing else
    assert third.api_calls == 2 * 2


def test_default_route_takes_what_no_route_matches(client, names, tmp_path, ragflow_sandbox):
    write(tmp_path, TREE)
    report = sync_routed(client, LocalFolderSource(tmp_path), table(names, default=True))
    assert report.converged and report.unrouted == []
    assert list(report.reports) == [names["eng"], names["sales"], names["general"]]
    assert raw_paths(ragflow_sandbox, names["general"]) == {"misc/d.md": sha(TREE["misc/d.md"])}
    # a file that leaves its route for the default is a delete there and an upload here
    shutil.move(tmp_path / "eng/a.md", tmp_path / "a.md")
    again = sync_routed(client, LocalFolderSource(tmp_path), table(names, default=True))
    assert again.converged
    assert set(raw_paths(ragflow_sandbox, names["eng"])) == {"eng/deep/b.md"}
    assert set(raw_paths(ragflow_sandbox, names["general"])) == {"misc/d.md", "a.md"}


def test_mass_delete_guard_is_per_dataset(client, names, tmp_path, ragflow_sandbox):
    eng = {f"eng/{i}.md": f"engine part {i}\n" * 3 for i in range(4)}
    sales = {f"sales/{i}.md": f"sales note {i}\n" * 3 for i in range(6)}
    write(tmp_path, {**eng, **sales})
    routes = table(names)
    assert sync_routed(client, LocalFolderSource(tmp_path), routes).converged
    # 3 of eng's 4 files go (75 % of eng, 30 % of all documents); sales loses one of 6
    for i in range(3):
        (tmp_path / f"eng/{i}.md").unlink()
    (tmp_path / "sales/0.md").unlink()
    report = sync_routed(client, LocalFolderSource(tmp_path), routes)
    assert report.failed == [names["eng"]]
    eng_report = report.reports[names["eng"]]
    assert eng_report.guard_refused and eng_report.counts["deleted"] == 0
    assert report.reports[names["sales"]].converged
    assert report.reports[names["sales"]].counts["deleted"] == 1
    assert len(raw_paths(ragflow_sandbox, names["eng"])) == 4  # nothing deleted there
    assert len(raw_paths(ragflow_sandbox, names["sales"])) == 5
    lifted = sync_routed(
        client, LocalFolderSource(tmp_path), routes, SyncOptions(allow_mass_delete=True)
    )
    assert lifted.converged
    assert set(raw_paths(ragflow_sandbox, names["eng"])) == {"eng/3.md"}


def test_incomplete_source_listing_deletes_nothing_in_any_dataset(
    client, names, tmp_path, ragflow_sandbox
):
    write(tmp_path, TREE)
    routes = table(names)
    assert sync_routed(client, LocalFolderSource(tmp_path), routes).converged

    class Gappy(LocalFolderSource):
        """Lists only sales/, and says that misc/ could not be listed."""

        def scan_batches(self, filters=None, *, known=None):  # type: ignore[override]
            for entries, skipped in super().scan_batches(filters, known=known):
                kept = [e for e in entries if e.path.startswith("sales/")]
                yield kept, [*skipped, SkippedEntry("misc/", "unreadable", "EACCES", True)]

    report = sync_routed(client, Gappy(tmp_path), routes)
    assert not report.listing_complete and not report.converged
    assert report.reports[names["eng"]].counts["deleted"] == 0
    assert len(raw_paths(ragflow_sandbox, names["eng"])) == 2


def test_dry_run_plans_every_dataset_and_creates_none(client, names, tmp_path):
    write(tmp_path, TREE)
    report = sync_routed(
        client, LocalFolderSource(tmp_path), table(names, default=True), SyncOptions(dry_run=True)
    )
    assert report.converged  # planned fully
    assert {n: r.counts["uploaded"] for n, r in report.reports.items()} == {
        names["eng"]: 2,
        names["sales"]: 1,
        names["general"]: 1,
    }
    assert all(client.find_dataset(n) is None for n in names.values())
    assert "would upload 2" in report.summary()


# ------------------------------------------------------------------------------------------------
# the pure part
# ------------------------------------------------------------------------------------------------


def _inv(paths: list[str], skipped: list[SkippedEntry] | None = None) -> Inventory:
    return Inventory(
        entries=[SourceEntry(p, 1, 0.0, "1-0") for p in paths],
        skipped=skipped or [],
        complete=not any(s.unlisted and s.path.endswith("/") for s in skipped or []),
        source_uri="file:///d",
        scanned=len(paths),
        elapsed_s=0.0,
        unlisted_prefixes=[s.path for s in skipped or [] if s.unlisted],
    )


def test_first_match_wins_and_globs_mean_what_the_filters_globs_mean():
    t = RouteTable(
        routes=(
            Route(glob="eng/**/*.md", dataset="eng_md"),
            Route(glob="eng/**", dataset="eng"),
            Route(glob="*.pdf", dataset="pdfs"),
        )
    )
    assert t.dataset_for("eng/a.md") == "eng_md"  # **/ also matches no folder
    assert t.dataset_for("eng/x/y/a.md") == "eng_md"
    assert t.dataset_for("eng/x/a.pdf") == "eng"  # first match wins
    assert t.dataset_for("sales/q.pdf") == "pdfs"  # * crosses /
    assert t.dataset_for("Eng/a.md") is None  # case-sensitive
    assert t.dataset_names == ("eng_md", "eng", "pdfs")


def test_split_keeps_the_source_completeness_in_every_slice():
    gap = SkippedEntry("private/", "unreadable", "EACCES", unlisted=True)
    bad = SkippedEntry("eng/locked.md", "unreadable", "EACCES", unlisted=True)
    big = SkippedEntry("sales/huge.pdf", "too_large", ">50MB")
    inv = _inv(["eng/a.md", "sales/b.md", "x.md"], [gap, bad, big])
    t = RouteTable(
        routes=(Route(glob="eng/**", dataset="eng"), Route(glob="sales/**", dataset="s"))
    )
    r = split_inventory(inv, t)
    assert [e.path for e in r.slices["eng"].entries] == ["eng/a.md"]
    assert r.slices["eng"].skipped == [gap, bad] and r.slices["s"].skipped == [gap, big]
    for s in r.slices.values():
        assert s.complete is False
        assert s.unlisted_prefixes == ["private/", "eng/locked.md"]
    assert [u.path for u in r.unrouted] == ["x.md"]


def test_route_tables_refuse_what_cannot_work():
    with pytest.raises(ValueError, match="at least one route"):
        RouteTable(routes=())
    with pytest.raises(ValueError, match="non-empty glob"):
        Route(glob=" ", dataset="x")
    with pytest.raises(ValueError, match="different settings"):
        RouteTable.model_validate(
            {
                "routes": [
                    {"glob": "a/**", "dataset": {"name": "x", "chunk_method": "qa"}},
                    {"glob": "b/**", "dataset": {"name": "x", "chunk_method": "book"}},
                ]
            }
        )
    with pytest.raises(ValueError):
        RouteTable.model_validate({"routes": [{"glob": "a", "dataset": "x", "typo": 1}]})


def test_a_file_moved_out_of_every_route_is_deleted_from_its_old_dataset(
    client, names, tmp_path, ragflow_sandbox
):
    write(tmp_path, TREE)
    routes = table(names)
    assert sync_routed(client, LocalFolderSource(tmp_path), routes).converged
    shutil.move(tmp_path / "eng/a.md", tmp_path / "misc/a.md")
    report = sync_routed(client, LocalFolderSource(tmp_path), routes)
    assert report.converged
    assert sorted(s.path for s in report.unrouted) == ["misc/a.md", "misc/d.md"]
    assert report.reports[names["eng"]].counts["deleted"] == 1
    assert set(raw_paths(ragflow_sandbox, names["eng"])) == {"eng/deep/b.md"}


def test_a_dataset_that_cannot_be_created_fails_alone(client, names, tmp_path, ragflow_sandbox):
    write(tmp_path, TREE)
    bad = "b" * 300  # longer than the server allows for a dataset name
    routes = RouteTable.model_validate(
        {
            "routes": [
                {"glob": "eng/**", "dataset": bad},
                {"glob": "sales/**", "dataset": names["sales"]},
            ]
        }
    )
    report = sync_routed(client, LocalFolderSource(tmp_path), routes)
    assert report.failed == [bad] and not report.converged
    assert report.reports[bad].error is not None
    assert report.reports[names["sales"]].converged
    assert set(raw_paths(ragflow_sandbox, names["sales"])) == {"sales/c.md"}
    assert report.to_dict()["failed_datasets"] == [bad]
