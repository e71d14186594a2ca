"""The sensor's cursor: kilobytes of per-shard digests and the state of a pass and a reconcile,
never a map of paths. Dagster-free."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CURSOR_VERSION",
    "PassState",
    "ReconcileState",
    "SensorCursor",
    "file_hash",
    "key_hash",
]

CURSOR_VERSION = 1
MASK = (1 << 64) - 1
_COMPRESS_ABOVE = 1024


def _h64(text: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big"
    )


def file_hash(path: str, change_token: str) -> int:
    """64-bit hash of a file's identity and change token (the digest's summand).

    Example:
        >>> file_hash("a.txt", "1-2") != file_hash("a.txt", "1-3")
        True
    """
    return _h64(path + "\x00" + change_token)


def key_hash(key: str) -> int:
    """64-bit hash of a partition key (its shard is ``key_hash(key) % shards``)."""
    return _h64("k\x00" + key)


def pack(values: Sequence[int]) -> str:
    if not any(values):
        return ""
    return base64.b64encode(struct.pack(f"<{len(values)}Q", *values)).decode()


def unpack(text: str, shards: int) -> tuple[int, ...]:
    if not text:
        return (0,) * shards
    raw = base64.b64decode(text)
    values = struct.unpack(f"<{len(raw) // 8}Q", raw)
    if len(values) != shards:
        raise ValueError("digest length does not match the shard count")
    return tuple(values)


def short(*parts: Any) -> str:
    return hashlib.sha1("\x00".join(str(p) for p in parts).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class PassState:
    """A listing pass that spans several ticks (resumable sources only).

    Attributes:
        position: Full key to resume after (S3 ``StartAfter``).
        acc_old: Per-shard digest so far of settled files whose partition existed when listed.
        acc_new: Per-shard digest so far of files whose partition this pass added.
        acc_keys: Per-key-shard sum of key hashes of listed files that have a partition.
        held: Shards holding a file that had not settled.
        candidates: Partition keys suspected removed and not seen yet in this pass.
        unlisted: Part of the source could not be listed in this pass.
        ticks: Ticks this pass has taken so far.
        files: Files listed so far.
        started: When the pass started (epoch seconds).
    """

    position: str | None
    acc_old: tuple[int, ...]
    acc_new: tuple[int, ...]
    acc_keys: tuple[int, ...]
    held: frozenset[int] = frozenset()
    candidates: tuple[str, ...] | None = None
    unlisted: bool = False
    ticks: int = 0
    files: int = 0
    started: float = 0.0


@dataclass(frozen=True)
class ReconcileState:
    """The latest reconcile run the sensor requested, and the removals it is to settle.

    Attributes:
        run_key: Its run key.
        since: When it was requested (epoch seconds).
        attempt: 1 for the first request of this state, 2 for its first retry, ...
        removed_sum: Sum of the key hashes of the removed keys still to delete (``None``: the
            run is for changes only).
        removed_count: How many removed keys are still to delete.
        removed_keys: The keys themselves when few enough (else they are recomputed from a
            complete listing and checked against ``removed_sum``).
        gave_up: The last attempt failed; only a successful full reconcile (schedule, manual
            run tagged ``ragflow_dagster/reconcile: full``) moves things on.
    """

    run_key: str
    since: float
    attempt: int = 1
    removed_sum: int | None = None
    removed_count: int = 0
    removed_keys: tuple[str, ...] | None = None
    gave_up: bool = False


@dataclass(frozen=True)
class SensorCursor:
    """Everything a source sensor remembers between ticks (kilobytes, never a map of paths).

    Attributes:
        mode: ``"files"``, ``"shards"`` or ``"none"`` (a cursor of another mode is discarded).
        shards: Number of digest shards.
        seq: Tick number (part of every run key).
        digests: Per-shard digest of the settled files at the end of the last complete pass
            (files mode: of the files that have a partition).
        pass_state: The pass in progress, if any.
        suspects: Key shards where a multi-tick pass found partitions without files.
        reconcile: The latest reconcile request.
        last: Figures of the last tick (shown in the UI).

    Example:
        >>> c = SensorCursor.initial("files", 256)
        >>> SensorCursor.decode(c.encode(), mode="files", shards=256) == c
        True
    """

    mode: str
    shards: int
    seq: int = 0
    digests: tuple[int, ...] = ()
    pass_state: PassState | None = None
    suspects: frozenset[int] = frozenset()
    reconcile: ReconcileState | None = None
    last: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def initial(cls, mode: str, shards: int) -> SensorCursor:
        return cls(mode=mode, shards=shards, digests=(0,) * shards)

    # -- (de)serialisation ---------------------------------------------------------------------
    def encode(self) -> str:
        """Compact JSON (zlib + base64 with a ``z1:`` prefix once over a kilobyte)."""
        data: dict[str, Any] = {
            "v": CURSOR_VERSION,
            "mode": self.mode,
            "shards": self.shards,
            "seq": self.seq,
            "digests": pack(self.digests),
        }
        if self.pass_state is not None:
            p = self.pass_state
            data["pass"] = {
                "pos": p.position,
                "old": pack(p.acc_old),
                "new": pack(p.acc_new),
                "keys": pack(p.acc_keys),
                "held": sorted(p.held),
                "cand": list(p.candidates) if p.candidates is not None else None,
                "unlisted": p.unlisted,
                "ticks": p.ticks,
                "files": p.files,
                "started": round(p.started, 3),
            }
        if self.suspects:
            data["suspects"] = sorted(self.suspects)
        if self.reconcile is not None:
            r = self.reconcile
            data["reconcile"] = {
                "run_key": r.run_key,
                "since": round(r.since, 3),
                "attempt": r.attempt,
                "removed_sum": None if r.removed_sum is None else format(r.removed_sum, "x"),
                "removed_count": r.removed_count,
                "removed_keys": list(r.removed_keys) if r.removed_keys is not None else None,
                "gave_up": r.gave_up,
            }
        if self.last:
            data["last"] = dict(self.last)
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        if len(text) > _COMPRESS_ABOVE:
            return "z1:" + base64.b64encode(zlib.compress(text.encode(), 9)).decode()
        return text

    @classmethod
    def decode(cls, text: str | None, *, mode: str, shards: int) -> SensorCursor:
        """Parse a cursor; an empty, foreign or unreadable one gives a fresh cursor."""
        if not text:
            return cls.initial(mode, shards)
        try:
            if text.startswith("z1:"):
                text = zlib.decompress(base64.b64decode(text[3:])).decode()
            data = json.loads(text)
            if data.get("v") != CURSOR_VERSION or data["mode"] != mode or data["shards"] != shards:
                return cls.initial(mode, shards)
            digests = unpack(data["digests"], shards)
            pass_state = None
            if data.get("pass"):
                p = data["pass"]
                pass_state = PassState(
                    position=p["pos"],
                    acc_old=unpack(p["old"], shards),
                    acc_new=unpack(p["new"], shards),
                    acc_keys=unpack(p["keys"], shards),
                    held=frozenset(int(s) for s in p.get("held", ())),
                    candidates=tuple(p["cand"]) if p.get("cand") is not None else None,
                    unlisted=bool(p.get("unlisted")),
                    ticks=int(p.get("ticks", 0)),
                    files=int(p.get("files", 0)),
                    started=float(p.get("started", 0.0)),
                )
            reconcile = None
            if data.get("reconcile"):
                r = data["reconcile"]
                reconcile = ReconcileState(
                    run_key=r["run_key"],
                    since=float(r["since"]),
                    attempt=int(r.get("attempt", 1)),
                    removed_sum=int(r["removed_sum"], 16) if r.get("removed_sum") else None,
                    removed_count=int(r.get("removed_count", 0)),
                    removed_keys=(
                        tuple(r["removed_keys"]) if r.get("removed_keys") is not None else None
                    ),
                    gave_up=bool(r.get("gave_up")),
                )
            return cls(
                mode=mode,
                shards=shards,
                seq=int(data.get("seq", 0)),
                digests=digests,
                pass_state=pass_state,
                suspects=frozenset(int(s) for s in data.get("suspects", ())),
                reconcile=reconcile,
                last=data.get("last") or {},
            )
        except (ValueError, KeyError, TypeError, zlib.error, struct.error):
            return cls.initial(mode, shards)
