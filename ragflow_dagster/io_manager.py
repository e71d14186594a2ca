"""An IO manager for the ingestion's DataFrames that also handles runs over many partitions.

Dagster's default filesystem IO manager refuses an output that covers several partitions (a
single-run backfill over a range). The ingestion's tables carry a ``partition_key`` column, so this
one splits them per partition on write and concatenates the requested partitions on read.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

PARTITION_COLUMN = "partition_key"


class PartitionedFrameIOManager(dg.ConfigurableIOManager):
    """Stores pandas DataFrames per asset partition under ``base_dir``.

    Example:
        >>> PartitionedFrameIOManager(base_dir="/tmp/ragflow-frames")  # doctest: +ELLIPSIS
        PartitionedFrameIOManager(...)
    """

    base_dir: str | None = None

    def _root(self, context: dg.OutputContext | dg.InputContext) -> Path:
        base = self.base_dir or os.path.join(
            os.environ.get("DAGSTER_HOME") or tempfile.gettempdir(), "ragflow_frames"
        )
        return Path(base, *context.asset_key.path)

    @staticmethod
    def _file(root: Path, key: str | None) -> Path:
        if key is None:
            return root / "__all__.pkl"
        return root / (hashlib.sha1(key.encode("utf-8")).hexdigest() + ".pkl")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        root = self._root(context)
        root.mkdir(parents=True, exist_ok=True)
        if not context.has_asset_partitions:
            _write(self._file(root, None), obj)
            return
        keys = list(context.asset_partition_keys)
        if len(keys) == 1 or PARTITION_COLUMN not in obj.columns:
            for key in keys:
                _write(self._file(root, key), obj)
            return
        groups = dict(tuple(obj.groupby(PARTITION_COLUMN, sort=False)))
        empty = obj.iloc[0:0]
        for key in keys:
            _write(self._file(root, key), groups.get(key, empty))

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        root = self._root(context)
        if not context.has_asset_partitions:
            return _read(self._file(root, None))
        frames = []
        for key in context.asset_partition_keys:
            path = self._file(root, key)
            if path.exists():
                frames.append(_read(path))
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _write(path: Path, obj: pd.DataFrame) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def _read(path: Path) -> pd.DataFrame:
    with open(path, "rb") as fh:
        return pickle.load(fh)
