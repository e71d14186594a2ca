"""What each file's document should carry besides its identity: mapped metadata and parse rule.

:func:`resolve_desired` does the reading the pure :mod:`.metadata` spec asks for, and only where
it must: front matter, sidecars and S3 metadata/tags are read for a path with no document yet,
a document whose content differs from the file, or one whose ``meta_token`` (the read sources'
spec and the sidecar's change token) differs. For every other path the read values are taken
from the document itself (the keys listed in ``meta_read_keys``), so a no-op resync reads
nothing and makes no extra request.

Sidecar files (``<name>.meta.json`` / ``.meta.yaml``) are taken out of the inventory when the
spec uses them: they are never uploaded, and their change token is folded into ``meta_token``
of the file they describe, so editing a sidecar relabels that one document.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragflow_dagster.sources import Inventory, Source, SourceEntry, SourceError
from ragflow_dagster.sources.filters import read_up_to
from ragflow_dagster.sync.identity import (
    META_CHANGE_TOKEN,
    META_SHA256,
    META_SIZE,
    label_is_consistent,
    managed_path,
)
from ragflow_dagster.sync.metadata import (
    META_KEYS_KEY,
    META_READ_KEYS_KEY,
    META_TOKEN_KEY,
    RESERVED_KEYS,
    MetadataError,
    MetadataSpec,
    MetaValue,
    SourceFile,
    cheap_meta,
    front_matter_applies,
    function_meta,
    meta_token,
    parse_sidecar,
    pick_front_matter,
    pick_s3,
    sidecar_of,
    validate_meta,
)
from ragflow_dagster.sync.rules import DesiredParse, ParseRules, desired_parse

logger = logging.getLogger("ragflow_dagster.sync")

FRONT_MATTER_LIMIT = 1 << 20
"""Bytes of a Markdown file read for its front matter."""


class _Doc(Protocol):
    """Read-only members, so the client's frozen ``Document`` satisfies it."""

    @property
    def id(self) -> str: ...
    @property
    def meta_fields(self) -> Mapping[str, Any]: ...
    @property
    def create_time(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Desired:
    """The mapped state of one path.

    Attributes:
        meta: The mapped keys and values (validated), without identity keys.
        read_keys: The keys of ``meta`` whose value was read (front matter, sidecar, S3).
        token: The ``meta_token`` (``None`` when the spec reads nothing).
        parse: The parse settings (``None`` when no rules are configured).
        mapped: False when no mapping is given (only rules): the document's mapped keys are
            then left as they are.
    """

    meta: dict[str, MetaValue] = field(default_factory=dict)
    read_keys: tuple[str, ...] = ()
    token: str | None = None
    parse: DesiredParse | None = None
    mapped: bool = True

    def meta_fields(self) -> dict[str, Any]:
        """``meta`` plus the bookkeeping keys, as written to the document."""
        if not self.mapped:
            return {}
        out: dict[str, Any] = dict(self.meta)
        if self.meta:
            out[META_KEYS_KEY] = sorted(self.meta)
        if self.read_keys:
            out[META_READ_KEYS_KEY] = sorted(self.read_keys)
        if self.token is not None:
            out[META_TOKEN_KEY] = self.token
        return out


@dataclass
class DesiredBook:
    """The desired state by path, and what it took to compute it.

    ``reads`` counts the reads done (``front_matter``, ``sidecar``, ``s3_metadata``,
    ``s3_tags``); an unchanged, in-sync dataset leaves it all zero."""

    by_path: dict[str, Desired] = field(default_factory=dict)
    active: bool = False
    reads: dict[str, int] = field(default_factory=dict)

    def get(self, path: str) -> Desired | None:
        return self.by_path.get(path) if self.active else None

    def meta_fields(self, path: str) -> dict[str, Any]:
        """What the mapping adds to the label of ``path`` (empty without a mapping)."""
        desired = self.get(path)
        return desired.meta_fields() if desired is not None else {}

    def parse(self, path: str) -> DesiredParse | None:
        desired = self.get(path)
        return desired.parse if desired is not None else None


EMPTY_BOOK = DesiredBook()


def split_sidecars(inventory: Inventory) -> tuple[Inventory, dict[str, SourceEntry]]:
    """The inventory without sidecar files, and the sidecars by the path they describe."""
    kept: list[SourceEntry] = []
    sidecars: dict[str, SourceEntry] = {}
    for entry in inventory.entries:
        target = sidecar_of(entry.path)
        if target is None:
            kept.append(entry)
        else:
            sidecars[target] = entry
    if not sidecars:
        return inventory, {}
    return dataclasses.replace(inventory, entries=kept), sidecars


def without_sidecars(inventory: Inventory, spec: MetadataSpec | None) -> Inventory:
    """The inventory of what is uploaded: without sidecar files when ``spec`` reads them."""
    if spec is None or not spec.sidecar:
        return inventory
    return split_sidecars(inventory)[0]


def resolve_desired(
    source: Source,
    inventory: Inventory,
    documents: Iterable[_Doc],
    *,
    spec: MetadataSpec | None,
    rules: ParseRules | None,
    default_method: str | Callable[[], str] = "naive",
    max_workers: int = 4,
) -> tuple[Inventory, DesiredBook]:
    """Compute the desired metadata and parse rule of every inventory entry.

    Args:
        source: Where the files live (read for front matter, sidecars, S3 metadata).
        inventory: The listing.
        documents: The dataset's documents (their stored values spare the reads).
        spec: The metadata mapping. ``None`` leaves mapped keys as they are; an empty
            :class:`MetadataSpec` removes them.
        rules: The parsing rules (``None``: none).
        default_method: The dataset's chunk method (for paths no rule matches), or a function
            giving it (called once, only when rules are configured).
        max_workers: Concurrent reads.

    Returns:
        The inventory (without sidecars when the spec uses them) and the :class:`DesiredBook`.

    Raises:
        MetadataError: A mapped value RAGFlow cannot store (naming the file and the key).
        SourceError: The spec asks for S3 metadata from a source that has none.
    """
    if spec is None and not rules:
        return inventory, DesiredBook()  # no opinion: mapped keys stay as they are
    mapped = spec is not None
    spec = spec or MetadataSpec()
    rules = rules or ParseRules()
    if spec.s3 is not None and not source.supports_object_metadata:
        raise SourceError(
            f"the metadata mapping reads S3 metadata/tags, but {type(source).__name__} has none"
        )
    sidecars: dict[str, SourceEntry] = {}
    if spec.sidecar:
        inventory, sidecars = split_sidecars(inventory)
    if rules and callable(default_method):
        default_method = default_method()
    method = default_method if isinstance(default_method, str) else "naive"
    stored = _stored_documents(documents)
    book = DesiredBook(active=True, reads=dict.fromkeys(_READ_KINDS, 0))
    entries = inventory.entries
    tokens: dict[str, str] = {}
    read: dict[str, dict[str, Any]] = {}
    if spec.reads:
        # the values kept on an unchanged document serve; only the rest is read, concurrently
        fingerprint = spec.read_fingerprint()
        to_read: list[SourceEntry] = []
        for entry in entries:
            sidecar = sidecars.get(entry.path)
            token = meta_token(fingerprint, sidecar.change_token if sidecar else None)
            tokens[entry.path] = token
            doc = stored.get(entry.path)
            if doc is not None and _fresh(doc, entry, token):
                wanted = doc.meta_fields.get(META_READ_KEYS_KEY) or []
                wanted = [wanted] if isinstance(wanted, str) else wanted
                read[entry.path] = {k: doc.meta_fields[k] for k in wanted if k in doc.meta_fields}
            else:
                to_read.append(entry)
        lock = threading.Lock()

        def fetch(entry: SourceEntry) -> tuple[str, dict[str, Any]]:
            return entry.path, _read(source, spec, entry, sidecars.get(entry.path), book, lock)

        if len(to_read) > 1 and max_workers > 1:
            with ThreadPoolExecutor(max_workers=max_workers) as pool:
                read.update(pool.map(fetch, to_read))
        else:
            read.update(map(fetch, to_read))

    for entry in entries:
        uri = source.uri_for(entry.path) if spec.function is not None else ""  # for it only
        file = SourceFile(entry.path, uri, entry.size, entry.modified)
        meta = cheap_meta(spec, file)
        values = read.get(entry.path, {})
        meta.update(values)
        func = function_meta(spec, file)
        meta.update(func)
        book.by_path[entry.path] = Desired(
            meta=validate_meta(entry.path, meta),
            read_keys=tuple(sorted(k for k in values if k not in func)),
            token=tokens.get(entry.path),
            parse=desired_parse(rules, entry.path, default_method=method),
            mapped=mapped,
        )
    return inventory, book


_READ_KINDS = ("front_matter", "sidecar", "s3_metadata", "s3_tags")


def _stored_documents(documents: Iterable[_Doc]) -> dict[str, _Doc]:
    """The keeper (oldest, then id) trusted document of each managed path."""
    out: dict[str, _Doc] = {}
    for doc in documents:
        path = managed_path(doc.meta_fields)
        if path is None or not label_is_consistent(doc.meta_fields):
            continue
        best = out.get(path)
        if best is None or (int(doc.create_time or 0), doc.id) < (
            int(best.create_time or 0),
            best.id,
        ):
            out[path] = doc
    return out


def _fresh(doc: _Doc, entry: SourceEntry, token: str) -> bool:
    """Whether the document's read values still hold: same content, same ``meta_token``."""
    meta = doc.meta_fields
    if meta.get(META_TOKEN_KEY) != token:
        return False
    if entry.sha256 is not None:
        return meta.get(META_SHA256) == entry.sha256
    try:
        size = int(meta.get(META_SIZE))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return str(meta.get(META_CHANGE_TOKEN)) == entry.change_token and size == entry.size


def _read(
    source: Source,
    spec: MetadataSpec,
    entry: SourceEntry,
    sidecar: SourceEntry | None,
    book: DesiredBook,
    lock: threading.Lock,
) -> dict[str, Any]:
    """The values of the read sources for one file, in merge order."""
    out: dict[str, Any] = {}

    def count(kind: str) -> None:
        with lock:
            book.reads[kind] += 1

    if front_matter_applies(spec, entry.path):
        count("front_matter")
        try:
            out.update(_front_matter(source, spec, entry.path))
        except FileNotFoundError:  # gone since listed: its upload fails and says so
            logger.info("%s vanished before its front matter was read", entry.path)
    if sidecar is not None:
        count("sidecar")
        try:
            with source.open(sidecar.path) as fh:
                data = fh.read()
        except FileNotFoundError:  # gone since listed: as if there were none
            data = b"{}" if sidecar.path.endswith(".json") else b""
        except OSError as exc:
            why = f"sidecar {sidecar.path} unreadable: {exc}"
            raise MetadataError(entry.path, "*", why) from exc
        out.update(_unreserved(entry.path, parse_sidecar(sidecar.path, data)))
    if spec.s3 is not None and (spec.s3.metadata or spec.s3.tags):
        if spec.s3.metadata:
            count("s3_metadata")
        if spec.s3.tags:
            count("s3_tags")
        try:
            got = source.object_metadata(
                entry.path, metadata=bool(spec.s3.metadata), tags=bool(spec.s3.tags)
            )
        except FileNotFoundError:  # gone since listed: its upload fails and says so
            logger.info("%s vanished before its S3 metadata was read", entry.path)
        else:
            out.update(_unreserved(entry.path, pick_s3(spec, got.user, got.tags)))
    return out


def _unreserved(path: str, values: dict[str, Any]) -> dict[str, Any]:
    """Values of a source that brings whatever keys it holds (a sidecar, all S3 metadata),
    without the reserved ones: the identity keys win, and such a key is not the user's error."""
    dropped = [k for k in values if k in RESERVED_KEYS]
    if dropped:
        logger.info("%s: reserved metadata keys ignored: %s", path, ", ".join(sorted(dropped)))
    return {k: v for k, v in values.items() if k not in RESERVED_KEYS}


def _front_matter(source: Source, spec: MetadataSpec, path: str) -> dict[str, Any]:
    import frontmatter
    import yaml

    with source.open(path) as fh:
        data = read_up_to(fh, FRONT_MATTER_LIMIT)
    text = data.decode("utf-8", errors="replace")
    if not text.lstrip("\ufeff").startswith("---"):
        return {}
    try:
        post = frontmatter.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise MetadataError(path, "*", f"front matter cannot be parsed: {exc}") from exc
    return pick_front_matter(spec, post.metadata)


__all__ = [
    "EMPTY_BOOK",
    "Desired",
    "DesiredBook",
    "resolve_desired",
    "split_sidecars",
    "without_sidecars",
]
