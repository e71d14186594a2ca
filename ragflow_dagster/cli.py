"""The ``ragflow-dagster`` command: ``sync`` (headless, no Dagster).

``ragflow-dagster sync SOURCE --dataset NAME`` does the legacy uploader's job with the sync
engine: it creates the dataset if needed, uploads new files, replaces changed ones, deletes
documents whose file is gone (behind the mass-delete guard) and, by default, waits until parsing
has finished. It takes the legacy uploader's filter flags.

Exit codes: ``0`` everything converged; ``1`` something failed, the mass-delete guard refused,
the listing was incomplete or the server could not be used; ``2`` usage error.

Example:
    .. code-block:: console

        $ export RAGFLOW_BASE_URL=http://localhost:9380 RAGFLOW_API_KEY=ragflow-...
        $ ragflow-dagster sync ./handbook --dataset handbook --extensions pdf docx md \\
              --exclude-dirs .git node_modules --max-size 50MB --stats-file report.json
        $ ragflow-dagster sync s3://acme-docs/handbook --dataset handbook --dry-run
"""

from __future__ import annotations

import argparse
import codecs
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

ENV_BASE_URL = "RAGFLOW_BASE_URL"
ENV_API_KEY = "RAGFLOW_API_KEY"

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


# ------------------------------------------------------------------------------------------------
# parser
# ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``ragflow-dagster`` argument parser (subcommand ``sync``)."""
    from ragflow_dagster import __version__

    parser = argparse.ArgumentParser(
        prog="ragflow-dagster",
        description="Keep RAGFlow datasets in sync with folders and S3 buckets.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sync = sub.add_parser(
        "sync",
        help="sync a folder or S3 prefix into a RAGFlow dataset (no Dagster needed)",
        description="Sync a folder or s3://bucket/prefix into a RAGFlow dataset: upload new "
        "files, replace changed ones, delete documents of removed files, wait for parsing.",
        epilog="Exit codes: 0 converged; 1 something failed, the mass-delete guard refused or "
        "the listing was incomplete; 2 usage error.",
    )
    _add_sync_arguments(sync)
    sync.set_defaults(handler=run_sync)
    return parser


def _add_sync_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="a folder, or s3://bucket/prefix")
    p.add_argument(
        "--dataset",
        required=True,
        metavar="NAME",
        help="RAGFlow dataset name (created when missing)",
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
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    run.add_argument("-v", "--verbose", action="store_true", help="log what the sync does")


# ------------------------------------------------------------------------------------------------
# sync
# ------------------------------------------------------------------------------------------------


class _UsageError(Exception):
    """Bad input found after parsing (names the flag)."""


def filters_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~ragflow_dagster.sources.FileFilters` the legacy flags ask for.

    Raises:
        _UsageError: Contradictory or invalid values (the message names the flag).
    """
    from ragflow_dagster.sources import FileFilters

    if args.min_size is not None and args.max_size is not None and args.min_size > args.max_size:
        raise _UsageError(
            f"--min-size ({args.min_size}) is larger than --max-size ({args.max_size})"
        )
    after, before = args.modified_after, args.modified_before
    if after is not None and before is not None:
        try:
            wrong = after > before
        except TypeError:
            raise _UsageError(
                "--modified-after and --modified-before must both have a time "
                "zone or both have none"
            ) from None
        if wrong:
            raise _UsageError("--modified-after is later than --modified-before")
    extensions = _split(args.extensions)
    if extensions is not None and not extensions:
        extensions = None  # "--extensions" with no value: any extension, like the legacy tool
    if extensions and any(not e.lstrip(".") for e in extensions):
        raise _UsageError("--extensions: empty extension")
    patterns = args.content_patterns or ()
    if any(not p for p in patterns):
        raise _UsageError("--content-patterns: empty pattern")
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
        raise _UsageError(f"invalid filter: {exc}") from None


class _Progress:
    """tqdm bars driven by the engine's ``progress(phase, done, total)`` callback."""

    _LABELS = {"upload": "uploading", "parse": "parsing", "labels": "labelling"}

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._bar: Any = None
        self._phase: str | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if phase != self._phase or self._bar is None or self._bar.total != total:
                self._close()
                from tqdm import tqdm

                self._bar = tqdm(
                    total=total,
                    desc=self._LABELS.get(phase, phase),
                    unit="file",
                    file=sys.stderr,
                    leave=True,
                    dynamic_ncols=True,
                )
                self._phase = phase
            self._bar.n = min(done, total)
            self._bar.refresh()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        with self._lock:
            self._close()


def exit_code_for(report: Any, *, waited: bool) -> int:
    """``0`` when the sync converged, else ``1``.

    Converged: nothing failed, no parse failed, the guard refused nothing, the listing was
    complete, and (when waiting) nothing is still parsing.
    """
    c = report.counts
    bad = (
        c.get("failed", 0)
        or c.get("parse_failed", 0)
        or (waited and c.get("parse_pending", 0))
        or report.guard_refused
        or not report.listing_complete
    )
    return EXIT_FAILED if bad else EXIT_OK


def run_sync(args: argparse.Namespace) -> int:
    """Run ``ragflow-dagster sync`` with parsed arguments; returns the exit code."""
    level = logging.INFO if args.verbose else (logging.ERROR if args.quiet else logging.WARNING)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    log = logging.getLogger("ragflow_dagster.cli")

    base_url = args.base_url or os.environ.get(ENV_BASE_URL)
    api_key = args.api_key or os.environ.get(ENV_API_KEY)
    if not base_url:
        raise _UsageError(f"no server: pass --base-url or set {ENV_BASE_URL}")
    if not api_key:
        raise _UsageError(f"no API key: pass --api-key or set {ENV_API_KEY}")
    if not args.dataset.strip():
        raise _UsageError("--dataset: empty name")
    filters = filters_from_args(args)

    from ragflow_dagster.sources import SourceError, source_from_uri

    is_s3 = args.source.startswith("s3://")
    if args.s3_endpoint_url and not is_s3:
        raise _UsageError("--s3-endpoint-url only applies to s3:// sources")
    try:
        kwargs: dict[str, Any] = {}
        if is_s3 and args.s3_endpoint_url:
            kwargs["endpoint_url"] = args.s3_endpoint_url
        source = source_from_uri(args.source, **kwargs)
    except ValueError as exc:
        raise _UsageError(f"SOURCE: {exc}") from None
    if not is_s3:
        root = Path(getattr(source, "root", args.source))
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a folder"
            raise _UsageError(f"SOURCE: {args.source!r} {what}")

    from ragflow_dagster.client import RAGFlowClient, RAGFlowError, ensure_dataset
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    options = SyncOptions(
        filters=filters,
        dry_run=args.dry_run,
        wait=not args.no_wait,
        max_workers=args.max_workers,
        parse_timeout=args.parse_timeout,
        allow_mass_delete=args.allow_mass_delete,
        max_delete_fraction=args.max_delete_fraction,
        delete_removed=not args.keep_removed,
    )
    progress = _Progress(enabled=not (args.no_progress or args.quiet))
    try:
        client = RAGFlowClient(base_url, api_key, pool_size=max(16, args.max_workers * 2))
    except ValueError as exc:
        raise _UsageError(f"--base-url: {exc}") from None
    try:
        with client:
            dataset = _dataset(client, args, ensure_dataset, log)
            if dataset is None:  # dry run against a dataset that does not exist yet
                report = _dry_run_new_dataset(source, options, args.dataset)
            else:
                report = sync_source(
                    client,
                    source,
                    dataset.id,
                    options,
                    dataset_name=dataset.name,
                    progress=progress,
                    log=logging.getLogger("ragflow_dagster.sync"),
                )
    except RAGFlowError as exc:
        progress.close()
        print(f"error: RAGFlow at {base_url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except SourceError as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    progress.close()

    if args.stats_file is not None:
        data = report.to_dict()
        try:
            args.stats_file.parent.mkdir(parents=True, exist_ok=True)
            args.stats_file.write_text(json.dumps(data, indent=2, default=str) + "\n")
        except OSError as exc:
            print(f"error: --stats-file {args.stats_file}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    code = exit_code_for(report, waited=not args.no_wait and not args.dry_run)
    if not args.quiet or code:
        stream = sys.stdout if code == EXIT_OK else sys.stderr
        print(report.summary(), file=stream)
        verdict = "converged" if code == EXIT_OK else "NOT converged"
        if args.dry_run:
            verdict = "dry run: nothing changed" + ("" if code == EXIT_OK else "; " + verdict)
        print(verdict, file=stream)
    return code


def _dataset(client: Any, args: argparse.Namespace, ensure: Any, log: logging.Logger) -> Any:
    """The dataset to sync into: created when missing (not on a dry run: None then)."""
    if args.dry_run:
        return client.find_dataset(args.dataset)
    result = ensure(
        client,
        args.dataset,
        chunk_method=args.chunk_method,
        parser_config=args.parser_config,
        embedding_model=args.embedding_model,
        log=log,
    )
    return result.dataset


def _dry_run_new_dataset(source: Any, options: Any, name: str) -> Any:
    """A dry run against a dataset that does not exist: every file would be uploaded."""
    from ragflow_dagster.sources import build_inventory
    from ragflow_dagster.sync.engine import make_plan
    from ragflow_dagster.sync.report import SyncReport

    report = SyncReport(dataset_id="", source_uri=source.uri, dataset_name=name, dry_run=True)
    inventory = build_inventory(source, options.filters)
    report.counts["scanned"] = len(inventory.entries)
    report.counts["skipped"] = len(inventory.skipped)
    report.listing_complete = inventory.complete
    plan = make_plan(
        inventory,
        [],
        options,
        token_is_content=bool(getattr(source, "change_token_is_content_hash", False)),
    )
    for action in plan.actions:
        report.add("uploaded")
        report.record(action.path, action.kind, "planned")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragflow-dagster`` console script.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        ragflow-dagster 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except _UsageError as exc:
        parser_for = parser
        if args.command == "sync":
            parser_for = _subparser(parser, "sync")
        parser_for.print_usage(sys.stderr)
        print(f"{parser_for.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
