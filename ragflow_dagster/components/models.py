"""The YAML schema of :class:`~ragflow_dagster.components.RAGFlowIngestionComponent`.

Every section is optional except ``source`` and ``dataset``; ``source`` and ``dataset`` also take
a plain string. Durations are minutes when given as a number, or strings such as ``"90s"``,
``"45m"``, ``"6h"``, ``"1d"`` or ``"1h30m"``. Sizes are bytes or strings such as ``"64k"``,
``"50MB"``, ``"1GiB"``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

import dagster as dg
from pydantic import Field, field_validator

Duration = str | float | int
"""Minutes (a number) or a string with units: ``"90s"``, ``"45m"``, ``"6h"``, ``"1d"``."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Duration) -> timedelta:
    """A duration from minutes (number) or a string with units.

    Example:
        >>> parse_duration(90) == parse_duration("1h30m") == parse_duration("90m")
        True
        >>> parse_duration("2d").days
        2
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return timedelta(minutes=value)
    text = str(value).strip()
    try:
        return parse_duration(float(text))
    except ValueError:
        pass
    pos = 0
    seconds = 0.0
    compact = text.replace(" ", "")
    for m in _DURATION_PART.finditer(compact):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]
        pos = m.end()
    if pos != len(compact) or not compact:
        raise ValueError(f"not a duration: {value!r} (use minutes, or e.g. 90s, 45m, 6h, 1d)")
    return timedelta(seconds=seconds)


def _check_duration(value: Any) -> Any:
    if value is not None:
        parse_duration(value)
    return value


class SourceModel(dg.Model, dg.Resolvable):
    """Where the files live."""

    uri: str = Field(
        description="A folder (absolute, or relative to the folder of this defs.yaml; "
        "'{{ context.project_root }}/docs' works too), s3://bucket/prefix, or any fsspec URI "
        "(webdav+https://host/dav/docs, az://container/prefix, sftp://user@host/srv/docs)."
    )
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, R2, ...), s3:// sources only."
    )
    region: str | None = Field(default=None, description="S3 region, s3:// sources only.")
    page_size: int | None = Field(
        default=None, description="Keys per S3 listing request (1..1000), s3:// sources only."
    )
    follow_symlinks: bool = Field(
        default=True, description="Follow symlinks that stay inside the folder (folders only)."
    )
    storage_options: dict[str, Any] | None = Field(
        default=None,
        description="fsspec options for other protocols (webdav+https://, az://, sftp://, "
        "gcs://, ...). Keep secrets out of YAML: fsspec also reads FSSPEC_<PROTOCOL>_<OPTION> "
        "environment variables, and the protocols' own (AZURE_STORAGE_*, ...).",
    )


class DatasetModel(dg.Model, dg.Resolvable):
    """The RAGFlow dataset (created on first use with these settings)."""

    name: str = Field(description="Dataset name.")
    chunk_method: str | None = Field(default="naive", description="Chunk method, e.g. naive.")
    parser_config: dict[str, Any] | None = Field(
        default=None, description='Parser settings, e.g. {"chunk_token_num": 256}.'
    )
    embedding_model: str | None = Field(default=None, description="Embedding model id.")
    description: str | None = Field(default=None, description="Dataset description.")
    permission: str | None = Field(default=None, description="'me' or 'team'.")


class RouteModel(dg.Model, dg.Resolvable):
    """One route: files whose relative path matches ``glob`` go to ``dataset`` (first match
    wins)."""

    glob: str | list[str] = Field(description="Glob(s) on the relative path: 'eng/**'.")
    dataset: str | DatasetModel = Field(description="The dataset's name, or its settings.")


class FiltersModel(dg.Model, dg.Resolvable):
    """Which files take part (the legacy uploader's filters plus include globs)."""

    extensions: list[str] | None = Field(default=None, description="Allowed extensions: [pdf, md].")
    include: list[str] = Field(default_factory=list, description="Globs a path must match.")
    exclude: list[str] = Field(
        default_factory=list, description="Globs on the path or file name to skip: ['*.tmp']."
    )
    exclude_dirs: list[str] = Field(
        default_factory=list, description="Directory names never entered: [.git, node_modules]."
    )
    min_size: int | str | None = Field(default=None, description="Smallest size (bytes, '4k').")
    max_size: int | str | None = Field(default=None, description="Largest size (bytes, '50MB').")
    modified_after: str | None = Field(default=None, description="ISO date/time.")
    modified_before: str | None = Field(default=None, description="ISO date/time.")
    max_depth: int | None = Field(default=None, description="1 = files directly in the root.")
    include_hidden: bool = Field(default=False, description="Take dot-files and dot-folders.")
    mime_types: list[str] = Field(default_factory=list, description="MIME types or prefixes.")
    content_patterns: list[str] = Field(
        default_factory=list, description="Keep files whose text contains one of these."
    )
    min_text_ratio: float | None = Field(default=None, description="0..1 printable share.")
    encoding: str = Field(default="utf-8", description="Encoding of the content filters.")


class SyncModel(dg.Model, dg.Resolvable):
    """How a run syncs."""

    max_workers: int = Field(default=4, description="Concurrent requests to RAGFlow.")
    wait: bool = Field(default=True, description="Wait until parsing has finished.")
    parse: bool = Field(default=True, description="Start parsing new and changed documents.")
    parse_timeout: Duration = Field(default="1h", description="Deadline of the parse wait.")
    max_delete_fraction: float = Field(
        default=0.5, description="Mass-delete guard: most of the dataset a run may delete."
    )
    allow_mass_delete: bool = Field(default=False, description="Lift the mass-delete guard.")
    delete_removed: bool = Field(default=True, description="Delete documents of removed files.")

    _durations = field_validator("parse_timeout")(_check_duration)


class SensorModel(dg.Model, dg.Resolvable):
    """The sensor that watches the source."""

    enabled: bool = Field(default=True, description="Build the sensor.")
    default_status: Literal["running", "stopped"] = Field(
        default="running", description="Whether it runs as soon as the code location loads."
    )
    minimum_interval_seconds: int = Field(default=30, description="Seconds between ticks.")
    settle_seconds: float = Field(
        default=60, description="Files modified more recently than this wait for a later tick."
    )
    max_partition_adds: int = Field(default=1000, description="Partitions added per tick.")
    max_partition_deletes: int = Field(default=1000, description="Partitions deleted per tick.")
    list_budget_seconds: float = Field(
        default=35, description="Time an S3 listing may take per tick before it resumes later."
    )


class ScheduleModel(dg.Model, dg.Resolvable):
    """The full-reconcile schedule."""

    enabled: bool = Field(default=True, description="Build the schedule.")
    cron: str = Field(default="0 2 * * *", description="When, in cron syntax (default 02:00).")
    timezone: str | None = Field(default=None, description="Time zone of the cron expression.")
    default_status: Literal["running", "stopped"] = Field(
        default="running", description="Whether it runs as soon as the code location loads."
    )


class FreshnessModel(dg.Model, dg.Resolvable):
    """Freshness of the documents and chunks assets."""

    fail_window: Duration = Field(default="24h", description="Stale (fail) after this long.")
    warn_window: Duration | None = Field(default="6h", description="Warn after this long.")

    _durations = field_validator("fail_window", "warn_window")(_check_duration)


class ProbeModel(dg.Model, dg.Resolvable):
    """A retrieval smoke test."""

    question: str = Field(description="The question to ask.")
    expected_path: str = Field(description="Relative path of the file that must answer it.")
    top_n: int = Field(default=10, description="Within the first N chunks.")


class ChecksModel(dg.Model, dg.Resolvable):
    """Asset checks."""

    max_lag: Duration = Field(
        default="1h",
        description="The sync-lag check fails when a change older than this is still missing.",
    )
    blocking: bool = Field(default=True, description="Failed checks stop downstream assets.")
    retrieval_probes: list[ProbeModel] = Field(
        default_factory=list, description="Questions that must retrieve their document."
    )

    _durations = field_validator("max_lag")(_check_duration)


class ResourceModel(dg.Model, dg.Resolvable):
    """The RAGFlow resource the assets use."""

    key: str = Field(default="ragflow", description="Resource key.")
    provide: bool = Field(
        default=True,
        description="Provide the resource (false: another component or definitions file does).",
    )
    base_url: str | None = Field(
        default=None, description="Server address; default: the variable named by base_url_env."
    )
    base_url_env: str = Field(
        default="RAGFLOW_BASE_URL", description="Variable read in the run when base_url is unset."
    )
    api_key: str | None = Field(
        default=None,
        description="API key (prefer api_key_env: a key given here is shown in the UI).",
    )
    api_key_env: str = Field(
        default="RAGFLOW_API_KEY", description="Variable read in the run when api_key is unset."
    )
    timeout: float | None = Field(default=None, description="Seconds per request.")
    verify_ssl: bool | None = Field(default=None, description="Verify the TLS certificate.")
    dataset_url_template: str | None = Field(
        default=None,
        description="Link to a dataset in the RAGFlow UI, e.g. "
        "'http://ragflow/dataset/files/{dataset_id}' (shown in the run metadata).",
    )


class MetadataModel(dg.Model, dg.Resolvable):
    """The metadata mapping merged into each document's ``meta_fields`` (the same fields as a
    ``--metadata-file``; README: Metadata mapping). Later sources win for the same key."""

    static: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Fixed values by glob: [{glob: 'hr/**', set: {department: HR}}].",
    )
    from_path: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Named regex groups of the relative path: [{regex: '^(?P<team>[^/]+)/', "
        "types: {year: int}}] (types: str, int, float, date, list).",
    )
    front_matter: dict[str, Any] | None = Field(
        default=None, description="Keys of the YAML front matter of Markdown: {keys: [title]}."
    )
    sidecar: bool = Field(
        default=False, description="Read <name>.meta.json / .meta.yaml next to each file."
    )
    s3: dict[str, Any] | None = Field(
        default=None, description="S3 user metadata and tags: {metadata: [owner], tags: true}."
    )


class ParseRuleModel(dg.Model, dg.Resolvable):
    """One parsing rule: files matching ``glob`` get ``chunk_method`` and ``parser_config``."""

    glob: str = Field(description="Glob on the relative path ('faq/**', '*.csv').")
    chunk_method: str = Field(description="naive, qa, table, manual, paper, book, one, ...")
    parser_config: dict[str, Any] = Field(
        default_factory=dict, description="Merged into the document's parser_config."
    )


__all__ = [
    "ChecksModel",
    "DatasetModel",
    "Duration",
    "FiltersModel",
    "FreshnessModel",
    "MetadataModel",
    "ParseRuleModel",
    "ProbeModel",
    "ResourceModel",
    "RouteModel",
    "ScheduleModel",
    "SensorModel",
    "SourceModel",
    "SyncModel",
    "parse_duration",
]
