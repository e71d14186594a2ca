"""Document routes: upload, list (every filter), download, update, delete."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .helpers import Api


def test_upload_several_files_and_rename_duplicates(api: Api, kb: str) -> None:
    docs = api.upload(
        kb, [("notes.txt", b"a"), ("notes.txt", b"b"), ("NOTES.txt", b"c"), ("x.md", b"")]
    )
    assert [d["name"] for d in docs] == ["notes.txt", "notes(1).txt", "NOTES(2).txt", "x.md"]
    first = docs[0]
    assert first["run"] == "UNSTART" and first["dataset_id"] == kb and first["type"] == "doc"
    assert first["suffix"] == "txt" and first["source_type"] == "local" and first["size"] == 1
    assert "chunk_count" not in first and len(first["content_hash"]) == 32
    assert docs[3]["size"] == 0  # an empty file is accepted
    again = api.upload(kb, [("notes(1).txt", b"d")])
    assert again[0]["name"] == "notes(3).txt"  # "NOTES(2).txt" is taken (case-insensitive)
    assert api.get(f"/datasets/{kb}")["data"]["document_count"] == 5


def test_chunk_method_follows_file_type(api: Api, kb: str) -> None:
    docs = api.upload(
        kb, [("a.png", b"\x89PNG"), ("b.pptx", b"x"), ("c.eml", b"x"), ("d.mp3", b"x")]
    )
    assert [d["chunk_method"] for d in docs] == ["picture", "presentation", "email", "audio"]
    assert [d["type"] for d in docs] == ["visual", "doc", "doc", "aural"]


def test_upload_errors(api: Api, kb: str) -> None:
    unsupported = api.post(f"/datasets/{kb}/documents", files=[("file", ("tool.exe", b"MZ"))])
    assert unsupported == {
        "code": 500,
        "message": "tool.exe: This type of file has not been supported yet!",
    }
    partial = api.post(
        f"/datasets/{kb}/documents", files=[("file", ("ok.txt", b"x")), ("file", ("no.exe", b"y"))]
    )
    assert partial["code"] == 500 and partial["message"].startswith("no.exe:")
    assert [d["name"] for d in partial["data"]] == ["ok.txt"]
    no_part = api.post(f"/datasets/{kb}/documents", files=[("other", ("a.txt", b"x"))])
    assert no_part == {"code": 101, "message": "No file part!"}
    long_name = api.post(f"/datasets/{kb}/documents", files=[("file", ("é" * 128 + ".txt", b"x"))])
    assert long_name == {"code": 101, "message": "File name must be 255 bytes or less."}
    missing = uuid.uuid4().hex
    res = api.post(f"/datasets/{missing}/documents", files=[("file", ("a.txt", b"x"))])
    assert res == {"code": 102, "message": f"Can't find the dataset with ID {missing}!"}


def test_list_fields_and_paging(api: Api, kb: str) -> None:
    names = [f"f{i:02d}.txt" for i in range(25)]
    for name in names:
        api.upload(kb, [(name, b"x")])
    page1 = api.docs(kb, page=1, page_size=10)
    page3 = api.docs(kb, page=3, page_size=10)
    assert page1["total"] == 25 and len(page1["docs"]) == 10 and len(page3["docs"]) == 5
    assert [d["name"] for d in page1["docs"]] == names[::-1][:10]
    asc = api.docs(kb, page_size=100, desc="false")
    assert [d["name"] for d in asc["docs"]] == names
    by_name = api.docs(kb, orderby="name", desc="false", page_size=3)
    assert [d["name"] for d in by_name["docs"]] == names[:3]
    doc = page1["docs"][0]
    for key in (
        "id",
        "dataset_id",
        "chunk_method",
        "parser_config",
        "run",
        "status",
        "progress",
        "progress_msg",
        "chunk_count",
        "token_count",
        "meta_fields",
        "process_begin_at",
        "process_duration",
        "nickname",
    ):
        assert key in doc, key
    assert doc["run"] == "UNSTART" and doc["status"] == "1" and doc["meta_fields"] == {}
    default = api.docs(kb)
    assert len(default["docs"]) == 25  # default page size 30


def test_list_page_size_limits(api: Api, kb: str) -> None:
    res = api.get(f"/datasets/{kb}/documents", params={"page_size": 101})
    assert res == {
        "code": 100,
        "message": "ValueError('page_size must be less than or equal to 100')",
        "data": None,
    }
    assert api.get(f"/datasets/{kb}/documents", params={"page_size": 0})["code"] == 0
    res = api.get(f"/datasets/{kb}/documents", params={"orderby": "size"})
    assert res == {"code": 101, "message": "invalid orderby field: size"}
    missing = uuid.uuid4().hex
    res = api.get(f"/datasets/{missing}/documents")
    assert res == {"code": 102, "message": f"You don't own the dataset {missing}. "}


def test_list_filters(api: Api, kb: str) -> None:
    docs = api.upload(
        kb, [("Report-2024.pdf", b"%PDF-1.4 x"), ("notes.md", b"# a"), ("data.csv", b"a,b")]
    )
    ids = [d["id"] for d in docs]
    assert [d["name"] for d in api.docs(kb, keywords="REPORT")["docs"]] == ["Report-2024.pdf"]
    assert {d["name"] for d in api.docs(kb, suffix=["md", "csv"])["docs"]} == {
        "notes.md",
        "data.csv",
    }
    assert [d["name"] for d in api.docs(kb, types="pdf")["docs"]] == ["Report-2024.pdf"]
    assert api.docs(kb, name="notes.md")["docs"][0]["id"] == ids[1]
    assert api.docs(kb, id=ids[2])["docs"][0]["name"] == "data.csv"
    assert {d["id"] for d in api.docs(kb, ids=ids[:2])["docs"]} == set(ids[:2])
    assert api.docs(kb, run="UNSTART")["total"] == 3
    assert api.docs(kb, run="0")["total"] == 3
    assert api.docs(kb, run=["DONE", "FAIL"])["total"] == 0
    bad = api.get(f"/datasets/{kb}/documents", params={"run": "WHATEVER"})
    assert bad == {"code": 102, "message": "Invalid filter run status conditions: WHATEVER"}
    bad = api.get(f"/datasets/{kb}/documents", params={"name": "nope.txt"})
    assert bad == {"code": 102, "message": "you don't own the document nope.txt"}
    bad = api.get(f"/datasets/{kb}/documents", params={"types": "movie"})
    assert bad == {"code": 102, "message": "Invalid filter conditions: movie type"}
    too_many = api.get(
        f"/datasets/{kb}/documents", params={"ids": [uuid.uuid4().hex for _ in range(101)]}
    )
    assert too_many["code"] == 101 and "at most 100" in too_many["message"]


def test_create_time_range(api: Api, kb: str) -> None:
    first = api.upload(kb, [("old.txt", b"x")])[0]
    time.sleep(0.01)
    second = api.upload(kb, [("new.txt", b"x")])[0]
    created = {d["id"]: d["create_time"] for d in api.docs(kb)["docs"]}
    after = api.docs(kb, create_time_from=created[second["id"]])
    assert [d["name"] for d in after["docs"]] == ["new.txt"]
    before = api.docs(kb, create_time_to=created[first["id"]])
    assert [d["name"] for d in before["docs"]] == ["old.txt"]


def test_download(api: Api, kb: str) -> None:
    payload = bytes(range(256)) * 10
    doc = api.upload(kb, [("blob.json", payload)])[0]
    res = api.raw("GET", f"/datasets/{kb}/documents/{doc['id']}")
    assert res.status_code == 200 and res.content == payload
    assert "attachment" in res.headers["content-disposition"]
    alias = api.raw("GET", f"/documents/{doc['id']}")
    assert alias.content == payload
    empty = api.upload(kb, [("empty.txt", b"")])[0]
    assert api.get(f"/datasets/{kb}/documents/{empty['id']}") == {
        "code": 102,
        "message": "This file is empty.",
    }
    assert api.get(f"/datasets/{kb}/documents/{uuid.uuid4().hex}") == {
        "code": 102,
        "message": "document not found",
    }


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_update_name_and_meta(api: Api, kb: str, method: str) -> None:
    doc, other = api.upload(kb, [("a.txt", b"x"), ("b.txt", b"y")])
    path = f"/datasets/{kb}/documents/{doc['id']}"
    res = api.call(
        method, path, json={"name": "renamed.txt", "meta_fields": {"author": "bob", "n": 3}}
    )
    assert (
        res["code"] == 0
        and res["data"]["name"] == "renamed.txt"
        and "meta_fields" not in res["data"]
    )
    assert api.doc(kb, doc["id"])["meta_fields"] == {"author": "bob", "n": 3}
    assert api.call(method, path, json={"name": "renamed.md"}) == {
        "code": 101,
        "message": "The extension of file can't be changed",
    }
    assert api.call(method, path, json={"name": "b.txt"}) == {
        "code": 102,
        "message": "Duplicated document name in the same dataset.",
    }
    assert api.call(method, path, json={"name": "x" * 256 + ".txt"})["code"] == 101
    bad_meta = api.call(method, path, json={"meta_fields": {"a": {"nested": 1}}})
    assert bad_meta["code"] == 102 and "The type is not supported" in bad_meta["message"]
    assert api.call(method, path, json={"chunk_count": 5}) == {
        "code": 102,
        "message": "can't change `chunk_count`",
    }
    missing = api.call(
        method, f"/datasets/{kb}/documents/{uuid.uuid4().hex}", json={"name": "z.txt"}
    )
    assert missing == {"code": 102, "message": "the dataset doesn't own the document"}
    assert other["name"] == "b.txt"


def test_update_enabled_and_chunk_method(api: Api, kb: str) -> None:
    doc = api.upload(kb, [("a.txt", b"hello")])[0]
    path = f"/datasets/{kb}/documents/{doc['id']}"
    assert api.patch(path, json={"enabled": 0})["data"]["status"] == "0"
    bad = api.patch(path, json={"enabled": 2})
    assert bad["code"] == 102 and "less than or equal to 1" in bad["message"]
    api.parse(kb, [doc["id"]])
    assert api.wait(kb, [doc["id"]])[doc["id"]]["run"] == "DONE"
    res = api.patch(path, json={"chunk_method": "one"})
    assert res["data"]["chunk_method"] == "one" and res["data"]["run"] == "UNSTART"
    assert res["data"]["chunk_count"] == 0
    wrong = api.patch(path, json={"chunk_method": "nope"})
    assert wrong["code"] == 102 and "`chunk_method` nope doesn't exist" in wrong["message"]
    image = api.upload(kb, [("p.png", b"x")])[0]
    locked = api.patch(f"/datasets/{kb}/documents/{image['id']}", json={"chunk_method": "naive"})
    assert locked == {
        "code": 102,
        "message": "the automatically detected parser type cannot be changed",
    }


def test_delete_documents_rules(api: Api, kb: str) -> None:
    docs = api.upload(kb, [(f"d{i}.txt", b"x") for i in range(4)])
    ids = [d["id"] for d in docs]
    res = api.delete(f"/datasets/{kb}/documents", json={})
    assert res == {
        "code": 102,
        "message": f"should either provide doc ids or set delete_all(true), dataset: {kb}. ",
    }
    res = api.delete(f"/datasets/{kb}/documents", json={"ids": ids[:1], "delete_all": True})
    assert res["code"] == 102 and "should not provide both" in res["message"]
    unknown = uuid.uuid4().hex
    res = api.delete(f"/datasets/{kb}/documents", json={"ids": [ids[0], unknown]})
    assert (
        res["code"] == 102
        and unknown in res["message"]
        and "do not belong to dataset" in res["message"]
    )
    assert api.docs(kb)["total"] == 4
    assert api.delete(f"/datasets/{kb}/documents", json={"ids": ids[:2]}) == {
        "code": 0,
        "data": {"deleted": 2},
    }
    assert api.delete(f"/datasets/{kb}/documents", json={"delete_all": True}) == {
        "code": 0,
        "data": {"deleted": 2},
    }
    assert api.docs(kb)["total"] == 0
    assert api.get(f"/datasets/{kb}")["data"]["document_count"] == 0


def test_empty_document_type(api: Api, kb: str) -> None:
    res = api.post(
        f"/datasets/{kb}/documents",
        params={"type": "empty"},
        data=json.dumps({"name": "blank.txt"}),
        headers={"Content-Type": "application/json"},
    )
    assert res["code"] == 0 and res["data"]["type"] == "virtual"
