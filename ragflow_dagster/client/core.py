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
"""

from __future__ import annotations

import contextlib
import json as _json
import logging
import os
import random
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO
from urllib.parse import urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter

from ragflow_dagster.client.errors import (
    RAGFlowError,
    RAGFlowIncompleteListingError,
    RAGFlowNotFoundError,
    RAGFlowOutcomeUnknownError,
    RAGFlowPartialUploadError,
    RAGFlowRateLimitedError,
    RAGFlowUnavailableError,
    RAGFlowUploadAmbiguousError,
    error_from_reply,
    redact,
)
from ragflow_dagster.client.models import (
    Chunk,
    Dataset,
    Document,
    IndexTask,
    RetrievalResult,
)
from ragflow_dagster.client.upload import (
    MultipartBody,
    UploadFile,
    UploadSourceError,
    plan_batches,
)

__all__ = ["RAGFlowClient"]

logger = logging.getLogger("ragflow_dagster.client")

MiB = 1024 * 1024
API_PREFIX = "/api/v1"
MAX_PAGE_SIZE = 100
"""Largest ``page_size`` today's server accepts (v0.26+); older servers accept it too."""
MAX_IDS_PER_CALL = 100
"""Largest id list today's server accepts in one call (v0.27)."""

_PAGE_ATTEMPTS = 3
"""How often a page that does not prove itself complete is fetched before giving up."""
_PAGE_SIZE_LIMIT = re.compile(r"page_size must be less than or equal to (\d+)")


def _default_user_agent() -> str:
    try:
        from importlib.metadata import version

        v = version("ragflow-dagster")
    except Exception:  # pragma: no cover - not installed
        v = "0"
    return f"ragflow-dagster/{v} (+requests/{requests.__version__})"


class _Secret:
    """Holds the API key; prints as ``***`` everywhere."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never pickle the key along with a client
        raise TypeError("the API key cannot be pickled")


class _BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <key>`` to each request (the session headers never hold it)."""

    def __init__(self, secret: _Secret) -> None:
        self._secret = secret

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._secret.reveal()}"
        return r

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


@dataclass
class _Reply:
    body: dict[str, Any]
    status: int
    attempts: int
    response: requests.Response

    @property
    def data(self) -> Any:
        return self.body.get("data")


class _TransportError(RAGFlowUnavailableError):
    """A request that got no HTTP reply (connection error, timeout). Internal detail: ``sent``."""

    def __init__(self, message: str, *, sent: bool, retryable: bool = True, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.sent = sent
        self.retryable = retryable


def _is_connect_phase(exc: requests.RequestException) -> bool:
    """Whether the request failed before anything was sent (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        import urllib3.exceptions as u3

        reason: Any = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        return isinstance(reason, (u3.NewConnectionError, u3.ConnectTimeoutError))
    return False


def _checked_base_url(base_url: object) -> str:
    """``base_url`` without a trailing ``/`` or ``/api/v1``; a clear ``ValueError`` if unusable."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url is required, e.g. http://127.0.0.1:9380")
    url = base_url.strip()
    if "://" not in url:
        url = url.rstrip("/")
        raise ValueError(f"base_url {url!r} has no scheme: use e.g. http://{url}")
    url = url.rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)].rstrip("/")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"base_url {url!r}: the scheme must be http or https")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"base_url {url!r}: the port is not a number") from None
    if not parts.hostname:
        raise ValueError(f"base_url {url!r} has no host, e.g. http://127.0.0.1:9380")
    return url


def _checked_api_key(api_key: object) -> str:
    """The key without surrounding whitespace (a secret file's trailing newline); never shown."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("api_key is required (an empty key was given)")
    key = api_key.strip()
    if any(c.isspace() or not c.isprintable() or ord(c) > 126 for c in key):
        raise ValueError(
            "api_key contains spaces, control or non-ASCII characters (the key is not shown); "
            "check where it comes from"
        )
    return key


_NAME_NOT_FOUND = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


def _transport_failure(exc: requests.RequestException, timeout: float) -> tuple[str, bool]:
    """A one-line description of a request that got no reply, and whether retrying can help.

    An unknown host name is permanent (retrying does not make it resolve); a refused connection,
    a reset or a timeout may pass (a server restarting, a busy server).
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connect timed out after {timeout:g}s", True
    if isinstance(exc, requests.Timeout):
        return f"read timed out after {timeout:g}s", True
    import urllib3.exceptions as u3

    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    if isinstance(reason, u3.NameResolutionError):
        cause = reason.__cause__
        permanent = isinstance(cause, socket.gaierror) and cause.errno in _NAME_NOT_FOUND
        what = "unknown host" if permanent else "host name lookup failed"
        return f"{what} {reason.conn.host!r}" if reason.conn else what, not permanent
    if isinstance(reason, u3.NewConnectionError):
        cause = reason.__cause__ or reason.__context__
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens on that port)", True
        return f"cannot connect: {cause or reason}".splitlines()[0][:200], True
    text = str(reason or exc).splitlines()[0] if str(reason or exc) else type(exc).__name__
    return f"connection failed: {text[:200]}", True


def _qbool(value: bool) -> str:
    return "true" if value else "false"


def _query(params: Mapping[str, Any]) -> dict[str, Any]:
    """Encode query parameters the way the server reads them (lists repeat, dicts as JSON)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = _qbool(value)
        elif isinstance(value, Mapping):
            out[key] = _json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[key] = [_qbool(v) if isinstance(v, bool) else str(v) for v in value]
        else:
            out[key] = value
    return out


def _id_list(ids: Iterable[str] | str, what: str) -> list[str]:
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of ids, not a single string")
    out: list[str] = []
    seen: set[str] = set()
    for i in ids:
        if not isinstance(i, str) or not i:
            raise ValueError(f"{what} must contain non-empty strings, got {i!r}")
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _count_from(data: Any, *keys: str, default: int) -> int:
    if isinstance(data, Mapping):
        for key in keys:
            if key in data:
                try:
                    return int(data[key])
                except (TypeError, ValueError):
                    break
    return default


class RAGFlowClient:
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

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        pool_size: int = 16,
        user_agent: str | None = None,
        max_request_bytes: int = 64 * MiB,
        max_files_per_request: int = 32,
        upload_timeout: float = 300.0,
        max_retry_after: float = 120.0,
        verify: bool | str = True,
    ) -> None:
        if max_retries < 0 or timeout <= 0 or pool_size < 1:
            raise ValueError("max_retries >= 0, timeout > 0 and pool_size >= 1 are required")
        if max_files_per_request < 1 or max_request_bytes < 1:
            raise ValueError("max_files_per_request and max_request_bytes must be >= 1")
        self.base_url = _checked_base_url(base_url)
        self._secret = _Secret(_checked_api_key(api_key))
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.request_count = 0
        """HTTP requests sent so far (retries included)."""
        self._count_lock = threading.Lock()
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.pool_size = int(pool_size)
        self.user_agent = user_agent or _default_user_agent()
        self.max_request_bytes = int(max_request_bytes)
        self.max_files_per_request = int(max_files_per_request)
        self.upload_timeout = float(upload_timeout)
        self.max_retry_after = float(max_retry_after)
        self._session = requests.Session()
        adapter = HTTPAdapter(
            pool_connections=2, pool_maxsize=self.pool_size, max_retries=0, pool_block=False
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.auth = _BearerAuth(self._secret)
        self._session.verify = verify
        self._session.headers.update({"User-Agent": self.user_agent, "Accept": "application/json"})
        self._update_method: dict[str, str] = {}  # "document"/"chunk" -> "PATCH" | "PUT"
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the pooled connections. The client cannot be used afterwards."""
        self._closed = True
        self._session.close()

    def __enter__(self) -> RAGFlowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RAGFlowClient(base_url={self.base_url!r}, api_key=***)"

    def __getstate__(self) -> Any:
        raise TypeError("RAGFlowClient cannot be pickled (it holds a session and a secret)")

    # ------------------------------------------------------------------ transport
    def _redact(self, text: str) -> str:
        return redact(text, [self._secret.reveal()])

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exp = min(self.max_backoff, self.backoff * (2 ** (retry_state.attempt_number - 1)))
        delay = exp / 2 + random.uniform(0, exp / 2)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, float(retry_after) + random.uniform(0, max(self.backoff, 0.01)))
        return delay

    def _should_retry(self, exc: BaseException, *, idempotent: bool, can_resend: bool) -> bool:
        if not isinstance(exc, (RAGFlowRateLimitedError, RAGFlowUnavailableError)):
            return False
        if isinstance(exc, _TransportError) and not exc.retryable:
            return False
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None and retry_after > self.max_retry_after:
            return False
        if not can_resend:
            return False
        if idempotent:
            return True
        return not self._ambiguous(exc)

    @staticmethod
    def _ambiguous(exc: BaseException) -> bool:
        """Whether a failed non-idempotent request may have been carried out by the server."""
        if isinstance(exc, RAGFlowRateLimitedError):
            return False
        if isinstance(exc, _TransportError):
            return exc.sent
        if isinstance(exc, RAGFlowUnavailableError):
            return exc.http_status != 503
        return False

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        body_factory: Callable[[], MultipartBody] | None = None,
        idempotent: bool = True,
        can_resend: bool = True,
        timeout: float | None = None,
        stream: bool = False,
    ) -> _Reply:
        """Send one API call with retries; return the parsed success reply or raise."""
        if self._closed:
            raise RuntimeError("this RAGFlowClient is closed")
        route = API_PREFIX + path
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=tenacity.retry_if_exception(
                lambda e: self._should_retry(e, idempotent=idempotent, can_resend=can_resend)
            ),
            before_sleep=lambda rs: self._log_retry(method, route, rs),
            reraise=True,
        )
        attempt_no = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempt_no = attempt.retry_state.attempt_number
                    return self._attempt(
                        method,
                        route,
                        params=params,
                        json=json,
                        body_factory=body_factory,
                        timeout=timeout,
                        stream=stream,
                        attempt=attempt.retry_state.attempt_number,
                    )
        except RAGFlowError as exc:
            exc.attempts = attempt_no
            if not idempotent and self._ambiguous(exc):
                unknown = RAGFlowOutcomeUnknownError(
                    f"outcome unknown, not resent: {exc.message}",
                    code=exc.code,
                    http_status=exc.http_status,
                    method=method,
                    route=route,
                )
                unknown.attempts = attempt_no
                raise unknown from exc
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _log_retry(self, method: str, route: str, rs: tenacity.RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        delay = rs.next_action.sleep if rs.next_action else 0.0
        logger.warning(
            "RAGFlow %s %s failed (%s); retry %d/%d in %.2fs",
            method,
            route,
            self._redact(str(exc)),
            rs.attempt_number,
            self.max_retries,
            delay,
        )

    def _attempt(
        self,
        method: str,
        route: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        body_factory: Callable[[], MultipartBody] | None,
        timeout: float | None,
        stream: bool,
        attempt: int,
    ) -> _Reply:
        url = self.base_url + route
        body: MultipartBody | None = None
        kwargs: dict[str, Any] = {
            "params": _query(params or {}),
            "timeout": timeout or self.timeout,
            "stream": stream,
        }
        if json is not None:
            kwargs["json"] = json
        started = time.monotonic()
        try:
            if body_factory is not None:
                body = body_factory()
                kwargs["headers"] = {"Content-Type": body.content_type}
                kwargs["data"] = body if body.length is not None else iter(body)
            try:
                with self._count_lock:
                    self.request_count += 1
                resp = self._session.request(method, url, **kwargs)
            except UploadSourceError as exc:
                cause = exc.cause
                if isinstance(cause, OSError):
                    raise cause from None
                raise RAGFlowError(
                    f"upload source failed: {exc}", method=method, route=route
                ) from exc
            except requests.RequestException as exc:
                sent = body.fully_sent if body is not None else not _is_connect_phase(exc)
                logger.debug(
                    "RAGFlow %s %s -> %s after %.1f ms (attempt %d)",
                    method,
                    route,
                    type(exc).__name__,
                    (time.monotonic() - started) * 1000,
                    attempt,
                )
                if isinstance(
                    exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)
                ):
                    raise RAGFlowError(
                        self._redact(f"invalid request URL: {exc}"), method=method, route=route
                    ) from None
                text, retryable = _transport_failure(exc, kwargs["timeout"])
                raise _TransportError(
                    self._redact(text),
                    sent=sent,
                    retryable=retryable,
                    method=method,
                    route=route,
                ) from exc
        finally:
            if body is not None:
                body.close()
        logger.debug(
            "RAGFlow %s %s -> %s in %.1f ms (attempt %d)",
            method,
            route,
            resp.status_code,
            (time.monotonic() - started) * 1000,
            attempt,
        )
        if stream:
            return self._stream_reply(resp, method, route, attempt)
        try:
            payload = resp.json() if resp.content else None
        except ValueError:
            payload = None
        err = error_from_reply(
            http_status=resp.status_code,
            body=payload if isinstance(payload, dict) else None,
            method=method,
            route=route,
            headers=resp.headers,
            secrets=[self._secret.reveal()],
            text=None if isinstance(payload, dict) else resp.text,
        )
        if err is not None:
            raise err
        return _Reply(body=payload, status=resp.status_code, attempts=attempt, response=resp)

    def _stream_reply(
        self, resp: requests.Response, method: str, route: str, attempt: int
    ) -> _Reply:
        """For downloads: an error reply is JSON without ``Content-Disposition``."""
        ctype = resp.headers.get("Content-Type", "")
        is_file = "Content-Disposition" in resp.headers or "json" not in ctype.lower()
        if resp.status_code < 300 and is_file:
            return _Reply(body={}, status=resp.status_code, attempts=attempt, response=resp)
        try:
            text = resp.text
            resp.close()
            payload = _json.loads(text) if text else None
        except (ValueError, requests.RequestException):
            payload, text = None, ""
        err = error_from_reply(
            http_status=resp.status_code,
            body=payload if isinstance(payload, dict) else None,
            method=method,
            route=route,
            headers=resp.headers,
            secrets=[self._secret.reveal()],
            text=None if isinstance(payload, dict) else text,
        )
        if err is None:  # a JSON file with code 0 in it: hand back what we read
            return _Reply(
                body={"_content": text.encode()},
                status=resp.status_code,
                attempts=attempt,
                response=resp,
            )
        raise err

    def _update_with_fallback(self, kind: str, path: str, body: Mapping[str, Any]) -> _Reply:
        """PATCH (v0.25+), falling back to PUT on servers without it; remembers the answer."""
        method = self._update_method.get(kind, "PATCH")
        try:
            return self._request(method, path, json=dict(body))
        except RAGFlowError as exc:
            if method == "PATCH" and exc.http_status in (404, 405):
                with self._lock:
                    self._update_method[kind] = "PUT"
                logger.debug("RAGFlow %s update: PATCH unsupported, using PUT", kind)
                return self._request("PUT", path, json=dict(body))
            raise

    def ping(self) -> None:
        """Check that the server answers and accepts the key (one cheap dataset listing).

        Raises:
            RAGFlowAuthError: The key is missing or invalid.
            RAGFlowUnavailableError: The server cannot be reached.

        Example:
            >>> client.ping()  # doctest: +SKIP
        """
        self._request("GET", "/datasets", params={"page": 1, "page_size": 1})

    # ------------------------------------------------------------------ paging
    def _pages(
        self,
        path: str,
        params: Mapping[str, Any],
        extract: Callable[[Any], tuple[list[Any], int | None] | None],
        page_size: int,
    ) -> Iterator[Any]:
        """Yield raw items page by page, proving the listing complete as it goes.

        A page is trusted only when its reply has the listing's shape (``extract`` returns None
        for a reply without ``data``) and, when the server sends ``total``, when it is full or
        brings the count of distinct items seen to ``total``. Such a page is fetched again
        (``_PAGE_ATTEMPTS`` times) and then :class:`RAGFlowIncompleteListingError` is raised.
        A ``total`` that shrinks between pages means documents were deleted while offset paging
        ran (items may have been skipped): that raises too, with ``changed=True``, so that the
        caller can start a fresh pass.
        """
        page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        page = 1
        ids: set[str] = set()
        seen = 0
        last_total: int | None = None
        while True:
            problem = "no usable reply"
            for _attempt in range(_PAGE_ATTEMPTS):
                try:
                    reply = self._request(
                        "GET", path, params={**params, "page": page, "page_size": page_size}
                    )
                except RAGFlowError as exc:
                    m = _PAGE_SIZE_LIMIT.search(exc.message or "")
                    if m and int(m.group(1)) < page_size and page == 1:
                        page_size = max(1, int(m.group(1)))
                        reply = None
                    else:
                        raise
                if reply is None:
                    continue
                page_items = extract(reply)
                if page_items is None:
                    problem = "a page came back without data"
                    continue
                items, total = page_items
                if last_total is not None and total is not None and total < last_total:
                    raise RAGFlowIncompleteListingError(
                        f"the listing changed while it was read (total {last_total} -> {total})",
                        seen=seen,
                        total=total,
                        changed=True,
                        method="GET",
                        route=API_PREFIX + path,
                    )
                fresh = [i for i in items if not i.get("id") or i["id"] not in ids]
                count = seen + len(fresh)
                short = len(items) < page_size
                if short and total is not None and count < total:
                    problem = f"page {page} ended at {count} of {total} items"
                    continue
                break
            else:
                raise RAGFlowIncompleteListingError(
                    f"listing {API_PREFIX + path} is incomplete: {problem} "
                    f"({_PAGE_ATTEMPTS} attempts)",
                    seen=seen,
                    total=last_total,
                    method="GET",
                    route=API_PREFIX + path,
                )
            last_total = total if total is not None else last_total
            ids.update(i["id"] for i in fresh if i.get("id"))
            seen += len(fresh)
            yield from fresh
            if short or (total is not None and seen >= total):
                return
            if not fresh:
                if total is not None and seen < total:  # a server that ignores `page`
                    raise RAGFlowIncompleteListingError(
                        f"listing {API_PREFIX + path} repeats page {page - 1} "
                        f"at {seen} of {total} items",
                        seen=seen,
                        total=total,
                        method="GET",
                        route=API_PREFIX + path,
                    )
                return
            page += 1

    # ------------------------------------------------------------------ datasets
    def create_dataset(
        self,
        name: str,
        *,
        chunk_method: str | None = None,
        parser_config: Mapping[str, Any] | None = None,
        embedding_model: str | None = None,
        description: str | None = None,
        permission: str | None = None,
        **extra: Any,
    ) -> Dataset:
        """Create a dataset and return it.

        Only the options given are sent (the server applies its defaults to the rest). Today's
        server renames a duplicate name to ``name(1)``; older ones refuse it with an error
        (:class:`RAGFlowConflictError`). Use :func:`~ragflow_dagster.client.ensure_dataset` to
        get-or-create by name.

        Example:
            >>> ds = client.create_dataset("manuals", chunk_method="naive",  # doctest: +SKIP
            ...                            parser_config={"chunk_token_num": 256})
        """
        body: dict[str, Any] = {"name": name}
        for key, value in (
            ("chunk_method", chunk_method),
            ("parser_config", dict(parser_config) if parser_config is not None else None),
            ("embedding_model", embedding_model),
            ("description", description),
            ("permission", permission),
            *extra.items(),
        ):
            if value is not None:
                body[key] = value
        attempt = 0
        while True:
            try:
                reply = self._request("POST", "/datasets", json=body, idempotent=False)
                break
            except RAGFlowOutcomeUnknownError:
                # the answer was lost: the listing says whether the dataset landed; if it did not,
                # sending again cannot make a duplicate
                found = self.find_dataset(name)
                if found is not None:
                    return found
                attempt += 1
                if attempt > self.max_retries:
                    raise
        if isinstance(reply.data, Mapping) and reply.data.get("id"):
            return Dataset.from_api(reply.data)
        found = self.find_dataset(name)  # old servers answer {"code": 0} without data
        if found is None:
            raise RAGFlowError(
                f"dataset {name!r} was created but cannot be found",
                method="POST",
                route=API_PREFIX + "/datasets",
            )
        return found

    def get_dataset(self, dataset_id: str) -> Dataset:
        """Return the dataset with this id.

        Raises:
            RAGFlowNotFoundError: No such dataset visible to this key.

        Example:
            >>> client.get_dataset("3b4de7d4241d11f0a6a79f24fc270c7f").name  # doctest: +SKIP
            'manuals'
        """
        reply = self._request("GET", "/datasets", params={"id": dataset_id, "page": 1})
        for raw in reply.data or []:
            if isinstance(raw, Mapping) and raw.get("id") == dataset_id:
                return Dataset.from_api(raw)
        raise RAGFlowNotFoundError(
            f"dataset {dataset_id} not found", method="GET", route=API_PREFIX + "/datasets"
        )

    def find_dataset(self, name: str) -> Dataset | None:
        """Return the dataset with this exact name (case-insensitive, as the server), or ``None``.

        Example:
            >>> client.find_dataset("manuals") is None  # doctest: +SKIP
            False
        """
        try:
            reply = self._request("GET", "/datasets", params={"name": name, "page": 1})
        except RAGFlowNotFoundError:
            return None
        wanted = name.strip().casefold()
        for raw in reply.data or []:
            if isinstance(raw, Mapping) and str(raw.get("name", "")).casefold() == wanted:
                return Dataset.from_api(raw)
        return None

    def iter_datasets(
        self,
        *,
        name: str | None = None,
        orderby: str = "create_time",
        desc: bool = True,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[Dataset]:
        """Iterate over all datasets visible to the key, paging transparently.

        Example:
            >>> [ds.name for ds in client.iter_datasets()]  # doctest: +SKIP
            ['manuals', 'policies']
        """

        def extract(reply: _Reply) -> tuple[list[Any], int | None] | None:
            if not isinstance(reply.data, list):
                return None
            items = [d for d in reply.data if isinstance(d, Mapping)]
            total = reply.body.get("total_datasets", reply.body.get("total"))
            return items, int(total) if isinstance(total, (int, float)) else None

        params = {"name": name, "orderby": orderby, "desc": desc}
        try:
            for raw in self._pages("/datasets", params, extract, page_size):
                yield Dataset.from_api(raw)
        except RAGFlowNotFoundError:
            if name is None:
                raise

    def update_dataset(self, dataset_id: str, **fields: Any) -> Dataset:
        """Change a dataset's settings (``name``, ``chunk_method``, ``parser_config``, ...).

        ``None`` values are not sent. Returns the dataset as stored after the change.

        Example:
            >>> client.update_dataset(ds.id, description="Product manuals")  # doctest: +SKIP
        """
        body = {k: v for k, v in fields.items() if v is not None}
        if not body:
            return self.get_dataset(dataset_id)
        reply = self._request("PUT", f"/datasets/{dataset_id}", json=body)
        if isinstance(reply.data, Mapping) and reply.data.get("id"):
            return Dataset.from_api(reply.data)
        return self.get_dataset(dataset_id)

    def delete_datasets(self, ids: Sequence[str]) -> int:
        """Delete these datasets (and their documents); return how many were deleted.

        An empty list sends nothing. Ids go out in lists of at most 100; ``null`` is never sent
        (it meant "delete all" before v0.25).

        Example:
            >>> client.delete_datasets([ds.id])  # doctest: +SKIP
            1
        """
        id_list = _id_list(ids, "ids")
        deleted = 0
        for batch in _batches(id_list, MAX_IDS_PER_CALL):
            reply = self._retry_tolerant("DELETE", "/datasets", {"ids": batch}, _is_not_found)
            if reply is None:  # a lost earlier attempt deleted some or all: finish the rest
                left = [i for i in batch if self._dataset_exists(i)]
                if left:
                    self._request("DELETE", "/datasets", json={"ids": left})
                deleted += len(batch)
                continue
            deleted += _count_from(reply.data, "success_count", "deleted", default=len(batch))
        return deleted

    def _dataset_exists(self, dataset_id: str) -> bool:
        try:
            self.get_dataset(dataset_id)
        except RAGFlowNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ documents: upload
    def iter_upload_batches(
        self,
        files: Iterable[UploadFile],
        *,
        max_request_bytes: int | None = None,
        max_files: int | None = None,
    ) -> Iterator[list[UploadFile]]:
        """Group files, in order, into upload requests (size and count limits).

        Public so a caller can send batches concurrently itself. Nothing is opened or read;
        sizes come from ``UploadFile.size``, the file system or the stream position.

        Example:
            >>> batches = list(client.iter_upload_batches(files, max_files=10))  # doctest: +SKIP
        """
        return plan_batches(
            files,
            max_request_bytes=max_request_bytes or self.max_request_bytes,
            max_files=max_files or self.max_files_per_request,
        )

    def upload_documents(self, dataset_id: str, files: Iterable[UploadFile]) -> list[Document]:
        """Upload files into a dataset; return the new documents in input order (1:1).

        Bodies are streamed (see :class:`~ragflow_dagster.client.upload.MultipartBody`), several
        files per request, batched by ``max_request_bytes``/``max_files_per_request``. The
        server may rename a file whose name is taken (``notes(1).txt``): compare by position,
        not by name. Uploaded documents are not parsed: call :meth:`parse_documents`.

        Raises:
            RAGFlowPartialUploadError: Some files were stored, others not (``uploaded``,
                ``failed_names``); also when a later batch fails after earlier ones succeeded.
            RAGFlowUploadAmbiguousError: A request failed after it was fully sent; it was not
                resent (``file_names``; ``uploaded`` holds earlier batches' documents).
            OSError: A local source could not be opened or read (nothing of that request was
                stored).

        Example:
            >>> docs = client.upload_documents(ds.id, [  # doctest: +SKIP
            ...     UploadFile("a.pdf", "/data/a.pdf"),
            ...     UploadFile("b.txt", lambda: s3.get_object(Bucket=b, Key=k)["Body"], size=n),
            ... ])
        """
        file_list = list(files)
        batches = list(self.iter_upload_batches(file_list))
        results: list[Document] = []
        for index, batch in enumerate(batches):
            later = [f.name for b in batches[index + 1 :] for f in b]
            try:
                docs = self._upload_batch(dataset_id, batch)
            except RAGFlowUploadAmbiguousError as exc:
                exc.uploaded = results + exc.uploaded
                exc.not_sent = list(exc.not_sent) + later
                raise
            except RAGFlowPartialUploadError as exc:
                exc.uploaded = results + exc.uploaded
                exc.failed_names = list(exc.failed_names) + later
                raise
            except RAGFlowError as exc:
                if not results:
                    raise
                raise RAGFlowPartialUploadError(
                    f"{len(results)} file(s) uploaded, then a request failed: {exc.message}",
                    uploaded=results,
                    failed_names=[f.name for f in batch] + later,
                    code=exc.code,
                    http_status=exc.http_status,
                    method=exc.method,
                    route=exc.route,
                ) from exc
            results.extend(docs)
        return results

    def _upload_batch(self, dataset_id: str, batch: Sequence[UploadFile]) -> list[Document]:
        path = f"/datasets/{dataset_id}/documents"
        names = [f.name for f in batch]
        sizes = [f.resolved_size() for f in batch]
        starts: dict[int, int] = {}
        rewindable = True
        for i, f in enumerate(batch):
            if f.is_stream:
                try:
                    if f.source.seekable():  # type: ignore[union-attr]
                        starts[i] = f.source.tell()  # type: ignore[union-attr]
                    else:
                        rewindable = False
                except (AttributeError, OSError, ValueError):
                    rewindable = False
        boundary = uuid.uuid4().hex
        first = [True]

        def factory() -> MultipartBody:
            if not first[0]:
                for i, pos in starts.items():
                    batch[i].source.seek(pos)  # type: ignore[union-attr]
            first[0] = False
            return MultipartBody(batch, boundary=boundary, sizes=sizes)

        try:
            reply = self._request(
                "POST",
                path,
                body_factory=factory,
                idempotent=False,
                can_resend=rewindable,
                timeout=max(self.upload_timeout, self.timeout),
            )
        except RAGFlowOutcomeUnknownError as exc:
            raise RAGFlowUploadAmbiguousError(
                f"upload of {len(batch)} file(s) may or may not have been stored: {exc.message}",
                file_names=names,
                code=exc.code,
                http_status=exc.http_status,
                method=exc.method,
                route=exc.route,
            ) from exc
        except RAGFlowError as exc:
            if exc.code == 500 and exc.http_status == 200:
                raise self._partial_upload(exc, names) from exc
            raise
        raw_docs = [d for d in (reply.data or []) if isinstance(d, Mapping)]
        docs = [Document.from_api(d) for d in raw_docs]
        if len(docs) != len(batch):
            failed = _unmatched(names, docs)
            raise RAGFlowPartialUploadError(
                f"server stored {len(docs)} of {len(batch)} file(s)",
                uploaded=docs,
                failed_names=failed,
                code=reply.body.get("code"),
                http_status=reply.status,
                method="POST",
                route=API_PREFIX + path,
            )
        return docs

    @staticmethod
    def _partial_upload(exc: RAGFlowError, names: Sequence[str]) -> RAGFlowPartialUploadError:
        data = exc.data if isinstance(exc.data, list) else []
        uploaded = [Document.from_api(d) for d in data if isinstance(d, Mapping)]
        lines = (exc.message or "").splitlines()
        failed = [n for n in names if any(line.startswith(f"{n}: ") for line in lines)]
        if len(failed) != len(names) - len(uploaded):
            failed = _unmatched(names, uploaded)
        return RAGFlowPartialUploadError(
            exc.message or "partial upload",
            uploaded=uploaded,
            failed_names=failed,
            code=exc.code,
            http_status=exc.http_status,
            method=exc.method,
            route=exc.route,
            data=exc.data,
        )

    # ------------------------------------------------------------------ documents: read
    def list_documents(
        self,
        dataset_id: str,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        orderby: str = "create_time",
        desc: bool = True,
        **filters: Any,
    ) -> tuple[list[Document], int]:
        """Return one page of documents and the total count.

        Filters are the server's: ``id``, ``name`` (exact), ``keywords`` (name contains),
        ``suffix``, ``run`` (text or digits; lists repeat), ``metadata_condition`` (dict),
        ``create_time_from``/``create_time_to`` (ms), ... Lists become repeated parameters and
        dicts JSON, as the server expects.

        Example:
            >>> docs, total = client.list_documents(ds.id, page=2, run="FAIL")  # doctest: +SKIP
        """
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        params = {**filters, "orderby": orderby, "desc": desc, "page": page, "page_size": size}
        reply = self._request("GET", f"/datasets/{dataset_id}/documents", params=params)
        page_items = _docs_page(reply)
        if page_items is None:
            raise RAGFlowIncompleteListingError(
                "a document page came back without data",
                method="GET",
                route=f"{API_PREFIX}/datasets/{dataset_id}/documents",
            )
        items, total = page_items
        return [Document.from_api(d) for d in items], total if total is not None else len(items)

    def iter_documents(
        self,
        dataset_id: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        orderby: str = "create_time",
        desc: bool = False,
        **filters: Any,
    ) -> Iterator[Document]:
        """Iterate over a dataset's documents, paging transparently (100 per request).

        Oldest first by default, so documents added meanwhile land on later pages; a document
        is never yielded twice. ``create_time_from``/``create_time_to`` are applied here, not
        by the server (which applies them after paging).

        Example:
            >>> pending = [d.id for d in client.iter_documents(ds.id, run=["UNSTART", "RUNNING"])]
            ... # doctest: +SKIP
        """
        t_from = filters.pop("create_time_from", None)
        t_to = filters.pop("create_time_to", None)
        params = {**filters, "orderby": orderby, "desc": desc}
        seen: set[str] = set()

        def extract(reply: _Reply) -> tuple[list[Any], int | None] | None:
            return _docs_page(reply)

        for raw in self._pages(f"/datasets/{dataset_id}/documents", params, extract, page_size):
            doc = Document.from_api(raw)
            if doc.id in seen:
                continue
            seen.add(doc.id)
            if t_from and doc.create_time < int(t_from):
                continue
            if t_to and doc.create_time > int(t_to):
                continue
            yield doc

    def documents_by_id(self, dataset_id: str, ids: Sequence[str]) -> dict[str, Document]:
        """The documents among ``ids`` that exist, by id (one request per 100 ids).

        An id missing from the answer is a document that does not exist (any more).

        Example:
            >>> states = {i: d.run for i, d in client.documents_by_id(ds.id, ids).items()}
            ... # doctest: +SKIP
        """
        wanted = _id_list(ids, "ids")
        found: dict[str, Document] = {}
        for batch in _batches(wanted, MAX_IDS_PER_CALL):
            for doc in self.iter_documents(dataset_id, ids=batch):
                if doc.id in batch:
                    found[doc.id] = doc
        return found

    def get_document(self, dataset_id: str, document_id: str) -> Document:
        """Return one document (with ``meta_fields``, ``run``, ``progress``...).

        Raises:
            RAGFlowNotFoundError: The dataset has no such document.

        Example:
            >>> client.get_document(ds.id, doc_id).run  # doctest: +SKIP
            'DONE'
        """
        docs, _ = self.list_documents(dataset_id, id=document_id, page_size=1)
        for doc in docs:
            if doc.id == document_id:
                return doc
        raise RAGFlowNotFoundError(
            f"document {document_id} not found in dataset {dataset_id}",
            method="GET",
            route=f"{API_PREFIX}/datasets/{dataset_id}/documents",
        )

    def download_document(
        self, dataset_id: str, document_id: str, dest: str | os.PathLike[str] | BinaryIO
    ) -> int:
        """Stream a document's original file to a path or a writable binary stream.

        A path is written through a temporary file in the same directory and renamed into
        place, so a failed download never leaves a partial file. Returns the bytes written.

        Example:
            >>> client.download_document(ds.id, doc.id, "/tmp/a.pdf")  # doctest: +SKIP
            18231
        """
        path = f"/datasets/{dataset_id}/documents/{document_id}"
        try:
            reply = self._request("GET", path, stream=True)
        except RAGFlowError as exc:
            if "file is empty" in (exc.message or "").lower():
                if isinstance(dest, (str, os.PathLike)):
                    with open(dest, "wb"):
                        pass
                return 0
            raise
        resp = reply.response
        if isinstance(dest, (str, os.PathLike)):
            target = os.fspath(dest)
            directory = os.path.dirname(os.path.abspath(target))
            fd, tmp = tempfile.mkstemp(prefix=".ragflow-dl-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as out:
                    written = self._copy_reply(reply, out, path)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            finally:
                resp.close()
            return written
        try:
            return self._copy_reply(reply, dest, path)
        finally:
            resp.close()

    def _copy_reply(self, reply: _Reply, out: IO[bytes], path: str) -> int:
        if "_content" in reply.body:
            data = reply.body["_content"]
            out.write(data)
            return len(data)
        resp = reply.response
        written = 0
        try:
            for chunk in resp.iter_content(chunk_size=1024 * 1024):
                if chunk:
                    out.write(chunk)
                    written += len(chunk)
        except requests.RequestException as exc:
            raise RAGFlowUnavailableError(
                self._redact(f"download interrupted after {written} bytes: {exc}"),
                method="GET",
                route=API_PREFIX + path,
            ) from exc
        expected = resp.headers.get("Content-Length")
        encoded = resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
        if expected is not None and not encoded and expected.isdigit() and int(expected) != written:
            raise RAGFlowUnavailableError(
                f"download truncated: {written} of {expected} bytes",
                method="GET",
                route=API_PREFIX + path,
            )
        return written

    # ------------------------------------------------------------------ documents: change
    def update_document(
        self,
        dataset_id: str,
        document_id: str,
        *,
        name: str | None = None,
        meta_fields: Mapping[str, Any] | None = None,
        chunk_method: str | None = None,
        parser_config: Mapping[str, Any] | None = None,
        enabled: bool | None = None,
    ) -> Document | None:
        """Change a document's name, metadata, chunk method, parser config or availability.

        Uses PATCH (v0.25+) and falls back to PUT on servers without it. ``meta_fields``
        replaces the document's metadata (values: str, int, float or lists of them). Returns the
        document as the server reports it (today's server leaves ``meta_fields`` out of its
        answer: the record then carries the ones sent), or ``None`` when the server answers
        without data (before v0.25). Changing ``chunk_method`` resets the document's parse.

        Example:
            >>> client.update_document(ds.id, doc.id, meta_fields={"source_path": "a/b.pdf"})
            ... # doctest: +SKIP
        """
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if meta_fields is not None:
            body["meta_fields"] = dict(meta_fields)
        if chunk_method is not None:
            body["chunk_method"] = chunk_method
        if parser_config is not None:
            body["parser_config"] = dict(parser_config)
        if enabled is not None:
            body["enabled"] = 1 if enabled else 0
        if not body:
            raise ValueError("update_document needs at least one field to change")
        reply = self._update_with_fallback(
            "document", f"/datasets/{dataset_id}/documents/{document_id}", body
        )
        data = reply.data
        if not isinstance(data, Mapping) or not data.get("id"):
            return None
        raw = dict(data)
        if meta_fields is not None and "meta_fields" not in raw:
            raw["meta_fields"] = dict(meta_fields)
        return Document.from_api(raw)

    def delete_documents(self, dataset_id: str, ids: Sequence[str]) -> int:
        """Delete documents by id; return how many were deleted.

        An empty list sends nothing (an empty or null list meant "delete all" before v0.25).
        Ids go out in lists of at most 100.

        Example:
            >>> client.delete_documents(ds.id, [doc.id])  # doctest: +SKIP
            1
        """
        id_list = _id_list(ids, "ids")
        path = f"/datasets/{dataset_id}/documents"
        deleted = 0
        for batch in _batches(id_list, MAX_IDS_PER_CALL):
            reply = self._retry_tolerant("DELETE", path, {"ids": batch}, _is_not_found)
            if reply is None:  # a lost earlier attempt deleted some or all: finish the rest
                left = [i for i in batch if self._document_exists(dataset_id, i)]
                if left:
                    self._request("DELETE", path, json={"ids": left})
                deleted += len(batch)
                continue
            deleted += _count_from(reply.data, "deleted", "success_count", default=len(batch))
        return deleted

    def _document_exists(self, dataset_id: str, document_id: str) -> bool:
        try:
            self.get_document(dataset_id, document_id)
        except RAGFlowNotFoundError:
            return False
        return True

    def parse_documents(self, dataset_id: str, ids: Sequence[str]) -> None:
        """Queue documents for parsing (returns at once; poll :meth:`iter_documents`).

        Uses ``POST /datasets/{id}/chunks``, which every version has. Re-parsing a parsed
        document clears its chunks first. Ids go out in lists of at most 100.

        Raises:
            RAGFlowConflictError: A document is being parsed already (first attempt only; a
                retry that meets its own earlier, lost request counts as success).

        Example:
            >>> client.parse_documents(ds.id, [d.id for d in docs])  # doctest: +SKIP
        """
        id_list = _id_list(ids, "ids")
        for batch in _batches(id_list, MAX_IDS_PER_CALL):
            self._retry_tolerant(
                "POST", f"/datasets/{dataset_id}/chunks", {"document_ids": batch}, "processed"
            )

    def stop_parsing(self, dataset_id: str, ids: Sequence[str]) -> None:
        """Stop parsing documents (``DELETE /datasets/{id}/chunks``; every version has it).

        Example:
            >>> client.stop_parsing(ds.id, [doc.id])  # doctest: +SKIP
        """
        id_list = _id_list(ids, "ids")
        for batch in _batches(id_list, MAX_IDS_PER_CALL):
            self._retry_tolerant(
                "DELETE",
                f"/datasets/{dataset_id}/chunks",
                {"document_ids": batch},
                "already completed",
            )

    def _retry_tolerant(
        self,
        method: str,
        path: str,
        body: Any,
        tolerated: str | Callable[[RAGFlowError], bool],
    ) -> _Reply | None:
        """Send an idempotent call whose *repeat* the server refuses (a delete of what is gone,
        a parse of what is running). Such a refusal after a retry means an earlier attempt did
        the work though its answer was lost: it returns ``None`` instead of raising."""
        try:
            return self._request(method, path, json=body)
        except RAGFlowError as exc:
            text = (exc.message or "").lower()
            ok = tolerated(exc) if callable(tolerated) else tolerated in text
            if exc.attempts > 1 and ok:
                logger.debug(
                    "RAGFlow %s %s: %s after a retry; an earlier attempt did it",
                    method,
                    API_PREFIX + path,
                    exc.message,
                )
                return None
            raise

    # ------------------------------------------------------------------ chunks
    def list_chunks(
        self,
        dataset_id: str,
        document_id: str,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        keywords: str | None = None,
        **filters: Any,
    ) -> tuple[list[Chunk], int]:
        """Return one page of a document's chunks and the total.

        Example:
            >>> chunks, total = client.list_chunks(ds.id, doc.id)  # doctest: +SKIP
        """
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        params = {**filters, "keywords": keywords, "page": page, "page_size": size}
        reply = self._request(
            "GET", f"/datasets/{dataset_id}/documents/{document_id}/chunks", params=params
        )
        items, total = _chunks_page(reply)
        return [Chunk.from_api(c) for c in items], total if total is not None else len(items)

    def iter_chunks(
        self,
        dataset_id: str,
        document_id: str,
        *,
        keywords: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        **filters: Any,
    ) -> Iterator[Chunk]:
        """Iterate over a document's chunks, paging transparently.

        Example:
            >>> text = "\\n".join(c.content for c in client.iter_chunks(ds.id, doc.id))
            ... # doctest: +SKIP
        """
        params = {**filters, "keywords": keywords}
        seen: set[str] = set()
        for raw in self._pages(
            f"/datasets/{dataset_id}/documents/{document_id}/chunks",
            params,
            _chunks_page,
            page_size,
        ):
            chunk = Chunk.from_api(raw)
            if chunk.id and chunk.id in seen:
                continue
            seen.add(chunk.id)
            yield chunk

    def add_chunk(
        self,
        dataset_id: str,
        document_id: str,
        content: str,
        *,
        important_keywords: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
        **extra: Any,
    ) -> Chunk:
        """Add a chunk to a document by hand; return it.

        Not resent when its outcome is unknown (raises
        :class:`~ragflow_dagster.client.errors.RAGFlowOutcomeUnknownError`).

        Example:
            >>> client.add_chunk(ds.id, doc.id, "RAGFlow is a RAG engine.")  # doctest: +SKIP
        """
        body: dict[str, Any] = {"content": content}
        if important_keywords is not None:
            body["important_keywords"] = list(important_keywords)
        if questions is not None:
            body["questions"] = list(questions)
        body.update({k: v for k, v in extra.items() if v is not None})
        reply = self._request(
            "POST",
            f"/datasets/{dataset_id}/documents/{document_id}/chunks",
            json=body,
            idempotent=False,
        )
        data = reply.data if isinstance(reply.data, Mapping) else {}
        raw = data.get("chunk", data)
        return Chunk.from_api(raw if isinstance(raw, Mapping) else {})

    def update_chunk(
        self,
        dataset_id: str,
        document_id: str,
        chunk_id: str,
        *,
        content: str | None = None,
        important_keywords: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
        available: bool | None = None,
        **extra: Any,
    ) -> None:
        """Change a chunk's content, keywords, questions or availability (PATCH, else PUT).

        Example:
            >>> client.update_chunk(ds.id, doc.id, chunk.id, available=False)  # doctest: +SKIP
        """
        body: dict[str, Any] = {}
        if content is not None:
            body["content"] = content
        if important_keywords is not None:
            body["important_keywords"] = list(important_keywords)
        if questions is not None:
            body["questions"] = list(questions)
        if available is not None:
            body["available"] = bool(available)
        body.update({k: v for k, v in extra.items() if v is not None})
        if not body:
            raise ValueError("update_chunk needs at least one field to change")
        self._update_with_fallback(
            "chunk", f"/datasets/{dataset_id}/documents/{document_id}/chunks/{chunk_id}", body
        )

    def delete_chunks(self, dataset_id: str, document_id: str, chunk_ids: Sequence[str]) -> int:
        """Delete chunks by id; return how many were asked for deletion.

        An empty list sends nothing (a missing list means "all chunks" to the server).

        Example:
            >>> client.delete_chunks(ds.id, doc.id, [chunk.id])  # doctest: +SKIP
            1
        """
        id_list = _id_list(chunk_ids, "chunk_ids")
        deleted = 0
        for batch in _batches(id_list, MAX_IDS_PER_CALL):
            reply = self._retry_tolerant(
                "DELETE",
                f"/datasets/{dataset_id}/documents/{document_id}/chunks",
                {"chunk_ids": batch},
                "rm_chunk deleted chunks",
            )
            if reply is None:
                deleted += len(batch)
                continue
            deleted += _count_from(reply.data, "deleted", "success_count", default=len(batch))
        return deleted

    # ------------------------------------------------------------------ retrieval
    def retrieve(
        self,
        question: str,
        *,
        dataset_ids: Sequence[str],
        document_ids: Sequence[str] | None = None,
        page: int = 1,
        page_size: int = 30,
        similarity_threshold: float = 0.2,
        vector_similarity_weight: float = 0.3,
        top_k: int = 1024,
        keyword: bool = False,
        highlight: bool = False,
        metadata_condition: Mapping[str, Any] | None = None,
        rerank_id: str | None = None,
        cross_languages: Sequence[str] | None = None,
        use_kg: bool | None = None,
        toc_enhance: bool | None = None,
    ) -> RetrievalResult:
        """Search datasets for chunks relevant to ``question``.

        ``metadata_condition`` filters on documents' ``meta_fields``:
        ``{"logic": "and", "conditions": [{"name": "author", "comparison_operator": "is",
        "value": "bob"}]}``.

        Example:
            >>> res = client.retrieve("What is RAGFlow?", dataset_ids=[ds.id])  # doctest: +SKIP
            >>> [(c.document_name, round(c.similarity, 2)) for c in res.chunks]  # doctest: +SKIP
        """
        body: dict[str, Any] = {
            "question": question,
            "dataset_ids": _id_list(dataset_ids, "dataset_ids"),
            "page": page,
            "page_size": max(1, min(int(page_size), MAX_PAGE_SIZE)),
            "similarity_threshold": similarity_threshold,
            "vector_similarity_weight": vector_similarity_weight,
            "top_k": top_k,
            "keyword": keyword,
            "highlight": highlight,
        }
        optional = {
            "document_ids": _id_list(document_ids, "document_ids") if document_ids else None,
            "metadata_condition": dict(metadata_condition) if metadata_condition else None,
            "rerank_id": rerank_id,
            "cross_languages": list(cross_languages) if cross_languages else None,
            "use_kg": use_kg,
            "toc_enhance": toc_enhance,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        reply = self._request("POST", "/retrieval", json=body)
        return RetrievalResult.from_api(reply.data if isinstance(reply.data, Mapping) else None)

    # ------------------------------------------------------------------ metadata
    def metadata_summary(
        self, dataset_id: str, *, document_ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Return each metadata key's values and counts across a dataset's documents.

        Today's server answers ``{key: {"type": t, "values": [[value, count], ...]}}``, older ones
        ``{key: [[value, count], ...]}``; both come back in the newer shape.

        Example:
            >>> client.metadata_summary(ds.id)  # doctest: +SKIP
            {'author': {'type': 'string', 'values': [['alice', 2], ['bob', 1]]}}
        """
        params = {}
        if document_ids:
            params["doc_ids"] = ",".join(_id_list(document_ids, "document_ids"))
        reply = self._request("GET", f"/datasets/{dataset_id}/metadata/summary", params=params)
        data = reply.data if isinstance(reply.data, Mapping) else {}
        summary = data.get("summary", data)
        if not isinstance(summary, Mapping):
            return {}
        return {
            key: dict(value)
            if isinstance(value, Mapping)
            else {"type": None, "values": list(value or [])}
            for key, value in summary.items()
        }

    def update_metadata(
        self,
        dataset_id: str,
        *,
        document_ids: Sequence[str] | None = None,
        metadata_condition: Mapping[str, Any] | None = None,
        updates: Sequence[Mapping[str, Any]] = (),
        deletes: Sequence[Mapping[str, Any]] = (),
        all_documents: bool = False,
    ) -> dict[str, Any]:
        """Batch-update or delete metadata keys of many documents at once.

        ``updates`` items are ``{"key", "value"[, "match"]}``; ``deletes`` items are
        ``{"key"[, "value"]}``. Select documents by ``document_ids`` and/or
        ``metadata_condition`` (both: the intersection). The server treats "no selector" as
        "every document"; this method requires ``all_documents=True`` for that, and sends
        nothing for an empty ``document_ids`` list. Returns ``{"updated", "matched_docs"}``.

        Example:
            >>> client.update_metadata(ds.id, document_ids=[doc.id],  # doctest: +SKIP
            ...                        updates=[{"key": "team", "value": "docs"}])
            {'updated': 1, 'matched_docs': 1}
        """
        if document_ids is not None and len(document_ids) == 0 and not metadata_condition:
            return {"updated": 0, "matched_docs": 0}
        if document_ids is None and not metadata_condition and not all_documents:
            raise ValueError(
                "give document_ids or metadata_condition, or all_documents=True to change every "
                "document of the dataset"
            )
        ids: list[str] | None = _id_list(document_ids, "document_ids") if document_ids else None
        if metadata_condition and ids is None:
            # The server intersects the condition with the (empty) id list, matching nothing, so
            # resolve the condition through the document listing first.
            ids = [
                d.id for d in self.iter_documents(dataset_id, metadata_condition=metadata_condition)
            ]
            if not ids:
                return {"updated": 0, "matched_docs": 0}
        body = {"updates": [dict(u) for u in updates], "deletes": [dict(d) for d in deletes]}
        if ids is None:  # all_documents
            reply = self._request(
                "POST", f"/datasets/{dataset_id}/metadata/update", json={"selector": {}, **body}
            )
            return dict(reply.data) if isinstance(reply.data, Mapping) else {}
        total: dict[str, Any] = {"updated": 0, "matched_docs": 0}
        for batch in _batches(ids, MAX_IDS_PER_CALL):
            selector: dict[str, Any] = {"document_ids": batch}
            if metadata_condition:
                selector["metadata_condition"] = dict(metadata_condition)
            reply = self._request(
                "POST",
                f"/datasets/{dataset_id}/metadata/update",
                json={"selector": selector, **body},
            )
            data = reply.data if isinstance(reply.data, Mapping) else {}
            for key in ("updated", "matched_docs"):
                total[key] += int(data.get(key) or 0)
        return total

    # ------------------------------------------------------------------ GraphRAG / RAPTOR
    def run_graphrag(self, dataset_id: str) -> str:
        """Start building the dataset's knowledge graph; return the task id.

        Example:
            >>> task_id = client.run_graphrag(ds.id)  # doctest: +SKIP
        """
        return self._run_index(dataset_id, "run_graphrag", "graphrag_task_id")

    def graphrag_status(self, dataset_id: str) -> IndexTask | None:
        """Return the dataset's knowledge-graph task, or ``None`` if none was ever started.

        Example:
            >>> client.graphrag_status(ds.id).done  # doctest: +SKIP
            True
        """
        return self._trace_index(dataset_id, "trace_graphrag")

    def get_knowledge_graph(self, dataset_id: str) -> dict[str, Any]:
        """Return the dataset's knowledge graph (``{"graph": ..., "mind_map": ...}``).

        Example:
            >>> len(client.get_knowledge_graph(ds.id)["graph"].get("nodes", []))  # doctest: +SKIP
        """
        reply = self._request("GET", f"/datasets/{dataset_id}/knowledge_graph")
        return dict(reply.data) if isinstance(reply.data, Mapping) else {}

    def delete_graphrag(self, dataset_id: str) -> None:
        """Delete the dataset's knowledge graph.

        Example:
            >>> client.delete_graphrag(ds.id)  # doctest: +SKIP
        """
        self._request("DELETE", f"/datasets/{dataset_id}/knowledge_graph")

    def run_raptor(self, dataset_id: str) -> str:
        """Start building the dataset's RAPTOR summaries; return the task id.

        Example:
            >>> task_id = client.run_raptor(ds.id)  # doctest: +SKIP
        """
        return self._run_index(dataset_id, "run_raptor", "raptor_task_id")

    def raptor_status(self, dataset_id: str) -> IndexTask | None:
        """Return the dataset's RAPTOR task, or ``None`` if none was ever started.

        Example:
            >>> client.raptor_status(ds.id)  # doctest: +SKIP
        """
        return self._trace_index(dataset_id, "trace_raptor")

    def _run_index(self, dataset_id: str, route: str, key: str) -> str:
        reply = self._request("POST", f"/datasets/{dataset_id}/{route}", idempotent=False)
        data = reply.data if isinstance(reply.data, Mapping) else {}
        return str(data.get(key) or data.get("task_id") or data.get("id") or "")

    def _trace_index(self, dataset_id: str, route: str) -> IndexTask | None:
        reply = self._request("GET", f"/datasets/{dataset_id}/{route}")
        data = reply.data
        if not isinstance(data, Mapping) or not data:
            return None
        return IndexTask.from_api(data)


def _is_not_found(exc: RAGFlowError) -> bool:
    return isinstance(exc, RAGFlowNotFoundError)


def _docs_page(reply: _Reply) -> tuple[list[Any], int | None] | None:
    """Items and total of a document page; None when the reply lacks the listing's shape."""
    data = reply.data
    if isinstance(data, Mapping) and isinstance(data.get("docs"), list):
        items = data["docs"]
        total = data.get("total", data.get("total_datasets"))
    elif isinstance(data, list):  # never seen, but cheap to accept
        items, total = data, reply.body.get("total")
    else:
        return None
    items = [d for d in items if isinstance(d, Mapping)]
    return items, int(total) if isinstance(total, (int, float)) else None


def _chunks_page(reply: _Reply) -> tuple[list[Any], int | None] | None:
    """Items and total of a chunk page; None when the reply lacks the listing's shape."""
    data = reply.data
    if not isinstance(data, Mapping):
        return None
    items = [c for c in data.get("chunks") or [] if isinstance(c, Mapping)]
    total = data.get("total")
    return items, int(total) if isinstance(total, (int, float)) else None


def _unmatched(names: Sequence[str], docs: Sequence[Document]) -> list[str]:
    """Names with no stored document, matching ``notes.txt`` to ``notes(1).txt`` too."""
    pool = [d.name for d in docs]
    missing: list[str] = []
    for name in names:
        stem, ext = os.path.splitext(name)
        pattern = re.compile(re.escape(stem) + r"(\(\d+\))?" + re.escape(ext) + r"$")
        hit = next((i for i, n in enumerate(pool) if pattern.match(n)), None)
        if hit is None:
            missing.append(name)
        else:
            pool.pop(hit)
    return missing
