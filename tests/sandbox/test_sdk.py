"""The official ragflow-sdk (0.22.1) works unchanged against the sandbox."""

from __future__ import annotations

import pytest

from ragflow_sandbox import SandboxServer

ragflow_sdk = pytest.importorskip("ragflow_sdk")


def test_sdk_round_trip(ragflow_sandbox: SandboxServer) -> None:
    rag = ragflow_sdk.RAGFlow(api_key=ragflow_sandbox.api_key, base_url=ragflow_sandbox.base_url)
    dataset = rag.create_dataset(name="sdk-round-trip")
    assert rag.list_datasets(name="sdk-round-trip")[0].id == dataset.id
    blobs = [
        {
            "display_name": "pets.txt",
            "blob": b"Cats and dogs are popular pets.\nDogs like walks.\n",
        },
        {"display_name": "space.md", "blob": b"# Space\nRockets reach orbit around the earth.\n"},
        {"display_name": "pets.txt", "blob": b"Hamsters are small pets.\n"},
    ]
    docs = dataset.upload_documents(blobs)
    assert [d.name for d in docs] == ["pets.txt", "space.md", "pets(1).txt"]
    ids = [d.id for d in docs]
    dataset.async_parse_documents(ids)
    finished = {}
    import time

    deadline = time.monotonic() + 15
    while len(finished) < len(ids):
        for doc in dataset.list_documents(page_size=100):
            if doc.run in ("DONE", "FAIL", "CANCEL"):
                finished[doc.id] = doc
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert {d.run for d in finished.values()} == {"DONE"}
    doc = dataset.list_documents(id=ids[1])[0]
    chunks = doc.list_chunks()
    assert chunks and "Rockets" in chunks[0].content
    chunk = doc.add_chunk(content="Telescopes observe distant galaxies.")
    assert chunk.content.startswith("Telescopes")
    results = rag.retrieve(question="dogs pets", dataset_ids=[dataset.id])
    assert results and results[0].document_id == ids[0]
    doc.update({"meta_fields": {"source_path": "/space.md"}})
    meta = dataset.list_documents(id=ids[1])[0].meta_fields
    assert meta.to_json() == {"source_path": "/space.md"}
    dataset.delete_documents(ids=ids[2:])
    assert len(dataset.list_documents()) == 2
    rag.delete_datasets(ids=[dataset.id])
    assert not any(d.id == dataset.id for d in rag.list_datasets())
