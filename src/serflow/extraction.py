"""Feature extraction for one shard of a corpus, through the per-file cache."""

from __future__ import annotations

import fcntl
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serflow.audio import AudioError, load_audio
from serflow.cache import FeatureCache
from serflow.features import FeatureParams, extract_features, feature_names


@dataclass
class ShardStats:
    """What one shard job did: cache hits, computed files, failures, seconds."""

    cached: int = 0
    computed: int = 0
    failed: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0


def extract_shard(ids, paths, checksums, params: FeatureParams, cache_root, on_bad_file="reject"):
    """Features for the listed clips, computing only those missing from the cache.

    Returns (matrix float32 [n, n_features] with NaN rows for failures,
    list of error strings or None per clip, ShardStats). With
    ``on_bad_file='fail'`` a clip that cannot be processed raises AudioError.
    Before the first clip it computes, numba's cache is warmed (``warm_numba_cache``);
    a shard whose clips are all cached never loads the extractor's kernels.
    """
    names = feature_names(params)
    cache = FeatureCache(cache_root, params.cache_key(), len(names))
    out = np.full((len(ids), len(names)), np.nan, dtype=np.float32)
    errors: list[str | None] = [None] * len(ids)
    stats = ShardStats()
    start = time.perf_counter()
    for i, (path, checksum) in enumerate(zip(paths, checksums)):
        vec = cache.get(checksum)
        if vec is not None:
            stats.cached += 1
        else:
            if stats.computed + stats.failed == 0:
                warm_numba_cache(params, cache_root)
            try:
                y = load_audio(path, params.sample_rate)
                vec = extract_features(y, params)
                bad = np.flatnonzero(~np.isfinite(vec))
                if bad.size:  # never cached, never reaches a table
                    shown = ", ".join(names[j] for j in bad[:3])
                    raise AudioError(path, f"non-finite feature values ({bad.size}: {shown}, ...)")
            except AudioError as err:
                if on_bad_file == "fail":
                    raise
                errors[i] = err.reason
                stats.failed += 1
                continue
            except Exception as err:  # one broken clip must not kill a long run
                if on_bad_file == "fail":
                    raise AudioError(path, f"feature extraction failed: {err!r}") from err
                errors[i] = f"feature extraction failed: {err!r}"
                stats.failed += 1
                continue
            cache.put(checksum, vec)
            stats.computed += 1
            stats.audio_seconds += y.size / params.sample_rate
        out[i] = vec
    stats.seconds = time.perf_counter() - start
    return out, errors, stats


def warm_numba_cache(params: FeatureParams, lock_dir) -> float:
    """Run the extractor once on a synthetic tone while holding a file lock; return seconds.

    librosa compiles some kernels with numba's on-disk cache. Several fresh processes
    compiling them at once can corrupt that cache (extraction jobs segfaulted on a fresh
    install here). Under the lock the first job fills the cache and later ones only
    read it. ``lock_dir`` (the feature cache) is shared by every job of a run.
    """
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    t = np.arange(params.sample_rate, dtype=np.float32) / params.sample_rate
    y = (0.3 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    with open(lock_dir / ".numba-warm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = time.perf_counter()
        extract_features(y, params)
        return time.perf_counter() - start
