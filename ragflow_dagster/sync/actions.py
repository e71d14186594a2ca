"""The planner's vocabulary: what it reads of a document, and the actions a plan is made of.

Records only (frozen dataclasses), no logic: :mod:`.plan` builds them, :mod:`.execute` carries
them out, :mod:`.report` and :mod:`.verify` read them.

Example:
    >>> from ragflow_dagster.sync.actions import Unchanged
    >>> Unchanged(path="a.txt", doc_id="d1").kind
    'unchanged'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragflow_dagster.sources.base import SourceEntry

PARSED = "DONE"
RUNNING_STATES = frozenset({"RUNNING"})
UNPARSED_STATES = frozenset({"UNSTART"})
FAILED_STATES = frozenset({"FAIL", "CANCEL"})


class RemoteDocument(Protocol):
    """What the planner reads of a RAGFlow document (the client's ``Document`` fits).

    Read-only members, so frozen records (the client's frozen dataclass) satisfy it.
    """

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def run(self) -> str: ...
    @property
    def chunk_count(self) -> int: ...
    @property
    def meta_fields(self) -> Mapping[str, Any]: ...
    @property
    def create_time(self) -> int: ...
    @property
    def chunk_method(self) -> str: ...
    @property
    def parser_config(self) -> Mapping[str, Any]: ...
    @property
    def progress_msg(self) -> str: ...
    @property
    def process_begin_at(self) -> str | None: ...


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upload:
    """A new path: upload, set metadata, parse."""

    entry: SourceEntry
    kind: str = "upload"

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True, slots=True)
class Replace:
    """Same path, new content: upload the new version, parse it, then delete ``old_ids``.

    ``detail`` says why when it is not a plain edit (``moved from a.md, extension changed``)."""

    entry: SourceEntry
    old_ids: tuple[str, ...]
    detail: str = ""
    kind: str = "replace"

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True, slots=True)
class Adopt:
    """A document to trust only once its bytes are proven equal to the file's.

    Either a leftover of an interrupted upload (``leftover``: unlabelled, named with the upload
    mark) or a managed document whose label was edited by hand. The executor downloads and
    hashes it. Equal: it is labelled (a leftover is also renamed to its path), parsed when
    ``needs_parse``, and ``old_ids`` are deleted once it has parsed. Not equal: a leftover is
    deleted, a managed document joins ``old_ids``, and the file is uploaded as a replace."""

    entry: SourceEntry
    doc_id: str
    old_ids: tuple[str, ...] = ()
    doc_name: str = ""
    leftover: bool = True
    needs_parse: bool = True
    kind: str = "adopt"

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True, slots=True)
class Move:
    """Same content at a new path, gone from the old one: rename and relabel, no re-upload.

    ``known_sha256``: the document's stored sha256, valid for the entry when the match was made on
    a content-hash change token (an S3 ETag), so the file need not be read to relabel it."""

    entry: SourceEntry
    doc_id: str
    from_path: str
    needs_parse: bool = False
    known_sha256: str | None = None
    kind: str = "move"

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True, slots=True)
class Relabel:
    """Same content, new label (a touched file, or mapped metadata that changed): one PATCH of
    the metadata, nothing re-uploaded or re-parsed. ``changes``: the mapped keys that differ
    (``department HR→People``); ``known_sha256``: the stored sha256 (no need to read the file);
    ``kept``: the document's keys set by hand, written back with the new label."""

    entry: SourceEntry
    doc_id: str
    needs_parse: bool = False
    changes: tuple[str, ...] = ()
    known_sha256: str | None = None
    kept: Mapping[str, Any] | None = None
    kind: str = "relabel"

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True, slots=True)
class Reparse:
    """The path's document failed, was cancelled or never parsed: parse it (again)."""

    path: str
    doc_id: str
    reason: str
    kind: str = "reparse"


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete documents. ``reason``: ``removed`` (file gone), ``duplicate`` (a second document with
    the same content for one path), ``superseded`` (an older version of the path's content),
    ``stray`` (an unlabelled leftover of an interrupted run whose path is served).

    ``wait_for``: a document id that must finish parsing first (no window without content); when
    it fails instead, the delete is not done."""

    path: str
    doc_ids: tuple[str, ...]
    reason: str
    wait_for: str | None = None
    kind: str = "delete"


@dataclass(frozen=True, slots=True)
class Unchanged:
    """In sync. ``pending`` when its parse is still running."""

    path: str
    doc_id: str
    pending: bool = False
    kind: str = "unchanged"


@dataclass(frozen=True, slots=True)
class Rechunk:
    """The path's parse rule changed: set ``chunk_method`` / ``parser_config`` (RAGFlow resets
    the document when the method changes), relabel, and parse this one document again.

    ``reason``: what differs (``chunk_method naive→qa``); ``changes``: metadata changes made in
    the same PATCH; ``known_sha256``: the stored sha256 (the file need not be read)."""

    entry: SourceEntry
    doc_id: str
    chunk_method: str
    parser_config: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    changes: tuple[str, ...] = ()
    known_sha256: str | None = None
    kept: Mapping[str, Any] | None = None
    kind: str = "rechunk"

    @property
    def path(self) -> str:
        return self.entry.path


Action = Upload | Replace | Adopt | Move | Relabel | Rechunk | Reparse | Delete | Unchanged

__all__ = [
    "FAILED_STATES",
    "PARSED",
    "RUNNING_STATES",
    "UNPARSED_STATES",
    "Action",
    "Adopt",
    "Delete",
    "Move",
    "Rechunk",
    "Relabel",
    "RemoteDocument",
    "Reparse",
    "Replace",
    "Unchanged",
    "Upload",
]
