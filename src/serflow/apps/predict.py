"""Use a trained model on new audio: the features it was trained with, then its predictions.

``TrainedModel.load`` reads a run folder or its ``model.joblib``; the extractor parameters
come from the model (the feature table's metadata saved in it), never from a config, and
the feature cache it was trained with is reused when it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serflow.corpus.adapters import AUDIO_EXTENSIONS
from serflow.corpus.audio import AudioError, _read_bytes, checksum_bytes, decode_clip
from serflow.features import REGISTRY, Clip, Extractor
from serflow.features.cache import FeatureCache
from serflow.models.normalisation import MIN_SPEAKER_CLIPS, Normalisation

PATH_COLUMNS = ("path", "file", "filename", "file_name", "filepath", "audio", "wav")


class ModelError(Exception):
    """A model file that cannot be used, with the reason."""


@dataclass(frozen=True)
class FeatureReader:
    """The extractors a model needs and which of each one's columns it uses (cheap to send to workers)."""

    # (extractor, indices into its row, positions in the model's row)
    extractors: tuple[tuple[Extractor, np.ndarray, np.ndarray], ...]
    n_features: int

    @property
    def sample_rate(self) -> int:
        return self.extractors[0][0].sample_rate

    @property
    def min_samples(self) -> int:
        return max(e.min_samples for e, _, _ in self.extractors)

    def row(self, data: bytes, name, cache_dir=None, y=None) -> np.ndarray:
        """The model's feature row (float64, in training column order) for one clip's bytes.

        ``y``: the clip already decoded by ``decode_clip`` (else decoded here when needed).
        Raises AudioError (naming ``name``) when the clip cannot be used.
        """
        checksum = checksum_bytes(data)
        caches = [FeatureCache(cache_dir, e) if cache_dir else None for e, _, _ in self.extractors]
        values = [c.get(checksum) if c else None for c in caches]
        if any(v is None for v in values):
            if y is None:
                y = decode_clip(data, name, self.sample_rate, self.min_samples)
            clip = Clip(y, self.sample_rate)
            for i, (extractor, _, _) in enumerate(self.extractors):
                if values[i] is None:
                    # float32 like a cached value, so rows equal the workflow's table rows
                    values[i] = np.asarray(extractor.value(clip), dtype=np.float32)
                    if not np.isfinite(values[i]).all():
                        raise AudioError(name, f"non-finite {extractor.name} feature values")
                    if caches[i]:
                        caches[i].put(checksum, values[i])
        out = np.full(self.n_features, np.nan)
        for (extractor, own, pos), value in zip(self.extractors, values):
            out[pos] = extractor.to_row(value)[own]
        return out


@dataclass
class TrainedModel:
    """A saved run's model with the extractors, columns and label coding it needs."""

    bundle: dict
    path: Path
    reader: FeatureReader

    @classmethod
    def load(cls, path) -> TrainedModel:
        """From a run folder (``results/<dataset>/runs/<run>/``) or its ``model.joblib``."""
        import joblib

        path = Path(path)
        if path.is_dir():
            path = path / "model.joblib"
        if not path.is_file():
            raise ModelError(f"{path}: no such model file (give a run folder or its model.joblib)")
        try:
            bundle = joblib.load(path)
        except (ModuleNotFoundError, AttributeError) as err:
            if "serflow" not in str(err):
                raise ModelError(f"{path}: cannot load the model ({err!r})") from None
            raise ModelError(
                f"{path}: saved by an older serflow whose modules have moved ({err}); retrain it"
                " (snakemake reruns the run)"
            ) from None
        except Exception as err:
            raise ModelError(f"{path}: cannot load the model ({err!r})") from None
        if isinstance(bundle, dict) and bundle.get("kind") == "fusion":
            return FusedModel.from_bundle(bundle, path)
        if not isinstance(bundle, dict) or "model" not in bundle or "features" not in bundle:
            raise ModelError(f"{path}: not a serflow model (no model or feature metadata inside)")
        wanted = {name: i for i, name in enumerate(bundle["feature_names"])}
        found, extractors = 0, []
        for name, desc in bundle["features"]["extractors"].items():
            if name not in REGISTRY:
                raise ModelError(f"{path}: trained with extractor {name!r}, which this serflow lacks")
            extractor = REGISTRY[name](**desc["params"])
            names = extractor.names()
            if not any(n in wanted for n in names):
                continue
            own = np.array([i for i, n in enumerate(names) if n in wanted])
            extractors.append((extractor, own, np.array([wanted[names[i]] for i in own])))
            found += sum(n in wanted for n in names)
        if found != len(wanted):
            raise ModelError(f"{path}: {len(wanted) - found} of the model's columns come from no extractor")
        return cls(bundle, path, FeatureReader(tuple(extractors), len(wanted)))

    @property
    def labels(self) -> list[str]:
        return list(self.bundle["labels"])

    @property
    def normalisation(self) -> Normalisation:
        return Normalisation.from_bundle(self.bundle)

    @property
    def card(self) -> Path:
        return self.path.with_name("model_card.md")

    @property
    def name(self) -> str:
        return f"{self.bundle.get('dataset', '?')}/{self.path.parent.name}"

    def default_cache(self) -> Path | None:
        """The feature cache the model was trained with, when it still exists."""
        cache = self.bundle.get("cache_dir")
        return Path(cache) if cache and Path(cache).is_dir() else None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (one thread: the same numbers on any machine and any ``--jobs``)."""
        from threadpoolctl import threadpool_limits

        if len(x) == 0:
            return np.zeros((0, len(self.labels)))
        with threadpool_limits(limits=1):
            return self.bundle["model"].predict_proba(x)


@dataclass
class FusedModel:
    """A fusion run: the saved models of the runs it combines (its sibling run folders) and
    its combiner (``serflow.models.fusion``)."""

    bundle: dict
    path: Path
    bases: list[TrainedModel]

    @classmethod
    def from_bundle(cls, bundle: dict, path: Path) -> FusedModel:
        runs = bundle["fusion"]["runs"]
        folders = [path.parent.parent / run for run in runs]
        missing = [str(f) for f in folders if not (f / "model.joblib").is_file()]
        if missing:
            raise ModelError(
                f"{path}: a fusion of {', '.join(runs)}, whose models are missing: {', '.join(missing)}"
            )
        return cls(bundle, path, [TrainedModel.load(f) for f in folders])

    labels = TrainedModel.labels
    card = TrainedModel.card
    name = TrainedModel.name

    @property
    def normalisation(self) -> Normalisation:
        """Per speaker where any fused run normalises per speaker (what the command line checks)."""
        return next(
            (b.normalisation for b in self.bases if b.normalisation.speaker), self.bases[0].normalisation
        )

    def default_cache(self) -> Path | None:
        return self.bases[0].default_cache()


def collect_inputs(inputs) -> list[tuple[str, str | None]]:
    """(path, speaker or None) for every input: audio files, folders (searched recursively
    for the audio extensions the workflow reads, in sorted order) and CSV files with a path
    column (relative paths from the CSV's folder) and an optional ``speaker`` column.
    """
    import pandas as pd

    out: list[tuple[str, str | None]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            out += [(str(p), None) for p in found]
        elif path.suffix.lower() == ".csv" and path.is_file():
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            lower = {c.lower(): c for c in table.columns}
            column = next((lower[c] for c in PATH_COLUMNS if c in lower), None)
            if column is None:
                raise ValueError(f"{path}: no path column (one of {', '.join(PATH_COLUMNS)})")
            speakers = table[lower["speaker"]] if "speaker" in lower else [None] * len(table)
            for p, s in zip(table[column], speakers):
                p = Path(p) if Path(p).is_absolute() else path.parent / p
                out.append((str(p), s or None))
        else:
            out.append((str(path), None))
    return out


def _features_chunk(reader: FeatureReader, paths, cache_dir, threads: int = 1):
    from serflow.runtime import limit_threads

    limit = limit_threads(threads)  # noqa: F841 (kept while the chunk runs)
    rows, errors = [], []
    for path in paths:
        try:
            rows.append(reader.row(_read_bytes(path), path, cache_dir))
            errors.append(None)
        except AudioError as err:
            rows.append(None)
            errors.append(err.reason)
        except Exception as err:  # one broken clip must not stop the others
            rows.append(None)
            errors.append(f"feature extraction failed: {err!r}")
    return rows, errors


def predict_files(
    model: TrainedModel,
    items,
    jobs: int = 1,
    cache_dir=None,
    speaker_norm: str = "refuse",
    min_speaker_clips: int = MIN_SPEAKER_CLIPS,
    progress: bool = False,
):
    """One row per (path, speaker) item: path, speaker (when given), prediction, ``proba_<label>``,
    normalisation (normalising models) and error.

    Files are read in chunks over ``jobs`` processes; the row order is the input order.
    """
    import pandas as pd
    from joblib import Parallel, delayed

    if isinstance(model, FusedModel):
        return _predict_fused(model, items, jobs, cache_dir, speaker_norm, min_speaker_clips, progress)
    paths = [p for p, _ in items]
    size = max(1, min(32, -(-len(paths) // max(1, 4 * jobs))))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="clip", desc="predict", leave=False)
    rows, errors = [], []
    results = Parallel(n_jobs=max(1, jobs), backend="loky", return_as="generator")(
        delayed(_features_chunk)(model.reader, chunk, cache_dir) for chunk in chunks
    )
    for chunk_rows, chunk_errors in results:
        rows += chunk_rows
        errors += chunk_errors
        if bar:
            bar.update(len(chunk_rows))
    if bar:
        bar.close()
    ok = np.array([r is not None for r in rows], dtype=bool)
    n_features = len(model.bundle["feature_names"])
    x = np.vstack([r for r in rows if r is not None]) if ok.any() else np.zeros((0, n_features))
    speakers = [s for (_, s), good in zip(items, ok) if good]
    x, notes, norm_errors = model.normalisation.transform(x, speakers, speaker_norm, min_speaker_clips)
    keep = np.array([e is None for e in norm_errors], dtype=bool)
    proba = np.full((len(paths), len(model.labels)), np.nan)
    proba[np.flatnonzero(ok)[keep]] = model.predict_proba(x[keep])
    all_notes = [""] * len(paths)
    for j, i in enumerate(np.flatnonzero(ok)):
        all_notes[i] = notes[j]
        if norm_errors[j]:
            errors[i] = norm_errors[j]
    predicted = ~np.isnan(proba).any(axis=1)
    out = pd.DataFrame({"path": paths})
    if any(s is not None for _, s in items):
        out["speaker"] = [s for _, s in items]
    labels = model.labels
    out["prediction"] = [labels[int(np.argmax(p))] if good else "" for p, good in zip(proba, predicted)]
    for i, label in enumerate(labels):
        out[f"proba_{label}"] = proba[:, i]
    if model.normalisation.active:
        out["normalisation"] = all_notes
    out["error"] = [e or "" for e in errors]
    return out


def _predict_fused(model: FusedModel, items, *args):
    """``predict_files`` of each fused run, combined; a clip any run could not predict is not predicted."""
    tables = [predict_files(base, items, *args) for base in model.bases]
    labels = model.labels
    columns = [f"proba_{lab}" for lab in labels]
    probas = [t[columns].to_numpy(dtype=np.float64) for t in tables]
    ok = ~np.any([np.isnan(p).any(axis=1) for p in probas], axis=0)
    proba = np.full((len(items), len(labels)), np.nan)
    if ok.any():
        proba[ok] = model.bundle["fusion"]["combiner"].predict_proba([p[ok] for p in probas])
    out = tables[0].drop(columns=[c for c in ("normalisation", "error") if c in tables[0]])
    out["prediction"] = [labels[int(np.argmax(p))] if good else "" for p, good in zip(proba, ok)]
    out[columns] = proba
    notes = [t["normalisation"] for t in tables if "normalisation" in t]
    if notes:
        out["normalisation"] = ["; ".join(n for n in row if n) for row in zip(*notes)]
    errors = [t["error"] for t in tables]
    out["error"] = [next((e for e in row if e), "") for row in zip(*errors)]
    return out
