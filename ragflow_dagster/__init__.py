"""ragflow-dagster: keep RAGFlow datasets in sync with folders and S3 buckets, with Dagster.

The engine (client, sources, sync) imports nothing from Dagster; the Dagster layer (resource,
assets, checks, sensors, Component) is loaded on first use, so ``from ragflow_dagster import
RAGFlowClient`` stays cheap for the CLI and library users.

Example (``base_url`` and ``api_key`` as ``"http://127.0.0.1:9380"``, ``"ragflow-..."``; ``tmp``
a folder holding ``a.txt``):
    >>> from ragflow_dagster import RAGFlowClient, LocalFolderSource, sync_source
    >>> with open(f"{tmp}/a.txt", "w") as f:
    ...     _ = f.write("hello")
    >>> with RAGFlowClient(base_url, api_key) as client:
    ...     ds = client.create_dataset("handbook")
    ...     report = sync_source(client, LocalFolderSource(tmp), ds.id)
    >>> report.converged, report.counts["uploaded"], report.counts["parsed"]
    (True, 1, 1)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # client (Dagster-free)
    "RAGFlowClient": "ragflow_dagster.client",
    "UploadFile": "ragflow_dagster.client",
    "Dataset": "ragflow_dagster.client",
    "Document": "ragflow_dagster.client",
    "Chunk": "ragflow_dagster.client",
    "RetrievalResult": "ragflow_dagster.client",
    "DocAggregate": "ragflow_dagster.client",
    "IndexTask": "ragflow_dagster.client",
    "DatasetDrift": "ragflow_dagster.client",
    "EnsuredDataset": "ragflow_dagster.client",
    "ensure_dataset": "ragflow_dagster.client",
    "RAGFlowError": "ragflow_dagster.client",
    "RAGFlowAuthError": "ragflow_dagster.client",
    "RAGFlowNotFoundError": "ragflow_dagster.client",
    "RAGFlowConflictError": "ragflow_dagster.client",
    "RAGFlowRateLimitedError": "ragflow_dagster.client",
    "RAGFlowUnavailableError": "ragflow_dagster.client",
    "RAGFlowPayloadTooLargeError": "ragflow_dagster.client",
    "RAGFlowPartialUploadError": "ragflow_dagster.client",
    "RAGFlowOutcomeUnknownError": "ragflow_dagster.client",
    "RAGFlowUploadAmbiguousError": "ragflow_dagster.client",
    # sources (Dagster-free)
    "Source": "ragflow_dagster.sources",
    "SourceEntry": "ragflow_dagster.sources",
    "SkippedEntry": "ragflow_dagster.sources",
    "SourceError": "ragflow_dagster.sources",
    "LocalFolderSource": "ragflow_dagster.sources",
    "S3Source": "ragflow_dagster.sources",
    "FileFilters": "ragflow_dagster.sources",
    "Inventory": "ragflow_dagster.sources",
    "KnownFile": "ragflow_dagster.sources",
    "HashingReader": "ragflow_dagster.sources",
    "build_inventory": "ragflow_dagster.sources",
    "source_from_uri": "ragflow_dagster.sources",
    # sync engine (Dagster-free)
    "SyncOptions": "ragflow_dagster.sync.engine",
    "sync_source": "ragflow_dagster.sync.engine",
    "sync_routed": "ragflow_dagster.sync.routed",
    "RoutedSyncReport": "ragflow_dagster.sync.routed",
    "Route": "ragflow_dagster.sync.routing",
    "RouteTable": "ragflow_dagster.sync.routing",
    "SyncReport": "ragflow_dagster.sync.report",
    "Plan": "ragflow_dagster.sync.plan",
    "PlanOptions": "ragflow_dagster.sync.plan",
    "plan_sync": "ragflow_dagster.sync.plan",
    "MANAGED_BY": "ragflow_dagster.sync.identity",
    "META_KEYS": "ragflow_dagster.sync.identity",
    "MetadataSpec": "ragflow_dagster.sync.metadata",
    "MetadataError": "ragflow_dagster.sync.metadata",
    "SourceFile": "ragflow_dagster.sync.metadata",
    "load_spec": "ragflow_dagster.sync.metadata",
    "ParseRule": "ragflow_dagster.sync.rules",
    "ParseRules": "ragflow_dagster.sync.rules",
    "load_rules": "ragflow_dagster.sync.rules",
    "RetrievalProbe": "ragflow_dagster.checks",
    # Dagster layer
    "RAGFlowResource": "ragflow_dagster.resource",
    "DatasetConfig": "ragflow_dagster.translator",
    "RAGFlowTarget": "ragflow_dagster.translator",
    "DagsterRAGFlowTranslator": "ragflow_dagster.translator",
    "RAGFlowAssetProps": "ragflow_dagster.translator",
    "ragflow_ingestion_assets": "ragflow_dagster.asset_decorator",
    "RAGFlowIngestion": "ragflow_dagster.assets",
    "build_ragflow_ingestion": "ragflow_dagster.assets",
    "build_ragflow_routed_ingestion": "ragflow_dagster.routed_assets",
    "ragflow_routed_ingestion_assets": "ragflow_dagster.routed_assets",
    "RAGFlowRoutedIngestion": "ragflow_dagster.routed_assets",
    "RAGFlowRoutedTarget": "ragflow_dagster.routed_assets",
    "Partitioning": "ragflow_dagster.partitions",
    "build_ragflow_sensor": "ragflow_dagster.sensors",
    "build_ragflow_reconcile_schedule": "ragflow_dagster.sensors",
    "ensure_pool_limit": "ragflow_dagster.sensors",
    "RAGFlowIngestionComponent": "ragflow_dagster.components",
}

__all__ = [
    "MANAGED_BY",
    "META_KEYS",
    "Chunk",
    "DagsterRAGFlowTranslator",
    "Dataset",
    "DatasetConfig",
    "DatasetDrift",
    "DocAggregate",
    "Document",
    "EnsuredDataset",
    "FileFilters",
    "HashingReader",
    "IndexTask",
    "Inventory",
    "KnownFile",
    "LocalFolderSource",
    "MetadataError",
    "MetadataSpec",
    "ParseRule",
    "ParseRules",
    "Partitioning",
    "Plan",
    "PlanOptions",
    "RAGFlowAssetProps",
    "RAGFlowAuthError",
    "RAGFlowClient",
    "RAGFlowConflictError",
    "RAGFlowError",
    "RAGFlowIngestion",
    "RAGFlowIngestionComponent",
    "RAGFlowNotFoundError",
    "RAGFlowOutcomeUnknownError",
    "RAGFlowPartialUploadError",
    "RAGFlowPayloadTooLargeError",
    "RAGFlowRateLimitedError",
    "RAGFlowResource",
    "RAGFlowRoutedIngestion",
    "RAGFlowRoutedTarget",
    "RAGFlowTarget",
    "RAGFlowUnavailableError",
    "RAGFlowUploadAmbiguousError",
    "RetrievalProbe",
    "RetrievalResult",
    "Route",
    "RouteTable",
    "RoutedSyncReport",
    "S3Source",
    "SkippedEntry",
    "Source",
    "SourceEntry",
    "SourceError",
    "SourceFile",
    "SyncOptions",
    "SyncReport",
    "UploadFile",
    "__version__",
    "build_inventory",
    "build_ragflow_ingestion",
    "build_ragflow_reconcile_schedule",
    "build_ragflow_routed_ingestion",
    "build_ragflow_sensor",
    "ensure_dataset",
    "ensure_pool_limit",
    "load_rules",
    "load_spec",
    "plan_sync",
    "ragflow_ingestion_assets",
    "ragflow_routed_ingestion_assets",
    "source_from_uri",
    "sync_routed",
    "sync_source",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragflow_dagster' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
