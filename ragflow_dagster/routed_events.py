"""The Dagster events of one routed run: per dataset, the events a single-dataset run yields.

Used by :meth:`ragflow_dagster.resource.RAGFlowResource.sync_routed`: one
:func:`~ragflow_dagster.sync.routed.sync_routed` (one listing of the source, one engine run per
selected dataset), then for each dataset its materializations and check results, computed by
:func:`~ragflow_dagster.events.sync_events` from what that dataset's run already holds.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import dagster as dg

from ragflow_dagster.client.ensure import settings_of
from ragflow_dagster.events import METADATA_KEY_STAGE, RunView, sync_events
from ragflow_dagster.routed_assets import (
    METADATA_KEY_ROUTE_DATASET,
    METADATA_KEY_ROUTED,
    RAGFlowRoutedTarget,
)
from ragflow_dagster.sync.engine import SyncOptions
from ragflow_dagster.sync.routed import sync_routed
from ragflow_dagster.sync.routing import RouteDataset
from ragflow_dagster.translator import stored_in_assets

if TYPE_CHECKING:
    from ragflow_dagster.client import Dataset
    from ragflow_dagster.resource import RAGFlowResource, SyncEvent
    from ragflow_dagster.sync.report import SyncReport

__all__ = ["routed_sync_events", "routed_target_of"]


def routed_target_of(context: dg.AssetExecutionContext) -> RAGFlowRoutedTarget:
    """The :class:`RAGFlowRoutedTarget` stored in the metadata of the context's assets.

    Raises:
        ValueError: The assets were not built by ``@ragflow_routed_ingestion_assets``.
    """
    found = stored_in_assets(context, METADATA_KEY_ROUTED, RAGFlowRoutedTarget)
    if found is not None:
        return found
    raise ValueError(
        f"the assets of {context.op_def.name!r} carry no routed target in their metadata: build "
        "them with @ragflow_routed_ingestion_assets(target=...) or build_ragflow_routed_ingestion"
    )


def routed_sync_events(
    ragflow: RAGFlowResource,
    context: dg.AssetExecutionContext,
    *,
    target: RAGFlowRoutedTarget | None = None,
    options: SyncOptions | None = None,
    dry_run: bool = False,
    allow_mass_delete: bool = False,
) -> Iterator[SyncEvent]:
    """Run one routed sync for the selected datasets of ``context`` and yield their events.

    A dataset whose run aborted yields no materialization; after the other datasets' events
    the step fails (``dg.Failure``) naming it.
    """
    tgt = target or routed_target_of(context)
    keys: dict[str, dict[str, dg.AssetKey]] = {}
    for key, meta in context.assets_def.metadata_by_key.items():
        if METADATA_KEY_ROUTE_DATASET in meta:
            keys.setdefault(str(meta[METADATA_KEY_ROUTE_DATASET]), {})[
                str(meta[METADATA_KEY_STAGE])
            ] = key
    selected = frozenset(context.selected_asset_keys)
    checks = frozenset(context.selected_asset_check_keys)
    only = [
        name
        for name, stages in keys.items()
        if any(k in selected for k in stages.values())
        or any(c.asset_key in stages.values() for c in checks)
    ]
    opts = options or tgt.sync_options
    opts = replace(
        opts,
        in_scope=None,
        dry_run=dry_run or opts.dry_run,
        allow_mass_delete=allow_mass_delete or opts.allow_mass_delete,
    )
    client = ragflow.get_client()

    def ensure(ds: RouteDataset, found: Dataset | None) -> Dataset:
        return ragflow.ensure_dataset(
            ds.name,
            **settings_of(ds),
            existing=found,
        )

    routed = sync_routed(
        client,
        tgt.source,
        tgt.routes,
        opts,
        only=only,
        ensure=ensure,
        log=context.log,
    )
    if routed.unrouted:
        context.log.warning(
            f"{len(routed.unrouted)} files match no route and were skipped (unrouted): "
            + ", ".join(s.path for s in routed.unrouted[:10])
            + (", ..." if len(routed.unrouted) > 10 else "")
        )
    aborted: dict[str, str] = {}
    for name, run in routed.runs.items():
        report = run.report
        if report.error is not None:
            aborted[name] = report.error
            continue
        view = RunView(
            target=tgt.dataset_target(name),
            keys=keys[name],
            selected=selected,
            checks=checks,
            partition_keys=None,
            full=True,
        )
        for event in sync_events(
            view,
            report,
            inventory=run.inventory,
            before=run.documents_before,
            client=client,
            dataset_id=run.dataset_id,
            dataset_url=ragflow.dataset_url(run.dataset_id) if run.dataset_id else None,
            api_calls=functools.partial(_api_calls, report),
        ):
            if isinstance(event, dg.MaterializeResult) and event.asset_key == keys[name].get(
                "documents"
            ):
                event = dg.MaterializeResult(
                    asset_key=event.asset_key,
                    metadata={
                        **(event.metadata or {}),
                        "unrouted": len(routed.unrouted),
                        "source_listings": routed.source_listings,
                        "run_api_calls": routed.api_calls,
                    },
                )
            yield event
    if aborted:
        raise dg.Failure(
            description="routed sync aborted for "
            + "; ".join(f"{name!r}: {err}" for name, err in aborted.items()),
            metadata={
                "converged": False,
                "report": dg.MetadataValue.json(routed.to_dict()),
            },
        )


def _api_calls(report: SyncReport) -> int:
    return report.api_calls
