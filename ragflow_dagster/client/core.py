"""`RAGFlowClient`: a plain, Dagster-free client for RAGFlow's HTTP API (v0.13 through v0.27).

Design notes (what the client promises, and why):

* **One pooled session.** Every call goes through one ``requests.Session`` with a connection pool
  of ``pool_size``; the client is safe to share between threads.
* **Errors.** A reply is an error when its HTTP status is not 2xx *or* its JSON ``code`` is not 0.
  Both raise a :class:`~ragflow_dagster.client.errors.RAGFlowError` subclass.
* **Retries** (tenacity; exponential backoff with jitter, ``Retry-After`` honoured) happen only on
  connection errors, timeouts, HTTP 429 and HTTP 5xx; never on 4xx or business errors.
  Idempotent calls (reads, updates, deletes, parse/stop, retrieval) are retried on all of them.
  Non-idempotent calls (uploads, dataset and chunk creation, GraphRAG/RAPTOR runs) are retried
  only when the server certainly did not act: the connection failed before the whole body was
  sent, or the server answered 429 or 503.
* **Ambiguous uploads.** An upload that fails after its whole body was sent (read timeout,
  connection reset, HTTP 500/502/504) may or may not have been stored. The client does **not**
  send it again and does not guess by listing: it raises
  :class:`~ragflow_dagster.client.errors.RAGFlowUploadAmbiguousError` naming the files, and the
  caller reconciles on its next listing (the sync engine adopts what landed, re-uploads the rest).
  An ambiguous ``create_dataset`` is resolved by looking the name up.
* **Version differences** are handled by always using the form every version accepts: plural
  ``/datasets`` routes, ``chunk_method``, the repeated ``file`` multipart field, the legacy
  ``POST|DELETE /datasets/{id}/chunks`` for parse/stop, PATCH-then-PUT for updates, list-by-id
  instead of ``GET /datasets/{id}``, explicit id lists (never ``ids: null``) for deletes.
* **The API key** lives in one private object whose ``repr`` is ``***``; it is added to each
  request by an auth hook and scrubbed from every error message.
* **Layout.** ``RAGFlowClient`` is composed of one class per job, each built on
  :class:`~ragflow_dagster.client.transport.Transport` (session, auth, retries, the reply
  envelope): :class:`~ragflow_dagster.client.paging.Paging` (the paging loop, dataset and
  document listings), :class:`~ragflow_dagster.client.datasets.Datasets`,
  :class:`~ragflow_dagster.client.documents.Documents` (upload, download, update, delete),
  :class:`~ragflow_dagster.client.parsing.Parsing` (parse/stop, GraphRAG, RAPTOR) and
  :class:`~ragflow_dagster.client.chunks.Chunks` (chunks, retrieval, metadata).
"""

from __future__ import annotations

from typing import Any

from ragflow_dagster.client.chunks import Chunks
from ragflow_dagster.client.datasets import Datasets
from ragflow_dagster.client.documents import Documents
from ragflow_dagster.client.parsing import Parsing
from ragflow_dagster.client.transport import MAX_IDS_PER_CALL, MAX_PAGE_SIZE

__all__ = ["MAX_IDS_PER_CALL", "MAX_PAGE_SIZE", "RAGFlowClient"]


class RAGFlowClient(Datasets, Documents, Parsing, Chunks):
    """Client for a RAGFlow server's HTTP API (datasets, documents, chunks, retrieval, ...).

    Args:
        base_url: The server's address, e.g. ``http://ragflow:9380`` (a trailing ``/api/v1`` is
            accepted and ignored).
        api_key: A RAGFlow API key (``ragflow-...``). Never logged or shown.
        timeout: Seconds to wait for a connection and for each read of a reply.
        max_retries: Retries after the first attempt for retryable failures (0 disables).
        backoff: First retry delay in seconds; doubles each retry, with jitter.
        max_backoff: Ceiling of the computed delay (a server's ``Retry-After`` wins if larger,
            up to ``max_retry_after``).
        pool_size: Connections kept open to the server (use >= the threads sharing the client).
        user_agent: ``User-Agent`` header.
        max_request_bytes: Target maximum body size of one upload request; files are batched
            under it (a single larger file still travels alone).
        max_files_per_request: Maximum files in one upload request.
        upload_timeout: Read timeout for upload requests (the server stores files before it
            answers).
        max_retry_after: A ``Retry-After`` longer than this is not waited for; the error is
            raised with its ``retry_after`` so the caller can schedule.
        verify: TLS verification (``False`` or a CA bundle path for self-signed servers).

    Example:
        >>> from ragflow_dagster.client import RAGFlowClient, UploadFile
        >>> with RAGFlowClient("http://localhost:9380", "ragflow-...") as client:  # doctest: +SKIP
        ...     ds = client.find_dataset("manuals") or client.create_dataset("manuals")
        ...     docs = client.upload_documents(ds.id, [UploadFile("a.pdf", "/data/a.pdf")])
        ...     client.parse_documents(ds.id, [d.id for d in docs])
        ...     for doc in client.iter_documents(ds.id, run=["RUNNING", "UNSTART"]):
        ...         print(doc.name, doc.progress)
    """

    def __enter__(self) -> RAGFlowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RAGFlowClient(base_url={self.base_url!r}, api_key=***)"

    def __getstate__(self) -> Any:
        raise TypeError("RAGFlowClient cannot be pickled (it holds a session and a secret)")
