"""The sync engine from an S3 bucket (moto's server) into the sandbox, over real HTTP."""

from __future__ import annotations

import hashlib

import pytest

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sources import S3Source
from ragflow_dagster.sync.engine import sync_source
from ragflow_dagster.sync.identity import managed_path

OBJECTS = {
    "reports/q1.md": b"# Q1\nrevenue grew in the first quarter\n",
    "reports/q2.md": b"# Q2\nrevenue flat in the second quarter\n",
    "notes/todo.txt": b"call the robot vendor about docking stations\n",
}


@pytest.fixture
def client(ragflow_sandbox):
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as c:
        yield c


def test_s3_bucket_sync_hashes_while_streaming_and_tracks_moves(s3_endpoint, client, request):
    bucket = s3_endpoint.new_bucket("sync")
    s3 = s3_endpoint.client()
    for key, body in OBJECTS.items():
        s3.put_object(Bucket=bucket, Key=f"kb/{key}", Body=body)
    s3.put_object(Bucket=bucket, Key="elsewhere/x.txt", Body=b"outside the prefix")
    source = S3Source(bucket, "kb", client=s3)
    ds = client.create_dataset("s3_" + request.node.name[:80])

    report = sync_source(client, source, ds.id)
    assert report.counts["uploaded"] == 3 and report.converged

    def managed():
        return {
            managed_path(d.meta_fields): d
            for d in client.iter_documents(ds.id)
            if managed_path(d.meta_fields)
        }

    docs = managed()
    assert sorted(docs) == sorted(OBJECTS)
    meta = docs["reports/q1.md"].meta_fields
    assert meta["sha256"] == hashlib.sha256(OBJECTS["reports/q1.md"]).hexdigest()
    assert meta["source_uri"] == f"s3://{bucket}/kb/reports/q1.md"
    assert meta["change_token"].strip('"') == hashlib.md5(OBJECTS["reports/q1.md"]).hexdigest()

    # unchanged bucket: nothing to do
    again = sync_source(client, source, ds.id)
    assert again.counts["unchanged"] == 3 and again.counts["uploaded"] == 0

    # a move (copy + delete) is recognised by its ETag: no download, no upload, no parse
    s3.copy_object(
        Bucket=bucket,
        Key="kb/archive/q1.md",
        CopySource={"Bucket": bucket, "Key": "kb/reports/q1.md"},
    )
    s3.delete_object(Bucket=bucket, Key="kb/reports/q1.md")
    # a change
    s3.put_object(Bucket=bucket, Key="kb/notes/todo.txt", Body=b"vendor called back\n")
    moved = sync_source(client, source, ds.id)
    assert moved.counts["moved"] == 1 and moved.counts["replaced"] == 1
    assert moved.counts["uploaded"] == 0
    docs_after = managed()
    assert docs_after["archive/q1.md"].id == docs["reports/q1.md"].id
    assert docs_after["archive/q1.md"].meta_fields["sha256"] == meta["sha256"]
    assert (
        docs_after["notes/todo.txt"].meta_fields["sha256"]
        == hashlib.sha256(b"vendor called back\n").hexdigest()
    )
    assert len(list(client.iter_documents(ds.id))) == 3
