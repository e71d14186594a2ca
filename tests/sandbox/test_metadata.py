"""meta_fields: filtering (metadata_condition / metadata), summary and batch updates."""

from __future__ import annotations

import json

import pytest

from .helpers import Api


@pytest.fixture
def tagged(api: Api, kb: str) -> tuple[str, dict[str, str]]:
    docs = api.upload(kb, [("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c"), ("d.txt", b"d")])
    ids = {d["name"]: d["id"] for d in docs}
    metas = {
        "a.txt": {
            "managed_by": "ragflow-dagster",
            "source_path": "/data/a.txt",
            "year": 2021,
            "tags": ["x", "y"],
        },
        "b.txt": {"managed_by": "ragflow-dagster", "source_path": "/data/sub/b.txt", "year": 2024},
        "c.txt": {
            "managed_by": "someone-else",
            "source_path": "/other/c.txt",
            "date": "2024-05-01",
        },
    }
    for name, meta in metas.items():
        assert (
            api.patch(f"/datasets/{kb}/documents/{ids[name]}", json={"meta_fields": meta})["code"]
            == 0
        )
    return kb, ids


def _names(api: Api, kb: str, ids: dict[str, str], **params: str) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    return {by_id[d["id"]] for d in api.docs(kb, page_size=100, **params)["docs"]}


def _cond(*conditions: tuple[str, str, object], logic: str = "and") -> str:
    return json.dumps(
        {
            "logic": logic,
            "conditions": [
                {"name": n, "comparison_operator": o, "value": v} for n, o, v in conditions
            ],
        }
    )


@pytest.mark.parametrize(
    ("conditions", "logic", "expected"),
    [
        ([("managed_by", "is", "ragflow-dagster")], "and", {"a.txt", "b.txt"}),
        ([("managed_by", "=", "RAGFLOW-DAGSTER")], "and", {"a.txt", "b.txt"}),
        ([("source_path", "is", "/data/a.txt")], "and", {"a.txt"}),
        ([("managed_by", "not is", "ragflow-dagster")], "and", {"c.txt"}),
        ([("source_path", "start with", "/data/")], "and", {"a.txt", "b.txt"}),
        ([("source_path", "end with", "c.txt")], "and", {"c.txt"}),
        ([("source_path", "contains", "sub")], "and", {"b.txt"}),
        ([("source_path", "not contains", "data")], "and", {"c.txt"}),
        ([("year", ">", "2022")], "and", {"b.txt"}),
        ([("year", "≤", 2021)], "and", {"a.txt"}),
        ([("tags", "is", "y")], "and", {"a.txt"}),
        ([("date", "<", "2025-01-01")], "and", {"c.txt"}),
        ([("managed_by", "in", ["someone-else", "nobody"])], "and", {"c.txt"}),
        ([("managed_by", "is", "ragflow-dagster"), ("year", "=", "2024")], "and", {"b.txt"}),
        ([("year", "=", "2021"), ("managed_by", "is", "someone-else")], "or", {"a.txt", "c.txt"}),
        ([("missing_key", "is", "x")], "and", set()),
    ],
)
def test_metadata_condition_operators(api: Api, tagged, conditions, logic, expected) -> None:
    kb, ids = tagged
    assert _names(api, kb, ids, metadata_condition=_cond(*conditions, logic=logic)) == expected


def test_simple_metadata_and_empty_metadata(api: Api, tagged) -> None:
    kb, ids = tagged
    assert _names(api, kb, ids, metadata=json.dumps({"managed_by": ["someone-else"]})) == {"c.txt"}
    assert _names(api, kb, ids, return_empty_metadata="true") == {"d.txt"}
    listed = {d["name"]: d["meta_fields"] for d in api.docs(kb)["docs"]}
    assert listed["a.txt"]["tags"] == ["x", "y"] and listed["d.txt"] == {}
    bad = api.get(f"/datasets/{kb}/documents", params={"metadata_condition": "{"})
    assert bad == {"code": 102, "message": "metadata_condition must be valid JSON: {."}


def test_metadata_filter_sees_updates(api: Api, tagged) -> None:
    kb, ids = tagged
    cond = _cond(("managed_by", "is", "ragflow-dagster"))
    assert _names(api, kb, ids, metadata_condition=cond) == {"a.txt", "b.txt"}
    api.patch(
        f"/datasets/{kb}/documents/{ids['d.txt']}",
        json={"meta_fields": {"managed_by": "ragflow-dagster"}},
    )
    assert _names(api, kb, ids, metadata_condition=cond) == {"a.txt", "b.txt", "d.txt"}
    api.delete(f"/datasets/{kb}/documents", json={"ids": [ids["a.txt"]]})
    assert _names(api, kb, ids, metadata_condition=cond) == {"b.txt", "d.txt"}


def test_list_values_are_split_like_ragflow(api: Api, kb: str) -> None:
    doc = api.upload(kb, [("x.txt", b"x")])[0]
    api.patch(
        f"/datasets/{kb}/documents/{doc['id']}",
        json={"meta_fields": {"who": ["a, b", "c|a"], "s": "p, q"}},
    )
    assert api.doc(kb, doc["id"])["meta_fields"] == {"who": ["a", "b", "c"], "s": "p, q"}


def test_summary(api: Api, tagged) -> None:
    kb, ids = tagged
    res = api.get(f"/datasets/{kb}/metadata/summary")
    summary = res["data"]["summary"]
    assert summary["managed_by"] == {
        "type": "string",
        "values": [["ragflow-dagster", 2], ["someone-else", 1]],
    }
    assert summary["year"]["type"] == "number"
    assert summary["tags"]["type"] == "list"
    only_c = api.get(f"/datasets/{kb}/metadata/summary", params={"doc_ids": ids["c.txt"]})["data"][
        "summary"
    ]
    assert set(only_c) == {"managed_by", "source_path", "date"}


@pytest.mark.parametrize("route", ["metadata/update", "documents/metadatas"])
def test_batch_update(api: Api, tagged, route: str) -> None:
    kb, ids = tagged
    method = "POST" if route == "metadata/update" else "PATCH"
    path = f"/datasets/{kb}/{route}"
    body = {
        "selector": {"document_ids": [ids["a.txt"], ids["d.txt"]]},
        "updates": [{"key": "owner", "value": "team-a"}, {"key": "tags", "value": "z"}],
        "deletes": [{"key": "year"}],
    }
    res = api.call(method, path, json=body)
    assert res == {"code": 0, "data": {"updated": 2, "matched_docs": 2}}
    metas = {d["name"]: d["meta_fields"] for d in api.docs(kb)["docs"]}
    assert metas["a.txt"]["owner"] == "team-a" and metas["a.txt"]["tags"] == ["x", "y", "z"]
    assert "year" not in metas["a.txt"]
    assert metas["d.txt"] == {"owner": "team-a", "tags": "z"}
    bad = api.call(method, path, json={"updates": [{"key": "k"}]})
    assert bad == {"code": 102, "message": "Each update requires key and value."}
    wrong = api.call(method, path, json={"selector": {"document_ids": ["nope"]}, "updates": []})
    assert wrong["code"] == 102 and "do not belong to dataset" in wrong["message"]
