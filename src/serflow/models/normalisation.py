"""How feature rows are normalised before the model: in training, in each fold, for new clips.

One ``Normalisation`` per run: resolved from the model config and the table's speakers
(``for_run``), fitted by the final refit and saved in the model bundle as
``bundle["normalisation"]``, then used by ``training.predict``, ``serflow predict``, ``serve``,
the model card, the report and the submissions. The model's own pipeline still scales
globally after it; this is what comes before.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: Fewest clips of one speaker (or one test domain) to normalise new clips with their own statistics.
MIN_SPEAKER_CLIPS = 5
#: What becomes of new clips without enough clips of their speaker: refused, or scaled with
#: the training set's statistics.
FALLBACKS = ("refuse", "global")
#: Column groups of the two halves of the matrix of a per-group choice.
AS_IS, PER_GROUP = "as_is", "per_group"


def standardize(x: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit variance with ``x``'s own statistics (constant columns to 0)."""
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def speaker_standardize(x, speakers) -> np.ndarray:
    """Standardise each speaker's rows with that speaker's own mean and std.

    Labels are never used, so the held-out speaker of a fold may be normalised with
    its own clips. Constant columns of a speaker become 0.
    """
    x = np.asarray(x, dtype=np.float64)
    speakers = np.asarray(speakers)
    out = np.empty_like(x)
    for spk in np.unique(speakers):
        rows = speakers == spk
        out[rows] = standardize(x[rows])
    return out


def _speaker_or_none(s):
    return None if s is None or s != s or s == "" else str(s)


@dataclass(frozen=True)
class Normalisation:
    """Per-speaker standardisation (``speaker``), then test-domain standardisation (``domain``:
    the training clips and the test clips each with their own statistics).

    ``choice``: the speakers are estimated groups, and the inner folds choose between
    per-group standardisation and none (the fitted object holds the choice). ``applied``
    says what training did. ``mean``/``std`` (set by ``fitted``) are the raw training
    statistics, for new clips that cannot be normalised with their own.
    """

    speaker: bool = False
    domain: bool = False
    choice: bool = False
    applied: str = "none"
    mean: np.ndarray | None = field(default=None, repr=False, compare=False)
    std: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def for_run(cls, model: dict, table) -> Normalisation:
        """What the model config asks for, as far as the table's speakers allow."""
        domain = bool(model.get("domain_norm"))
        if not model.get("speaker_norm"):
            return cls(domain=domain)
        complete = len(table) > 0 and table["speaker"].notna().all()
        if table.attrs.get("speakers_estimated"):
            if complete and not model.get("feature_groups"):
                return cls(
                    domain=domain,
                    choice=True,
                    applied="per estimated group or none, chosen in each training fold",
                )
            # Clusters follow emotion as well as voice: normalising per cluster was measured to
            # destroy the emotion signal (issue 15), so it is never applied blindly.
            return cls(
                domain=domain, applied="none (requested, but the speakers are estimated groups: not applied)"
            )
        if not complete:
            return cls(
                domain=domain,
                applied="none (requested, but not every clip has a speaker: global scaling only)",
            )
        return cls(speaker=True, domain=domain, applied="per speaker")

    @classmethod
    def from_bundle(cls, bundle: dict) -> Normalisation:
        """The bundle's normalisation (also for bundles saved before it was one field)."""
        if isinstance(bundle.get("normalisation"), cls):
            return bundle["normalisation"]
        return cls(
            speaker=bool(bundle.get("speaker_norm")),
            domain=bool(bundle.get("domain_norm")),
            applied=bundle.get("speaker_norm_applied", "none"),
            mean=bundle.get("feature_mean"),
            std=bundle.get("feature_std"),
        )

    @property
    def active(self) -> bool:
        """Whether new clips are normalised (and their rows say how)."""
        return self.speaker or self.domain

    def matrix(self, table, columns) -> np.ndarray:
        """The table's rows (float64) with per-speaker standardisation over the table; with
        ``choice`` the rows as they are and per group, side by side (``AS_IS``, ``PER_GROUP``)."""
        x = table[columns].to_numpy(dtype=np.float64)
        if not (self.speaker or self.choice):
            return x
        normed = speaker_standardize(x, table["speaker"].astype(str).to_numpy())
        return np.hstack([x, normed]) if self.choice else normed

    def copy_matrix(self, table, columns, x, speakers) -> np.ndarray:
        """Rows of augmented copies (``x``, raw) as ``matrix`` gives their sources' rows: each
        standardised with the statistics of its speaker's clips in ``table`` (not its own)."""
        x = np.asarray(x, dtype=np.float64)
        if not (self.speaker or self.choice):
            return x
        clips = table[columns].to_numpy(dtype=np.float64)
        clip_speakers = table["speaker"].astype(str).to_numpy()
        speakers = np.asarray(speakers)
        normed = np.empty_like(x)
        for spk in np.unique(speakers):
            ref = clips[clip_speakers == spk]
            std = ref.std(axis=0)
            rows = speakers == spk
            normed[rows] = (x[rows] - ref.mean(axis=0)) / np.where(std > 0, std, 1.0)
        return np.hstack([x, normed]) if self.choice else normed

    def choice_kwargs(self, n_columns: int) -> dict:
        """``fit_model`` arguments that let the inner folds choose a half of ``matrix``."""
        if not self.choice:
            return {}
        return {
            "column_groups": [AS_IS] * n_columns + [PER_GROUP] * n_columns,
            "feature_groups": [[AS_IS], [PER_GROUP]],
        }

    def fold_sides(self, x_train: np.ndarray, x_test: np.ndarray):
        """One outer fold's training and test rows (each side its own domain with ``domain``)."""
        if self.domain:
            return standardize(x_train), standardize(x_test)
        return x_train, x_test

    def fitted(self, raw_train: np.ndarray, per_group: bool | None = None) -> Normalisation:
        """With the training statistics and, for a ``choice``, the inner folds' pick."""
        out = replace(self, mean=raw_train.mean(axis=0), std=raw_train.std(axis=0))
        if self.choice:
            applied = f"{'per estimated group' if per_group else 'none'} (chosen by the inner folds)"
            out = replace(out, choice=False, speaker=bool(per_group), applied=applied)
        return out

    def select(self, x: np.ndarray, n_columns: int) -> np.ndarray:
        """The chosen half of a ``choice`` matrix (after ``fitted``), else ``x``."""
        if x.shape[1] == n_columns:
            return x
        return x[:, n_columns:] if self.speaker else x[:, :n_columns]

    def training_scaled(self, x: np.ndarray) -> np.ndarray:
        """Rows scaled with the training set's statistics."""
        return (x - self.mean) / np.where(self.std > 0, self.std, 1.0)

    def transform(self, x, speakers=None, fallback: str = "refuse", min_clips: int = MIN_SPEAKER_CLIPS):
        """(rows ready for the model, note per row, error per row) for new clips, as in training.

        Rows whose speaker has at least ``min_clips`` of them are standardised with that
        speaker's statistics; the others are scaled with the training statistics when
        ``fallback='global'``, else refused (an error, no prediction). With ``domain`` the
        usable rows are then standardised together as one test domain, when there are at
        least ``min_clips`` (and 2) of them, else with the training statistics.
        """
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, not {fallback!r}")
        x = np.array(x, dtype=np.float64)
        n = len(x)
        notes, errors = [""] * n, [None] * n
        if self.speaker and n:
            x = self._per_speaker(x, speakers, fallback, min_clips, notes, errors)
        if self.domain and n:
            ok = np.array([e is None for e in errors], dtype=bool)
            x[ok], note = self.per_domain(x[ok], min_clips)
            for i in np.flatnonzero(ok):
                notes[i] = f"{notes[i]}, then {note}" if notes[i] else note
        return x, notes, errors

    def per_domain(self, x: np.ndarray, min_clips: int = MIN_SPEAKER_CLIPS):
        """(rows standardised together as one test domain, note); too few: training statistics."""
        n = len(x)
        if n >= max(2, min_clips):
            return standardize(x), f"test domain ({n} clips)"
        if n == 0:
            return x, ""
        return self.training_scaled(
            x
        ), f"training statistics: fewer than {max(2, min_clips)} clips to form a test domain"

    def _per_speaker(self, x, speakers, fallback, min_clips, notes, errors):
        n = len(x)
        spk = np.array([_speaker_or_none(s) for s in (speakers if speakers is not None else [None] * n)])
        counts = {s: int((spk == s).sum()) for s in set(spk.tolist()) if s is not None}
        enough = np.array([s is not None and counts[s] >= min_clips for s in spk], dtype=bool)
        if enough.any():
            x[enough] = speaker_standardize(x[enough], spk[enough])
            for i in np.flatnonzero(enough):
                notes[i] = f"per speaker ({counts[spk[i]]} clips)"
        for i in np.flatnonzero(~enough):
            why = (
                "no speaker given"
                if spk[i] is None
                else f"speaker '{spk[i]}' has {counts[spk[i]]} clip(s), fewer than {min_clips}"
            )
            if fallback == "global" and self.mean is not None:
                x[i] = self.training_scaled(x[i])
                notes[i] = f"global scaling: {why}"
            elif fallback == "global":
                errors[i] = (
                    f"{why}; the model predates saved training statistics: retrain it for global scaling"
                )
            else:
                errors[i] = (
                    f"the model normalises per speaker and {why}: give at least {min_clips} clips"
                    " per speaker, or use global scaling (--speaker-norm global)"
                )
        return x

    def describe(self) -> str:
        """How the run normalised its features (short, for tables, logs and cards)."""
        if self.domain:
            return "test domain" if self.applied == "none" else f"{self.applied}, then test domain"
        return self.applied


def from_metrics(metrics: dict) -> Normalisation:
    """A run's normalisation as its ``metrics.json`` records it (enough to ``describe`` it)."""
    return Normalisation(
        domain=bool(metrics.get("model", {}).get("domain_norm")),
        applied=metrics.get("speaker_norm", "none"),
    )
