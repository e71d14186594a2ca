"""Fault injection (start-up and run-time) and request limits."""

from __future__ import annotations

import time

import pytest
import requests

from ragflow_sandbox import SandboxServer

from .helpers import Api


@pytest.fixture
def faulty(ragflow_sandbox_factory) -> SandboxServer:
    return ragflow_sandbox_factory()


@pytest.mark.parametrize(
    ("kind", "status"), [("500", 500), ("502", 502), ("503", 503), ("429", 429)]
)
def test_error_kinds(faulty: SandboxServer, kind: str, status: int) -> None:
    api = Api(faulty)
    faulty.set_faults(rate=1.0, kinds=[kind])
    res = api.raw("GET", "/datasets")
    assert res.status_code == status
    if kind == "429":
        assert res.headers["Retry-After"] == "1"
    faulty.clear_faults()
    assert api.raw("GET", "/datasets").status_code == 200


def test_reset_before_does_nothing_reset_after_does_the_work(faulty: SandboxServer) -> None:
    api = Api(faulty)
    faulty.set_faults(rate=1.0, kinds=["reset_before"], methods=["POST"])
    with pytest.raises(requests.ConnectionError):
        api.raw("POST", "/datasets", json={"name": "before"})
    faulty.set_faults(rate=1.0, kinds=["reset_after"], methods=["POST"])
    with pytest.raises(requests.ConnectionError):
        api.raw("POST", "/datasets", json={"name": "after"})
    faulty.clear_faults()
    names = [d["name"] for d in api.get("/datasets")["data"]]
    assert names == [
        "after"
    ]  # the ambiguous case: the client saw an error, the server did the work


def test_latency_and_route_filter(faulty: SandboxServer) -> None:
    api = Api(faulty)
    faulty.set_faults(rate=1.0, kinds=["latency"], latency_ms=300, routes=r"/datasets$")
    start = time.monotonic()
    assert api.get("/datasets")["code"] == 0
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    assert api.post("/retrieval", json={})["code"] == 102  # path not matched: no delay
    assert time.monotonic() - start < 0.3
    config = faulty.faults()
    assert config["injected"] == {"latency": 1} and config["routes"] == "/datasets$"


def test_partial_rate_is_reproducible_with_a_seed(faulty: SandboxServer) -> None:
    api = Api(faulty)

    def pattern() -> list[int]:
        faulty.set_faults(rate=0.5, kinds=["503"], seed=42)
        return [api.raw("GET", "/datasets").status_code for _ in range(40)]

    first, second = pattern(), pattern()
    assert first == second and 503 in first and 200 in first
    faulty.clear_faults()


def test_fault_rate_at_start_and_control_route_is_never_faulted(ragflow_sandbox_factory) -> None:
    server = ragflow_sandbox_factory(fault_rate=1.0)
    api = Api(server)
    statuses = set()
    for _ in range(20):
        try:
            statuses.add(api.raw("GET", "/datasets").status_code)
        except requests.ConnectionError:
            statuses.add("reset")
    assert 200 not in statuses or len(statuses) > 1
    assert server.faults()["rate"] == 1.0  # /_sandbox/* is exempt
    server.clear_faults()
    assert api.raw("GET", "/datasets").status_code == 200


def test_fault_config_validation(faulty: SandboxServer) -> None:
    res = requests.put(
        f"{faulty.base_url}/_sandbox/faults",
        json={"rate": 2},
        headers={"Authorization": f"Bearer {faulty.api_key}"},
        timeout=10,
    )
    assert res.status_code == 400 and "rate" in res.json()["message"]
    with pytest.raises(ValueError, match="kinds"):
        faulty.set_faults(rate=0.1, kinds=["teapot"])


def test_body_limit_is_413(ragflow_sandbox_factory) -> None:
    server = ragflow_sandbox_factory(max_body_bytes=10_000)
    api = Api(server)
    kb = api.dataset()
    res = api.raw("POST", f"/datasets/{kb}/documents", files=[("file", ("big.txt", b"x" * 20_000))])
    assert res.status_code == 413
    small = api.raw(
        "POST", f"/datasets/{kb}/documents", files=[("file", ("small.txt", b"x" * 100))]
    )
    assert small.json()["code"] == 0


def test_parse_delay_can_change_at_run_time(faulty: SandboxServer) -> None:
    api = Api(faulty)
    assert faulty.set_parse_delay(5)["parse_delay"] == 5
    kb = api.dataset()
    doc = api.upload(kb, [("a.txt", b"x")])[0]
    api.parse(kb, [doc["id"]])
    time.sleep(0.2)
    assert api.doc(kb, doc["id"])["run"] == "RUNNING"
    faulty.set_parse_delay(0)
    api.parse(kb, [doc["id"]])  # re-queue: picked up at once now
    assert api.wait(kb, [doc["id"]])[doc["id"]]["run"] == "DONE"
