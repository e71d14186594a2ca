"""What every router shares: the application state, dataset ownership, RAGFlow's two ways of
reading a JSON body, and small helpers used by more than one resource."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import validation as V
from ..responses import ReprError, err

if TYPE_CHECKING:
    from ..app import SandboxApp, SandboxConfig
    from ..faults import Faults
    from ..retrieval import Retriever
    from ..store import Store
    from ..worker import ParseWorker

__all__ = [
    "Endpoint",
    "Handler",
    "Router",
    "check_duplicates",
    "clock",
    "merge_doc_parser_config",
    "query_list",
]

Handler = Callable[[Request], Awaitable[Response]]


class Endpoint(Protocol):
    """Wraps a handler with auth and RAGFlow's error envelope (``SandboxApp.endpoint``)."""

    def __call__(self, handler: Handler, *, auth: bool = True, offload: bool = True) -> Handler: ...


class Router:
    """Base of the per-resource routers: handlers reach the shared state through ``core``.

    Args:
        core: The application that owns the store, the parse worker and the fault switch.
    """

    def __init__(self, core: SandboxApp) -> None:
        self.core = core

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def config(self) -> SandboxConfig:
        return self.core.config

    @property
    def worker(self) -> ParseWorker:
        return self.core.worker

    @property
    def retriever(self) -> Retriever:
        return self.core.retriever

    @property
    def faults(self) -> Faults:
        return self.core.faults

    def routes(self, e: Endpoint) -> list[Route]:
        """This router's routes, each handler wrapped by ``e``."""
        raise NotImplementedError

    def fallback_routes(self, e: Endpoint) -> list[Route]:
        """Catch-all routes, mounted after the routes of every router (none by default)."""
        return []

    def _own_dataset(self, kb_id: str) -> dict[str, Any] | None:
        kb = self.store.get_dataset(kb_id)
        if kb is None or kb["status"] != "1" or kb["tenant_id"] != self.store.tenant_id:
            return None
        return kb

    async def _loose_json(self, request: Request) -> dict[str, Any]:
        """``get_request_json``: JSON object, form fallback, ``{}`` for an empty body."""
        body = await request.body()
        if not body:
            return {}
        content_type = (request.headers.get("content-type") or "").lower()
        if content_type.startswith("application/json"):
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise ReprError("<BadRequest '400: Bad Request'>") from None
            if isinstance(payload, dict):
                return payload
            if isinstance(payload, str):
                raise AttributeError("'str' object has no attribute 'get'")
            raise TypeError("JSON payload must be an object.")
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return {}

    async def _strict_json(self, request: Request) -> dict[str, Any]:
        return V.parse_json_object(await request.body(), request.headers.get("content-type"))

    def _no_permission(self, kb_id: str) -> Response:
        return err(f"User '{self.store.tenant_id}' lacks permission for dataset '{kb_id}'")


def merge_doc_parser_config(store: Store, doc_id: str, config: dict[str, Any]) -> None:
    """Deep-merge ``config`` into a document's parser config (``update_parser_config``);
    an emptied ``raptor`` section is dropped."""
    if not config:
        return
    row = store.get_document(doc_id)
    if row is None:
        return
    current = json.loads(row["parser_config"] or "{}")

    def dfs(old: dict[str, Any], new: dict[str, Any]) -> None:
        for key, value in new.items():
            if key in old and isinstance(value, dict) and isinstance(old[key], dict):
                dfs(old[key], value)
            else:
                old[key] = value

    dfs(current, config)
    if not config.get("raptor") and current.get("raptor"):
        del current["raptor"]
    store.update_document(doc_id, {"parser_config": current})


def clock() -> str:
    """The ``HH:MM:SS`` stamp RAGFlow puts in progress messages."""
    return datetime.now().strftime("%H:%M:%S")


def check_duplicates(ids: list[Any], kind: str) -> tuple[list[Any], list[str]]:
    """``check_duplicate_ids``: the unique ids and one message per duplicated id."""
    counts: dict[Any, int] = {}
    for value in ids:
        key = value if isinstance(value, (str, int, float)) else json.dumps(value)
        counts[key] = counts.get(key, 0) + 1
    messages = [f"Duplicate {kind} ids: {k}" for k, n in counts.items() if n > 1]
    return list(counts), messages


def query_list(request: Request, name: str) -> list[str]:
    """A repeated query parameter (``name`` or ``name[]``), blanks dropped."""
    values = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    return [str(v).strip() for v in values if v is not None and str(v).strip()]
