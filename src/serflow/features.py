"""Handcrafted acoustic features: frame-level descriptors summarised by functionals.

One extractor computes every descriptor from one load and one STFT; named feature
groups then select columns. ``feature_names(params)`` lists the columns of the
vector that ``extract_features(y, params)`` returns, in the same order.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields

import numpy as np

#: Bump when a change to this module or to ``serflow.audio.load_audio`` alters feature values or names.
EXTRACTOR_VERSION = "2"

DEFAULT_FUNCTIONALS = ("mean", "std", "min", "max", "p10", "p50", "p90", "range", "slope")
_NAMED_FUNCTIONALS = ("mean", "std", "min", "max", "range", "slope", "iqr", "skew", "kurtosis")
_PERCENTILE = re.compile(r"^p(\d{1,2})$")

SPECTRAL = ("zcr", "spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "spectral_flatness")
GROUPS = ("prosody", "mfcc", "mfcc_deltas", "spectral", "mel")
#: Built-in named feature sets; the config's ``feature_sets`` adds to or overrides them.
FEATURE_SETS = {
    "prosody": ("prosody",),
    "mfcc": ("mfcc",),
    "mfcc_deltas": ("mfcc", "mfcc_deltas"),
    "spectral": ("spectral",),
    "mel": ("mel",),
    "all": ("all",),
}


@dataclass(frozen=True)
class FeatureParams:
    """Extractor parameters; every field is part of the cache key."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 40
    n_mfcc: int = 13
    f0_min: float = 60.0
    f0_max: float = 500.0
    f0_frame_length: int = 1024
    voicing_energy_db: float = 30.0
    voicing_max_zcr: float = 0.15
    rolloff_percent: float = 0.85
    delta_width: int = 9
    functionals: tuple[str, ...] = field(default=DEFAULT_FUNCTIONALS)

    def __post_init__(self):
        object.__setattr__(self, "functionals", tuple(self.functionals))
        for name in self.functionals:
            if name not in _NAMED_FUNCTIONALS and not _PERCENTILE.match(name):
                raise ValueError(f"unknown functional {name!r}: use {', '.join(_NAMED_FUNCTIONALS)} or pNN")
        if len(set(self.functionals)) != len(self.functionals):
            raise ValueError("functionals contain duplicates")
        if self.f0_max <= self.f0_min:
            raise ValueError("f0_max must be greater than f0_min")
        if self.f0_max >= self.sample_rate / 2:
            raise ValueError("f0_max must be below the Nyquist frequency")
        if self.f0_frame_length < 2 * self.sample_rate / self.f0_min:
            raise ValueError("f0_frame_length must cover two periods of f0_min")
        if self.hop_length <= 0 or self.hop_length > self.n_fft:
            raise ValueError("hop_length must be in 1..n_fft")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ValueError("delta_width must be odd and >= 3")

    @classmethod
    def from_config(cls, cfg: dict | None) -> FeatureParams:
        """Build from a config mapping; unknown keys are an error."""
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown feature parameter(s): {', '.join(unknown)}")
        return cls(**cfg)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["functionals"] = list(self.functionals)
        return d

    @property
    def min_samples(self) -> int:
        """Shortest usable clip: one analysis frame."""
        return self.n_fft

    def cache_key(self) -> str:
        """Hash of the parameters, the extractor version and librosa's version."""
        import librosa

        blob = json.dumps(
            {"extractor": EXTRACTOR_VERSION, "librosa": librosa.__version__, **self.to_dict()},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _width(n: int) -> int:
    return max(2, len(str(n - 1)))


def descriptor_names(params: FeatureParams) -> list[str]:
    """Frame-level descriptors summarised with every functional (F0 excluded)."""
    wm, wl = _width(params.n_mfcc), _width(params.n_mels)
    mfcc = [f"mfcc{i:0{wm}d}" for i in range(params.n_mfcc)]
    return [
        "energy",
        *SPECTRAL,
        *mfcc,
        *(f"{m}_delta" for m in mfcc),
        *(f"{m}_delta2" for m in mfcc),
        *(f"mel{i:0{wl}d}" for i in range(params.n_mels)),
    ]


def feature_names(params: FeatureParams) -> list[str]:
    """Column names of the vector ``extract_features`` returns, in order."""
    fun = params.functionals
    names = [f"f0_{f}" for f in fun] + ["f0_voiced_fraction"]
    for d in descriptor_names(params):
        names += [f"{d}_{f}" for f in fun]
    return names + ["tempo_bpm"]


def feature_group(name: str) -> str:
    """The group (prosody, mfcc, mfcc_deltas, spectral, mel) a column belongs to."""
    if name.startswith(("f0_", "energy_")) or name == "tempo_bpm":
        return "prosody"
    if name.startswith("mfcc"):
        return "mfcc_deltas" if "_delta" in name else "mfcc"
    if name.startswith(("zcr_", "spectral_")):
        return "spectral"
    if name.startswith("mel"):
        return "mel"
    raise ValueError(f"column {name!r} belongs to no feature group")


def select_columns(names, groups) -> list[str]:
    """Columns of ``names`` in any of ``groups`` ('all' selects every column)."""
    groups = set(groups)
    unknown = groups - set(GROUPS) - {"all"}
    if unknown:
        raise ValueError(f"unknown feature group(s): {', '.join(sorted(unknown))}")
    if "all" in groups:
        return list(names)
    return [n for n in names if feature_group(n) in groups]


def functionals(x: np.ndarray, names, times: np.ndarray) -> np.ndarray:
    """Summarise each row of ``x`` (descriptors × frames) with the named functionals.

    ``times`` (seconds, one per frame) scale the slope. Returns an array of shape
    (rows, len(names)); rows with no frames give zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    rows, n = x.shape
    out = np.zeros((rows, len(names)))
    if n == 0:
        return out
    pct = sorted({int(m.group(1)) for m in map(_PERCENTILE.match, names) if m} | {25, 75})
    q = dict(zip(pct, np.percentile(x, pct, axis=1)))
    mean = x.mean(axis=1)
    std = x.std(axis=1)
    centred = x - mean[:, None]
    safe = np.where(std > 0, std, 1.0)
    for j, name in enumerate(names):
        if name == "mean":
            out[:, j] = mean
        elif name == "std":
            out[:, j] = std
        elif name == "min":
            out[:, j] = x.min(axis=1)
        elif name == "max":
            out[:, j] = x.max(axis=1)
        elif name == "range":
            out[:, j] = x.max(axis=1) - x.min(axis=1)
        elif name == "iqr":
            out[:, j] = q[75] - q[25]
        elif name == "slope":
            t = np.asarray(times, dtype=np.float64) - np.mean(times)
            if n > 1 and t @ t > 0:
                out[:, j] = centred @ t / (t @ t)
        elif name == "skew":
            out[:, j] = np.where(std > 0, (centred**3).mean(axis=1) / safe**3, 0.0)
        elif name == "kurtosis":
            out[:, j] = np.where(std > 0, (centred**4).mean(axis=1) / safe**4 - 3.0, 0.0)
        else:
            out[:, j] = q[int(_PERCENTILE.match(name).group(1))]
    return out


def _deltas(x: np.ndarray, width: int, order: int) -> np.ndarray:
    import librosa

    n = x.shape[1]
    width = min(width, n if n % 2 else n - 1)
    if width < 3:
        return np.zeros_like(x)
    return librosa.feature.delta(x, width=width, order=order)


def frame_descriptors(y: np.ndarray, params: FeatureParams) -> tuple[np.ndarray, np.ndarray, float]:
    """Frame-level descriptors of a mono signal at ``params.sample_rate``.

    Returns (descriptors × frames in ``descriptor_names`` order, boolean voicing per
    frame, F0 in Hz per frame, tempo in BPM).
    """
    import librosa

    p, sr = params, params.sample_rate
    y = np.asarray(y, dtype=np.float32)
    S = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length))
    power = S**2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=p.n_mels), ref=1.0)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=p.n_mfcc)
    energy = librosa.amplitude_to_db(
        librosa.feature.rms(S=S, frame_length=p.n_fft), ref=1.0, amin=1e-5, top_db=None
    )
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=p.n_fft, hop_length=p.hop_length)
    spectral = [
        zcr,
        librosa.feature.spectral_centroid(S=S, sr=sr),
        librosa.feature.spectral_bandwidth(S=S, sr=sr),
        librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=p.rolloff_percent),
        librosa.feature.spectral_flatness(S=power, power=1.0),
    ]
    desc = np.vstack(
        [
            energy,
            *spectral,
            mfcc,
            _deltas(mfcc, p.delta_width, 1),
            _deltas(mfcc, p.delta_width, 2),
            mel_db,
        ]
    )

    f0 = librosa.yin(
        y, fmin=p.f0_min, fmax=p.f0_max, sr=sr, frame_length=p.f0_frame_length, hop_length=p.hop_length
    )
    n = min(f0.shape[0], desc.shape[1])
    loud = energy[0, :n] >= energy.max() - p.voicing_energy_db
    # YIN always returns a period; frames pinned to the search bounds have none.
    in_range = (f0[:n] > p.f0_min * 1.02) & (f0[:n] < p.f0_max * 0.98)
    voiced = loud & in_range & (zcr[0, :n] <= p.voicing_max_zcr) & (energy[0, :n] > -60.0)
    onset = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=p.hop_length)
    tempo = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=p.hop_length)[0])
    return desc[:, :n], voiced, f0[:n], tempo


def extract_features(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The float32 feature vector of one clip, ordered as ``feature_names(params)``."""
    desc, voiced, f0, tempo = frame_descriptors(y, params)
    times = np.arange(desc.shape[1]) * params.hop_length / params.sample_rate
    fun = params.functionals
    vec = np.concatenate(
        [
            functionals(f0[None, voiced], fun, times[voiced]).ravel(),
            [voiced.mean() if voiced.size else 0.0],
            functionals(desc, fun, times).ravel(),
            [tempo],
        ]
    )
    return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
