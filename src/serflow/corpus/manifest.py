"""The probed manifest table: every listed clip decoded once, split into the manifest and
the rejected files (``build_manifest``), and its shards for the extraction jobs.

Listing a corpus's clips (without opening audio) is ``serflow.corpus.adapters``'s.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

from serflow.corpus.adapters import ManifestError

MANIFEST_COLUMNS = (
    "id",
    "path",
    "label",
    "speaker",
    "split",
    "stratum",
    "duration_s",
    "sample_rate",
    "channels",
    "checksum",
)
REJECTED_COLUMNS = ("id", "path", "stage", "reason")


def listing_digest(entries) -> str:
    """SHA-256 of every listed clip's id, path, size and modification time (and its label).

    Changes exactly when the manifest could change: a file added, removed, rewritten or
    relabelled. Costs one ``stat`` per file, far less than tracking each file as a job input.
    """
    h = hashlib.sha256()
    for e in entries:
        try:
            st = os.stat(e.path)
            state = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            state = "missing"
        h.update(f"{e.id}\t{e.path}\t{state}\t{e.label}\t{e.speaker}\t{e.split}\t{e.error}\n".encode())
    return h.hexdigest()


def build_manifest(
    entries, min_samples: int, sample_rate: int, on_bad_file: str = "reject", probes=None, threads: int = 1
):
    """Probe every entry's audio; return (manifest DataFrame, rejected DataFrame).

    With ``on_bad_file='fail'`` the first unusable file raises ManifestError instead of
    being rejected. ``probes`` (a ``serflow.corpus.probes.ProbeCache``) reuses earlier probes of
    unchanged files; new ones are decoded in ``threads`` threads.
    """
    import pandas as pd

    from serflow.corpus.audio import AudioError
    from serflow.corpus.probes import ProbeCache

    probes = probes if probes is not None else ProbeCache()
    todo = [e for e in entries if e.error is None]
    found = dict(zip((e.path for e in todo), probes.probe_many([e.path for e in todo], threads)))
    rows, rejected = [], []
    for e in entries:
        reason = e.error
        if reason is None:
            info = found[e.path]
            if isinstance(info, str):
                reason = info
            else:
                try:
                    info.check_length(e.path, min_samples, sample_rate)
                except AudioError as err:
                    reason = err.reason
        if reason is not None:
            if on_bad_file == "fail":
                raise ManifestError(f"{e.path}: {reason}")
            rejected.append((e.id, e.path, "manifest", reason))
            continue
        rows.append(
            (
                e.id,
                e.path,
                e.label,
                e.speaker,
                e.split,
                e.stratum,
                info.duration_s,
                info.sample_rate,
                info.channels,
                info.checksum,
            )
        )
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest = manifest.astype(
        {
            "id": "string",
            "path": "string",
            "label": "string",
            "speaker": "string",
            "split": "string",
            "stratum": "string",
            "duration_s": "float64",
            "sample_rate": "int32",
            "channels": "int16",
            "checksum": "string",
        }
    )
    return manifest, pd.DataFrame(rejected, columns=list(REJECTED_COLUMNS))


def shard_of(clip_id: str, n_shards: int) -> int:
    """Stable shard of a clip: depends only on its id, so adding files moves no other clip."""
    digest = hashlib.blake2b(clip_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def read_shard(path) -> list[dict]:
    """The rows (id, path, checksum) of a shard list written by ``write_shards``."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def write_shards(manifest, paths, digests=None) -> list[bool]:
    """Write one TSV (id, path, checksum) per shard; ``paths[k]`` is shard k's file.

    ``digests[k]``, when given, receives the SHA-256 of shard k's list: a small file whose
    content changes exactly when the list does (Snakemake compares the checksums of
    inputs up to 1 MB only, and modification times above that). A list whose content
    would not change is left alone. Returns whether each list was written.
    """
    n = len(paths)
    shard = manifest["id"].map(lambda i: shard_of(i, n))
    written = []
    for k, path in enumerate(paths):
        part = manifest.loc[shard == k, ["id", "path", "checksum"]]
        text = part.to_csv(sep="\t", index=False, lineterminator="\n").encode("utf-8")
        path = Path(path)
        try:
            same = path.read_bytes() == text
        except OSError:
            same = False
        if not same:
            _write_atomic(path, text)
        if digests is not None:
            _write_atomic(Path(digests[k]), (hashlib.sha256(text).hexdigest() + "\n").encode())
        written.append(not same)
    return written


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
