"""Routing: one source into several datasets, by glob (pure: no I/O).

A :class:`RouteTable` is an ordered list of :class:`Route` s (``glob`` → dataset) and an optional
default dataset. Each listed file goes to the dataset of the **first** route whose glob matches
its relative path; a file no route matches goes to the default dataset, or is skipped with the
reason :data:`UNROUTED`. Globs mean what they mean in the filters
(:func:`~ragflow_dagster.sources.filters.compile_globs`): fnmatch on the whole relative path,
case-sensitive, ``*`` also crosses ``/``, ``**/`` also matches no folder.

:func:`split_inventory` cuts one inventory (one listing of the source) into one inventory per
dataset. Each slice keeps the source's completeness (``complete`` and every unlisted prefix), so a
dataset deletes nothing "removed" unless the one source listing was complete.

Example:
    >>> table = RouteTable.model_validate(
    ...     {"routes": [{"glob": "eng/**", "dataset": "eng"}, {"glob": "*.pdf", "dataset": "pdfs"}],
    ...      "default_dataset": "general"})
    >>> table.dataset_for("eng/a.pdf"), table.dataset_for("b.pdf"), table.dataset_for("c.md")
    ('eng', 'pdfs', 'general')
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ragflow_dagster.sources import Inventory, SkippedEntry
from ragflow_dagster.sources.filters import compile_globs

__all__ = [
    "UNROUTED",
    "Route",
    "RouteDataset",
    "RouteTable",
    "RoutedInventory",
    "split_inventory",
]

UNROUTED = "unrouted"
"""Skip reason of a file that no route matches when there is no default dataset."""


class RouteDataset(BaseModel):
    """A dataset routes send files to (created on first use with these settings).

    Example:
        >>> RouteDataset.model_validate("eng").name
        'eng'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Dataset name.")
    chunk_method: str | None = Field(default="naive", description="Chunk method of a new one.")
    parser_config: Mapping[str, Any] | None = Field(default=None, description="Parser settings.")
    embedding_model: str | None = Field(default=None, description="Embedding model id.")
    description: str | None = Field(default=None, description="Dataset description.")
    permission: str | None = Field(default=None, description="'me' or 'team'.")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        return value

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("dataset name must not be blank")
        return value

    def __hash__(self) -> int:  # parser_config is a mapping: hash what identifies the dataset
        return hash(self.name)


class Route(BaseModel):
    """One route: files whose relative path matches ``glob`` (one glob or several) go to
    ``dataset``.

    Example:
        >>> Route(glob="eng/**", dataset="eng").matches("eng/a/b.md")
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    glob: str | tuple[str, ...] = Field(description="Glob(s) on the relative path: 'eng/**'.")
    dataset: RouteDataset = Field(description="The dataset's name, or its settings.")

    @field_validator("glob")
    @classmethod
    def _globs_given(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        globs = (value,) if isinstance(value, str) else value
        if not globs or any(not g.strip() for g in globs):
            raise ValueError("a route needs a non-empty glob")
        return value

    @property
    def globs(self) -> tuple[str, ...]:
        """The route's globs as a tuple."""
        return (self.glob,) if isinstance(self.glob, str) else tuple(self.glob)

    def matches(self, path: str) -> bool:
        """Whether ``path`` (relative POSIX) matches one of the route's globs."""
        return _regex(self.globs).match(path) is not None


@functools.lru_cache(maxsize=256)
def _regex(globs: tuple[str, ...]) -> re.Pattern[str]:
    rx = compile_globs(globs)
    assert rx is not None
    return rx


class RouteTable(BaseModel):
    """Routes in order (first match wins) and an optional default dataset.

    A dataset may appear in several routes (and as the default); its settings must then be
    the same everywhere it is named with settings.

    Example:
        >>> t = RouteTable(routes=[Route(glob="eng/**", dataset="eng")])
        >>> t.dataset_for("eng/x.md"), t.dataset_for("sales/y.md"), t.dataset_names
        ('eng', None, ('eng',))
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    routes: tuple[Route, ...] = Field(description="Routes, in order: the first match wins.")
    default_dataset: RouteDataset | None = Field(
        default=None,
        description="Where files no route matches go (unset: they are skipped as 'unrouted').",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RouteTable:
        if not self.routes:
            raise ValueError("routes: give at least one route")
        given: dict[str, RouteDataset] = {}
        for ds in self._all_datasets():
            if ds == RouteDataset(name=ds.name):
                continue  # named only: takes the settings given elsewhere
            if given.setdefault(ds.name, ds) != ds:
                raise ValueError(f"dataset {ds.name!r} is given different settings in two routes")
        return self

    def _all_datasets(self) -> list[RouteDataset]:
        out = [r.dataset for r in self.routes]
        if self.default_dataset is not None:
            out.append(self.default_dataset)
        return out

    @property
    def dataset_names(self) -> tuple[str, ...]:
        """Every dataset, once, in the order routes name them (the default last)."""
        return tuple(dict.fromkeys(d.name for d in self._all_datasets()))

    @property
    def datasets(self) -> tuple[RouteDataset, ...]:
        """Every dataset, once, with the most specific settings given for it."""
        best: dict[str, RouteDataset] = {}
        for ds in self._all_datasets():
            if ds.name not in best or best[ds.name] == RouteDataset(name=ds.name):
                best[ds.name] = ds
        return tuple(best[n] for n in self.dataset_names)

    def dataset_for(self, path: str) -> str | None:
        """The dataset of one relative path (None: unrouted)."""
        for route in self.routes:
            if route.matches(path):
                return route.dataset.name
        return self.default_dataset.name if self.default_dataset is not None else None


@dataclass(frozen=True)
class RoutedInventory:
    """One inventory of the source cut into one inventory per dataset.

    Attributes:
        source: The whole inventory (the one listing).
        slices: Per dataset name, in :attr:`RouteTable.dataset_names` order, the entries routed
            there (and the skipped files whose path routes there, plus every listing gap);
            ``complete`` and ``unlisted_prefixes`` are the whole source's.
        unrouted: Files no route matched (reason :data:`UNROUTED`), when there is no default.
    """

    source: Inventory
    slices: Mapping[str, Inventory]
    unrouted: Sequence[SkippedEntry]


def split_inventory(inventory: Inventory, table: RouteTable) -> RoutedInventory:
    """Assign every listed file to its dataset.

    Skipped files (filtered, unreadable, ...) go to the slice of the dataset their path routes
    to; listing gaps (a folder that could not be listed, ``""`` for the whole source) go to
    every slice, as do all unlisted prefixes, so no dataset deletes what the listing missed.

    Example:
        >>> from ragflow_dagster.sources import SourceEntry
        >>> inv = Inventory(entries=[SourceEntry("eng/a.md", 1, 0.0, "1-0"),
        ...                          SourceEntry("x.md", 1, 0.0, "1-0")],
        ...                 skipped=[], complete=True, source_uri="file:///d", scanned=2,
        ...                 elapsed_s=0.0)
        >>> r = split_inventory(inv, RouteTable(routes=[Route(glob="eng/**", dataset="eng")]))
        >>> [e.path for e in r.slices["eng"].entries], [s.reason for s in r.unrouted]
        (['eng/a.md'], ['unrouted'])
    """
    names = table.dataset_names
    entries: dict[str, list[Any]] = {n: [] for n in names}
    skipped: dict[str, list[SkippedEntry]] = {n: [] for n in names}
    unrouted: list[SkippedEntry] = []
    cache: dict[str, str | None] = {}

    def route(path: str) -> str | None:
        if path not in cache:
            cache[path] = table.dataset_for(path)
        return cache[path]

    for e in inventory.entries:
        target = route(e.path)
        if target is None:
            unrouted.append(SkippedEntry(e.path, UNROUTED, "no route matches this path"))
        else:
            entries[target].append(e)
    for s in inventory.skipped:
        if s.unlisted and (not s.path or s.path.endswith("/")):
            for n in names:
                skipped[n].append(s)
            continue
        target = route(s.path)
        if target is not None:
            skipped[target].append(s)
    slices = {
        n: dataclasses.replace(
            inventory,
            entries=entries[n],
            skipped=skipped[n],
            scanned=len(entries[n]) + len(skipped[n]),
            unlisted_prefixes=list(inventory.unlisted_prefixes),
        )
        for n in names
    }
    return RoutedInventory(source=inventory, slices=slices, unrouted=tuple(unrouted))
