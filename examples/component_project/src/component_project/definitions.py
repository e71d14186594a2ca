"""Loads every component under ``defs/`` (each ``defs.yaml`` is one ingestion).

Like the root project, it falls back to the embedded RAGFlow sandbox when ``RAGFLOW_BASE_URL``
is not set: the sandbox is started (or reused) and its address and key are exported as
``RAGFLOW_BASE_URL`` / ``RAGFLOW_API_KEY``, which the components' resources read inside each run.
Its data lives in ``$DAGSTER_HOME/ragflow-sandbox`` (or ``./.sandbox``).
"""

import os
from pathlib import Path

import dagster as dg

from ragflow_dagster.project import server_from_env


def _server_env() -> None:
    if os.environ.get("RAGFLOW_BASE_URL", "").strip():
        return  # a real server: nothing to do (server_from_env checks that the key is set too)
    info = server_from_env()  # starts or reuses the sandbox, and says so loudly
    os.environ["RAGFLOW_BASE_URL"] = info.base_url
    os.environ["RAGFLOW_API_KEY"] = info.api_key


@dg.definitions
def defs() -> dg.Definitions:
    _server_env()
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
