"""Request validation with the error messages RAGFlow's pydantic models produce.

RAGFlow validates bodies with strict pydantic models and reports the first problems as
``Field: <loc> - Message: <msg> - Value: <input>`` lines. The sandbox must not depend on
pydantic, so this module holds a very small schema engine that reproduces those messages for
the models the dataset and document routes use.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import constants as C

_MISSING: Any = object()


class FieldError(Exception):
    """One validation problem (``loc`` relative to the value being validated)."""

    def __init__(self, msg: str, value: Any, loc: tuple[Any, ...] = ()) -> None:
        super().__init__(msg)
        self.msg = msg
        self.value = value
        self.loc = loc


class ValidationFailed(Exception):
    """Raised by :meth:`Model.validate` with every error found."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(e.msg for e in errors))
        self.errors = errors

    def message(self) -> str:
        """Render the errors the way RAGFlow's ``format_validation_error_message`` does."""
        lines = []
        for err in self.errors:
            value = str(err.value)
            if len(value) > 128:
                value = value[:125] + "..."
            loc = ".".join(str(p) for p in err.loc)
            lines.append(f"Field: <{loc}> - Message: <{err.msg}> - Value: <{value}>")
        return "\n".join(lines)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --- field types -----------------------------------------------------------------------------


class T:
    """Base of the field types; ``check`` returns the validated value or raises."""

    def check(self, value: Any, strict: bool) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Str(T):
    strip: bool = False
    min_len: int | None = None
    max_len: int | None = None

    def check(self, value: Any, strict: bool) -> Any:
        if not isinstance(value, str):
            raise FieldError("Input should be a valid string", value)
        out = value.strip() if self.strip else value
        if self.min_len is not None and len(out) < self.min_len:
            unit = "character" if self.min_len == 1 else "characters"
            raise FieldError(f"String should have at least {self.min_len} {unit}", value)
        if self.max_len is not None and len(out) > self.max_len:
            unit = "character" if self.max_len == 1 else "characters"
            raise FieldError(f"String should have at most {self.max_len} {unit}", value)
        return out


def _bounds(value: float, original: Any, ge: float | None, le: float | None) -> None:
    if ge is not None and value < ge:
        raise FieldError(f"Input should be greater than or equal to {_num(ge)}", original)
    if le is not None and value > le:
        raise FieldError(f"Input should be less than or equal to {_num(le)}", original)


_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")


@dataclass
class Int(T):
    ge: float | None = None
    le: float | None = None

    def check(self, value: Any, strict: bool) -> Any:
        out: int
        if isinstance(value, bool):
            raise FieldError("Input should be a valid integer", value)
        if isinstance(value, int):
            out = value
        elif strict:
            raise FieldError("Input should be a valid integer", value)
        elif isinstance(value, float):
            if not value.is_integer():
                raise FieldError(
                    "Input should be a valid integer, got a number with a fractional part", value
                )
            out = int(value)
        elif isinstance(value, str):
            if _INT_RE.match(value):
                out = int(value)
            else:
                try:
                    as_float = float(value)
                except ValueError:
                    as_float = math.nan
                if not math.isfinite(as_float) or not as_float.is_integer():
                    raise FieldError(
                        "Input should be a valid integer, unable to parse string as an integer",
                        value,
                    ) from None
                out = int(as_float)
        else:
            raise FieldError("Input should be a valid integer", value)
        _bounds(out, value, self.ge, self.le)
        return out


@dataclass
class Float(T):
    ge: float | None = None
    le: float | None = None

    def check(self, value: Any, strict: bool) -> Any:
        if isinstance(value, bool):
            raise FieldError("Input should be a valid number", value)
        if isinstance(value, (int, float)):
            out = float(value)
        elif not strict and isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise FieldError(
                    "Input should be a valid number, unable to parse string as a number", value
                ) from None
        else:
            raise FieldError("Input should be a valid number", value)
        _bounds(out, value, self.ge, self.le)
        return out


_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


@dataclass
class Bool(T):
    def check(self, value: Any, strict: bool) -> Any:
        if isinstance(value, bool):
            return value
        if strict:
            raise FieldError("Input should be a valid boolean", value)
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise FieldError("Input should be a valid boolean, unable to interpret input", value)
        raise FieldError("Input should be a valid boolean", value)


@dataclass
class Literal(T):
    values: tuple[str, ...]

    def check(self, value: Any, strict: bool) -> Any:
        if isinstance(value, str) and value in self.values:
            return value
        quoted = [f"'{v}'" for v in self.values]
        text = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        raise FieldError(f"Input should be {text}", value)


@dataclass
class Dict(T):
    def check(self, value: Any, strict: bool) -> Any:
        if not isinstance(value, dict):
            raise FieldError("Input should be a valid dictionary", value)
        return value


@dataclass
class AnyT(T):
    def check(self, value: Any, strict: bool) -> Any:
        return value


@dataclass
class List(T):
    item: T
    max_items: int | None = None
    min_items: int | None = None

    def check(self, value: Any, strict: bool) -> Any:
        if not isinstance(value, list) and not (not strict and isinstance(value, tuple)):
            raise FieldError("Input should be a valid list", value)
        out = []
        errors: list[FieldError] = []
        for i, item in enumerate(value):
            try:
                out.append(self.item.check(item, strict))
            except FieldError as err:
                errors.append(FieldError(err.msg, err.value, (i, *err.loc)))
            except ValidationFailed as failed:
                errors.extend(FieldError(e.msg, e.value, (i, *e.loc)) for e in failed.errors)
        if errors:
            raise ValidationFailed(errors)
        if self.max_items is not None and len(out) > self.max_items:
            raise FieldError(
                f"List should have at most {self.max_items} items after validation, not {len(out)}",
                value,
            )
        if self.min_items is not None and len(out) < self.min_items:
            raise FieldError(
                f"List should have at least {self.min_items} item after validation, not {len(out)}",
                value,
            )
        return out


@dataclass
class Optional(T):
    inner: T

    def check(self, value: Any, strict: bool) -> Any:
        if value is None:
            return None
        return self.inner.check(value, strict)


@dataclass
class Nested(T):
    model: Model

    def check(self, value: Any, strict: bool) -> Any:
        if not isinstance(value, dict):
            raise FieldError(
                f"Input should be a valid dictionary or instance of {self.model.name}", value
            )
        return self.model.validate(value)


# --- models ----------------------------------------------------------------------------------

Validator = Callable[[Any, dict[str, Any]], Any]


@dataclass
class F:
    """A model field: type, default and optional validators (before/after the type check)."""

    type: T
    default: Any = _MISSING
    default_factory: Callable[[], Any] | None = None
    before: Validator | None = None
    after: Validator | None = None
    wrap_error: str | None = None  # replace any error of the type check with this message

    def make_default(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        if self.default is _MISSING:
            return _MISSING
        return json.loads(json.dumps(self.default))


@dataclass
class Model:
    """A tiny pydantic-like model: ordered fields, ``extra`` policy and strictness.

    Example:
        >>> try:
        ...     CREATE_DATASET.validate({"name": " "})
        ... except ValidationFailed as exc:
        ...     print(exc.message())
        Field: <name> - Message: <String should have at least 1 character> - Value: < >
    """

    name: str
    fields: dict[str, F]
    extra: str = "forbid"  # "forbid" | "ignore"
    strict: bool = True
    model_after: Callable[[dict[str, Any], set[str]], None] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def validate(self, data: dict[str, Any], *, fields_set: set[str] | None = None) -> dict:
        """Validate ``data``; return all fields (defaults filled) or raise ValidationFailed."""
        out: dict[str, Any] = {}
        errors: list[FieldError] = []
        for name, spec in self.fields.items():
            if name in data:
                value = data[name]
                try:
                    if spec.before is not None:
                        value = spec.before(value, out)
                    try:
                        value = spec.type.check(value, self.strict)
                    except (FieldError, ValidationFailed):
                        if spec.wrap_error is None:
                            raise
                        raise FieldError(spec.wrap_error, data[name]) from None
                    if spec.after is not None:
                        value = spec.after(value, out)
                    out[name] = value
                except FieldError as err:
                    errors.append(FieldError(err.msg, err.value, (name, *err.loc)))
                except ValidationFailed as failed:
                    errors.extend(FieldError(e.msg, e.value, (name, *e.loc)) for e in failed.errors)
            else:
                default = spec.make_default()
                if default is _MISSING:
                    errors.append(FieldError("Field required", data, (name,)))
                else:
                    out[name] = default
        if self.extra == "forbid":
            for name, value in data.items():
                if name not in self.fields:
                    errors.append(FieldError("Extra inputs are not permitted", value, (name,)))
        if errors:
            raise ValidationFailed(errors)
        if self.model_after is not None:
            try:
                self.model_after(out, set(data) if fields_set is None else fields_set)
            except FieldError as err:
                raise ValidationFailed([FieldError(err.msg, data, err.loc)]) from None
        return out


# --- shared validators -------------------------------------------------------------------------


def uuid_hex(value: Any, _data: dict[str, Any] | None = None) -> str:
    """Accept any UUID spelling and return its 32-char hex (``validate_uuid1_hex``)."""
    try:
        if isinstance(value, uuid.UUID):
            return value.hex
        if isinstance(value, str):
            return uuid.UUID(value).hex
    except (ValueError, AttributeError, TypeError):
        pass
    raise FieldError("Invalid UUID format", value)


def _avatar(value: Any, _data: dict[str, Any]) -> Any:
    if not value:
        return value
    if "," not in value:
        raise FieldError("missing MIME prefix. Expected format: data:<mime>;base64,<data>", value)
    prefix = value.split(",", 1)[0]
    if not prefix.startswith("data:"):
        raise FieldError("invalid MIME prefix format. Must start with 'data:'", value)
    mime = prefix[5:].split(";")[0]
    if mime not in ("image/jpeg", "image/png"):
        raise FieldError("Unsupported MIME type. Allowed: ['image/jpeg', 'image/png']", value)
    return value


def _embedding_before(value: Any, _data: dict[str, Any]) -> Any:
    return value.strip() if isinstance(value, str) else value


def _embedding_after(value: Any, _data: dict[str, Any]) -> Any:
    if not isinstance(value, str) or re.fullmatch(r"[0-9a-fA-F]{32}", value):
        return value
    if "@" not in value:
        raise FieldError(
            "embedding model identifier must follow <model_name>@<provider> format", value
        )
    model, provider = value.split("@", 1)
    if not model or not provider:
        raise FieldError("both model_name and provider must be non-empty strings", value)
    if not model.strip() or not provider.strip():
        raise FieldError("Model name and provider cannot be whitespace-only strings", value)
    return value


def _pipeline_before(value: Any, data: dict[str, Any]) -> Any:
    if value is None:
        return value
    if data.get("parse_type", 0) == 1:
        return None
    return value


def _pipeline_after(value: Any, _data: dict[str, Any]) -> Any:
    if value is None or value == "":
        return None
    if len(value) != 32:
        raise FieldError("pipeline_id must be 32 hex characters", value)
    if any(ch not in "0123456789abcdefABCDEF" for ch in value):
        raise FieldError("pipeline_id must be hexadecimal", value)
    return value.lower()


_CHUNK_METHOD_MSG = (
    "Input should be 'naive', 'book', 'email', 'laws', 'manual', 'one', 'paper', 'picture', "
    "'presentation', 'qa', 'table', 'tag' or 'resume'"
)


def _chunk_method_before(value: Any, data: dict[str, Any]) -> Any:
    if not isinstance(value, str):
        raise FieldError(_CHUNK_METHOD_MSG, value)
    if not value and not data.get("pipeline_id"):
        raise FieldError(_CHUNK_METHOD_MSG, value)
    if value and value not in C.DATASET_CHUNK_METHODS:
        raise FieldError(_CHUNK_METHOD_MSG, value)
    return value


def _empty_to_none(value: Any, _data: dict[str, Any]) -> Any:
    return None if value == {} else value


def _parser_config_size(value: Any, _data: dict[str, Any]) -> Any:
    if value is None:
        return None
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    if size > 65535:
        raise FieldError(
            f"Parser config exceeds size limit (max 65,535 characters). Current size: {size}",
            value,
        )
    return value


def _raptor_legacy(value: Any, _data: dict[str, Any]) -> Any:
    if not isinstance(value, dict):
        return value
    out = dict(value)
    legacy_ext = out.pop("ext", None)
    if (
        isinstance(legacy_ext, dict)
        and out.get("clustering_threshold") is None
        and "clustering_threshold" in legacy_ext
    ):
        out["clustering_threshold"] = legacy_ext["clustering_threshold"]
    for name in ("threshold", "clustering_method", "tree_builder"):
        out.pop(name, None)
    max_token = out.get("max_token")
    if isinstance(max_token, (int, float)) and not isinstance(max_token, bool) and max_token < 512:
        out["max_token"] = 512
    return out


def _table_roles(value: Any, _data: dict[str, Any]) -> Any:
    if not isinstance(value, dict):
        return value
    return {str(k): ("indexing" if v == "vectorize" else v) for k, v in value.items()}


def _template_ids(value: Any, _data: dict[str, Any]) -> Any:
    if value is None:
        return []
    raw = [value] if isinstance(value, str) else value
    if not isinstance(raw, list):
        return []
    seen: list[str] = []
    for item in raw:
        if isinstance(item, str) and item.strip() and item.strip() not in seen:
            seen.append(item.strip())
    return seen


RAPTOR = Model(
    "RaptorConfig",
    {
        "use_raptor": F(Bool(), default=False),
        "prompt": F(Str(strip=True, min_len=1), default=C.RAPTOR_PROMPT),
        "max_token": F(Int(ge=512, le=2048), default=512),
        "clustering_threshold": F(Float(ge=0.0, le=1.0), default=0.3),
        "clustering_ratio": F(Float(ge=0.0, le=1.0), default=0.5),
        "max_cluster": F(Int(ge=1, le=1024), default=64),
        "random_seed": F(Int(ge=0), default=0),
        "scope": F(Literal(("file", "dataset")), default="file"),
        "auto_disable_for_structured_data": F(Bool(), default=True),
    },
)

GRAPHRAG = Model(
    "GraphragConfig",
    {
        "use_graphrag": F(Bool(), default=False),
        "entity_types": F(
            List(Str()),
            default_factory=lambda: ["organization", "person", "geo", "event", "category"],
        ),
        "method": F(Literal(("light", "general", "ner")), default="light"),
        "community": F(Bool(), default=False),
        "resolution": F(Bool(), default=False),
        "batch_chunk_token_size": F(Int(ge=512, le=8196), default=4096),
        "retry_attempts": F(Int(ge=1, le=10), default=2),
        "retry_backoff_seconds": F(Float(ge=0.0, le=600.0), default=2.0),
        "retry_backoff_max_seconds": F(Float(ge=0.0, le=3600.0), default=60.0),
        "build_subgraph_timeout_per_chunk_seconds": F(Int(ge=1, le=86400), default=300),
        "build_subgraph_min_timeout_seconds": F(Int(ge=1, le=86400), default=600),
        "merge_timeout_seconds": F(Int(ge=0, le=86400), default=180),
        "resolution_timeout_seconds": F(Int(ge=0, le=86400), default=1800),
        "community_timeout_seconds": F(Int(ge=0, le=86400), default=1800),
        "lock_acquire_timeout_seconds": F(Int(ge=0, le=86400), default=600),
    },
)

PARENT_CHILD = Model(
    "ParentChildConfig",
    {
        "use_parent_child": F(Bool(), default=False),
        "children_delimiter": F(Str(min_len=1), default="\n"),
    },
)

AUTO_METADATA_FIELD = Model(
    "AutoMetadataField",
    {
        "key": F(Str(strip=True, min_len=1, max_len=255)),
        "type": F(Literal(("string", "list", "time", "number"))),
        "description": F(Optional(Str(max_len=65535)), default=None),
        "enum": F(Optional(List(Str())), default=None),
    },
)

AUTO_METADATA = Model(
    "AutoMetadataConfig",
    {
        "metadata": F(List(Nested(AUTO_METADATA_FIELD)), default_factory=list),
        "built_in_metadata": F(List(Nested(AUTO_METADATA_FIELD)), default_factory=list),
    },
)

PARSER_CONFIG = Model(
    "ParserConfig",
    {
        "auto_keywords": F(Int(ge=0, le=32), default=0),
        "auto_questions": F(Int(ge=0, le=10), default=0),
        "chunk_token_num": F(Int(ge=1, le=2048), default=512),
        "delimiter": F(Str(min_len=1), default="\n"),
        "graphrag": F(Nested(GRAPHRAG), default_factory=lambda: GRAPHRAG.validate({})),
        "html4excel": F(Bool(), default=False),
        "layout_recognize": F(Str(), default="DeepDOC"),
        "parent_child": F(Nested(PARENT_CHILD), default_factory=lambda: PARENT_CHILD.validate({})),
        "enable_children": F(Bool(), default=False),
        "children_delimiter": F(Str(min_len=0), default=""),
        "raptor": F(
            Nested(RAPTOR), default_factory=lambda: RAPTOR.validate({}), before=_raptor_legacy
        ),
        "tag_kb_ids": F(List(Str()), default_factory=list),
        "topn_tags": F(Int(ge=1, le=10), default=1),
        "filename_embd_weight": F(Optional(Float(ge=0.0, le=1.0)), default=0.1),
        "task_page_size": F(Optional(Int(ge=1)), default=None),
        "pages": F(Optional(List(List(Int()))), default=None),
        "compilation_template_group_id": F(List(Str()), default_factory=list, before=_template_ids),
        "ext": F(Dict(), default={}),
        "table_column_mode": F(Optional(Literal(("auto", "manual"))), default=None),
        "table_column_roles": F(
            Optional(Dict()),
            default=None,
            before=_table_roles,
            after=lambda v, _d: _check_roles(v),
        ),
        "table_column_names": F(Optional(List(Str())), default=None),
    },
)


def _check_roles(value: Any) -> Any:
    if value is None:
        return None
    for key, role in value.items():
        if role not in ("indexing", "metadata", "both"):
            raise FieldError("Input should be 'indexing', 'metadata' or 'both'", role, (key,))
    return value


def _dataset_dependency(out: dict[str, Any], fields_set: set[str]) -> None:
    if out.get("chunk_method") is None and "chunk_method" not in fields_set:
        if out.get("parse_type") is None and out.get("pipeline_id") is None:
            out["chunk_method"] = "naive"
            return
        if out.get("parse_type") is None or out.get("pipeline_id") is None:
            missing = [n for n in ("parse_type", "pipeline_id") if out.get(n) is None]
            raise FieldError(
                f"parser_id omitted → required fields missing: {', '.join(missing)}", None
            )
        return
    if isinstance(out.get("chunk_method"), str):
        invalid = []
        if out.get("parse_type") not in (None, 1):
            invalid.append("parse_type")
        if out.get("pipeline_id") is not None:
            invalid.append("pipeline_id")
        if invalid:
            raise FieldError(
                f"parser_id provided → disallowed fields present: {', '.join(invalid)}", None
            )


def _dataset_fields(*, name_required: bool) -> dict[str, F]:
    return {
        "name": F(
            Str(strip=True, min_len=1, max_len=C.DATASET_NAME_LIMIT),
            default=_MISSING if name_required else "",
        ),
        "avatar": F(Optional(Str(max_len=65535)), default=None, after=_avatar),
        "description": F(Optional(Str(max_len=65535)), default=None),
        "embedding_model": F(
            Optional(Str(max_len=255)),
            default=None,
            before=_embedding_before,
            after=_embedding_after,
        ),
        "permission": F(Literal(("me", "team")), default="me"),
        "parse_type": F(Optional(Int(ge=0, le=64)), default=None),
        "pipeline_id": F(
            Optional(Str(min_len=32, max_len=32)),
            default=None,
            before=_pipeline_before,
            after=_pipeline_after,
        ),
        "chunk_method": F(AnyT(), default=None, before=_chunk_method_before),
        "parser_config": F(
            Optional(Nested(PARSER_CONFIG)),
            default=None,
            before=_empty_to_none,
            after=_parser_config_size,
        ),
        "auto_metadata_config": F(Optional(Nested(AUTO_METADATA)), default=None),
        "ext": F(Dict(), default={}),
    }


CREATE_DATASET = Model(
    "CreateDatasetReq", _dataset_fields(name_required=True), model_after=_dataset_dependency
)

UPDATE_DATASET = Model(
    "UpdateDatasetReq",
    {
        **_dataset_fields(name_required=False),
        "dataset_id": F(Str(), before=lambda v, _d: uuid_hex(v)),
        "pagerank": F(Int(ge=0, le=100), default=0),
        "language": F(Optional(Str(max_len=32)), default=None),
        "connectors": F(List(Dict()), default_factory=list),
    },
    model_after=_dataset_dependency,
)


def _delete_ids_uuid(value: Any, _data: dict[str, Any]) -> Any:
    if value is None:
        return None
    ids = [uuid_hex(v) for v in value]
    _no_duplicates(ids)
    return ids


def _no_duplicates(ids: list[str]) -> None:
    dups = [item for item, count in Counter(ids).items() if count > 1]
    if dups:
        raise FieldError(f"Duplicate ids: '{', '.join(dups)}'", ids)


def _delete_ids_plain(value: Any, _data: dict[str, Any]) -> Any:
    if value is not None:
        _no_duplicates(value)
    return value


DELETE_DATASETS = Model(
    "DeleteDatasetReq",
    {
        "ids": F(Optional(List(Str())), default=None, after=_delete_ids_uuid),
        "delete_all": F(Bool(), default=False),
    },
)
DELETE_DOCUMENTS = Model(
    "DeleteDocumentReq",
    {
        "ids": F(Optional(List(Str())), default=None, after=_delete_ids_plain),
        "delete_all": F(Bool(), default=False),
    },
)


def _page_size(value: Any, _data: dict[str, Any]) -> Any:
    if value > C.MAX_PAGE_SIZE:
        raise FieldError(
            f"Value error, page_size must be less than or equal to {C.MAX_PAGE_SIZE}", value
        )
    return value


def _list_ids(value: Any, _data: dict[str, Any]) -> Any:
    if value is None:
        return None
    ids = [uuid_hex(v) for v in value]
    _no_duplicates(ids)
    return ids


LIST_DATASETS = Model(
    "ListDatasetReq",
    {
        "id": F(Optional(Str()), default=None, before=lambda v, _d: uuid_hex(v)),
        "name": F(Optional(Str()), default=None),
        "page": F(Int(ge=1), default=1),
        "page_size": F(Int(ge=1), default=C.DEFAULT_PAGE_SIZE, after=_page_size),
        "orderby": F(Literal(("create_time", "update_time")), default="create_time"),
        "desc": F(Bool(), default=True),
        "ids": F(Optional(List(Str(), max_items=C.MAX_IDS)), default=None, after=_list_ids),
        "include_parsing_status": F(Bool(), default=False),
        "ext": F(Dict(), default={}),
    },
    strict=False,
)


def _enabled(value: Any, _data: dict[str, Any]) -> Any:
    if value and not 0 <= int(value) <= 1:
        raise FieldError(f"`enabled` value invalid, only accept 0 or 1 but is {value}", value)
    return value


def _doc_chunk_method(value: Any, _data: dict[str, Any]) -> Any:
    if value and value not in C.DOCUMENT_CHUNK_METHODS:
        raise FieldError(f"`chunk_method` {value} doesn't exist", value)
    return value


def _meta_fields(value: Any, _data: dict[str, Any]) -> Any:
    if value is None:
        return None
    for item in value.values():
        if isinstance(item, list):
            if not all(isinstance(i, (str, int, float)) for i in item):
                raise FieldError(f"The type is not supported in list: {item}", value)
        elif not isinstance(item, (str, int, float)):
            raise FieldError(f"The type is not supported: {item}", value)
    return value


UPDATE_DOCUMENT = Model(
    "UpdateDocumentReq",
    {
        "name": F(Optional(Str(max_len=65535)), default=None),
        "chunk_method": F(Optional(Str(max_len=65535)), default=None, after=_doc_chunk_method),
        "pipeline_id": F(Optional(Str(max_len=65535)), default=None),
        "enabled": F(Optional(Int(ge=0, le=1)), default=None, after=_enabled),
        "chunk_count": F(Optional(Int(ge=0)), default=None),
        "token_count": F(Optional(Int(ge=0)), default=None),
        "progress": F(Optional(Float(ge=0.0, le=1.0)), default=None),
        "parser_config": F(Optional(Nested(PARSER_CONFIG)), default=None),
        "meta_fields": F(Optional(Dict()), default={}, after=_meta_fields),
    },
    extra="ignore",
)


# --- JSON bodies --------------------------------------------------------------------------------


class BadRequest(Exception):
    """A request the route rejects before model validation (message already final)."""


def parse_json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Decode a JSON body the way ``validate_and_parse_json_request`` does.

    Raises:
        BadRequest: With RAGFlow's message for a wrong content type, bad JSON or a non-object.
    """
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json":
        raise BadRequest(f"Unsupported content type: Expected application/json, got {content_type}")
    try:
        payload = json.loads(body)  # an empty body is malformed JSON as well
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            "Malformed JSON syntax: Missing commas/brackets or invalid encoding"
        ) from None
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        name = {str: "str", list: "list", int: "int", float: "float", bool: "bool"}.get(
            type(payload), type(payload).__name__
        )
        raise BadRequest(f"Invalid request payload: expected object, got {name}")
    return payload


# --- query helpers --------------------------------------------------------------------------------


def rest_page(value: Any) -> int:
    """``validate_rest_api_page``: invalid values fall back to page 1."""
    try:
        page = int(value)
    except (TypeError, ValueError):
        return C.DEFAULT_PAGE
    return page if page >= 1 else C.DEFAULT_PAGE


def rest_page_size(value: Any) -> int:
    """``validate_rest_api_page_size``: invalid values fall back to 30; above 100 raises."""
    try:
        size = int(value)
    except (TypeError, ValueError):
        return C.DEFAULT_PAGE_SIZE
    if size < 1:
        return C.DEFAULT_PAGE_SIZE
    if size > C.MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be less than or equal to {C.MAX_PAGE_SIZE}")
    return size


def check_ids_limit(ids: list[Any] | None, field_name: str = "ids") -> None:
    """``validate_rest_api_ids``: at most 100 ids."""
    if ids is not None and len(ids) > C.MAX_IDS:
        raise ValueError(f"{field_name} must contain at most {C.MAX_IDS} IDs")
