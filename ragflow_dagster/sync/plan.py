"""Pure planning: from (inventory, documents in the dataset) to the actions that bring them in sync.

Nothing here does I/O, so every case is tested without a server; the records it returns are in
:mod:`.actions`. The executor
(:mod:`ragflow_dagster.sync.execute`) carries a plan out.

Rules:

* Only *managed* documents (``meta_fields.managed_by == "ragflow-dagster"``) are ever changed or
  deleted, with one exception: a leftover of an interrupted upload (unlabelled, and named with
  :data:`~ragflow_dagster.sync.identity.UPLOAD_MARK`, which only this package writes). It is
  adopted only after its bytes are proven equal to the file's (the executor downloads and hashes
  it), and deleted otherwise. Unlabelled documents without the mark are never touched.
* A path's document "matches" when its stored sha256 equals the file's (or, when the file's sha256
  is not known yet, its stored change token equals the file's and the sizes agree), and its label
  is consistent (a hand-edited label is proven against the content before it is trusted again).
* Every choice between documents is made on what never changes (creation time, then id), so two
  runs that look at the dataset at different moments pick the same keeper: overlapping runs
  converge on one document per path without a lock.
* A move renames a document only within the same extension (RAGFlow refuses other renames);
  otherwise the file is uploaded at its new path and the old document retired once that parsed.
* Deletions of documents whose file is gone happen only after a complete listing, never under a
  prefix that could not be listed, and never beyond the mass-delete guard.
* A replaced document is deleted only once its successor has parsed (the executor does this), so
  there is no window without content.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ragflow_dagster.client.naming import name_suffix
from ragflow_dagster.gcpause import gc_paused
from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sync.actions import (
    FAILED_STATES,
    PARSED,
    RUNNING_STATES,
    UNPARSED_STATES,
    Action,
    Adopt,
    Delete,
    Move,
    Rechunk,
    Relabel,
    RemoteDocument,
    Reparse,
    Replace,
    Unchanged,
    Upload,
)
from ragflow_dagster.sync.decide import kept_meta, mapped_action, meta_changes
from ragflow_dagster.sync.desired import Desired
from ragflow_dagster.sync.identity import (
    META_CHANGE_TOKEN,
    META_LABEL_CHECK,
    META_SHA256,
    META_SIZE,
    META_SOURCE_PATH,
    UPLOAD_MARK,
    LabelChecks,
    document_name,
    managed_path,
    pending_upload_key,
    upload_name,
)


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
        adopt_interrupted: Recognise leftovers of interrupted uploads (adopt or delete them).
        change_token_is_content_hash: The source's change tokens identify content (S3 ETags).
        mass_delete_hint: How the caller lifts the guard, named in the guard's message
            (``allow_mass_delete=True``, the CLI's ``--allow-mass-delete``, a run config field).
        desired: The mapped metadata and parse rule of a path (:mod:`.desired`); ``None``: none.
        label_checks: Label consistency already computed for these documents (shared with
            :func:`~ragflow_dagster.sync.engine.known_files` and later rounds); None: a new one.
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
    desired: Callable[[str], Desired | None] | None = None
    label_checks: LabelChecks | None = field(default=None, compare=False)


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
        return not self.withheld_deletes and all(
            isinstance(a, Unchanged) and not a.pending for a in self.actions
        )

    @property
    def actionable(self) -> tuple[Action, ...]:
        """The actions that change something (all but :class:`Unchanged`)."""
        return tuple(a for a in self.actions if not isinstance(a, Unchanged))

    @property
    def pending(self) -> tuple[Unchanged, ...]:
        """In-sync paths whose document is still parsing."""
        return tuple(a for a in self.actions if isinstance(a, Unchanged) and a.pending)


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
    if type(value) is int:
        return value
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _content_matches(doc: RemoteDocument, entry: SourceEntry, trusted: bool) -> bool:
    if not trusted:
        return False
    if entry.sha256 is not None:
        return _stored_sha(doc) == entry.sha256
    return _stored_token(doc) == entry.change_token and _stored_size(doc) == entry.size


def keeper_key(doc: RemoteDocument) -> tuple[int, str]:
    """Order among documents of one path: oldest first, then by id.

    Built only from what never changes, so every run, whenever it looks, keeps the same one."""
    return (int(doc.create_time or 0), str(doc.id))


def _queued(doc: RemoteDocument) -> bool:
    """UNSTART, but a parse task was received (RAGFlow shows its SCHEDULE state as UNSTART)."""
    return doc.run in UNPARSED_STATES and bool(doc.progress_msg or doc.process_begin_at)


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
    with gc_paused():  # builds one action per path, all long-lived
        return _plan(entries, documents, options or PlanOptions())


def _listed(found: RemoteDocument | list[RemoteDocument] | None) -> list[RemoteDocument]:
    """A path's documents as a list (see ``managed`` in :func:`_plan`)."""
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


def _plan(
    entries: Iterable[SourceEntry], documents: Iterable[RemoteDocument], opts: PlanOptions
) -> Plan:
    in_scope = opts.in_scope
    inventory: dict[str, SourceEntry] = {e.path: e for e in entries}
    checks = opts.label_checks if opts.label_checks is not None else LabelChecks()
    consistent = checks.consistent

    def _trusted(doc: RemoteDocument) -> bool:
        return consistent(doc.id, doc.meta_fields)

    # A path's one document as it is (a million one-item lists weigh ~90 MB); a list only for
    # the paths that have several, keeper first.
    managed: dict[str, RemoteDocument | list[RemoteDocument]] = {}
    marked: list[RemoteDocument] = []
    managed_total = 0
    for doc in documents:
        path = managed_path(doc.meta_fields)
        if path is not None:
            managed_total += 1
            had = managed.setdefault(path, doc)
            if had is not doc:
                if isinstance(had, list):
                    had.append(doc)
                else:
                    managed[path] = [had, doc]
        elif opts.adopt_interrupted and pending_upload_key(doc.name) is not None:
            marked.append(doc)
    for docs in managed.values():
        if isinstance(docs, list):
            docs.sort(key=keeper_key)

    # Leftovers of interrupted uploads, by the path whose upload name they carry.
    leftovers: dict[str, list[RemoteDocument]] = defaultdict(list)
    orphans: list[RemoteDocument] = []
    if marked:
        by_upload_name = {upload_name(p): p for p in inventory}
        for doc in sorted(marked, key=keeper_key):
            path = by_upload_name.get(pending_upload_key(doc.name) or "")
            if path is not None:
                leftovers[path].append(doc)
            else:
                orphans.append(doc)

    can_delete_removed = opts.delete_removed and opts.listing_complete

    def removable(path: str) -> bool:
        return path not in inventory and not _under(path, opts.unlisted_prefixes)

    # Documents whose path is gone, available as move sources (any scope), by content.
    moves = _MoveIndex(
        (
            (path, doc)
            for path, docs in managed.items()
            if removable(path)
            for doc in _listed(docs)
            if _trusted(doc)
        ),
        opts.change_token_is_content_hash,
    )

    actions: list[Action] = []
    removed_deletes: list[Delete] = []

    no_docs: list[RemoteDocument] = []
    managed_get = managed.get
    leftovers_get = leftovers.get
    for path in sorted(inventory):
        if in_scope is not None and not in_scope(path):
            continue
        entry = inventory[path]
        found = managed_get(path)
        strays = leftovers_get(path, no_docs)
        if found is not None and not isinstance(found, list) and not strays:
            doc = found  # the common case: one document, no leftovers
            if _content_matches(doc, entry, _trusted(doc)):
                actions.append(_keep_action(entry, doc, opts))
                continue
        docs = _listed(found)
        matching = [d for d in docs if _content_matches(d, entry, _trusted(d))]
        if matching:
            keep, extra = matching[0], matching[1:]
            wait_for = None if keep.run == PARSED else keep.id
            actions.append(_keep_action(entry, keep, opts))
            if extra:
                actions.append(
                    Delete(
                        path=path,
                        doc_ids=tuple(d.id for d in extra),
                        reason="duplicate",
                        wait_for=wait_for,
                    )
                )
            stale = tuple(d.id for d in docs if d not in matching)
            if stale:
                actions.append(
                    Delete(path=path, doc_ids=stale, reason="superseded", wait_for=wait_for)
                )
            if strays:
                actions.append(
                    Delete(path=path, doc_ids=tuple(d.id for d in strays), reason="stray")
                )
            continue
        # Nothing trusted matches: a document to prove (a hand-edited label, then a leftover).
        untrusted = [d for d in docs if not _trusted(d)]
        candidate = untrusted[0] if untrusted else (strays[0] if strays else None)
        if candidate is not None:
            is_leftover = candidate in strays
            actions.append(
                Adopt(
                    entry=entry,
                    doc_id=candidate.id,
                    old_ids=tuple(d.id for d in docs if d is not candidate),
                    doc_name=candidate.name,
                    leftover=is_leftover,
                    needs_parse=is_leftover
                    or (
                        _parse_state(candidate) is not None
                        and (opts.reparse_failed or candidate.run in UNPARSED_STATES)
                    ),
                )
            )
            rest = [d for d in strays if d is not candidate]
            if rest:
                actions.append(Delete(path=path, doc_ids=tuple(d.id for d in rest), reason="stray"))
            continue
        if docs:
            actions.append(Replace(entry=entry, old_ids=tuple(d.id for d in docs)))
            continue
        source = moves.take(entry)
        if source is not None:
            from_path, doc = source
            if name_suffix(doc.name) == name_suffix(document_name(path)):
                actions.append(
                    Move(
                        entry=entry,
                        doc_id=doc.id,
                        from_path=from_path,
                        needs_parse=opts.reparse_failed and _parse_state(doc) is not None,
                        known_sha256=_stored_sha(doc) if entry.sha256 is None else None,
                    )
                )
            else:
                actions.append(
                    Replace(
                        entry=entry,
                        old_ids=(doc.id,),
                        detail=f"moved from {from_path}, extension changed",
                    )
                )
            continue
        actions.append(Upload(entry=entry))

    for path in sorted(p for p in managed if p not in inventory):
        if in_scope is not None and not in_scope(path):
            continue
        docs = _listed(managed[path])
        remaining = tuple(d.id for d in docs if d.id not in moves.used)
        if not remaining:
            continue
        if can_delete_removed and removable(path):
            removed_deletes.append(Delete(path=path, doc_ids=remaining, reason="removed"))

    # Leftovers whose file is gone: ours (the mark says so), never served; only a full,
    # complete reconcile removes them.
    if opts.in_scope is None and opts.listing_complete:
        for doc in orphans:
            path = (pending_upload_key(doc.name) or doc.name).replace(UPLOAD_MARK, "", 1)
            if not _under(path, opts.unlisted_prefixes):
                actions.append(Delete(path=path, doc_ids=(doc.id,), reason="stray"))

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


def _keep_action(entry: SourceEntry, keep: RemoteDocument, opts: PlanOptions) -> Action:
    """What to do with the (trusted) document that matches ``entry``'s content."""
    run = keep.run
    desired = opts.desired(entry.path) if opts.desired is not None else None
    if run == PARSED and desired is None and not _label_drift(entry, keep):
        return Unchanged(path=entry.path, doc_id=keep.id)  # the common case: in sync
    reason = _parse_state(keep)
    needs_parse = reason is not None and (opts.reparse_failed or run in UNPARSED_STATES)
    known = _stored_sha(keep) if entry.sha256 is None else None
    rechunk = mapped_action(entry, keep, desired, known_sha256=known)
    if rechunk is not None:
        return rechunk
    changes = meta_changes(desired, keep.meta_fields)
    if changes is not None or _label_drift(entry, keep):
        return Relabel(
            entry=entry,
            doc_id=keep.id,
            needs_parse=needs_parse,
            changes=changes or (),
            known_sha256=known,
            kept=kept_meta(desired, keep.meta_fields) or None,
        )
    if needs_parse and reason is not None:
        return Reparse(path=entry.path, doc_id=keep.id, reason=reason)
    pending = run in RUNNING_STATES or _queued(keep)
    return Unchanged(path=entry.path, doc_id=keep.id, pending=pending)


def _label_drift(entry: SourceEntry, doc: RemoteDocument) -> bool:
    """Whether the document's label differs from what the file's label would be.

    Only asked of a trusted document (its ``label_check`` fits its other keys), so the label
    is the file's exactly when those keys are the file's and a ``label_check`` is present: the
    check itself need not be recomputed."""
    meta = doc.meta_fields
    if not meta or meta.get(META_LABEL_CHECK) is None:
        return True
    if meta.get(META_SOURCE_PATH) != entry.path:
        return True
    if str(meta.get(META_CHANGE_TOKEN)) != entry.change_token or _stored_size(doc) != entry.size:
        return True
    stored = meta.get(META_SHA256)
    if entry.sha256 is not None:
        return stored != entry.sha256 and str(stored) != entry.sha256
    return not isinstance(stored, str)  # the file's label would carry the stored sha256


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
        # Same extension first (a rename keeps the document), then the keeper order.
        suffix = name_suffix(document_name(entry.path))
        best = min(free, key=lambda c: (name_suffix(c[1].name) != suffix, *keeper_key(c[1])))
        self.used.add(best[1].id)
        return best


# the action records live in .actions; they are part of the planner's surface too
__all__ = [
    "FAILED_STATES",
    "PARSED",
    "RUNNING_STATES",
    "UNPARSED_STATES",
    "Action",
    "Adopt",
    "Delete",
    "Move",
    "Plan",
    "PlanOptions",
    "Rechunk",
    "Relabel",
    "RemoteDocument",
    "Reparse",
    "Replace",
    "Unchanged",
    "Upload",
    "keeper_key",
    "plan_sync",
]
