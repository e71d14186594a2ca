"""A plain, Dagster-free client for RAGFlow's HTTP API (servers v0.13 through v0.27).

Example (``base_url`` and ``api_key`` as ``"http://localhost:9380"``, ``"ragflow-..."``):
    >>> import io
    >>> from ragflow_dagster.client import RAGFlowClient, UploadFile
    >>> with RAGFlowClient(base_url, api_key) as client:
    ...     ds = client.find_dataset("handbook") or client.create_dataset("handbook")
    ...     docs = client.upload_documents(ds.id, [UploadFile("c.txt", io.BytesIO(b"hello"))])
    ...     client.parse_documents(ds.id, [d.id for d in docs])
    >>> [d.name for d in docs]
    ['c.txt']
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
