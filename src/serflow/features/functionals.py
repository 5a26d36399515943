"""Functionals: summaries of frame-level descriptors over time (pure numpy)."""

from __future__ import annotations

import re

import numpy as np

NAMED_FUNCTIONALS = ("mean", "std", "min", "max", "range", "slope", "iqr", "skew", "kurtosis")
DEFAULT_FUNCTIONALS = ("mean", "std", "min", "max", "p10", "p50", "p90", "range", "slope")
_PERCENTILE = re.compile(r"^p(\d{1,2})$")


def check_functionals(names) -> None:
    """Raise ValueError for an unknown or repeated functional name."""
    for name in names:
        if name not in NAMED_FUNCTIONALS and not _PERCENTILE.match(name):
            raise ValueError(f"unknown functional {name!r}: use {', '.join(NAMED_FUNCTIONALS)} or pNN")
    if len(set(names)) != len(names):
        raise ValueError("functionals contain duplicates")
    if not names:
        raise ValueError("functionals must not be empty")


def functionals(x: np.ndarray, names, times: np.ndarray) -> np.ndarray:
    """Summarise each row of ``x`` (descriptors × frames) with the named functionals.

    ``times`` (seconds, one per frame) scale the slope. Returns an array of shape
    (rows, len(names)); rows with no frames give zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    rows, n = x.shape
    out = np.zeros((rows, len(names)))
    if n == 0:
        return out
    pct = sorted({int(m.group(1)) for m in map(_PERCENTILE.match, names) if m} | {25, 75})
    q = dict(zip(pct, np.percentile(x, pct, axis=1)))
    mean = x.mean(axis=1)
    std = x.std(axis=1)
    centred = x - mean[:, None]
    safe = np.where(std > 0, std, 1.0)
    for j, name in enumerate(names):
        if name == "mean":
            out[:, j] = mean
        elif name == "std":
            out[:, j] = std
        elif name == "min":
            out[:, j] = x.min(axis=1)
        elif name == "max":
            out[:, j] = x.max(axis=1)
        elif name == "range":
            out[:, j] = x.max(axis=1) - x.min(axis=1)
        elif name == "iqr":
            out[:, j] = q[75] - q[25]
        elif name == "slope":
            t = np.asarray(times, dtype=np.float64) - np.mean(times)
            if n > 1 and t @ t > 0:
                out[:, j] = centred @ t / (t @ t)
        elif name == "skew":
            out[:, j] = np.where(std > 0, (centred**3).mean(axis=1) / safe**3, 0.0)
        elif name == "kurtosis":
            out[:, j] = np.where(std > 0, (centred**4).mean(axis=1) / safe**4 - 3.0, 0.0)
        else:
            out[:, j] = q[int(_PERCENTILE.match(name).group(1))]
    return out


def deltas(x: np.ndarray, width: int, order: int) -> np.ndarray:
    import librosa

    n = x.shape[1]
    width = min(width, n if n % 2 else n - 1)
    if width < 3:
        return np.zeros_like(x)
    return librosa.feature.delta(x, width=width, order=order)
