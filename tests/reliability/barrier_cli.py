"""Run ``ragflow-dagster`` once a start file appears (so that several start at the same moment).

Usage: ``python barrier_cli.py GO_FILE ARGS...`` — imports everything first, waits (at most
60 s) for GO_FILE, then runs the CLI with ARGS and exits with its code.
"""

from __future__ import annotations

import os
import sys
import time

from ragflow_dagster.cli import main

if __name__ == "__main__":
    go, args = sys.argv[1], sys.argv[2:]
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("barrier: start file never appeared")
        time.sleep(0.01)
    sys.exit(main(args))
