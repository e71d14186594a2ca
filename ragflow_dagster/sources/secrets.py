"""Keeping the credentials of a source out of every text it produces.

A :class:`Scrubber` is built from a source's ``storage_options`` (and the environment variables
the fsspec implementations read credentials from); calling it on a text replaces every secret
value, and the secret parts of connection strings, with ``***``.

Example:
    >>> scrub = Scrubber.from_options({"auth": ("me", "s3cr3t-pw"), "account_name": "acct"})
    >>> scrub("401 for me:s3cr3t-pw at acct")
    '401 for me:*** at acct'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_SECRET_KEY = re.compile(
    r"pass|secret|token|key|sas|credential|auth|connection_string|signature|private|cookie",
    re.IGNORECASE,
)
_NOT_SECRET = frozenset({"key_filename", "known_hosts", "username", "user", "account_name"})
_CONN_PART = re.compile(
    r"(?:AccountKey|SharedAccessSignature|SharedAccessKey|sig|password)=([^;&\s]+)", re.IGNORECASE
)
_ENV = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
_MIN_LEN = 4  # shorter values would scrub ordinary words


def _values(value: Any, *, first_is_user: bool = False) -> Iterable[str]:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        yield value
        yield from _CONN_PART.findall(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if str(k).lower() not in _NOT_SECRET:
                yield from _values(v)
    elif isinstance(value, (tuple, list)):
        items = list(value)
        if first_is_user and len(items) == 2:  # auth=(user, password)
            items = items[1:]
        for v in items:
            yield from _values(v)
    else:
        for attr in ("password", "secret", "token", "_password", "credential"):
            inner = getattr(value, attr, None)  # e.g. httpx.BasicAuth keeps its parts private
            if isinstance(inner, (str, bytes)):
                yield from _values(inner)


@dataclass(frozen=True)
class Scrubber:
    """Replaces known secret values in texts with ``***``.

    Attributes:
        secrets: The values to hide, longest first.
    """

    secrets: tuple[str, ...] = ()

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
        more: Iterable[Mapping[str, Any]] = (),
    ) -> Scrubber:
        """Collect the secrets of ``storage_options`` (by key name) and of the environment.

        Args:
            options: The storage options.
            environ: The environment (default: ``os.environ``).
            more: Further option mappings that reach the implementation (fsspec's own
                configuration, ``FSSPEC_<PROTOCOL>...`` variables and config files).
        """
        found: set[str] = set()
        for mapping in (options, *more):
            for key, value in mapping.items():
                name = str(key).lower()
                if name in _NOT_SECRET or not _SECRET_KEY.search(name):
                    continue
                found.update(_values(value, first_is_user=name == "auth"))
        env = os.environ if environ is None else environ
        for var in _ENV:
            value = env.get(var)
            if value:
                found.update(_values(value))
        usable = sorted((s for s in found if len(s) >= _MIN_LEN), key=len, reverse=True)
        return cls(tuple(usable))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"Scrubber({len(self.secrets)} secrets)"


__all__ = ["Scrubber"]
