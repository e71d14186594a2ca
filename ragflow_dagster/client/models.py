"""Typed, immutable records for what the RAGFlow API returns.

Every record is a frozen dataclass built with ``from_api(dict)``. Field names are normalised
across server versions (``kb_id``/``knowledgebase_id`` -> ``dataset_id``, ``parser_id`` ->
``chunk_method``, numeric ``run`` -> text, ...). Members the record does not know are kept in
``extra``, so a newer server adds fields without breaking anything.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from sys import intern
from typing import Any

from ragflow_dagster.client.shared import EMPTY, Shared
from ragflow_dagster.drafts import draft_class

__all__ = [
    "RUN_STATES",
    "Chunk",
    "Dataset",
    "DocAggregate",
    "Document",
    "IndexTask",
    "RetrievalResult",
    "normalize_run",
]

RUN_STATES = ("UNSTART", "RUNNING", "CANCEL", "DONE", "FAIL")
"""The text forms of a document's parse state, as today's server shows them."""

_RUN_DIGITS = {"0": "UNSTART", "1": "RUNNING", "2": "CANCEL", "3": "DONE", "4": "FAIL"}
# "5" is SCHEDULE: today's server shows it as UNSTART.
_RUN_DIGITS["5"] = "UNSTART"
_RUN_FAST: dict[Any, str] = {
    **_RUN_DIGITS,
    **{int(k): v for k, v in _RUN_DIGITS.items()},
    **{s: s for s in RUN_STATES},
}
"""The usual values of ``run`` and their text forms (the one object for each)."""


def normalize_run(value: Any) -> str:
    """Return the text form (``UNSTART|RUNNING|CANCEL|DONE|FAIL``) of a run state.

    Example:
        >>> normalize_run("3"), normalize_run(1), normalize_run("done"), normalize_run(None)
        ('DONE', 'RUNNING', 'DONE', 'UNSTART')
    """
    try:
        fast = _RUN_FAST.get(value)
    except TypeError:  # unhashable
        fast = None
    if fast is not None and type(value) is not bool:
        return fast
    if value is None or value == "":
        return "UNSTART"
    text = str(value).strip()
    if text in _RUN_DIGITS:
        return _RUN_DIGITS[text]
    upper = text.upper()
    if upper == "SCHEDULE":
        return "UNSTART"
    return _RUN_FAST.get(upper, upper)


def _int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def _float(value: Any, default: float = 0.0) -> float:
    if type(value) is float:
        return value
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _str(value: Any, default: str = "") -> str:
    if type(value) is str:
        return value
    return default if value is None else str(value)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _first(raw: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in raw and raw[key] is not None:
            return raw[key]
    return None


def _extra(raw: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in known}


@dataclass(frozen=True)
class Dataset:
    """A RAGFlow dataset (knowledge base).

    Example:
        >>> ds = Dataset.from_api({"id": "d1", "name": "docs", "chunk_method": "naive",
        ...                        "doc_num": 2, "language": "English"})
        >>> ds.document_count, ds.extra["language"]
        (2, 'English')
    """

    id: str
    name: str
    chunk_method: str = "naive"
    parser_config: dict[str, Any] = field(default_factory=dict)
    embedding_model: str = ""
    document_count: int = 0
    chunk_count: int = 0
    permission: str = "me"
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = {
        "id",
        "name",
        "chunk_method",
        "parser_id",
        "parse_method",
        "parser_config",
        "embedding_model",
        "embd_id",
        "document_count",
        "doc_num",
        "chunk_count",
        "chunk_num",
        "permission",
        "description",
    }

    def __hash__(self) -> int:
        return hash(("Dataset", self.id))

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Dataset:
        """Build a dataset from one item of the API's ``data``."""
        return cls(
            id=_str(raw.get("id")),
            name=_str(raw.get("name")),
            chunk_method=_str(_first(raw, "chunk_method", "parser_id", "parse_method"), "naive"),
            parser_config=_dict(raw.get("parser_config")),
            embedding_model=_str(_first(raw, "embedding_model", "embd_id")),
            document_count=_int(_first(raw, "document_count", "doc_num")),
            chunk_count=_int(_first(raw, "chunk_count", "chunk_num")),
            permission=_str(raw.get("permission"), "me"),
            description=raw.get("description"),
            extra=_extra(raw, cls._KNOWN),
        )


_DOC_KNOWN = frozenset(
    {
        "id",
        "dataset_id",
        "kb_id",
        "knowledgebase_id",
        "name",
        "size",
        "suffix",
        "type",
        "run",
        "progress",
        "progress_msg",
        "chunk_count",
        "chunk_num",
        "token_count",
        "token_num",
        "meta_fields",
        "create_time",
        "update_time",
        "status",
        "chunk_method",
        "parser_id",
        "parse_method",
        "parser_config",
        "process_begin_at",
        "process_duration",
        "process_duation",
    }
)


def _empty() -> Mapping[str, Any]:
    return EMPTY


@dataclass(frozen=True, slots=True)
class Document:
    """A document in a dataset.

    ``run`` is always the text form (``UNSTART|RUNNING|CANCEL|DONE|FAIL``); ``create_time`` and
    ``update_time`` are epoch milliseconds; ``progress_msg`` is one string (a list from the
    server is joined with newlines); ``status`` is ``"1"`` (enabled) or ``"0"``.

    Built by :meth:`from_api`, ``parser_config`` and ``extra`` are read-only
    (:class:`~ragflow_dagster.client.shared.FrozenDict`, a ``dict`` that refuses changes):
    the records of one listing share equal values (one ``parser_config`` object for all the
    documents parsed alike). ``meta_fields`` is the document's own plain dict.

    Example:
        >>> doc = Document.from_api({"id": "x", "name": "a.txt", "kb_id": "d", "run": "3",
        ...                          "chunk_num": 4, "thumbnail": ""})
        >>> doc.run, doc.dataset_id, doc.chunk_count, doc.suffix, doc.extra
        ('DONE', 'd', 4, 'txt', {'thumbnail': ''})
    """

    id: str
    dataset_id: str
    name: str
    size: int = 0
    suffix: str = ""
    type: str = ""
    run: str = "UNSTART"
    progress: float = 0.0
    progress_msg: str = ""
    chunk_count: int = 0
    token_count: int = 0
    meta_fields: dict[str, Any] = field(default_factory=dict)
    create_time: int = 0
    update_time: int = 0
    status: str = "1"
    chunk_method: str = ""
    parser_config: Mapping[str, Any] = field(default_factory=_empty)
    process_begin_at: str | None = None
    process_duration: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=_empty)

    _KNOWN = _DOC_KNOWN

    def __hash__(self) -> int:
        return hash(("Document", self.id))

    @property
    def enabled(self) -> bool:
        """Whether the document is available for retrieval (``status == "1"``)."""
        return self.status != "0"

    @property
    def finished(self) -> bool:
        """Whether parsing has ended one way or another (``DONE``, ``FAIL`` or ``CANCEL``)."""
        return self.run in ("DONE", "FAIL", "CANCEL")

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], *, shared: Shared | None = None) -> Document:
        """Build a document from one item of an upload, list or update reply.

        Args:
            raw: The item.
            shared: What the records of one listing share (equal ``parser_config``, ``extra``
                values and short strings become one object); a fresh one when omitted.

        Example:
            >>> shared = Shared()
            >>> a, b = (Document.from_api({"id": i, "name": f"{i}.txt",
            ...                            "parser_config": {"chunk_token_num": 128}},
            ...                           shared=shared) for i in "ab")
            >>> a.parser_config is b.parser_config, a.parser_config["chunk_token_num"]
            (True, 128)
        """
        if shared is None:
            shared = Shared()
        text = shared.text
        get = raw.get
        name = get("name")
        if type(name) is not str:
            name = _str(name)
        suffix = get("suffix")
        if not suffix:
            ext = posixpath.splitext(name)[1]
            suffix = ext[1:].lower() if ext else ""
        msg = get("progress_msg")
        if type(msg) is not str:
            msg = "\n".join(str(m) for m in msg) if isinstance(msg, (list, tuple)) else _str(msg)
        begin = get("process_begin_at")
        meta = get("meta_fields")
        meta = shared.strings(meta) if type(meta) is dict or isinstance(meta, Mapping) else {}
        config = get("parser_config")
        config = (
            shared.config(config) if type(config) is dict or isinstance(config, Mapping) else EMPTY
        )
        extra = shared.extra_keys(raw, _DOC_KNOWN)
        doc_id = get("id")
        dataset_id = get("dataset_id")
        if dataset_id is None:
            dataset_id = _first(raw, "kb_id", "knowledgebase_id")
        chunk_method = get("chunk_method")
        if chunk_method is None:
            chunk_method = _first(raw, "parser_id", "parse_method")
        chunks = get("chunk_count")
        if chunks is None:
            chunks = get("chunk_num")
        tokens = get("token_count")
        if tokens is None:
            tokens = get("token_num")
        duration = get("process_duration")
        if duration is None:
            duration = get("process_duation")
        doc = _DOC_DRAFT()
        doc.id = doc_id if type(doc_id) is str else _str(doc_id)
        doc.dataset_id = intern(_str(dataset_id))
        doc.name = name
        doc.size = _int(get("size"))
        doc.suffix = intern(_str(suffix))
        doc.type = intern(_str(get("type")))
        doc.run = normalize_run(get("run"))
        doc.progress = _float(get("progress"))
        doc.progress_msg = text(msg)
        doc.chunk_count = _int(chunks)
        doc.token_count = _int(tokens)
        doc.meta_fields = meta
        doc.create_time = _int(get("create_time"))
        doc.update_time = _int(get("update_time"))
        doc.status = intern(_str(get("status"), "1"))
        doc.chunk_method = intern(_str(chunk_method))
        doc.parser_config = config
        doc.process_begin_at = None if begin in (None, "") else text(str(begin))
        doc.process_duration = _float(duration)
        doc.extra = shared.values(raw, extra) if extra else EMPTY
        if cls is not Document:  # a subclass may have fields or checks of its own
            return cls(*(getattr(doc, name) for name in _DOC_FIELDS))
        doc.__class__ = Document
        return doc


_DOC_DRAFT = draft_class(Document)
"""The mutable twin of :class:`Document` (see :mod:`ragflow_dagster.drafts`) that
:meth:`Document.from_api` fills (a frozen dataclass's ``__init__`` costs three times as much)."""
_DOC_FIELDS = tuple(f.name for f in fields(Document))


@dataclass(frozen=True)
class Chunk:
    """A chunk, from a chunk listing, ``add_chunk`` or a retrieval.

    Retrieval-only members (``similarity``, ``vector_similarity``, ``term_similarity``,
    ``highlight``) are ``None`` elsewhere.

    Example:
        >>> c = Chunk.from_api({"id": "c", "content": "hi", "document_id": "d",
        ...                     "docnm_kwd": "a.txt", "important_keywords": ""})
        >>> c.document_name, c.important_keywords
        ('a.txt', [])
    """

    id: str
    content: str = ""
    document_id: str = ""
    dataset_id: str = ""
    document_name: str = ""
    important_keywords: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    available: bool = True
    positions: list[Any] = field(default_factory=list)
    image_id: str = ""
    similarity: float | None = None
    vector_similarity: float | None = None
    term_similarity: float | None = None
    highlight: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = {
        "id",
        "content",
        "content_with_weight",
        "document_id",
        "doc_id",
        "dataset_id",
        "kb_id",
        "docnm_kwd",
        "document_keyword",
        "document_name",
        "important_keywords",
        "important_kwd",
        "questions",
        "question_kwd",
        "available",
        "available_int",
        "positions",
        "image_id",
        "img_id",
        "similarity",
        "vector_similarity",
        "term_similarity",
        "highlight",
    }

    def __hash__(self) -> int:
        return hash(("Chunk", self.id))

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Chunk:
        """Build a chunk from one item of a chunk listing or a retrieval."""
        avail = _first(raw, "available", "available_int")
        if isinstance(avail, str):
            available = avail.strip().lower() not in ("0", "false", "no")
        else:
            available = True if avail is None else bool(avail)
        sim = raw.get("similarity")
        vsim = raw.get("vector_similarity")
        tsim = raw.get("term_similarity")
        hl = raw.get("highlight")
        return cls(
            id=_str(raw.get("id")),
            content=_str(_first(raw, "content", "content_with_weight")),
            document_id=_str(_first(raw, "document_id", "doc_id")),
            dataset_id=_str(_first(raw, "dataset_id", "kb_id")),
            document_name=_str(_first(raw, "docnm_kwd", "document_keyword", "document_name")),
            important_keywords=[
                str(k) for k in _list(_first(raw, "important_keywords", "important_kwd")) if k
            ],
            questions=[str(q) for q in _list(_first(raw, "questions", "question_kwd")) if q],
            available=available,
            positions=_list(raw.get("positions")),
            image_id=_str(_first(raw, "image_id", "img_id")),
            similarity=None if sim is None else _float(sim),
            vector_similarity=None if vsim is None else _float(vsim),
            term_similarity=None if tsim is None else _float(tsim),
            highlight=None if hl is None else str(hl),
            extra=_extra(raw, cls._KNOWN),
        )


@dataclass(frozen=True)
class DocAggregate:
    """How many retrieved chunks came from one document."""

    doc_id: str
    doc_name: str
    count: int

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> DocAggregate:
        """Build from ``{"doc_id", "doc_name", "count"}``."""
        return cls(
            doc_id=_str(raw.get("doc_id")),
            doc_name=_str(raw.get("doc_name")),
            count=_int(raw.get("count")),
        )


@dataclass(frozen=True)
class RetrievalResult:
    """The answer of a retrieval: one page of chunks, the total, per-document counts.

    Example:
        >>> r = RetrievalResult.from_api({
        ...     "total": 1, "chunks": [{"id": "c", "similarity": 0.5}],
        ...     "doc_aggs": [{"doc_id": "d", "doc_name": "a", "count": 1}]})
        >>> r.total, r.chunks[0].similarity, r.doc_aggs[0].count
        (1, 0.5, 1)
    """

    total: int
    chunks: list[Chunk] = field(default_factory=list)
    doc_aggs: list[DocAggregate] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any] | None) -> RetrievalResult:
        """Build from the ``data`` of ``POST /retrieval``."""
        raw = raw or {}
        aggs = raw.get("doc_aggs") or []
        if isinstance(aggs, Mapping):  # some versions key the aggregates by document name
            aggs = [
                {"doc_name": k, **(v if isinstance(v, Mapping) else {"count": v})}
                for k, v in aggs.items()
            ]
        chunks = [Chunk.from_api(c) for c in raw.get("chunks") or [] if isinstance(c, Mapping)]
        return cls(
            total=_int(raw.get("total"), len(chunks)),
            chunks=chunks,
            doc_aggs=[DocAggregate.from_api(a) for a in aggs if isinstance(a, Mapping)],
            extra=_extra(raw, {"total", "chunks", "doc_aggs"}),
        )


@dataclass(frozen=True)
class IndexTask:
    """A dataset-wide GraphRAG or RAPTOR task, as ``trace_graphrag``/``trace_raptor`` show it.

    ``progress`` is 0..1 while running, 1.0 when done and -1 on failure.

    Example:
        >>> t = IndexTask.from_api({"id": "t", "task_type": "raptor", "progress": 1.0})
        >>> t.done, t.failed
        (True, False)
    """

    id: str
    task_type: str = ""
    progress: float = 0.0
    progress_msg: str = ""
    begin_at: str | None = None
    process_duration: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Whether the task finished successfully."""
        return self.progress >= 1.0

    @property
    def failed(self) -> bool:
        """Whether the task failed (progress -1)."""
        return self.progress < 0

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> IndexTask:
        """Build from the ``data`` of a trace call."""
        begin = raw.get("begin_at")
        return cls(
            id=_str(raw.get("id")),
            task_type=_str(raw.get("task_type")),
            progress=_float(raw.get("progress")),
            progress_msg=_str(raw.get("progress_msg")),
            begin_at=None if begin in (None, "") else str(begin),
            process_duration=_float(raw.get("process_duration")),
            extra=_extra(
                raw, {"id", "task_type", "progress", "progress_msg", "begin_at", "process_duration"}
            ),
        )
