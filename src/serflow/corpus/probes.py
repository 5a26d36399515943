"""Probes of audio files kept between manifest runs, and probing many files at once.

A probe decodes a whole file (its checksum, length, rate and channels, or why it cannot
be used). Re-running the manifest reuses the probe of every file whose path, size and
modification time are unchanged, so adding one clip to a large corpus decodes one file;
the checksums still decide the feature cache.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serflow.corpus.audio import AudioError, AudioInfo, probe_audio

_COLUMNS = (
    "path",
    "size",
    "mtime_ns",
    "error",
    "duration_s",
    "sample_rate",
    "channels",
    "checksum",
    "frames",
)


def _stat(path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _probe(path) -> AudioInfo | str:
    try:
        return probe_audio(path)
    except AudioError as err:
        return err.reason


class ProbeCache:
    """Probes by path, valid while the file's size and modification time stay the same.

    Stored as one Parquet file (``path``, usually under the feature cache folder); written
    atomically by ``save``.
    """

    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self.rows: dict[str, tuple] = {}
        self.hits = self.misses = 0
        if self.path and self.path.exists():
            import pyarrow.parquet as pq

            table = pq.read_table(self.path).to_pydict()
            for row in zip(*(table[c] for c in _COLUMNS)):
                self.rows[row[0]] = row[1:]

    def probe_many(self, paths, threads: int = 1) -> list[AudioInfo | str]:
        """A probe (``AudioInfo``) or the reason a file cannot be used, per path.

        Files not probed before (or changed since) are decoded in ``threads`` threads
        (decoding and hashing release the GIL).
        """
        stats = [_stat(p) for p in paths]
        out: list = [None] * len(paths)
        todo = []
        for i, (path, st) in enumerate(zip(paths, stats)):
            row = self.rows.get(str(path))
            if st is not None and row is not None and (row[0], row[1]) == st:
                error, *info = row[2:]
                out[i] = error if error is not None else AudioInfo(*info)
                self.hits += 1
            else:
                todo.append(i)
        self.misses += len(todo)
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for i, result in zip(todo, pool.map(_probe, [paths[i] for i in todo])):
                out[i] = result
                if stats[i] is not None and result != "file not found":
                    info = (
                        (None, *_fields(result)) if isinstance(result, AudioInfo) else (result, *[None] * 5)
                    )
                    self.rows[str(paths[i])] = (*stats[i], *info)
        return out

    def save(self) -> None:
        """Write the probes (kept: every file probed so far, by path)."""
        if self.path is None:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path.parent.mkdir(parents=True, exist_ok=True)
        paths = sorted(self.rows)
        columns = {"path": pa.array(paths, pa.string())}
        types = (
            pa.int64(),
            pa.int64(),
            pa.string(),
            pa.float64(),
            pa.int32(),
            pa.int32(),
            pa.string(),
            pa.int64(),
        )
        for j, (name, kind) in enumerate(zip(_COLUMNS[1:], types)):
            columns[name] = pa.array([self.rows[p][j] for p in paths], kind)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        pq.write_table(pa.table(columns), tmp)
        os.replace(tmp, self.path)


def _fields(info: AudioInfo) -> tuple:
    return info.duration_s, info.sample_rate, info.channels, info.checksum, info.frames
