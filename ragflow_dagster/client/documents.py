"""Documents of :class:`~ragflow_dagster.client.RAGFlowClient`: upload, get, download, update,
delete."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import requests

from ragflow_dagster.client.errors import (
    RAGFlowError,
    RAGFlowNotFoundError,
    RAGFlowOutcomeUnknownError,
    RAGFlowPartialUploadError,
    RAGFlowUnavailableError,
    RAGFlowUploadAmbiguousError,
)
from ragflow_dagster.client.models import Document
from ragflow_dagster.client.paging import Paging
from ragflow_dagster.client.params import batches, count_from, id_list, is_not_found
from ragflow_dagster.client.transport import API_PREFIX, MAX_IDS_PER_CALL, Reply
from ragflow_dagster.client.upload import MultipartBody, Stream, UploadFile, plan_batches

__all__ = ["BytesSink", "Documents"]


class BytesSink(Protocol):
    """Where :meth:`Documents.download_document` writes: anything with ``write(bytes)`` (a file
    opened ``"wb"``, ``io.BytesIO``, a sink that only hashes)."""

    def write(self, data: bytes, /) -> object: ...


class Documents(Paging):
    """Document calls on top of the document listings of :class:`Paging`."""

    def iter_upload_batches(
        self,
        files: Iterable[UploadFile],
        *,
        max_request_bytes: int | None = None,
        max_files: int | None = None,
    ) -> Iterator[list[UploadFile]]:
        """Group files, in order, into upload requests (size and count limits).

        Public so a caller can send batches concurrently itself. Nothing is opened or read;
        sizes come from ``UploadFile.size``, the file system or the stream position.

        Example:
            >>> import io
            >>> files = [UploadFile(f"n{i}.txt", io.BytesIO(b"x")) for i in range(25)]
            >>> [len(batch) for batch in client.iter_upload_batches(files, max_files=10)]
            [10, 10, 5]
        """
        return plan_batches(
            files,
            max_request_bytes=max_request_bytes or self.max_request_bytes,
            max_files=max_files or self.max_files_per_request,
        )

    def upload_documents(self, dataset_id: str, files: Iterable[UploadFile]) -> list[Document]:
        """Upload files into a dataset; return the new documents in input order (1:1).

        Bodies are streamed (see :class:`~ragflow_dagster.client.upload.MultipartBody`), several
        files per request, batched by ``max_request_bytes``/``max_files_per_request``. The
        server may rename a file whose name is taken (``notes(1).txt``): compare by position,
        not by name. Uploaded documents are not parsed: call :meth:`parse_documents`.

        Raises:
            RAGFlowPartialUploadError: Some files were stored, others not (``uploaded``,
                ``failed_names``); also when a later batch fails after earlier ones succeeded.
            RAGFlowUploadAmbiguousError: A request failed after it was fully sent; it was not
                resent (``file_names``; ``uploaded`` holds earlier batches' documents).
            OSError: A local source could not be opened or read (nothing of that request was
                stored).

        Example:
            >>> import io, os
            >>> path = os.path.join(tmp, "c.txt")
            >>> with open(path, "wb") as f:
            ...     _ = f.write(b"from a path")
            >>> docs = client.upload_documents(ds.id, [
            ...     UploadFile("c.txt", path),
            ...     UploadFile("d.txt", lambda: io.BytesIO(b"from a callable"), size=15),
            ... ])  # a callable could return s3.get_object(Bucket=b, Key=k)["Body"]
            >>> [(d.name, d.size, d.run) for d in docs]
            [('c.txt', 11, 'UNSTART'), ('d.txt', 15, 'UNSTART')]
        """
        file_list = list(files)
        batches = list(self.iter_upload_batches(file_list))
        results: list[Document] = []
        for index, batch in enumerate(batches):
            later = [f.name for b in batches[index + 1 :] for f in b]
            try:
                docs = self._upload_batch(dataset_id, batch)
            except RAGFlowUploadAmbiguousError as exc:
                exc.uploaded = results + exc.uploaded
                exc.not_sent = list(exc.not_sent) + later
                raise
            except RAGFlowPartialUploadError as exc:
                exc.uploaded = results + exc.uploaded
                exc.failed_names = list(exc.failed_names) + later
                raise
            except RAGFlowError as exc:
                if not results:
                    raise
                raise RAGFlowPartialUploadError(
                    f"{len(results)} file(s) uploaded, then a request failed: {exc.message}",
                    uploaded=results,
                    failed_names=[f.name for f in batch] + later,
                    code=exc.code,
                    http_status=exc.http_status,
                    method=exc.method,
                    route=exc.route,
                ) from exc
            results.extend(docs)
        return results

    def _upload_batch(self, dataset_id: str, batch: Sequence[UploadFile]) -> list[Document]:
        path = f"/datasets/{dataset_id}/documents"
        names = [f.name for f in batch]
        sizes = [f.resolved_size() for f in batch]
        starts: list[tuple[Stream, int]] = []  # the caller's streams and where they start
        rewindable = True
        for f in batch:
            stream = f.stream
            if stream is not None:
                try:
                    if stream.seekable():
                        starts.append((stream, stream.tell()))
                    else:
                        rewindable = False
                except (AttributeError, OSError, ValueError):
                    rewindable = False
        boundary = uuid.uuid4().hex
        first = [True]

        def factory() -> MultipartBody:
            if not first[0]:
                for stream, pos in starts:
                    stream.seek(pos)
            first[0] = False
            return MultipartBody(batch, boundary=boundary, sizes=sizes)

        try:
            reply = self._request(
                "POST",
                path,
                body_factory=factory,
                idempotent=False,
                can_resend=rewindable,
                timeout=max(self.upload_timeout, self.timeout),
            )
        except RAGFlowOutcomeUnknownError as exc:
            raise RAGFlowUploadAmbiguousError(
                f"upload of {len(batch)} file(s) may or may not have been stored: {exc.message}",
                file_names=names,
                code=exc.code,
                http_status=exc.http_status,
                method=exc.method,
                route=exc.route,
            ) from exc
        except RAGFlowError as exc:
            if exc.code == 500 and exc.http_status == 200:
                raise self._partial_upload(exc, names) from exc
            raise
        raw_docs = [d for d in (reply.data or []) if isinstance(d, Mapping)]
        docs = [Document.from_api(d) for d in raw_docs]
        if len(docs) != len(batch):
            failed = _unmatched(names, docs)
            raise RAGFlowPartialUploadError(
                f"server stored {len(docs)} of {len(batch)} file(s)",
                uploaded=docs,
                failed_names=failed,
                code=reply.body.get("code"),
                http_status=reply.status,
                method="POST",
                route=API_PREFIX + path,
            )
        return docs

    @staticmethod
    def _partial_upload(exc: RAGFlowError, names: Sequence[str]) -> RAGFlowPartialUploadError:
        data = exc.data if isinstance(exc.data, list) else []
        uploaded = [Document.from_api(d) for d in data if isinstance(d, Mapping)]
        lines = (exc.message or "").splitlines()
        failed = [n for n in names if any(line.startswith(f"{n}: ") for line in lines)]
        if len(failed) != len(names) - len(uploaded):
            failed = _unmatched(names, uploaded)
        return RAGFlowPartialUploadError(
            exc.message or "partial upload",
            uploaded=uploaded,
            failed_names=failed,
            code=exc.code,
            http_status=exc.http_status,
            method=exc.method,
            route=exc.route,
            data=exc.data,
        )

    def get_document(self, dataset_id: str, document_id: str) -> Document:
        """Return one document (with ``meta_fields``, ``run``, ``progress``...).

        Raises:
            RAGFlowNotFoundError: The dataset has no such document.

        Example:
            >>> client.get_document(ds.id, doc.id).run
            'DONE'
        """
        docs, _ = self.list_documents(dataset_id, id=document_id, page_size=1)
        for doc in docs:
            if doc.id == document_id:
                return doc
        raise RAGFlowNotFoundError(
            f"document {document_id} not found in dataset {dataset_id}",
            method="GET",
            route=f"{API_PREFIX}/datasets/{dataset_id}/documents",
        )

    def download_document(
        self, dataset_id: str, document_id: str, dest: str | os.PathLike[str] | BytesSink
    ) -> int:
        """Stream a document's original file to a path or a writable binary stream.

        A path is written through a temporary file in the same directory and renamed into
        place, so a failed download never leaves a partial file. Returns the bytes written.

        Example:
            >>> import os
            >>> client.download_document(ds.id, doc.id, os.path.join(tmp, "a.txt"))
            74
        """
        path = f"/datasets/{dataset_id}/documents/{document_id}"
        try:
            reply = self._request("GET", path, stream=True)
        except RAGFlowError as exc:
            if "file is empty" in (exc.message or "").lower():
                if isinstance(dest, (str, os.PathLike)):
                    with open(dest, "wb"):
                        pass
                return 0
            raise
        resp = reply.response
        if isinstance(dest, (str, os.PathLike)):
            target = os.fspath(dest)
            directory = os.path.dirname(os.path.abspath(target))
            fd, tmp = tempfile.mkstemp(prefix=".ragflow-dl-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as out:
                    written = self._copy_reply(reply, out, path)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            finally:
                resp.close()
            return written
        try:
            return self._copy_reply(reply, dest, path)
        finally:
            resp.close()

    def _copy_reply(self, reply: Reply, out: BytesSink, path: str) -> int:
        if "_content" in reply.body:
            data = reply.body["_content"]
            out.write(data)
            return len(data)
        resp = reply.response
        written = 0
        try:
            for chunk in resp.iter_content(chunk_size=1024 * 1024):
                if chunk:
                    out.write(chunk)
                    written += len(chunk)
        except requests.RequestException as exc:
            raise RAGFlowUnavailableError(
                self._redact(f"download interrupted after {written} bytes: {exc}"),
                method="GET",
                route=API_PREFIX + path,
            ) from exc
        expected = resp.headers.get("Content-Length")
        encoded = resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
        if expected is not None and not encoded and expected.isdigit() and int(expected) != written:
            raise RAGFlowUnavailableError(
                f"download truncated: {written} of {expected} bytes",
                method="GET",
                route=API_PREFIX + path,
            )
        return written

    # ------------------------------------------------------------------ documents: change
    def update_document(
        self,
        dataset_id: str,
        document_id: str,
        *,
        name: str | None = None,
        meta_fields: Mapping[str, Any] | None = None,
        chunk_method: str | None = None,
        parser_config: Mapping[str, Any] | None = None,
        enabled: bool | None = None,
        returning: bool = True,
    ) -> Document | None:
        """Change a document's name, metadata, chunk method, parser config or availability.

        Uses PATCH (v0.25+) and falls back to PUT on servers without it. ``meta_fields``
        replaces the document's metadata (values: str, int, float or lists of them). Returns the
        document as the server reports it (today's server leaves ``meta_fields`` out of its
        answer: the record then carries the ones sent), or ``None`` when the server answers
        without data (before v0.25) or ``returning`` is False (the answer is still checked for
        an error; no record is built, which is a sync's labelling of every upload). Changing
        ``chunk_method`` resets the document's parse.

        Example:
            >>> client.update_document(ds.id, doc.id, meta_fields={"path": "a/b.txt"}).meta_fields
            {'path': 'a/b.txt'}
        """
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if meta_fields is not None:
            body["meta_fields"] = dict(meta_fields)
        if chunk_method is not None:
            body["chunk_method"] = chunk_method
        if parser_config is not None:
            body["parser_config"] = dict(parser_config)
        if enabled is not None:
            body["enabled"] = 1 if enabled else 0
        if not body:
            raise ValueError("update_document needs at least one field to change")
        reply = self._update_with_fallback(
            "document", f"/datasets/{dataset_id}/documents/{document_id}", body
        )
        data = reply.data
        if not returning or not isinstance(data, Mapping) or not data.get("id"):
            return None
        raw = dict(data)
        if meta_fields is not None and "meta_fields" not in raw:
            raw["meta_fields"] = dict(meta_fields)
        return Document.from_api(raw)

    def delete_documents(self, dataset_id: str, ids: Sequence[str]) -> int:
        """Delete documents by id; return how many were deleted.

        An empty list sends nothing (an empty or null list meant "delete all" before v0.25).
        Ids go out in lists of at most 100.

        Example:
            >>> client.delete_documents(ds.id, [doc.id]), client.delete_documents(ds.id, [])
            (1, 0)
        """
        unique_ids = id_list(ids, "ids")
        path = f"/datasets/{dataset_id}/documents"
        deleted = 0
        for batch in batches(unique_ids, MAX_IDS_PER_CALL):
            reply = self._retry_tolerant("DELETE", path, {"ids": batch}, is_not_found)
            if reply is None:  # a lost earlier attempt deleted some or all: finish the rest
                left = [i for i in batch if self._document_exists(dataset_id, i)]
                if left:
                    self._request("DELETE", path, json={"ids": left})
                deleted += len(batch)
                continue
            deleted += count_from(reply.data, "deleted", "success_count", default=len(batch))
        return deleted

    def _document_exists(self, dataset_id: str, document_id: str) -> bool:
        try:
            self.get_document(dataset_id, document_id)
        except RAGFlowNotFoundError:
            return False
        return True


def _unmatched(names: Sequence[str], docs: Sequence[Document]) -> list[str]:
    """Names with no stored document, matching ``notes.txt`` to ``notes(1).txt`` too."""
    pool = [d.name for d in docs]
    missing: list[str] = []
    for name in names:
        stem, ext = os.path.splitext(name)
        pattern = re.compile(re.escape(stem) + r"(\(\d+\))?" + re.escape(ext) + r"$")
        hit = next((i for i, n in enumerate(pool) if pattern.match(n)), None)
        if hit is None:
            missing.append(name)
        else:
            pool.pop(hit)
    return missing
