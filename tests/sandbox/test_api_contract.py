"""Envelope, auth and routing rules shared by every route."""

from __future__ import annotations

import requests

from .helpers import Api

UNAUTHORIZED = {"code": 401, "message": "<Unauthorized '401: Unauthorized'>", "data": None}


def test_missing_and_wrong_key_get_401(api: Api) -> None:
    url = f"{api.base}/datasets"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json() == UNAUTHORIZED
    empty_bearer = requests.get(url, headers={"Authorization": "Bearer "}, timeout=10)
    assert empty_bearer.status_code == 401


def test_every_api_route_requires_the_key(api: Api) -> None:
    routes = [
        ("POST", "/datasets"),
        ("GET", "/datasets/x"),
        ("PUT", "/datasets/x"),
        ("DELETE", "/datasets"),
        ("POST", "/datasets/x/documents"),
        ("GET", "/datasets/x/documents"),
        ("PATCH", "/datasets/x/documents/y"),
        ("PUT", "/datasets/x/documents/y"),
        ("POST", "/datasets/x/documents/parse"),
        ("POST", "/datasets/x/chunks"),
        ("DELETE", "/datasets/x/chunks"),
        ("GET", "/datasets/x/documents/y/chunks"),
        ("POST", "/retrieval"),
        ("GET", "/datasets/x/metadata/summary"),
        ("GET", "/_sandbox/faults"),
    ]
    for method, path in routes:
        base = api.server.base_url if path.startswith("/_") else api.base
        res = requests.request(method, base + path, timeout=10)
        assert res.status_code == 401, (method, path, res.text)


def test_raw_token_without_bearer_is_accepted(api: Api) -> None:
    res = requests.get(
        f"{api.base}/datasets", headers={"Authorization": api.server.api_key}, timeout=10
    )
    assert res.status_code == 200
    assert res.json()["code"] == 0


def test_unknown_route_is_404_with_ragflow_body(api: Api) -> None:
    res = api.raw("GET", "/nope")
    assert res.status_code == 404
    assert res.json() == {
        "code": 404,
        "message": "Not Found: /api/v1/nope",
        "data": None,
        "error": "Not Found",
    }


def test_trailing_slash_is_tolerated(api: Api) -> None:
    res = api.raw("GET", "/datasets/")
    assert res.status_code == 200
    assert res.json()["code"] == 0


def test_success_envelope_has_no_message_and_total_datasets(api: Api, kb: str) -> None:
    res = api.get("/datasets", params={"id": kb})
    assert set(res) == {"code", "data", "total_datasets"}
    assert res["total_datasets"] == 1


def test_list_documents_uses_json_result_envelope(api: Api, kb: str) -> None:
    res = api.get(f"/datasets/{kb}/documents")
    assert res == {"code": 0, "message": "success", "data": {"total": 0, "docs": []}}


def test_non_json_body_is_rejected_with_101(api: Api) -> None:
    res = api.post("/datasets", data="name=x", headers={"Content-Type": "text/plain"})
    assert res == {
        "code": 101,
        "message": "Unsupported content type: Expected application/json, got text/plain",
    }
    bad = api.post("/datasets", data="{", headers={"Content-Type": "application/json"})
    assert bad["message"] == "Malformed JSON syntax: Missing commas/brackets or invalid encoding"
    not_object = api.post("/datasets", data='"a"', headers={"Content-Type": "application/json"})
    assert not_object["message"] == "Invalid request payload: expected object, got str"


def test_bootstrap_register_login_token(api: Api) -> None:
    base = api.base
    reg = requests.post(
        f"{base}/users",
        json={"email": "qa@example.org", "nickname": "qa", "password": "p"},
        timeout=10,
    )
    assert reg.json()["code"] == 0
    again = requests.post(
        f"{base}/users",
        json={"email": "qa@example.org", "nickname": "qa", "password": "p"},
        timeout=10,
    )
    assert "has already registered" in again.json()["message"]
    login = requests.post(
        f"{base}/auth/login", json={"email": "qa@example.org", "password": "p"}, timeout=10
    )
    assert login.json()["code"] == 0
    jwt = login.headers["Authorization"]
    token = requests.post(
        f"{base}/system/tokens", headers={"Authorization": jwt}, timeout=10
    ).json()
    assert token["code"] == 0 and token["data"]["token"].startswith("ragflow-")
    other = Api(api.server, key=token["data"]["token"])
    assert other.get("/datasets")["code"] == 0
