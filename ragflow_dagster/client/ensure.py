"""Get-or-create a dataset by name, and report how its settings differ from what is asked.

Dagster-free so the CLI can use it too; :class:`~ragflow_dagster.resource.RAGFlowResource`
wraps it for assets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragflow_dagster.client.core import RAGFlowClient
from ragflow_dagster.client.errors import RAGFlowConflictError, RAGFlowError
from ragflow_dagster.client.models import Dataset

__all__ = [
    "DatasetDrift",
    "DatasetSpec",
    "EnsuredDataset",
    "dataset_drift",
    "ensure_dataset",
    "settings_of",
]

logger = logging.getLogger("ragflow_dagster.client")


@dataclass(frozen=True)
class DatasetDrift:
    """One setting whose value on the server differs from the wanted one.

    Example:
        >>> str(DatasetDrift("chunk_method", "qa", "naive"))
        "chunk_method: wanted 'qa', server has 'naive'"
    """

    setting: str
    wanted: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.setting}: wanted {self.wanted!r}, server has {self.actual!r}"


@dataclass(frozen=True)
class EnsuredDataset:
    """What :func:`ensure_dataset` found or did.

    Attributes:
        dataset: The dataset (as stored after any change).
        created: It did not exist and was created.
        updated: It existed with different settings, had no documents, and was updated.
        drift: Settings that differ from the wanted ones and were left alone (it has documents).
    """

    dataset: Dataset
    created: bool = False
    updated: bool = False
    drift: tuple[DatasetDrift, ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        """The dataset's id."""
        return self.dataset.id

    def to_metadata(self) -> dict[str, Any]:
        """Plain values for asset metadata (no secrets, JSON-friendly)."""
        return {
            "dataset_id": self.dataset.id,
            "dataset_name": self.dataset.name,
            "dataset_created": self.created,
            "dataset_updated": self.updated,
            "dataset_drift": [str(d) for d in self.drift],
        }


def _model_key(value: str) -> str:
    return value.split("@", 1)[0].strip().casefold()


def _config_drift(prefix: str, wanted: Mapping[str, Any], actual: Any) -> list[DatasetDrift]:
    out: list[DatasetDrift] = []
    actual_map = actual if isinstance(actual, Mapping) else {}
    for key, value in wanted.items():
        here = f"{prefix}.{key}"
        have = actual_map.get(key)
        if isinstance(value, Mapping):
            out.extend(_config_drift(here, value, have))
        elif have != value:
            out.append(DatasetDrift(here, value, have))
    return out


def dataset_drift(
    dataset: Dataset,
    *,
    chunk_method: str | None = None,
    parser_config: Mapping[str, Any] | None = None,
    embedding_model: str | None = None,
    description: str | None = None,
    permission: str | None = None,
) -> list[DatasetDrift]:
    """Compare a dataset with wanted settings; only the settings given are compared.

    ``parser_config`` is compared key by key (nested dicts too): keys the server has and the
    wanted config does not mention are not drift. Embedding models compare by model name when
    one side lacks the ``@factory`` suffix.

    Example:
        >>> ds = Dataset(id="d", name="n", chunk_method="naive",
        ...              parser_config={"chunk_token_num": 512, "raptor": {"use_raptor": False}})
        >>> [str(d) for d in dataset_drift(ds, chunk_method="naive",
        ...                                parser_config={"raptor": {"use_raptor": True}})]
        ['parser_config.raptor.use_raptor: wanted True, server has False']
    """
    out: list[DatasetDrift] = []
    if chunk_method is not None and chunk_method != dataset.chunk_method:
        out.append(DatasetDrift("chunk_method", chunk_method, dataset.chunk_method))
    if embedding_model is not None:
        have = dataset.embedding_model or ""
        same = (
            have == embedding_model
            if "@" in have and "@" in embedding_model
            else _model_key(have) == _model_key(embedding_model)
        )
        if not same:
            out.append(DatasetDrift("embedding_model", embedding_model, have))
    if parser_config is not None:
        out.extend(_config_drift("parser_config", parser_config, dataset.parser_config))
    if description is not None and description != (dataset.description or ""):
        out.append(DatasetDrift("description", description, dataset.description))
    if permission is not None and permission != dataset.permission:
        out.append(DatasetDrift("permission", permission, dataset.permission))
    return out


class DatasetSpec(Protocol):
    """A wanted dataset: its name and creation settings (``DatasetConfig``, ``RouteDataset``)."""

    @property
    def name(self) -> str: ...
    @property
    def chunk_method(self) -> str | None: ...
    @property
    def parser_config(self) -> Mapping[str, Any] | None: ...
    @property
    def embedding_model(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...
    @property
    def permission(self) -> str | None: ...


def settings_of(spec: DatasetSpec) -> dict[str, Any]:
    """The creation settings of ``spec`` as :func:`ensure_dataset`'s keyword arguments.

    Example:
        >>> from ragflow_dagster.translator import DatasetConfig
        >>> wanted = DatasetConfig("hr", parser_config={"chunk_token_num": 128})
        >>> settings_of(wanted)["parser_config"], settings_of(wanted)["chunk_method"]
        ({'chunk_token_num': 128}, 'naive')
    """
    return {
        "chunk_method": spec.chunk_method,
        "parser_config": dict(spec.parser_config) if spec.parser_config else None,
        "embedding_model": spec.embedding_model,
        "description": spec.description,
        "permission": spec.permission,
    }


def ensure_dataset(
    client: RAGFlowClient,
    name: str,
    *,
    chunk_method: str | None = None,
    parser_config: Mapping[str, Any] | None = None,
    embedding_model: str | None = None,
    description: str | None = None,
    permission: str | None = None,
    update_if_empty: bool = True,
    log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    existing: Dataset | None = None,
    **create_extra: Any,
) -> EnsuredDataset:
    """Return the dataset called ``name``, creating it with these settings if it is missing.

    When it exists with different settings: a dataset **without documents** is updated to the
    wanted settings (unless ``update_if_empty=False``); a dataset **with documents** is never
    changed — each difference is logged as a warning and returned in ``drift``, because
    re-chunking or re-embedding existing documents is a decision for a person.

    Two processes racing to create the same name end up with one dataset: when the server
    renames ours to ``name(1)`` (or refuses it), the extra one is deleted and the existing one
    returned. ``existing``: the dataset as a lookup of ``name`` just returned it (saves a call).

    Example:
        >>> res = ensure_dataset(client, "policies", chunk_method="naive",
        ...                      parser_config={"chunk_token_num": 256})
        >>> res.created, res.drift
        (True, ())
        >>> ensure_dataset(client, "policies").created
        False
    """
    log = log or logger
    wanted: dict[str, Any] = {
        "chunk_method": chunk_method,
        "parser_config": parser_config,
        "embedding_model": embedding_model,
        "description": description,
        "permission": permission,
    }
    if existing is None:
        existing = client.find_dataset(name)
    if existing is None:
        try:
            created = client.create_dataset(name, **wanted, **create_extra)
        except RAGFlowConflictError:
            existing = client.find_dataset(name)
            if existing is None:
                raise
        else:
            if created.name.casefold() == name.strip().casefold():
                log.info("Created RAGFlow dataset %r (%s)", created.name, created.id)
                return EnsuredDataset(created, created=True)
            # Someone created the name between our lookup and our create: keep theirs.
            existing = client.find_dataset(name)
            if existing is None:
                raise RAGFlowError(f"dataset {name!r} was renamed to {created.name!r} on create")
            try:
                client.delete_datasets([created.id])
            except RAGFlowError as exc:  # pragma: no cover - best effort cleanup
                log.warning("Could not delete duplicate dataset %s: %s", created.id, exc)
    drift = dataset_drift(existing, **wanted)
    if not drift:
        return EnsuredDataset(existing)
    if existing.document_count == 0 and update_if_empty:
        changes: dict[str, Any] = {}
        for d in drift:
            top = d.setting.split(".", 1)[0]
            changes[top] = wanted[top]
        if "parser_config" in changes and parser_config is not None:
            # only the wanted keys: the server deep-merges them into what it has, and its strict
            # model refuses some keys it returns itself (llm_id, table_context_size, ...)
            changes["parser_config"] = dict(parser_config)
        log.info(
            "Updating empty RAGFlow dataset %r to the wanted settings: %s",
            existing.name,
            "; ".join(str(d) for d in drift),
        )
        updated = client.update_dataset(existing.id, **changes)
        return EnsuredDataset(updated, updated=True)
    for d in drift:
        log.warning(
            "RAGFlow dataset %r (%d documents) differs from the wanted settings and is left "
            "as is: %s",
            existing.name,
            existing.document_count,
            d,
        )
    return EnsuredDataset(existing, drift=tuple(drift))
