"""One exception hierarchy for everything the RAGFlow client can raise.

Every error carries what is needed to act on it: the server's business ``code`` (RAGFlow answers
most errors with HTTP 200 and a non-zero ``code``), the HTTP status, the method and the request
path. The API key never appears in any of them: messages pass through :func:`redact` before they
are stored.

Hierarchy::

    RAGFlowError
    ├── RAGFlowAuthError               bad/missing key, no permission (HTTP 401/403, code 109)
    ├── RAGFlowNotFoundError           unknown dataset/document/chunk, unknown route
    ├── RAGFlowConflictError           duplicate name and the like (code 409, "already exists")
    ├── RAGFlowRateLimitedError        HTTP 429 (``retry_after`` seconds when the server said)
    ├── RAGFlowUnavailableError        HTTP 5xx, connection failures, timeouts
    ├── RAGFlowPayloadTooLargeError    HTTP 413 (request body over the server's limit)
    ├── RAGFlowPartialUploadError      code 500 on upload: some files landed, some did not
    └── RAGFlowOutcomeUnknownError     a non-idempotent call may or may not have happened
        └── RAGFlowUploadAmbiguousError   ... and it was an upload (``file_names``)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragflow_dagster.client.models import Document

__all__ = [
    "RAGFlowAuthError",
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
    "error_from_reply",
    "redact",
]

_REDACTED = "***"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with every secret (and every ``Bearer <token>``) replaced by ``***``.

    Example:
        >>> redact("key ragflow-abc used", ["ragflow-abc"])
        'key *** used'
    """
    out = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, _REDACTED)
    return re.sub(r"(?i)(bearer\s+)[^\s'\"]+", r"\1" + _REDACTED, out)


class RAGFlowError(Exception):
    """Base class of every error raised by :class:`~ragflow_dagster.client.RAGFlowClient`.

    Attributes:
        message: The server's message (or a description of the local failure).
        code: RAGFlow's business code from the JSON body (``None`` when there was no body).
        http_status: HTTP status of the reply (``None`` when no reply arrived).
        method: HTTP method of the failed call.
        route: Request path (``/api/v1/...``), without the query string.
        data: The ``data`` member of the error body, when the server sent one.

    Example:
        >>> err = RAGFlowError("boom", code=102, http_status=200, method="GET", route="/x")
        >>> str(err)
        'boom [code=102, HTTP 200, GET /x]'
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        method: str | None = None,
        route: str | None = None,
        data: Any = None,
    ) -> None:
        self.message = message
        self.code = code
        self.http_status = http_status
        self.method = method
        self.route = route
        self.data = data
        self.attempts = 1
        """How many times the call was sent before this error was raised."""
        super().__init__(message)

    def __str__(self) -> str:
        parts = []
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.method or self.route:
            parts.append(f"{self.method or ''} {self.route or ''}".strip())
        return f"{self.message} [{', '.join(parts)}]" if parts else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, "
            f"http_status={self.http_status!r}, method={self.method!r}, route={self.route!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword attributes through pickling (multiprocess executors pickle errors).
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[RAGFlowError], message: str, state: dict[str, Any]) -> RAGFlowError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class RAGFlowAuthError(RAGFlowError):
    """The API key is missing or invalid, or it may not do this (HTTP 401/403, code 109)."""


class RAGFlowNotFoundError(RAGFlowError):
    """The dataset, document, chunk or route does not exist (or is not visible to this key)."""


class RAGFlowConflictError(RAGFlowError):
    """The request conflicts with existing state (duplicate name, already running, ...)."""


class RAGFlowRateLimitedError(RAGFlowError):
    """HTTP 429. ``retry_after`` holds the server's ``Retry-After`` in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RAGFlowUnavailableError(RAGFlowError):
    """The server could not be reached or failed (HTTP 5xx, connection error, timeout).

    ``retry_after`` holds the server's ``Retry-After`` in seconds, if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RAGFlowPayloadTooLargeError(RAGFlowError):
    """HTTP 413: the request body is larger than the server (or its proxy) accepts."""


class RAGFlowPartialUploadError(RAGFlowError):
    """An upload request in which some files were stored and others were not.

    RAGFlow reports this as code 500 with the stored documents in ``data``. It is also raised
    when a later batch of a multi-batch upload fails after earlier batches were stored.

    Attributes:
        uploaded: The documents that were stored (in input order).
        failed_names: Names of the input files that were not stored.
    """

    def __init__(
        self,
        message: str,
        *,
        uploaded: Sequence[Document] = (),
        failed_names: Sequence[str] = (),
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.uploaded: list[Document] = list(uploaded)
        self.failed_names: list[str] = list(failed_names)


class RAGFlowIncompleteListingError(RAGFlowError):
    """A paged listing could not be proven complete.

    Raised when a page came back without ``data``, shorter than the page size before ``total``
    items were seen, or when ``total`` shrank between pages (documents were deleted while the
    listing ran, so offset paging may have skipped some). Acting on such a listing would upload
    duplicates or miss deletions, so callers must not treat it as the whole dataset.

    Attributes:
        seen: Distinct items seen before giving up.
        total: The server's last ``total`` (``None`` when it sent none).
        changed: True when the listing changed while it ran (a fresh pass may succeed).
    """

    def __init__(
        self,
        message: str,
        *,
        seen: int = 0,
        total: int | None = None,
        changed: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.seen = seen
        self.total = total
        self.changed = changed


class RAGFlowOutcomeUnknownError(RAGFlowError):
    """A non-idempotent call failed after the request was sent: it may or may not have happened.

    The client never resends such a call blindly (that could create a duplicate).
    """


class RAGFlowUploadAmbiguousError(RAGFlowOutcomeUnknownError):
    """An upload whose outcome is unknown (timeout or reset after the whole body was sent).

    The client does not resend it and does not guess: the caller reconciles on its next listing
    (the sync adopts what landed and uploads what did not).

    Attributes:
        file_names: Names of the files of the request whose outcome is unknown.
        uploaded: Documents stored by earlier batches of the same call (known good).
        not_sent: Names of files of later batches that were never sent.
    """

    def __init__(
        self,
        message: str,
        *,
        file_names: Sequence[str] = (),
        uploaded: Sequence[Document] = (),
        not_sent: Sequence[str] = (),
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.file_names: list[str] = list(file_names)
        self.uploaded: list[Document] = list(uploaded)
        self.not_sent: list[str] = list(not_sent)


# --------------------------------------------------------------------------- mapping

_NOT_FOUND = re.compile(
    r"(can't find|cannot find|can not find|not found|doesn't exist|does not exist|"
    r"don't own|do not own|doesn't own|not own|lacks permission|do not belong|"
    r"does not have the document|doesn't have the document|no such|invalid dataset id|"
    r"not belong)",
    re.IGNORECASE,
)
_CONFLICT = re.compile(
    r"(already exist|duplicat|already running|currently being processed|in progress|"
    r"already completed)",
    re.IGNORECASE,
)
_AUTH_CODES = {109, 401, 403}


AUTH_HINT = "check RAGFLOW_API_KEY / --api-key"
"""What to check when the server refuses the key (shown in every auth error)."""

_HTML = re.compile(r"^\s*(<!doctype html|<html|<head|<body|<\?xml|<h1|<title)", re.IGNORECASE)
_TITLE = re.compile(r"<(title|h1)[^>]*>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_WERKZEUG = re.compile(r"^<\w+ '(\d{3}): ([^']*)'>$")  # "<Unauthorized '401: Unauthorized'>"
_MAX_MESSAGE = 300


def short_message(text: str, *, http_status: int | None = None) -> str:
    """One line of at most 300 characters: an HTML page becomes its title (or its status line),
    a multi-line text its first non-empty line.

    Example:
        >>> short_message("<html><title>502 Bad Gateway</title><body>...</body></html>")
        '502 Bad Gateway'
        >>> short_message("<Unauthorized '401: Unauthorized'>")
        '401 Unauthorized'
    """
    text = (text or "").strip()
    if not text:
        return ""
    werkzeug = _WERKZEUG.match(text)
    if werkzeug:
        return f"{werkzeug.group(1)} {werkzeug.group(2)}".strip()
    if _HTML.match(text):
        title = _TITLE.search(text)
        line = " ".join(_TAG.sub(" ", title.group(2) if title else text).split())
        line = line[:120] if title is None else line[:_MAX_MESSAGE]
        return line or (f"HTTP {http_status}" if http_status else "an HTML page")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) > _MAX_MESSAGE:
        first = first[: _MAX_MESSAGE - 1] + "…"
    return first


def _auth_message(message: str, status: int | None) -> str:
    base = message or f"HTTP {status} unauthorized"
    return f"the server refused the API key ({base}); {AUTH_HINT}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Example:
        >>> parse_retry_after("3")
        3.0
        >>> parse_retry_after(None) is None
        True
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import datetime as _dt

    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return max(0.0, (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds())


def error_from_reply(
    *,
    http_status: int | None,
    body: Mapping[str, Any] | None,
    method: str,
    route: str,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    text: str | None = None,
) -> RAGFlowError | None:
    """Map one HTTP reply to an exception, or ``None`` when it is a success.

    A reply is an error when its HTTP status is not 2xx **or** its JSON body has a non-zero
    ``code`` (RAGFlow's usual way), or when it is the pre-v0.25 "code 0, data false,
    `Authorization` can't be empty" answer to a missing key.

    Example:
        >>> err = error_from_reply(http_status=200, body={"code": 102, "message": "You don't own"
        ...     " the dataset x"}, method="GET", route="/api/v1/datasets")
        >>> type(err).__name__
        'RAGFlowNotFoundError'
    """
    secrets = list(secrets)
    headers = headers or {}
    code: int | None = None
    message = ""
    data: Any = None
    if isinstance(body, Mapping):
        raw_code = body.get("code")
        try:
            code = int(raw_code) if raw_code is not None else None
        except (TypeError, ValueError):
            code = None
        message = str(body.get("message") or body.get("error") or "")
        data = body.get("data")
    elif text:
        message = text
    message = redact(short_message(message, http_status=http_status), secrets)
    kw: dict[str, Any] = {
        "code": code,
        "http_status": http_status,
        "method": method,
        "route": route,
        "data": data,
    }
    status = http_status or 200

    if status >= 400 or (status < 200):
        if not message:
            message = f"HTTP {status}"
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if status == 401:
            return RAGFlowAuthError(_auth_message(message, status), **kw)
        if status == 403:
            return RAGFlowAuthError(message, **kw)
        if status == 404:
            return RAGFlowNotFoundError(message, **kw)
        if status == 409:
            return RAGFlowConflictError(message, **kw)
        if status == 413:
            return RAGFlowPayloadTooLargeError(message, **kw)
        if status == 429:
            return RAGFlowRateLimitedError(message, retry_after=retry_after, **kw)
        if status >= 500:
            return RAGFlowUnavailableError(message, retry_after=retry_after, **kw)
        return RAGFlowError(message, **kw)

    if not isinstance(body, Mapping):
        return RAGFlowError(message or "reply is not a JSON object", **kw)
    if code in (None, 0):
        # <= v0.24 answered a missing key with code 0 and data false.
        if data is False and "authorization" in message.lower():
            return RAGFlowAuthError(_auth_message(message, 401), **kw)
        if code is None and "code" not in body:
            return RAGFlowError(message or "reply has no `code`", **kw)
        return None
    if code in _AUTH_CODES:
        if code == 403:
            return RAGFlowAuthError(message or "forbidden", **kw)
        return RAGFlowAuthError(_auth_message(message, code), **kw)
    if code == 404 or _NOT_FOUND.search(message):
        return RAGFlowNotFoundError(message, **kw)
    if code == 409 or _CONFLICT.search(message):
        return RAGFlowConflictError(message, **kw)
    if code == 108:
        return RAGFlowAuthError(message, **kw)
    if code == 413:
        return RAGFlowPayloadTooLargeError(message, **kw)
    if code == 429:
        return RAGFlowRateLimitedError(message, **kw)
    return RAGFlowError(message or f"error code {code}", **kw)
