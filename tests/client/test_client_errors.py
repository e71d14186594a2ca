"""Error mapping from replies (HTTP status and business code) and secret redaction."""

from __future__ import annotations

import pickle

import pytest

from ragflow_dagster.client import (
    RAGFlowAuthError,
    RAGFlowConflictError,
    RAGFlowError,
    RAGFlowNotFoundError,
    RAGFlowPayloadTooLargeError,
    RAGFlowRateLimitedError,
    RAGFlowUnavailableError,
)
from ragflow_dagster.client.errors import error_from_reply, parse_retry_after, redact


def _map(status, body, headers=None, text=None):
    return error_from_reply(
        http_status=status,
        body=body,
        method="GET",
        route="/api/v1/datasets",
        headers=headers,
        secrets=["ragflow-SECRETKEY"],
        text=text,
    )


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (401, {"code": 401, "message": "<Unauthorized '401: Unauthorized'>"}, RAGFlowAuthError),
        (
            200,
            {"code": 109, "message": "Authentication error: API key is invalid!"},
            RAGFlowAuthError,
        ),
        (
            200,
            {"code": 0, "data": False, "message": "`Authorization` can't be empty"},
            RAGFlowAuthError,
        ),
        (
            404,
            {"code": 404, "error": "Not Found", "message": "Not Found: /api/v1/x"},
            RAGFlowNotFoundError,
        ),
        (200, {"code": 102, "message": "You don't own the dataset abc. "}, RAGFlowNotFoundError),
        (
            200,
            {"code": 102, "message": "User 't' lacks permission for dataset 'x'"},
            RAGFlowNotFoundError,
        ),
        (
            200,
            {"code": 108, "message": "User 't' lacks permission for datasets: 'x'"},
            RAGFlowNotFoundError,
        ),
        (200, {"code": 102, "message": "Documents not found: ['x']"}, RAGFlowNotFoundError),
        (200, {"code": 101, "message": "Dataset name 'a' already exists"}, RAGFlowConflictError),
        (
            200,
            {"code": 102, "message": "Can't parse document that is currently being processed"},
            RAGFlowConflictError,
        ),
        (200, {"code": 409, "message": "Duplicated folder name"}, RAGFlowConflictError),
        (413, None, RAGFlowPayloadTooLargeError),
        (429, {"code": 429, "message": "slow down"}, RAGFlowRateLimitedError),
        (503, None, RAGFlowUnavailableError),
        (502, None, RAGFlowUnavailableError),
        (500, {"code": 100, "message": "boom"}, RAGFlowUnavailableError),
        (
            200,
            {"code": 100, "message": "ValueError('page_size must be less than or equal to 100')"},
            RAGFlowError,
        ),
        (400, {"code": 400, "message": "bad"}, RAGFlowError),
        (
            200,
            {"code": 500, "message": "x.exe: This type of file has not been supported yet!"},
            RAGFlowError,
        ),
    ],
)
def test_reply_maps_to_the_right_error(status, body, cls):
    err = _map(status, body)
    assert type(err) is cls
    assert err.http_status == status and err.method == "GET" and err.route == "/api/v1/datasets"
    if body and "code" in body:
        assert err.code == body["code"]


def test_successes_are_not_errors():
    assert _map(200, {"code": 0}) is None
    assert _map(200, {"code": 0, "data": {"docs": []}, "message": "success"}) is None
    assert _map(200, {"code": 0, "data": False, "message": "ok"}) is None


def test_body_without_code_or_not_json_is_an_error():
    assert type(_map(200, {"data": 1})) is RAGFlowError
    err = _map(502, None, text="<html>Bad Gateway</html>")
    assert isinstance(err, RAGFlowUnavailableError) and "Bad Gateway" in err.message


def test_retry_after_is_read_from_headers():
    err = _map(429, None, headers={"Retry-After": "2"})
    assert isinstance(err, RAGFlowRateLimitedError) and err.retry_after == 2.0
    err = _map(503, None, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert err.retry_after == 0.0  # a date in the past: no wait
    assert parse_retry_after("soon") is None


def test_messages_are_redacted_and_errors_pickle():
    err = _map(200, {"code": 102, "message": "key ragflow-SECRETKEY bad; Bearer abc.def"})
    assert "SECRETKEY" not in str(err) and "abc.def" not in str(err) and "***" in str(err)
    assert "SECRETKEY" not in repr(err)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and again.code == 102 and again.message == err.message
    assert redact("no secrets here", ["ragflow-SECRETKEY"]) == "no secrets here"


def test_str_names_code_status_and_route():
    err = RAGFlowError("boom", code=102, http_status=200, method="DELETE", route="/api/v1/x")
    assert str(err) == "boom [code=102, HTTP 200, DELETE /api/v1/x]"
    assert str(RAGFlowError("plain")) == "plain"
