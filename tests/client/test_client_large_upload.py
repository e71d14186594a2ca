"""A large upload streams: the client's memory does not grow with the file.

The file is sparse (no disk blocks), 512 MiB by default (``RAGFLOW_TEST_LARGE_MIB`` to change).
Memory is sampled from this process while the upload runs; the sandbox is a separate process
(or, if it runs in this one, it spools to disk too).
"""

from __future__ import annotations

import os
import threading

import psutil

from ragflow_dagster.client import UploadFile

SIZE = int(os.environ.get("RAGFLOW_TEST_LARGE_MIB", "512")) * 1024 * 1024


class _PeakRSS:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_large_file_upload_streams_from_disk(client, dataset, tmp_path):
    path = tmp_path / "large.txt"
    with open(path, "wb") as fh:
        fh.truncate(SIZE)  # sparse: SIZE bytes of zeros, no blocks on disk
    opened: list[object] = []

    def opener():
        fh = open(path, "rb")  # noqa: SIM115 - the client closes what it opened
        opened.append(fh)
        return fh

    with _PeakRSS() as mem:
        (doc,) = client.upload_documents(dataset.id, [UploadFile("large.txt", opener, size=SIZE)])
    grew = mem.peak - mem.base
    assert doc.size == SIZE and doc.name == "large.txt"
    assert grew < 64 * 1024 * 1024, f"client memory grew by {grew / 2**20:.0f} MiB"
    assert len(opened) == 1 and opened[0].closed  # handle closed by the client
    stored = client.get_document(dataset.id, doc.id)
    assert stored.size == SIZE
