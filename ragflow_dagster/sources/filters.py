"""Which files a sync takes: every filter of the legacy uploader, plus include globs.

Filters come in two kinds:

* **cheap** ones decide from the path, size and modification time only: extensions, include /
  exclude globs, excluded directory names, hidden files and folders, maximum depth, size and time
  bounds. The local walk applies the directory ones *while walking* (an excluded directory is never
  entered) and the rest before anything is read.
* **content** ones read the file: MIME type (python-magic on the first ``sniff_bytes``), minimum
  text ratio (on the same bytes) and content patterns (read until one is found). They run only on
  files that passed the cheap ones, and files the caller already knows unchanged are not re-read.

Example:
    >>> from datetime import datetime
    >>> f = FileFilters(extensions=["pdf", ".MD"], exclude=["~$*"], exclude_dirs=["node_modules"],
    ...                 max_size=50_000_000, modified_after=datetime(2024, 1, 1))
    >>> f.check_path("docs/Readme.md"), f.check_path("docs/~$Readme.md").detail
    (None, 'exclude pattern ~$*')
"""

from __future__ import annotations

import codecs
import fnmatch
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO

from ragflow_dagster.sources.base import SkippedEntry, SourceEntry

FileCheck = Callable[[str, str, int, float], "tuple[str, str] | None"]
"""``(relative_path, name, size, mtime) -> (reason, detail)`` or ``None`` when the file passes
(size ``-1`` / mtime NaN: unknown, not checked)."""

_GLOB_CHARS = frozenset("*?[")
_NON_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]")
_CONTENT_BLOCK = 256 * 1024
_NAN = float("nan")


def _tuple(value: Iterable[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _utc(value: datetime | str | None, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{name}: not an ISO date/time: {value!r}") from exc
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime or an ISO string, not {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _glob_variants(pattern: str) -> list[str]:
    """``a/**/b`` also matches ``a/b``: expand each ``**/`` into "kept" and "dropped"."""
    parts = pattern.split("**/")
    variants = [parts[0]]
    for part in parts[1:]:
        variants = [v + "**/" + part for v in variants] + [v + part for v in variants]
    return variants


def compile_globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching a whole relative path against any of ``patterns``.

    fnmatch semantics (case-sensitive, ``*`` also crosses ``/``), plus ``**/`` matching zero or
    more directories and a leading ``/`` anchoring nothing (paths are relative already).

    Example:
        >>> bool(compile_globs(["docs/**/*.md"]).match("docs/a.md"))
        True
    """
    if not patterns:
        return None
    regexes: list[str] = []
    for pattern in patterns:
        for variant in _glob_variants(pattern.lstrip("/")):
            regexes.append(fnmatch.translate(variant))
    return re.compile("|".join(regexes))


def _first_match(patterns: Sequence[str], *texts: str) -> str:
    for pattern in patterns:
        rx = compile_globs([pattern])
        if rx is not None and any(rx.match(t) for t in texts):
            return pattern
    return "?"


@dataclass(frozen=True)
class FileFilters:
    """The filters of a source; all optional, combined with AND.

    Attributes:
        extensions: Allowed extensions (``"pdf"``, ``".PDF"`` and ``"tar.gz"`` all work; compared
            case-insensitively with the end of the file name). ``None`` = any.
        include: Globs on the relative path; when given, a file must match one. ``*`` crosses
            ``/`` (fnmatch), ``**/`` also matches no directory: ``docs/**/*.md``.
        exclude: Globs that reject a file when they match its relative path *or* its base name
            (like the legacy ``--exclude-patterns``): ``*.tmp``, ``~$*``, ``drafts/*``.
        exclude_dirs: Directory names (or globs on a directory name) never entered, at any depth.
        min_size: Smallest size in bytes (inclusive).
        max_size: Largest size in bytes (inclusive); larger files are skipped as ``too_large``.
        modified_after: Keep files modified at or after this time (naive = UTC; ISO strings work).
        modified_before: Keep files modified at or before this time.
        max_depth: Deepest level kept: 1 = only files directly in the root (like
            ``find -maxdepth 1``); deeper directories are not entered.
        include_hidden: Take files and folders whose name starts with ``.`` (off by default).
        mime_types: MIME type prefixes (``"text/"``, ``"application/pdf"``), detected with
            python-magic from the first ``sniff_bytes``.
        content_patterns: Keep a file only when its text contains one of these substrings
            (decoded with ``encoding``, undecodable bytes ignored).
        min_text_ratio: Smallest share (0..1) of printable characters in the first ``sniff_bytes``
            decoded with ``encoding`` (an empty file counts as text).
        encoding: Text encoding of the content filters.
        sniff_bytes: How much the MIME and text-ratio checks read.
        content_max_bytes: How far content patterns are searched (``None`` = whole file; the
            search stops at the first hit).

    Example:
        >>> f = FileFilters(extensions=["txt"], include_hidden=False)
        >>> f.check_path(".git/config").reason, f.check_path("notes/a.txt") is None
        ('filtered', True)
    """

    extensions: Sequence[str] | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    exclude_dirs: Sequence[str] = ()
    min_size: int | None = None
    max_size: int | None = None
    modified_after: datetime | str | None = None
    modified_before: datetime | str | None = None
    max_depth: int | None = None
    include_hidden: bool = False
    mime_types: Sequence[str] = ()
    content_patterns: Sequence[str] = ()
    min_text_ratio: float | None = None
    encoding: str = "utf-8"
    sniff_bytes: int = 8192
    content_max_bytes: int | None = None
    _compiled: _Compiled = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.extensions is not None:
            exts = []
            for ext in _tuple(self.extensions):
                ext = ext.strip().lower()
                if not ext.lstrip("."):
                    raise ValueError(f"empty extension in {self.extensions!r}")
                exts.append("." + ext.lstrip("."))
            put("extensions", tuple(exts))
        for name in ("include", "exclude", "exclude_dirs", "mime_types", "content_patterns"):
            put(name, _tuple(getattr(self, name)))
        if any(not p for p in self.content_patterns):
            raise ValueError("content_patterns must not contain an empty pattern")
        put("modified_after", _utc(self.modified_after, "modified_after"))
        put("modified_before", _utc(self.modified_before, "modified_before"))
        for name in ("min_size", "max_size", "max_depth", "content_max_bytes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.max_depth == 0:
            raise ValueError("max_depth must be at least 1 (1 = files directly in the root)")
        if (
            self.min_size is not None
            and self.max_size is not None
            and self.min_size > self.max_size
        ):
            raise ValueError(f"min_size {self.min_size} > max_size {self.max_size}")
        if self.min_text_ratio is not None and not 0.0 <= self.min_text_ratio <= 1.0:
            raise ValueError(f"min_text_ratio must be within 0..1, got {self.min_text_ratio}")
        if not isinstance(self.sniff_bytes, int) or self.sniff_bytes <= 0:
            raise ValueError(f"sniff_bytes must be a positive int, got {self.sniff_bytes!r}")
        codecs.lookup(self.encoding)  # LookupError names an unknown encoding
        put("_compiled", _Compiled(self))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_compiled", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_compiled", _Compiled(self))

    # -- properties ------------------------------------------------------------------------
    @property
    def is_cheap_only(self) -> bool:
        """True when no filter needs to read file content."""
        return not (self.mime_types or self.content_patterns or self.min_text_ratio is not None)

    # -- cheap checks ------------------------------------------------------------------------
    def check_path(
        self, path: str, *, size: int | None = None, modified: float | None = None
    ) -> SkippedEntry | None:
        """Apply every cheap filter to a relative path (and size / mtime when given).

        Checks the directory part too (hidden folders, excluded directory names, depth), so it
        suits flat listings such as S3.

        Example:
            >>> FileFilters(max_size=10).check_path("a.txt", size=11).reason
            'too_large'
        """
        c = self._compiled
        why = c.path_check(path)
        if why is None and c.file_check is not None:
            name = path.rpartition("/")[2]
            mtime = _NAN if modified is None else modified  # NaN passes both time bounds
            why = c.file_check(path, name, -1 if size is None else size, mtime)
        return None if why is None else SkippedEntry(path, why[0], why[1])

    def check_entry(self, entry: SourceEntry) -> SkippedEntry | None:
        """Apply every cheap filter to a listed entry; ``None`` when it passes."""
        return self.check_path(entry.path, size=entry.size, modified=entry.modified)

    # -- content checks ------------------------------------------------------------------------
    def check_content(
        self, path: str, reader: BinaryIO, *, detect_mime: bool = False
    ) -> tuple[SkippedEntry | None, str | None]:
        """Apply the content filters, reading from ``reader`` only as much as they need.

        Reads the first ``sniff_bytes`` for the MIME type and text ratio, then (for content
        patterns) further blocks until a pattern is found, the end, or ``content_max_bytes``.
        Wrap the reader in a :class:`~ragflow_dagster.sources.hashing.HashingReader` to hash
        the same bytes.

        Args:
            path: Relative path (for the skipped entry).
            reader: Binary reader positioned at the start of the content.
            detect_mime: Detect the MIME type even when no MIME filter asks for it.

        Returns:
            ``(skipped, mime)``: ``skipped`` is ``None`` when the file passes; ``mime`` is the
            detected type, or ``None`` when it was not needed.

        Example:
            >>> import io
            >>> f = FileFilters(content_patterns=["invoice"])
            >>> f.check_content("a.txt", io.BytesIO(b"an invoice"))
            (None, None)
        """
        want_mime = bool(self.mime_types) or detect_mime
        mime: str | None = None
        head = b""
        if want_mime or self.min_text_ratio is not None or self.content_patterns:
            head = read_up_to(reader, self.sniff_bytes)
        if want_mime:
            mime = sniff_mime(head)
            if self.mime_types and not mime.startswith(tuple(self.mime_types)):
                wanted = ", ".join(self.mime_types)
                return SkippedEntry(path, "filtered", f"mime {mime} not in {wanted}"), mime
        if self.min_text_ratio is not None:
            ratio = text_ratio(head, self.encoding, truncated=len(head) >= self.sniff_bytes)
            if ratio < self.min_text_ratio:
                detail = f"text ratio {ratio:.2f} < {self.min_text_ratio}"
                return SkippedEntry(path, "filtered", detail), mime
        if self.content_patterns and not self._find_patterns(head, reader):
            limit = self.content_max_bytes
            where = "" if limit is None else f" in the first {limit} bytes"
            return SkippedEntry(path, "filtered", f"no content pattern found{where}"), mime
        return None, mime

    def _find_patterns(self, head: bytes, reader: BinaryIO) -> bool:
        rx = self._compiled.content_re
        assert rx is not None
        keep = self._compiled.content_overlap
        limit = self.content_max_bytes
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="ignore")
        seen = 0
        tail = ""
        block = head
        while True:
            if limit is not None and seen + len(block) > limit:
                block = block[: max(limit - seen, 0)]
            seen += len(block)
            final = not block or (limit is not None and seen >= limit)
            try:
                text = tail + decoder.decode(block, final=final)
            except UnicodeError:  # e.g. UTF-16 without a BOM: not text in this encoding
                return False
            if rx.search(text):
                return True
            if final:
                return False
            tail = text[-keep:] if keep else ""
            block = reader.read(_CONTENT_BLOCK) or b""


class _Compiled:
    """Pre-compiled form of a :class:`FileFilters` (built once, used per entry)."""

    __slots__ = (
        "content_overlap",
        "content_re",
        "dir_check",
        "exclude_dir_names",
        "exclude_dir_re",
        "file_check",
        "include_hidden",
        "max_depth",
        "path_check",
    )

    def __init__(self, f: FileFilters) -> None:
        self.include_hidden = f.include_hidden
        self.max_depth = f.max_depth
        plain = frozenset(d for d in f.exclude_dirs if not (_GLOB_CHARS & set(d)))
        globbed = [d for d in f.exclude_dirs if _GLOB_CHARS & set(d)]
        self.exclude_dir_names = plain
        self.exclude_dir_re = compile_globs(globbed)
        self.dir_check = self._make_dir_check()
        self.file_check = self._make_file_check(f)
        self.path_check = self._make_path_check()
        if f.content_patterns:
            self.content_re: re.Pattern[str] | None = re.compile(
                "|".join(re.escape(p) for p in f.content_patterns)
            )
            self.content_overlap = max(len(p) for p in f.content_patterns) - 1
        else:
            self.content_re = None
            self.content_overlap = 0

    def _make_dir_check(self) -> Callable[[str, int], tuple[str, str] | None]:
        hidden_ok = self.include_hidden
        names = self.exclude_dir_names
        rx = self.exclude_dir_re
        max_depth = self.max_depth

        def dir_check(name: str, depth: int) -> tuple[str, str] | None:
            if not hidden_ok and name[:1] == ".":
                return ("filtered", "hidden directory")
            if name in names or (rx is not None and rx.match(name)):
                return ("filtered", "excluded directory")
            if max_depth is not None and depth >= max_depth:
                return ("filtered", f"deeper than max_depth {max_depth}")
            return None

        return dir_check

    def _make_path_check(self) -> Callable[[str], tuple[str, str] | None]:
        """Hidden, depth and directory-name checks on a whole relative path (flat listings)."""
        hidden_ok = self.include_hidden
        max_depth = self.max_depth
        dir_check = self.dir_check
        check_dirs = bool(self.exclude_dir_names or self.exclude_dir_re is not None)

        def path_check(path: str) -> tuple[str, str] | None:
            if not hidden_ok and (path[:1] == "." or "/." in path):
                name = path.rpartition("/")[2]
                return ("filtered", "hidden file" if name[:1] == "." else "hidden directory")
            if max_depth is not None and path.count("/") + 1 > max_depth:
                return ("filtered", f"deeper than max_depth {max_depth}")
            if check_dirs and "/" in path:
                parts = path.split("/")[:-1]
                for name in parts:
                    why = dir_check(name, -1)
                    if why is not None:
                        return why
            return None

        return path_check

    @staticmethod
    def _make_file_check(f: FileFilters) -> FileCheck | None:
        exts = tuple(f.extensions) if f.extensions is not None else None
        inc = compile_globs(f.include)
        exc = compile_globs(f.exclude)
        min_size = f.min_size
        max_size = f.max_size
        after = f.modified_after.timestamp() if isinstance(f.modified_after, datetime) else None
        before = f.modified_before.timestamp() if isinstance(f.modified_before, datetime) else None
        if (
            exts is None
            and inc is None
            and exc is None
            and min_size is None
            and max_size is None
            and after is None
            and before is None
        ):
            return None
        exclude = f.exclude

        def file_check(path: str, name: str, size: int, mtime: float) -> tuple[str, str] | None:
            if exts is not None and not name.lower().endswith(exts):
                return ("filtered", "extension not allowed")
            if inc is not None and not inc.match(path):
                return ("filtered", "matches no include pattern")
            if exc is not None and (exc.match(path) or exc.match(name)):
                return ("filtered", f"exclude pattern {_first_match(exclude, path, name)}")
            if size >= 0:
                if min_size is not None and size < min_size:
                    return ("filtered", f"smaller than min_size {min_size}")
                if max_size is not None and size > max_size:
                    return ("too_large", f"{size} bytes > max_size {max_size}")
            if after is not None and mtime < after:
                return ("filtered", "modified before modified_after")
            if before is not None and mtime > before:
                return ("filtered", "modified after modified_before")
            return None

        return file_check


# -- content helpers ----------------------------------------------------------------------------

_magic_local = threading.local()


def sniff_mime(data: bytes) -> str:
    """MIME type of content from its first bytes (python-magic; one libmagic handle per thread).

    Example:
        >>> sniff_mime(b"%PDF-1.7\\n")
        'application/pdf'
    """
    detector = getattr(_magic_local, "magic", None)
    if detector is None:
        import magic

        detector = _magic_local.magic = magic.Magic(mime=True)
    try:
        return str(detector.from_buffer(data))
    except Exception:  # libmagic failures must not break a listing
        return "application/octet-stream"


def text_ratio(data: bytes, encoding: str = "utf-8", *, truncated: bool = False) -> float:
    """Share of printable characters (plus tab, newlines, form feed) in ``data`` decoded.

    Undecodable bytes count as non-text. ``truncated`` says ``data`` is a prefix (a character cut
    at its end is then not counted). Empty content counts as text (1.0).

    Example:
        >>> text_ratio(b"hello\\x00\\x00\\x00")
        0.625
    """
    if not data:
        return 1.0
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    try:
        text = decoder.decode(data, final=not truncated)
    except UnicodeError:  # e.g. UTF-16 without a BOM
        return 0.0
    if not text:
        return 0.0
    return 1.0 - len(_NON_TEXT.findall(text)) / len(text)


def read_up_to(reader: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes (fewer only at the end), looping over short reads."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        data = reader.read(remaining)
        if not data:
            break
        chunks.append(data)
        remaining -= len(data)
    return b"".join(chunks)


__all__ = [
    "FileCheck",
    "FileFilters",
    "compile_globs",
    "read_up_to",
    "sniff_mime",
    "text_ratio",
]
