"""Per-extractor feature cache: one ``.npy`` per (extractor parameters, audio content)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class FeatureCache:
    """Values of one extractor stored as ``<root>/<extractor>/<key>/<checksum[:2]>/<checksum>.npy``.

    ``key`` (``extractor.cache_key()``) hashes the parameters that shape the values, the
    extractor's version and its libraries' versions, so changing one extractor's
    parameters misses exactly its own entries. Values are float32 rows or, for
    frame-level extractors, frames x dims matrices. Writes are atomic (temporary file
    then rename): a killed job never leaves a half-written entry and concurrent
    writers of the same entry are harmless.
    """

    def __init__(self, root, extractor):
        self.root = Path(root)
        self.extractor = extractor
        self.folder = self.root / extractor.name / extractor.cache_key()

    def path(self, checksum: str) -> Path:
        return self.folder / checksum[:2] / f"{checksum}.npy"

    def get(self, checksum: str) -> np.ndarray | None:
        """The cached value, or None when absent, unreadable or of the wrong shape."""
        try:
            value = np.load(self.path(checksum), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return value if self.extractor.value_shape_ok(value) else None

    def put(self, checksum: str, value: np.ndarray) -> Path:
        """Store ``value`` atomically and return its path."""
        value = np.asarray(value, dtype=np.float32)
        if not self.extractor.value_shape_ok(value):
            raise ValueError(f"{self.extractor.name}: unexpected value shape {value.shape}")
        dest = self.path(checksum)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{checksum}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, value, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest
