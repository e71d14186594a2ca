"""Pure decisions on mapped metadata and parse rules for a document that is otherwise in sync.

The planner (:mod:`.plan`) asks :func:`mapped_action` for each path whose document matches the
file's content. A metadata difference alone is a *relabel* (one PATCH, nothing re-uploaded or
re-parsed); a different parse rule is a :class:`Rechunk` (one PATCH with the method/config and
the label, then a parse of exactly that document).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sync.actions import Rechunk
from ragflow_dagster.sync.desired import Desired
from ragflow_dagster.sync.identity import META_KEYS
from ragflow_dagster.sync.metadata import (
    META_KEYS_KEY,
    META_READ_KEYS_KEY,
    META_TOKEN_KEY,
    RESERVED_KEYS,
    describe_changes,
)
from ragflow_dagster.sync.rules import rule_drift


def meta_changes(desired: Desired | None, meta_fields: Mapping[str, Any]) -> tuple[str, ...] | None:
    """How the document's mapped metadata differs from ``desired``: ``None`` when in sync
    (or no mapping is active), else the changes (empty when only bookkeeping differs).

    Example:
        >>> meta_changes(Desired(meta={"department": "People"}),
        ...              {"department": "HR", "meta_keys": ["department"]})
        ('department HR→People',)
    """
    if desired is None or not desired.mapped:
        return None
    meta = meta_fields or {}
    keys = meta.get(META_KEYS_KEY) or []
    if isinstance(keys, str):
        keys = [keys]
    current = {k: meta[k] for k in keys if k in meta}
    if current != desired.meta:  # (equal dicts are equal values too: the fast path)
        changes = describe_changes(current, desired.meta)
        if changes:
            return changes
    have_read = meta.get(META_READ_KEYS_KEY) or []
    if isinstance(have_read, str):
        have_read = [have_read]
    if (
        sorted(keys) != sorted(desired.meta)
        or sorted(have_read) != sorted(desired.read_keys)
        or meta.get(META_TOKEN_KEY) != desired.token
    ):
        return ()
    return None


def kept_meta(desired: Desired | None, meta_fields: Mapping[str, Any]) -> dict[str, Any]:
    """The document's keys a relabel keeps: the ones set by hand (neither identity nor mapped);
    without a mapping (``desired`` None, or rules only) also the mapped keys and their
    bookkeeping.

    Example:
        >>> kept_meta(Desired(meta={"a": 1}), {"a": 0, "meta_keys": ["a"], "note": "mine"})
        {'note': 'mine'}
    """
    meta = meta_fields or {}
    if desired is None or not desired.mapped:
        return {k: v for k, v in meta.items() if k not in META_KEYS}
    mapped = meta.get(META_KEYS_KEY) or []
    mapped = {mapped} if isinstance(mapped, str) else set(mapped)
    return {k: v for k, v in meta.items() if k not in RESERVED_KEYS and k not in mapped}


def mapped_action(
    entry: SourceEntry,
    doc: Any,
    desired: Desired | None,
    *,
    known_sha256: str | None,
) -> Rechunk | None:
    """A :class:`Rechunk` when ``doc``'s parse settings do not fit ``desired``'s rule."""
    if desired is None or desired.parse is None:
        return None
    why = rule_drift(
        desired.parse,
        doc.chunk_method or "",
        doc.parser_config or {},
    )
    if why is None:
        return None
    return Rechunk(
        entry=entry,
        doc_id=doc.id,
        chunk_method=desired.parse.chunk_method,
        parser_config=dict(desired.parse.parser_config),
        reason=why,
        changes=meta_changes(desired, doc.meta_fields) or (),
        known_sha256=known_sha256,
        kept=kept_meta(desired, doc.meta_fields) or None,
    )


def rule_fields(desired: Desired | None, doc: Any) -> dict[str, Any]:
    """The ``update_document`` arguments that give a fresh upload its rule (empty when the
    document already fits, e.g. the rule's method is the dataset's default)."""
    if desired is None or desired.parse is None:
        return {}
    want = desired.parse
    if rule_drift(want, str(doc.chunk_method or ""), doc.parser_config or {}) is None:
        return {}
    out: dict[str, Any] = {"chunk_method": want.chunk_method}
    if want.parser_config:
        out["parser_config"] = dict(want.parser_config)
    return out


__all__ = ["Rechunk", "kept_meta", "mapped_action", "meta_changes", "rule_fields"]
