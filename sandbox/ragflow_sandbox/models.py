"""The request models of the dataset and document routes, as pydantic models shaped like
RAGFlow's own (``api/utils/validation_utils.py``): same class names, fields, constraints,
strictness and custom messages, so pydantic itself produces the server's error texts.

Example:
    >>> from ragflow_sandbox.validation import ValidationFailed, validate
    >>> try:
    ...     validate(CreateDatasetReq, {"name": " "})
    ... except ValidationFailed as exc:
    ...     print(exc.message())
    Field: <name> - Message: <String should have at least 1 character> - Value: < >
"""

from __future__ import annotations

import re
import string
import uuid
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from . import constants as C

__all__ = [
    "AutoMetadataConfig",
    "AutoMetadataField",
    "CreateDatasetReq",
    "DeleteDatasetReq",
    "DeleteDocumentReq",
    "GraphragConfig",
    "ListDatasetReq",
    "ParentChildConfig",
    "ParserConfig",
    "RaptorConfig",
    "UpdateDatasetReq",
    "UpdateDocumentReq",
    "normalize_raptor",
    "uuid_hex",
]


def _fail(message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError("format_invalid", message, context or None)


def uuid_hex(value: Any) -> str:
    """Any UUID spelling as its 32-char hex, else "Invalid UUID format" (any UUID version).

    Example:
        >>> uuid_hex("550e8400-e29b-41d4-a716-446655440000")
        '550e8400e29b41d4a716446655440000'
    """
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, str):
        try:
            return uuid.UUID(value).hex
        except ValueError:
            pass
    raise PydanticCustomError("invalid_uuid_format", "Invalid UUID format")


def _unique(ids: list[str]) -> list[str]:
    repeated = [item for item, n in Counter(ids).items() if n > 1]
    if repeated:
        raise PydanticCustomError(
            "duplicate_uuids",
            "Duplicate ids: '{duplicate_ids}'",
            {"duplicate_ids": ", ".join(repeated)},
        )
    return ids


def normalize_raptor(value: Any) -> Any:
    """Map RAPTOR's legacy keys (``ext.clustering_threshold``, ``threshold``...) onto today's.

    Example:
        >>> normalize_raptor({"max_token": 100, "threshold": 1})
        {'max_token': 512}
    """
    if not isinstance(value, dict):
        return value
    out = {
        k: v
        for k, v in value.items()
        if k not in ("threshold", "clustering_method", "tree_builder")
    }
    legacy = out.pop("ext", None)
    if (
        isinstance(legacy, dict)
        and out.get("clustering_threshold") is None
        and "clustering_threshold" in legacy
    ):
        out["clustering_threshold"] = legacy["clustering_threshold"]
    low = out.get("max_token")
    if isinstance(low, (int, float)) and not isinstance(low, bool) and low < 512:
        out["max_token"] = 512
    return out


class Base(BaseModel):
    """Strict, and unknown fields are errors (RAGFlow's ``Base``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --- parser configuration --------------------------------------------------------------------


class RaptorConfig(Base):
    """``parser_config.raptor``."""

    use_raptor: bool = False
    prompt: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = C.RAPTOR_PROMPT
    max_token: Annotated[int, Field(ge=512, le=2048)] = 512
    clustering_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    clustering_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    max_cluster: Annotated[int, Field(ge=1, le=1024)] = 64
    random_seed: Annotated[int, Field(ge=0)] = 0
    scope: Literal["file", "dataset"] = "file"
    auto_disable_for_structured_data: bool = True

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, value: Any) -> Any:
        return normalize_raptor(value)


def _entity_types() -> list[str]:
    return ["organization", "person", "geo", "event", "category"]


class GraphragConfig(Base):
    """``parser_config.graphrag``."""

    use_graphrag: bool = False
    entity_types: list[str] = Field(default_factory=_entity_types)
    method: Literal["light", "general", "ner"] = "light"
    community: bool = False
    resolution: bool = False
    batch_chunk_token_size: Annotated[int, Field(ge=512, le=8196)] = 4096
    retry_attempts: Annotated[int, Field(ge=1, le=10)] = 2
    retry_backoff_seconds: Annotated[float, Field(ge=0.0, le=600.0)] = 2.0
    retry_backoff_max_seconds: Annotated[float, Field(ge=0.0, le=3600.0)] = 60.0
    build_subgraph_timeout_per_chunk_seconds: Annotated[int, Field(ge=1, le=86400)] = 300
    build_subgraph_min_timeout_seconds: Annotated[int, Field(ge=1, le=86400)] = 600
    merge_timeout_seconds: Annotated[int, Field(ge=0, le=86400)] = 180
    resolution_timeout_seconds: Annotated[int, Field(ge=0, le=86400)] = 1800
    community_timeout_seconds: Annotated[int, Field(ge=0, le=86400)] = 1800
    lock_acquire_timeout_seconds: Annotated[int, Field(ge=0, le=86400)] = 600


class ParentChildConfig(Base):
    """``parser_config.parent_child``."""

    use_parent_child: bool = False
    children_delimiter: Annotated[str, Field(min_length=1)] = "\n"


class AutoMetadataField(Base):
    """One field of ``auto_metadata_config``."""

    key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    type: Literal["string", "list", "time", "number"]
    description: Annotated[str | None, Field(max_length=65535)] = None
    enum: list[str] | None = None


class AutoMetadataConfig(Base):
    """``auto_metadata_config`` of a dataset (and ``PUT .../metadata/config``)."""

    metadata: list[AutoMetadataField] = Field(default_factory=list)
    built_in_metadata: list[AutoMetadataField] = Field(default_factory=list)


class ParserConfig(Base):
    """``parser_config`` of a dataset or a document."""

    auto_keywords: Annotated[int, Field(ge=0, le=32)] = 0
    auto_questions: Annotated[int, Field(ge=0, le=10)] = 0
    chunk_token_num: Annotated[int, Field(ge=1, le=2048)] = 512
    delimiter: Annotated[str, Field(min_length=1)] = "\n"
    graphrag: GraphragConfig = Field(default_factory=GraphragConfig)
    html4excel: bool = False
    layout_recognize: str = "DeepDOC"
    parent_child: ParentChildConfig = Field(default_factory=ParentChildConfig)
    enable_children: bool = False
    children_delimiter: str = ""
    raptor: RaptorConfig = Field(default_factory=RaptorConfig)
    tag_kb_ids: list[str] = Field(default_factory=list)
    topn_tags: Annotated[int, Field(ge=1, le=10)] = 1
    filename_embd_weight: Annotated[float | None, Field(ge=0.0, le=1.0)] = 0.1
    task_page_size: Annotated[int | None, Field(ge=1)] = None
    pages: list[list[int]] | None = None
    compilation_template_group_id: list[str] = Field(default_factory=list)
    ext: dict[str, Any] = Field(default_factory=dict)
    table_column_mode: Literal["auto", "manual"] | None = None
    table_column_roles: dict[str, Literal["indexing", "metadata", "both"]] | None = None
    table_column_names: list[str] | None = None

    @field_validator("table_column_roles", mode="before")
    @classmethod
    def _vectorize_is_indexing(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {str(k): "indexing" if v == "vectorize" else v for k, v in value.items()}

    @field_validator("compilation_template_group_id", mode="before")
    @classmethod
    def _template_ids(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            return []
        kept = [s.strip() for s in items if isinstance(s, str) and s.strip()]
        return list(dict.fromkeys(kept))


# --- datasets ----------------------------------------------------------------------------------

_CHUNK_METHODS_TEXT = (
    ", ".join(f"'{m}'" for m in C.DATASET_CHUNK_METHODS[:-1])
    + f" or '{C.DATASET_CHUNK_METHODS[-1]}'"
)


def _chunk_method_error() -> PydanticCustomError:
    return PydanticCustomError("literal_error", "Input should be " + _CHUNK_METHODS_TEXT)


_Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=C.DATASET_NAME_LIMIT)
]


class CreateDatasetReq(Base):
    """``POST /datasets``."""

    name: _Name
    avatar: Annotated[str | None, Field(max_length=65535)] = None
    description: Annotated[str | None, Field(max_length=65535)] = None
    embedding_model: Annotated[str | None, Field(max_length=255)] = None
    permission: Literal["me", "team"] = "me"
    parse_type: Annotated[int | None, Field(ge=0, le=64)] = None
    pipeline_id: Annotated[str | None, Field(min_length=32, max_length=32)] = None
    chunk_method: str | None = None
    parser_config: ParserConfig | None = None
    auto_metadata_config: AutoMetadataConfig | None = None
    ext: dict[str, Any] = Field(default_factory=dict)

    @field_validator("avatar", mode="after")
    @classmethod
    def _avatar(cls, value: str | None) -> str | None:
        if not value:
            return value
        prefix, comma, _ = value.partition(",")
        if not comma:
            raise _fail("missing MIME prefix. Expected format: data:<mime>;base64,<data>")
        if not prefix.startswith("data:"):
            raise _fail("invalid MIME prefix format. Must start with 'data:'")
        allowed = ["image/jpeg", "image/png"]
        if prefix[5:].split(";")[0] not in allowed:
            raise _fail("Unsupported MIME type. Allowed: {allowed}", allowed=allowed)
        return value

    @field_validator("embedding_model", mode="before")
    @classmethod
    def _strip_embedding(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("embedding_model", mode="after")
    @classmethod
    def _embedding(cls, value: str | None) -> str | None:
        if value is None or re.fullmatch(r"[0-9a-fA-F]{32}", value):  # a tenant model id
            return value
        if "@" not in value:
            raise _fail("embedding model identifier must follow <model_name>@<provider> format")
        model, _, provider = value.partition("@")
        if not model or not provider:
            raise _fail("both model_name and provider must be non-empty strings")
        if not model.strip() or not provider.strip():
            raise _fail("Model name and provider cannot be whitespace-only strings")
        return value

    @field_validator("pipeline_id", mode="before")
    @classmethod
    def _pipeline_ignored_for_parse_type_1(cls, value: Any, info: ValidationInfo) -> Any:
        return None if value is not None and info.data.get("parse_type", 0) == 1 else value

    @field_validator("pipeline_id", mode="after")
    @classmethod
    def _pipeline(cls, value: str | None) -> str | None:
        if not value:
            return None
        if len(value) != 32:
            raise _fail("pipeline_id must be 32 hex characters")
        if not all(ch in string.hexdigits for ch in value):
            raise _fail("pipeline_id must be hexadecimal")
        return value.lower()

    @field_validator("chunk_method", mode="wrap")
    @classmethod
    def _chunk_method(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        try:
            method = handler(value)
        except Exception:
            raise _chunk_method_error() from None
        if (not method and not info.data.get("pipeline_id")) or (
            method and method not in C.DATASET_CHUNK_METHODS
        ):
            raise _chunk_method_error()
        return method

    @field_validator("parser_config", mode="before")
    @classmethod
    def _empty_parser_config(cls, value: Any) -> Any:
        return None if value == {} else value

    @field_validator("parser_config", mode="after")
    @classmethod
    def _parser_config_size(cls, value: ParserConfig | None) -> ParserConfig | None:
        if value is not None and (size := len(value.model_dump_json())) > 65535:
            raise PydanticCustomError(
                "string_too_long",
                "Parser config exceeds size limit (max 65,535 characters). Current size: {actual}",
                {"actual": size},
            )
        return value

    @model_validator(mode="after")
    def _chunk_method_or_pipeline(self) -> CreateDatasetReq:
        if self.chunk_method is None and "chunk_method" not in self.model_fields_set:
            absent = [n for n in ("parse_type", "pipeline_id") if getattr(self, n) is None]
            if len(absent) == 2:
                object.__setattr__(self, "chunk_method", "naive")
            elif absent:
                raise PydanticCustomError(
                    "dependency_error",
                    "parser_id omitted → required fields missing: {fields}",
                    {"fields": ", ".join(absent)},
                )
            return self
        if isinstance(self.chunk_method, str):
            present = []
            if self.parse_type not in (None, 1):
                present.append("parse_type")
            if self.pipeline_id is not None:
                present.append("pipeline_id")
            if present:
                raise PydanticCustomError(
                    "dependency_error",
                    "parser_id provided → disallowed fields present: {fields}",
                    {"fields": ", ".join(present)},
                )
        return self


class UpdateDatasetReq(CreateDatasetReq):
    """``PUT /datasets/{dataset_id}`` (the path id is validated as ``dataset_id``)."""

    dataset_id: str
    name: _Name = ""
    pagerank: Annotated[int, Field(ge=0, le=100)] = 0
    language: Annotated[str | None, Field(max_length=32)] = None
    connectors: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("dataset_id", mode="before")
    @classmethod
    def _dataset_id(cls, value: Any) -> str:
        return uuid_hex(value)


class DeleteDatasetReq(Base):
    """``DELETE /datasets``: UUID ids, no duplicates."""

    ids: list[str] | None = None
    delete_all: bool = False

    @field_validator("ids", mode="after")
    @classmethod
    def _ids(cls, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else _unique([uuid_hex(i) for i in ids])


class DeleteDocumentReq(Base):
    """``DELETE /datasets/{id}/documents``: any ids (connectors use non-UUIDs), no duplicates."""

    ids: list[str] | None = None
    delete_all: bool = False

    @field_validator("ids", mode="after")
    @classmethod
    def _ids(cls, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else _unique(ids)


class ListDatasetReq(BaseModel):
    """``GET /datasets`` query (lax: query strings are converted)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str | None = None
    page: Annotated[int, Field(ge=1)] = 1
    page_size: Annotated[int, Field(ge=1)] = C.DEFAULT_PAGE_SIZE
    orderby: Literal["create_time", "update_time"] = "create_time"
    desc: bool = True
    ids: Annotated[list[str] | None, Field(max_length=C.MAX_IDS)] = None
    include_parsing_status: bool = False
    ext: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str:
        return uuid_hex(value)

    @field_validator("page_size")
    @classmethod
    def _page_size(cls, value: int) -> int:
        if value > C.MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be less than or equal to {C.MAX_PAGE_SIZE}")
        return value

    @field_validator("ids", mode="after")
    @classmethod
    def _ids(cls, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else _unique([uuid_hex(i) for i in ids])


# --- documents ---------------------------------------------------------------------------------


class UpdateDocumentReq(Base):
    """``PUT``/``PATCH /datasets/{id}/documents/{doc}`` (unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str | None, Field(max_length=65535)] = None
    chunk_method: Annotated[str | None, Field(max_length=65535)] = None
    pipeline_id: Annotated[str | None, Field(max_length=65535)] = None
    enabled: Annotated[int | None, Field(ge=0, le=1)] = None
    chunk_count: Annotated[int | None, Field(ge=0)] = None
    token_count: Annotated[int | None, Field(ge=0)] = None
    progress: Annotated[float | None, Field(ge=0.0, le=1.0)] = None
    parser_config: ParserConfig | None = None
    meta_fields: dict[str, Any] | None = Field(default_factory=dict)

    @field_validator("chunk_method", mode="after")
    @classmethod
    def _chunk_method(cls, value: str | None) -> str | None:
        if value and value not in C.DOCUMENT_CHUNK_METHODS:
            raise _fail("`chunk_method` {chunk_method} doesn't exist", chunk_method=value)
        return value

    @field_validator("enabled", mode="after")
    @classmethod
    def _enabled(cls, value: int | None) -> int | None:
        if value and not 0 <= int(value) <= 1:
            raise _fail(
                "`enabled` value invalid, only accept 0 or 1 but is {enabled}", enabled=value
            )
        return value

    @field_validator("meta_fields", mode="after")
    @classmethod
    def _meta_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        scalar = (str, int, float)
        for item in (value or {}).values():
            if isinstance(item, list):
                if not all(isinstance(i, scalar) for i in item):
                    raise _fail("The type is not supported in list: {v}", v=item)
            elif not isinstance(item, scalar):
                raise _fail("The type is not supported: {v}", v=item)
        return value
