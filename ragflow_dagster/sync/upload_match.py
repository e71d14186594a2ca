"""Which stored document came from which uploaded file (partial uploads)."""

from __future__ import annotations

from collections.abc import Sequence

from ragflow_dagster.client import Document
from ragflow_dagster.client.naming import decode_wire_name
from ragflow_dagster.sync.identity import matches_document_name, pending_upload_key


def align_partial(names: Sequence[str], uploaded: Sequence[Document]) -> list[Document | None]:
    """Match the stored documents of a partial upload to the files sent, in order.

    The server answers with the stored documents in request order, each under the name it
    decoded from the multipart body (``"``, CR and LF escaped on the wire; some servers keep
    the escapes) and possibly renamed ``name(k).ext``. Walking both lists in order and comparing
    decoded names matches every stored document to the file it came from.

    Example:
        >>> from ragflow_dagster.client import Document
        >>> docs = [Document.from_api({"id": "d2", "name": "b%22.rfd-pending.txt"})]
        >>> [d and d.id for d in align_partial(["a.rfd-pending.exe", 'b".rfd-pending.txt'], docs)]
        [None, 'd2']
    """
    aligned: list[Document | None] = []
    pending = list(uploaded)
    for name in names:
        doc = pending[0] if pending else None
        if doc is not None and _same_upload(doc.name, name):
            aligned.append(pending.pop(0))
        else:
            aligned.append(None)
    if pending:  # the order was not kept: fall back to matching by name anywhere
        aligned = []
        pool = list(uploaded)
        for name in names:
            hit = next((d for d in pool if _same_upload(d.name, name)), None)
            if hit is not None:
                pool.remove(hit)
            aligned.append(hit)
    return aligned


def _same_upload(stored: str, sent: str) -> bool:
    key = pending_upload_key(stored)
    if key is not None:
        return key == decode_wire_name(sent)
    plain = decode_wire_name(sent)
    return decode_wire_name(stored) == plain or matches_document_name(stored, plain)


__all__ = ["align_partial"]
