"""Corpus manifests: adapters that list a corpus's clips, and the probed manifest table.

``read_entries`` parses a dataset entry of the config into clip entries without
opening any audio (cheap enough to run while Snakemake builds its DAG, so table
errors stop the run before any job). ``build_manifest`` then decodes every clip
and splits the entries into the manifest and the rejected files.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
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

EMODB_EMOTIONS = {
    "W": "anger",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happiness",
    "T": "sadness",
    "N": "neutral",
}


class ManifestError(ValueError):
    """A problem with a dataset's table or layout that stops the run."""


@dataclass(frozen=True)
class Entry:
    """One clip as listed by an adapter; ``error`` set when it must be rejected."""

    id: str
    path: str
    label: str | None
    speaker: str | None
    split: str
    error: str | None = None
    source: str | None = None  # "table, line N" for clips listed in a table
    stratum: str | None = None  # value of the dataset's stratify_column (e.g. a genre)


def read_table(path) -> list[dict]:
    """Rows of a CSV (separator sniffed among , ; and tab; UTF-8 with or without BOM)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{path}: table not found") from None
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not UTF-8 text ({err.reason})") from None
    if not text.strip():
        raise ManifestError(f"{path}: table is empty")
    first = text.splitlines()[0]
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t")
        sep = dialect.delimiter
    except csv.Error:
        sep = ","
    reader = csv.DictReader(text.splitlines(), delimiter=sep)
    rows = list(reader)
    for i, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise ManifestError(f"{path}, line {i}: wrong number of fields")
    return rows


def read_entries(cfg: dict, results: str = "results") -> list[Entry]:
    """List a dataset's clips with its adapter (``serflow.adapters.ADAPTERS``), then check ids and labels.

    Raises ManifestError for problems with tables (missing columns, duplicate ids,
    bad split values). Problems with single clips are carried in ``Entry.error``.
    """
    from serflow.adapters import ADAPTERS

    adapter = ADAPTERS.get(cfg["adapter"])
    if adapter is None:
        raise ManifestError(f"unknown adapter {cfg['adapter']!r} (use one of {', '.join(ADAPTERS)})")
    entries = adapter.read(cfg, results)
    seen = {}
    for e in entries:
        if e.id in seen:
            first = seen[e.id]
            where = e.source or e.path
            also = first.source or first.path
            raise ManifestError(f"{where}: duplicate id {e.id!r} in dataset {cfg['name']!r} (also {also})")
        seen[e.id] = e
    return [_check_label(e, cfg.get("label_map") or {}) for e in entries]


def _check_label(e: Entry, label_map: dict) -> Entry:
    if e.error or e.split == "test" and e.label is None:
        return e
    if not e.label:
        return replace(e, label=None, error="empty label")
    if label_map:
        if e.label in label_map:
            return replace(e, label=str(label_map[e.label]))
        if e.label not in set(map(str, label_map.values())):
            return replace(e, error=f"label {e.label!r} not in label_map")
    return e


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


def source_files(entries) -> list[str]:
    """Audio files the entries name that exist (inputs whose change reruns the manifest)."""
    return [e.path for e in entries if e.error is None and os.path.isfile(e.path)]


def build_manifest(
    entries, min_samples: int, sample_rate: int, on_bad_file: str = "reject", probes=None, threads: int = 1
):
    """Probe every entry's audio; return (manifest DataFrame, rejected DataFrame).

    With ``on_bad_file='fail'`` the first unusable file raises ManifestError instead of
    being rejected. ``probes`` (a ``serflow.probes.ProbeCache``) reuses earlier probes of
    unchanged files; new ones are decoded in ``threads`` threads.
    """
    import pandas as pd

    from serflow.audio import AudioError
    from serflow.probes import ProbeCache

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
