"""The runnable Dagster project: `dagster dev -w workspace.yaml` or `make dev`.

Configured from the environment (see ragflow_dagster/project.py): RAGFLOW_BASE_URL,
RAGFLOW_API_KEY, RAGFLOW_SOURCE (a folder or s3://bucket/prefix), RAGFLOW_DATASET. With no
RAGFLOW_BASE_URL it syncs the bundled sample documents into the local sandbox server.
"""

from ragflow_dagster.project import build_project

project = build_project()
defs = project.defs
