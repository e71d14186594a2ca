"""The parse state machine, chunking, failure and stop, on both route families."""

from __future__ import annotations

import io
import uuid
import zipfile

from ragflow_sandbox import SandboxServer

from .helpers import Api, poll


def test_parse_runs_through_running_to_done(ragflow_sandbox_factory) -> None:
    server: SandboxServer = ragflow_sandbox_factory(parse_delay=0.4)
    api = Api(server)
    kb = api.dataset()
    doc = api.upload(kb, [("a.txt", b"alpha beta\ngamma delta\n")])[0]
    res = api.parse(kb, [doc["id"]])
    assert res == {"code": 0, "data": {"success_count": 1}}
    running = api.doc(kb, doc["id"])
    assert running["run"] == "RUNNING" and running["progress"] < 1
    received = poll(lambda: (d := api.doc(kb, doc["id"]))["process_begin_at"] and d)
    assert "Task has been received." in received["progress_msg"] and received["run"] == "RUNNING"
    done = api.wait(kb, [doc["id"]])[doc["id"]]
    assert done["run"] == "DONE" and done["progress"] == 1.0
    assert done["chunk_count"] == 1 and done["token_count"] > 0
    assert done["process_duration"] >= 0.3
    assert "Task done" in done["progress_msg"]
    again = api.post(f"/datasets/{kb}/chunks", json={"document_ids": [doc["id"]]})
    assert again == {"code": 0}
    busy = api.post(f"/datasets/{kb}/chunks", json={"document_ids": [doc["id"]]})
    assert busy == {
        "code": 102,
        "message": "Can't parse document that is currently being processed",
    }
    assert api.wait(kb, [doc["id"]])[doc["id"]]["chunk_count"] == 1  # re-parse replaces the chunks
    assert api.get(f"/datasets/{kb}")["data"]["chunk_count"] == 1


def test_chunking_honours_parser_config(api: Api) -> None:
    kb = api.dataset(parser_config={"chunk_token_num": 4, "delimiter": "\n"})
    text = "".join(f"line number {i} here\n" for i in range(10)).encode()
    doc = api.upload(kb, [("lines.txt", text)])[0]
    api.parse(kb, [doc["id"]])
    done = api.wait(kb, [doc["id"]])[doc["id"]]
    chunks = api.get(f"/datasets/{kb}/documents/{doc['id']}/chunks", params={"page_size": 100})[
        "data"
    ]
    assert done["chunk_count"] == chunks["total"] == 5  # two 4-token lines per chunk
    assert "".join(c["content"] for c in chunks["chunks"]) == text.decode()
    assert chunks["doc"]["run"] == "DONE"


def test_office_and_markup_files_are_read(api: Api, kb: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(
            "word/document.xml",
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            "<w:p><w:r><w:t>Quarterly zebra report</w:t></w:r></w:p></w:body></w:document>",
        )
    docs = api.upload(
        kb, [("r.docx", buf.getvalue()), ("p.html", b"<html><p>Hello <b>orca</b></p></html>")]
    )
    ids = [d["id"] for d in docs]
    api.parse(kb, ids)
    api.wait(kb, ids)
    contents = {
        d["name"]: api.get(f"/datasets/{kb}/documents/{d['id']}/chunks")["data"]["chunks"][0][
            "content"
        ]
        for d in docs
    }
    assert (
        "zebra" in contents["r.docx"]
        and "orca" in contents["p.html"]
        and "<b>" not in contents["p.html"]
    )


def test_unparseable_files_fail_with_message(api: Api, kb: str) -> None:
    docs = api.upload(
        kb,
        [
            ("broken.pdf", b"this is no pdf"),
            ("bad.docx", b"not a zip"),
            ("marked.txt", b"ok RAGFLOW_SANDBOX_FAIL"),
        ],
    )
    ids = [d["id"] for d in docs]
    api.parse(kb, ids)
    result = api.wait(kb, ids)
    for doc_id in ids:
        assert result[doc_id]["run"] == "FAIL"
        assert result[doc_id]["progress"] == -1
        assert "[ERROR]" in result[doc_id]["progress_msg"]
        assert result[doc_id]["chunk_count"] == 0
    assert api.docs(kb, run="FAIL")["total"] == 3


def test_stop_parsing(ragflow_sandbox_factory) -> None:
    api = Api(ragflow_sandbox_factory(parse_delay=30))
    kb = api.dataset()
    a, b = api.upload(kb, [("a.txt", b"x"), ("b.txt", b"y")])
    api.parse(kb, [a["id"], b["id"]])
    res = api.post(f"/datasets/{kb}/documents/stop", json={"document_ids": [a["id"]]})
    assert res == {"code": 0, "data": {"success_count": 1}}
    stopped = api.doc(kb, a["id"])
    assert stopped["run"] == "CANCEL" and stopped["progress"] == 0
    assert "Task stopped by user." in stopped["progress_msg"]
    legacy = api.delete(f"/datasets/{kb}/chunks", json={"document_ids": [b["id"]]})
    assert legacy == {"code": 0}
    assert api.doc(kb, b["id"])["run"] == "CANCEL"
    again = api.delete(f"/datasets/{kb}/chunks", json={"document_ids": [b["id"]]})
    assert again == {
        "code": 102,
        "message": "Can't stop parsing document that has not started or already completed",
        "data": {"error_code": "DOC_STOP_PARSING_INVALID_STATE"},
    }
    idle = api.upload(kb, [("c.txt", b"z")])[0]
    res = api.post(f"/datasets/{kb}/documents/stop", json={"document_ids": [idle["id"]]})
    assert res["code"] == 0 and res["data"]["success_count"] == 0
    assert res["data"]["errors"] == [
        "Can't stop parsing document that has not started or already completed"
    ]


def test_parse_request_errors(api: Api, kb: str) -> None:
    doc = api.upload(kb, [("a.txt", b"x")])[0]
    missing = uuid.uuid4().hex
    assert api.post(f"/datasets/{kb}/documents/parse", json={}) == {
        "code": 102,
        "message": "`document_ids` is required",
    }
    res = api.post(f"/datasets/{kb}/documents/parse", json={"document_ids": [missing]})
    assert res == {"code": 102, "message": f"Documents not found: ['{missing}']"}
    res = api.post(f"/datasets/{kb}/chunks", json={"document_ids": [missing]})
    assert res == {"code": 102, "message": f"Documents not found: ['{missing}']"}
    dup = api.post(f"/datasets/{kb}/documents/parse", json={"document_ids": [doc["id"], doc["id"]]})
    assert dup["code"] == 0 and dup["data"]["errors"] == [f"Duplicate document ids: {doc['id']}"]
    other = uuid.uuid4().hex
    assert api.post(f"/datasets/{other}/documents/parse", json={"document_ids": [doc["id"]]}) == {
        "code": 102,
        "message": f"You don't own the dataset {other}.",
    }


def test_dataset_counters_follow_parse_and_delete(api: Api, kb: str) -> None:
    docs = api.upload(kb, [(f"{i}.txt", f"text {i}\n".encode()) for i in range(3)])
    ids = [d["id"] for d in docs]
    api.parse(kb, ids)
    api.wait(kb, ids)
    info = api.get(f"/datasets/{kb}")["data"]
    assert info["chunk_count"] == 3 and info["document_count"] == 3 and info["token_num"] > 0
    api.delete(f"/datasets/{kb}/documents", json={"ids": ids[:1]})
    info = api.get(f"/datasets/{kb}")["data"]
    assert info["chunk_count"] == 2 and info["document_count"] == 2


def _in_progress_counts(api: Api, kb: str, ids: list[str]) -> list[tuple[int, int]]:
    """(documents received but not finished, documents DONE) at each poll until all are DONE."""
    seen: list[tuple[int, int]] = []

    def step() -> bool:
        docs = api.docs(kb, ids=ids, page_size=100)["docs"]
        received = sum(1 for d in docs if d["run"] == "RUNNING" and d["process_begin_at"])
        done = sum(1 for d in docs if d["run"] == "DONE")
        seen.append((received, done))
        return done == len(ids)

    poll(step, timeout=30)
    return seen


def test_serial_parser_takes_one_document_at_a_time(ragflow_sandbox_factory) -> None:
    api = Api(ragflow_sandbox_factory(parse_delay=0.25, parse_serial=True, mode="subprocess"))
    kb = api.dataset()
    ids = [d["id"] for d in api.upload(kb, [(f"s{i}.txt", b"alpha beta\n") for i in range(4)])]
    api.parse(kb, ids)
    seen = _in_progress_counts(api, kb, ids)
    assert max(r for r, _ in seen) == 1  # never two documents in the parser at once
    assert {d for _, d in seen} >= {1, 2, 3}  # they finished one after another
    docs = api.docs(kb, ids=ids, page_size=100)["docs"]
    assert all(d["process_duration"] >= 0.2 for d in docs)


def test_parallel_parser_receives_every_document_at_once(ragflow_sandbox_factory) -> None:
    api = Api(ragflow_sandbox_factory(parse_delay=0.5))
    kb = api.dataset()
    ids = [d["id"] for d in api.upload(kb, [(f"p{i}.txt", b"alpha beta\n") for i in range(4)])]
    api.parse(kb, ids)
    seen = _in_progress_counts(api, kb, ids)
    assert max(r for r, _ in seen) > 1  # the default: every document waits in parallel
