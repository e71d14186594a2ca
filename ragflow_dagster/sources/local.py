"""A local (or mounted) folder as a source: ``os.scandir`` walk, stat only, no reads.

Hostile trees never crash the walk: permission-denied folders, broken symlinks, symlink loops,
entries vanishing mid-walk, FIFOs / sockets / devices and non-UTF-8 names become
:class:`~ragflow_dagster.sources.base.SkippedEntry` records with a reason. Symlinks are followed
only while their target stays inside the root.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "a.txt").write_text("hi")
    >>> [e.path for e in LocalFolderSource(root).scan()]
    ['a.txt']
"""

from __future__ import annotations

import errno
import itertools
import os
import stat as stat_module
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from ragflow_dagster.gcpause import gc_paused
from ragflow_dagster.sources.base import (
    ENTRY_DRAFT,
    ContentChangedError,
    KnownFingerprint,
    SkippedEntry,
    Source,
    SourceEntry,
    SourceError,
)
from ragflow_dagster.sources.filters import FileFilters

_S_ISDIR = stat_module.S_ISDIR
_S_ISREG = stat_module.S_ISREG
_O_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _shown(name: str) -> str:
    """A name with undecodable bytes (surrogate escapes) shown as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _decodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _special_kind(mode: int) -> str:
    if stat_module.S_ISFIFO(mode):
        return "FIFO"
    if stat_module.S_ISSOCK(mode):
        return "socket"
    if stat_module.S_ISCHR(mode):
        return "character device"
    if stat_module.S_ISBLK(mode):
        return "block device"
    return "not a regular file"


def change_token(st: os.stat_result) -> str:
    """The change token of a local file: ``"<size>-<mtime_ns>"``.

    Example:
        >>> import os
        >>> change_token(os.stat_result((0o100644, 0, 0, 1, 0, 0, 5, 0, 0, 0)))[:2]
        '5-'
    """
    return f"{st.st_size}-{st.st_mtime_ns}"


class LocalFolderSource(Source):
    """Files under a local directory, identified by their relative POSIX path.

    Args:
        root: The folder. Checked when listed, not here (it may be mounted later); a missing
            root or a root that is not a directory raises :class:`SourceError` from ``scan``.
        follow_symlinks: Follow symlinks whose target stays inside the root (loops detected);
            when False every symlink is skipped as ``special_file``.

    Example:
        >>> src = LocalFolderSource("/data/docs")
        >>> src.uri, src.uri_for("a b.txt")
        ('file:///data/docs', 'file:///data/docs/a%20b.txt')
    """

    change_token_is_content_hash = False
    applies_filters = True
    supports_known_fingerprints = True
    supports_conditional_open = True
    supports_stat = True
    reads_wait_on_network = False

    def __init__(self, root: str | os.PathLike[str], *, follow_symlinks: bool = True) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.follow_symlinks = follow_symlinks
        self._uri = Path(self.root).as_uri()
        self._root_real: str | None = None  # resolved on first use (the root may be mounted later)

    def __repr__(self) -> str:
        return f"LocalFolderSource({self.root!r}, follow_symlinks={self.follow_symlinks})"

    @property
    def uri(self) -> str:
        """``file://`` URI of the root (percent-encoded where needed)."""
        return self._uri

    def uri_for(self, path: str) -> str:
        """URI of one entry."""
        return self._uri.rstrip("/") + "/" + quote(path)

    # -- listing ---------------------------------------------------------------------------------
    def _check_root(self) -> None:
        root = self.root
        try:
            st = os.stat(root)
        except FileNotFoundError:
            raise SourceError(f"source folder {root!r} does not exist") from None
        except OSError as exc:
            raise SourceError(f"source folder {root!r} cannot be accessed: {exc}") from exc
        if not _S_ISDIR(st.st_mode):
            raise SourceError(f"source folder {root!r} is not a directory")

    def scan(self, filters: FileFilters | None = None) -> Iterator[SourceEntry | SkippedEntry]:
        """Walk the tree, yielding one record per file (and per skipped file or directory).

        Args:
            filters: Cheap filters applied during the walk (default: ``FileFilters()``, i.e.
                everything but hidden files and folders): excluded / hidden / too deep
                directories are not entered, and files failing a path, size or time filter are
                yielded as ``filtered`` / ``too_large`` skipped entries. Content filters are
                ignored here (the inventory applies them).

        Raises:
            SourceError: The root is missing, not a directory, or cannot be listed at all.
        """
        # chained in C: a generator resumed once per entry would cost a tenth of the walk
        return itertools.chain.from_iterable(
            part for entries, skipped in self.scan_batches(filters) for part in (skipped, entries)
        )

    def scan_batches(
        self,
        filters: FileFilters | None = None,
        *,
        known: Mapping[str, KnownFingerprint] | None = None,
    ) -> Iterator[tuple[list[SourceEntry], list[SkippedEntry]]]:
        """Like :meth:`scan`, one ``(entries, skipped)`` pair per directory (faster to consume).

        The cyclic garbage collector is paused until the walk ends or the generator is closed
        (see :mod:`ragflow_dagster.gcpause`): every entry lives on in the caller's listing, and
        the collections their allocations trigger would traverse all of them again and again
        (a tenth of the walk's time at 100,000 files).

        Args:
            filters: As for :meth:`scan`.
            known: Fingerprints by path (``change_token``, ``sha256``, ``size``): an entry whose
                token and size match gets the known ``sha256`` as it is listed.
        """
        self._check_root()
        root = self.root
        try:
            first = os.scandir(root)
        except OSError as exc:
            raise SourceError(f"source folder {root!r} cannot be listed: {exc}") from exc
        with gc_paused():
            yield from self._walk(first, filters, known)
        if not os.path.isdir(root):
            gone = f"source folder {root!r} disappeared during the listing"
            yield [], [SkippedEntry("", "vanished", gone, True)]

    def _walk(
        self,
        first: Iterator[os.DirEntry[str]],
        filters: FileFilters | None,
        known: Mapping[str, KnownFingerprint] | None,
    ) -> Iterator[tuple[list[SourceEntry], list[SkippedEntry]]]:
        compiled = filters._compiled if filters is not None else None
        hidden_ok = filters.include_hidden if filters is not None else False
        file_check = compiled.file_check if compiled is not None else None
        dir_check = compiled.dir_check if compiled is not None else None
        follow = self.follow_symlinks
        root_real = os.path.realpath(self.root)
        inside = root_real.rstrip(os.sep) + os.sep
        # SourceEntry objects are built as drafts (see ragflow_dagster.drafts; inlined: a
        # function call per file would cost a tenth of the whole walk).
        draft = ENTRY_DRAFT
        cls = SourceEntry
        Skipped = SkippedEntry
        known_get = known.get if known else None

        # (absolute dir, relative prefix ending with "/" or "", depth, real path, real chain)
        stack: list[tuple[str, str, int, str, tuple[str, ...]]] = []
        current: tuple[str, str, int, str, tuple[str, ...]] = (self.root, "", 0, root_real, ())
        it: Iterator[os.DirEntry[str]] | None = first
        while True:
            d, rel, depth, real, chain = current
            entries: list[SourceEntry] = []
            skipped: list[SkippedEntry] = []
            add = entries.append
            skip = skipped.append
            if it is None:
                try:
                    it = os.scandir(d)
                except FileNotFoundError:
                    skip(Skipped(rel, "vanished", "directory disappeared before it was listed"))
                    it = None
                except OSError as exc:
                    skip(Skipped(rel, "unreadable", f"cannot list directory: {exc}", True))
                    it = None
            if it is not None:
                try:
                    with it:  # type: ignore[attr-defined]
                        for e in it:
                            name = e.name
                            if not name.isascii() and not _decodable(name):
                                shown = rel + _shown(name) + ("/" if _is_dir(e) else "")
                                skip(Skipped(shown, "name_not_decodable", "not valid UTF-8"))
                                continue
                            if name[0] == "." and not hidden_ok:
                                if _is_dir(e):
                                    skip(Skipped(rel + name + "/", "filtered", "hidden directory"))
                                else:
                                    skip(Skipped(rel + name, "filtered", "hidden file"))
                                continue
                            try:
                                # One lstat decides (a directory costs a syscall more than
                                # is_dir would, a file one method call less).
                                st = e.stat(follow_symlinks=False)
                                kind = st.st_mode & 0o170000
                                if kind == 0o100000:  # regular file: the common case
                                    pass
                                elif kind == 0o040000:
                                    sub = rel + name + "/"
                                    if dir_check is not None:
                                        why = dir_check(name, depth + 1)
                                        if why is not None:
                                            skip(Skipped(sub, why[0], why[1]))
                                            continue
                                    sub_real = real + "/" + name if real != "/" else "/" + name
                                    stack.append((e.path, sub, depth + 1, sub_real, chain))
                                    continue
                                elif kind == 0o120000:  # symlink
                                    if not follow:
                                        skip(Skipped(rel + name, "special_file", "symlink"))
                                        continue
                                    got = self._symlink(
                                        e, rel, depth, real, chain, inside, root_real, dir_check
                                    )
                                    if isinstance(got, os.stat_result):
                                        st = got
                                    elif isinstance(got, SkippedEntry):
                                        skip(got)
                                        continue
                                    else:
                                        stack.append(got)
                                        continue
                                else:
                                    skip(Skipped(rel + name, "special_file", _special_kind(kind)))
                                    continue
                            except FileNotFoundError:
                                skip(Skipped(rel + name, "vanished", "gone before it was stat-ed"))
                                continue
                            except OSError as exc:
                                skip(Skipped(rel + name, "unreadable", f"cannot stat: {exc}", True))
                                continue
                            size = st.st_size
                            if file_check is not None:
                                why = file_check(rel + name, name, size, st.st_mtime)
                                if why is not None:
                                    skip(Skipped(rel + name, why[0], why[1]))
                                    continue
                            entry = draft()
                            entry.size = size
                            entry.modified = st.st_mtime
                            entry.mime = None
                            if known_get is None:
                                entry.path = rel + name
                                entry.change_token = f"{size}-{st.st_mtime_ns}"
                                entry.sha256 = None
                            else:
                                path = rel + name
                                token = f"{size}-{st.st_mtime_ns}"
                                entry.path = path
                                entry.change_token = token
                                k = known_get(path)
                                entry.sha256 = (
                                    k.sha256
                                    if k is not None
                                    and k.change_token == token
                                    and (k.size is None or k.size == size)
                                    else None
                                )
                            entry.__class__ = cls
                            add(entry)
                except OSError as exc:  # reading the directory broke off part-way
                    skip(Skipped(rel, "unreadable", f"listing broke off: {exc}", True))
            if entries or skipped:
                yield entries, skipped
            if not stack:
                return
            current = stack.pop()
            it = None

    @staticmethod
    def _symlink(
        e: os.DirEntry[str],
        rel: str,
        depth: int,
        real: str,
        chain: tuple[str, ...],
        inside: str,
        root_real: str,
        dir_check: object,
    ) -> os.stat_result | SkippedEntry | tuple[str, str, int, str, tuple[str, ...]]:
        """Resolve a symlink: its target's stat, a directory to walk, or why it is skipped."""
        name = e.name
        path = rel + name
        try:
            st = os.stat(e.path)
        except FileNotFoundError:
            return SkippedEntry(path, "broken_symlink", f"target missing: {_readlink(e.path)}")
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return SkippedEntry(path, "symlink_loop", "symlink resolves to itself")
            return SkippedEntry(path, "unreadable", f"cannot stat symlink target: {exc}", True)
        target = os.path.realpath(e.path)
        if target != root_real and not target.startswith(inside):
            return SkippedEntry(path, "symlink_outside_root", f"target {_shown(target)}")
        if _S_ISDIR(st.st_mode):
            sub = path + "/"
            for ancestor in (*chain, real):
                if ancestor == target or ancestor.startswith(target.rstrip("/") + "/"):
                    return SkippedEntry(sub, "symlink_loop", f"target {_shown(target)} encloses it")
            if dir_check is not None:
                why = dir_check(name, depth + 1)  # type: ignore[operator]
                if why is not None:
                    return SkippedEntry(sub, why[0], why[1])
            return (e.path, sub, depth + 1, target, (*chain, real))
        if _S_ISREG(st.st_mode):
            return st
        return SkippedEntry(path, "special_file", f"symlink to a {_special_kind(st.st_mode)}")

    # -- single entries ----------------------------------------------------------------------------
    def _inside(self) -> str:
        """The resolved root with a trailing separator (resolved once)."""
        if self._root_real is None:
            self._root_real = os.path.realpath(self.root).rstrip(os.sep) + os.sep
        return self._root_real

    def _abs(self, path: str) -> str:
        parts = path.split("/")
        if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise FileNotFoundError(errno.ENOENT, "not a relative path of this source", path)
        full = os.path.join(self.root, *parts)
        if not os.path.realpath(full).startswith(self._inside()):
            raise PermissionError(errno.EACCES, "resolves outside the source root", path)
        return full

    def stat(self, path: str) -> SourceEntry:
        """A fresh entry for one path (``os.stat``), e.g. to check it before an upload.

        Raises:
            FileNotFoundError: The file is gone (or the path is not a path of this source).
            OSError: It cannot be stat-ed or is not a regular file.
        """
        full = self._abs(path)
        st = os.stat(full, follow_symlinks=self.follow_symlinks)
        if not _S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_special_kind(st.st_mode)})", path)
        return SourceEntry(path, st.st_size, st.st_mtime, change_token(st))

    def open(self, path: str, *, expected_token: str | None = None) -> BinaryIO:
        """Open one file for streaming reads (buffered, seekable, with a ``fileno``).

        Never blocks on a FIFO put in a file's place, and refuses anything that is not a
        regular file.

        Args:
            path: Relative path as listed.
            expected_token: When given, raise :class:`ContentChangedError` if the open file's
                change token differs (it changed since it was listed).

        Raises:
            FileNotFoundError: The file is gone.
            PermissionError: It cannot be read.
            ContentChangedError: ``expected_token`` no longer matches.
        """
        full = self._abs(path)
        flags = _O_FLAGS if self.follow_symlinks else _O_FLAGS | _O_NOFOLLOW
        fd = os.open(full, flags)
        try:
            st = os.fstat(fd)
            if not _S_ISREG(st.st_mode):
                raise OSError(
                    errno.EINVAL, f"not a regular file ({_special_kind(st.st_mode)})", path
                )
            if expected_token is not None and change_token(st) != expected_token:
                raise ContentChangedError(
                    errno.ESTALE,
                    f"changed since listed ({expected_token} -> {change_token(st)})",
                    path,
                )
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
            return os.fdopen(fd, "rb", buffering=1 << 16)
        except BaseException:
            os.close(fd)
            raise


def _is_dir(e: os.DirEntry[str]) -> bool:
    try:
        return e.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _readlink(path: str) -> str:
    try:
        return _shown(os.readlink(path))
    except OSError:
        return "?"


__all__ = ["LocalFolderSource", "change_token"]
