"""Feature extraction for one shard of a corpus, through the per-file cache."""

from __future__ import annotations

import time
from dataclasses import dataclass

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
