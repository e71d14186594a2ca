"""Build many frozen, slotted records quickly: a mutable *draft* twin per record type.

A listing builds one record per file or document (100,000 per listing). A frozen dataclass's
``__init__`` sets each field through ``object.__setattr__`` (about 90 ns a field), and setting
the slots through their descriptors still costs about 55 ns a field. A draft is a plain class
with the very same slots: its fields are stored with ordinary attribute stores (about 15 ns),
and assigning ``__class__`` then turns it into the record itself, an object identical to one
built by the record's ``__init__`` (same type, same slots, equal and hashing alike). Python
allows that assignment only between classes of the same layout, and :func:`draft_class`
proves it for its record when it is created (at import), so a layout change fails loudly.

Only the package's own hot loops use drafts, with values already known to be valid: the
record's ``__init__`` (and ``__post_init__``) do not run.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, slots=True)
    ... class Point:
    ...     x: int
    ...     y: int
    >>> Draft = draft_class(Point)
    >>> p = Draft()
    >>> p.x, p.y = 1, 2
    >>> p.__class__ = Point
    >>> p == Point(1, 2), type(p) is Point
    (True, True)
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["draft_class"]


def draft_class(record: type) -> Any:
    """The mutable twin of the frozen, slotted dataclass ``record``.

    Returns:
        A class whose instances have ``record``'s slots, are filled by plain attribute
        stores, and become ``record`` instances by ``draft.__class__ = record``.

    Raises:
        TypeError: ``record`` is not a slotted dataclass, or its layout cannot be shared
            (it has a ``__dict__``, a weak-reference slot or slots a base class adds).
    """
    if not dataclasses.is_dataclass(record) or "__slots__" not in vars(record):
        raise TypeError(f"{record.__name__} is not a slotted dataclass")
    names = tuple(f.name for f in dataclasses.fields(record))
    if tuple(vars(record)["__slots__"]) != names or record.__bases__ != (object,):
        raise TypeError(f"{record.__name__}: its slots are not exactly its fields")
    doc = f"A draft of {record.__name__} (see {__name__})."
    draft = type(
        f"{record.__name__}Draft",
        (),
        {"__slots__": names, "__module__": record.__module__, "__doc__": doc},
    )
    probe = draft()
    for name in names:
        setattr(probe, name, None)
    probe.__class__ = record  # TypeError here when the layouts differ
    return draft
