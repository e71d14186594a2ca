"""Dataset routes: create, list, get, update, delete."""

from __future__ import annotations

import uuid

import pytest

from .helpers import Api


def _name() -> str:
    return f"ds-{uuid.uuid4().hex[:10]}"


def test_create_returns_ragflow_fields_and_defaults(api: Api) -> None:
    name = _name()
    res = api.post("/datasets", json={"name": name})
    assert res["code"] == 0 and "message" not in res
    data = res["data"]
    assert data["name"] == name
    assert data["chunk_method"] == "naive"
    assert data["permission"] == "me"
    assert data["embedding_model"] == "BAAI/bge-small-en-v1.5@Builtin"
    assert data["document_count"] == 0 and data["chunk_count"] == 0
    assert data["parser_config"]["chunk_token_num"] == 512
    assert data["parser_config"]["raptor"]["use_raptor"] is True
    assert isinstance(data["create_time"], int) and data["create_date"][10] == "T"
    assert len(data["id"]) == 32


def test_duplicate_names_are_renamed_case_insensitively(api: Api) -> None:
    name = _name()
    assert api.post("/datasets", json={"name": name.upper()})["data"]["name"] == name.upper()
    assert api.post("/datasets", json={"name": name})["data"]["name"] == f"{name}(1)"
    assert api.post("/datasets", json={"name": name})["data"]["name"] == f"{name}(2)"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"name": ""}, "String should have at least 1 character"),
        ({"name": " "}, "String should have at least 1 character"),
        ({"name": "a" * 129}, "String should have at most 128 characters"),
        ({"name": 0}, "Input should be a valid string"),
        ({}, "Field: <name> - Message: <Field required>"),
        ({"name": "x", "permission": "ME"}, "Input should be 'me' or 'team'"),
        ({"name": "x", "chunk_method": "bogus"}, "Input should be 'naive', 'book'"),
        (
            {"name": "x", "parser_config": {"chunk_token_num": 0}},
            "Input should be greater than or equal to 1",
        ),
        (
            {"name": "x", "parser_config": {"chunk_token_num": 3.5}},
            "Input should be a valid integer",
        ),
        (
            {"name": "x", "parser_config": {"raptor": {"max_cluster": 2000}}},
            "less than or equal to 1024",
        ),
        ({"name": "x", "embedding_model": "nomodel"}, "must follow <model_name>@<provider> format"),
        ({"name": "x", "avatar": "abc"}, "missing MIME prefix"),
        (
            {"name": "x", "unknown": 1},
            "Field: <unknown> - Message: <Extra inputs are not permitted>",
        ),
    ],
)
def test_create_validation_messages(api: Api, payload: dict, fragment: str) -> None:
    res = api.post("/datasets", json=payload)
    assert res["code"] == 101
    assert fragment in res["message"]


def test_unknown_embedding_models(api: Api) -> None:
    res = api.post("/datasets", json={"name": _name(), "embedding_model": "unknown@ZHIPU-AI"})
    assert res == {"code": 102, "message": "Model unknown@ZHIPU-AI not found for model embedding"}
    res = api.post(
        "/datasets", json={"name": _name(), "embedding_model": "text-embedding-3-small@OpenAI"}
    )
    assert res == {
        "code": 102,
        "message": "Provider OpenAI not found for model text-embedding-3-small@OpenAI.",
    }


def test_parser_config_is_merged_with_model_defaults(api: Api) -> None:
    res = api.post("/datasets", json={"name": _name(), "parser_config": {"chunk_token_num": 1024}})
    pc = res["data"]["parser_config"]
    assert pc["chunk_token_num"] == 1024
    assert pc["raptor"]["use_raptor"] is False  # the model's default, not naive's
    assert pc["topn_tags"] == 1


def test_list_paging_ordering_and_filters(api: Api) -> None:
    prefix = _name()
    ids = [api.dataset(f"{prefix}-{i}") for i in range(5)]
    listed = api.get("/datasets", params={"page_size": 100})
    assert listed["total_datasets"] >= 5
    mine = [d["id"] for d in listed["data"] if d["id"] in ids]
    assert mine == ids[::-1]  # newest first
    asc = api.get("/datasets", params={"page_size": 100, "desc": "false"})
    assert [d["id"] for d in asc["data"] if d["id"] in ids] == ids
    by_name = api.get("/datasets", params={"name": f"{prefix}-3"})
    assert [d["id"] for d in by_name["data"]] == [ids[3]]
    assert by_name["data"][0]["nickname"]
    by_ids = api.get("/datasets", params={"ids": ",".join(ids[:2])})
    assert {d["id"] for d in by_ids["data"]} == set(ids[:2])
    page = api.get("/datasets", params={"ids": ids, "page": 2, "page_size": 2})
    assert len(page["data"]) == 2 and page["total_datasets"] == 5


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        ({"page_size": 101}, 101, "Value error, page_size must be less than or equal to 100"),
        ({"page": 0}, 101, "Input should be greater than or equal to 1"),
        ({"page": "a"}, 101, "unable to parse string as an integer"),
        ({"orderby": "name"}, 101, "Input should be 'create_time' or 'update_time'"),
        ({"desc": "maybe"}, 101, "Input should be a valid boolean, unable to interpret input"),
        ({"id": "not-a-uuid"}, 101, "Invalid UUID format"),
        ({"id": uuid.uuid4().hex}, 102, "lacks permission for dataset"),
        ({"name": "no such dataset"}, 102, "lacks permission for dataset"),
        ({"bogus": 1}, 101, "Extra inputs are not permitted"),
    ],
)
def test_list_validation(api: Api, params: dict, code: int, fragment: str) -> None:
    res = api.get("/datasets", params=params)
    assert res["code"] == code
    assert fragment in res["message"]


def test_get_dataset(api: Api, kb: str) -> None:
    res = api.get(f"/datasets/{kb}")
    assert res["code"] == 0
    assert res["data"]["id"] == kb and res["data"]["size"] == 0 and res["data"]["connectors"] == []
    missing = api.get(f"/datasets/{uuid.uuid4().hex}")
    assert missing["code"] == 102 and "lacks permission for dataset" in missing["message"]


def test_update_dataset(api: Api, kb: str) -> None:
    name = _name()
    res = api.put(f"/datasets/{kb}", json={"name": name, "description": "d", "pagerank": 7})
    assert res["code"] == 0
    got = api.get(f"/datasets/{kb}")["data"]
    assert (got["name"], got["description"], got["pagerank"]) == (name, "d", 7)
    assert api.put(f"/datasets/{kb}", json={}) == {
        "code": 102,
        "message": "no properties were modified",
    }
    other = api.dataset()
    clash = api.put(f"/datasets/{other}", json={"name": name.upper()})
    assert clash == {"code": 102, "message": f"Dataset name '{name.upper()}' already exists"}
    bad_id = api.put("/datasets/not_uuid", json={"name": "x"})
    assert bad_id["code"] == 101 and "Invalid UUID format" in bad_id["message"]
    extra = api.put(f"/datasets/{kb}", json={"chunk_count": 1})
    assert extra["code"] == 101 and "Extra inputs are not permitted" in extra["message"]


def test_update_chunk_method_resets_parser_config(api: Api, kb: str) -> None:
    assert api.put(f"/datasets/{kb}", json={"chunk_method": "qa"})["code"] == 0
    got = api.get(f"/datasets/{kb}")["data"]
    assert got["chunk_method"] == "qa"
    assert got["parser_config"] == {
        "raptor": {"use_raptor": False},
        "graphrag": {"use_graphrag": False},
        "image_context_size": 0,
        "table_context_size": 0,
    }
    assert api.put(f"/datasets/{kb}", json={"parser_config": {"chunk_token_num": 64}})["code"] == 0
    assert api.get(f"/datasets/{kb}")["data"]["parser_config"]["chunk_token_num"] == 64


def test_delete_datasets_rules(api: Api) -> None:
    a, b = api.dataset(), api.dataset()
    assert api.delete("/datasets", json={}) == {"code": 0, "data": {"success_count": 0}}
    assert api.delete("/datasets", json={"ids": None}) == {"code": 0, "data": {"success_count": 0}}
    unknown = uuid.uuid4().hex
    res = api.delete("/datasets", json={"ids": [a, unknown]})
    assert (
        res["code"] == 102
        and unknown in res["message"]
        and "lacks permission for datasets" in res["message"]
    )
    assert api.get(f"/datasets/{a}")["code"] == 0  # nothing deleted
    bad = api.delete("/datasets", json={"ids": ["xyz"]})
    assert bad["code"] == 101 and "Invalid UUID format" in bad["message"]
    dup = api.delete("/datasets", json={"ids": [a, a]})
    assert dup["code"] == 101 and "Duplicate ids" in dup["message"]
    assert api.delete("/datasets", json={"ids": [a, b]}) == {
        "code": 0,
        "data": {"success_count": 2},
    }
    assert api.get(f"/datasets/{a}")["code"] == 102


def test_delete_all(ragflow_sandbox_factory) -> None:
    server = ragflow_sandbox_factory()
    local = Api(server)
    for _ in range(3):
        local.dataset()
    assert local.delete("/datasets", json={"delete_all": True}) == {
        "code": 0,
        "data": {"success_count": 3},
    }
    assert local.get("/datasets")["data"] == []
