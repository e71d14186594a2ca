"""Request parameters and id lists as the server reads them (pure helpers of the client).

Example:
    >>> from ragflow_dagster.client.params import batches, id_list, query
    >>> query({"run": ["DONE", "FAIL"], "desc": True, "name": None})
    {'run': ['DONE', 'FAIL'], 'desc': 'true'}
    >>> list(batches(id_list(["a", "b", "a", "c"], "ids"), 2))
    [['a', 'b'], ['c']]
"""

from __future__ import annotations

import json as _json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ragflow_dagster.client.errors import RAGFlowError, RAGFlowNotFoundError

__all__ = ["batches", "count_from", "id_list", "is_not_found", "query"]


def _qbool(value: bool) -> str:
    return "true" if value else "false"


def query(params: Mapping[str, Any]) -> dict[str, Any]:
    """Encode query parameters the way the server reads them (lists repeat, dicts as JSON)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = _qbool(value)
        elif isinstance(value, Mapping):
            out[key] = _json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[key] = [_qbool(v) if isinstance(v, bool) else str(v) for v in value]
        else:
            out[key] = value
    return out


def id_list(ids: Iterable[str] | str, what: str) -> list[str]:
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of ids, not a single string")
    out: list[str] = []
    seen: set[str] = set()
    for i in ids:
        if not isinstance(i, str) or not i:
            raise ValueError(f"{what} must contain non-empty strings, got {i!r}")
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def count_from(data: Any, *keys: str, default: int) -> int:
    if isinstance(data, Mapping):
        for key in keys:
            if key in data:
                try:
                    return int(data[key])
                except (TypeError, ValueError):
                    break
    return default


def is_not_found(exc: RAGFlowError) -> bool:
    return isinstance(exc, RAGFlowNotFoundError)
