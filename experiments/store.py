"""Finished configs and in-flight checkpoints on disk, every file written atomically.

A finished config is ``<key>.npz`` (final weights) then ``<key>.json`` (its
histories); the JSON is written last, so its presence means the config is
complete. An in-flight unit is checkpointed as ``inflight-<unit>.npz``. A
``kill -9`` at any moment leaves either the old file or the new one, never half.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

Weights = list[tuple[np.ndarray, np.ndarray]]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class Store:
    """Results keyed by `Settings.run_key`: the same key always means the same numbers."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def load_result(self, key: str) -> tuple[dict[str, Any], Weights | None] | None:
        """``(record, final weights or None if diverged)`` for a finished config, else None."""
        record_path = self.root / f"{key}.json"
        if not record_path.is_file():
            return None
        try:
            record = json.loads(record_path.read_text())
            weights = None
            if record["diverged_at_epoch"] is None:
                with np.load(self.root / f"{key}.npz") as z:
                    weights = [(z[f"W{l}"], z[f"b{l}"]) for l in range(len(z.files) // 2)]
            return record, weights
        except (OSError, ValueError, KeyError):
            return None  # unreadable: train the config again rather than trust it

    def save_result(self, key: str, record: dict[str, Any], weights: Weights | None) -> None:
        if weights is not None:
            arrays = {f"{name}{l}": a for l, (W, b) in enumerate(weights) for name, a in (("W", W), ("b", b))}
            atomic_write(self.root / f"{key}.npz", _npz_bytes(arrays))
        atomic_write(self.root / f"{key}.json", json.dumps(record, indent=1).encode())

    def load_checkpoint(self, unit: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        path = self.root / f"inflight-{unit}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files if k != "_meta"}
                meta = json.loads(str(z["_meta"]))
            return arrays, meta
        except (OSError, ValueError, KeyError):
            return None

    def save_checkpoint(self, unit: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        atomic_write(self.root / f"inflight-{unit}.npz", _npz_bytes({**arrays, "_meta": np.array(json.dumps(meta))}))

    def drop_checkpoint(self, unit: str) -> None:
        (self.root / f"inflight-{unit}.npz").unlink(missing_ok=True)
