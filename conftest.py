"""Doctest fixtures: the examples in the docstrings run against real servers, not ``+SKIP``.

``make test`` collects the doctests of ``ragflow_dagster`` and ``ragflow_sandbox``
(``--doctest-modules``). An example that uses a client gets, through ``doctest_namespace``, a
doctest-only RAGFlow sandbox emptied and set up afresh for it:

* ``client``: a :class:`~ragflow_dagster.client.RAGFlowClient` on it (``base_url``, ``api_key``);
* ``ds``: the dataset ``manuals`` holding ``docs``: ``a.txt`` (``doc``) and ``b.txt``, parsed
  (``DONE``), with ``ids`` their ids and ``chunk`` the first chunk of ``doc``;
* ``ragflow``: a :class:`~ragflow_dagster.RAGFlowResource` on the same server;
* ``tmp``: an empty directory.

An example that calls ``stop_parsing`` gets a sandbox that parses slowly (30 s a document), so
that there is something to stop.

An example that builds an ``S3Source`` gets ``bucket``, a bucket of a moto S3 server whose
address is in the environment (``AWS_ENDPOINT_URL``), holding ``a.txt`` and ``b.txt``.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _pytest.doctest import DoctestItem

A_TEXT = b"RAGFlow is an open-source RAG engine based on deep document understanding."
B_TEXT = b"Dagster orchestrates the sync of folders and buckets into RAGFlow datasets."

_USES_SERVER = re.compile(r"(?<![.\w])(client|ds|doc|docs|ids|chunk|base_url|api_key|ragflow)\b")
_USES_S3 = re.compile(r"\bS3Source\(")


@pytest.fixture(scope="session")
def _doctest_sandbox() -> Iterator[Any]:
    from ragflow_sandbox import run_sandbox

    with run_sandbox() as server:
        yield server


@pytest.fixture(scope="session")
def _doctest_s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _doctest_servers(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> Any:
    """Fill ``doctest_namespace`` for a doctest that needs a server (other tests: nothing)."""
    item = request.node
    if not isinstance(item, DoctestItem) or item.dtest is None:
        yield
        return
    source = "\n".join(example.source for example in item.dtest.examples)
    added: dict[str, Any] = {}
    slow_parse = "stop_parsing(" in source  # something to stop: parsing takes a while
    if _USES_SERVER.search(source):
        added.update(_fresh_ragflow(request))
        if slow_parse:
            request.getfixturevalue("_doctest_sandbox").set_parse_delay(30.0)
    if _USES_S3.search(source):
        added.update(_fresh_s3(request))
    doctest_namespace.update(added)
    try:
        yield
    finally:
        if slow_parse and "client" in added:
            request.getfixturevalue("_doctest_sandbox").set_parse_delay(0.0)
        for name in added:
            doctest_namespace.pop(name, None)
        client = added.get("client")
        if client is not None:
            client.close()


def _fresh_ragflow(request: pytest.FixtureRequest) -> dict[str, Any]:
    from ragflow_dagster.client import RAGFlowClient, UploadFile
    from ragflow_dagster.resource import RAGFlowResource

    sandbox = request.getfixturevalue("_doctest_sandbox")
    client = RAGFlowClient(sandbox.base_url, sandbox.api_key)
    old = [d.id for d in client.iter_datasets()]
    if old:
        client.delete_datasets(old)
    ds = client.create_dataset("manuals")
    uploaded = client.upload_documents(
        ds.id, [UploadFile("a.txt", io.BytesIO(A_TEXT)), UploadFile("b.txt", io.BytesIO(B_TEXT))]
    )
    ids = [d.id for d in uploaded]
    client.parse_documents(ds.id, ids)
    deadline = time.monotonic() + 30
    while True:
        found = client.documents_by_id(ds.id, ids)
        if all(d.run == "DONE" for d in found.values()) and len(found) == len(ids):
            break
        assert time.monotonic() < deadline, {d.name: d.run for d in found.values()}
        time.sleep(0.05)
    docs = [found[i] for i in ids]
    chunk = next(client.iter_chunks(ds.id, docs[0].id))
    return {
        "client": client,
        "base_url": sandbox.base_url,
        "api_key": sandbox.api_key,
        "ds": ds,
        "docs": docs,
        "doc": docs[0],
        "ids": ids,
        "chunk": chunk,
        "ragflow": RAGFlowResource(base_url=sandbox.base_url, api_key=sandbox.api_key),
        "tmp": str(request.getfixturevalue("tmp_path")),
    }


def _fresh_s3(request: pytest.FixtureRequest) -> dict[str, Any]:
    import boto3

    endpoint = request.getfixturevalue("_doctest_s3")
    monkeypatch = request.getfixturevalue("monkeypatch")
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    bucket = f"doctest-{time.monotonic_ns()}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a.txt", Body=A_TEXT)
    s3.put_object(Bucket=bucket, Key="b.txt", Body=B_TEXT)
    return {"bucket": bucket}
