"""Retries under the sandbox's fault injection: calls succeed, nothing is duplicated.

Faults are drawn from a seeded random source, so each test sees the same sequence every run.
"""

from __future__ import annotations

import io
import time
import uuid

import pytest

from ragflow_dagster.client import (
    RAGFlowNotFoundError,
    RAGFlowRateLimitedError,
    RAGFlowUploadAmbiguousError,
    UploadFile,
)

from .conftest import make_client

ALL_FAILURES = ["500", "502", "503", "429", "reset_before", "reset_after"]


def test_idempotent_calls_survive_every_fault_kind(client, dataset, sandbox, request_log):
    docs = client.upload_documents(
        dataset.id, [UploadFile(f"f{i}.txt", io.BytesIO(b"content %d" % i)) for i in range(12)]
    )
    sandbox.set_faults(
        rate=0.4,
        kinds=ALL_FAILURES,
        methods=["GET", "PATCH", "PUT", "DELETE"],
        seed=5,
        retry_after=0,
    )
    listed = list(client.iter_documents(dataset.id, page_size=5))
    assert [d.id for d in listed] == [d.id for d in docs]
    for d in docs:
        client.update_document(dataset.id, d.id, meta_fields={"n": d.name})
    assert client.get_document(dataset.id, docs[0].id).meta_fields == {"n": "f0.txt"}
    assert client.delete_documents(dataset.id, [d.id for d in docs[:6]]) == 6
    assert client.delete_documents(dataset.id, [docs[6].id]) == 1
    sandbox.clear_faults()
    assert len(request_log.retries()) >= 5  # faults really happened and were retried
    left = {d.id: d for d in client.iter_documents(dataset.id)}
    assert sorted(left) == sorted(d.id for d in docs[7:])
    assert all(left[d.id].meta_fields == {"n": d.name} for d in docs[7:])


def test_uploads_under_429_and_503_succeed_without_duplicates(client, dataset, sandbox, tmp_path):
    files = []
    for i in range(20):
        p = tmp_path / f"u{i:02d}.txt"
        p.write_bytes(b"upload %d" % i)
        files.append(UploadFile(p.name, p))
    sandbox.set_faults(
        rate=0.5,
        kinds=["429", "503"],
        methods=["POST"],
        routes=r"/documents$",
        seed=7,
        retry_after=0,
    )
    with make_client(sandbox, max_files_per_request=4, max_retries=10) as c:
        docs = c.upload_documents(dataset.id, files)
    sandbox.clear_faults()
    assert [d.name for d in docs] == [f.name for f in files]
    listed = sorted(d.name for d in client.iter_documents(dataset.id))
    assert listed == [f.name for f in files]  # exactly one copy each, no "name(1).txt"


@pytest.mark.parametrize(("kind", "landed"), [("reset_after", 1), ("reset_before", 0)])
def test_dropped_upload_is_reported_not_resent(client, dataset, sandbox, kind, landed, request_log):
    sandbox.set_faults(rate=1.0, kinds=[kind], methods=["POST"], routes=r"/documents$")
    files = [UploadFile(f"{kind}-{i}.txt", io.BytesIO(b"x")) for i in range(3)]
    with pytest.raises(RAGFlowUploadAmbiguousError) as info:
        client.upload_documents(dataset.id, files)
    sandbox.clear_faults()
    assert info.value.file_names == [f.name for f in files]
    assert len(request_log.attempts("POST", r"/documents$")) == 1  # never resent blindly
    names = sorted(d.name for d in client.iter_documents(dataset.id))
    assert names == sorted(f.name for f in files) * landed  # once if it landed, else not at all


def test_parse_retried_after_a_lost_answer_parses_once(client, dataset, sandbox):
    docs = client.upload_documents(
        dataset.id, [UploadFile(f"p{i}.txt", io.BytesIO(b"parse me %d" % i)) for i in range(3)]
    )
    # seed 4 at rate 0.5: the first POST is carried out but its answer is dropped, the retry
    # goes through (and is refused as "being processed", which the client takes as success)
    sandbox.set_faults(
        rate=0.5, kinds=["reset_after"], methods=["POST"], routes=r"/chunks$", seed=4
    )
    try:
        with make_client(sandbox, max_retries=1) as c:
            c.parse_documents(dataset.id, [d.id for d in docs])
        assert sandbox.faults()["injected"] == {"reset_after": 1}
    finally:
        sandbox.clear_faults()
    deadline = time.monotonic() + 30
    while True:
        runs = {d.run for d in client.iter_documents(dataset.id)}
        if runs <= {"DONE", "FAIL", "CANCEL"} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert runs == {"DONE"}


def test_retry_after_is_honoured_then_reported(sandbox):
    sandbox.set_faults(rate=1.0, kinds=["429"], retry_after=1)
    with make_client(sandbox, max_retries=1) as c:
        started = time.monotonic()
        with pytest.raises(RAGFlowRateLimitedError) as info:
            c.ping()
    assert time.monotonic() - started >= 1.0
    assert info.value.retry_after == 1.0 and info.value.attempts == 2


def test_business_errors_are_not_retried(client, request_log):
    with pytest.raises(RAGFlowNotFoundError) as info:
        client.get_dataset(uuid.uuid4().hex)
    assert info.value.attempts == 1 and len(request_log.attempts("GET")) == 1
