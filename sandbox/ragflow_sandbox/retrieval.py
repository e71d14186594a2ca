"""Keyword retrieval (BM25) answering in RAGFlow's ``POST /retrieval`` shape.

RAGFlow blends a full-text score with an embedding similarity. The sandbox has no
embeddings, so it blends two lexical scores in the same way:

* ``term_similarity``: the IDF-weighted share of the question's terms found in the chunk;
* ``vector_similarity``: cosine similarity of the question's and the chunk's term vectors;
* ``similarity = (1 - w) * term_similarity + w * vector_similarity`` with
  ``w = vector_similarity_weight``.

Candidates are the chunks that share at least one term with the question, ranked by
BM25 (k1=1.2, b=0.75); ``similarity_threshold`` drops the weak ones and the rest is ordered by
``similarity`` (BM25 breaks ties) and paged. As on RAGFlow with Elasticsearch, ``top_k`` only
bounds the vector candidates, so it never removes a full-text match.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .store import Store

_TOKEN_RE = re.compile(r"[a-z0-9]+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_STOP_TEXT = (
    "a an and are as at be but by for from has have how i in is it its of on or that the "
    "this to was were what when where which who why will with you your"
)
STOPWORDS = frozenset(_STOP_TEXT.split())
K1 = 1.2
B = 0.75


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (CJK characters one by one).

    Example:
        >>> tokenize("Hello, RAGFlow world!")
        ['hello', 'ragflow', 'world']
    """
    return _TOKEN_RE.findall(text.lower())


@dataclass
class _Entry:
    chunk: dict[str, Any]
    tf: Counter[str]
    length: int
    norm: float


@dataclass
class _Index:
    version: int
    entries: list[_Entry] = field(default_factory=list)
    df: Counter[str] = field(default_factory=Counter)
    total_length: int = 0


class Retriever:
    """Per-dataset in-memory term index, rebuilt lazily when the dataset's chunks change.

    Args:
        store: The sandbox store the chunks come from.

    Example:
        >>> import tempfile
        >>> Retriever(Store(tempfile.mkdtemp())).search("x", [], page=1, page_size=10)["total"]
        0
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.Lock()

    def _index(self, kb_id: str) -> _Index:
        version = self.store.version(kb_id, "chunks")
        index = self._indexes.get(kb_id)
        if index is not None and index.version == version:
            return index
        index = _Index(version)
        for chunk in self.store.chunks_of_datasets([kb_id]):
            text = " ".join(
                [
                    chunk.get("content") or "",
                    " ".join(chunk.get("important_kwd") or []),
                    " ".join(chunk.get("question_kwd") or []),
                ]
            )
            tf = Counter(tokenize(text))
            entry = _Entry(
                chunk, tf, sum(tf.values()), math.sqrt(sum(v * v for v in tf.values())) or 1.0
            )
            index.entries.append(entry)
            index.df.update(tf.keys())
            index.total_length += entry.length
        with self._lock:
            self._indexes[kb_id] = index
        return index

    def search(
        self,
        question: str,
        kb_ids: list[str],
        *,
        page: int,
        page_size: int,
        doc_ids: list[str] | None = None,
        similarity_threshold: float = 0.2,
        vector_similarity_weight: float = 0.3,
        top_k: int = 1024,
        highlight: bool = False,
    ) -> dict[str, Any]:
        """Rank the chunks of ``kb_ids`` for ``question``.

        Returns:
            ``{"total", "chunks", "doc_aggs"}`` with chunk keys as RAGFlow's retriever emits
            them (``chunk_id``, ``content_with_weight``, ``doc_id``, ...) before renaming.
        """
        terms = [t for t in tokenize(question) if t not in STOPWORDS] or tokenize(question)
        if not terms:
            return {"total": 0, "chunks": [], "doc_aggs": []}
        indexes = [self._index(k) for k in kb_ids]
        n_docs = sum(len(i.entries) for i in indexes)
        if n_docs == 0:
            return {"total": 0, "chunks": [], "doc_aggs": []}
        avgdl = (sum(i.total_length for i in indexes) / n_docs) or 1.0
        vector_similarity_weight = min(max(vector_similarity_weight, 0.0), 1.0)
        q_tf = Counter(terms)
        idf = {}
        for term in q_tf:
            df = sum(i.df.get(term, 0) for i in indexes)
            idf[term] = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        idf_total = sum(idf[t] for t in q_tf) or 1.0
        q_norm = math.sqrt(sum(v * v for v in q_tf.values())) or 1.0
        wanted_docs = set(doc_ids) if doc_ids else None

        scored: list[tuple[float, float, float, float, _Entry]] = []
        for index in indexes:
            for entry in index.entries:
                chunk = entry.chunk
                if chunk.get("available_int", 1) == 0:
                    continue
                if wanted_docs is not None and chunk["doc_id"] not in wanted_docs:
                    continue
                bm25 = 0.0
                matched_idf = 0.0
                dot = 0
                for term, q_count in q_tf.items():
                    tf = entry.tf.get(term, 0)
                    if not tf:
                        continue
                    matched_idf += idf[term]
                    dot += tf * q_count
                    bm25 += (
                        idf[term] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * entry.length / avgdl))
                    )
                if bm25 <= 0:
                    continue
                term_sim = matched_idf / idf_total
                vec_sim = dot / (entry.norm * q_norm)
                sim = (1 - vector_similarity_weight) * term_sim + vector_similarity_weight * vec_sim
                scored.append((bm25, sim, term_sim, vec_sim, entry))

        # Like RAGFlow on Elasticsearch, ``top_k`` caps the vector (KNN) candidates only; every
        # full-text match stays a candidate. The sandbox's "vector" leg is lexical, so its top_k
        # candidates are always full-text matches as well: top_k never drops a match here.
        threshold = 0.0 if vector_similarity_weight <= 0 else similarity_threshold
        kept = [s for s in scored if s[1] >= threshold]
        kept.sort(key=lambda s: (s[1], s[0]), reverse=True)

        aggs: dict[str, dict[str, Any]] = {}
        for _, _, _, _, entry in kept:
            name = entry.chunk.get("docnm_kwd") or ""
            agg = aggs.setdefault(name, {"doc_id": entry.chunk["doc_id"], "count": 0})
            agg["count"] += 1
        begin = (max(page, 1) - 1) * page_size
        chunks = []
        for _, sim, term_sim, vec_sim, entry in kept[begin : begin + page_size]:
            chunk = entry.chunk
            item = {
                "chunk_id": chunk["id"],
                "content_ltks": " ".join(tokenize(chunk.get("content") or "")),
                "content_with_weight": chunk.get("content") or "",
                "doc_id": chunk["doc_id"],
                "docnm_kwd": chunk.get("docnm_kwd") or "",
                "kb_id": chunk["kb_id"],
                "important_kwd": chunk.get("important_kwd") or [],
                "tag_kwd": chunk.get("tag_kwd") or [],
                "image_id": chunk.get("img_id") or "",
                "similarity": sim,
                "vector_similarity": vec_sim,
                "term_similarity": term_sim,
                "positions": chunk.get("position_int") or [],
                "doc_type_kwd": chunk.get("doc_type_kwd") or "",
                "mom_id": "",
                "row_id": None,
            }
            if highlight:
                item["highlight"] = highlight_text(item["content_with_weight"], set(q_tf))
            chunks.append(item)
        doc_aggs = [
            {"doc_name": name, "doc_id": agg["doc_id"], "count": agg["count"]}
            for name, agg in sorted(aggs.items(), key=lambda kv: -kv[1]["count"])
        ]
        return {"total": len(kept), "chunks": chunks, "doc_aggs": doc_aggs}


def highlight_text(text: str, terms: set[str]) -> str:
    """Wrap the question's terms in ``<em>`` tags, as Elasticsearch highlighting does."""
    if not terms:
        return text

    def repl(match: re.Match[str]) -> str:
        word = match.group(0)
        return f"<em>{word}</em>" if word.lower() in terms else word

    return re.sub(
        r"[A-Za-z0-9_]+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]", repl, text
    )


def keyword_match(text: str, question: str) -> bool:
    """Whether a chunk matches a chunk-list ``keywords`` filter (30% of the terms, like ES)."""
    terms = set(tokenize(question)) - STOPWORDS or set(tokenize(question))
    if not terms:
        return True
    words = set(tokenize(text))
    needed = max(1, math.ceil(len(terms) * 0.3))
    return len(terms & words) >= needed
