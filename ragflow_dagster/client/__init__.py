"""A plain, Dagster-free client for RAGFlow's HTTP API (servers v0.13 through v0.27).

Example:
    >>> from ragflow_dagster.client import RAGFlowClient, UploadFile
    >>> with RAGFlowClient("http://localhost:9380", "ragflow-...") as client:  # doctest: +SKIP
    ...     ds = client.find_dataset("manuals") or client.create_dataset("manuals")
    ...     docs = client.upload_documents(ds.id, [UploadFile("a.pdf", "/data/a.pdf")])
    ...     client.parse_documents(ds.id, [d.id for d in docs])
"""

from ragflow_dagster.client.core import MAX_IDS_PER_CALL, MAX_PAGE_SIZE, RAGFlowClient
from ragflow_dagster.client.ensure import (
    DatasetDrift,
    EnsuredDataset,
    dataset_drift,
    ensure_dataset,
)
from ragflow_dagster.client.errors import (
    RAGFlowAuthError,
    RAGFlowConflictError,
    RAGFlowError,
    RAGFlowIncompleteListingError,
    RAGFlowNotFoundError,
    RAGFlowOutcomeUnknownError,
    RAGFlowPartialUploadError,
    RAGFlowPayloadTooLargeError,
    RAGFlowRateLimitedError,
    RAGFlowUnavailableError,
    RAGFlowUploadAmbiguousError,
)
from ragflow_dagster.client.models import (
    RUN_STATES,
    Chunk,
    Dataset,
    DocAggregate,
    Document,
    IndexTask,
    RetrievalResult,
    normalize_run,
)
from ragflow_dagster.client.upload import MultipartBody, UploadFile

__all__ = [
    "MAX_IDS_PER_CALL",
    "MAX_PAGE_SIZE",
    "RUN_STATES",
    "Chunk",
    "Dataset",
    "DatasetDrift",
    "DocAggregate",
    "Document",
    "EnsuredDataset",
    "IndexTask",
    "MultipartBody",
    "RAGFlowAuthError",
    "RAGFlowClient",
    "RAGFlowConflictError",
    "RAGFlowError",
    "RAGFlowIncompleteListingError",
    "RAGFlowNotFoundError",
    "RAGFlowOutcomeUnknownError",
    "RAGFlowPartialUploadError",
    "RAGFlowPayloadTooLargeError",
    "RAGFlowRateLimitedError",
    "RAGFlowUnavailableError",
    "RAGFlowUploadAmbiguousError",
    "RetrievalResult",
    "UploadFile",
    "dataset_drift",
    "ensure_dataset",
    "normalize_run",
]
