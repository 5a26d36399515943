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
import re
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
_EMODB_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[WLEAFTN])(?P<version>[a-z])$")


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


def _require_columns(rows, table, columns):
    present = set(rows[0]) if rows else set()
    missing = [c for c in columns if c and c not in present]
    if missing:
        raise ManifestError(
            f"{table}: missing column(s) {', '.join(map(repr, missing))} "
            f"(found {', '.join(map(repr, sorted(present)))})"
        )


def _resolve(base: Path, rel: str, sub: str = "") -> str:
    p = Path(rel)
    if not p.is_absolute():
        p = base / sub / p
    return os.path.normpath(p)


def _list_audio(root: Path, extensions) -> list[Path]:
    if not root.is_dir():
        raise ManifestError(f"{root}: corpus folder not found")
    exts = {e.lower() for e in extensions}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())


def _entries_from_rows(rows, table, base, cfg, split, audio_dir=""):
    id_col = cfg.get("id_column") or ("id" if rows and "id" in rows[0] else None)
    path_col = cfg.get("path_column", "path")
    label_col = cfg.get("label_column", "label") if split != "test" else None
    speaker_col = cfg.get("speaker_column", "speaker")
    split_col = cfg.get("split_column", "split") if split is None else None
    stratum_col = cfg.get("stratify_column")
    needed = [path_col, label_col if split is None or split == "train" else None]
    _require_columns(rows, table, [*needed, stratum_col if split != "test" else None])
    if id_col and rows and id_col not in rows[0]:
        raise ManifestError(f"{table}: missing id column {id_col!r}")
    entries = []
    for i, row in enumerate(rows, start=2):
        rel = row[path_col].strip()
        if not rel:
            raise ManifestError(f"{table}, line {i}: empty {path_col!r}")
        clip_split = split
        if clip_split is None:
            value = (row.get(split_col) or "").strip().lower() if split_col else ""
            if value not in ("", "train", "test"):
                raise ManifestError(f"{table}, line {i}: split {value!r} is neither 'train' nor 'test'")
            clip_split = value or "train"
        label = (row.get(label_col) or "").strip() if label_col else None
        if clip_split == "test" and not label:
            label = None
        speaker = (row.get(speaker_col) or "").strip() or None if speaker_col else None
        clip_id = row[id_col].strip() if id_col else Path(os.path.normpath(rel)).with_suffix("").as_posix()
        stratum = (row.get(stratum_col) or "").strip() or None if stratum_col else None
        path = _resolve(base, rel, audio_dir)
        entries.append(
            Entry(clip_id, path, label, speaker, clip_split, source=f"{table}, line {i}", stratum=stratum)
        )
    return entries


def _read_csv_dataset(cfg):
    table = Path(cfg["table"])
    return _entries_from_rows(read_table(table), table, table.parent, cfg, None)


def _read_competition(cfg, root=None):
    root = Path(root or cfg["root"])
    entries = []
    for split, key, default in (("train", "train_csv", "train.csv"), ("test", "test_csv", "test.csv")):
        table = root / cfg.get(key, default)
        if split == "test" and not table.exists():
            continue
        audio_dir = cfg.get(f"{split}_audio_dir", "")
        entries += _entries_from_rows(read_table(table), table, root, cfg, split, audio_dir)
    return entries


def _read_emodb(cfg):
    entries = []
    for path in _list_audio(Path(cfg["root"]), cfg.get("extensions", [".wav"])):
        m = _EMODB_NAME.match(path.stem)
        if m is None:
            entries.append(
                Entry(
                    path.stem,
                    str(path),
                    None,
                    None,
                    "train",
                    "file name does not follow EmoDB's SSTTTEV pattern",
                )
            )
            continue
        entries.append(Entry(path.stem, str(path), EMODB_EMOTIONS[m["emotion"]], m["speaker"], "train"))
    return entries


def _read_folders(cfg):
    root = Path(cfg["root"])
    pattern = re.compile(cfg["speaker_pattern"]) if cfg.get("speaker_pattern") else None
    entries = []
    for path in _list_audio(root, cfg.get("extensions", AUDIO_EXTENSIONS)):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            continue  # files directly in root carry no label
        speaker = None
        if pattern is not None:
            m = pattern.search(path.stem)
            speaker = m["speaker"] if m and "speaker" in pattern.groupindex else (m[0] if m else None)
        clip_id = rel.with_suffix("").as_posix()
        entries.append(Entry(clip_id, str(path), rel.parts[0], speaker, "train"))
    return entries


# Default size of the demo adapter's corpus (labelled train clips, unlabelled test clips).
DEMO_N_TRAIN = 120
DEMO_N_TEST = 24


def demo_root(name: str, results: str = "results") -> Path:
    """Where the demo adapter's generated corpus lives."""
    return Path(results) / name / "corpus"


ADAPTERS = ("demo", "emodb", "csv", "competition", "folders")


def read_entries(cfg: dict, results: str = "results") -> list[Entry]:
    """List a dataset's clips from its config entry, then apply labels and checks.

    Raises ManifestError for problems with tables (missing columns, duplicate ids,
    bad split values). Problems with single clips are carried in ``Entry.error``.
    """
    adapter = cfg["adapter"]
    if adapter == "demo":
        entries = _read_competition({}, demo_root(cfg["name"], results))
    elif adapter == "competition":
        entries = _read_competition(cfg)
    elif adapter == "csv":
        entries = _read_csv_dataset(cfg)
    elif adapter == "emodb":
        entries = _read_emodb(cfg)
    elif adapter == "folders":
        entries = _read_folders(cfg)
    else:
        raise ManifestError(f"unknown adapter {adapter!r} (use one of {', '.join(ADAPTERS)})")
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


def source_files(entries) -> list[str]:
    """Audio files the entries name that exist (inputs whose change reruns the manifest)."""
    return [e.path for e in entries if e.error is None and os.path.isfile(e.path)]


def build_manifest(entries, min_samples: int, sample_rate: int, on_bad_file: str = "reject"):
    """Probe every entry's audio; return (manifest DataFrame, rejected DataFrame).

    With ``on_bad_file='fail'`` the first unusable file raises AudioError or
    ManifestError instead of being rejected.
    """
    import pandas as pd

    from serflow.audio import AudioError, probe_audio

    rows, rejected = [], []
    for e in entries:
        reason = e.error
        if reason is None:
            try:
                info = probe_audio(e.path, min_samples=min_samples, target_rate=sample_rate)
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


def write_shards(manifest, paths) -> None:
    """Write one TSV (id, path, checksum) per shard; ``paths[k]`` is shard k's file."""
    n = len(paths)
    shard = manifest["id"].map(lambda i: shard_of(i, n))
    for k, path in enumerate(paths):
        part = manifest.loc[shard == k, ["id", "path", "checksum"]]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        part.to_csv(path, sep="\t", index=False, lineterminator="\n")
