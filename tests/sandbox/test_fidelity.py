"""Details where the sandbox answers as RAGFlow v0.27 does, found side by side with a real server.

``content_hash`` is xxh128 of the bytes and chunk ids xxh64 of content + document id (as in
``api/db/services/file_service.py`` and ``rag/svr/task_executor.py``), a ``%22`` in a quoted form
file name comes back as ``"``, dataset objects carry all of the server's task keys, and
``meta_fields`` come back with sorted keys.
"""

from __future__ import annotations

import json

import xxhash

from .helpers import Api

TASK_KINDS = (
    "graphrag",
    "raptor",
    "mindmap",
    "wiki",
    "skill",
    "structure_graph",
    "structure_mindmap",
    "timeline",
    "session_graph",
    "session_essence",
    "structure",
)


def test_content_hash_is_xxh128_of_the_bytes_for_small_and_spooled_uploads(
    api: Api, kb: str
) -> None:
    small = b"hello sandbox\n"
    large = bytes(range(256)) * (3 * 4096)  # 3 MiB: starlette spools it to disk
    docs = api.upload(kb, [("small.txt", small), ("large.txt", large)])
    assert [d["content_hash"] for d in docs] == [
        xxhash.xxh128(small).hexdigest(),
        xxhash.xxh128(large).hexdigest(),
    ]
    # the list route has no content_hash, on the server too


def test_a_percent_encoded_quote_in_the_file_name_is_decoded(api: Api, kb: str) -> None:
    # requests (urllib3) sends '"' in a file name as %22, like browsers
    via_requests = api.upload(kb, [('say "hi".txt', b"hi")])
    assert via_requests[0]["name"] == 'say "hi".txt'
    boundary = "sandboxboundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="raw %22q%22.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nraw\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    res = api.post(
        f"/datasets/{kb}/documents",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert res["code"] == 0 and res["data"][0]["name"] == 'raw "q".txt', res
    names = sorted(d["name"] for d in api.docs(kb)["docs"])
    assert names == ['raw "q".txt', 'say "hi".txt']


def test_dataset_objects_carry_every_task_key_of_the_server(api: Api, kb: str) -> None:
    expected = [f"{kind}_task_{part}" for kind in TASK_KINDS for part in ("id", "finish_at")]
    assert len(expected) == 22
    for ds in (
        api.get(f"/datasets/{kb}")["data"],
        api.get("/datasets", params={"id": kb})["data"][0],
    ):
        keys = list(ds)
        tasks = [k for k in keys if "_task_" in k]
        assert tasks == expected
        assert all(ds[k] is None for k in tasks)
        assert keys.index("pagerank") < keys.index(expected[0])
        assert keys.index(expected[-1]) < keys.index("status")


def test_meta_fields_come_back_with_sorted_keys(api: Api, kb: str) -> None:
    (doc,) = api.upload(kb, [("m.txt", b"m")])
    meta = {"zeta": "z", "alpha": 1, "Mid": ["b", "a"], "beta": 2.5}
    res = api.put(f"/datasets/{kb}/documents/{doc['id']}", json={"meta_fields": meta})
    assert res["code"] == 0, res
    raw = api.raw("GET", f"/datasets/{kb}/documents", params={"id": doc["id"]}).text
    listed = json.loads(raw)["data"]["docs"][0]["meta_fields"]
    assert list(listed) == ["Mid", "alpha", "beta", "zeta"]
    assert listed == meta  # values (and list order) unchanged


def test_chunk_ids_are_xxh64_of_content_and_document(api: Api, kb: str) -> None:
    (doc,) = api.upload(kb, [("c.txt", b"Kiwis are small birds.\n")])
    api.parse(kb, [doc["id"]])
    assert api.wait(kb, [doc["id"]])[doc["id"]]["run"] == "DONE"
    chunks = api.get(f"/datasets/{kb}/documents/{doc['id']}/chunks")["data"]["chunks"]
    assert chunks
    for chunk in chunks:
        assert chunk["id"] == xxhash.xxh64((chunk["content"] + doc["id"]).encode()).hexdigest()
    added = api.post(
        f"/datasets/{kb}/documents/{doc['id']}/chunks", json={"content": "a custom chunk"}
    )["data"]["chunk"]
    assert added["id"] == xxhash.xxh64(("a custom chunk" + doc["id"]).encode()).hexdigest()
