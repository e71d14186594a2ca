"""R3, complete: the hostile tree synced end to end by a process without root powers.

Adds what needs a normal user (a directory that cannot be entered, a file that cannot be read)
and a file that vanishes between listing and reading to the hostile tree of ``test_reliability``.
As root the sync runs in a forked child that drops to ``nobody`` (root ignores permission bits).
Every bad item must be reported with its reason, the sync completes, the good files land once,
and nothing from outside the root is uploaded.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
import traceback
from pathlib import Path

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sources import LocalFolderSource, build_inventory
from ragflow_dagster.sync.engine import SyncOptions, sync_source
from ragflow_dagster.sync.identity import managed_path

NOBODY = 65534


def _as_nobody(fn):
    """Run ``fn`` where permission bits apply; return its (picklable) result."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                payload = pickle.dumps(("ok", fn()))
            except BaseException:  # hand the failure to the parent
                payload = pickle.dumps(("err", traceback.format_exc()))
            with os.fdopen(w, "wb") as out:
                out.write(payload)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    assert status == "ok", value
    return value


def test_r3_hostile_tree_as_a_normal_user(ragflow_sandbox_factory):
    sb = ragflow_sandbox_factory(mode="subprocess")
    base = tempfile.mkdtemp(prefix="rfd-r3-")
    os.chmod(base, 0o755)
    root = Path(base) / "root"
    outside = Path(base) / "outside"
    try:
        outside.mkdir()
        (outside / "secret.txt").write_text("must never be uploaded")
        good = {f"ok/{i}.txt": f"good file {i}".encode() for i in range(4)}
        good["empty.txt"] = b""
        for rel, body in good.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(body)
        (root / "locked").mkdir()
        (root / "locked" / "inside.txt").write_text("cannot be listed")
        (root / "unreadable.txt").write_text("cannot be read")
        (root / "escape.txt").symlink_to(outside / "secret.txt")
        (root / "escape_dir").symlink_to(outside, target_is_directory=True)
        (root / "broken.txt").symlink_to(root / "nope.txt")
        (root / "loop").mkdir()
        (root / "loop" / "again").symlink_to(root / "loop", target_is_directory=True)
        os.mkfifo(root / "pipe.txt")
        (root / os.fsdecode(b"bad-\xff-name.txt")).write_bytes(b"undecodable name")
        victim = root / "vanishes.txt"
        victim.write_text("gone before it is read")
        for dirpath, dirnames, filenames in os.walk(base):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                if not os.path.islink(full) and name != "pipe.txt":
                    os.chmod(full, 0o755 if os.path.isdir(full) else 0o644)
        os.chmod(root, 0o777)  # so that the unprivileged process can make the victim vanish
        os.chmod(root / "locked", 0o000)
        os.chmod(root / "unreadable.txt", 0o000)

        class Vanishing(LocalFolderSource):
            """Removes ``vanishes.txt`` after it was listed, before it is read."""

            def scan_batches(self, filters=None):
                yield from super().scan_batches(filters)
                if victim.exists():
                    victim.unlink()

        def sync() -> tuple[dict[str, str], dict]:
            source = Vanishing(root)
            inventory = build_inventory(source)
            with RAGFlowClient(sb.base_url, sb.api_key) as client:
                ds = client.create_dataset("r3-unprivileged")
                report = sync_source(client, source, ds.id, SyncOptions(), inventory=inventory)
                docs = [
                    (d.name, managed_path(d.meta_fields), d.meta_fields.get("sha256"))
                    for d in client.iter_documents(ds.id)
                ]
            skipped = {s.path: s.reason for s in inventory.skipped}
            return skipped, {"report": report.to_dict(), "docs": docs}

        # vanishes.txt must be gone for the parent as well (the child's unlink is real)
        skipped, result = _as_nobody(sync)
    finally:
        for path in (root / "locked", root / "unreadable.txt"):
            if path.exists():
                os.chmod(path, 0o755)
        shutil.rmtree(base, ignore_errors=True)

    report, docs = result["report"], result["docs"]
    assert skipped.get("escape.txt") == "symlink_outside_root"
    assert skipped.get("broken.txt") == "broken_symlink"
    assert skipped.get("pipe.txt") == "special_file"
    assert skipped.get("vanishes.txt") == "vanished"
    assert "name_not_decodable" in skipped.values()
    assert any(p.startswith("locked") for p in skipped), skipped
    assert "unreadable.txt" in skipped, skipped
    assert report["skipped"] == len(skipped) >= 8
    assert report["uploaded"] == len(good) and report["failed"] == 0
    assert sorted(p for _n, p, _s in docs) == sorted(good)
    assert all(s == hashlib.sha256(good[p]).hexdigest() for _n, p, s in docs)
    assert not any("secret" in n or n == "escape.txt" for n, _p, _s in docs)
