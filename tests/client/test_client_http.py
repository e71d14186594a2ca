"""Every client method against the sandbox server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import time
import uuid

import pytest

from ragflow_dagster.client import (
    Chunk,
    Dataset,
    Document,
    RAGFlowAuthError,
    RAGFlowClient,
    RAGFlowError,
    RAGFlowNotFoundError,
    RAGFlowPartialUploadError,
    UploadFile,
    ensure_dataset,
)

TEXT = (
    "RAGFlow is an open-source retrieval-augmented generation engine.\n\n"
    "It parses documents into chunks and retrieves them for questions.\n\n"
    "Dagster orchestrates the synchronisation of folders into datasets.\n"
)


def _wait_parsed(client: RAGFlowClient, dataset_id: str, ids: list[str], deadline_s: float = 30):
    deadline = time.monotonic() + deadline_s
    wanted = set(ids)
    while True:
        docs = {d.id: d for d in client.iter_documents(dataset_id) if d.id in wanted}
        if len(docs) == len(wanted) and all(d.finished for d in docs.values()):
            return docs
        if time.monotonic() > deadline:
            raise AssertionError(f"not parsed in {deadline_s}s: {[d.run for d in docs.values()]}")
        time.sleep(0.1)


# ---------------------------------------------------------------------------- datasets


def test_dataset_lifecycle(client: RAGFlowClient, request_log):
    name = f"Client-DS-{uuid.uuid4().hex[:8]}"
    ds = client.create_dataset(
        name,
        chunk_method="naive",
        parser_config={"chunk_token_num": 256, "delimiter": "\n"},
        description="made by a test",
    )
    try:
        assert isinstance(ds, Dataset) and ds.name == name and ds.id
        assert ds.chunk_method == "naive" and ds.parser_config["chunk_token_num"] == 256
        assert client.get_dataset(ds.id) == ds or client.get_dataset(ds.id).id == ds.id
        assert client.find_dataset(name).id == ds.id
        assert client.find_dataset(name.lower()).id == ds.id  # names are case-insensitive
        assert client.find_dataset(f"missing-{uuid.uuid4().hex}") is None
        assert ds.id in {d.id for d in client.iter_datasets()}
        assert [d.id for d in client.iter_datasets(name=name)] == [ds.id]
        changed = client.update_dataset(ds.id, description="changed")
        assert changed.description == "changed"
        assert client.get_dataset(ds.id).description == "changed"
    finally:
        assert client.delete_datasets([ds.id]) == 1
    with pytest.raises(RAGFlowNotFoundError):
        client.get_dataset(ds.id)
    request_log.clear()
    assert client.delete_datasets([]) == 0
    assert request_log.attempts("DELETE") == []  # nothing sent for an empty list
    with pytest.raises(TypeError):
        client.delete_datasets(ds.id)  # a bare string is refused, not split into characters


def test_iter_datasets_pages(client: RAGFlowClient, request_log):
    prefix = f"pg-{uuid.uuid4().hex[:6]}"
    ids = [client.create_dataset(f"{prefix}-{i}").id for i in range(5)]
    try:
        request_log.clear()
        seen = [d.id for d in client.iter_datasets(page_size=2) if d.name.startswith(prefix)]
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
        assert len(request_log.attempts("GET", r"/datasets$")) >= 3
    finally:
        assert client.delete_datasets(ids) == 5


def test_ensure_dataset_creates_then_reports_drift(client: RAGFlowClient, caplog):
    name = f"ensure-{uuid.uuid4().hex[:8]}"
    first = ensure_dataset(
        client, name, chunk_method="naive", parser_config={"chunk_token_num": 128}
    )
    try:
        assert first.created and first.dataset.parser_config["chunk_token_num"] == 128
        again = ensure_dataset(
            client, name, chunk_method="naive", parser_config={"chunk_token_num": 128}
        )
        assert again.id == first.id and not again.created and not again.drift
        # Empty dataset: brought to the wanted settings.
        upd = ensure_dataset(client, name, parser_config={"chunk_token_num": 64})
        assert upd.updated and upd.dataset.parser_config["chunk_token_num"] == 64
        client.upload_documents(first.id, [UploadFile("a.txt", io.BytesIO(b"hello"))])
        # With documents: never changed, drift reported and logged.
        with caplog.at_level("WARNING", logger="ragflow_dagster.client"):
            drifted = ensure_dataset(
                client, name, chunk_method="qa", parser_config={"chunk_token_num": 64}
            )
        assert not drifted.updated and [d.setting for d in drifted.drift] == ["chunk_method"]
        assert client.get_dataset(first.id).chunk_method == "naive"
        assert "chunk_method" in caplog.text and "left as is" in caplog.text
        assert drifted.to_metadata()["dataset_drift"] == [
            "chunk_method: wanted 'qa', server has 'naive'"
        ]
    finally:
        client.delete_datasets([first.id])


# ---------------------------------------------------------------------------- documents


def test_upload_from_path_stream_and_callable_in_order(client, dataset, tmp_path):
    p = tmp_path / "from-path.txt"
    p.write_bytes(b"path content")
    files = [
        UploadFile("from-path.txt", p),
        UploadFile("from-stream.md", io.BytesIO(b"# stream")),
        UploadFile("from-callable.txt", lambda: io.BytesIO(b"lazy!"), size=5),
        UploadFile("from-path.txt", str(p)),  # same name twice: the server renames the second
    ]
    docs = client.upload_documents(dataset.id, files)
    assert [type(d) for d in docs] == [Document] * 4
    assert [d.name for d in docs] == [
        "from-path.txt",
        "from-stream.md",
        "from-callable.txt",
        "from-path(1).txt",
    ]
    assert [d.size for d in docs] == [12, 8, 5, 12]
    assert all(d.dataset_id == dataset.id and d.run == "UNSTART" for d in docs)
    assert client.upload_documents(dataset.id, []) == []


def test_upload_batches_requests(client, dataset, request_log):
    files = [UploadFile(f"f{i:02d}.txt", io.BytesIO(b"x" * 100)) for i in range(10)]
    small = RAGFlowClient(client.base_url, client._secret.reveal(), max_files_per_request=4)
    with small:
        request_log.clear()
        docs = small.upload_documents(dataset.id, files)
    assert [d.name for d in docs] == [f.name for f in files]
    assert len(request_log.attempts("POST", r"/documents$")) == 3  # 4 + 4 + 2


def test_paging_across_several_pages(client, dataset, request_log):
    n = 230
    files = [UploadFile(f"doc-{i:03d}.txt", io.BytesIO(b"p%d" % i)) for i in range(n)]
    uploaded = client.upload_documents(dataset.id, files)
    assert len(uploaded) == n
    request_log.clear()
    listed = list(client.iter_documents(dataset.id))
    assert [d.id for d in listed] == [d.id for d in uploaded]  # oldest first, no repeats
    assert len(request_log.attempts("GET", r"/documents$")) == 3  # 100 + 100 + 30
    page3, total = client.list_documents(dataset.id, page=3, desc=False)
    assert total == n and [d.id for d in page3] == [d.id for d in uploaded[200:]]
    small = list(client.iter_documents(dataset.id, page_size=40, keywords="doc-00"))
    assert sorted(d.name for d in small) == [f"doc-00{i}.txt" for i in range(10)]
    # Delete more than 100 ids: split into calls of at most 100.
    request_log.clear()
    assert client.delete_documents(dataset.id, [d.id for d in uploaded[:150]]) == 150
    assert len(request_log.attempts("DELETE", r"/documents$")) == 2
    assert client.list_documents(dataset.id)[1] == n - 150


def test_get_update_download_delete_document(client, dataset, tmp_path):
    (doc,) = client.upload_documents(
        dataset.id, [UploadFile("report.txt", io.BytesIO(TEXT.encode()))]
    )
    got = client.get_document(dataset.id, doc.id)
    assert got.id == doc.id and got.size == len(TEXT.encode())
    res = client.update_document(
        dataset.id, doc.id, meta_fields={"source_path": "a/report.txt", "rev": 2}, enabled=False
    )
    assert res is None or res.meta_fields == {"source_path": "a/report.txt", "rev": 2}
    got = client.get_document(dataset.id, doc.id)
    assert got.meta_fields == {"source_path": "a/report.txt", "rev": 2} and not got.enabled
    client.update_document(dataset.id, doc.id, name="renamed.txt", enabled=True)
    got = client.get_document(dataset.id, doc.id)
    assert got.name == "renamed.txt" and got.enabled
    # returning=False (a sync's labels): no record built, the change made, errors still raised
    assert (
        client.update_document(dataset.id, doc.id, meta_fields={"rev": 3}, returning=False) is None
    )
    assert client.get_document(dataset.id, doc.id).meta_fields == {"rev": 3}
    with pytest.raises(RAGFlowError):
        client.update_document(dataset.id, "0" * 32, meta_fields={"rev": 4}, returning=False)
    client.update_document(
        dataset.id, doc.id, meta_fields={"source_path": "a/report.txt", "rev": 2}
    )
    hits = list(
        client.iter_documents(
            dataset.id,
            metadata_condition={
                "logic": "and",
                "conditions": [{"name": "rev", "comparison_operator": "is", "value": "2"}],
            },
        )
    )
    assert [d.id for d in hits] == [doc.id]
    # Download to a path and to a stream.
    target = tmp_path / "out" / "copy.txt"
    target.parent.mkdir()
    assert client.download_document(dataset.id, doc.id, target) == len(TEXT.encode())
    assert target.read_bytes() == TEXT.encode()
    buf = io.BytesIO()
    assert client.download_document(dataset.id, doc.id, buf) == len(TEXT.encode())
    assert buf.getvalue() == TEXT.encode()
    assert [p.name for p in target.parent.iterdir()] == ["copy.txt"]  # no temp files left
    # Delete.
    assert client.delete_documents(dataset.id, []) == 0
    assert client.delete_documents(dataset.id, [doc.id]) == 1
    with pytest.raises(RAGFlowNotFoundError):
        client.get_document(dataset.id, doc.id)
    with pytest.raises(RAGFlowNotFoundError):
        client.download_document(dataset.id, doc.id, tmp_path / "none.txt")
    assert not (tmp_path / "none.txt").exists()


def test_unsupported_file_is_a_partial_upload(client, dataset):
    files = [
        UploadFile("good.txt", io.BytesIO(b"fine")),
        UploadFile("bad.exe", io.BytesIO(b"MZ")),
        UploadFile("also-good.md", io.BytesIO(b"# ok")),
    ]
    with pytest.raises(RAGFlowPartialUploadError) as info:
        client.upload_documents(dataset.id, files)
    err = info.value
    assert [d.name for d in err.uploaded] == ["good.txt", "also-good.md"]
    assert err.failed_names == ["bad.exe"]
    assert "bad.exe" in err.message and err.code == 500


# ---------------------------------------------------------------------------- parse & chunks


def test_parse_chunks_and_retrieval(client, dataset):
    docs = client.upload_documents(
        dataset.id,
        [
            UploadFile("ragflow.txt", io.BytesIO(TEXT.encode())),
            UploadFile("other.txt", io.BytesIO(b"zebra")),
        ],
    )
    ids = [d.id for d in docs]
    assert client.parse_documents(dataset.id, []) is None  # nothing sent
    client.parse_documents(dataset.id, ids)
    parsed = _wait_parsed(client, dataset.id, ids)
    assert {d.run for d in parsed.values()} == {"DONE"}
    doc_id = docs[0].id
    chunks = list(client.iter_chunks(dataset.id, doc_id))
    assert chunks and all(isinstance(c, Chunk) and c.document_id == doc_id for c in chunks)
    assert "RAGFlow" in " ".join(c.content for c in chunks)
    added = client.add_chunk(
        dataset.id, doc_id, "Sandboxes answer over loopback.", important_keywords=["loopback"]
    )
    assert added.id and added.content == "Sandboxes answer over loopback."
    client.update_chunk(
        dataset.id, doc_id, added.id, content="Sandboxes answer quickly.", available=False
    )
    found = {c.id: c for c in client.iter_chunks(dataset.id, doc_id)}
    assert found[added.id].content == "Sandboxes answer quickly." and not found[added.id].available
    assert len(list(client.iter_chunks(dataset.id, doc_id, keywords="quickly"))) >= 1
    result = client.retrieve("retrieval-augmented generation engine", dataset_ids=[dataset.id])
    assert result.total >= 1 and result.chunks
    assert result.chunks[0].document_id == doc_id and result.chunks[0].similarity is not None
    assert any(a.doc_id == doc_id for a in result.doc_aggs)
    only_other = client.retrieve("zebra", dataset_ids=[dataset.id], document_ids=[docs[1].id])
    assert {c.document_id for c in only_other.chunks} <= {docs[1].id}
    assert client.delete_chunks(dataset.id, doc_id, []) == 0
    assert client.delete_chunks(dataset.id, doc_id, [added.id]) == 1
    assert added.id not in {c.id for c in client.iter_chunks(dataset.id, doc_id)}


def test_iter_chunks_pages(client, dataset, request_log):
    (doc,) = client.upload_documents(dataset.id, [UploadFile("c.txt", io.BytesIO(b"seed"))])
    client.parse_documents(dataset.id, [doc.id])
    _wait_parsed(client, dataset.id, [doc.id])
    base = len(list(client.iter_chunks(dataset.id, doc.id)))
    for i in range(12):
        client.add_chunk(dataset.id, doc.id, f"manual chunk {i}")
    request_log.clear()
    chunks = list(client.iter_chunks(dataset.id, doc.id, page_size=5))
    assert len(chunks) == base + 12 and len({c.id for c in chunks}) == len(chunks)
    assert len(request_log.attempts("GET", r"/chunks$")) >= 3


def test_stop_parsing(client, dataset):
    (doc,) = client.upload_documents(
        dataset.id, [UploadFile("s.txt", io.BytesIO(TEXT.encode() * 50))]
    )
    client.parse_documents(dataset.id, [doc.id])
    try:
        client.stop_parsing(dataset.id, [doc.id])
    except RAGFlowError as exc:  # it may have finished already: the server says so
        assert "already completed" in exc.message or "not started" in exc.message
    final = client.get_document(dataset.id, doc.id)
    assert final.run in ("CANCEL", "DONE")


# ---------------------------------------------------------------------------- metadata & indexes


def test_metadata_summary_and_batch_update(client, dataset):
    docs = client.upload_documents(
        dataset.id, [UploadFile(f"m{i}.txt", io.BytesIO(b"m")) for i in range(3)]
    )
    for d, author in zip(docs, ["alice", "alice", "bob"], strict=True):
        client.update_document(dataset.id, d.id, meta_fields={"author": author, "tags": ["x"]})
    summary = client.metadata_summary(dataset.id)
    assert sorted(map(tuple, summary["author"]["values"])) == [("alice", 2), ("bob", 1)]
    res = client.update_metadata(
        dataset.id,
        metadata_condition={
            "logic": "and",
            "conditions": [{"name": "author", "comparison_operator": "is", "value": "bob"}],
        },
        updates=[{"key": "author", "value": "carol"}],
    )
    assert res["matched_docs"] == 1
    assert client.get_document(dataset.id, docs[2].id).meta_fields["author"] == "carol"
    res = client.update_metadata(dataset.id, document_ids=[docs[0].id], deletes=[{"key": "tags"}])
    assert "tags" not in client.get_document(dataset.id, docs[0].id).meta_fields
    assert client.update_metadata(dataset.id, document_ids=[]) == {"updated": 0, "matched_docs": 0}
    with pytest.raises(ValueError):
        client.update_metadata(dataset.id, updates=[{"key": "k", "value": "v"}])


def test_graphrag_and_raptor(client, dataset):
    (doc,) = client.upload_documents(dataset.id, [UploadFile("g.txt", io.BytesIO(TEXT.encode()))])
    client.parse_documents(dataset.id, [doc.id])
    _wait_parsed(client, dataset.id, [doc.id])
    assert client.graphrag_status(dataset.id) is None
    task_id = client.run_graphrag(dataset.id)
    assert task_id
    status = client.graphrag_status(dataset.id)
    assert status is not None and status.id == task_id
    # the sandbox builds no graph (that needs an LLM): the answer's shape, empty
    assert client.get_knowledge_graph(dataset.id) == {"graph": {}, "mind_map": {}}
    client.delete_graphrag(dataset.id)
    raptor = client.run_raptor(dataset.id)
    assert raptor and client.raptor_status(dataset.id).id == raptor


# ---------------------------------------------------------------------------- errors


def test_error_mapping_over_http(client, dataset, sandbox):
    with RAGFlowClient(sandbox.base_url, "ragflow-wrong-key", max_retries=0) as bad:
        with pytest.raises(RAGFlowAuthError) as info:
            bad.find_dataset("x")
        assert info.value.http_status == 401
        with pytest.raises(RAGFlowAuthError):
            bad.ping()
    with pytest.raises(RAGFlowNotFoundError):
        client.get_dataset(uuid.uuid4().hex)
    with pytest.raises(RAGFlowNotFoundError):
        client.get_document(dataset.id, uuid.uuid4().hex)
    with pytest.raises(RAGFlowNotFoundError):
        client.delete_documents(dataset.id, [uuid.uuid4().hex])
    with pytest.raises(RAGFlowNotFoundError) as info:
        client._request("GET", "/no-such-route")
    assert info.value.http_status == 404 and info.value.route == "/api/v1/no-such-route"
    with pytest.raises(RAGFlowNotFoundError):
        client.upload_documents(uuid.uuid4().hex, [UploadFile("a.txt", io.BytesIO(b"a"))])
    client.ping()
