"""Document uploads: ``POST /datasets/{id}/documents`` (multipart files, or ``type=empty``),
with RAGFlow's duplicate renaming, storage locations and ``content_hash``."""

from __future__ import annotations

import contextlib
import json
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import anyio
import xxhash
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from ..records import doc_api
from ..responses import construct, err, ok
from ..store import new_id, next_duplicate_name
from .base import Endpoint, Router

if TYPE_CHECKING:
    from ..app import SandboxApp


def _sanitize_path(raw: str | None) -> str:
    if not raw:
        return ""
    parts = [p for p in raw.replace("\\", "/").split("/") if p and p not in (".", "..")]
    return "/".join(parts)


def _form_filename(name: str) -> str:
    """The file name as RAGFlow's form parser (werkzeug) reads it: a browser or ``requests``
    sends ``"`` in a quoted ``filename`` as ``%22``, and the server turns it back into ``"``.

    Example:
        >>> _form_filename('say %22hi%22.txt')
        'say "hi".txt'
    """
    return name.replace("%22", '"')


def _write_blob_files(folder: Any, items: list[tuple[UploadFile, dict[str, Any]]]) -> None:
    """Copy each upload to ``folder/<doc id>`` in 1 MiB blocks; set its size and
    ``content_hash`` (xxh128 of the bytes, as RAGFlow stores it)."""
    for upload, doc in items:
        upload.file.seek(0)
        digest = xxhash.xxh128()
        size = 0
        with open(folder / doc["id"], "wb") as out:
            while True:
                block = upload.file.read(1024 * 1024)
                if not block:
                    break
                digest.update(block)
                size += len(block)
                out.write(block)
        doc["size"] = size
        doc["content_hash"] = digest.hexdigest()


class UploadRoutes(Router):
    """``POST /datasets/{id}/documents``."""

    def __init__(self, core: SandboxApp) -> None:
        super().__init__(core)
        # names and storage locations taken by uploads in flight, per dataset
        self._reserved: dict[str, set[str]] = {}
        self._reserved_locations: dict[str, set[str]] = {}

    def routes(self, e: Endpoint) -> list[Route]:
        ds = "/api/v1/datasets/{dataset_id}"
        # the multipart body streams into spooled files on the event loop; the storage work
        # is offloaded by the handler itself
        upload = e(self.upload_documents, offload=False)
        return [Route(f"{ds}/documents", upload, methods=["POST"])]

    async def upload_documents(self, request: Request) -> Response:
        kb_id = request.path_params["dataset_id"]
        kb = await anyio.to_thread.run_sync(self.store.get_dataset, kb_id)
        if kb is None:
            return err(f"Can't find the dataset with ID {kb_id}!")
        if kb["tenant_id"] != self.store.tenant_id and kb["permission"] != "team":
            return err("no authorization", C.AUTHENTICATION_ERROR)
        upload_type = (request.query_params.get("type") or "local").lower()
        if upload_type == "empty":
            await request.body()
            return await self.core.offload(lambda: self._upload_empty(request, kb))
        if upload_type == "web":
            return err("Web crawling is not available in the sandbox.", C.SERVER_ERROR)
        if upload_type != "local":
            return err('`type` must be one of "local", "web", or "empty".', C.ARGUMENT_ERROR)
        form = await request.form(max_files=100_000, max_fields=100_000)
        try:
            files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
            if not files:
                return err("No file part!", C.ARGUMENT_ERROR)
            for upload in files:
                if upload.filename:
                    upload.filename = _form_filename(upload.filename)
                if not upload.filename:
                    return err("No file selected!", C.ARGUMENT_ERROR)
                if len(upload.filename.encode("utf-8")) > C.FILE_NAME_LEN_LIMIT:
                    return err(
                        f"File name must be {C.FILE_NAME_LEN_LIMIT} bytes or less.",
                        C.ARGUMENT_ERROR,
                    )
            override = None
            raw_pc = form.get("parser_config")
            if isinstance(raw_pc, str) and raw_pc:
                with contextlib.suppress(ValueError, TypeError):
                    parsed = json.loads(raw_pc)
                    if isinstance(parsed, dict):
                        override = {
                            k: v
                            for k, v in parsed.items()
                            if k in ("table_column_mode", "table_column_roles")
                        }
                        override = override or None
            parent = form.get("parent_path")
            parent_path = _sanitize_path(parent if isinstance(parent, str) else None)
            return await self.core.offload(
                lambda: self._store_uploads(request, kb, files, parent_path, override)
            )
        finally:
            await form.close()

    async def _store_uploads(
        self,
        request: Request,
        kb: dict[str, Any],
        files: list[UploadFile],
        parent_path: str,
        override: dict[str, Any] | None,
    ) -> Response:
        kb_id = kb["id"]
        errors: list[str] = []
        planned: list[tuple[UploadFile, dict[str, Any]]] = []
        reserved = self._reserved.setdefault(kb_id, set())
        locations = self._reserved_locations.setdefault(kb_id, set())
        mine: list[str] = []
        mine_loc: list[str] = []
        base_pc = kb["parser_config"]
        pc = {**base_pc, **override} if override else base_pc
        pc_text = json.dumps(pc)
        limit = self.config.max_file_num_per_user
        existing = self.store.count_documents() if limit else 0
        try:
            for upload in files:
                filename = upload.filename or ""
                try:
                    if limit and existing + len(planned) >= limit:
                        raise RuntimeError("Exceed the maximum file number of a free user!")
                    name = filename
                    for _ in range(1000):
                        if name.lower() not in reserved and not self.store.doc_name_taken(
                            kb_id, name
                        ):
                            break
                        name = next_duplicate_name(name)
                    else:
                        raise RuntimeError(
                            "Failed to generate unique name within 1000 attempts. "
                            f"Original: {filename}"
                        )
                    file_type = C.filename_type(name)
                    if file_type == C.FILE_OTHER:
                        raise RuntimeError("This type of file has not been supported yet!")
                    location = name if not parent_path else f"{parent_path}/{name}"
                    while location in locations or self._location_taken(kb_id, location):
                        location += "_"
                    reserved.add(name.lower())
                    locations.add(location)
                    mine.append(name.lower())
                    mine_loc.append(location)
                    doc_id = new_id()
                    planned.append(
                        (
                            upload,
                            {
                                "id": doc_id,
                                "kb_id": kb_id,
                                "parser_id": C.parser_for(file_type, name, kb["parser_id"]),
                                "pipeline_id": kb["pipeline_id"],
                                "parser_config": pc_text,
                                "created_by": self.store.tenant_id,
                                "type": file_type,
                                "name": name,
                                "source_type": "local",
                                "suffix": PurePosixPath(name).suffix.lstrip("."),
                                "location": location,
                                "size": 0,
                                "thumbnail": "",
                                "content_hash": "",
                            },
                        )
                    )
                except RuntimeError as exc:
                    errors.append(f"{filename}: {exc}")
            self._write_blobs(kb_id, planned)
            docs = [doc for _, doc in planned]
            self.store.insert_documents(kb_id, docs)
        finally:
            for name in mine:
                reserved.discard(name)
            for loc in mine_loc:
                locations.discard(loc)
        out = []
        for doc in docs:
            item = {
                "id": doc["id"],
                "dataset_id": kb_id,
                "chunk_method": doc["parser_id"],
                "pipeline_id": doc["pipeline_id"],
                "parser_config": pc,
                "created_by": doc["created_by"],
                "type": doc["type"],
                "name": doc["name"],
                "source_type": "local",
                "suffix": doc["suffix"],
                "location": doc["location"],
                "size": doc["size"],
                "thumbnail": doc["thumbnail"],
                "content_hash": doc["content_hash"],
                "run": "UNSTART",
            }
            out.append(item)
        if errors and not out:
            return err("\n".join(errors), C.SERVER_ERROR)
        if not out:
            return err(
                "There seems to be an issue with your file format. "
                "please verify it is correct and not corrupted."
            )
        if errors:
            return construct(C.SERVER_ERROR, "\n".join(errors), out)
        return ok(out)

    def _location_taken(self, kb_id: str, location: str) -> bool:
        row = (
            self.store.conn()
            .execute(
                "SELECT 1 FROM documents WHERE kb_id=? AND location=? LIMIT 1", (kb_id, location)
            )
            .fetchone()
        )
        return row is not None

    def _write_blobs(self, kb_id: str, planned: list[tuple[UploadFile, dict[str, Any]]]) -> None:
        folder = self.store.blob_dir / kb_id
        folder.mkdir(parents=True, exist_ok=True)
        _write_blob_files(folder, planned)  # already off the event loop (SandboxApp.offload)

    async def _upload_empty(self, request: Request, kb: dict[str, Any]) -> Response:
        req = await self._loose_json(request)
        name = str(req.get("name") or "").strip()
        if not name:
            return err("File name can't be empty.", C.ARGUMENT_ERROR)
        if len(name.encode("utf-8")) > C.FILE_NAME_LEN_LIMIT:
            return err(
                f"File name must be {C.FILE_NAME_LEN_LIMIT} bytes or less.", C.ARGUMENT_ERROR
            )
        if self.store.doc_name_taken(kb["id"], name):
            return err("Duplicated document name in the same dataset.")
        doc = {
            "id": new_id(),
            "kb_id": kb["id"],
            "parser_id": kb["parser_id"],
            "pipeline_id": kb["pipeline_id"],
            "parser_config": kb["parser_config"],
            "created_by": self.store.tenant_id,
            "type": C.FILE_VIRTUAL,
            "name": name,
            "source_type": "local",
            "suffix": PurePosixPath(name).suffix.lstrip("."),
            "location": "",
            "size": 0,
            "thumbnail": "",
            "content_hash": "",
        }
        self.store.insert_documents(kb["id"], [doc])
        row = self.store.get_document(doc["id"])
        assert row is not None
        return ok(doc_api(row))
