"""The Dagster Component: ``type: ragflow_dagster.RAGFlowIngestionComponent`` in a defs.yaml.

Example:
    >>> from ragflow_dagster.components import RAGFlowIngestionComponent
    >>> RAGFlowIngestionComponent(source="s3://acme/handbook", dataset="handbook").source
    's3://acme/handbook'
"""

from ragflow_dagster.components.ingestion import RAGFlowIngestionComponent
from ragflow_dagster.components.models import parse_duration
from ragflow_dagster.components.scaffolder import RAGFlowIngestionScaffolder, ScaffoldParams

__all__ = [
    "RAGFlowIngestionComponent",
    "RAGFlowIngestionScaffolder",
    "ScaffoldParams",
    "parse_duration",
]
