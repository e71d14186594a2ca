"""How source files map onto Dagster partitions: none (the default), hash shards, or one per file.

Dagster-free at import (the sensor's pure tick logic uses it); :attr:`Partitioning.partitions_def`
imports Dagster when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ragflow_dagster.sync.identity import partition_key, shard_key, shard_keys, shard_of

if TYPE_CHECKING:
    import dagster as dg

__all__ = ["Partitioning", "PartitioningKind"]

PartitioningKind = Literal["files", "shards", "none"]


@dataclass(frozen=True)
class Partitioning:
    """A partitioning scheme for an ingestion.

    Attributes:
        kind: ``"files"`` (a dynamic partition per file, keyed by its relative path or a stable hash
            of it), ``"shards"`` (static hash shards, for trees too large for per-file partitions)
            or ``"none"``.
        name: Name of the dynamic partitions definition (``files`` only).
        shards: Number of shards (``shards`` only).

    Example:
        >>> p = Partitioning.files("handbook_files")
        >>> p.key_for("a/b.txt")
        'a/b.txt'
    """

    kind: PartitioningKind
    name: str = ""
    shards: int = 0

    @classmethod
    def files(cls, name: str) -> Partitioning:
        """One dynamic partition per file (opt-in, for small trees)."""
        if not name:
            raise ValueError("partitioning 'files' needs a name for its dynamic partitions")
        return cls("files", name=name)

    @classmethod
    def sharded(cls, shards: int) -> Partitioning:
        """``shards`` static hash shards of the paths."""
        if shards < 1:
            raise ValueError(f"shards must be at least 1, got {shards}")
        return cls("shards", shards=shards)

    @classmethod
    def unpartitioned(cls) -> Partitioning:
        """No partitions: every run is one reconcile of the whole source (the default)."""
        return cls("none")

    @classmethod
    def of(cls, kind: str, *, name: str = "", shards: int = 64) -> Partitioning:
        """The scheme called ``kind`` (``none``, ``shards`` or ``files``).

        Example:
            >>> Partitioning.of("shards", shards=8).partitions_def.get_partition_keys()[:2]
            ['shard-0', 'shard-1']
        """
        if kind == "none":
            return cls.unpartitioned()
        if kind == "shards":
            return cls.sharded(shards)
        if kind == "files":
            return cls.files(name)
        raise ValueError(f"partitioning must be 'none', 'shards' or 'files', got {kind!r}")

    @property
    def partitions_def(self) -> dg.PartitionsDefinition | None:
        """The Dagster partitions definition (None when unpartitioned)."""
        import dagster as dg

        if self.kind == "files":
            return dg.DynamicPartitionsDefinition(name=self.name)
        if self.kind == "shards":
            return dg.StaticPartitionsDefinition(shard_keys(self.shards))
        return None

    def key_for(self, path: str) -> str | None:
        """The partition key a relative path belongs to (None when unpartitioned)."""
        if self.kind == "files":
            return partition_key(path)
        if self.kind == "shards":
            return shard_key(shard_of(path, self.shards), self.shards)
        return None

    def scope(self, keys: Iterable[str] | None) -> Callable[[str], bool] | None:
        """A path predicate selecting the given partition keys (None: everything)."""
        if self.kind == "none" or keys is None:
            return None
        wanted = frozenset(keys)
        return lambda path: self.key_for(path) in wanted
