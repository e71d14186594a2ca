"""Document metadata semantics of RAGFlow: condition filters, summaries and batch edits.

The filter works on "flattened" metadata ``{key: {str(value): [doc_ids]}}`` (list values are
expanded) and supports the operators of ``common/metadata_utils.py``: ``is``/``=``,
``not is``/``≠``/``!=``, ``>``, ``<``, ``≥``/``>=``, ``≤``/``<=``, ``contains``,
``not contains``, ``in``, ``not in``, ``start with``, ``end with``, ``empty``, ``not empty``.
String comparisons are case-insensitive, as on the real server.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import re
from typing import Any

OP_ALIASES = {"is": "=", "not is": "≠", ">=": "≥", "<=": "≤", "!=": "≠"}
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def convert_conditions(metadata_condition: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Turn ``{"conditions": [{name, comparison_operator, value}]}`` into filter triples.

    Example:
        >>> cond = {"name": "a", "comparison_operator": "is", "value": 1}
        >>> convert_conditions({"conditions": [cond]})
        [{'op': '=', 'key': 'a', 'value': 1}]
    """
    conditions = (metadata_condition or {}).get("conditions", []) or []
    return [
        {
            "op": OP_ALIASES.get(c["comparison_operator"], c["comparison_operator"]),
            "key": c["name"],
            "value": c.get("value"),
        }
        for c in conditions
    ]


def _lower(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return [v.lower() if isinstance(v, str) else v for v in value]
    return value


def _literal(value: Any) -> Any:
    return ast.literal_eval(value) if isinstance(value, str) else value


def _matches(stored: str, op: str, wanted: Any) -> bool:
    inp: Any = stored
    value: Any = wanted
    if op in ("=", "≠", ">", "<", "≥", "≤"):
        inp_s, val_s = str(inp).strip(), str(value).strip()
        if _DATE_RE.match(val_s):
            if not _DATE_RE.match(inp_s):
                return False
            inp, value = inp_s, val_s
        else:
            with contextlib.suppress(
                ValueError, SyntaxError, TypeError, MemoryError, RecursionError
            ):
                inp, value = _literal(inp), _literal(value)
            if isinstance(inp, str):
                inp = inp.lower()
            if isinstance(value, str):
                value = value.lower()
    else:
        inp, value = _lower(inp), _lower(value)
    try:
        if op == "contains":
            return str(inp).find(value) >= 0
        if op == "not contains":
            return str(inp).find(value) == -1
        if op == "in":
            return inp in value
        if op == "not in":
            return inp not in value
        if op == "start with":
            return str(inp).lower().startswith(str(value).lower())
        if op == "end with":
            return str(inp).lower().endswith(str(value).lower())
        if op == "empty":
            return not inp
        if op == "not empty":
            return bool(inp)
        if op == "=":
            return bool(inp == value)
        if op == "≠":
            return bool(inp != value)
        if op == ">":
            return bool(inp > value)
        if op == "<":
            return bool(inp < value)
        if op == "≥":
            return bool(inp >= value)
        if op == "≤":
            return bool(inp <= value)
    except TypeError:
        return False
    return False


def meta_filter(
    metas: dict[str, dict[str, list[str]]], filters: list[dict[str, Any]], logic: str = "and"
) -> list[str]:
    """Document ids whose metadata satisfies ``filters`` combined with ``logic``.

    Example:
        >>> metas = {"author": {"Bob": ["d1"], "Ann": ["d2"]}}
        >>> meta_filter(metas, [{"op": "=", "key": "author", "value": "bob"}])
        ['d1']
    """
    doc_ids: set[str] | None = None
    for flt in filters:
        values = metas.get(flt["key"])
        ids: list[str] = []
        if values is not None:
            op, wanted = flt["op"], flt["value"]
            if op == "=" and isinstance(wanted, str) and not _DATE_RE.match(wanted.strip()):
                ids = _fast_equal(values, wanted)
            else:
                for stored, docs in values.items():
                    if _matches(stored, op, wanted):
                        ids.extend(docs)
        if doc_ids is None:
            doc_ids = set(ids)
        elif logic == "and":
            doc_ids &= set(ids)
            if not doc_ids:
                return []
        else:
            doc_ids |= set(ids)
    return list(doc_ids or [])


def _fast_equal(values: dict[str, list[str]], wanted: str) -> list[str]:
    """``=`` for a string value that is not a Python literal: case-insensitive equality."""
    try:
        ast.literal_eval(wanted)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        low = wanted.lower()
        return [d for stored, docs in values.items() if stored.lower() == low for d in docs]
    return [d for stored, docs in values.items() if _matches(stored, "=", wanted) for d in docs]


def split_combined_values(meta: dict[str, Any]) -> dict[str, Any]:
    """Split list items like ``"a, b; c"`` into separate values (RAGFlow does this on save)."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, list):
            items: list[Any] = []
            for item in value:
                if isinstance(item, str):
                    parts = [
                        p.strip()
                        for p in re.split("[\u3001,\uff0c;\uff1b|]+", item.strip())
                        if p.strip()
                    ]
                    items.extend(parts if parts else [item])
                else:
                    items.append(item)
            out[key] = dedupe(items)
        else:
            out[key] = value
    return out


def dedupe(values: list[Any]) -> list[Any]:
    """Drop repeated values (compared as strings), keeping the first."""
    seen: set[str] = set()
    out = []
    for item in values:
        key = str(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _value_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str) and _ISO_TIME_RE.match(value):
        return "time"
    return "string"


def summary(metas: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{key: {"type": t, "values": [[value, count], ...]}}`` sorted by count."""
    counts: dict[str, dict[str, int]] = {}
    types: dict[str, dict[str, int]] = {}
    for meta in metas.values():
        for key, value in meta.items():
            kind = _value_type(value)
            if kind:
                types.setdefault(key, {})
                types[key][kind] = types[key].get(kind, 0) + 1
            for item in value if isinstance(value, list) else [value]:
                if item is None:
                    continue
                bucket = counts.setdefault(key, {})
                bucket[str(item)] = bucket.get(str(item), 0) + 1
    result = {}
    for key, values in counts.items():
        ordered = sorted(values.items(), key=lambda kv: kv[1], reverse=True)
        kind_counts = types.get(key, {})
        kind = max(kind_counts.items(), key=lambda kv: kv[1])[0] if kind_counts else "string"
        result[key] = {"type": kind, "values": [list(kv) for kv in ordered]}
    return result


def apply_updates(meta: dict[str, Any], updates: list[dict[str, Any]]) -> bool:
    """Apply ``{"key", "value"[, "match"]}`` updates in place; True if something changed."""
    changed = False
    for upd in updates:
        key = upd.get("key")
        if not key:
            continue
        new_value = upd.get("value")
        match = upd.get("match")
        has_match = match is not None and match != ""
        if key not in meta:
            if has_match:
                continue
            meta[key] = dedupe(new_value) if isinstance(new_value, list) else new_value
            changed = True
        elif isinstance(meta[key], list):
            if not has_match:
                extra = new_value if isinstance(new_value, list) else [new_value]
                meta[key] = dedupe(meta[key] + extra)
                changed = True
            else:
                replaced = [new_value if str(i) == str(match) else i for i in meta[key]]
                if any(str(i) == str(match) for i in meta[key]):
                    meta[key] = dedupe(replaced)
                    changed = True
        elif not has_match or str(meta[key]) == str(match):
            meta[key] = new_value
            changed = True
    return changed


def apply_deletes(meta: dict[str, Any], deletes: list[dict[str, Any]]) -> bool:
    """Apply ``{"key"[, "value"]}`` deletions in place; True if something changed."""
    changed = False
    for item in deletes:
        key = item.get("key")
        if not key or key not in meta:
            continue
        value = item.get("value")
        if isinstance(meta[key], list):
            if value is None:
                del meta[key]
                changed = True
                continue
            kept = [v for v in meta[key] if str(v) != str(value)]
            if len(kept) != len(meta[key]):
                if kept:
                    meta[key] = kept
                else:
                    del meta[key]
                changed = True
        elif value is None or str(meta[key]) == str(value):
            del meta[key]
            changed = True
    return changed


def batch_edit(
    metas: dict[str, dict[str, Any]],
    doc_ids: list[str],
    updates: list[dict[str, Any]],
    deletes: list[dict[str, Any]],
) -> dict[str, dict[str, Any] | None]:
    """Compute new metadata for ``doc_ids``; returns only the documents that changed.

    A value of ``None`` in the result means "remove the metadata row".
    """
    out: dict[str, dict[str, Any] | None] = {}
    for doc_id in doc_ids:
        if doc_id in metas:
            meta = copy.deepcopy(metas[doc_id]) if isinstance(metas[doc_id], dict) else {}
            original = copy.deepcopy(meta)
            changed = apply_updates(meta, updates)
            changed = apply_deletes(meta, deletes) or changed
            if changed and meta != original:
                out[doc_id] = split_combined_values(meta) if meta else None
        elif updates:
            meta = {}
            apply_updates(meta, updates)
            if meta:
                out[doc_id] = split_combined_values(meta)
    return out
