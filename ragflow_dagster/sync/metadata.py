"""Metadata mapping: which ``meta_fields`` each managed document carries besides its identity.

A :class:`MetadataSpec` lists the sources of values, merged in this order (a later source wins
for the same key; the identity keys of :mod:`.identity` always win over all of them):

1. ``static``: fixed values for the paths a glob matches (``{"glob": "hr/**", "set": {...}}``);
2. ``from_path``: named groups of a regex searched in the relative path, converted by type
   (``str``, ``int``, ``float``, ``date`` (ISO ``YYYY-MM-DD``), ``list`` (split on ``,``));
3. ``front_matter``: chosen keys of the YAML front matter of Markdown files;
4. ``sidecar``: a JSON or YAML mapping in ``<name>.meta.json`` / ``.meta.yaml`` / ``.meta.yml``
   next to the file (the sidecar itself is never uploaded);
5. ``s3``: the object's user metadata and/or tags (S3 sources);
6. ``function``: a callable ``(SourceFile) -> dict`` (Python API only).

Sources 1, 2 and 6 are *cheap* (computed from the path on every run). Sources 3 to 5 *read*
something; they are read only for new or changed files, or when their change token (the spec
and the sidecar's own change token, kept in ``meta_token``) differs, so a no-op resync reads
nothing. Values must be what RAGFlow stores: ``str``, ``int``, ``float`` or a list of them;
anything else is a :class:`MetadataError` naming the file and the key.

Reserved keys (never taken from a mapping): the identity keys of :mod:`.identity` and the
bookkeeping keys :data:`META_KEYS_KEY` (the mapped keys, so that a key no longer mapped is
removed) and :data:`META_TOKEN_KEY`.

Everything here is pure; :mod:`.desired` does the reading.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragflow_dagster.sources.base import SourceError
from ragflow_dagster.sources.filters import compile_globs
from ragflow_dagster.sync.identity import META_KEYS


@functools.lru_cache(maxsize=1024)
def glob_matcher(pattern: str) -> re.Pattern[str] | None:
    """The compiled matcher of one glob (cached: a spec's globs meet every path of a run)."""
    return compile_globs([pattern])


META_KEYS_KEY = "meta_keys"
"""Bookkeeping: the list of keys the mapping set (absent when none)."""
META_READ_KEYS_KEY = "meta_read_keys"
"""Bookkeeping: the mapped keys whose value was read (front matter, sidecar, S3)."""
META_TOKEN_KEY = "meta_token"
"""Bookkeeping: 16 hex digits over the read sources' spec and the sidecar's change token."""

RESERVED_KEYS: tuple[str, ...] = (*META_KEYS, META_KEYS_KEY, META_READ_KEYS_KEY, META_TOKEN_KEY)
"""Keys no mapping may set: the identity contract and the mapping's bookkeeping."""

SIDECAR_SUFFIXES = (".meta.json", ".meta.yaml", ".meta.yml")
"""A file ``<name><suffix>`` holds metadata for ``<name>``."""

MetaValue = str | int | float | list[str | int | float]
ValueType = Literal["str", "int", "float", "date", "list"]


class MetadataError(SourceError, ValueError):
    """A mapped value RAGFlow cannot store, or a key that is reserved.

    Attributes:
        path: The file whose metadata is wrong.
        key: The offending key.
    """

    def __init__(self, path: str, key: str, message: str) -> None:
        super().__init__(f"{path}: metadata key {key!r}: {message}")
        self.path = path
        self.key = key


@dataclass(frozen=True, slots=True)
class SourceFile:
    """What a metadata function is given about one file.

    Attributes:
        path: Relative POSIX path inside the source root.
        uri: The file's URI (``file:///...`` or ``s3://...``).
        size: Size in bytes.
        modified: Modification time, seconds since the epoch.
    """

    path: str
    uri: str
    size: int
    modified: float


class StaticValues(BaseModel):
    """Fixed values for the paths ``glob`` matches (``*`` crosses ``/``; ``**/`` may be empty)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    glob: str
    set: dict[str, Any]


class PathPattern(BaseModel):
    """Values captured from the relative path by the named groups of ``regex`` (searched).

    ``types`` converts a group: ``int``, ``float``, ``date`` (ISO date, kept as its ISO text),
    ``list`` (split on ``separator``); others stay strings. A group that did not take part is
    left out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    regex: str
    types: dict[str, ValueType] = Field(default_factory=dict)
    separator: str = ","

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"from_path regex {value!r} does not compile: {exc}") from exc
        if not compiled.groupindex:
            raise ValueError(f"from_path regex {value!r} has no named group (?P<name>...)")
        return value


class FrontMatter(BaseModel):
    """Keys taken from the YAML front matter of files matching ``globs`` (Markdown)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: tuple[str, ...]
    globs: tuple[str, ...] = ("*.md", "*.markdown")


class S3Metadata(BaseModel):
    """S3 object user metadata (``x-amz-meta-*``) and tags: ``True`` = all, a list = these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metadata: bool | tuple[str, ...] = False
    tags: bool | tuple[str, ...] = False


class MetadataSpec(BaseModel):
    """The metadata mapping of a sync (see the module docstring for the merge order).

    Example:
        >>> spec = MetadataSpec.model_validate({
        ...     "static": [{"glob": "hr/**", "set": {"department": "HR"}}],
        ...     "from_path": [{"regex": r"(?P<year>\\d{4})/", "types": {"year": "int"}}]})
        >>> cheap_meta(spec, SourceFile("hr/2024/a.md", "file:///r/hr/2024/a.md", 1, 0.0))
        {'department': 'HR', 'year': 2024}
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    static: tuple[StaticValues, ...] = ()
    from_path: tuple[PathPattern, ...] = ()
    front_matter: FrontMatter | None = None
    sidecar: bool = False
    s3: S3Metadata | None = None
    function: Callable[[SourceFile], Mapping[str, Any]] | None = Field(default=None, exclude=True)

    @property
    def is_empty(self) -> bool:
        return not (
            self.static or self.from_path or self.front_matter or self.sidecar or self.s3
        ) and (self.function is None)

    @property
    def reads(self) -> bool:
        """Whether any source must read something (front matter, sidecar, S3)."""
        return bool(self.front_matter or self.sidecar or self.s3)

    def read_fingerprint(self) -> str:
        """Stable text of the read sources' settings (part of ``meta_token``)."""
        return json.dumps(
            self.model_dump(include={"front_matter", "sidecar", "s3"}), sort_keys=True
        )


def load_spec(data: Mapping[str, Any] | MetadataSpec | None) -> MetadataSpec:
    """A :class:`MetadataSpec` from a mapping (a parsed YAML/JSON file) or a spec."""
    if data is None:
        return MetadataSpec()
    if isinstance(data, MetadataSpec):
        return data
    return MetadataSpec.model_validate(dict(data))


def read_config_file(path: str | Path) -> Any:
    """A YAML or JSON file (YAML is a superset of JSON), parsed.

    Raises:
        ValueError: It cannot be read or parsed (the message names the file).
    """
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_spec_file(path: str | Path) -> MetadataSpec:
    """A :class:`MetadataSpec` from a YAML/JSON file.

    Raises:
        ValueError: The file is not a valid mapping spec (pydantic's message names the field).
    """
    data = read_config_file(path)
    if data is not None and not isinstance(data, Mapping):
        raise ValueError(f"{path}: a metadata mapping is a mapping (static, from_path, ...)")
    return load_spec(data or {})


def convert(value: str, kind: ValueType, *, separator: str = ",") -> MetaValue:
    """Convert a captured string.

    Example:
        >>> convert("2024", "int"), convert("a, b", "list"), convert("2024-01-31", "date")
        (2024, ['a', 'b'], '2024-01-31')
    """
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "date":
        return dt.date.fromisoformat(value).isoformat()
    if kind == "list":
        return [part.strip() for part in value.split(separator) if part.strip()]
    return value


def cheap_meta(spec: MetadataSpec, file: SourceFile) -> dict[str, Any]:
    """The values of the static and path sources (not validated yet)."""
    meta: dict[str, Any] = {}
    for rule in spec.static:
        pattern = glob_matcher(rule.glob)
        if pattern is not None and pattern.match(file.path):
            meta.update(rule.set)
    for pat in spec.from_path:
        m = re.search(pat.regex, file.path)
        if m is None:
            continue
        for key, raw in m.groupdict().items():
            if raw is None:
                continue
            kind = pat.types.get(key, "str")
            try:
                meta[key] = convert(raw, kind, separator=pat.separator)
            except ValueError as exc:
                raise MetadataError(file.path, key, f"{raw!r} is not a valid {kind}") from exc
    return meta


def function_meta(spec: MetadataSpec, file: SourceFile) -> dict[str, Any]:
    """The values of the user's function (empty without one)."""
    if spec.function is None:
        return {}
    result = spec.function(file)
    if not isinstance(result, Mapping):
        raise MetadataError(file.path, "*", f"the metadata function returned {type(result)}")
    return dict(result)


def front_matter_applies(spec: MetadataSpec, path: str) -> bool:
    """Whether ``path`` is a file whose front matter is read."""
    if spec.front_matter is None:
        return False
    return any(
        (m := glob_matcher(g)) is not None and m.match(path) for g in spec.front_matter.globs
    )


def pick_front_matter(spec: MetadataSpec, front: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen keys of a parsed front matter (dates become ISO text)."""
    assert spec.front_matter is not None
    return {k: _plain(front[k]) for k in spec.front_matter.keys if k in front}


def pick_s3(spec: MetadataSpec, user: Mapping[str, str], tags: Mapping[str, str]) -> dict[str, Any]:
    """The chosen S3 user metadata and tags (tags win for the same key)."""
    assert spec.s3 is not None
    out: dict[str, Any] = {}
    for wanted, values in ((spec.s3.metadata, user), (spec.s3.tags, tags)):
        if wanted is True:
            out.update(values)
        elif wanted:
            out.update({k: values[k] for k in wanted if k in values})
    return out


def sidecar_of(path: str) -> str | None:
    """For a sidecar path, the path of the file it describes; else ``None``.

    Example:
        >>> sidecar_of("a/report.pdf.meta.json"), sidecar_of("a/report.pdf")
        ('a/report.pdf', None)
    """
    for suffix in SIDECAR_SUFFIXES:
        if path.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)]
    return None


def parse_sidecar(path: str, data: bytes) -> dict[str, Any]:
    """The mapping in a sidecar file (JSON or YAML by its suffix)."""
    import yaml

    try:
        text = data.decode("utf-8")
        loaded = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise MetadataError(path, "*", f"sidecar cannot be parsed: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise MetadataError(path, "*", "a sidecar must hold a mapping of keys to values")
    return {str(k): _plain(v) for k, v in loaded.items()}


def meta_token(spec: MetadataSpec | str, sidecar_token: str | None) -> str:
    """The change token of the read sources of one file (``spec``: the spec or its
    :meth:`~MetadataSpec.read_fingerprint`, computed once for many files).

    Example:
        >>> len(meta_token(MetadataSpec(sidecar=True), "12-345"))
        16
    """
    fingerprint = spec if isinstance(spec, str) else spec.read_fingerprint()
    text = fingerprint + "\x00" + (sidecar_token or "")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def validate_meta(path: str, meta: Mapping[str, Any]) -> dict[str, MetaValue]:
    """Check ``meta`` against RAGFlow's rules (str/int/float or lists of them, no reserved key).

    Raises:
        MetadataError: Naming the file and the key.

    Example:
        >>> validate_meta("a.md", {"tags": ["x", 1]})
        {'tags': ['x', 1]}
        >>> validate_meta("a.md", {"owner": None})
        Traceback (most recent call last):
        ...
        ragflow_dagster.sync.metadata.MetadataError: a.md: metadata key 'owner': ...
    """
    out: dict[str, MetaValue] = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not key:
            raise MetadataError(path, str(key), "keys must be non-empty strings")
        if _LIST_SPLIT.search(key):
            raise MetadataError(path, key, "keys must not contain , ; | (RAGFlow splits on them)")
        if key in RESERVED_KEYS:
            raise MetadataError(path, key, "is reserved (the identity and bookkeeping keys)")
        if isinstance(value, (list, tuple)):
            if not value:
                raise MetadataError(path, key, "an empty list cannot be stored; leave the key out")
            for item in value:
                if not _scalar(item):
                    raise MetadataError(
                        path,
                        key,
                        f"list item {item!r} ({type(item).__name__}) is not a str, int or float",
                    )
            out[key] = _as_stored(list(value))
        elif _scalar(value):
            out[key] = value
        else:
            raise MetadataError(
                path,
                key,
                f"value {value!r} ({type(value).__name__}) is not a str, int, float or a list of "
                "them (RAGFlow stores nothing else)",
            )
    return out


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """Human-readable differences between two mapped metadata sets.

    Example:
        >>> describe_changes({"department": "HR"}, {"department": "People", "year": 2024})
        ('department HR→People', 'year +2024')
    """
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            out.append(f"{key} -{_show(old[key])}")
        elif key not in old:
            out.append(f"{key} +{_show(new[key])}")
        elif not same_value(old[key], new[key]):
            out.append(f"{key} {_show(old[key])}→{_show(new[key])}")
    return tuple(out)


def same_value(a: Any, b: Any) -> bool:
    """Equality as the server round-trips values (a tuple equals a list, 1 equals 1.0)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return bool(a == b)


_LIST_SPLIT = re.compile("[\u3001,\uff0c;\uff1b|]+")


def _as_stored(values: list[Any]) -> list[Any]:
    """A list as RAGFlow stores it: string items split on ``, ; |`` (and their CJK forms),
    repeats dropped (compared as text), so that the stored value compares equal next time."""
    items: list[Any] = []
    for item in values:
        if isinstance(item, str):
            parts = [p.strip() for p in _LIST_SPLIT.split(item.strip()) if p.strip()]
            items.extend(parts or [item])
        else:
            items.append(item)
    seen: set[str] = set()
    out = []
    for item in items:
        if str(item) not in seen:
            seen.add(str(item))
            out.append(item)
    return out


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """YAML dates and datetimes as ISO text, tuples as lists; the rest as it is."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


__all__ = [
    "META_KEYS_KEY",
    "META_READ_KEYS_KEY",
    "META_TOKEN_KEY",
    "RESERVED_KEYS",
    "SIDECAR_SUFFIXES",
    "FrontMatter",
    "MetadataError",
    "MetadataSpec",
    "PathPattern",
    "S3Metadata",
    "SourceFile",
    "StaticValues",
    "cheap_meta",
    "convert",
    "describe_changes",
    "front_matter_applies",
    "function_meta",
    "glob_matcher",
    "load_spec",
    "load_spec_file",
    "meta_token",
    "parse_sidecar",
    "pick_front_matter",
    "pick_s3",
    "read_config_file",
    "same_value",
    "sidecar_of",
    "validate_meta",
]
