"""The ``ragflow-dagster`` command: ``sync`` (headless, no Dagster).

``ragflow-dagster sync SOURCE --dataset NAME`` does the legacy uploader's job with the sync
engine: it creates the dataset if needed, uploads new files, replaces changed ones, deletes
documents whose file is gone (behind the mass-delete guard) and, by default, waits until parsing
has finished. It takes the legacy uploader's filter flags.

Exit codes: ``0`` everything converged; ``1`` something failed, the mass-delete guard refused,
the listing was incomplete or the run stopped (server unreachable, key refused, source not
listable: one line naming what to check); ``2`` usage error (one line and ``see --help``).
``--stats-file`` is written in every case after parsing, with ``"converged": false`` and
``"error"`` when the run stopped early.

Example:
    .. code-block:: console

        $ export RAGFLOW_BASE_URL=http://localhost:9380 RAGFLOW_API_KEY=ragflow-...
        $ ragflow-dagster sync ./handbook --dataset handbook --extensions pdf docx md \\
              --exclude-dirs .git node_modules --max-size 50MB --stats-file report.json
        $ ragflow-dagster sync s3://acme-docs/handbook --dataset handbook --dry-run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragflow_dagster.cli_options import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_RETRIES,
    ENV_API_KEY,
    ENV_BASE_URL,
    UsageError,
    add_sync_arguments,
    filters_from_args,
    mapping_from_args,
    parse_size,
)

if TYPE_CHECKING:
    from ragflow_dagster.client import RAGFlowError

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_RETRIES",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "cli_logging",
    "exit_code_for",
    "explain_error",
    "filters_from_args",
    "main",
    "parse_size",
    "run_sync",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


# ------------------------------------------------------------------------------------------------
# parser
# ------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument error is one line plus where to look, not a 20-line usage block."""

    def error(self, message: str) -> Any:  # argparse's signature says NoReturn
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nsee '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``ragflow-dagster`` argument parser (subcommand ``sync``)."""
    from ragflow_dagster import __version__

    parser = _Parser(
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
        epilog="Exit codes: 0 converged; 1 something failed, the mass-delete guard refused, "
        "the listing was incomplete or the run stopped (server unreachable, key refused, source "
        "not listable); 2 usage error.",
    )
    add_sync_arguments(sync)
    sync.set_defaults(handler=run_sync)
    return parser


# ------------------------------------------------------------------------------------------------
# sync
# ------------------------------------------------------------------------------------------------


class _Progress:
    """tqdm bars driven by the engine's ``progress(phase, done, total)`` callback.

    ``enabled=None`` draws them only when stderr is a terminal (tqdm's ``disable=None``), so a
    redirected log gets no frames.
    """

    _LABELS = {"upload": "uploading", "parse": "parsing", "labels": "labelling"}

    def __init__(self, *, enabled: bool | None) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._bar: Any = None
        self._phase: str | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.enabled is False:
            return
        done = min(done, total)
        with self._lock:
            if phase != self._phase or self._bar is None or self._bar.total != total:
                self._close()
                from tqdm import tqdm

                # initial=done: work finished before the bar existed is not counted in its rate
                self._bar = tqdm(
                    total=total,
                    initial=done,
                    desc=self._LABELS.get(phase, phase),
                    unit="file",
                    file=sys.stderr,
                    leave=True,
                    dynamic_ncols=True,
                    disable=None if self.enabled is None else False,
                )
                self._phase = phase
            if done > self._bar.n:
                self._bar.update(done - self._bar.n)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        with self._lock:
            self._close()


def exit_code_for(report: Any, *, waited: bool) -> int:
    """``0`` when the sync converged, else ``1``.

    Converged is the engine's verified claim (:attr:`SyncReport.converged`): a complete listing
    after the run's last change shows one parsed, labelled document per file and nothing else.
    A run that did not wait (``--no-wait``) also exits 0 when all that is left is parsing, and a
    dry run when it could plan everything (its report says what it would do).
    """
    if report.converged:
        return EXIT_OK
    if report.dry_run:
        ok = report.error is None and report.listing_complete and not report.guard_refused
        return EXIT_OK if ok else EXIT_FAILED
    if not waited and report.settled_but_parsing:
        return EXIT_OK
    return EXIT_FAILED


def run_sync(args: argparse.Namespace) -> int:
    """Run ``ragflow-dagster sync`` with parsed arguments; returns the exit code."""
    with cli_logging(verbose=args.verbose, quiet=args.quiet):
        try:
            return _run_sync(args)
        except Exception as exc:
            # bad input found late, or a bug: the stats file must not keep the last verdict
            if args.stats_file is not None:
                from ragflow_dagster.sync.report import SyncReport

                what = "bad input" if isinstance(exc, UsageError) else type(exc).__name__
                report = SyncReport(
                    dataset_id="",
                    source_uri=args.source,
                    dataset_name=args.dataset,
                    dry_run=args.dry_run,
                    error=f"{what}: {exc}",
                )
                write_stats(args.stats_file, report.to_dict())
            raise


def _run_sync(args: argparse.Namespace) -> int:
    log = logging.getLogger("ragflow_dagster.cli")

    base_url = args.base_url or os.environ.get(ENV_BASE_URL)
    api_key = args.api_key or os.environ.get(ENV_API_KEY)
    if not base_url:
        raise UsageError(f"no server: pass --base-url or set {ENV_BASE_URL}")
    if not api_key or not api_key.strip():
        raise UsageError(f"no API key: pass --api-key or set {ENV_API_KEY}")
    if args.dataset is not None and not args.dataset.strip():
        raise UsageError("--dataset: empty name")
    filters = filters_from_args(args)
    routes = None
    if args.routes_file is not None:
        from ragflow_dagster.cli_routed import load_routes_file

        routes = load_routes_file(args.routes_file)
    metadata, rules = mapping_from_args(args)

    from ragflow_dagster.sources import LocalFolderSource, SourceError, source_from_uri

    is_s3 = args.source.startswith("s3://")
    if args.s3_endpoint_url and not is_s3:
        raise UsageError("--s3-endpoint-url only applies to s3:// sources")
    try:
        kwargs: dict[str, Any] = {}
        if is_s3 and args.s3_endpoint_url:
            kwargs["endpoint_url"] = args.s3_endpoint_url
        source = source_from_uri(args.source, **kwargs)
    except ValueError as exc:
        raise UsageError(f"SOURCE: {exc}") from None
    if isinstance(source, LocalFolderSource):
        root = Path(source.root)
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a folder"
            raise UsageError(f"SOURCE: {args.source!r} {what}")

    from ragflow_dagster.client import RAGFlowClient, RAGFlowError
    from ragflow_dagster.sync.engine import SyncAbortedError, SyncOptions
    from ragflow_dagster.sync.report import SyncReport

    options = SyncOptions(
        filters=filters,
        dry_run=args.dry_run,
        wait=not args.no_wait,
        max_workers=args.max_workers,
        parse_timeout=args.parse_timeout,
        allow_mass_delete=args.allow_mass_delete,
        max_delete_fraction=args.max_delete_fraction,
        delete_removed=not args.keep_removed,
        lease=not args.no_lease,
        mass_delete_hint="--allow-mass-delete",
        metadata=metadata,
        rules=rules,
    )
    try:
        client = RAGFlowClient(
            base_url,
            api_key,
            timeout=args.timeout,
            max_retries=args.max_retries,
            backoff=DEFAULT_BACKOFF,
            pool_size=max(16, args.max_workers * 2),
        )
    except ValueError as exc:
        flag = "--api-key" if "api_key" in str(exc) else "--base-url"
        raise UsageError(f"{flag}: {exc}") from None
    enabled = False if (args.no_progress or args.quiet) else (True if args.progress else None)
    progress = _Progress(enabled=enabled)
    if routes is not None:
        from ragflow_dagster.cli_routed import run_routed

        return run_routed(client, source, routes, options, args, progress=progress)
    report: SyncReport | None = None
    error: str | None = None
    try:
        with client:
            report = _sync(client, source, options, args, progress=progress, log=log)
    except SyncAbortedError as exc:  # the engine stopped: its report says how far it got
        report = exc.report
        cause = exc.__cause__
        if isinstance(cause, RAGFlowError):
            error = explain_error(cause, base_url)
        elif isinstance(cause, SourceError):
            error = f"SOURCE {args.source}: {cause}"
        else:
            error = str(exc)
    except RAGFlowError as exc:
        error = explain_error(exc, base_url)
    except SourceError as exc:
        error = f"SOURCE {args.source}: {exc}"
    finally:
        progress.close()
    if report is None:  # the run stopped before it had a report: say so, with zero work done
        report = SyncReport(
            dataset_id="", source_uri=source.uri, dataset_name=args.dataset, dry_run=args.dry_run
        )
        report.api_calls = client.request_count
    report.error = error

    code = exit_code_for(report, waited=not args.no_wait and not args.dry_run)
    if args.stats_file is not None and not write_stats(args.stats_file, report.to_dict()):
        code = EXIT_FAILED
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet or code:
        stream = sys.stdout if code == EXIT_OK else sys.stderr
        print(report.summary(), file=stream)
        verdict = "converged" if code == EXIT_OK else "NOT converged"
        if args.dry_run:
            verdict = "dry run: nothing changed" + ("" if code == EXIT_OK else "; " + verdict)
        print(verdict, file=stream)
    return code


def write_stats(path: Path, data: dict[str, Any]) -> bool:
    """Write a report's JSON to ``--stats-file`` atomically (also for a run that aborted);
    False (and one line on stderr) on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        tmp.replace(path)
    except OSError as exc:
        print(f"error: --stats-file {path}: {exc}", file=sys.stderr)
        return False
    return True


def explain_error(exc: RAGFlowError, base_url: str) -> str:
    """One line for a client error that stopped the run, naming what to check.

    Example:
        >>> from ragflow_dagster.client import RAGFlowUnavailableError
        >>> err = RAGFlowUnavailableError("connection refused", method="GET", route="/api/v1/x")
        >>> explain_error(err, "http://127.0.0.1:1")  # doctest: +ELLIPSIS
        'cannot reach RAGFlow at http://127.0.0.1:1: connection refused (1 attempt); check ...'
    """
    from ragflow_dagster.client import RAGFlowAuthError, RAGFlowUnavailableError

    attempts = max(1, exc.attempts)
    tries = f"{attempts} attempt" + ("" if attempts == 1 else "s")
    if isinstance(exc, RAGFlowAuthError):
        return f"RAGFlow at {base_url}: {exc.message}"
    if isinstance(exc, RAGFlowUnavailableError) and exc.http_status is None:
        return (
            f"cannot reach RAGFlow at {base_url}: {exc.message} ({tries}); check --base-url / "
            f"{ENV_BASE_URL} and that the server is running (--max-retries, --timeout to tune)"
        )
    return f"RAGFlow at {base_url}: {exc} ({tries})"


@contextlib.contextmanager
def cli_logging(*, verbose: int, quiet: bool) -> Iterator[None]:
    """One handler on the ``ragflow_dagster`` logger for the duration of a command, each line
    once (nothing propagates to handlers others installed); the previous state comes back after.

    Default: warnings, without the client's retry lines (the final error says how many attempts
    were made); ``-v`` adds what the sync does and each retry; ``-vv`` every request.
    """
    pkg = logging.getLogger("ragflow_dagster")
    client = logging.getLogger("ragflow_dagster.client")
    saved = (pkg.level, pkg.propagate, client.level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if quiet:
        level, client_level = logging.ERROR, logging.ERROR
    elif verbose >= 2:
        level, client_level = logging.DEBUG, logging.DEBUG
    elif verbose == 1:
        level, client_level = logging.INFO, logging.INFO
    else:
        level, client_level = logging.WARNING, logging.ERROR
    pkg.addHandler(handler)
    pkg.propagate = False
    pkg.setLevel(level)
    client.setLevel(client_level)
    try:
        yield
    finally:
        pkg.removeHandler(handler)
        pkg.setLevel(saved[0])
        pkg.propagate = saved[1]
        client.setLevel(saved[2])


def _sync(
    client: Any,
    source: Any,
    options: Any,
    args: argparse.Namespace,
    *,
    progress: _Progress,
    log: logging.Logger,
) -> Any:
    """The sync itself. A dataset is created only after the source was listed successfully."""
    from ragflow_dagster.client import ensure_dataset
    from ragflow_dagster.sources import build_inventory
    from ragflow_dagster.sync.engine import sync_source

    dataset = client.find_dataset(args.dataset)
    inventory = None
    if dataset is None:
        # list first: a bucket or folder that cannot be listed must not leave an empty dataset
        inventory = build_inventory(source, options.filters)
        if args.dry_run:
            return _dry_run_new_dataset(source, options, args.dataset, inventory, client)
        dataset = ensure_dataset(
            client,
            args.dataset,
            chunk_method=args.chunk_method,
            parser_config=args.parser_config,
            embedding_model=args.embedding_model,
            log=log,
        ).dataset
    return sync_source(
        client,
        source,
        dataset.id,
        options,
        dataset_name=dataset.name,
        inventory=inventory,
        progress=progress,
        log=logging.getLogger("ragflow_dagster.sync"),
        api_calls_since=0,  # count every request of this run, the dataset lookup included
    )


def _dry_run_new_dataset(source: Any, options: Any, name: str, inventory: Any, client: Any) -> Any:
    """A dry run against a dataset that does not exist: every file would be uploaded."""
    from ragflow_dagster.sync.engine import make_plan
    from ragflow_dagster.sync.report import SyncReport

    report = SyncReport(dataset_id="", source_uri=source.uri, dataset_name=name, dry_run=True)
    from ragflow_dagster.sync.desired import without_sidecars

    inventory = without_sidecars(inventory, options.metadata)
    report.counts["scanned"] = len(inventory.entries)
    report.counts["skipped"] = len(inventory.skipped)
    report.listing_complete = inventory.complete
    plan = make_plan(
        inventory,
        [],
        options,
        token_is_content=source.change_token_is_content_hash,
    )
    for action in plan.actions:
        report.add("uploaded")
        report.record(action.path, action.kind, "planned")
    report.api_calls = client.request_count
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragflow-dagster`` console script.

    Example:
        >>> main(["--version"])
        Traceback (most recent call last):
        SystemExit: 0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        prog = f"{parser.prog} {args.command}"
        print(f"{prog}: error: {exc}\nsee '{prog} --help'", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
