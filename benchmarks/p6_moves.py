"""P6: a resync after moving 10 % and editing 1 % of N files.

Setup (not timed): N files (4–64 KB) synced and parsed into a sandbox whose parser is serial
(``parse_serial``; no delay while seeding). Then 10 % of the files are moved to another folder
(same bytes, new path) and 1 % are rewritten, and the parse delay is set to ``parse_delay``
(0.05 s per document, one at a time, as on a real server).

The resync must re-upload and re-parse exactly the edited files (moves are renames with a new
label), and take at most 1.1 × the server's time parsing them one after the other (the sum of
their ``process_duration``: the delay plus the sandbox's own chunking, i.e. edited files ÷ the
server's parse rate) plus one bare paged listing of the dataset (measured just before).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CallCounter,
    dump,
    generate_tree,
    list_all_documents,
    log,
    sandbox,
    session_for,
)

DEFAULT_FILES = 5000
PARSE_DELAY = 0.05
GOAL_FACTOR = 1.1


def mutate(root: Path, paths: list[str], *, move_every: int = 10, edit_every: int = 100) -> dict:
    """Move every ``move_every``-th file to ``moved/`` and rewrite every ``edit_every``-th other."""
    moved: list[tuple[str, str]] = []
    edited: list[str] = []
    for i, rel in enumerate(paths):
        if i % move_every == 0:
            new = f"moved/{rel}"
            (root / new).parent.mkdir(parents=True, exist_ok=True)
            os.rename(root / rel, root / new)
            moved.append((rel, new))
        elif i % edit_every == 1:
            p = root / rel
            p.write_bytes(p.read_bytes() + f"\nedited {i}\n".encode())
            edited.append(rel)
    return {"moved": moved, "edited": edited}


def run(
    *,
    files: int = DEFAULT_FILES,
    workers: int = 8,
    parse_delay: float = PARSE_DELAY,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Run P6 and return its result record."""
    from ragflow_dagster.client import RAGFlowClient
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import SyncOptions, sync_source

    with tempfile.TemporaryDirectory(
        prefix="bench-p6-", dir=workdir, ignore_cleanup_errors=True
    ) as scratch:
        tmp = Path(scratch)
        root = tmp / "tree"
        paths, total = generate_tree(root, files, seed=23)
        result: dict[str, Any] = {
            "name": "P6 moves",
            "files": files,
            "bytes": total,
            "parse_delay": parse_delay,
        }
        with (
            sandbox(parse_serial=True) as srv,
            RAGFlowClient(srv.base_url, srv.api_key, pool_size=max(16, 2 * workers)) as client,
        ):
            ds = client.create_dataset(f"p6-{time.time_ns()}")
            t0 = time.perf_counter()
            seeded = sync_source(
                client, LocalFolderSource(root), ds.id, SyncOptions(max_workers=workers)
            )
            if seeded.counts.get("uploaded") != files or not seeded.verified:
                raise RuntimeError(f"P6 seeding did not converge: {seeded.summary()}")
            log(f"P6: seeded {files} files in {time.perf_counter() - t0:.1f}s")
            change = mutate(root, paths)
            n_moved, n_edited = len(change["moved"]), len(change["edited"])
            srv.set_parse_delay(parse_delay)
            session = session_for(srv.api_key)
            t0 = time.perf_counter()
            before = {d["id"] for d in list_all_documents(session, srv.base_url, ds.id)}
            t_listing = time.perf_counter() - t0
            listed = len(before)
            counter = CallCounter()
            counter.attach_client(client)
            t0 = time.perf_counter()
            report = sync_source(
                client, LocalFolderSource(root), ds.id, SyncOptions(max_workers=workers)
            )
            seconds = time.perf_counter() - t0
            docs = list_all_documents(session, srv.base_url, ds.id)
        # The server's own time parsing the new versions, one after the other (the delay plus
        # its chunking): what "edited files / parse rate" is on this server.
        parse_seconds = sum(
            float(d.get("process_duration") or 0) for d in docs if d["id"] not in before
        )
        budget = GOAL_FACTOR * parse_seconds + t_listing
        counts = {
            k: report.counts.get(k, 0)
            for k in ("moved", "replaced", "uploaded", "parse_requested", "parsed", "failed")
        }
        by_route = dict(counter.by_route)
        upload_requests = sum(
            v for k, v in by_route.items() if k.endswith("/documents") and "POST" in k
        )
        exact = (
            counts["moved"] == n_moved
            and counts["replaced"] == n_edited
            and counts["uploaded"] == 0
            and counts["parse_requested"] == n_edited
            and counts["parsed"] == n_edited
            and len(docs) == files
            and report.verified
        )
        result.update(
            moved=n_moved,
            edited=n_edited,
            listing_seconds=round(t_listing, 3),
            listed_documents=listed,
            seconds=round(seconds, 3),
            budget_seconds=round(budget, 3),
            parse_seconds=round(parse_seconds, 3),
            parse_seconds_nominal=round(n_edited * parse_delay, 3),
            durations={k: round(v, 3) for k, v in report.durations.items()},
            counts=counts,
            documents_after=len(docs),
            api_calls=counter.total,
            upload_requests=upload_requests,
            calls_by_route=by_route,
            ratio=round(seconds / budget, 3),
            goals={
                "seconds": {"goal": f"<= {budget:.2f}", "met": seconds <= budget},
                "exact_counts": {"goal": f"{n_edited} re-uploaded and re-parsed", "met": exact},
            },
        )
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=DEFAULT_FILES)
    ap.add_argument("--parse-delay", type=float, default=PARSE_DELAY)
    args = ap.parse_args(argv)
    print(dump(run(files=args.files, parse_delay=args.parse_delay)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
