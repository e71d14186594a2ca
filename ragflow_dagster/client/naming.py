"""The server's naming rules in one place: accepted file types, name limits, how names travel.

RAGFlow decides a document's type from its file name (``api/utils/file_utils.py``
``filename_type``) and refuses every other name with code 500 "This type of file has not been
supported yet!" — inside a request that may carry other files, which then succeed. Knowing the
list lets a caller keep such files out of shared requests.

Example:
    >>> is_supported_name("notes.MD"), is_supported_name("tool.exe")
    (True, False)
    >>> decode_wire_name("say %22hi%22.txt")
    'say "hi".txt'
"""

from __future__ import annotations

import posixpath

NAME_LIMIT_BYTES = 255
"""RAGFlow's limit on a document name (``FILE_NAME_LEN_LIMIT``), in UTF-8 bytes."""

_DOCUMENTS = (
    "pdf msg eml doc docx ppt pptx yml xml htm json jsonl ldjson csv txt ini xls xlsx wps rtf hlp "
    "pages numbers key md mdx py js java c cpp h php go ts sh cs kt html sql epub"
)
_AUDIO = "wav flac ape alac wavpack wv mp3 aac ogg vorbis opus"
# images and video (the server matches "WMF" in upper case only, so .wmf is refused)
_VISUAL = (
    "jpg jpeg png tif gif bmp pcx tga exif fpx svg psd cdr pcd dxf ufo eps ai raw webp avif apng "
    "icon ico mpg mpeg avi rm rmvb mov wmv asf dat asx wvx mpe mpa mp4 mkv"
)
AUDIO_SUFFIXES: frozenset[str] = frozenset(_AUDIO.split())
"""Suffixes RAGFlow files as audio (their chunk method is always ``audio``)."""
VISUAL_SUFFIXES: frozenset[str] = frozenset(_VISUAL.split())
"""Suffixes RAGFlow files as images or video (their chunk method is always ``picture``)."""
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(f"{_DOCUMENTS} {_AUDIO} {_VISUAL}".split())
"""File name suffixes (lower case, without the dot) that RAGFlow v0.13-v0.27 accepts."""

_WIRE_ESCAPES = (("%22", '"'), ("%0D", "\r"), ("%0A", "\n"), ("%0d", "\r"), ("%0a", "\n"))


def name_suffix(name: str) -> str:
    """The lower-case extension of a document name, without the dot (``""`` when none).

    RAGFlow refuses a rename that changes it ("The extension of file can't be changed").

    Example:
        >>> name_suffix("a/b/Report.PDF"), name_suffix("README")
        ('pdf', '')
    """
    base = posixpath.basename(name.replace("\\", "/"))
    dot = base.rfind(".")
    return base[dot + 1 :].lower() if dot > 0 else ""


def is_supported_name(name: str) -> bool:
    """Whether RAGFlow accepts an upload under this name (by its extension).

    Example:
        >>> is_supported_name("a.wmf")
        False
    """
    return name_suffix(name) in SUPPORTED_SUFFIXES


def decode_wire_name(name: str) -> str:
    """A name as it was meant, from how a server may echo it back.

    Multipart file names travel with ``"``, CR and LF percent-escaped; RAGFlow decodes them,
    other servers keep the escapes. Comparing ``decode_wire_name`` of both sides matches either.

    Example:
        >>> decode_wire_name("a%0Ab.txt") == "a\\nb.txt"
        True
    """
    for escaped, plain in _WIRE_ESCAPES:
        name = name.replace(escaped, plain)
    return name


__all__ = [
    "AUDIO_SUFFIXES",
    "NAME_LIMIT_BYTES",
    "SUPPORTED_SUFFIXES",
    "VISUAL_SUFFIXES",
    "decode_wire_name",
    "is_supported_name",
    "name_suffix",
]
