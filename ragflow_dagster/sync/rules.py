"""Per-file parsing rules: which ``chunk_method`` and ``parser_config`` a document gets.

An ordered list of :class:`ParseRule`; the first whose glob matches the relative path wins, and
a path no rule matches gets the dataset's default. Pure: the planner compares the rule with the
document's current ``chunk_method`` / ``parser_config`` (:func:`rule_drift`).

What the server does on a change (RAGFlow ``api/apps/services/document_api_service.py``):

* a different ``chunk_method`` resets the document: run ``UNSTART``, progress 0, its chunks
  deleted and its chunk/token counters released; when no ``parser_config`` is sent with it, the
  method's default config is merged in;
* ``parser_config`` alone is merged into the document's (deep update) and resets nothing: the
  sync starts the parse itself.

Example:
    >>> rules = ParseRules.model_validate(
    ...     {"rules": [{"glob": "faq/**", "chunk_method": "qa"}]})
    >>> rules.rule_for("faq/a.csv").chunk_method, rules.rule_for("b.pdf") is None
    ('qa', True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragflow_dagster.client.naming import AUDIO_SUFFIXES, VISUAL_SUFFIXES, name_suffix
from ragflow_dagster.sync.metadata import glob_matcher, read_config_file

DOCUMENT_CHUNK_METHODS: frozenset[str] = frozenset(
    {
        "naive",
        "manual",
        "qa",
        "table",
        "paper",
        "book",
        "laws",
        "presentation",
        "picture",
        "one",
        "knowledge_graph",
        "email",
        "audio",
        "tag",
    }
)
"""The methods a document accepts (RAGFlow ``UpdateDocumentReq``, api/utils/validation_utils.py)."""


_INT_BOUNDS = {
    "auto_keywords": (0, 32),
    "auto_questions": (0, 10),
    "chunk_token_num": (1, 2048),
    "topn_tags": (1, 10),
    "task_page_size": (1, None),
}
"""Bounds RAGFlow's ``ParserConfig`` (api/utils/validation_utils.py) puts on these keys."""


def check_parser_config(config: dict[str, Any]) -> dict[str, Any]:
    """Refuse what the server would refuse in the PATCH, before any upload.

    Example:
        >>> check_parser_config({"chunk_token_num": 4096})
        Traceback (most recent call last):
        ...
        ValueError: parser_config.chunk_token_num: 4096 is not an integer in [1, 2048]
    """
    for key, (low, high) in _INT_BOUNDS.items():
        if key not in config:
            continue
        value = config[key]
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        if not ok or (high is not None and value > high):
            span = f"[{low}, {high}]" if high is not None else f">= {low}"
            raise ValueError(f"parser_config.{key}: {value!r} is not an integer in {span}")
    delimiter = config.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
        raise ValueError("parser_config.delimiter: a non-empty string")
    if "html4excel" in config and not isinstance(config["html4excel"], bool):
        raise ValueError("parser_config.html4excel: true or false")
    return config


class ParseRule(BaseModel):
    """One rule: files matching ``glob`` are parsed with ``chunk_method`` and ``parser_config``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    glob: str
    chunk_method: str
    parser_config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("chunk_method")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in DOCUMENT_CHUNK_METHODS:
            raise ValueError(
                f"chunk_method {value!r} is not one RAGFlow accepts for a document "
                f"({', '.join(sorted(DOCUMENT_CHUNK_METHODS))})"
            )
        return value

    @field_validator("parser_config")
    @classmethod
    def _config(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_parser_config(value)


class ParseRules(BaseModel):
    """The ordered rules of a sync; the first match wins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[ParseRule, ...] = ()

    def rule_for(self, path: str) -> ParseRule | None:
        """The first rule whose glob matches ``path``, or ``None``."""
        for rule in self.rules:
            pattern = glob_matcher(rule.glob)
            if pattern is not None and pattern.match(path):
                return rule
        return None

    def __bool__(self) -> bool:
        return bool(self.rules)


def load_rules(data: Any) -> ParseRules:
    """Rules from a list of mappings, ``{"rules": [...]}``, a :class:`ParseRules` or ``None``.

    Raises:
        ValueError: A rule is malformed or names an unknown chunk method (before any upload).
    """
    if data is None:
        return ParseRules()
    if isinstance(data, ParseRules):
        return data
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        data = {"rules": list(data)}
    return ParseRules.model_validate(data)


def load_rules_file(path: str | Path) -> ParseRules:
    """Rules from a YAML/JSON file: a list of rules, or ``{"rules": [...]}``.

    Raises:
        ValueError: The file is malformed or names an unknown chunk method.
    """
    return load_rules(read_config_file(path))


@dataclass(frozen=True, slots=True)
class DesiredParse:
    """The parse settings a path should have.

    ``parser_config`` holds only the keys the rule sets (compared as a subset of the document's);
    ``rule`` is the matching glob, or ``""`` for the dataset's default."""

    chunk_method: str
    parser_config: Mapping[str, Any]
    rule: str = ""


def forced_method(path: str) -> str | None:
    """The chunk method RAGFlow fixes for a file by its type (it refuses any other), or None.

    Example:
        >>> forced_method("a/photo.PNG"), forced_method("deck.pptx"), forced_method("a.pdf")
        ('picture', 'presentation', None)
    """
    suffix = name_suffix(path)
    if suffix in VISUAL_SUFFIXES:
        return "picture"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if suffix in ("ppt", "pptx", "pages"):
        return "presentation"
    if suffix in ("msg", "eml"):
        return "email"
    return None


def desired_parse(rules: ParseRules, path: str, *, default_method: str) -> DesiredParse | None:
    """What ``path`` should be parsed with; ``None`` when no rules are configured at all, or
    the server fixes the file's method by its type (:func:`forced_method`)."""
    if not rules or forced_method(path) is not None:
        return None
    rule = rules.rule_for(path)
    if rule is None:
        return DesiredParse(chunk_method=default_method, parser_config={})
    return DesiredParse(rule.chunk_method, dict(rule.parser_config), rule.glob)


def rule_drift(
    want: DesiredParse, chunk_method: str, parser_config: Mapping[str, Any]
) -> str | None:
    """Why a document parsed with (``chunk_method``, ``parser_config``) does not fit ``want``.

    Example:
        >>> rule_drift(DesiredParse("qa", {}), "naive", {})
        'chunk_method naive→qa'
        >>> rule_drift(DesiredParse("naive", {"chunk_token_num": 256}), "naive",
        ...            {"chunk_token_num": 512})
        'parser_config chunk_token_num 512→256'
    """
    if (chunk_method or "").lower() != want.chunk_method.lower():
        return f"chunk_method {chunk_method or '?'}→{want.chunk_method}"
    diffs = [
        f"{key} {parser_config.get(key)}→{value}"
        for key, value in sorted(want.parser_config.items())
        if not _subset(value, parser_config.get(key))
    ]
    return "parser_config " + ", ".join(diffs) if diffs else None


def _subset(want: Any, have: Any) -> bool:
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(_subset(v, have.get(k)) for k, v in want.items())
    return bool(want == have)


__all__ = [
    "DOCUMENT_CHUNK_METHODS",
    "DesiredParse",
    "ParseRule",
    "ParseRules",
    "check_parser_config",
    "desired_parse",
    "forced_method",
    "load_rules",
    "load_rules_file",
    "rule_drift",
]
