"""Feature extraction for one shard of a corpus, through one extractor's cache."""

from __future__ import annotations

import fcntl
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serflow.corpus.audio import AudioError, load_audio
from serflow.features import Clip, Extractor
from serflow.features.cache import FeatureCache
from serflow.runtime import Progress


@dataclass
class ShardStats:
    """What one shard job did: cache hits, computed files, failures, seconds."""

    cached: int = 0
    computed: int = 0
    failed: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0


def checked(extractor: Extractor, path, value: np.ndarray) -> np.ndarray:
    """``value`` if every entry is finite, else AudioError naming the clip and the columns."""
    bad = np.flatnonzero(~np.isfinite(value).reshape(value.shape[0], -1).all(axis=-1))
    if bad.size:  # never cached, never reaches a table
        if value.ndim == 1:
            names = extractor.names()
            shown = ", ".join(names[j] for j in bad[:3])
            raise AudioError(path, f"non-finite feature values ({bad.size}: {shown}, ...)")
        raise AudioError(path, f"non-finite feature values in {bad.size} frame(s)")
    return value


def extract_shard(
    extractor: Extractor, ids, paths, checksums, cache_root, on_bad_file="reject", augmentation=None
):
    """Table rows of ``extractor`` for the listed clips, computing only those missing from its cache.

    Returns (matrix float32 [n, n_columns] with NaN rows for failures, list of error
    strings or None per clip, ShardStats). With ``on_bad_file='fail'`` a clip that
    cannot be processed raises AudioError. Before the first clip it computes, numba's
    cache is warmed (``warm_numba_cache``); a shard whose clips are all cached never
    loads the extractor's kernels. An extractor that batches (``clips_per_call`` > 1)
    gets the missing clips that many at a time; a failing batch is redone clip by clip.
    With an ``augmentation`` (``serflow.augmentation.Augmentation``) the listed clips are
    its copies: each file is loaded, transformed as its copy checksum says, then extracted.
    """
    cache = FeatureCache(cache_root, extractor)
    n_columns = len(extractor.names())
    out = np.full((len(ids), n_columns), np.nan, dtype=np.float32)
    errors: list[str | None] = [None] * len(ids)
    stats = ShardStats()
    progress = Progress(len(ids), f"{extractor.name} features")
    start = time.perf_counter()
    pending: list[tuple[int, object, str, Clip]] = []

    def fail(i, path, err):
        if on_bad_file == "fail":
            if isinstance(err, AudioError):
                raise err
            raise AudioError(path, f"feature extraction failed: {err!r}") from err
        errors[i] = err.reason if isinstance(err, AudioError) else f"feature extraction failed: {err!r}"
        stats.failed += 1

    def flush():
        values = None
        if len(pending) > 1:
            try:
                values = extractor.values([clip for *_, clip in pending])
            except Exception:  # one broken clip must not fail the others: redo one by one
                values = None
        for k, (i, path, checksum, clip) in enumerate(pending):
            try:
                value = checked(extractor, path, values[k] if values is not None else extractor.value(clip))
            except Exception as err:  # one broken clip must not kill a long run
                fail(i, path, err)
                progress.step()
                continue
            cache.put(checksum, value)
            stats.computed += 1
            stats.audio_seconds += clip.seconds
            out[i] = extractor.to_row(value)
            progress.step()
        pending.clear()

    for i, (path, checksum) in enumerate(zip(paths, checksums)):
        value = cache.get(checksum)
        if value is not None:
            stats.cached += 1
            out[i] = extractor.to_row(value)
            progress.step()
            continue
        if stats.computed + stats.failed + len(pending) == 0:
            warm_numba_cache(extractor, cache_root, augmentation)
        try:
            y = load_audio(path, extractor.sample_rate)
            if augmentation is not None:
                y = augmentation.apply(y, extractor.sample_rate, checksum)
            clip = Clip(y, extractor.sample_rate)
        except Exception as err:
            fail(i, path, err)
            progress.step()
            continue
        pending.append((i, path, checksum, clip))
        if len(pending) >= extractor.clips_per_call:
            flush()
    if pending:
        flush()
    stats.seconds = time.perf_counter() - start
    return out, errors, stats


def warm_numba_cache(extractor: Extractor, lock_dir, augmentation=None) -> float:
    """Run ``extractor`` once on a synthetic tone while holding a file lock; return seconds.

    librosa compiles some kernels with numba's on-disk cache. Several fresh processes
    compiling them at once can corrupt that cache (extraction jobs segfaulted on a fresh
    install here). Under the lock the first job fills the cache and later ones only
    read it. ``lock_dir`` (the feature cache) is shared by every job of a run. An
    ``augmentation``'s transforms (librosa's phase vocoder) are warmed the same way.
    """
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    sr = extractor.sample_rate
    t = np.arange(max(sr, extractor.min_samples), dtype=np.float32) / sr
    y = (0.3 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    with open(lock_dir / ".numba-warm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = time.perf_counter()
        if augmentation is not None:
            augmentation.apply(y, sr, augmentation.copy_checksum("warm", 0))
        extractor.compute(Clip(y, sr))
        return time.perf_counter() - start
