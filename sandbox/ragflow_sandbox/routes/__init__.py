"""The sandbox's HTTP routes, one router per resource.

Each router is a class over the shared :class:`~ragflow_sandbox.app.SandboxApp` with a
``routes(endpoint)`` method; the application mounts them in the order of :data:`ROUTERS`, which
matters where two patterns match one path (``PATCH /documents/metadatas`` before
``PATCH /documents/{document_id}``), and adds the ``DELETE /datasets/{id}/{index_type}``
catch-all last.
"""

from __future__ import annotations

from .auth import AuthRoutes
from .base import Router
from .chunks import ChunkRoutes
from .control import ControlRoutes
from .datasets import DatasetRoutes
from .documents import DocumentRoutes
from .metadata import MetadataRoutes
from .parsing import ParsingRoutes
from .retrieval import RetrievalRoutes
from .uploads import UploadRoutes

__all__ = [
    "ROUTERS",
    "AuthRoutes",
    "ChunkRoutes",
    "ControlRoutes",
    "DatasetRoutes",
    "DocumentRoutes",
    "MetadataRoutes",
    "ParsingRoutes",
    "RetrievalRoutes",
    "Router",
    "UploadRoutes",
]

ROUTERS: tuple[type[Router], ...] = (
    AuthRoutes,
    DatasetRoutes,
    MetadataRoutes,
    UploadRoutes,
    DocumentRoutes,
    ParsingRoutes,
    ChunkRoutes,
    RetrievalRoutes,
    ControlRoutes,
)
