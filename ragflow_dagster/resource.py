"""`RAGFlowResource`: the Dagster resource around :class:`RAGFlowClient` and the sync engine.

It holds configuration (server address, API key, timeouts, retry and upload settings), hands out
one pooled client per resource instance with :meth:`RAGFlowResource.get_client`, and runs one
sync with :meth:`RAGFlowResource.sync`, a generator of Dagster events in the manner of
``SlingResource.replicate``: the asset body is ``yield from ragflow.sync(context=context)``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from ragflow_dagster.client import Dataset, RAGFlowClient, ensure_dataset
from ragflow_dagster.client.ensure import settings_of
from ragflow_dagster.sources import Source, build_inventory
from ragflow_dagster.sync.desired import without_sidecars
from ragflow_dagster.sync.engine import (
    SyncAbortedError,
    SyncOptions,
    known_files,
    list_documents,
    sync_source,
)
from ragflow_dagster.translator import (
    METADATA_KEY_TARGET,
    DatasetConfig,
    RAGFlowTarget,
    stored_in_assets,
)

if TYPE_CHECKING:
    from ragflow_dagster.routed_assets import RAGFlowRoutedTarget

__all__ = ["RAGFlowResource", "SyncEvent", "target_of"]

_MiB = 1024 * 1024


class RAGFlowResource(dg.ConfigurableResource):
    """Connection settings for a RAGFlow server, and a client built from them.

    Give the key as ``dg.EnvVar("RAGFLOW_API_KEY")`` so it is read in the run, never stored in
    run configuration, and never shown (the field is excluded from ``repr``).

    Example:
        >>> import dagster as dg
        >>> from ragflow_dagster.resource import RAGFlowResource
        >>> ragflow = RAGFlowResource(
        ...     base_url="http://ragflow:9380", api_key=dg.EnvVar("RAGFLOW_API_KEY"))
        >>> @dg.asset
        ... def manuals(ragflow: RAGFlowResource) -> None:
        ...     ds = ragflow.ensure_dataset("manuals", chunk_method="naive")
        ...     client = ragflow.get_client()
        ...     print(sum(1 for _ in client.iter_documents(ds.id)))
        >>> defs = dg.Definitions(assets=[manuals], resources={"ragflow": ragflow})
    """

    base_url: str = Field(description="RAGFlow server address, e.g. http://ragflow:9380.")
    api_key: str = Field(
        description="RAGFlow API key; use EnvVar('RAGFLOW_API_KEY').",
        repr=False,
    )
    timeout: float = Field(
        default=30.0, description="Seconds to wait for a connection and for each read."
    )
    upload_timeout: float = Field(
        default=300.0, description="Read timeout of upload requests, in seconds."
    )
    max_retries: int = Field(
        default=5, description="Retries of a failed call (connection errors, 429, 5xx)."
    )
    backoff: float = Field(default=0.5, description="First retry delay in seconds (doubles).")
    max_backoff: float = Field(default=30.0, description="Longest computed retry delay.")
    max_retry_after: float = Field(
        default=120.0, description="Longest server Retry-After the client waits for."
    )
    pool_size: int = Field(default=16, description="Pooled connections to the server.")
    max_request_bytes: int = Field(
        default=64 * _MiB, description="Target maximum size of one upload request body."
    )
    max_files_per_request: int = Field(default=32, description="Files per upload request.")
    verify_ssl: bool = Field(default=True, description="Verify the server's TLS certificate.")
    dataset_url_template: str | None = Field(
        default=None,
        description=(
            "Link to a dataset in the RAGFlow web UI, with {dataset_id}; e.g. "
            "'http://ragflow/dataset/files/{dataset_id}' (v0.2x UI). Shown in asset metadata."
        ),
    )

    _client: RAGFlowClient | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def get_client(self) -> RAGFlowClient:
        """Return this resource's client (created on first use, then shared; thread-safe).

        Example:
            >>> [d.name for d in ragflow.get_client().iter_documents(ds.id)]
            ['a.txt', 'b.txt']
            >>> ragflow.get_client() is ragflow.get_client()
            True
        """
        with self._lock:
            if self._client is None:
                self._client = RAGFlowClient(
                    self.base_url,
                    self.api_key,
                    timeout=self.timeout,
                    upload_timeout=self.upload_timeout,
                    max_retries=self.max_retries,
                    backoff=self.backoff,
                    max_backoff=self.max_backoff,
                    max_retry_after=self.max_retry_after,
                    pool_size=self.pool_size,
                    max_request_bytes=self.max_request_bytes,
                    max_files_per_request=self.max_files_per_request,
                    verify=self.verify_ssl,
                )
            return self._client

    def dataset_url(self, dataset_id: str) -> str | None:
        """The dataset's page in the RAGFlow web UI, if ``dataset_url_template`` is set.

        Example:
            >>> RAGFlowResource(base_url="http://r:9380", api_key="k",
            ...     dataset_url_template="http://r/dataset/files/{dataset_id}").dataset_url("42")
            'http://r/dataset/files/42'
        """
        if not self.dataset_url_template:
            return None
        return self.dataset_url_template.format(dataset_id=dataset_id)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close the client's pooled connections when the step ends."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def ensure_dataset(
        self,
        name: str,
        *,
        chunk_method: str | None = None,
        parser_config: Mapping[str, Any] | None = None,
        embedding_model: str | None = None,
        description: str | None = None,
        permission: str | None = None,
        update_if_empty: bool = True,
        existing: Dataset | None = None,
        **create_extra: Any,
    ) -> Dataset:
        """Return the dataset called ``name``, creating it with these settings if missing.

        Settings that differ from the server's are logged as warnings (Dagster log) and never
        changed on a dataset that has documents; an empty dataset is updated to them (unless
        ``update_if_empty=False``). For the details (created? updated? which drift?) call
        :func:`ragflow_dagster.client.ensure_dataset` with :meth:`get_client`.

        Example:
            >>> policies = ragflow.ensure_dataset("policies", chunk_method="naive",
            ...                                   parser_config={"chunk_token_num": 256})
            >>> policies.name, policies.parser_config["chunk_token_num"]
            ('policies', 256)
        """
        result = ensure_dataset(
            self.get_client(),
            name,
            chunk_method=chunk_method,
            parser_config=parser_config,
            embedding_model=embedding_model,
            description=description,
            permission=permission,
            update_if_empty=update_if_empty,
            log=dg.get_dagster_logger("ragflow_dagster"),
            existing=existing,
            **create_extra,
        )
        return result.dataset

    def sync(
        self,
        *,
        context: dg.AssetExecutionContext,
        target: RAGFlowTarget | None = None,
        source: Source | None = None,
        dataset: DatasetConfig | str | None = None,
        options: SyncOptions | None = None,
        dry_run: bool = False,
        allow_mass_delete: bool = False,
    ) -> Iterator[SyncEvent]:
        """Run the sync engine once for the assets of ``context`` and yield their events.

        One dataset listing, one source inventory, one engine run (with its own parse wait and
        verification); then a ``MaterializeResult`` per selected asset (per partition when the
        run covers a range: ``AssetMaterialization`` events with that partition's figures only)
        and the ``AssetCheckResult`` s of the selected checks, computed from what the run
        already holds. Nothing is written to local disk.

        Args:
            context: The asset context of a :func:`~ragflow_dagster.ragflow_ingestion_assets`
                multi-asset (its target is read from the assets' metadata).
            target: Sync this target instead of the assets' own.
            source: Override the target's source.
            dataset: Override the target's dataset.
            options: Override the target's sync options.
            dry_run: Plan only; touch nothing (``chunks`` is not materialized).
            allow_mass_delete: Lift the mass-delete guard for this run.

        Yields:
            ``MaterializeResult``, ``AssetMaterialization`` and ``AssetCheckResult`` events.

        Example:
            >>> import dagster as dg
            >>> from ragflow_dagster import RAGFlowTarget, ragflow_ingestion_assets
            >>> target = RAGFlowTarget.create(source=tmp, dataset="handbook")
            >>> @ragflow_ingestion_assets(target=target, required_resource_keys={"ragflow"})
            ... def handbook(context):  # or (context: dg.AssetExecutionContext, ragflow: ...)
            ...     yield from context.resources.ragflow.sync(context=context)
            >>> dg.materialize([handbook], resources={"ragflow": ragflow}).success
            True
        """
        from ragflow_dagster.events import RunView, sync_events

        tgt = target or target_of(context)
        if source is not None:
            tgt = replace(tgt, source=source)
        if dataset is not None:
            tgt = replace(
                tgt, dataset=DatasetConfig(dataset) if isinstance(dataset, str) else dataset
            )
        view = RunView.of(context, tgt)
        ds = tgt.dataset
        client = self.get_client()
        calls0 = client.request_count
        opts = options or tgt.sync_options
        opts = replace(
            opts,
            in_scope=view.scope,
            dry_run=dry_run or opts.dry_run,
            allow_mass_delete=allow_mass_delete or opts.allow_mass_delete,
        )
        # The source is listed before any dataset is created: a source that cannot be listed
        # leaves nothing behind on the server.
        existing = client.find_dataset(ds.name)
        docs = list_documents(client, existing.id) if existing is not None else []
        inventory = build_inventory(tgt.source, opts.filters, known=known_files(docs))
        dataset_rec = self.ensure_dataset(
            ds.name,
            **settings_of(ds),
            existing=existing,
        )
        if existing is None or existing.id != dataset_rec.id:
            docs = list_documents(client, dataset_rec.id)
        try:
            report = sync_source(
                client,
                tgt.source,
                dataset_rec.id,
                opts,
                dataset_name=dataset_rec.name,
                inventory=inventory,
                documents=docs,
                log=context.log,
                api_calls_since=calls0,
            )
        except SyncAbortedError as exc:
            raise dg.Failure(
                description=f"sync of {dataset_rec.name!r} aborted: {exc.report.error}",
                metadata={
                    "converged": False,
                    "error": exc.report.error or "",
                    "report": dg.MetadataValue.json(exc.report.to_dict()),
                },
            ) from exc
        yield from sync_events(
            view,
            report,
            inventory=without_sidecars(inventory, opts.metadata),  # sidecars are no documents
            before=docs,
            client=client,
            dataset_id=dataset_rec.id,
            dataset_url=self.dataset_url(dataset_rec.id),
            api_calls=lambda: client.request_count - calls0,
        )

    def sync_routed(
        self,
        *,
        context: dg.AssetExecutionContext,
        target: RAGFlowRoutedTarget | None = None,
        options: SyncOptions | None = None,
        dry_run: bool = False,
        allow_mass_delete: bool = False,
    ) -> Iterator[SyncEvent]:
        """Run one routed sync (one listing of the source, one engine run per selected
        dataset) for the assets of a routed ingestion and yield every dataset's events.

        See :func:`~ragflow_dagster.routed_assets.build_ragflow_routed_ingestion`; ``target``
        (a :class:`~ragflow_dagster.routed_assets.RAGFlowRoutedTarget`) overrides the assets'
        own. A dataset whose run aborted yields no materialization, and the step then fails.

        Example:
            >>> import dagster as dg
            >>> from pathlib import Path
            >>> from ragflow_dagster import RAGFlowRoutedTarget, ragflow_routed_ingestion_assets
            >>> _ = Path(tmp, "eng").mkdir()
            >>> _ = Path(tmp, "eng", "api.md").write_text("# API")
            >>> target = RAGFlowRoutedTarget.create(source=tmp, name="acme",
            ...     routes={"routes": [{"glob": "eng/**", "dataset": "eng"}]})
            >>> @ragflow_routed_ingestion_assets(target=target, required_resource_keys={"ragflow"})
            ... def acme(context):
            ...     yield from context.resources.ragflow.sync_routed(context=context)
            >>> dg.materialize([acme], resources={"ragflow": ragflow}).success
            True
        """
        from ragflow_dagster.routed_events import routed_sync_events

        yield from routed_sync_events(
            self,
            context,
            target=target,
            options=options,
            dry_run=dry_run,
            allow_mass_delete=allow_mass_delete,
        )


SyncEvent = dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckResult
"""What :meth:`RAGFlowResource.sync` yields."""


def target_of(context: dg.AssetExecutionContext) -> RAGFlowTarget:
    """The :class:`RAGFlowTarget` stored in the metadata of the context's assets.

    Raises:
        ValueError: The assets were not built by ``@ragflow_ingestion_assets``.
    """
    found = stored_in_assets(context, METADATA_KEY_TARGET, RAGFlowTarget)
    if found is not None:
        return found
    raise ValueError(
        f"the assets of {context.op_def.name!r} carry no RAGFlow target in their metadata: build "
        "them with @ragflow_ingestion_assets(target=...) or pass target= to RAGFlowResource.sync"
    )
