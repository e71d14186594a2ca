"""The flags of ``ragflow-dagster sync``: argument types, the argument groups, and the
:class:`~ragflow_dagster.sources.FileFilters` the legacy uploader's filter flags ask for.

Example:
    >>> parse_size("50MB")
    50000000
"""

from __future__ import annotations

import argparse
import codecs
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_RETRIES",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "UsageError",
    "add_sync_arguments",
    "filters_from_args",
    "mapping_from_args",
    "parse_size",
]


ENV_BASE_URL = "RAGFLOW_BASE_URL"
ENV_API_KEY = "RAGFLOW_API_KEY"
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF = 0.25
"""First retry delay of the CLI's client: 3 retries of a closed port end within 1.75 s."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


# ------------------------------------------------------------------------------------------------
# argument types (an ArgumentTypeError becomes "argument --flag: <message>", exit 2)
# ------------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """A size in bytes: ``1000``, ``64k``, ``50MB``, ``1.5GiB`` (k = 1000, Ki = 1024).

    Example:
        >>> parse_size("50MB"), parse_size("2KiB"), parse_size("10")
        (50000000, 2048, 10)
    """
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1000, 64k, 50MB)")
    number, unit = m.group(1), (m.group(2) or "").lower()
    binary = "i" in unit
    letter = unit[:1] if unit[:1] in "kmgt" else ""
    factor = (1024 ** "kmgt".index(letter) * 1024) if binary and letter else _UNITS[letter]
    value = float(number) * factor
    if value != int(value) and factor == 1:
        raise argparse.ArgumentTypeError(f"not a whole number of bytes: {text!r}")
    return int(value)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _iso_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date/time: {text!r} (use e.g. 2024-01-31 or 2024-01-31T12:00)"
        ) from None


def _encoding(text: str) -> str:
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding: {text!r}") from None
    return text


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _split(values: Sequence[str] | None) -> list[str] | None:
    """Flags taking several values accept ``a b`` and ``a,b`` alike."""
    if values is None:
        return None
    out = [v.strip() for item in values for v in item.split(",")]
    return [v for v in out if v]


def add_sync_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``ragflow-dagster sync`` (the legacy uploader's filter flags among them)."""
    p.add_argument("source", metavar="SOURCE", help="a folder, or s3://bucket/prefix")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--dataset",
        metavar="NAME",
        help="RAGFlow dataset name (created when missing)",
    )
    target.add_argument(
        "--routes-file",
        metavar="PATH",
        type=Path,
        help="route the source into several datasets: a YAML or JSON file with "
        "'routes: [{glob: \"eng/**\", dataset: eng}, ...]' (first match wins) and an optional "
        "'default_dataset:'; one summary per dataset",
    )

    server = p.add_argument_group("server")
    server.add_argument(
        "--base-url",
        default=None,
        help=f"RAGFlow address, e.g. http://localhost:9380 (default: ${ENV_BASE_URL})",
    )
    server.add_argument(
        "--api-key",
        default=None,
        help=f"RAGFlow API key (default: ${ENV_API_KEY}; prefer the variable)",
    )
    server.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for a connection and for each reply (default: 30)",
    )
    server.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=DEFAULT_MAX_RETRIES,
        metavar="N",
        help="retries of a refused connection, a timeout, HTTP 429 or 5xx, with a backoff "
        f"starting at {DEFAULT_BACKOFF}s and doubling (default: {DEFAULT_MAX_RETRIES}); an "
        "unknown host or a refused key is never retried",
    )
    server.add_argument(
        "--chunk-method",
        default="naive",
        help="chunk method of a newly created dataset (default: naive)",
    )
    server.add_argument(
        "--parser-config",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="parser_config of a newly created dataset, e.g. '{\"chunk_token_num\": 256}'",
    )
    server.add_argument(
        "--embedding-model", default=None, help="embedding model of a newly created dataset"
    )
    server.add_argument(
        "--s3-endpoint-url",
        default=None,
        metavar="URL",
        help="S3-compatible endpoint (MinIO, R2, ...) for s3:// sources "
        "(default: $AWS_ENDPOINT_URL_S3 / AWS configuration)",
    )

    f = p.add_argument_group("filters (as in the legacy uploader)")
    f.add_argument(
        "--extensions",
        nargs="*",
        metavar="EXT",
        help="allowed extensions: pdf docx md (or pdf,docx,md); default: any",
    )
    f.add_argument(
        "--exclude-dirs",
        nargs="*",
        metavar="DIR",
        help="directory names never entered (globs allowed): .git node_modules",
    )
    f.add_argument(
        "--exclude-patterns",
        nargs="*",
        metavar="GLOB",
        help='globs on the path or file name to skip: "*.tmp" "~$*"',
    )
    f.add_argument(
        "--include",
        nargs="*",
        metavar="GLOB",
        help='only paths matching one of these globs: "reports/**/*.pdf"',
    )
    f.add_argument(
        "--min-size", type=parse_size, metavar="SIZE", help="smallest file (bytes, 64k, 5MB)"
    )
    f.add_argument(
        "--max-size", type=parse_size, metavar="SIZE", help="largest file (bytes, 64k, 50MB)"
    )
    f.add_argument(
        "--content-patterns",
        nargs="*",
        metavar="TEXT",
        help="only files whose text contains one of these",
    )
    f.add_argument(
        "--mime-types",
        nargs="*",
        metavar="TYPE",
        help="only these MIME types or prefixes: application/pdf text/",
    )
    f.add_argument(
        "--modified-after",
        type=_iso_datetime,
        metavar="ISO",
        help="only files modified at or after this (naive = UTC)",
    )
    f.add_argument(
        "--modified-before",
        type=_iso_datetime,
        metavar="ISO",
        help="only files modified at or before this (naive = UTC)",
    )
    f.add_argument(
        "--max-depth",
        type=_positive_int,
        metavar="N",
        help="deepest level (1 = files directly in SOURCE)",
    )
    f.add_argument(
        "--include-hidden",
        action="store_true",
        help="take files and folders whose name starts with '.'",
    )
    f.add_argument(
        "--min-text-ratio",
        type=_ratio,
        metavar="R",
        help="smallest share (0..1) of printable characters in the first bytes",
    )
    f.add_argument(
        "--encoding",
        type=_encoding,
        default="utf-8",
        help="text encoding of the content filters (default: utf-8)",
    )

    mapping = p.add_argument_group("metadata and parsing rules (README: Metadata mapping)")
    mapping.add_argument(
        "--metadata-file",
        type=Path,
        metavar="PATH",
        help="YAML/JSON metadata mapping merged into each document's meta_fields (static "
        "values by glob, path regex groups, front matter keys, sidecars, S3 metadata/tags)",
    )
    mapping.add_argument(
        "--rules-file",
        type=Path,
        metavar="PATH",
        help="YAML/JSON list of {glob, chunk_method, parser_config}: the first match wins, "
        "else the dataset's default",
    )

    run = p.add_argument_group("run")
    run.add_argument("--dry-run", action="store_true", help="plan and report; change nothing")
    run.add_argument(
        "--max-workers",
        type=_positive_int,
        default=4,
        metavar="N",
        help="concurrent requests (default: 4)",
    )
    run.add_argument("--no-wait", action="store_true", help="do not wait for parsing to finish")
    run.add_argument(
        "--no-lease",
        action="store_true",
        help="do not wait for another sync of the dataset on this machine (the end state is "
        "verified either way; the lease only avoids redoing its work)",
    )
    run.add_argument(
        "--parse-timeout",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="how long to wait for parsing (default: 3600)",
    )
    run.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="lift the guard that refuses to delete most of the dataset",
    )
    run.add_argument(
        "--max-delete-fraction",
        type=_ratio,
        default=0.5,
        metavar="R",
        help="the guard's threshold (default: 0.5)",
    )
    run.add_argument(
        "--keep-removed", action="store_true", help="do not delete documents whose file is gone"
    )
    run.add_argument(
        "--stats-file", type=Path, metavar="PATH", help="write the report as JSON here"
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: on a terminal only)"
    )
    run.add_argument(
        "--progress", action="store_true", help="progress bars even when stderr is not a terminal"
    )
    run.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    run.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what the sync does, with retries (-vv: every request)",
    )


class UsageError(Exception):
    """Bad input found after parsing (the message names the flag); exit code 2."""


def mapping_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """The metadata spec and parsing rules of ``--metadata-file`` / ``--rules-file``.

    Raises:
        UsageError: A file cannot be read or is not valid (the message names the flag).
    """
    from pydantic import ValidationError

    from ragflow_dagster.sync.metadata import load_spec_file
    from ragflow_dagster.sync.rules import load_rules_file

    spec = rules = None
    try:
        if args.metadata_file is not None:
            spec = load_spec_file(args.metadata_file)
    except (ValueError, ValidationError) as exc:
        raise UsageError(f"--metadata-file: {exc}") from None
    try:
        if args.rules_file is not None:
            rules = load_rules_file(args.rules_file)
    except (ValueError, ValidationError) as exc:
        raise UsageError(f"--rules-file: {exc}") from None
    return spec, rules


def filters_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~ragflow_dagster.sources.FileFilters` the legacy flags ask for.

    Raises:
        UsageError: Contradictory or invalid values (the message names the flag).
    """
    from ragflow_dagster.sources import FileFilters

    if args.min_size is not None and args.max_size is not None and args.min_size > args.max_size:
        raise UsageError(
            f"--min-size ({args.min_size}) is larger than --max-size ({args.max_size})"
        )
    after, before = args.modified_after, args.modified_before
    if after is not None and before is not None:
        try:
            wrong = after > before
        except TypeError:
            raise UsageError(
                "--modified-after and --modified-before must both have a time "
                "zone or both have none"
            ) from None
        if wrong:
            raise UsageError("--modified-after is later than --modified-before")
    extensions = _split(args.extensions)
    if extensions is not None and not extensions:
        extensions = None  # "--extensions" with no value: any extension, like the legacy tool
    if extensions and any(not e.lstrip(".") for e in extensions):
        raise UsageError("--extensions: empty extension")
    patterns = args.content_patterns or ()
    if any(not p for p in patterns):
        raise UsageError("--content-patterns: empty pattern")
    try:
        return FileFilters(
            extensions=extensions,
            include=args.include or (),
            exclude=args.exclude_patterns or (),
            exclude_dirs=_split(args.exclude_dirs) or (),
            min_size=args.min_size,
            max_size=args.max_size,
            modified_after=after,
            modified_before=before,
            max_depth=args.max_depth,
            include_hidden=args.include_hidden,
            mime_types=_split(args.mime_types) or (),
            content_patterns=tuple(patterns),
            min_text_ratio=args.min_text_ratio,
            encoding=args.encoding,
        )
    except (ValueError, TypeError, LookupError) as exc:
        raise UsageError(f"invalid filter: {exc}") from None
