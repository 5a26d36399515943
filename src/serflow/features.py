"""Handcrafted acoustic features: frame-level descriptors summarised by functionals.

One extractor computes every descriptor from one load, one STFT and one YIN pass;
named feature groups then select columns. ``feature_names(params)`` lists the columns
of the vector that ``extract_features(y, params)`` returns, in the same order.
``FeatureParams(extended=True)`` appends the groups of ``EXTENDED_GROUPS`` after the
default columns, which stay unchanged. ``FeatureParams(opensmile=[...])`` appends the
functionals of openSMILE feature sets (optional ``opensmile`` package), computed from the
same loaded clip, as the groups of ``OPENSMILE_SETS``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields

import numpy as np

#: Bump when a change to this module or to ``serflow.audio.load_audio`` alters feature values or names.
EXTRACTOR_VERSION = "2"

DEFAULT_FUNCTIONALS = ("mean", "std", "min", "max", "p10", "p50", "p90", "range", "slope")
_NAMED_FUNCTIONALS = ("mean", "std", "min", "max", "range", "slope", "iqr", "skew", "kurtosis")
_PERCENTILE = re.compile(r"^p(\d{1,2})$")

SPECTRAL = ("zcr", "spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "spectral_flatness")
#: Groups of the default columns, then those only ``extended=True`` adds.
BASE_GROUPS = ("prosody", "mfcc", "mfcc_deltas", "spectral", "mel")
EXTENDED_GROUPS = ("spectral_shape", "spectral_deltas", "voice_quality", "prosody_dynamics", "rhythm")
#: openSMILE functional sets ``opensmile=[...]`` can add: feature set -> group (column prefix).
OPENSMILE_SETS = {"eGeMAPSv02": "egemaps", "ComParE_2016": "compare"}
#: openSMILE returns NaN for clips shorter than this.
OPENSMILE_MIN_SECONDS = 0.06
GROUPS = BASE_GROUPS + EXTENDED_GROUPS + tuple(OPENSMILE_SETS.values())

#: Band energies (dB) of the extended descriptors: (low, high) in Hz.
ENERGY_BANDS = ((0, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 8000))
CONTRAST_FMIN = 100.0
CONTRAST_BANDS = 6
ROLLOFFS = (25, 50, 95)
#: Rows of the spectral_shape group after the spectral contrast rows (one per frame).
SPECTRAL_SHAPE = (
    "spectral_flux",
    *(f"band_energy_{lo}_{hi}" for lo, hi in ENERGY_BANDS),
    "alpha_ratio",
    "hammarberg_index",
    "spectral_slope_0_500",
    "spectral_slope_500_1500",
    "spectral_slope",
    "spectral_entropy",
    "spectral_skewness",
    "spectral_kurtosis",
    *(f"spectral_rolloff{r}" for r in ROLLOFFS),
    "loudness",
)
#: Over all frames; YIN aperiodicity, its HNR proxy and their deltas.
VOICE_QUALITY = ("aperiodicity", "hnr", "aperiodicity_delta", "hnr_delta")
#: Over voiced frames only; the ``absdelta`` rows over pairs of adjacent voiced frames.
VOICED_ROWS = ("f0_semitones", "voiced_energy", "voiced_aperiodicity", "voiced_hnr")
VOICED_PAIR_ROWS = ("f0_semitones_delta", "f0_semitones_absdelta", "voiced_energy_absdelta")
ENERGY_DYNAMICS = ("energy_delta", "energy_delta2")
RHYTHM = (
    "rhythm_voiced_segments_per_s",
    "rhythm_voiced_segment_mean_s",
    "rhythm_voiced_segment_std_s",
    "rhythm_pause_mean_s",
    "rhythm_pause_std_s",
    "rhythm_pauses_per_s",
    "rhythm_duration_s",
)
_APERIODICITY_FLOOR = 1e-3
#: Built-in named feature sets; the config's ``feature_sets`` adds to or overrides them.
FEATURE_SETS = {
    "prosody": ("prosody",),
    "mfcc": ("mfcc",),
    "mfcc_deltas": ("mfcc", "mfcc_deltas"),
    "spectral": ("spectral",),
    "mel": ("mel",),
    "all": ("all",),
    "egemaps": ("egemaps",),
    "compare": ("compare",),
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
    #: Append the descriptors of ``EXTENDED_GROUPS`` (spectral shape and its deltas, voice
    #: quality, F0 and energy dynamics, rhythm); the default columns stay as they are.
    extended: bool = False
    #: openSMILE functional sets to append (keys of ``OPENSMILE_SETS``), in this order.
    opensmile: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "functionals", tuple(self.functionals))
        object.__setattr__(self, "opensmile", tuple(self.opensmile))
        for name in self.opensmile:
            if name not in OPENSMILE_SETS:
                raise ValueError(f"unknown openSMILE feature set {name!r}: use {', '.join(OPENSMILE_SETS)}")
        if len(set(self.opensmile)) != len(self.opensmile):
            raise ValueError("opensmile contains duplicates")
        if self.opensmile and importlib.util.find_spec("opensmile") is None:
            raise ValueError(
                "opensmile feature sets need the 'opensmile' package: pip install 'serflow[opensmile]'"
            )
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
        if self.extended and self.sample_rate < 2 * ENERGY_BANDS[-1][1]:
            raise ValueError(f"extended descriptors need sample_rate >= {2 * ENERGY_BANDS[-1][1]}")
        if self.extended and self.sample_rate / self.n_fft > 62.5:
            raise ValueError(
                "extended descriptors need n_fft >= sample_rate / 62.5 (bins at most 62.5 Hz apart)"
            )

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
        d["opensmile"] = list(self.opensmile)
        if not self.opensmile:  # keeps the cache keys of configs without openSMILE
            del d["opensmile"]
        return d

    @property
    def min_samples(self) -> int:
        """Shortest usable clip: one analysis frame (60 ms with openSMILE)."""
        if self.opensmile:
            return max(self.n_fft, math.ceil(OPENSMILE_MIN_SECONDS * self.sample_rate))
        return self.n_fft

    @property
    def groups(self) -> tuple[str, ...]:
        """The feature groups these parameters produce."""
        extended = EXTENDED_GROUPS if self.extended else ()
        return BASE_GROUPS + extended + tuple(OPENSMILE_SETS[s] for s in self.opensmile)

    def cache_key(self) -> str:
        """Hash of the parameters, the extractor version and librosa's version."""
        import librosa

        key = {"extractor": EXTRACTOR_VERSION, "librosa": librosa.__version__, **self.to_dict()}
        if self.opensmile:
            from importlib.metadata import version

            key["opensmile_version"] = version("opensmile")
        blob = json.dumps(key, sort_keys=True)
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


def _contrast_names() -> list[str]:
    return [f"spectral_contrast{i}" for i in range(CONTRAST_BANDS + 1)]


def extended_descriptor_names() -> tuple[list[str], list[str], list[str]]:
    """Frame-level descriptors of ``extended=True``: (over all frames, over voiced frames,
    over pairs of adjacent voiced frames), each summarised with every functional."""
    spectral = [*SPECTRAL, *_contrast_names(), *SPECTRAL_SHAPE]
    every = [*_contrast_names(), *SPECTRAL_SHAPE, *(f"{d}_delta" for d in spectral)]
    return [*every, *VOICE_QUALITY, *ENERGY_DYNAMICS], list(VOICED_ROWS), list(VOICED_PAIR_ROWS)


def _extended_row_groups() -> dict[str, str]:
    every, voiced, pairs = extended_descriptor_names()
    groups = {d: "spectral_shape" for d in (*_contrast_names(), *SPECTRAL_SHAPE)}
    groups.update({d: "spectral_deltas" for d in every if d.endswith("_delta") and d not in VOICE_QUALITY})
    groups.update({d: "voice_quality" for d in (*VOICE_QUALITY, "voiced_aperiodicity", "voiced_hnr")})
    dynamics = (*ENERGY_DYNAMICS, "f0_semitones", "voiced_energy", *pairs)
    groups.update({d: "prosody_dynamics" for d in dynamics})
    assert set(groups) == {*every, *voiced, *pairs}
    return groups


def feature_names(params: FeatureParams) -> list[str]:
    """Column names of the vector ``extract_features`` returns, in order."""
    fun = params.functionals
    names = [f"f0_{f}" for f in fun] + ["f0_voiced_fraction"]
    for d in descriptor_names(params):
        names += [f"{d}_{f}" for f in fun]
    names.append("tempo_bpm")
    if params.extended:
        for rows in extended_descriptor_names():
            names += [f"{d}_{f}" for d in rows for f in fun]
        names += RHYTHM
    for feature_set in params.opensmile:
        group = OPENSMILE_SETS[feature_set]
        names += [f"{group}_{name}" for name in _smile(feature_set).feature_names]
    return names


def feature_group(name: str) -> str:
    """The group (one of ``GROUPS``) a column belongs to."""
    prefix = name.split("_", 1)[0]
    if prefix in _OPENSMILE_GROUPS:
        return prefix
    descriptor = name.rsplit("_", 1)[0]
    if descriptor in _EXTENDED_ROW_GROUP:
        return _EXTENDED_ROW_GROUP[descriptor]
    if name in RHYTHM:
        return "rhythm"
    if name.startswith(("f0_", "energy_")) or name == "tempo_bpm":
        return "prosody"
    if name.startswith("mfcc"):
        return "mfcc_deltas" if "_delta" in name else "mfcc"
    if name.startswith(("zcr_", "spectral_")):
        return "spectral"
    if name.startswith("mel"):
        return "mel"
    raise ValueError(f"column {name!r} belongs to no feature group")


_EXTENDED_ROW_GROUP = _extended_row_groups()
_OPENSMILE_GROUPS = set(OPENSMILE_SETS.values())


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


def yin(
    y: np.ndarray,
    *,
    fmin: float,
    fmax: float,
    sr: float,
    frame_length: int,
    hop_length: int,
    trough_threshold: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.yin`` (centred frames, zero padding) that also returns the aperiodicity.

    Returns (F0 in Hz, the cumulative-mean-normalised difference at the chosen period),
    one value per frame. The F0 equals ``librosa.yin(y, fmin=fmin, fmax=fmax, sr=sr,
    frame_length=frame_length, hop_length=hop_length)``: the same steps in numpy.
    """
    import librosa

    y = np.pad(y, (frame_length // 2, frame_length // 2), mode="constant")
    frames = librosa.util.frame(y, frame_length=frame_length, hop_length=hop_length)
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / fmin)), frame_length - 1)

    # Cumulative mean normalised difference (de Cheveigné & Kawahara 2002, eq. 8).
    acf = librosa.autocorrelate(frames, max_size=max_period + 1, axis=-2)
    cum_energy = np.cumsum(np.square(frames[:max_period]), axis=-2)
    cum_energy[0] = 0  # as librosa.yin does (it zeroes that row before using it)
    diff = np.empty((max_period + 1, frames.shape[1]), dtype=cum_energy.dtype)
    diff[0] = 0
    diff[1:] = 2 * (acf[0:1] - acf[1 : max_period + 1]) - cum_energy[:max_period]
    cum_mean = np.cumsum(diff[1:], axis=-2) / np.arange(1, max_period + 1)[:, None]
    denominator = cum_mean[min_period - 1 : max_period]
    cmnd = diff[min_period:] / (denominator + librosa.util.tiny(denominator))

    # First trough below the threshold, else the global minimum.
    trough = np.zeros(cmnd.shape, dtype=bool)
    trough[1:-1] = (cmnd[1:-1] < cmnd[:-2]) & (cmnd[1:-1] <= cmnd[2:])
    trough[0] = cmnd[0] < cmnd[1]
    trough[-1] = cmnd[-1] < cmnd[-2]
    deep = trough & (cmnd < trough_threshold)
    period = np.where(deep.any(axis=0), np.argmax(deep, axis=0), np.argmin(cmnd, axis=0))

    # Parabolic refinement at the chosen period (0 at the edges or beyond one bin).
    cols = np.arange(cmnd.shape[1])
    inner = (period > 0) & (period < cmnd.shape[0] - 1)
    lo, mid, hi = (cmnd[np.clip(period + k, 0, cmnd.shape[0] - 1), cols] for k in (-1, 0, 1))
    a = hi + lo - 2 * mid
    b = (hi - lo) / 2
    ok = inner & (np.abs(b) < np.abs(a))
    shift = np.zeros(cmnd.shape[1], dtype=cmnd.dtype)
    shift[ok] = -b[ok] / a[ok]
    f0 = sr / (min_period + period + shift)
    return f0, mid


def _frames(y: np.ndarray, params: FeatureParams) -> dict:
    """Every frame-level quantity the descriptors are built from, from one STFT and one YIN."""
    import librosa

    p, sr = params, params.sample_rate
    y = np.asarray(y, dtype=np.float32)
    S = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length))
    power = S**2
    mel_power = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=p.n_mels)
    mel_db = librosa.power_to_db(mel_power, ref=1.0)
    energy = librosa.amplitude_to_db(
        librosa.feature.rms(S=S, frame_length=p.n_fft), ref=1.0, amin=1e-5, top_db=None
    )
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=p.n_fft, hop_length=p.hop_length)
    f0, aperiodicity = yin(
        y, fmin=p.f0_min, fmax=p.f0_max, sr=sr, frame_length=p.f0_frame_length, hop_length=p.hop_length
    )
    n = min(f0.shape[0], S.shape[1])
    loud = energy[0, :n] >= energy.max() - p.voicing_energy_db
    # YIN always returns a period; frames pinned to the search bounds have none.
    in_range = (f0[:n] > p.f0_min * 1.02) & (f0[:n] < p.f0_max * 0.98)
    voiced = loud & in_range & (zcr[0, :n] <= p.voicing_max_zcr) & (energy[0, :n] > -60.0)
    return {
        "S": S,
        "power": power,
        "mel_power": mel_power,
        "mel_db": mel_db,
        "energy": energy,
        "zcr": zcr,
        "f0": f0[:n],
        "aperiodicity": aperiodicity[:n],
        "voiced": voiced,
        "n": n,
    }


def _spectral_rows(fr: dict, params: FeatureParams) -> np.ndarray:
    """The ``SPECTRAL`` rows (× frames), computed once per clip and kept in ``fr``."""
    import librosa

    if "spectral" not in fr:
        S, sr = fr["S"], params.sample_rate
        fr["spectral"] = np.vstack(
            [
                fr["zcr"],
                librosa.feature.spectral_centroid(S=S, sr=sr),
                librosa.feature.spectral_bandwidth(S=S, sr=sr),
                librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=params.rolloff_percent),
                librosa.feature.spectral_flatness(S=fr["power"], power=1.0),
            ]
        )
    return fr["spectral"]


def frame_descriptors(
    y: np.ndarray, params: FeatureParams, frames: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Frame-level descriptors of a mono signal at ``params.sample_rate``.

    Returns (descriptors × frames in ``descriptor_names`` order, boolean voicing per
    frame, F0 in Hz per frame, tempo in BPM). ``frames``: the output of ``_frames(y,
    params)`` when already computed.
    """
    import librosa

    p, sr = params, params.sample_rate
    fr = frames if frames is not None else _frames(y, params)
    mfcc = librosa.feature.mfcc(S=fr["mel_db"], n_mfcc=p.n_mfcc)
    desc = np.vstack(
        [
            fr["energy"],
            _spectral_rows(fr, params),
            mfcc,
            _deltas(mfcc, p.delta_width, 1),
            _deltas(mfcc, p.delta_width, 2),
            fr["mel_db"],
        ]
    )
    onset = librosa.onset.onset_strength(S=fr["mel_db"], sr=sr, hop_length=p.hop_length)
    tempo = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=p.hop_length)[0])
    n = fr["n"]
    return desc[:, :n], fr["voiced"], fr["f0"], tempo


def _db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, 1e-10))


def _band(freqs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (freqs >= lo) & (freqs < hi)


def _slope_weights(freqs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row vector w with w @ x = least-squares slope of x over the masked bins, per kHz."""
    khz = freqs / 1000.0
    centred = np.where(mask, khz - khz[mask].mean(), 0.0)
    return centred / (centred @ centred)


def spectral_shape(fr: dict, params: FeatureParams) -> np.ndarray:
    """Spectral contrast rows then ``SPECTRAL_SHAPE`` rows (× frames) from the one STFT."""
    import librosa

    sr, n_fft = params.sample_rate, params.n_fft
    S = fr["S"].astype(np.float64)
    power = S**2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    contrast = librosa.feature.spectral_contrast(
        S=fr["S"], sr=sr, n_fft=n_fft, freq=freqs, fmin=CONTRAST_FMIN, n_bands=CONTRAST_BANDS
    )
    # Frame-to-frame change of the L1-normalised magnitude spectrum.
    norm = S / np.maximum(S.sum(axis=0), 1e-12)
    step = np.sqrt(np.sum(np.diff(norm, axis=1) ** 2, axis=0))
    flux = np.concatenate([step[:1] if step.size else [0.0], step])
    # Energies of bands (dB), alpha ratio, Hammarberg index, dB slopes.
    bands = np.array(
        [_band(freqs, lo, hi) for lo, hi in ENERGY_BANDS] + [_band(freqs, 50, 1000), _band(freqs, 1000, 5000)]
    )
    band_db = _db(bands.astype(np.float64) @ power)
    power_db = _db(power)
    hammarberg = power_db[freqs < 2000].max(axis=0) - power_db[_band(freqs, 2000, 5000)].max(axis=0)
    slopes = (
        np.array(
            [
                _slope_weights(freqs, _band(freqs, 0, 500)),
                _slope_weights(freqs, _band(freqs, 500, 1500)),
                _slope_weights(freqs, np.ones_like(freqs, dtype=bool)),
            ]
        )
        @ power_db
    )
    # Shape of the power distribution over frequency (kHz).
    dist = (power + 1e-20) / np.sum(power + 1e-20, axis=0)
    entropy = -np.sum(dist * np.log(dist), axis=0) / np.log(len(freqs))
    khz = freqs[:, None] / 1000.0
    dev = khz - np.sum(khz * dist, axis=0)
    var = np.maximum(np.sum(dev**2 * dist, axis=0), 1e-12)
    skewness = np.sum(dev**3 * dist, axis=0) / var**1.5
    kurtosis = np.sum(dev**4 * dist, axis=0) / var**2
    # Roll-offs as librosa.feature.spectral_rolloff (magnitude), three at once.
    cum = np.cumsum(S, axis=0)
    rolloffs = [freqs[np.argmax(cum >= r / 100 * cum[-1], axis=0)] for r in ROLLOFFS]
    loudness = np.log(np.maximum(np.sum(fr["mel_power"].astype(np.float64) ** 0.3, axis=0), 1e-10))
    return np.vstack(
        [
            contrast,
            flux,
            band_db[: len(ENERGY_BANDS)],
            band_db[-2] - band_db[-1],
            hammarberg,
            slopes,
            entropy,
            skewness,
            kurtosis,
            *rolloffs,
            loudness,
        ]
    )


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of the runs of True in a boolean vector."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return starts, ends - starts


def rhythm(voiced: np.ndarray, duration: float, frame_step: float) -> np.ndarray:
    """``RHYTHM`` scalars from the voicing of each frame (frames ``frame_step`` s apart).

    Pauses are the unvoiced runs between the first and the last voiced frame.
    """
    starts, lengths = _runs(voiced)
    segments = lengths * frame_step
    pauses = (starts[1:] - (starts[:-1] + lengths[:-1])) * frame_step
    per_s = 1.0 / max(duration, 1e-9)

    def mean_std(x):
        return (float(x.mean()), float(x.std())) if x.size else (0.0, 0.0)

    return np.array(
        [len(segments) * per_s, *mean_std(segments), *mean_std(pauses), len(pauses) * per_s, duration]
    )


def extended_descriptors(y: np.ndarray, fr: dict, params: FeatureParams) -> tuple[np.ndarray, ...]:
    """The rows of ``extended_descriptor_names``: (all frames, voiced frames, adjacent voiced
    pairs, each rows × frames), the frame times of each, and the ``RHYTHM`` scalars."""
    n, voiced, w = fr["n"], fr["voiced"], params.delta_width
    energy = fr["energy"][:, :n]
    shape = spectral_shape(fr, params)[:, :n]
    spectral = np.vstack([_spectral_rows(fr, params)[:, :n], shape])
    ap = np.clip(fr["aperiodicity"], _APERIODICITY_FLOOR, 1.0)
    ap[energy[0] <= -60.0] = 1.0
    hnr = 10.0 * np.log10(np.maximum(1.0 - ap, _APERIODICITY_FLOOR) / ap)
    quality = np.vstack([ap, hnr])
    every = np.vstack(
        [
            shape,
            _deltas(spectral, w, 1),
            quality,
            _deltas(quality, w, 1),
            _deltas(energy, w, 1),
            _deltas(energy, w, 2),
        ]
    )
    step = params.hop_length / params.sample_rate
    times = np.arange(n) * step
    semitones = 12.0 * np.log2(np.maximum(fr["f0"], 1e-3) / 27.5)
    on_voiced = np.vstack([semitones, energy[0], ap, hnr])[:, voiced]
    pair = voiced[1:] & voiced[:-1]
    d_st, d_energy = np.diff(semitones)[pair], np.diff(energy[0])[pair]
    on_pairs = np.vstack([d_st, np.abs(d_st), np.abs(d_energy)])
    scalars = rhythm(voiced, len(y) / params.sample_rate, step)
    return every, times, on_voiced, times[voiced], on_pairs, times[1:][pair], scalars


def extract_features(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The float32 feature vector of one clip, ordered as ``feature_names(params)``."""
    fr = _frames(y, params)
    desc, voiced, f0, tempo = frame_descriptors(y, params, fr)
    times = np.arange(desc.shape[1]) * params.hop_length / params.sample_rate
    fun = params.functionals
    parts = [
        functionals(f0[None, voiced], fun, times[voiced]).ravel(),
        [voiced.mean() if voiced.size else 0.0],
        functionals(desc, fun, times).ravel(),
        [tempo],
    ]
    if params.extended:
        every, t_every, on_voiced, t_voiced, on_pairs, t_pairs, scalars = extended_descriptors(y, fr, params)
        parts += [
            functionals(every, fun, t_every).ravel(),
            functionals(on_voiced, fun, t_voiced).ravel(),
            functionals(on_pairs, fun, t_pairs).ravel(),
            scalars,
        ]
    vec = np.nan_to_num(np.concatenate(parts), nan=0.0, posinf=0.0, neginf=0.0)
    # openSMILE values stay as they are: a NaN there means the clip was too short, and the
    # extraction rejects the clip.
    smile = [opensmile_functionals(y, params.sample_rate, s) for s in params.opensmile]
    return np.concatenate([vec, *smile]).astype(np.float32)


@functools.cache
def _smile(feature_set: str):
    # Built once per process: creating a Smile object takes about 0.3 s.
    import opensmile

    return opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)


def opensmile_functionals(y: np.ndarray, sample_rate: int, feature_set: str) -> np.ndarray:
    """openSMILE's functionals of ``feature_set`` (a key of ``OPENSMILE_SETS``) for one clip.

    Returns float64 values in the order of the set's feature names; NaN when the clip is
    shorter than ``OPENSMILE_MIN_SECONDS``.
    """
    # openSMILE converts to 16-bit integers by multiplying by 32768 without clipping:
    # a sample at full scale would wrap around.
    y = np.clip(np.asarray(y, dtype=np.float32), -1.0, 32767 / 32768)
    return _smile(feature_set).process_signal(y, sample_rate).to_numpy(dtype=np.float64).ravel()
