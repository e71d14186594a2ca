"""The store's foundation: per-thread SQLite connections, short write transactions,
change counters for the caches, and the tenant with its users and API tokens."""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .schema import SCHEMA, new_id, now_ms


class StoreBase:
    """Connections, transactions, change counters, tenant, users and tokens."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.blob_dir = self.data_dir / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / "sandbox.db"
        self._local = threading.local()
        self._lock = threading.RLock()
        self._conns: list[sqlite3.Connection] = []
        self._versions: dict[tuple[str, str], int] = {}
        self._order_cache: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self._meta_cache: dict[str, tuple[int, dict[str, dict[str, list[str]]]]] = {}
        self._filter_cache: dict[tuple[str, str], tuple[int, list[str]]] = {}
        conn = self.conn()
        conn.executescript(SCHEMA)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.tenant_id = self._meta_value("tenant_id") or self._init_tenant()

    def conn(self) -> sqlite3.Connection:
        """The calling thread's connection (created on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-32000")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success."""
        conn = self.conn()
        if conn.in_transaction:  # nested use: join the outer transaction
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    def _bump(self, kb_id: str, *kinds: str) -> None:
        with self._lock:
            for kind in kinds:
                key = (kb_id, kind)
                self._versions[key] = self._versions.get(key, 0) + 1

    def version(self, kb_id: str, kind: str) -> int:
        """A dataset's change counter of ``kind`` (``docs``, ``upd``, ``meta``, ``chunks``)."""
        return self._versions.get((kb_id, kind), 0)

    def _meta_value(self, key: str) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _init_tenant(self) -> str:
        tenant = new_id()
        with self.tx() as conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('tenant_id', ?)", (tenant,))
        return self._meta_value("tenant_id") or tenant

    def add_token(self, token: str, *, kind: str = "api") -> None:
        """Register an API key (or a login token) for the sandbox tenant."""
        beta = secrets.token_urlsafe(32).replace("-", "")[:32]
        with self.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO tokens VALUES (?, ?, ?, ?, ?)",
                (token, self.tenant_id, beta, kind, now_ms()),
            )

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` is a known API key or login token."""
        row = self.conn().execute("SELECT 1 FROM tokens WHERE token=?", (token,)).fetchone()
        return row is not None

    def token_row(self, token: str) -> dict[str, Any] | None:
        """The stored token record."""
        row = self.conn().execute("SELECT * FROM tokens WHERE token=?", (token,)).fetchone()
        return dict(row) if row else None

    def add_user(self, email: str, nickname: str, password: str) -> bool:
        """Register a user; False when the e-mail is taken."""
        with self.tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?, ?, ?)",
                (self.tenant_id, email, nickname, password, "", now_ms()),
            )
            if cur.rowcount == 0:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?, ?, ?)",
                    (new_id(), email, nickname, password, "", now_ms()),
                )
            return cur.rowcount == 1

    def get_user(self, email: str) -> dict[str, Any] | None:
        """A registered user by e-mail."""
        row = self.conn().execute("SELECT * FROM users WHERE email=?", (email,)).fetchone()
        return dict(row) if row else None

    def nickname(self) -> str:
        """The display name of the tenant owner."""
        row = (
            self.conn()
            .execute("SELECT nickname FROM users ORDER BY create_time LIMIT 1")
            .fetchone()
        )
        return row[0] if row else "sandbox"
