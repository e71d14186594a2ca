"""How source files map onto Dagster partitions: one per file, hash shards, or none."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import dagster as dg

from ragflow_dagster.sync.identity import partition_key, shard_key, shard_keys, shard_of

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
        return cls("files", name=name)

    @classmethod
    def sharded(cls, shards: int) -> Partitioning:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, got {shards}")
        return cls("shards", shards=shards)

    @classmethod
    def unpartitioned(cls) -> Partitioning:
        return cls("none")

    @property
    def partitions_def(self) -> dg.PartitionsDefinition | None:
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
