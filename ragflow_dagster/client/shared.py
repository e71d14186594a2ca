"""Read-only containers, and what the records of one listing share.

A listing of 100,000 documents brings 100,000 equal ``parser_config`` trees (each a dozen keys
with nested ``raptor``/``graphrag`` dicts and a long prompt) and as many copies of the same short
strings (dataset id, run state, suffix, ...). :class:`Shared` lets the records built from one
listing hold one object for equal values; because records then share them, those values are
read-only: :class:`FrozenDict` and :class:`FrozenList` are a ``dict`` and a ``list`` (equal to
plain ones, JSON-serialisable, picklable) that refuse every change with :class:`TypeError`.

Example:
    >>> shared = Shared()
    >>> a = shared.config({"chunk_token_num": 512, "raptor": {"use_raptor": False}})
    >>> b = shared.config({"chunk_token_num": 512, "raptor": {"use_raptor": False}})
    >>> a is b, a == {"chunk_token_num": 512, "raptor": {"use_raptor": False}}
    (True, True)
    >>> a["raptor"]["use_raptor"] = True
    Traceback (most recent call last):
    ...
    TypeError: FrozenDict is read-only
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

import orjson

__all__ = ["EMPTY", "SHORT", "FrozenDict", "FrozenList", "Shared", "freeze"]

SHORT = 32
"""Strings up to this length are shared by :meth:`Shared.strings` (longer ones are rarely equal)."""


def _refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is read-only")


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses changes (``dict(frozen)`` is a mutable copy).

    Example:
        >>> d = FrozenDict({"a": 1})
        >>> d == {"a": 1}, isinstance(d, dict), d | {"b": 2}
        (True, True, {'a': 1, 'b': 2})
        >>> d.pop("a")
        Traceback (most recent call last):
        ...
        TypeError: FrozenDict is read-only
    """

    __slots__ = ()

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __repr__(self) -> str:
        return dict.__repr__(self)


class FrozenList(list[Any]):
    """A ``list`` that refuses changes (``list(frozen)`` is a mutable copy).

    Example:
        >>> items = FrozenList(["a", "b"])
        >>> items == ["a", "b"], items + ["c"]
        (True, ['a', 'b', 'c'])
        >>> items.append("c")
        Traceback (most recent call last):
        ...
        TypeError: FrozenList is read-only
    """

    __slots__ = ()

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __repr__(self) -> str:
        return list.__repr__(self)


EMPTY = FrozenDict()
"""The one empty read-only mapping (the default of records' mapping fields)."""


def freeze(value: Any) -> Any:
    """``value`` with every dict and list in it made read-only (others are kept as they are).

    Example:
        >>> type(freeze({"a": [1]})["a"]).__name__
        'FrozenList'
    """
    if isinstance(value, Mapping):
        if type(value) is FrozenDict:
            return value
        return FrozenDict({_text(k): freeze(v) for k, v in value.items()}) if value else EMPTY
    if isinstance(value, list) and type(value) is not FrozenList:
        return FrozenList([freeze(v) for v in value])
    return value


def _text(key: Any) -> Any:
    return sys.intern(key) if type(key) is str else key


class Shared:
    """What the records built from one listing share (make one per listing; not thread-safe).

    * :meth:`config`: equal mappings (``parser_config``, a dict inside ``extra``) become one
      :class:`FrozenDict` (:attr:`max_configs` distinct ones remembered at most).
    * :meth:`text`: equal strings become one object (:attr:`max_texts` remembered at most).

    Both caches start over when full: a later repeat is shared again.

    Example:
        >>> shared = Shared()
        >>> shared.text("2026-01-01T00:00:00") is shared.text("2026-01-01T00:00:00"[:])
        True
    """

    __slots__ = ("_configs", "_extra", "_texts", "max_configs", "max_texts")

    def __init__(self, *, max_configs: int = 64, max_texts: int = 1 << 16) -> None:
        self.max_configs = max_configs
        self.max_texts = max_texts
        self._configs: dict[bytes, FrozenDict] = {}
        self._texts: dict[str, str] = {}
        self._extra: dict[tuple[tuple[str, ...], frozenset[str]], tuple[str, ...]] = {}

    def config(self, value: Mapping[str, Any] | None) -> FrozenDict:
        """One read-only mapping equal to ``value`` (the same object for equal values).

        Values are told apart by their JSON text (orjson), which keeps types (``1``, ``1.0``
        and ``True`` are equal in Python, but a record shows what its server sent) and key
        order; where the text holds ``null`` the shared value is also checked equal to
        ``value`` (``NaN`` and the infinities are written ``null`` too). A value that has no
        JSON text is frozen without being shared.
        """
        if not value:
            return EMPTY
        if type(value) is FrozenDict:
            return value
        try:
            key = orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError: a non-str key, an int beyond 64 bits, ...
            return freeze(value)
        configs = self._configs
        found = configs.get(key)
        if found is None:
            if len(configs) >= self.max_configs:
                configs.clear()
            found = configs[key] = freeze(value)
        elif b"null" in key and found != value:  # a NaN or an infinity reads as null
            return freeze(value)
        return found

    def strings(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """A plain copy of ``value`` whose strings up to :data:`SHORT` characters are shared
        (a document's ``meta_fields``: its own dict, its short values shared).

        Example:
            >>> shared = Shared()
            >>> a, b = shared.strings({"team": "legal"}), shared.strings({"team": "legal"[:]})
            >>> a["team"] is b["team"], a == {"team": "legal"}
            (True, True)
        """
        keep = self._keeper()
        return {
            k: keep(v, v) if type(v) is str and len(v) <= SHORT else v for k, v in value.items()
        }

    def extra_keys(self, raw: Mapping[str, Any], known: frozenset[str]) -> tuple[str, ...]:
        """The keys of ``raw`` outside ``known``, in order (worked out once per key set: the
        items of one listing all have the same keys).

        Example:
            >>> Shared().extra_keys({"id": 1, "thumbnail": ""}, frozenset({"id"}))
            ('thumbnail',)
        """
        keys = tuple(raw)
        cache = self._extra
        found = cache.get((keys, known))
        if found is None:
            if len(cache) >= self.max_configs:
                cache.clear()
            found = cache[keys, known] = tuple(k for k in keys if k not in known)
        return found

    def _keeper(self) -> Callable[[str, str], str]:
        """``setdefault`` of the string cache (emptied first when full: later repeats are
        shared again); ``keep(s, s)`` is the one object for strings equal to ``s``."""
        texts = self._texts
        if len(texts) >= self.max_texts:
            texts.clear()
        return texts.setdefault

    def text(self, value: str) -> str:
        """One string object for equal strings."""
        return self._keeper()(value, value)

    def values(self, raw: Mapping[str, Any], keys: Iterable[str]) -> FrozenDict:
        """A read-only mapping of ``keys`` of ``raw``: strings and mappings shared, lists made
        read-only."""
        keep = self._keeper()
        out: dict[str, Any] = {}
        for k in keys:
            v = raw[k]
            if type(v) is str:
                out[k] = keep(v, v)
            elif isinstance(v, (Mapping, list)):
                out[k] = self.config(v) if isinstance(v, Mapping) else freeze(v)
            else:
                out[k] = v
        return FrozenDict(out) if out else EMPTY
