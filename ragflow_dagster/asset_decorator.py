"""``@ragflow_ingestion_assets``: the multi-asset of one ingestion, with a body the user owns.

In the manner of ``@sling_assets`` / ``@dlt_assets``: the specs (``documents`` and ``chunks``,
depending on the external ``source``) come from a :class:`DagsterRAGFlowTranslator`, their checks
are declared here, and the body is usually one line::

    @ragflow_ingestion_assets(target=RAGFlowTarget.create(source="docs/", dataset="handbook"))
    def handbook(context: dg.AssetExecutionContext, ragflow: RAGFlowResource):
        yield from ragflow.sync(context=context)
"""

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from ragflow_dagster.events import METADATA_KEY_STAGE
from ragflow_dagster.translator import (
    METADATA_KEY_TARGET,
    DagsterRAGFlowTranslator,
    RAGFlowTarget,
)

__all__ = [
    "get_ragflow_check_specs",
    "get_ragflow_source_spec",
    "get_ragflow_specs",
    "ragflow_ingestion_assets",
]


def get_ragflow_specs(
    target: RAGFlowTarget,
    *,
    translator: DagsterRAGFlowTranslator | None = None,
    freshness: dg.FreshnessPolicy | None = None,
) -> list[dg.AssetSpec]:
    """The ``documents`` and ``chunks`` specs of a target (partitioned like the target).

    Example:
        >>> t = RAGFlowTarget.create(source="docs/", dataset="handbook")
        >>> [s.key.path[-1] for s in get_ragflow_specs(t)]
        ['documents', 'chunks']
    """
    tr = translator or DagsterRAGFlowTranslator()
    pdef = target.partitioning.partitions_def
    specs = []
    for stage in ("documents", "chunks"):
        spec = tr.get_asset_spec(target.props(stage)).merge_attributes(
            metadata={METADATA_KEY_TARGET: target, METADATA_KEY_STAGE: stage}
        )
        changes: dict[str, Any] = {"skippable": True, "partitions_def": pdef}
        if freshness is not None and spec.freshness_policy is None:
            changes["freshness_policy"] = freshness
        specs.append(spec.replace_attributes(**changes))
    return specs


def get_ragflow_source_spec(
    target: RAGFlowTarget, *, translator: DagsterRAGFlowTranslator | None = None
) -> dg.AssetSpec:
    """The external ``source`` asset the ``documents`` asset depends on (never materialized).

    Example:
        >>> t = RAGFlowTarget.create(source="docs/", dataset="handbook")
        >>> get_ragflow_source_spec(t).key.path
        ['ragflow', 'handbook', 'source']
    """
    return (translator or DagsterRAGFlowTranslator()).get_asset_spec(target.props("source"))


def get_ragflow_check_specs(
    target: RAGFlowTarget, specs: list[dg.AssetSpec]
) -> list[dg.AssetCheckSpec]:
    """The checks of a target: ``documents_match_source`` and ``sync_lag`` on ``documents``,
    ``chunks_healthy`` (and ``retrieval_smoke_test`` when probes are set) on ``chunks``."""
    by_stage = {str(s.metadata[METADATA_KEY_STAGE]): s.key for s in specs}
    docs, chunks = by_stage["documents"], by_stage["chunks"]
    blocking = target.blocking_checks
    out = [
        dg.AssetCheckSpec(
            "documents_match_source",
            asset=docs,
            blocking=blocking,
            description="Every file has exactly one up-to-date managed document; "
            "no orphans, no duplicates (judged from the run's own listing and outcomes).",
        ),
        dg.AssetCheckSpec(
            "sync_lag",
            asset=docs,
            description=f"No source change older than {target.max_lag} is missing.",
        ),
        dg.AssetCheckSpec(
            "chunks_healthy",
            asset=chunks,
            blocking=blocking,
            description="No document in FAIL/CANCEL; no non-empty file without chunks.",
        ),
    ]
    if target.retrieval_probes:
        out.append(
            dg.AssetCheckSpec(
                "retrieval_smoke_test",
                asset=chunks,
                description="Configured questions retrieve their expected document.",
            )
        )
    return out


def ragflow_ingestion_assets(
    *,
    target: RAGFlowTarget,
    translator: DagsterRAGFlowTranslator | None = None,
    name: str | None = None,
    freshness: dg.FreshnessPolicy | None = None,
    pool: str | None = None,
    op_tags: Mapping[str, Any] | None = None,
    required_resource_keys: set[str] | None = None,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """Build the multi-asset of one ingestion around a user-written body.

    Args:
        target: What to sync (source, dataset, options, partitioning, checks).
        translator: How the assets look (keys, groups, tags, kinds, owners, metadata).
        name: Op name (default ``<target.name>_ingestion``).
        freshness: Freshness policy of ``documents`` and ``chunks`` (unless the translator set
            one).
        pool: Concurrency pool (default: the per-dataset pool ``ragflow_<name>``; give it a
            limit of 1, which :func:`ragflow_dagster.sensors.ensure_pool_limit` does).
        op_tags: Tags of the op.
        required_resource_keys: For bodies that read ``context.resources``.

    Returns:
        A decorator turning the body into the ``AssetsDefinition``.

    Example:
        >>> import dagster as dg
        >>> from ragflow_dagster import RAGFlowResource
        >>> @ragflow_ingestion_assets(target=RAGFlowTarget.create(source="docs/", dataset="kb"))
        ... def kb(context: dg.AssetExecutionContext, ragflow: RAGFlowResource):
        ...     yield from ragflow.sync(context=context)
        >>> sorted(k.path[-1] for k in kb.keys)
        ['chunks', 'documents']
    """
    specs = get_ragflow_specs(target, translator=translator, freshness=freshness)
    pdef = target.partitioning.partitions_def
    return dg.multi_asset(
        name=name or f"{target.name}_ingestion",
        specs=specs,
        check_specs=get_ragflow_check_specs(target, specs),
        partitions_def=pdef,
        backfill_policy=dg.BackfillPolicy.single_run() if pdef is not None else None,
        can_subset=True,
        pool=pool or target.pool,
        op_tags=op_tags,
        required_resource_keys=required_resource_keys,
    )
