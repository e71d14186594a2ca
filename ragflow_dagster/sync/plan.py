"""Pure planning: from (inventory, documents in the dataset) to the actions that bring them in sync.

Nothing here does I/O, so every case is tested without a server. The executor
(:mod:`ragflow_dagster.sync.execute`) carries a plan out.

Rules:

* Only *managed* documents (``meta_fields.managed_by == "ragflow-dagster"``) are ever changed or
  deleted, with one exception: a document left between upload and metadata update by an
  interrupted run (no metadata, never parsed, named after an inventory path, same size) is
  recognised and adopted, or deleted when the path already has its document.
* A path's document "matches" when its stored sha256 equals the file's (or, when the file's sha256
  is not known yet, its stored change token equals the file's and the sizes agree).
* Deletions of documents whose file is gone happen only after a complete listing, never under a
  prefix that could not be listed, and never beyond the mass-delete guard.
* A replaced document is deleted only once its successor has parsed (the executor does this), so
  there is no window without content.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sync.identity import (
    META_CHANGE_TOKEN,
    META_SHA256,
    META_SIZE,
    document_name,
    managed_path,
)

PARSED = "DONE"
_RENAMED_STEM = re.compile(r"^(.*?)\((\d+)\)$")
RUNNING_STATES = frozenset({"RUNNING"})
UNPARSED_STATES = frozenset({"UNSTART"})
FAILED_STATES = frozenset({"FAIL", "CANCEL"})


class RemoteDocument(Protocol):
    """What the planner reads of a RAGFlow document (the client's ``Document`` fits)."""

    id: str
    name: str
    size: int
    run: str
    chunk_count: int
    meta_fields: Mapping[str, Any]
    create_time: int


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
    """Same path, new content: upload the new version, parse it, then delete ``old_ids``."""

    entry: SourceEntry
    old_ids: tuple[str, ...]
    kind: str = "replace"

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True, slots=True)
class Adopt:
    """A document an interrupted run uploaded but never labelled: set metadata, parse, then delete
    ``old_ids`` (the previous version, when the interrupted run was a replace)."""

    entry: SourceEntry
    doc_id: str
    old_ids: tuple[str, ...] = ()
    doc_name: str = ""
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
    """Same content, new change token (a touched file): update metadata only."""

    entry: SourceEntry
    doc_id: str
    needs_parse: bool = False
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


Action = Upload | Replace | Adopt | Move | Relabel | Reparse | Delete | Unchanged


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Knobs of the planner.

    Attributes:
        listing_complete: False when the source listing failed part-way: no ``removed`` deletes.
        unlisted_prefixes: Path prefixes that could not be listed: nothing under them is deleted.
        in_scope: Restricts the paths acted on (a partition subset); ``None`` = every path. Moves
            may still take their document from any gone path.
        max_delete_fraction: The mass-delete guard: refuse to delete more than this fraction of the
            managed documents in one run (``removed`` deletes only).
        allow_mass_delete: Lift the guard.
        delete_removed: Delete documents whose file is gone (False: leave them).
        reparse_failed: Re-parse documents that ended in FAIL/CANCEL.
        adopt_interrupted: Recognise unlabelled leftovers of interrupted runs.
        change_token_is_content_hash: The source's change tokens identify content (S3 ETags).
        mass_delete_hint: How the caller lifts the guard, named in the guard's message
            (``allow_mass_delete=True``, the CLI's ``--allow-mass-delete``, a run config field).
    """

    listing_complete: bool = True
    unlisted_prefixes: tuple[str, ...] = ()
    in_scope: Callable[[str], bool] | None = None
    max_delete_fraction: float = 0.5
    allow_mass_delete: bool = False
    delete_removed: bool = True
    reparse_failed: bool = True
    adopt_interrupted: bool = True
    change_token_is_content_hash: bool = False
    mass_delete_hint: str = "allow_mass_delete=True"


@dataclass(frozen=True, slots=True)
class Plan:
    """The actions, in execution-independent order, plus what the guard withheld."""

    actions: tuple[Action, ...]
    withheld_deletes: tuple[Delete, ...] = ()
    guard_message: str | None = None
    managed_documents: int = 0

    @property
    def guard_refused(self) -> bool:
        return bool(self.withheld_deletes)

    def of_kind(self, kind: str) -> list[Action]:
        return [a for a in self.actions if a.kind == kind]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for action in self.actions:
            key = action.kind
            if isinstance(action, Delete):
                key = "delete" if action.reason == "removed" else "deduplicate"
            counts[key] += 1
        return dict(counts)

    @property
    def is_noop(self) -> bool:
        return all(isinstance(a, Unchanged) and not a.pending for a in self.actions)


# --------------------------------------------------------------------------------------------
# Planner
# --------------------------------------------------------------------------------------------


def _stored_sha(doc: RemoteDocument) -> str | None:
    value = doc.meta_fields.get(META_SHA256) if doc.meta_fields else None
    return value if isinstance(value, str) and value else None


def _stored_token(doc: RemoteDocument) -> str | None:
    value = doc.meta_fields.get(META_CHANGE_TOKEN) if doc.meta_fields else None
    return None if value is None else str(value)


def _stored_size(doc: RemoteDocument) -> int | None:
    value = doc.meta_fields.get(META_SIZE) if doc.meta_fields else None
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _content_matches(doc: RemoteDocument, entry: SourceEntry) -> bool:
    if entry.sha256 is not None:
        return _stored_sha(doc) == entry.sha256
    return _stored_token(doc) == entry.change_token and _stored_size(doc) == entry.size


def _preference(doc: RemoteDocument) -> tuple[int, int, int]:
    """Which of several matching documents to keep: parsed first, then most chunks, then oldest."""
    state_rank = {PARSED: 0, "RUNNING": 1, "UNSTART": 2}.get(doc.run, 3)
    return (state_rank, -(doc.chunk_count or 0), doc.create_time or 0)


def _queued(doc: RemoteDocument) -> bool:
    """UNSTART, but a parse task was received (RAGFlow shows its SCHEDULE state as UNSTART)."""
    return doc.run in UNPARSED_STATES and bool(
        getattr(doc, "progress_msg", "") or getattr(doc, "process_begin_at", None)
    )


def _parse_state(doc: RemoteDocument) -> str | None:
    """Why ``doc`` needs a parse, or None."""
    if doc.run in UNPARSED_STATES and not _queued(doc):
        return "never parsed"
    if doc.run in FAILED_STATES:
        return "failed" if doc.run == "FAIL" else "cancelled"
    return None


def _under(path: str, prefixes: Sequence[str]) -> bool:
    for prefix in prefixes:
        p = prefix.rstrip("/")
        if not p or path == p or path.startswith(p + "/"):
            return True
    return False


def plan_sync(
    entries: Iterable[SourceEntry],
    documents: Iterable[RemoteDocument],
    options: PlanOptions | None = None,
) -> Plan:
    """Decide what brings the dataset in sync with the inventory.

    Args:
        entries: The inventory (every listed file, not only those in scope).
        documents: Every document of the dataset (managed or not).
        options: Planner knobs.

    Returns:
        The plan. Actions of one path never conflict; ``withheld_deletes`` holds what the
        mass-delete guard refused.

    Example:
        >>> from ragflow_dagster.sources.base import SourceEntry
        >>> e = SourceEntry(path="a.txt", size=1, modified=0.0, change_token="1-0", sha256="aa")
        >>> [a.kind for a in plan_sync([e], []).actions]
        ['upload']
    """
    opts = options or PlanOptions()
    in_scope = opts.in_scope or (lambda _p: True)
    inventory: dict[str, SourceEntry] = {e.path: e for e in entries}

    managed: dict[str, list[RemoteDocument]] = defaultdict(list)
    unlabelled: list[RemoteDocument] = []
    for doc in documents:
        path = managed_path(doc.meta_fields)
        if path is not None:
            managed[path].append(doc)
        elif opts.adopt_interrupted and doc.run in UNPARSED_STATES and not doc.chunk_count:
            unlabelled.append(doc)
    managed_total = sum(len(v) for v in managed.values())

    # Leftovers of interrupted runs, by the path whose name they carry (same size only).
    leftovers: dict[str, list[RemoteDocument]] = defaultdict(list)
    if unlabelled:
        by_name = {document_name(p): p for p in inventory}
        for doc in unlabelled:
            path = by_name.get(doc.name) or by_name.get(_unrenamed(doc.name) or "")
            if path is not None and inventory[path].size == doc.size:
                leftovers[path].append(doc)

    can_delete_removed = opts.delete_removed and opts.listing_complete

    def removable(path: str) -> bool:
        return path not in inventory and not _under(path, opts.unlisted_prefixes)

    # Documents whose path is gone, available as move sources (any scope), by content.
    moves = _MoveIndex(
        ((path, doc) for path, docs in managed.items() if removable(path) for doc in docs),
        opts.change_token_is_content_hash,
    )

    actions: list[Action] = []
    removed_deletes: list[Delete] = []

    for path in sorted(set(inventory) | set(managed)):
        if not in_scope(path):
            continue
        entry = inventory.get(path)
        docs = managed.get(path, [])
        if entry is None:
            continue  # handled after moves are known
        strays = leftovers.get(path, [])
        matching = sorted((d for d in docs if _content_matches(d, entry)), key=_preference)
        if matching:
            keep, extra = matching[0], matching[1:]
            matching_ids = {d.id for d in matching}
            stale = tuple(d.id for d in docs if d.id not in matching_ids)
            actions.extend(_keep_actions(entry, keep, opts))
            dupes = tuple(d.id for d in extra)
            if dupes:
                actions.append(Delete(path=path, doc_ids=dupes, reason="duplicate"))
            if stale:
                wait_for = None if keep.run == PARSED else keep.id
                actions.append(
                    Delete(path=path, doc_ids=stale, reason="superseded", wait_for=wait_for)
                )
            if strays:
                actions.append(
                    Delete(path=path, doc_ids=tuple(d.id for d in strays), reason="stray")
                )
            continue
        old_ids = tuple(d.id for d in docs)
        if strays:
            adopt, *rest = sorted(strays, key=lambda d: d.create_time or 0, reverse=True)
            actions.append(
                Adopt(entry=entry, doc_id=adopt.id, old_ids=old_ids, doc_name=adopt.name)
            )
            if rest:
                actions.append(Delete(path=path, doc_ids=tuple(d.id for d in rest), reason="stray"))
            continue
        if docs:
            actions.append(Replace(entry=entry, old_ids=old_ids))
            continue
        source = moves.take(entry)
        if source is not None:
            from_path, doc = source
            actions.append(
                Move(
                    entry=entry,
                    doc_id=doc.id,
                    from_path=from_path,
                    needs_parse=opts.reparse_failed and _parse_state(doc) is not None,
                    known_sha256=_stored_sha(doc) if entry.sha256 is None else None,
                )
            )
            continue
        actions.append(Upload(entry=entry))

    for path, docs in sorted(managed.items()):
        if path in inventory or not in_scope(path):
            continue
        remaining = tuple(d.id for d in docs if d.id not in moves.used)
        if not remaining:
            continue
        if can_delete_removed and removable(path):
            removed_deletes.append(Delete(path=path, doc_ids=remaining, reason="removed"))

    guard_message = None
    withheld: tuple[Delete, ...] = ()
    doomed = sum(len(d.doc_ids) for d in removed_deletes)
    if doomed and not opts.allow_mass_delete and doomed > opts.max_delete_fraction * managed_total:
        withheld = tuple(removed_deletes)
        guard_message = (
            f"mass-delete guard: refusing to delete {doomed} of {managed_total} managed documents "
            f"(more than {opts.max_delete_fraction:.0%}); an unmounted folder or a wrong prefix "
            f"looks like this. Allow it explicitly ({opts.mass_delete_hint}) if it is intended."
        )
    else:
        actions.extend(removed_deletes)

    return Plan(
        actions=tuple(actions),
        withheld_deletes=withheld,
        guard_message=guard_message,
        managed_documents=managed_total,
    )


def _keep_actions(entry: SourceEntry, keep: RemoteDocument, opts: PlanOptions) -> list[Action]:
    reason = _parse_state(keep)
    needs_parse = reason is not None and (opts.reparse_failed or keep.run in UNPARSED_STATES)
    if _stored_token(keep) != entry.change_token or (
        entry.sha256 is not None and _stored_sha(keep) != entry.sha256
    ):
        return [Relabel(entry=entry, doc_id=keep.id, needs_parse=needs_parse)]
    if needs_parse and reason is not None:
        return [Reparse(path=entry.path, doc_id=keep.id, reason=reason)]
    pending = keep.run in RUNNING_STATES or _queued(keep)
    return [Unchanged(path=entry.path, doc_id=keep.id, pending=pending)]


def _unrenamed(name: str) -> str | None:
    """``a(2).txt`` -> ``a.txt``: the name before the server's duplicate renaming, if renamed."""
    slash = name.rfind("/")
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > slash + 1 else (name, "")
    m = _RENAMED_STEM.match(stem)
    return m.group(1).rstrip() + ext if m else None


class _MoveIndex:
    """Documents whose path is gone, by content, each usable once as the source of a move."""

    def __init__(self, gone: Iterable[tuple[str, RemoteDocument]], token_is_content: bool) -> None:
        self._by_sha: dict[str, list[tuple[str, RemoteDocument]]] = defaultdict(list)
        self._by_token: dict[tuple[str, int], list[tuple[str, RemoteDocument]]] = defaultdict(list)
        self._token_is_content = token_is_content
        self.used: set[str] = set()
        for path, doc in gone:
            sha = _stored_sha(doc)
            if sha is not None:
                self._by_sha[sha].append((path, doc))
            token, size = _stored_token(doc), _stored_size(doc)
            if token_is_content and token is not None and size is not None:
                self._by_token[(token, size)].append((path, doc))

    def take(self, entry: SourceEntry) -> tuple[str, RemoteDocument] | None:
        if entry.sha256 is not None:
            candidates = self._by_sha.get(entry.sha256, [])
        elif self._token_is_content:
            candidates = self._by_token.get((entry.change_token, entry.size), [])
        else:
            candidates = []
        free = [c for c in candidates if c[1].id not in self.used]
        if not free:
            return None
        best = min(free, key=lambda c: _preference(c[1]))
        self.used.add(best[1].id)
        return best
