"""Per-file feature cache: one ``.npy`` per (audio content, extractor parameters)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class FeatureCache:
    """Feature vectors stored as ``<root>/<params_key>/<checksum[:2]>/<checksum>.npy``.

    ``params_key`` identifies the extractor parameters and version, so a parameter
    change misses exactly the entries it affects. Writes are atomic (temporary
    file then rename), so a killed job never leaves a half-written entry and
    concurrent writers of the same entry are harmless.
    """

    def __init__(self, root, params_key: str, n_features: int):
        self.root = Path(root)
        self.params_key = params_key
        self.n_features = n_features

    def path(self, checksum: str) -> Path:
        return self.root / self.params_key / checksum[:2] / f"{checksum}.npy"

    def get(self, checksum: str) -> np.ndarray | None:
        """The cached vector, or None when absent or unreadable."""
        try:
            vec = np.load(self.path(checksum), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if vec.shape != (self.n_features,) or vec.dtype != np.float32:
            return None
        return vec

    def put(self, checksum: str, vec: np.ndarray) -> Path:
        """Store ``vec`` atomically and return its path."""
        vec = np.asarray(vec, dtype=np.float32)
        if vec.shape != (self.n_features,):
            raise ValueError(f"expected {self.n_features} features, got shape {vec.shape}")
        dest = self.path(checksum)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{checksum}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, vec, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest
