"""Fixtures of the source tests: a hostile tree on disk, and running code without root powers.

The helpers are handed to tests through the ``sh`` fixture (the suite runs with
``--import-mode=importlib``, where test modules cannot import siblings).
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

NOBODY = 65534


def write(root: str, rel: str | bytes, data: bytes = b"x", *, mtime: float | None = None) -> str:
    """Create a file (and its folders) under ``root``; return its absolute path."""
    full = os.path.join(os.fsencode(root), os.fsencode(rel))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(full, (mtime, mtime))
    return os.fsdecode(full)


@contextmanager
def world_readable_tmpdir() -> Iterator[str]:
    """A temporary folder any user can enter (pytest's ``tmp_path`` is private to its owner)."""
    root = tempfile.mkdtemp(prefix="rfd-src-")
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                path = os.path.join(dirpath, d)
                if not os.path.islink(path):
                    with suppress(OSError):
                        os.chmod(path, 0o755)
        shutil.rmtree(root, ignore_errors=True)


def run_unprivileged(fn: Callable[[], T]) -> T:
    """Run ``fn`` where permission bits apply: in-process for a normal user; as root, in a
    forked child that drops to ``nobody`` (root ignores permission bits) and sends the result
    back pickled."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                payload = pickle.dumps(("ok", fn()))
            except BaseException as exc:  # report the failure to the parent
                payload = pickle.dumps(("err", repr(exc)))
            with os.fdopen(w, "wb") as out:
                out.write(payload)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "unprivileged child failed"
    kind, value = pickle.loads(data)
    if kind == "err":
        raise AssertionError(f"unprivileged call raised {value}")
    return value  # type: ignore[no-any-return]


def build_hostile_tree(root: str) -> dict[str, Any]:
    """Everything real folders contain that must not crash a listing.

    Returns the expectations: ``entries`` (paths listed as files), ``skipped`` (path -> reason)
    and ``protected`` (listed but unreadable paths).
    """
    entries = {
        "a.txt",
        "empty.txt",
        "docs/report.md",
        "docs/deep/x/y/z.txt",
        "unicode/café ☕.txt",
        "spaces and 'quotes'.txt",
        "new\nline.txt",
        "link-in.txt",
        "docs/abs-in.txt",
        "link-dir/report.md",
        "link-dir/deep/x/y/z.txt",
        "link-dir/abs-in.txt",
        "noread.txt",
    }
    write(root, "a.txt", b"hello world\n")
    write(root, "empty.txt", b"")
    write(root, "docs/report.md", b"# report\n")
    write(root, "docs/deep/x/y/z.txt", b"deep")
    write(root, "unicode/café ☕.txt", "unicode ✓".encode())
    write(root, "spaces and 'quotes'.txt", b"q")
    write(root, "new\nline.txt", b"n")
    write(root, ".git/config", b"[core]")
    write(root, ".hidden.txt", b"h")
    write(root, b"latin1-\xe9.txt", b"l")
    write(root, b"dir-\xff/inner.txt", b"i")
    os.mkfifo(os.path.join(root, "pipe"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(root, "sock"))
    sock.close()
    os.symlink("/etc/hostname", os.path.join(root, "link-out"))
    os.symlink("nope", os.path.join(root, "link-broken"))
    os.symlink("link-self", os.path.join(root, "link-self"))
    os.symlink("..", os.path.join(root, "docs", "loop"))
    os.symlink("a.txt", os.path.join(root, "link-in.txt"))
    os.symlink("docs", os.path.join(root, "link-dir"))
    os.symlink(os.path.join(root, "a.txt"), os.path.join(root, "docs", "abs-in.txt"))
    write(root, "noread.txt", b"secret")
    os.chmod(os.path.join(root, "noread.txt"), 0)
    write(root, "locked/inside.txt", b"secret")
    os.chmod(os.path.join(root, "locked"), 0)
    skipped = {
        ".git/": "filtered",
        ".hidden.txt": "filtered",
        "latin1-\\xe9.txt": "name_not_decodable",
        "dir-\\xff/": "name_not_decodable",
        "pipe": "special_file",
        "sock": "special_file",
        "link-out": "symlink_outside_root",
        "link-broken": "broken_symlink",
        "link-self": "symlink_loop",
        "docs/loop/": "symlink_loop",
        "link-dir/loop/": "symlink_loop",
        "locked/": "unreadable",
    }
    try:  # a character device, where allowed (root outside a user namespace)
        os.mknod(os.path.join(root, "null-device"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        skipped["null-device"] = "special_file"
    except OSError:
        pass
    return {"entries": entries, "skipped": skipped, "protected": {"noread.txt"}}


@pytest.fixture(scope="session")
def sh() -> SimpleNamespace:
    """The helpers of this folder: ``write``, ``world_readable_tmpdir``, ``run_unprivileged``,
    ``build_hostile_tree``."""
    return SimpleNamespace(
        write=write,
        world_readable_tmpdir=world_readable_tmpdir,
        run_unprivileged=run_unprivileged,
        build_hostile_tree=build_hostile_tree,
    )


# ------------------------------------------------------------------------------------------------
# protocol servers (tests/sources/servers.py, loaded by path)
# ------------------------------------------------------------------------------------------------


def _servers_module() -> Any:
    import importlib.util
    import sys

    name = "_rfd_test_servers"
    if name in sys.modules:
        return sys.modules[name]
    path = os.path.join(os.path.dirname(__file__), "servers.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def servers() -> Any:
    """The server classes of ``servers.py`` (``WebDAVServer``, ``SFTPServer``, ``Azurite``)."""
    return _servers_module()


@pytest.fixture
def webdav_server(tmp_path) -> Iterator[Any]:
    """A wsgidav server on 127.0.0.1 serving ``tmp_path / "dav"`` (basic auth)."""
    pytest.importorskip("wsgidav")
    root = tmp_path / "dav"
    root.mkdir()
    server = _servers_module().WebDAVServer(str(root)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sftp_server(tmp_path) -> Iterator[Any]:
    """A paramiko SFTP server on 127.0.0.1 serving ``tmp_path / "sftp"`` (password auth)."""
    pytest.importorskip("paramiko")
    root = tmp_path / "sftp"
    root.mkdir()
    server = _servers_module().SFTPServer(str(root)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Any]:
    """The azurite Blob emulator (``make tools``) on 127.0.0.1 behind a fault proxy."""
    pytest.importorskip("adlfs")
    mod = _servers_module()
    if not mod.Azurite.available():
        pytest.skip("azurite is not installed: run `make tools` (npm install into .tools/)")
    server = mod.Azurite().start()
    try:
        yield server
    finally:
        server.stop()
