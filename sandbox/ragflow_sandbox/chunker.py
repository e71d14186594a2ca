"""Text extraction and chunking for the sandbox parser.

Real RAGFlow runs DeepDOC, OCR and LLMs; the sandbox keeps the observable contract:
text-like files are split by the dataset's ``parser_config`` (``delimiter``,
``chunk_token_num``) with RAGFlow's ``naive_merge`` rule, office files (docx, pptx, xlsx,
epub) are read from their XML, PDFs get a best-effort text extraction, and files it cannot
read fail with a message.

How to make a parse FAIL on purpose (deterministic, for tests):

* upload a ``.pdf`` whose bytes do not start with ``%PDF-`` (a corrupt PDF), or a ``.docx`` /
  ``.xlsx`` / ``.pptx`` that is not a zip archive;
* or put the marker ``RAGFLOW_SANDBOX_FAIL`` anywhere in the first 64 KiB of any file.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import html.parser
import io
import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from xml.etree import ElementTree

FAIL_MARKER = b"RAGFLOW_SANDBOX_FAIL"

_TEXT_SUFFIXES = {
    "txt",
    "md",
    "mdx",
    "csv",
    "json",
    "jsonl",
    "ldjson",
    "yml",
    "yaml",
    "ini",
    "py",
    "js",
    "java",
    "c",
    "cpp",
    "h",
    "php",
    "go",
    "ts",
    "sh",
    "cs",
    "kt",
    "sql",
}
_MARKUP_SUFFIXES = {"html", "htm", "xml"}

_WORD_RE = re.compile(
    r"[A-Za-z0-9_]+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\sA-Za-z0-9_]"
)
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


class ParseError(Exception):
    """The file cannot be parsed; the message ends up in ``progress_msg``."""


def count_tokens(text: str) -> int:
    """Approximate tiktoken's ``cl100k`` count: ~4 characters per token for words.

    Example:
        >>> count_tokens("hello world")
        2
    """
    total = 0
    for match in _WORD_RE.finditer(text):
        word = match.group(0)
        if len(word) == 1:
            total += 1
        elif word.isdigit():
            total += math.ceil(len(word) / 3)
        else:
            total += math.ceil(len(word) / 8)
    return total


# --- extraction -----------------------------------------------------------------------------------


class _HTMLText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "title"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_text(raw: str) -> str:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    return re.sub(r"\n\s*\n+", "\n", "".join(parser.parts)).strip()


def _decode(blob: bytes) -> str:
    for encoding in (
        ("utf-8-sig", "utf-16") if blob[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",)
    ):
        try:
            return blob.decode(encoding)
        except UnicodeDecodeError:
            continue
    for encoding in ("gb18030", "latin-1"):
        try:
            return blob.decode(encoding)
        except UnicodeDecodeError:
            continue
    return blob.decode("utf-8", errors="replace")


def _xml_texts(data: bytes, tag_suffixes: tuple[str, ...]) -> list[str]:
    root = ElementTree.fromstring(data)
    out = []
    for elem in root.iter():
        if elem.tag.rsplit("}", 1)[-1] in tag_suffixes and elem.text:
            out.append(elem.text)
    return out


def _ooxml_text(blob: bytes, suffix: str) -> str:
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile:
        raise ParseError(f"File is not a zip file: this {suffix} file is corrupted.") from None
    with archive:
        names = archive.namelist()
        try:
            if suffix == "docx":
                paragraphs = []
                root = ElementTree.fromstring(archive.read("word/document.xml"))
                for para in root.iter():
                    if para.tag.endswith("}p"):
                        texts = [t.text or "" for t in para.iter() if t.tag.endswith("}t")]
                        if any(texts):
                            paragraphs.append("".join(texts))
                return "\n".join(paragraphs)
            if suffix == "pptx":
                slides = sorted(
                    (n for n in names if re.match(r"ppt/slides/slide\d+\.xml$", n)),
                    key=lambda n: int(re.findall(r"\d+", n)[-1]),
                )
                return "\n".join(" ".join(_xml_texts(archive.read(s), ("t",))) for s in slides)
            if suffix == "xlsx":
                shared = (
                    _xml_texts(archive.read("xl/sharedStrings.xml"), ("t",))
                    if "xl/sharedStrings.xml" in names
                    else []
                )
                rows_out = []
                for sheet in sorted(
                    n for n in names if re.match(r"xl/worksheets/sheet\d+\.xml$", n)
                ):
                    root = ElementTree.fromstring(archive.read(sheet))
                    for row in root.iter():
                        if not row.tag.endswith("}row"):
                            continue
                        cells = []
                        for cell in row:
                            value = next((v.text for v in cell if v.tag.endswith("}v")), None)
                            inline = [t.text or "" for t in cell.iter() if t.tag.endswith("}t")]
                            if cell.get("t") == "s" and value is not None and value.isdigit():
                                idx = int(value)
                                cells.append(shared[idx] if idx < len(shared) else "")
                            elif inline:
                                cells.append("".join(inline))
                            elif value is not None:
                                cells.append(value)
                        if cells:
                            rows_out.append("\t".join(cells))
                return "\n".join(rows_out)
            if suffix == "epub":
                parts = [
                    _html_text(archive.read(n).decode("utf-8", errors="replace"))
                    for n in names
                    if n.endswith((".xhtml", ".html", ".htm"))
                ]
                return "\n".join(parts)
        except (KeyError, ElementTree.ParseError) as exc:
            raise ParseError(f"Can't read this {suffix} file: {exc}") from None
    return ""


_PDF_TEXT_RE = re.compile(rb"\((?:\\.|[^\\)])*\)\s*Tj|\[(?:[^\]]*)\]\s*TJ", re.S)
_PDF_STRING_RE = re.compile(rb"\((?:\\.|[^\\)])*\)", re.S)


def _pdf_unescape(raw: bytes) -> str:
    out = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == 0x5C and i + 1 < len(raw):
            nxt = raw[i + 1]
            mapping = {
                ord("n"): b"\n",
                ord("r"): b"\r",
                ord("t"): b"\t",
                ord("("): b"(",
                ord(")"): b")",
                0x5C: b"\\",
            }
            if nxt in mapping:
                out += mapping[nxt]
                i += 2
                continue
            octal = re.match(rb"[0-7]{1,3}", raw[i + 1 : i + 4])
            if octal:
                out.append(int(octal.group(0), 8) & 0xFF)
                i += 1 + len(octal.group(0))
                continue
            i += 1
            continue
        out.append(ch)
        i += 1
    return out.decode("latin-1")


def _pdf_text(blob: bytes) -> str:
    if not blob.lstrip()[:5] == b"%PDF-" and b"%PDF-" not in blob[:1024]:
        raise ParseError("No /Root object! - Is this really a PDF?")
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", blob, re.S)
    texts: list[str] = []
    for stream in streams:
        data = stream
        with contextlib.suppress(zlib.error):
            data = zlib.decompress(stream)
        for op in _PDF_TEXT_RE.findall(data):
            pieces = [_pdf_unescape(s[1:-1]) for s in _PDF_STRING_RE.findall(op)]
            texts.append("".join(pieces))
    if b"/Root" not in blob and not streams:
        raise ParseError("No /Root object! - Is this really a PDF?")
    return "\n".join(t for t in texts if t.strip())


def _strings(blob: bytes) -> str:
    runs = re.findall(rb"[\x20-\x7e\t]{4,}", blob)
    return "\n".join(r.decode("ascii") for r in runs)


def _eml_text(blob: bytes) -> str:
    msg = email.message_from_bytes(blob, policy=email.policy.default)
    parts = [
        f"Subject: {msg.get('subject', '')}",
        f"From: {msg.get('from', '')}",
        f"To: {msg.get('to', '')}",
    ]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            try:
                content = part.get_content()
            except (LookupError, ValueError):
                continue
            parts.append(_html_text(content) if part.get_content_subtype() == "html" else content)
    return "\n".join(p for p in parts if p)


def extract_text(name: str, blob: bytes, file_type: str) -> str:
    """Return the text of a document or raise :class:`ParseError`.

    Args:
        name: The document name (its suffix picks the reader).
        blob: The document bytes.
        file_type: RAGFlow's file type (``pdf``, ``doc``, ``visual``, ``aural``, ...).

    Example:
        >>> extract_text("a.html", b"<p>Hi</p>", "doc")
        'Hi'
    """
    if FAIL_MARKER in blob[:65536]:
        raise ParseError("sandbox: forced failure (RAGFLOW_SANDBOX_FAIL marker found)")
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if file_type in ("visual", "aural"):
        return name  # OCR / ASR are out of scope: the chunk carries the file name.
    if suffix == "pdf":
        return _pdf_text(blob)
    if suffix in ("docx", "pptx", "xlsx", "epub"):
        return _ooxml_text(blob, suffix)
    if suffix in _MARKUP_SUFFIXES:
        return _html_text(_decode(blob))
    if suffix == "eml":
        return _eml_text(blob)
    if suffix in _TEXT_SUFFIXES:
        return _decode(blob)
    if suffix == "rtf":
        text = _decode(blob)
        text = re.sub(r"\\[a-z]+-?\d* ?|[{}]", "", text)
        return text.strip()
    return _strings(blob)


# --- chunking -------------------------------------------------------------------------------------


def _delimiter_pattern(delimiter: str) -> re.Pattern[str] | None:
    multi = re.findall(r"`([^`]+)`", delimiter)
    singles = re.sub(r"`[^`]+`", "", delimiter)
    alternatives = sorted((re.escape(d) for d in multi), key=len, reverse=True)
    alternatives += [re.escape(ch) for ch in dict.fromkeys(singles)]
    if not alternatives:
        return None
    return re.compile(f"({'|'.join(alternatives)})")


def split_sections(text: str, delimiter: str) -> list[str]:
    """Cut text after every delimiter (delimiters stay with the preceding piece)."""
    pattern = _delimiter_pattern(delimiter or "\n")
    if pattern is None:
        return [text]
    pieces = pattern.split(text)
    sections: list[str] = []
    for i in range(0, len(pieces), 2):
        piece = pieces[i] + (pieces[i + 1] if i + 1 < len(pieces) else "")
        if piece.strip():
            sections.append(piece)
    return sections


def naive_merge(sections: list[str], chunk_token_num: int) -> list[str]:
    """RAGFlow's rule: append sections to a chunk until it exceeds ``chunk_token_num`` tokens.

    Example:
        >>> naive_merge(["a b\\n", "c d\\n", "e f\\n"], 3)
        ['a b\\nc d\\n', 'e f\\n']
    """
    chunks: list[str] = []
    sizes: list[int] = []
    for section in sections:
        n = count_tokens(section)
        if not chunks or sizes[-1] > chunk_token_num:
            chunks.append(section)
            sizes.append(n)
        else:
            chunks[-1] += section
            sizes[-1] += n
    return [c for c in chunks if c.strip()]


@dataclass(frozen=True)
class Piece:
    """One chunk produced by the parser."""

    content: str
    tokens: int


def chunk_document(
    name: str, blob: bytes, file_type: str, chunk_method: str, parser_config: dict
) -> list[Piece]:
    """Extract and chunk a document according to its chunk method and parser config.

    Raises:
        ParseError: When the file cannot be read.

    Example:
        >>> doc, config = b"one\\ntwo\\nthree\\n", {"chunk_token_num": 1}
        >>> [p.content for p in chunk_document("a.txt", doc, "doc", "naive", config)]
        ['one\\ntwo\\n', 'three\\n']
    """
    text = extract_text(name, blob, file_type)
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if chunk_method == "one":
        pieces = [text] if text.strip() else []
    elif chunk_method in ("qa", "table") and suffix in ("csv", "txt", "xlsx", "tsv"):
        lines = [line for line in text.splitlines() if line.strip()]
        if chunk_method == "qa":
            pieces = []
            for line in lines:
                parts = re.split(r"\t|,", line, maxsplit=1)
                if len(parts) == 2:
                    pieces.append(f"Question: {parts[0].strip()}\tAnswer: {parts[1].strip()}")
        else:
            header = lines[0] if lines else ""
            pieces = [f"{header}\n{row}" for row in lines[1:]] or lines
    elif suffix in ("json", "jsonl", "ldjson") and chunk_method == "naive":
        pieces = naive_merge(
            split_sections(_normalise_json(text), "\n"), _token_limit(parser_config)
        )
    else:
        delimiter = parser_config.get("delimiter") or "\n"
        pieces = naive_merge(split_sections(text, delimiter), _token_limit(parser_config))
    return [Piece(p, count_tokens(p)) for p in pieces if p.strip()]


def _token_limit(parser_config: dict) -> int:
    value = parser_config.get("chunk_token_num", 512)
    return value if isinstance(value, int) and value > 0 else 512


def _normalise_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, indent=1)
    except ValueError:
        return text
