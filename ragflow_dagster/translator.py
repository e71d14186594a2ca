"""How an ingestion looks in Dagster: :class:`DagsterRAGFlowTranslator` and the records it reads.

In the manner of ``DagsterSlingTranslator`` / ``DagsterDltTranslator``: one overridable method,
:meth:`DagsterRAGFlowTranslator.get_asset_spec`, decides the key, group, deps, tags, kinds,
owners, description and metadata of each asset of an ingestion.

Example:
    >>> from ragflow_dagster.translator import DagsterRAGFlowTranslator, RAGFlowTarget
    >>> target = RAGFlowTarget.create(source="docs/", dataset="handbook")
    >>> DagsterRAGFlowTranslator().get_asset_spec(target.props("documents")).key.path
    ['ragflow', 'handbook', 'documents']
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ragflow_dagster.checks import RetrievalProbe
from ragflow_dagster.partitions import Partitioning
from ragflow_dagster.sources import FileFilters, Source, source_from_uri
from ragflow_dagster.sync.engine import SyncOptions

if TYPE_CHECKING:
    import dagster as dg

__all__ = [
    "DATASET_TAG",
    "METADATA_KEY_TARGET",
    "DagsterRAGFlowTranslator",
    "DatasetConfig",
    "RAGFlowAssetProps",
    "RAGFlowTarget",
    "Stage",
    "dataset_tag",
    "slugify",
    "stored_in_assets",
    "tag_value",
]

_T = TypeVar("_T")


def stored_in_assets(context: dg.AssetExecutionContext, key: str, kind: type[_T]) -> _T | None:
    """The first value of asset metadata ``key`` on the context's assets that is a ``kind``
    (where the decorators keep their target), else None."""
    for meta in context.assets_def.metadata_by_key.values():
        found = meta.get(key)
        if isinstance(found, kind):
            return found
    return None


METADATA_KEY_TARGET = "dagster_ragflow/target"
"""Asset metadata key under which the decorator stores the :class:`RAGFlowTarget` (read back by
:meth:`ragflow_dagster.resource.RAGFlowResource.sync`)."""

DATASET_TAG = "ragflow_dagster/dataset"
"""Run tag naming the dataset a run syncs (one run per dataset at a time)."""

Stage = Literal["source", "documents", "chunks"]


def slugify(name: str) -> str:
    """An asset-key-safe form of a dataset name (``[A-Za-z0-9_]``).

    Example:
        >>> slugify("HR Handbook (2024)")
        'hr_handbook_2024'
    """
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower()
    return slug or "dataset"


def tag_value(name: str) -> str:
    """``name`` as a Dagster tag value (at most 63 characters; a long one ends in a hash).

    Example:
        >>> len(tag_value("x" * 100)), tag_value("handbook")
        (63, 'handbook')
    """
    if len(name) <= 63:
        return name
    return name[:52] + "-" + hashlib.sha1(name.encode()).hexdigest()[:10]


def dataset_tag(name: str) -> dict[str, str]:
    """The run tag of a dataset's runs (what the per-dataset run limit keys on).

    Example:
        >>> dataset_tag("handbook")
        {'ragflow_dagster/dataset': 'handbook'}
    """
    return {DATASET_TAG: tag_value(name)}


@dataclass(frozen=True)
class DatasetConfig:
    """The RAGFlow dataset an ingestion fills, created on first use.

    Example:
        >>> DatasetConfig("handbook", chunk_method="naive", parser_config={"chunk_token_num": 256})
        ... # doctest: +ELLIPSIS
        DatasetConfig(name='handbook', ...)
    """

    name: str
    chunk_method: str | None = "naive"
    parser_config: Mapping[str, Any] | None = None
    embedding_model: str | None = None
    description: str | None = None
    permission: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"dataset.name must be a non-empty string, got {self.name!r}")


@dataclass(frozen=True)
class RAGFlowTarget:
    """What one ingestion syncs: a source into a dataset, and how.

    Attributes:
        name: Base of the job, pool and sensor names (slug).
        source: Where the files live.
        dataset: The dataset and its settings.
        sync_options: How the engine runs (filters included).
        partitioning: How files map onto partitions (default: none).
        max_lag: The ``sync_lag`` check fails when a change older than this is still missing.
        retrieval_probes: Optional retrieval smoke tests.
        blocking_checks: Failed ERROR checks fail the step.

    Example:
        >>> t = RAGFlowTarget.create(source="docs/", dataset="HR Handbook")
        >>> t.name, t.pool
        ('hr_handbook', 'ragflow_hr_handbook')
    """

    name: str
    source: Source
    dataset: DatasetConfig
    sync_options: SyncOptions = field(default_factory=SyncOptions)
    partitioning: Partitioning = field(default_factory=Partitioning.unpartitioned)
    max_lag: timedelta = timedelta(hours=1)
    retrieval_probes: tuple[RetrievalProbe, ...] = ()
    blocking_checks: bool = True

    @classmethod
    def create(
        cls,
        *,
        source: Source | str,
        dataset: DatasetConfig | str,
        name: str | None = None,
        filters: FileFilters | None = None,
        sync_options: SyncOptions | None = None,
        partitioning: Partitioning | None = None,
        max_lag: timedelta = timedelta(hours=1),
        retrieval_probes: Sequence[RetrievalProbe] = (),
        blocking_checks: bool = True,
    ) -> RAGFlowTarget:
        """Build a target from a folder / ``s3://`` URI or a ``Source``, and a dataset name.

        Example:
            >>> RAGFlowTarget.create(source="s3://bucket/docs", dataset="kb").source.uri
            's3://bucket/docs'
        """
        src = source_from_uri(source) if isinstance(source, str) else source
        ds = DatasetConfig(dataset) if isinstance(dataset, str) else dataset
        opts = sync_options or SyncOptions()
        if filters is not None:
            opts = replace(opts, filters=filters)
        return cls(
            name=slugify(name or ds.name),
            source=src,
            dataset=ds,
            sync_options=opts,
            partitioning=partitioning or Partitioning.unpartitioned(),
            max_lag=max_lag,
            retrieval_probes=tuple(retrieval_probes),
            blocking_checks=blocking_checks,
        )

    @property
    def pool(self) -> str:
        """The per-dataset concurrency pool (limit 1) of this target's steps."""
        return f"ragflow_{self.name}"

    @property
    def source_kind(self) -> str:
        """``s3`` or ``file`` (a Dagster kind)."""
        return "s3" if self.source.uri.startswith("s3://") else "file"

    def props(self, stage: Stage) -> RAGFlowAssetProps:
        """What the translator sees for one stage of this target."""
        return RAGFlowAssetProps(stage=stage, target=self)


@dataclass(frozen=True)
class RAGFlowAssetProps:
    """The translator's input: one stage (``source``, ``documents``, ``chunks``) of a target."""

    stage: Stage
    target: RAGFlowTarget


class DagsterRAGFlowTranslator:
    """Maps the stages of an ingestion onto Dagster asset specs.

    Override :meth:`get_asset_spec` (call ``super()`` and ``replace_attributes`` /
    ``merge_attributes``) to change keys, groups, owners, tags or metadata:

    Example:
        >>> import dagster as dg
        >>> class MyTranslator(DagsterRAGFlowTranslator):
        ...     def get_asset_spec(self, props: RAGFlowAssetProps) -> dg.AssetSpec:
        ...         spec = super().get_asset_spec(props)
        ...         return spec.replace_attributes(
        ...             key=spec.key.with_prefix("kb"), owners=["team:search"])
        >>> t = RAGFlowTarget.create(source="docs/", dataset="handbook")
        >>> MyTranslator().get_asset_spec(t.props("chunks")).key.path
        ['kb', 'ragflow', 'handbook', 'chunks']

    Args:
        key_prefix: Prefix of the asset keys (default ``["ragflow", <name>]``).
        group_name: Asset group (default ``ragflow_<name>``).
    """

    def __init__(
        self, *, key_prefix: Sequence[str] | None = None, group_name: str | None = None
    ) -> None:
        self.key_prefix = tuple(key_prefix) if key_prefix is not None else None
        self.group_name = group_name

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(key_prefix={self.key_prefix!r}, group_name={self.group_name!r})"
        )

    def prefix(self, target: RAGFlowTarget) -> list[str]:
        """The key prefix of a target's assets."""
        return list(self.key_prefix) if self.key_prefix is not None else ["ragflow", target.name]

    def get_asset_spec(self, props: RAGFlowAssetProps) -> dg.AssetSpec:
        """The spec of one stage: key, deps, group, kinds, tags, owners, description, metadata.

        Example:
            >>> t = RAGFlowTarget.create(source="docs/", dataset="handbook")
            >>> spec = DagsterRAGFlowTranslator().get_asset_spec(t.props("chunks"))
            >>> [d.asset_key.path[-1] for d in spec.deps], sorted(spec.kinds)
            (['documents'], ['ragflow'])
        """
        import dagster as dg

        t = props.target
        prefix = self.prefix(t)
        group = self.group_name or f"ragflow_{t.name}"
        base_meta: dict[str, Any] = {"source_uri": t.source.uri, "dataset": t.dataset.name}
        if props.stage == "source":
            return dg.AssetSpec(
                key=dg.AssetKey([*prefix, "source"]),
                group_name=group,
                kinds={t.source_kind},
                description=f"The files under {t.source.uri} (listed by each sync, never copied).",
                metadata=base_meta,
            )
        if props.stage == "documents":
            return dg.AssetSpec(
                key=dg.AssetKey([*prefix, "documents"]),
                deps=[dg.AssetKey([*prefix, "source"])],
                group_name=group,
                kinds={"ragflow", t.source_kind},
                tags=dataset_tag(t.name),
                description=f"The RAGFlow dataset '{t.dataset.name}' kept in sync with "
                f"{t.source.uri}: uploads, replacements, moves, deletions.",
                metadata=base_meta,
            )
        if props.stage == "chunks":
            return dg.AssetSpec(
                key=dg.AssetKey([*prefix, "chunks"]),
                deps=[dg.AssetKey([*prefix, "documents"])],
                group_name=group,
                kinds={"ragflow"},
                tags=dataset_tag(t.name),
                description=f"The parsed chunks of '{t.dataset.name}': parsing finished, "
                "summarised (parsed, failed, still parsing, chunk and token totals).",
                metadata=base_meta,
            )
        raise ValueError(f"stage must be 'source', 'documents' or 'chunks', got {props.stage!r}")
