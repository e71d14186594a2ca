"""The listing of :class:`~ragflow_dagster.sources.fsspec.FsspecSource`: a resumable walk in path
order (one ``ls`` per directory) or one flat ``find``, as pages of entries and skipped entries.

:class:`FsspecListing` holds the filesystem, the root and the token settings; it turns listed
metadata into records (change token, known fingerprints, filters) and never reads content.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from ragflow_dagster.sources.base import (
    KnownFingerprint,
    SkippedEntry,
    SourceEntry,
    SourceError,
    new_entry,
    unsafe_path_reason,
)
from ragflow_dagster.sources.filters import FileFilters
from ragflow_dagster.sources.fsspec_protocols import (
    TokenKind,
    etag_of,
    md5_of,
    mtime_ns,
    version_of,
)
from ragflow_dagster.sources.secrets import Scrubber

__all__ = ["FsspecListing", "ListedPage"]

_DEFAULT_FILTERS = FileFilters()

ListedPage = tuple[list[SourceEntry], list[SkippedEntry], str | None]
"""``(entries, skipped, resume)``: one page of a listing; ``resume`` is ``None`` on the last."""


class FsspecListing:
    """Listing by metadata over an fsspec filesystem (the part of ``FsspecSource`` that lists).

    The attributes are set by :class:`~ragflow_dagster.sources.fsspec.FsspecSource`.
    """

    fs: Any
    """The fsspec filesystem (``AbstractFileSystem``; fsspec ships no type information)."""
    root: str
    page_size: int
    change_token: TokenKind
    _root_key: str
    _uri: str
    _scrubber: Scrubber
    _token_kinds: tuple[str, ...]
    _escape: dict[int, str] | None
    _lock: contextlib.AbstractContextManager[Any]

    def _full(self, rel: str) -> str:
        """The implementation's path for a relative path (escaped where it needs it)."""
        if self._escape is not None and rel:
            rel = rel.translate(self._escape)
        root = self.root
        if not root:
            return rel
        if root == "/":
            return "/" + rel
        return f"{root}/{rel}" if rel else root

    def _rel(self, name: str) -> str | None:
        """The relative path of a listed name, or ``None`` when it is not under the root."""
        key = self.fs._strip_protocol(name).strip("/")
        root = self._root_key
        if not root:
            return key
        if key == root:
            return ""
        if key.startswith(root) and key[len(root)] == "/":
            return key[len(root) + 1 :]
        return None

    def _why(self, exc: BaseException) -> str:
        text = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        return self._scrubber(text)

    def _token(self, info: Mapping[str, Any], size: int) -> tuple[str | None, float]:
        """``(change token, mtime seconds)`` of one listed file (token ``None``: missing)."""
        ns = mtime_ns(info)
        modified = ns / 1e9 if ns is not None else 0.0
        for kind in self._token_kinds:
            if kind == "etag":
                value = etag_of(info)
                if value:
                    return f"etag:{value}", modified
            elif kind == "md5":
                value = md5_of(info)
                if value:
                    return f"md5:{value}", modified
            elif kind == "version":
                value = version_of(info)
                if value:
                    return f"version:{value}", modified
            elif ns is not None:  # size_mtime
                return f"{size}-{ns}", modified
        return None, modified

    def _record(
        self,
        rel: str,
        info: Mapping[str, Any],
        file_check: Any,
        known_get: Any,
    ) -> SourceEntry | SkippedEntry:
        size = int(info.get("size") or 0)
        token, modified = self._token(info, size)
        if file_check is not None:
            why = file_check(rel, rel.rpartition("/")[2], size, modified)
            if why is not None:
                return SkippedEntry(rel, why[0], why[1])
        if token is None:
            kinds = "/".join(self._token_kinds)
            detail = f"no {kinds} in the listing metadata (change_token={self.change_token!r})"
            return SkippedEntry(rel, "unreadable", detail, True)
        sha = None
        if known_get is not None:
            k = known_get(rel)
            if k is not None and k.change_token == token and (k.size is None or k.size == size):
                sha = k.sha256
        return new_entry(rel, size, modified, token, sha)

    def _forget_listings(self) -> None:
        """Drop the filesystem's cached directory listings: each listing is fresh."""
        with contextlib.suppress(Exception), self._lock:
            self.fs.invalidate_cache()

    def _ls(self, rel_dir: str) -> list[dict[str, Any]]:
        full = self._full(rel_dir.rstrip("/"))
        with self._lock:
            return list(self.fs.ls(full, detail=True))

    def _root_listing(self) -> list[dict[str, Any]]:
        self._forget_listings()
        try:
            items = self._ls("")
        except FileNotFoundError:
            raise SourceError(f"source {self._uri!r} does not exist") from None
        except NotADirectoryError:
            raise SourceError(f"source {self._uri!r} is not a directory") from None
        except Exception as exc:
            raise SourceError(f"cannot list source {self._uri!r}: {self._why(exc)}") from None
        if (
            len(items) == 1
            and items[0].get("type") != "directory"
            and self._rel(str(items[0].get("name", ""))) == ""
        ):
            raise SourceError(f"source {self._uri!r} is not a directory")
        return items

    def _walk(
        self,
        start_after: str | None,
        filters: FileFilters | None,
        known: Mapping[str, KnownFingerprint] | None,
    ) -> Iterator[ListedPage]:
        """Depth-first in path order: a directory sorts as ``name/``, so the walk yields paths
        in lexicographic order and can skip everything up to ``start_after``."""
        f = filters if filters is not None else _DEFAULT_FILTERS
        dir_check = f._compiled.dir_check
        file_check = f._compiled.file_check
        hidden_ok = f.include_hidden
        known_get = known.get if known else None
        after = start_after
        size = self.page_size
        entries: list[SourceEntry] = []
        skipped: list[SkippedEntry] = []
        last: str | None = start_after

        # frames: (relative dir ending with "/" or "", depth, sorted children)
        frames: list[tuple[str, int, Iterator[tuple[str, str, Mapping[str, Any]]]]] = [
            ("", 0, iter(self._children("", self._root_listing())))
        ]
        while frames:
            rel_dir, depth, children = frames[-1]
            child = next(children, None)
            if child is None:
                frames.pop()
                continue
            key, kind, info = child
            path = rel_dir + key
            if kind == "dir":
                if after is not None and path <= after and not after.startswith(path):
                    continue  # the whole subtree sorts before the cursor
                name = key[:-1]
                why = dir_check(name, depth + 1)
                if why is not None:
                    if after is None or path > after:
                        skipped.append(SkippedEntry(path, why[0], why[1]))
                        last = path
                    continue
                try:
                    listed = self._ls(path)
                except FileNotFoundError:
                    skipped.append(SkippedEntry(path, "vanished", "gone before it was listed"))
                    last = path
                    continue
                except Exception as exc:
                    detail = f"cannot list directory: {self._why(exc)}"
                    skipped.append(SkippedEntry(path, "unreadable", detail, True))
                    last = path
                    continue
                frames.append((path, depth + 1, iter(self._children(path, listed))))
                continue
            if after is not None and path <= after:
                continue
            last = path
            if kind == "skip":
                skipped.append(info["_skip"])
            elif not hidden_ok and key[0] == ".":
                skipped.append(SkippedEntry(path, "filtered", "hidden file"))
            else:
                rec = self._record(path, info, file_check, known_get)
                if isinstance(rec, SkippedEntry):
                    skipped.append(rec)
                else:
                    entries.append(rec)
            if len(entries) + len(skipped) >= size:
                yield entries, skipped, last
                entries, skipped = [], []
        try:
            with self._lock:
                still_there = self.fs.isdir(self._full("")) if self.root else True
        except Exception:
            still_there = False
        if not still_there:
            gone = f"source {self._uri!r} disappeared during the listing"
            skipped.append(SkippedEntry("", "vanished", gone, True))
        yield entries, skipped, None

    def _children(
        self, rel_dir: str, items: list[dict[str, Any]]
    ) -> list[tuple[str, str, Mapping[str, Any]]]:
        """The listed items of one directory as ``(sort key, kind, info)``, in path order."""
        out: list[tuple[str, str, Mapping[str, Any]]] = []
        own = rel_dir.rstrip("/")
        for info in items:
            rel = self._rel(str(info.get("name", "")))
            if rel is None or rel == own:
                continue
            if not own:
                name = rel
            elif rel.startswith(own + "/"):
                name = rel[len(own) + 1 :]
            else:
                name = ""
            kind = info.get("type")
            if not name or "/" in name or name in (".", ".."):
                skip = SkippedEntry(rel_dir + (name or "?"), "unsafe_key", f"listed as {rel!r}")
                out.append((rel_dir + (name or "?"), "skip", {"_skip": skip}))
                continue
            if kind == "directory":
                out.append((name + "/", "dir", info))
            elif kind == "file":
                out.append((name, "file", info))
            else:
                skip = SkippedEntry(rel_dir + name, "special_file", f"type {kind!r}")
                out.append((name, "skip", {"_skip": skip}))
        out.sort(key=lambda c: c[0])
        return out

    def _flat(
        self,
        filters: FileFilters | None,
        known: Mapping[str, KnownFingerprint] | None,
        start_after: str | None,
    ) -> Iterator[ListedPage]:
        f = filters if filters is not None else _DEFAULT_FILTERS
        path_check = f._compiled.path_check
        file_check = f._compiled.file_check
        known_get = known.get if known else None
        full = self._full("")
        self._forget_listings()
        try:
            with self._lock:
                found = self.fs.find(full, detail=True, withdirs=False)
        except FileNotFoundError:
            raise SourceError(f"source {self._uri!r} does not exist") from None
        except Exception as exc:
            raise SourceError(f"cannot list source {self._uri!r}: {self._why(exc)}") from None
        if not found:
            self._check_exists()
        entries: list[SourceEntry] = []
        skipped: list[SkippedEntry] = []
        size = self.page_size
        for name in sorted(found, key=lambda n: self._rel(n) or ""):
            info = found[name]
            rel = self._rel(str(info.get("name") or name))
            if not rel or (start_after is not None and rel <= start_after):
                continue
            if (info.get("type") == "directory" or rel.endswith("/")) and not int(
                info.get("size") or 0
            ):
                skipped.append(SkippedEntry(rel, "special_file", "folder marker"))
                continue
            why_unsafe = unsafe_path_reason(rel)
            if why_unsafe is not None:
                skipped.append(SkippedEntry(rel, "unsafe_key", f"key {rel!r}: {why_unsafe}"))
                continue
            why = path_check(rel)
            if why is not None:
                skipped.append(SkippedEntry(rel, why[0], why[1]))
                continue
            rec = self._record(rel, info, file_check, known_get)
            if isinstance(rec, SkippedEntry):
                skipped.append(rec)
            else:
                entries.append(rec)
            if len(entries) + len(skipped) >= size:
                yield entries, skipped, rel
                entries, skipped = [], []
        yield entries, skipped, None

    def _check_exists(self) -> None:
        """An empty flat listing: fine for an empty prefix, an error for a missing bucket."""
        bucket = self._root_key.split("/", 1)[0]
        if not bucket:
            return
        try:
            with self._lock:
                exists = bool(self.fs.exists(bucket))
        except Exception as exc:
            raise SourceError(f"cannot list source {self._uri!r}: {self._why(exc)}") from None
        if not exists:
            raise SourceError(f"source {self._uri!r} does not exist (no bucket {bucket!r})")
