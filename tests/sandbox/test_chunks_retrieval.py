"""Chunk CRUD and BM25 retrieval."""

from __future__ import annotations

import uuid

import pytest

from .helpers import Api


@pytest.fixture
def parsed(api: Api, kb: str) -> tuple[str, list[str]]:
    docs = api.upload(
        kb,
        [
            ("fruit.txt", b"Apples and pears grow in orchards. Apples are red or green.\n"),
            ("cars.txt", b"Cars have engines and wheels. Electric cars use batteries.\n"),
            ("mixed.txt", b"An orchard truck carries apples to the market.\n"),
        ],
    )
    ids = [d["id"] for d in docs]
    api.parse(kb, ids)
    api.wait(kb, ids)
    return kb, ids


def test_chunk_crud(api: Api, parsed: tuple[str, list[str]]) -> None:
    kb, ids = parsed
    base = f"/datasets/{kb}/documents/{ids[0]}/chunks"
    added = api.post(
        base,
        json={
            "content": "custom chunk about kiwis",
            "important_keywords": ["kiwi"],
            "questions": ["what about kiwis?"],
        },
    )
    assert added["code"] == 0
    chunk = added["data"]["chunk"]
    assert chunk["content"] == "custom chunk about kiwis" and chunk["document_id"] == ids[0]
    assert chunk["important_keywords"] == ["kiwi"] and chunk["questions"] == ["what about kiwis?"]
    listing = api.get(base)["data"]
    assert listing["total"] == 2 and listing["chunks"][-1]["id"] == chunk["id"]
    assert api.doc(kb, ids[0])["chunk_count"] == 2
    one = api.get(base, params={"id": chunk["id"]})["data"]
    assert one["total"] == 1 and one["chunks"][0]["content"] == "custom chunk about kiwis"
    assert (
        api.get(f"{base}/{chunk['id']}")["data"]["content_with_weight"]
        == "custom chunk about kiwis"
    )
    assert api.patch(
        f"{base}/{chunk['id']}", json={"content": "kiwis and mangos", "available": False}
    ) == {"code": 0}
    assert api.put(f"{base}/{chunk['id']}", json={"important_keywords": ["mango"]}) == {"code": 0}
    updated = api.get(base, params={"id": chunk["id"]})["data"]["chunks"][0]
    assert updated["content"] == "kiwis and mangos" and updated["available"] is False
    assert updated["important_keywords"] == ["mango"]
    assert api.get(base, params={"available": "false"})["data"]["total"] == 1
    keyword = api.get(base, params={"keywords": "mangos"})["data"]
    assert keyword["total"] == 1 and "<em>mangos</em>" in keyword["chunks"][0]["content"]
    assert api.delete(base, json={"chunk_ids": [chunk["id"]]}) == {"code": 0}
    assert api.get(base)["data"]["total"] == 1
    assert api.delete(base, json={"chunk_ids": ["nope"]}) == {
        "code": 102,
        "message": "rm_chunk deleted chunks 0, expect 1",
    }
    assert api.delete(base, json={"delete_all": True}) == {"code": 0}
    assert api.get(base)["data"]["total"] == 0
    assert api.doc(kb, ids[0])["chunk_count"] == 0


def test_chunk_errors(api: Api, parsed: tuple[str, list[str]]) -> None:
    kb, ids = parsed
    base = f"/datasets/{kb}/documents/{ids[0]}/chunks"
    assert api.post(base, json={"content": "  "}) == {
        "code": 102,
        "message": "`content` is required",
    }
    assert api.post(base, json={"content": "x", "important_keywords": "k"}) == {
        "code": 102,
        "message": "`important_keywords` is required to be a list",
    }
    missing = uuid.uuid4().hex
    assert api.get(f"/datasets/{kb}/documents/{missing}/chunks") == {
        "code": 102,
        "message": f"you don't own the document {missing}",
    }
    assert api.patch(f"{base}/nope", json={"content": "x"}) == {
        "code": 102,
        "message": "Can't find this chunk nope",
    }
    res = api.get(base, params={"page_size": 101})
    assert res["code"] == 100 and "page_size must be less than or equal to 100" in res["message"]


def test_retrieval_ranks_by_relevance(api: Api, parsed: tuple[str, list[str]]) -> None:
    kb, _ids = parsed
    res = api.post("/retrieval", json={"dataset_ids": [kb], "question": "apples orchards"})
    assert res["code"] == 0
    data = res["data"]
    names = [c["document_keyword"] for c in data["chunks"]]
    assert names[0] == "fruit.txt" and "cars.txt" not in names
    top = data["chunks"][0]
    for key in (
        "id",
        "content",
        "document_id",
        "dataset_id",
        "similarity",
        "term_similarity",
        "vector_similarity",
        "important_keywords",
        "positions",
        "content_ltks",
    ):
        assert key in top, key
    assert 0 < top["similarity"] <= 1
    assert data["chunks"][0]["similarity"] >= data["chunks"][-1]["similarity"]
    assert {a["doc_name"] for a in data["doc_aggs"]} == set(names)
    assert data["total"] == len(names)


def test_retrieval_filters_and_paging(api: Api, parsed: tuple[str, list[str]]) -> None:
    kb, ids = parsed
    only = api.post(
        "/retrieval", json={"dataset_ids": [kb], "question": "apples", "document_ids": [ids[2]]}
    )
    assert [c["document_id"] for c in only["data"]["chunks"]] == [ids[2]]
    strict = api.post(
        "/retrieval", json={"dataset_ids": [kb], "question": "apples", "similarity_threshold": 0.99}
    )
    assert strict["data"]["total"] == 0
    top1 = api.post("/retrieval", json={"dataset_ids": [kb], "question": "apples", "top_k": 1})
    assert top1["data"]["total"] == 2  # as on RAGFlow+Elasticsearch: top_k caps KNN candidates only
    page2 = api.post(
        "/retrieval", json={"dataset_ids": [kb], "question": "apples", "page": 2, "page_size": 1}
    )
    assert len(page2["data"]["chunks"]) == 1 and page2["data"]["total"] == 2
    empty = api.post("/retrieval", json={"dataset_ids": [kb], "question": " "})
    assert empty == {"code": 0, "data": {"total": 0, "chunks": [], "doc_aggs": {}}}
    assert api.post("/retrieval", json={"question": "x"}) == {
        "code": 102,
        "message": "`dataset_ids` is required.",
    }
    assert api.post("/retrieval", json={"dataset_ids": [kb], "question": "x", "top_k": 0}) == {
        "code": 102,
        "message": "`top_k` must be greater than 0",
    }
    hl = api.post("/retrieval", json={"dataset_ids": [kb], "question": "apples", "highlight": True})
    assert "<em>" in hl["data"]["chunks"][0]["highlight"]


def test_disabled_document_is_not_retrieved(api: Api, parsed: tuple[str, list[str]]) -> None:
    kb, ids = parsed
    api.patch(f"/datasets/{kb}/documents/{ids[1]}", json={"enabled": 0})
    res = api.post("/retrieval", json={"dataset_ids": [kb], "question": "electric cars"})
    assert res["data"]["total"] == 0
