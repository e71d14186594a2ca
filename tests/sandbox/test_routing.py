"""The routers are mounted in an order where each ambiguous path reaches the right handler."""

from __future__ import annotations

import tempfile

import pytest
from starlette.routing import Match

from ragflow_sandbox.app import SandboxApp, SandboxConfig

DS = "/api/v1/datasets/kb1"


@pytest.fixture(scope="module")
def app() -> SandboxApp:
    return SandboxApp(SandboxConfig(data_dir=tempfile.mkdtemp(), api_key="k"))


def _handler(app: SandboxApp, method: str, path: str) -> str | None:
    for route in app.starlette.routes:
        match, _ = route.matches({"type": "http", "path": path, "method": method})
        if match == Match.FULL:
            return route.endpoint.__name__
    return None


@pytest.mark.parametrize(
    ("method", "path", "handler"),
    [
        ("PATCH", f"{DS}/documents/metadatas", "metadata_update"),
        ("PATCH", f"{DS}/documents/doc1", "update_document"),
        ("POST", f"{DS}/documents", "upload_documents"),
        ("POST", f"{DS}/documents/parse", "parse_documents"),
        ("GET", f"{DS}/documents/parse", "download_document"),
        ("DELETE", f"{DS}/documents", "delete_documents"),
        ("DELETE", f"{DS}/chunks", "legacy_stop"),
        ("DELETE", f"{DS}/tags", "delete_tags"),
        ("DELETE", f"{DS}/graph", "delete_graph"),
        ("DELETE", f"{DS}/raptor", "delete_index"),
        ("POST", "/api/v1/datasets/search", "search_datasets"),
        ("GET", "/api/v1/datasets/metadata/flattened", "flattened_metadata"),
        ("GET", "/api/v1/documents/images/kb1-img", "get_image"),
        ("GET", "/api/v1/documents/doc1", "download_any_document"),
        ("PUT", "/_sandbox/faults", "put_faults"),
    ],
)
def test_ambiguous_paths_reach_the_right_handler(
    app: SandboxApp, method: str, path: str, handler: str
) -> None:
    assert _handler(app, method, path) == handler


def test_every_router_contributes_and_no_route_is_mounted_twice(app: SandboxApp) -> None:
    keys = [(r.path, tuple(sorted(r.methods or []))) for r in app.starlette.routes]
    assert len(keys) == len(set(keys)) == 65
    assert len(app.routers) == 9
