"""End states checked from outside: raw HTTP (``requests``), never our own client.

``raw_documents`` pages through a dataset and proves its own listing complete (same ``total``
on every page, every document seen once). ``assert_exact`` compares that listing with a folder:
exactly one managed document per file, with the file's sha256, parsed, and — when asked — with
the file's bytes as the server serves them back; no leftovers; other people's documents only
where the test says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def raw_documents(base_url: str, key: str, dataset_id: str, **params: Any) -> list[dict]:
    """Every document of a dataset, by raw HTTP, from a listing that proves itself complete."""
    for _attempt in range(5):
        docs: dict[str, dict] = {}
        totals: set[int] = set()
        page = 1
        while True:
            r = requests.get(
                f"{base_url}/api/v1/datasets/{dataset_id}/documents",
                params={
                    **params,
                    "page": page,
                    "page_size": 100,
                    "orderby": "create_time",
                    "desc": "false",
                },
                headers=_headers(key),
                timeout=30,
            )
            body = r.json()
            assert r.status_code == 200 and body["code"] == 0, body
            data = body["data"]
            totals.add(int(data["total"]))
            for d in data["docs"]:
                docs[d["id"]] = d
            if len(data["docs"]) < 100:
                break
            page += 1
        if len(totals) == 1 and len(docs) == totals.pop():
            return list(docs.values())
    raise AssertionError("the dataset kept changing while the test listed it")


def dataset_id(base_url: str, key: str, name: str) -> str:
    r = requests.get(
        f"{base_url}/api/v1/datasets", params={"name": name}, headers=_headers(key), timeout=30
    )
    body = r.json()
    assert body["code"] == 0 and body["data"], body
    return body["data"][0]["id"]


def download(base_url: str, key: str, dataset: str, doc_id: str) -> bytes:
    url = f"{base_url}/api/v1/datasets/{dataset}/documents/{doc_id}"
    r = requests.get(url, headers=_headers(key), timeout=30)
    assert r.status_code == 200, r.text[:200]
    return r.content


def read_tree(root: Path) -> dict[str, bytes]:
    """Relative POSIX path -> bytes of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_exact(
    base_url: str,
    key: str,
    dataset: str,
    files: Mapping[str, bytes],
    *,
    others: Iterable[str] = (),
    parsed: bool = True,
    check_bytes: bool = False,
) -> list[dict]:
    """Exactly one managed document per file, right sha256 (and bytes), parsed; no leftovers.

    ``others``: ids of documents the test uploaded by hand; they must still be there, untouched.
    Returns the managed documents.
    """
    docs = raw_documents(base_url, key, dataset)
    expected_others = set(others)
    managed: dict[str, list[dict]] = {}
    for d in docs:
        meta = d.get("meta_fields") or {}
        if meta.get("managed_by") == "ragflow-dagster":
            managed.setdefault(meta["source_path"], []).append(d)
        else:
            assert d["id"] in expected_others, f"unlabelled document {d['name']!r} ({d['run']})"
    missing_others = expected_others - {d["id"] for d in docs}
    assert not missing_others, f"someone's own documents were deleted: {missing_others}"
    dupes = {p: len(v) for p, v in managed.items() if len(v) > 1}
    assert not dupes, f"duplicates: {dupes}"
    assert sorted(managed) == sorted(files), (
        f"lost {sorted(set(files) - set(managed))[:5]}, "
        f"orphaned {sorted(set(managed) - set(files))[:5]}"
    )
    out = []
    for path, [doc] in sorted(managed.items()):
        meta = doc["meta_fields"]
        assert meta["sha256"] == hashlib.sha256(files[path]).hexdigest(), f"{path}: sha256"
        assert int(meta["size"]) == len(files[path]), f"{path}: size"
        if parsed:
            assert doc["run"] == "DONE", f"{path}: {doc['run']}"
        if check_bytes:
            assert download(base_url, key, dataset, doc["id"]) == files[path], f"{path}: bytes"
        out.append(doc)
    return out
