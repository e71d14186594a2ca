"""The identity contract: how a RAGFlow document is tied to a source file.

Every document the package manages carries these ``meta_fields`` (a public contract: users filter
retrieval on them with ``metadata_condition``):

=================  ==========================================================================
key                value
=================  ==========================================================================
``managed_by``     always ``"ragflow-dagster"``; documents without it are never touched
``source_uri``     URI of the file (``file:///abs/root/a/b.pdf`` or ``s3://bucket/prefix/a/b.pdf``)
``source_path``    relative POSIX path inside the source root; the identity of the document
``sha256``         hex sha256 of the uploaded bytes
``size``           size in bytes of the uploaded bytes
``change_token``   the source's cheap change token when uploaded (``size-mtime_ns`` or the ETag)
``label_check``    16 hex digits binding the four keys above; a hand-edited label fails it, and
                   the sync then proves the document's content before trusting or relabelling it
=================  ==========================================================================

These keys are reserved: a document's other ``meta_fields`` are the user's.

While an upload is in flight (between the upload request and the label) the document is named
after its path with the mark ``.rfd-pending`` before the extension (``a/notes.rfd-pending.md``).
An unlabelled document with that mark is a leftover of an interrupted run: the next run adopts it
when its bytes are proven equal to the file's, and deletes it otherwise. Unlabelled documents
without the mark were uploaded by someone else and are never touched.

The document *name* shows the relative path as far as the server allows (255 UTF-8 bytes; longer
paths keep their start, a short hash and the extension).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from ragflow_dagster.client.naming import NAME_LIMIT_BYTES, decode_wire_name

MANAGED_BY = "ragflow-dagster"

META_MANAGED_BY = "managed_by"
META_SOURCE_URI = "source_uri"
META_SOURCE_PATH = "source_path"
META_SHA256 = "sha256"
META_SIZE = "size"
META_CHANGE_TOKEN = "change_token"
META_LABEL_CHECK = "label_check"

UPLOAD_MARK = ".rfd-pending"
"""Inserted before the extension of a document's name while its upload is not labelled yet."""

__all__ = [
    "MANAGED_BY",
    "META_CHANGE_TOKEN",
    "META_KEYS",
    "META_LABEL_CHECK",
    "META_MANAGED_BY",
    "META_SHA256",
    "META_SIZE",
    "META_SOURCE_PATH",
    "META_SOURCE_URI",
    "PARTITION_KEY_LIMIT",
    "UPLOAD_MARK",
    "LabelChecks",
    "document_name",
    "label_check",
    "label_is_consistent",
    "managed_meta",
    "managed_path",
    "matches_document_name",
    "partition_key",
    "pending_upload_key",
    "shard_key",
    "shard_keys",
    "shard_of",
    "upload_name",
]

META_KEYS = (
    META_MANAGED_BY,
    META_SOURCE_URI,
    META_SOURCE_PATH,
    META_SHA256,
    META_SIZE,
    META_CHANGE_TOKEN,
    META_LABEL_CHECK,
)


PARTITION_KEY_LIMIT = 64
"""Longest partition key kept verbatim (MySQL run storage indexes the first 64 characters)."""

_sha256 = hashlib.sha256
_RENAMED = re.compile(r"^(?P<stem>.*?)\((?P<n>\d+)\)$")
_UNSAFE_KEY_CHARS = re.compile(r"[|,\[\]\x00-\x1f\x7f]")


def managed_meta(
    *, source_uri: str, path: str, sha256: str, size: int, change_token: str
) -> dict[str, str | int]:
    """The ``meta_fields`` a managed document carries.

    Example:
        >>> managed_meta(source_uri="s3://b/a.txt", path="a.txt", sha256="ab", size=2,
        ...              change_token="e1")["managed_by"]
        'ragflow-dagster'
    """
    return {
        META_MANAGED_BY: MANAGED_BY,
        META_SOURCE_URI: source_uri,
        META_SOURCE_PATH: path,
        META_SHA256: sha256,
        META_SIZE: int(size),
        META_CHANGE_TOKEN: change_token,
        META_LABEL_CHECK: label_check(
            path=path, sha256=sha256, size=size, change_token=change_token
        ),
    }


def label_check(*, path: str, sha256: str, size: int, change_token: str) -> str:
    """The ``label_check`` value binding a label's fingerprint keys together.

    Example:
        >>> len(label_check(path="a.txt", sha256="ab", size=2, change_token="e1"))
        16
    """
    text = "\x00".join((path, sha256, str(int(size)), str(change_token)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def label_is_consistent(meta_fields: Mapping[str, Any] | None) -> bool:
    """False when a managed label was edited by hand (its ``label_check`` no longer fits).

    Labels written before ``label_check`` existed (no such key) count as consistent.

    Example:
        >>> meta = managed_meta(source_uri="file:///r/a", path="a", sha256="ab", size=2,
        ...                     change_token="t")
        >>> label_is_consistent(meta), label_is_consistent({**meta, "size": 3})
        (True, False)
    """
    if not meta_fields:
        return False
    get = meta_fields.get
    stored = get(META_LABEL_CHECK)
    if stored is None:
        return True
    size = get(META_SIZE)
    if type(size) is not int:
        try:
            size = int(size)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    # label_check(), inlined: this runs once per document of every listing
    path, sha, token = get(META_SOURCE_PATH) or "", get(META_SHA256) or "", get(META_CHANGE_TOKEN)
    text = f"{path}\x00{sha}\x00{size}\x00{token}"
    return stored == _sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class LabelChecks:
    """:func:`label_is_consistent` computed once per document of a sync, not once per use.

    The known fingerprints, the planner and every round's re-plan ask the same question of the
    same labels; the answer is kept by document id for the ``meta_fields`` object it was
    computed on (a new listing brings new objects, so a relabelled document is checked again).

    Example:
        >>> checks = LabelChecks()
        >>> meta = managed_meta(source_uri="file:///r/a", path="a", sha256="ab", size=2,
        ...                     change_token="t")
        >>> checks.consistent("d1", meta), checks.consistent("d1", {**meta, "size": 3})
        (True, False)
    """

    __slots__ = ("_bad", "_good")

    def __init__(self) -> None:
        # the labels checked, by document id: one dict per answer (no pair per document, which
        # weighed 64 MB at a million documents)
        self._good: dict[str, Mapping[str, Any] | None] = {}
        self._bad: dict[str, Mapping[str, Any] | None] = {}

    def consistent(self, doc_id: str, meta_fields: Mapping[str, Any] | None) -> bool:
        """:func:`label_is_consistent` of ``meta_fields``, document ``doc_id``'s label."""
        if self._good.get(doc_id, self) is meta_fields:
            return True
        if self._bad.get(doc_id, self) is meta_fields:
            return False
        ok = label_is_consistent(meta_fields)
        (self._good if ok else self._bad)[doc_id] = meta_fields
        (self._bad if ok else self._good).pop(doc_id, None)
        return ok


def managed_path(meta_fields: Mapping[str, Any] | None) -> str | None:
    """The source path of a managed document, or ``None`` when the document is not ours."""
    if not meta_fields or meta_fields.get(META_MANAGED_BY) != MANAGED_BY:
        return None
    path = meta_fields.get(META_SOURCE_PATH)
    return path if isinstance(path, str) and path else None


def _split_ext(name: str) -> tuple[str, str]:
    base = posixpath.basename(name)
    dot = base.rfind(".")
    if dot <= 0:
        return name, ""
    return name[: len(name) - len(base) + dot], base[dot:]


def document_name(path: str) -> str:
    """The RAGFlow document name for a relative path.

    The full path when it fits in 255 UTF-8 bytes; otherwise its start, ``~`` and 8 hex digits of
    its sha1, and the extension (RAGFlow derives the file type from it).

    Example:
        >>> document_name("reports/2024/q1.pdf")
        'reports/2024/q1.pdf'
    """
    if len(path.encode("utf-8")) <= NAME_LIMIT_BYTES:
        return path
    stem, ext = _split_ext(path)
    tag = "~" + hashlib.sha1(path.encode("utf-8")).hexdigest()[:8]
    budget = NAME_LIMIT_BYTES - len(ext.encode("utf-8")) - len(tag)
    head = stem.encode("utf-8")[: max(budget, 0)].decode("utf-8", errors="ignore")
    return head + tag + ext


def upload_name(path: str) -> str:
    """The name a document carries from its upload until it is labelled.

    :func:`document_name` with :data:`UPLOAD_MARK` before the extension, within 255 bytes.

    Example:
        >>> upload_name("a/notes.md")
        'a/notes.rfd-pending.md'
    """
    stem, ext = _split_ext(document_name(path))
    name = stem + UPLOAD_MARK + ext
    if len(name.encode("utf-8")) <= NAME_LIMIT_BYTES:
        return name
    tag = "~" + hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    budget = NAME_LIMIT_BYTES - len((tag + UPLOAD_MARK + ext).encode("utf-8"))
    head = stem.encode("utf-8")[: max(budget, 0)].decode("utf-8", errors="ignore")
    return head + tag + UPLOAD_MARK + ext


def pending_upload_key(name: str) -> str | None:
    """For a document name carrying :data:`UPLOAD_MARK`: the :func:`upload_name` it was uploaded
    under (the server's ``(k)`` renaming and multipart escapes undone); else ``None``.

    Example:
        >>> pending_upload_key("a/notes.rfd-pending(2).md")
        'a/notes.rfd-pending.md'
        >>> pending_upload_key("a/notes.md") is None
        True
    """
    stem, ext = _split_ext(decode_wire_name(name))
    m = _RENAMED.match(stem)
    if m and m.group("stem").endswith(UPLOAD_MARK):
        stem = m.group("stem")
    if not stem.endswith(UPLOAD_MARK):
        return None
    return stem + ext


def matches_document_name(doc_name: str, path: str) -> bool:
    """True when ``doc_name`` names ``path``, possibly renamed by the server (``a(1).txt``).

    Example:
        >>> matches_document_name("docs/a(2).txt", "docs/a.txt")
        True
    """
    expected = document_name(path)
    doc_name = decode_wire_name(doc_name)
    if doc_name == expected:
        return True
    exp_stem, exp_ext = _split_ext(expected)
    stem, ext = _split_ext(doc_name)
    if ext != exp_ext:
        return False
    m = _RENAMED.match(stem)
    return m is not None and m.group("stem").rstrip() == exp_stem.rstrip()


def partition_key(path: str) -> str:
    """The dynamic-partition key of a relative path.

    The path itself when it is short and clean; otherwise ``h-`` and 20 hex digits of its sha256
    (the path is kept in run metadata). Keys never contain ``...`` (Dagster's range separator) nor
    ``| , [ ]`` and stay within 64 characters.

    Example:
        >>> partition_key("a/b.txt")
        'a/b.txt'
        >>> partition_key("x" * 80 + ".txt")[:2]
        'h-'
    """
    if (
        len(path) <= PARTITION_KEY_LIMIT
        and "..." not in path
        and not path.startswith("h-")
        and path == path.strip()
        and not _UNSAFE_KEY_CHARS.search(path)
    ):
        return path
    return "h-" + hashlib.sha256(path.encode("utf-8")).hexdigest()[:20]


def shard_of(path: str, shards: int) -> int:
    """Stable shard number of a path for hash-sharded static partitions."""
    digest = hashlib.blake2b(path.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_key(index: int, shards: int) -> str:
    """Static partition key of shard ``index`` (zero-padded, sorts in order)."""
    width = len(str(shards - 1))
    return f"shard-{index:0{width}d}"


def shard_keys(shards: int) -> list[str]:
    """All static partition keys for ``shards`` shards."""
    return [shard_key(i, shards) for i in range(shards)]
