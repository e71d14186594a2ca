"""Record parsing: field normalisation across server versions, unknown fields kept."""

from __future__ import annotations

import pytest

from ragflow_dagster.client import (
    Chunk,
    Dataset,
    Document,
    IndexTask,
    RetrievalResult,
    normalize_run,
)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("0", "UNSTART"),
        ("1", "RUNNING"),
        ("2", "CANCEL"),
        ("3", "DONE"),
        ("4", "FAIL"),
        ("5", "UNSTART"),  # SCHEDULE is shown as UNSTART
        (3, "DONE"),
        ("done", "DONE"),
        ("RUNNING", "RUNNING"),
        (None, "UNSTART"),
        ("", "UNSTART"),
    ],
)
def test_run_state_is_normalised_to_text(raw, text):
    assert normalize_run(raw) == text


def test_document_from_head_list_item_keeps_unknown_fields():
    raw = {
        "id": "d1",
        "name": "notes.md",
        "dataset_id": "ds",
        "chunk_method": "naive",
        "parser_config": {"chunk_token_num": 512},
        "pipeline_id": "",
        "source_type": "local",
        "type": "doc",
        "suffix": "md",
        "size": 123,
        "token_count": 40,
        "chunk_count": 2,
        "progress": 1.0,
        "progress_msg": "08:00:00 Task has been received.\n08:00:01 Task done (1.00s)",
        "process_begin_at": "2026-11-22T07:40:06",
        "process_duration": 1.5,
        "run": "DONE",
        "status": "1",
        "meta_fields": {"source_path": "a/notes.md"},
        "create_time": 1763797206000,
        "update_time": 1763797207000,
        "content_hash": "abc",
    }
    doc = Document.from_api(raw)
    assert (doc.id, doc.dataset_id, doc.name, doc.size, doc.suffix) == (
        "d1",
        "ds",
        "notes.md",
        123,
        "md",
    )
    assert (doc.run, doc.progress, doc.chunk_count, doc.token_count) == ("DONE", 1.0, 2, 40)
    assert doc.meta_fields == {"source_path": "a/notes.md"}
    assert doc.create_time == 1763797206000 and isinstance(doc.create_time, int)
    assert doc.enabled and doc.finished
    assert doc.extra == {"pipeline_id": "", "source_type": "local", "content_hash": "abc"}


def test_document_from_old_server_names():
    doc = Document.from_api(
        {
            "id": "d2",
            "name": "Report.PDF",
            "kb_id": "k",
            "parser_id": "paper",
            "chunk_num": 7,
            "token_num": 99,
            "run": "4",
            "progress": -1,
            "progress_msg": ["10:00 received", "10:01 [ERROR] boom"],
            "meta_fields": None,
            "status": "0",
            "process_duation": 2.5,
        }
    )
    assert doc.dataset_id == "k" and doc.chunk_method == "paper"
    assert (doc.chunk_count, doc.token_count, doc.run) == (7, 99, "FAIL")
    assert doc.suffix == "pdf"
    assert doc.progress_msg == "10:00 received\n10:01 [ERROR] boom"
    assert doc.meta_fields == {}
    assert not doc.enabled
    assert doc.process_duration == 2.5
    assert doc.extra == {}


def test_records_are_frozen_and_hashable_by_id():
    doc = Document.from_api({"id": "x", "name": "a.txt", "meta_fields": {"k": 1}})
    with pytest.raises(AttributeError):
        doc.name = "b"  # type: ignore[misc]
    same = Document.from_api({"id": "x", "name": "a.txt", "meta_fields": {"k": 1}})
    assert same == doc and len({doc, same}) == 1  # hashable despite dict fields
    assert Document.from_api({"id": "x", "name": "a.txt"}) != doc


def test_dataset_from_api_maps_legacy_names():
    ds = Dataset.from_api(
        {
            "id": "k",
            "name": "kb",
            "parser_id": "qa",
            "embd_id": "bge@BAAI",
            "doc_num": 3,
            "chunk_num": 30,
            "permission": "team",
            "language": "English",
        }
    )
    assert (ds.chunk_method, ds.embedding_model, ds.document_count, ds.chunk_count) == (
        "qa",
        "bge@BAAI",
        3,
        30,
    )
    assert ds.permission == "team"
    assert ds.extra == {"language": "English"}


def test_chunk_from_listing_and_from_retrieval():
    listed = Chunk.from_api(
        {
            "id": "c1",
            "content": "text",
            "document_id": "d",
            "docnm_kwd": "a.txt",
            "dataset_id": "ds",
            "important_keywords": "",
            "questions": ["q?"],
            "available": "false",
            "positions": [""],
            "tag_kwd": ["t"],
        }
    )
    assert listed.important_keywords == [] and listed.questions == ["q?"]
    assert listed.available is False and listed.similarity is None
    assert listed.extra == {"tag_kwd": ["t"]}
    hit = Chunk.from_api(
        {
            "id": "c2",
            "content_with_weight": "w",
            "doc_id": "d",
            "kb_id": "ds",
            "document_keyword": "b.txt",
            "similarity": 0.9,
            "vector_similarity": 0.8,
            "term_similarity": 1,
            "highlight": "<em>w</em>",
        }
    )
    assert (hit.content, hit.document_id, hit.dataset_id, hit.document_name) == (
        "w",
        "d",
        "ds",
        "b.txt",
    )
    assert (hit.similarity, hit.vector_similarity, hit.term_similarity) == (0.9, 0.8, 1.0)
    assert hit.highlight == "<em>w</em>"


def test_retrieval_result_accepts_list_and_dict_aggregates():
    as_list = RetrievalResult.from_api(
        {
            "total": 5,
            "chunks": [{"id": "a"}],
            "doc_aggs": [{"doc_id": "d", "doc_name": "n", "count": 2}],
        }
    )
    as_dict = RetrievalResult.from_api(
        {"chunks": [], "doc_aggs": {"n": {"doc_id": "d", "doc_name": "n", "count": 2}}}
    )
    assert as_list.total == 5 and as_list.chunks[0].id == "a"
    assert as_list.doc_aggs == as_dict.doc_aggs
    assert RetrievalResult.from_api(None).total == 0


def test_index_task_states():
    running = IndexTask.from_api({"id": "t", "task_type": "graphrag", "progress": 0.4, "x": 1})
    failed = IndexTask.from_api({"id": "t", "progress": -1})
    assert not running.done and not running.failed and running.extra == {"x": 1}
    assert failed.failed
