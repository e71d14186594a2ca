"""Smaller dataset routes RAGFlow clients touch: search, tags, graph, ingestion, metadata config."""

from __future__ import annotations

import base64
import json

from .helpers import Api

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _parsed(api: Api, kb: str) -> list[str]:
    docs = api.upload(
        kb, [("a.txt", b"solar panels make power\n"), ("b.txt", b"wind turbines make power\n")]
    )
    ids = [d["id"] for d in docs]
    api.parse(kb, ids)
    api.wait(kb, ids)
    return ids


def test_search_routes(api: Api, kb: str) -> None:
    ids = _parsed(api, kb)
    one = api.post(f"/datasets/{kb}/search", json={"question": "solar power"})
    assert (
        one["code"] == 0
        and one["data"]["chunks"][0]["doc_id"] == ids[0]
        and one["data"]["labels"] == []
    )
    missing = api.post(f"/datasets/{kb}/search", json={})
    assert missing["code"] == 101 and "Field: <question>" in missing["message"]
    api.patch(f"/datasets/{kb}/documents/{ids[1]}", json={"meta_fields": {"kind": "wind"}})
    manual = {
        "method": "manual",
        "logic": "and",
        "manual": [{"key": "kind", "op": "=", "value": "wind"}],
    }
    many = api.post(
        "/datasets/search",
        json={"dataset_ids": [kb], "question": "power", "meta_data_filter": manual},
    )
    assert [c["doc_id"] for c in many["data"]["chunks"]] == [ids[1]]


def test_retrieval_metadata_condition_and_rerank(api: Api, kb: str) -> None:
    ids = _parsed(api, kb)
    api.patch(f"/datasets/{kb}/documents/{ids[0]}", json={"meta_fields": {"kind": "solar"}})
    cond = {
        "logic": "and",
        "conditions": [{"name": "kind", "comparison_operator": "is", "value": "solar"}],
    }
    res = api.post(
        "/retrieval", json={"dataset_ids": [kb], "question": "power", "metadata_condition": cond}
    )
    assert [c["document_id"] for c in res["data"]["chunks"]] == [ids[0]]
    none = {
        "logic": "and",
        "conditions": [{"name": "kind", "comparison_operator": "is", "value": "coal"}],
    }
    res = api.post(
        "/retrieval", json={"dataset_ids": [kb], "question": "power", "metadata_condition": none}
    )
    assert res["data"] == {"total": 0, "chunks": [], "doc_aggs": {}}
    bad = api.post(
        "/retrieval", json={"dataset_ids": [kb], "question": "power", "rerank_id": "unknown"}
    )
    assert bad["code"] == 100 and "not found for model unknown" in bad["message"]
    good = api.post(
        "/retrieval",
        json={
            "dataset_ids": [kb],
            "question": "power",
            "rerank_id": "BAAI/bge-reranker-v2-m3@SILICONFLOW",
        },
    )
    assert good["code"] == 0 and good["data"]["total"] == 2


def test_tags_graph_ingestion_and_config(api: Api, kb: str) -> None:
    ids = _parsed(api, kb)
    base = f"/datasets/{kb}/documents/{ids[0]}/chunks"
    api.post(base, json={"content": "tagged chunk", "tag_kwd": ["energy", "sun"]})
    assert api.get(f"/datasets/{kb}/tags")["data"] == [["energy", 1], ["sun", 1]]
    assert api.put(f"/datasets/{kb}/tags", json={"from_tag": "sun", "to_tag": "solar"})["code"] == 0
    assert api.get("/datasets/tags/aggregation", params={"dataset_ids": kb})["data"] == [
        ["energy", 1],
        ["solar", 1],
    ]
    assert api.delete(f"/datasets/{kb}/tags", json={"tags": ["energy"]})["code"] == 0
    assert api.get(f"/datasets/{kb}/tags")["data"] == [["solar", 1]]
    assert api.get(f"/datasets/{kb}/graph")["data"] == {"graph": {}, "mind_map": {}}
    summary = api.get(f"/datasets/{kb}/ingestions/summary")["data"]
    assert summary["doc_num"] == 2 and summary["status"]["done_count"] == 2
    assert api.get(f"/datasets/{kb}/ingestions")["data"] == {"total": 0, "logs": []}
    cfg = {"metadata": [{"key": "author", "type": "string"}], "built_in_metadata": []}
    assert api.put(f"/datasets/{kb}/metadata/config", json=cfg)["code"] == 0
    got = api.get(f"/datasets/{kb}/metadata/config")["data"]
    assert got["metadata"][0]["key"] == "author"
    assert api.delete(f"/datasets/{kb}/raptor")["code"] == 0
    assert api.delete(f"/datasets/{kb}/bogus") == {
        "code": 101,
        "message": "Invalid index type 'bogus'",
    }
    api.patch(f"/datasets/{kb}/documents/{ids[1]}", json={"meta_fields": {"k": ["v1", "v2"]}})
    flat = api.get("/datasets/metadata/flattened", params={"dataset_ids": kb})["data"]
    assert flat == {"k": {"v1": [ids[1]], "v2": [ids[1]]}}


def test_chunk_image_is_served(api: Api, kb: str) -> None:
    doc = api.upload(kb, [("a.txt", b"x")])[0]
    res = api.post(
        f"/datasets/{kb}/documents/{doc['id']}/chunks",
        json={"content": "picture", "image_base64": base64.b64encode(PNG).decode()},
    )
    chunk = res["data"]["chunk"]
    assert chunk["doc_type_kwd"] == "image"
    image = api.raw("GET", f"/documents/images/{chunk['image_id']}")
    assert image.content == PNG and image.headers["content-type"] == "image/png"
    assert api.get("/documents/images/nothing") == {"code": 102, "message": "Image not found."}


def test_repeated_slashes_are_merged_like_werkzeug(api: Api) -> None:
    res = api.get("//datasets//documents")
    assert res["code"] == 102 and "lacks permission for dataset 'documents'" in res["message"]
    res = api.delete(
        "/datasets//documents",
        data=json.dumps({"ids": []}),
        headers={"Content-Type": "application/json"},
    )
    assert res == {
        "code": 100,
        "message": "<MethodNotAllowed '405: Method Not Allowed'>",
        "data": None,
    }


def test_index_tasks_finish_at_once(api: Api, kb: str) -> None:
    assert api.post(f"/datasets/{kb}/index", params={"type": "raptor"}) == {
        "code": 102,
        "message": f"No documents in Dataset {kb}",
    }
    api.upload(kb, [("a.txt", b"x")])
    assert api.get(f"/datasets/{kb}/index", params={"type": "graph"}) == {"code": 0, "data": {}}
    run = api.post(f"/datasets/{kb}/index", params={"type": "graph"})
    task = api.get(f"/datasets/{kb}/index", params={"type": "graph"})["data"]
    assert task["id"] == run["data"]["task_id"] and task["progress"] == 1.0
    legacy = api.post(f"/datasets/{kb}/run_raptor")
    assert legacy["message"] == "success" and api.get(f"/datasets/{kb}/trace_raptor")["data"]["id"]
    assert api.delete(f"/datasets/{kb}/index", params={"type": "graph"}) == {"code": 0, "data": {}}
    assert api.get(f"/datasets/{kb}/index", params={"type": "graph"})["data"] == {}
    bad = api.post(f"/datasets/{kb}/index", params={"type": "nope"})
    assert bad["code"] == 102 and "Invalid index type 'nope'" in bad["message"]
