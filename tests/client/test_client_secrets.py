"""The API key never shows: not in logs (any logger, DEBUG), repr, exceptions or pickles."""

from __future__ import annotations

import io
import logging
import pickle
import traceback
import uuid

import pytest

from ragflow_dagster.client import RAGFlowClient, RAGFlowError, UploadFile

from .conftest import make_client


@pytest.fixture
def all_logs():
    """Every record of every logger at DEBUG (requests, urllib3, the client...)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler = Keep(level=logging.DEBUG)
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    levels = {}
    for name in ("ragflow_dagster.client", "urllib3", "requests"):
        levels[name] = logging.getLogger(name).level
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _text(records: list[logging.LogRecord]) -> str:
    out = []
    for r in records:
        out.append(r.getMessage())
        if r.exc_info:
            out.append("".join(traceback.format_exception(*r.exc_info)))
    return "\n".join(out)


def test_key_is_absent_from_logs_errors_and_reprs(sandbox, all_logs):
    key = sandbox.api_key
    wrong = f"ragflow-{uuid.uuid4().hex}"
    errors: list[BaseException] = []
    sandbox.set_faults(rate=0.5, kinds=["503", "429", "reset_before"], seed=3)
    with make_client(sandbox, max_retries=10) as client:
        ds = client.create_dataset(f"secrets-{uuid.uuid4().hex[:8]}")
        client.upload_documents(ds.id, [UploadFile("s.txt", io.BytesIO(b"secret-free"))])
        list(client.iter_documents(ds.id))
        sandbox.clear_faults()
        for call in (
            lambda: client.get_dataset(uuid.uuid4().hex),
            lambda: client._request("GET", "/nope"),
        ):
            with pytest.raises(RAGFlowError) as info:
                call()
            errors.append(info.value)
        client.delete_datasets([ds.id])
        shown = [repr(client), str(client), repr(client.__dict__), repr(vars(client._session))]
        with pytest.raises(TypeError):
            pickle.dumps(client)
    with RAGFlowClient(sandbox.base_url, wrong, max_retries=0) as bad:
        with pytest.raises(RAGFlowError) as info:
            bad.ping()
        errors.append(info.value)
        shown.append(repr(bad))
    with RAGFlowClient("http://127.0.0.1:9", key, max_retries=0, timeout=1) as dead:
        with pytest.raises(RAGFlowError) as info:
            dead.ping()
        errors.append(info.value)
    assert all_logs, "the test should have captured some log records"
    for text in (
        _text(all_logs),
        *shown,
        *(str(e) for e in errors),
        *(repr(e) for e in errors),
        *("".join(traceback.format_exception(e)) for e in errors),
        *(repr(pickle.loads(pickle.dumps(e)).__dict__) for e in errors),
    ):
        assert key not in text
        assert wrong not in text
