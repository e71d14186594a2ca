"""The transport under :class:`~ragflow_dagster.client.RAGFlowClient`: one pooled session, auth,
retries, the reply envelope.

Every call of the client goes through :meth:`Transport._request`: the API key is added by an
auth hook and scrubbed from every message, a reply is an error when its HTTP status is not 2xx or
its JSON ``code`` is not 0, and retries follow the rules in :mod:`ragflow_dagster.client.core`.
"""

from __future__ import annotations

import json as _json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
import tenacity
from requests.adapters import HTTPAdapter

from ragflow_dagster.client.errors import (
    RAGFlowError,
    RAGFlowOutcomeUnknownError,
    RAGFlowRateLimitedError,
    RAGFlowUnavailableError,
    error_from_reply,
    redact,
)
from ragflow_dagster.client.params import query
from ragflow_dagster.client.upload import MultipartBody, UploadSourceError

__all__ = ["API_PREFIX", "MAX_IDS_PER_CALL", "MAX_PAGE_SIZE", "MiB", "Reply", "Transport"]

logger = logging.getLogger("ragflow_dagster.client")

MiB = 1024 * 1024
API_PREFIX = "/api/v1"
MAX_PAGE_SIZE = 100
"""Largest ``page_size`` today's server accepts (v0.26+); older servers accept it too."""
MAX_IDS_PER_CALL = 100
"""Largest id list today's server accepts in one call (v0.27)."""


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
class Reply:
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


_DIGIT = bytes(1 if 48 <= i <= 57 else 0 for i in range(256))
_LONG_RUN = b"\x01" * 20  # 2**64 has 20 digits: orjson reads longer integers as floats


def _json_body(resp: requests.Response) -> Any:
    """A reply's JSON (``None`` when empty or not JSON).

    orjson first: a listing page of 100 documents is ~250 KB of JSON, and stdlib decoding was
    a fifth of a no-op resync's CPU. What orjson refuses (``NaN``, bytes that are not UTF-8)
    or would read inexactly (an integer of 20 digits or more becomes a float; a body with such
    a run of digits anywhere, strings included, is taken to have one) is decoded by requests,
    exactly as before.
    """
    content = resp.content
    if not content:
        return None
    if content.translate(_DIGIT).find(_LONG_RUN) < 0:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    try:
        return resp.json()
    except ValueError:
        return None


class Transport:
    """The session, the settings and the retrying request of a client (see ``RAGFlowClient``).

    Subclasses add the API's capabilities on top of :meth:`_request`; the arguments are
    documented on :class:`~ragflow_dagster.client.RAGFlowClient`.
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
        # The environment's proxies (NO_PROXY applied) and CA bundle for this server, read once:
        # requests reads the whole environment again on every call otherwise (6 % of the CPU of
        # an upload phase that sends one label per document).
        env = self._session.merge_environment_settings(self.base_url, {}, None, None, None)
        self._session.proxies = env["proxies"]
        self._session.verify = env["verify"]
        self._session.trust_env = False
        self._session.headers.update({"User-Agent": self.user_agent, "Accept": "application/json"})
        self._update_method: dict[str, str] = {}  # "document"/"chunk" -> "PATCH" | "PUT"
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the pooled connections. The client cannot be used afterwards."""
        self._closed = True
        self._session.close()

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
    ) -> Reply:
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
    ) -> Reply:
        url = self.base_url + route
        body: MultipartBody | None = None
        kwargs: dict[str, Any] = {
            "params": query(params or {}),
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
        payload = _json_body(resp)
        err = self._reply_error(resp, payload, method, route)
        if err is not None:
            raise err
        envelope = payload if isinstance(payload, dict) else {}  # (anything else raised above)
        return Reply(body=envelope, status=resp.status_code, attempts=attempt, response=resp)

    def _reply_error(
        self,
        resp: requests.Response,
        payload: Any,
        method: str,
        route: str,
        *,
        text: str | None = None,
    ) -> RAGFlowError | None:
        """The error a reply stands for (``None``: it is a success); ``text``: the body as read
        already (default: the response's text, read only when the body is not a JSON object)."""
        body = payload if isinstance(payload, dict) else None
        return error_from_reply(
            http_status=resp.status_code,
            body=body,
            method=method,
            route=route,
            headers=resp.headers,
            secrets=[self._secret.reveal()],
            text=None if body is not None else (resp.text if text is None else text),
        )

    def _stream_reply(
        self, resp: requests.Response, method: str, route: str, attempt: int
    ) -> Reply:
        """For downloads: an error reply is JSON without ``Content-Disposition``."""
        ctype = resp.headers.get("Content-Type", "")
        is_file = "Content-Disposition" in resp.headers or "json" not in ctype.lower()
        if resp.status_code < 300 and is_file:
            return Reply(body={}, status=resp.status_code, attempts=attempt, response=resp)
        try:
            text = resp.text
            resp.close()
            payload = _json.loads(text) if text else None
        except (ValueError, requests.RequestException):
            payload, text = None, ""
        err = self._reply_error(resp, payload, method, route, text=text)
        if err is None:  # a JSON file with code 0 in it: hand back what we read
            return Reply(
                body={"_content": text.encode()},
                status=resp.status_code,
                attempts=attempt,
                response=resp,
            )
        raise err

    def _update_with_fallback(self, kind: str, path: str, body: Mapping[str, Any]) -> Reply:
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

    def _retry_tolerant(
        self,
        method: str,
        path: str,
        body: Any,
        tolerated: str | Callable[[RAGFlowError], bool],
    ) -> Reply | None:
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

    def ping(self) -> None:
        """Check that the server answers and accepts the key (one cheap dataset listing).

        Raises:
            RAGFlowAuthError: The key is missing or invalid.
            RAGFlowUnavailableError: The server cannot be reached.

        Example:
            >>> client.ping()
        """
        self._request("GET", "/datasets", params={"page": 1, "page_size": 1})
