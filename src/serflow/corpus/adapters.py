"""Corpus listing: each adapter lists a corpus's clips from its config entry, without opening audio.

``read_entries`` parses a dataset entry of the config into clip entries (cheap enough to
run while Snakemake builds its DAG, so table errors stop the run before any job).
``ADAPTERS`` maps the config's ``adapter`` value to an ``Adapter``: its reader, the
config keys it accepts (each adapter only its own, besides the common ones) and the
tables whose change reruns the manifest. A generated corpus (``demo``) names the
function that writes it; the workflow runs that as a job before the manifest.

Adding an adapter: a reader here and its entry in ``ADAPTERS``, plus its block in the
config schema.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
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
#: Keys every dataset entry accepts, whatever its adapter.
COMMON_KEYS = (
    "name",
    "adapter",
    "features",
    "feature_tables",
    "runs",
    "label_map",
    "on_bad_file",
    "evaluation",
    "speakers",
    "speaker_clusters",
)


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


class AudioFile(NamedTuple):
    """An audio file found by ``list_audio``: its path and its path parts below the root."""

    path: str
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def stem(self) -> str:
        return os.path.splitext(self.parts[-1])[0]


def list_audio(root, extensions=AUDIO_EXTENSIONS) -> list[AudioFile]:
    """The audio files under ``root`` (recursively, by extension), in path order.

    ``os.scandir`` reads file types from the directory listing: no ``stat`` per file, so
    listing 200 000 files takes about a second.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: corpus folder not found")
    exts = {e.lower() for e in extensions}
    found = []
    stack = [(str(root), ())]
    while stack:
        folder, parts = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir():
                    stack.append((entry.path, (*parts, entry.name)))
                elif os.path.splitext(entry.name)[1].lower() in exts and entry.is_file():
                    found.append(AudioFile(entry.path, (*parts, entry.name)))
    return sorted(found, key=lambda f: f.parts)  # pathlib's order: part by part


def _path_ids(rels: list[str]) -> list[str]:
    """Ids from relative paths without their extension, unless two distinct files then share one.

    ``clip.flac`` and ``clip.ogg`` are distinct files: both keep their extension. One file
    listed twice stays a duplicate.
    """
    stems = [_strip_suffix(r) for r in rels]
    files = Counter(stem for stem, _ in set(zip(stems, rels)))  # distinct files per stem
    return [r if files[s] > 1 else s for r, s in zip(rels, stems)]


def _strip_suffix(rel: str) -> str:
    """``Path(rel).with_suffix("")`` for a relative POSIX path, on the string."""
    head, _, name = rel.rpartition("/")
    i = name.rfind(".")
    stem = name[:i] if 0 < i < len(name) - 1 else name  # as PurePath.suffix
    return f"{head}/{stem}" if head else stem


def _entries_from_rows(rows, table, base, cfg, split, audio_dir=""):
    if not rows:
        return []  # a header without rows (an empty test split) lists no clip
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
        # without an id column: the path (its extension dropped by _path_ids below)
        clip_id = row[id_col].strip() if id_col else Path(os.path.normpath(rel)).as_posix()
        stratum = (row.get(stratum_col) or "").strip() or None if stratum_col else None
        path = _resolve(base, rel, audio_dir)
        entries.append(
            Entry(clip_id, path, label, speaker, clip_split, source=f"{table}, line {i}", stratum=stratum)
        )
    if id_col:
        return entries
    ids = _path_ids([e.id for e in entries])
    return [e if e.id == i else replace(e, id=i) for e, i in zip(entries, ids)]


def _read_csv_dataset(cfg, results="results"):
    table = Path(cfg["table"])
    return _entries_from_rows(read_table(table), table, table.parent, cfg, None)


def _read_competition(cfg, results="results", root=None):
    root = Path(root or cfg["root"])
    entries = []
    for split, key, default in (("train", "train_csv", "train.csv"), ("test", "test_csv", "test.csv")):
        table = root / cfg.get(key, default)
        if split == "test" and not table.exists():
            continue
        audio_dir = cfg.get(f"{split}_audio_dir", "")
        entries += _entries_from_rows(read_table(table), table, root, cfg, split, audio_dir)
    return entries


def _read_emodb(cfg, results="results"):
    entries = []
    keep = {str(s) for s in cfg["speaker_ids"]} if cfg.get("speaker_ids") else None
    for f in list_audio(cfg["root"], cfg.get("extensions", [".wav"])):
        m = _EMODB_NAME.match(f.stem)
        if keep is not None and (m is None or m["speaker"] not in keep):
            continue
        if m is None:
            entries.append(
                Entry(
                    f.stem, f.path, None, None, "train", "file name does not follow EmoDB's SSTTTEV pattern"
                )
            )
            continue
        entries.append(Entry(f.stem, f.path, EMODB_EMOTIONS[m["emotion"]], m["speaker"], "train"))
    return entries


def _read_folders(cfg, results="results"):
    pattern = re.compile(cfg["speaker_pattern"]) if cfg.get("speaker_pattern") else None
    entries = []
    for f in list_audio(cfg["root"], cfg.get("extensions", AUDIO_EXTENSIONS)):
        if len(f.parts) < 2:
            continue  # files directly in root carry no label
        speaker = None
        if pattern is not None:
            m = pattern.search(f.stem)
            speaker = m["speaker"] if m and "speaker" in pattern.groupindex else (m[0] if m else None)
        entries.append(("/".join(f.parts), f.path, f.parts[0], speaker))
    ids = _path_ids([e[0] for e in entries])
    return [Entry(i, path, label, speaker, "train") for i, (_, path, label, speaker) in zip(ids, entries)]


def _competition_tables(cfg) -> list[str]:
    root = Path(cfg["root"])
    paths = [root / cfg.get(k, d) for k, d in (("train_csv", "train.csv"), ("test_csv", "test.csv"))]
    return [str(p) for p in paths if p.exists()]


def _competition_sample(cfg, results="results") -> Path | None:
    root = Path(cfg["root"])
    if "sample_submission" in cfg:
        return root / cfg["sample_submission"]
    default = root / "sample_submission.csv"
    return default if default.exists() else None


def corpus_root(name: str, results: str = "results") -> Path:
    """Where a generated corpus (``Adapter.generate``) is written."""
    return Path(results) / name / "corpus"


def _read_demo(cfg, results="results"):
    """The generated corpus as a competition folder; before it exists, the clips it will hold."""
    root = corpus_root(cfg["name"], results)
    if (root / "train.csv").exists():
        return _read_competition({}, results, root)
    from serflow.corpus.demo import planned_clips

    return [
        Entry(clip_id, os.path.normpath(root / rel), label, speaker, split)
        for clip_id, rel, label, speaker, split in planned_clips(**_demo_kwargs(cfg))
    ]


def _demo_kwargs(cfg) -> dict:
    kwargs = {
        k: cfg[k]
        for k in ("n_train", "n_test", "n_speakers", "n_emotions", "seed", "sample_rate")
        if k in cfg
    }
    if "duration_range" in cfg:
        kwargs["duration_range"] = tuple(cfg["duration_range"])
    return kwargs


def _generate_demo(cfg, out_dir) -> Path:
    from serflow.corpus.demo import generate_demo_corpus

    return generate_demo_corpus(out_dir, **_demo_kwargs(cfg))


@dataclass(frozen=True)
class Adapter:
    """How one kind of corpus is listed."""

    name: str
    #: (dataset config, results folder) -> entries.
    read: Callable[..., list[Entry]]
    #: Config keys of its own (besides ``COMMON_KEYS``).
    keys: tuple[str, ...]
    #: Dataset config -> table files whose change reruns the manifest.
    tables: Callable[[dict], list[str]] = lambda cfg: []
    #: (dataset config, results folder) -> the sample submission file, or None.
    sample_submission: Callable[..., Path | None] = lambda cfg, results="results": None
    #: (dataset config, output folder) -> writes a generated corpus; None for corpora on disk.
    generate: Callable[[dict, Path], Path] | None = None
    #: What to check when most of a split's paths are missing (``{split}``: train or test).
    missing_hint: str = "check root"

    def check_keys(self, cfg: dict) -> None:
        """Raise ManifestError naming a key this adapter does not take."""
        allowed = set(COMMON_KEYS) | set(self.keys)
        for key in cfg:
            if key not in allowed:
                raise ManifestError(
                    f"dataset {cfg.get('name')!r}: key {key!r} is not a setting of the {self.name!r} adapter "
                    f"(it takes {', '.join(sorted(self.keys))})"
                )


_TABLE_KEYS = ("id_column", "path_column", "label_column", "speaker_column", "stratify_column")
ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        Adapter(
            "demo",
            _read_demo,
            ("n_train", "n_test", "n_speakers", "n_emotions", "sample_rate", "duration_range", "seed"),
            sample_submission=lambda cfg, results="results": (
                corpus_root(cfg["name"], results) / "sample_submission.csv"
            ),
            generate=_generate_demo,
        ),
        Adapter("emodb", _read_emodb, ("root", "extensions", "speaker_ids")),
        Adapter(
            "csv",
            _read_csv_dataset,
            ("table", *_TABLE_KEYS, "split_column"),
            lambda cfg: [cfg["table"]],
            missing_hint="check the path column (paths are relative to the table's folder)",
        ),
        Adapter(
            "competition",
            _read_competition,
            (
                "root",
                "train_csv",
                "test_csv",
                "sample_submission",
                "train_audio_dir",
                "test_audio_dir",
                *_TABLE_KEYS,
            ),
            _competition_tables,
            _competition_sample,
            missing_hint="check root and {split}_audio_dir (paths are relative to it)",
        ),
        Adapter("folders", _read_folders, ("root", "extensions", "speaker_pattern")),
    )
}


def read_entries(cfg: dict, results: str = "results") -> list[Entry]:
    """List a dataset's clips with its adapter (``ADAPTERS``), then check ids and labels.

    Raises ManifestError for problems with tables (missing columns, duplicate ids,
    bad split values). Problems with single clips are carried in ``Entry.error``.
    """
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
