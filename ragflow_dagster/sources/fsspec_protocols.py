"""Protocol knowledge for :class:`~ragflow_dagster.sources.fsspec.FsspecSource`.

URIs to filesystems (``webdav+https://`` included), the extra that brings each implementation,
which protocols are object stores (listed flat), which need their calls serialised, and how each
one's listing metadata gives a modification time and a change token.

Example:
    >>> family("abfs"), EXTRAS["sftp"]
    ('az', 'sftp')
    >>> etag_of({"etag": '"0x8DB"'}), md5_of({"md5Hash": "XUFAKrxLKna5cZ2REBfFkg=="})
    ('0x8DB', '5d41402abc4b2a76b9719d911017c592')
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from ragflow_dagster.sources.base import SourceError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

TokenKind = Literal["auto", "etag", "md5", "version", "size_mtime"]
ListingMode = Literal["auto", "walk", "flat"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

EXTRAS: dict[str, str] = {
    "webdav": "webdav",
    "dav": "webdav",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
    "sftp": "sftp",
    "ssh": "sftp",
    "gcs": "gcs",
    "gs": "gcs",
    "smb": "smb",
}
"""The ``ragflow-dagster[...]`` extra that brings each protocol's implementation."""

FLAT_PROTOCOLS = frozenset({"az", "abfs", "abfss", "adl", "gcs", "gs", "s3", "s3a", "oss", "r2"})
AUTO_TOKENS: dict[str, tuple[str, ...]] = {
    "webdav": ("etag", "size_mtime"),
    "az": ("md5", "etag"),
    "gcs": ("md5",),
    "s3": ("etag",),
}
_FAMILY = {
    "dav": "webdav",
    "abfs": "az",
    "abfss": "az",
    "adl": "az",
    "gs": "gcs",
    "s3a": "s3",
    "ssh": "sftp",
}
CONTENT_KINDS = frozenset({"md5"})
URL_ESCAPES = str.maketrans({"%": "%25", "#": "%23", "?": "%3F"})
LISTINGS_CACHED = frozenset({"az", "gcs", "s3"})
ONE_AT_A_TIME = frozenset({"sftp", "ssh", "ftp", "smb"})
"""Implementations whose client must not be used from two threads at once (one paramiko SFTP
channel loses responses under concurrent requests): their calls are serialised."""


def family(protocol: str) -> str:
    return _FAMILY.get(protocol, protocol)


def missing_extra(protocol: str, exc: BaseException) -> ImportError:
    extra = EXTRAS.get(protocol, "fsspec")
    return ImportError(
        f"the {protocol!r} protocol needs an optional dependency that is not installed "
        f"({exc}); install it with: pip install 'ragflow-dagster[{extra}]'"
    )


def _import_fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with every extra
        raise missing_extra("fsspec", exc) from exc
    return fsspec


def fsspec_config() -> list[Mapping[str, Any]]:
    """fsspec's own configuration per protocol (``FSSPEC_<PROTOCOL>_<OPTION>`` variables,
    ``FSSPEC_<PROTOCOL>='{json}'``, config files): options that reach the implementations too,
    so their secrets are scrubbed as well. Empty when fsspec is not installed."""
    try:
        from fsspec.config import conf
    except ImportError:
        return []
    return [v for v in conf.values() if isinstance(v, Mapping)]


def _configured(protocol: str) -> dict[str, Any]:
    from fsspec.config import conf

    value = conf.get(protocol)
    return dict(value) if isinstance(value, Mapping) else {}


def parse_uri(
    uri: str, storage_options: Mapping[str, Any]
) -> tuple[AbstractFileSystem, str, str, str]:
    """``(filesystem, root, protocol, display uri)`` for a URI, refusing inline passwords."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme or "://" not in uri:
        raise ValueError(f"not a filesystem URI (expected protocol://...): {uri!r}")
    if parts.password is not None:
        shown = _display(parts._replace(query="", fragment=""))
        raise ValueError(
            f"credentials in the source URI are not accepted ({shown}): pass them in "
            "storage_options (e.g. auth=(user, password), password=..., account_key=...) "
            "or through the environment"
        )
    if parts.query:
        shown = _display(parts._replace(query="", fragment=""))
        raise ValueError(
            f"a query string in the source URI is not accepted ({shown}?...): pass options "
            "(SAS tokens included) in storage_options"
        )
    display = _display(parts._replace(fragment=""))
    fsspec = _import_fsspec()
    base, plus, transport = scheme.partition("+")
    if base in ("webdav", "dav"):
        if not plus or transport not in ("http", "https"):
            raise ValueError(
                f"WebDAV URIs name their transport: webdav+https://host/path, not {uri!r}"
            )
        url = urlunsplit((transport, parts.netloc, parts.path, "", ""))
        try:
            from webdav4.fsspec import WebdavFileSystem
        except ImportError as exc:
            raise missing_extra("webdav", exc) from exc
        options = {**_configured("webdav"), **storage_options}
        if isinstance(options.get("auth"), list):  # from JSON configuration: httpx wants a tuple
            options["auth"] = tuple(options["auth"])
        return WebdavFileSystem(url, **options), "", "webdav", display
    if plus:
        raise ValueError(f"unsupported source URI scheme {scheme!r} in {display!r}")
    try:
        cls = fsspec.get_filesystem_class(scheme)
    except ImportError as exc:
        raise missing_extra(scheme, exc) from exc
    except ValueError as exc:
        raise ValueError(
            f"unsupported source URI scheme {scheme!r} in {display!r}: no fsspec "
            "implementation is registered for it"
        ) from exc
    options = dict(cls._get_kwargs_from_urls(uri))
    if family(scheme) in LISTINGS_CACHED:  # a cached listing would hide changes
        options["use_listings_cache"] = False
    options.update(storage_options)
    try:
        fs = cls(**options)
    except ImportError as exc:
        raise missing_extra(scheme, exc) from exc
    except Exception as exc:  # implementations that connect at once (sftp, ftp, smb)
        raise SourceError(f"cannot connect to {display}: {type(exc).__name__}: {exc}") from None
    root = cls._strip_protocol(uri)
    return fs, root, scheme, display


def _display(parts: Any) -> str:
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = f"?{parts.query}" if parts.query else ""
    text = f"{parts.scheme}://{netloc}{parts.path}"
    return (text.rstrip("/") if parts.path.strip("/") or netloc else text) + query


def _ns(value: Any) -> int | None:
    """A modification time as integer nanoseconds since the epoch (``None`` when unknown)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, (int, float)):
        return round(float(value) * 1_000_000) * 1000
    if isinstance(value, str):
        try:
            return _ns(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


_MTIME_KEYS = ("mtime", "modified", "last_modified", "LastModified", "updated", "created")


def mtime_ns(info: Mapping[str, Any]) -> int | None:
    for key in _MTIME_KEYS:
        if key in info:
            ns = _ns(info[key])
            if ns is not None:
                return ns
    return None


def etag_of(info: Mapping[str, Any]) -> str | None:
    value = info.get("etag") or info.get("ETag") or info.get("getetag")
    if not value:
        return None
    text = str(value).strip()
    if text.startswith("W/"):
        text = text[2:]
    return text.strip('"') or None


def md5_of(info: Mapping[str, Any]) -> str | None:
    settings = info.get("content_settings")
    raw: Any = None
    if isinstance(settings, Mapping):
        raw = settings.get("content_md5")
    elif settings is not None:
        raw = getattr(settings, "content_md5", None)  # azure ContentSettings object
    if raw is None:
        raw = info.get("md5Hash") or info.get("md5") or info.get("content_md5")
    if not raw:
        return None
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).hex()
    text = str(raw)
    if len(text) == 32 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def version_of(info: Mapping[str, Any]) -> str | None:
    for key in ("version_id", "VersionId", "generation", "versionId"):
        value = info.get(key)
        if value not in (None, ""):
            return str(value)
    return None


__all__ = [
    "AUTO_TOKENS",
    "CONTENT_KINDS",
    "EXTRAS",
    "FLAT_PROTOCOLS",
    "LISTINGS_CACHED",
    "ONE_AT_A_TIME",
    "URL_ESCAPES",
    "ListingMode",
    "TokenKind",
    "etag_of",
    "family",
    "fsspec_config",
    "md5_of",
    "missing_extra",
    "mtime_ns",
    "parse_uri",
    "version_of",
]
