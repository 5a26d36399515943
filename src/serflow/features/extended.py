"""Extended descriptors: spectral shape and its deltas, voice quality, F0/energy dynamics, rhythm.

Computed from the same analysis as ``descriptors`` (shared through the ``Clip`` when both
run in one process); its own parameters are the spectral contrast bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor
from serflow.features.descriptors import SPECTRAL, Analysis, analysis, spectral_rows
from serflow.features.functionals import deltas, functionals

#: Band energies (dB) of the extended descriptors: (low, high) in Hz.
ENERGY_BANDS = ((0, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 8000))
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


def _db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, 1e-10))


def _band(freqs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (freqs >= lo) & (freqs < hi)


def _slope_weights(freqs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row vector w with w @ x = least-squares slope of x over the masked bins, per kHz."""
    khz = freqs / 1000.0
    centred = np.where(mask, khz - khz[mask].mean(), 0.0)
    return centred / (centred @ centred)


def spectral_shape(fr: dict, params) -> np.ndarray:
    """Spectral contrast rows then ``SPECTRAL_SHAPE`` rows (× frames) from the one STFT."""
    import librosa

    sr, n_fft = params.sample_rate, params.n_fft
    S = fr["S"].astype(np.float64)
    power = S**2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    contrast = librosa.feature.spectral_contrast(
        S=fr["S"], sr=sr, n_fft=n_fft, freq=freqs, fmin=params.contrast_fmin, n_bands=params.contrast_bands
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


def extended_descriptors(y: np.ndarray, fr: dict, params) -> tuple[np.ndarray, ...]:
    """The rows of ``extended_descriptor_names``: (all frames, voiced frames, adjacent voiced
    pairs, each rows × frames), the frame times of each, and the ``RHYTHM`` scalars."""
    n, voiced, w = fr["n"], fr["voiced"], params.delta_width
    energy = fr["energy"][:, :n]
    shape = spectral_shape(fr, params)[:, :n]
    spectral = np.vstack([spectral_rows(fr, params)[:, :n], shape])
    ap = np.clip(fr["aperiodicity"], _APERIODICITY_FLOOR, 1.0)
    ap[energy[0] <= -60.0] = 1.0
    hnr = 10.0 * np.log10(np.maximum(1.0 - ap, _APERIODICITY_FLOOR) / ap)
    quality = np.vstack([ap, hnr])
    every = np.vstack(
        [
            shape,
            deltas(spectral, w, 1),
            quality,
            deltas(quality, w, 1),
            deltas(energy, w, 1),
            deltas(energy, w, 2),
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


@dataclass(frozen=True)
class Extended(Analysis, Extractor):
    """Spectral shape, spectral deltas, voice quality, prosody dynamics and rhythm functionals."""

    name: ClassVar[str] = "extended"
    version: ClassVar[int] = 3
    GROUPS: ClassVar[tuple[str, ...]] = (
        "spectral_shape",
        "spectral_deltas",
        "voice_quality",
        "prosody_dynamics",
        "rhythm",
    )
    seconds_per_clip: ClassVar[float] = 1.0

    #: Lowest edge (Hz) and number of octave bands of the spectral contrast rows.
    contrast_fmin: float = 100.0
    contrast_bands: int = 6

    def check(self) -> None:
        self.check_analysis()
        if self.sample_rate < 2 * ENERGY_BANDS[-1][1]:
            raise ValueError(f"extended descriptors need sample_rate >= {2 * ENERGY_BANDS[-1][1]}")
        if self.sample_rate / self.n_fft > 62.5:
            raise ValueError(
                "extended descriptors need n_fft >= sample_rate / 62.5 (bins at most 62.5 Hz apart)"
            )
        if self.contrast_bands < 1 or self.contrast_fmin <= 0:
            raise ValueError("contrast_bands and contrast_fmin must be positive")
        if self.contrast_fmin * 2**self.contrast_bands >= self.sample_rate / 2:
            raise ValueError("contrast_fmin * 2**contrast_bands must be below the Nyquist frequency")

    def contrast_names(self) -> list[str]:
        return [f"spectral_contrast{i}" for i in range(self.contrast_bands + 1)]

    def descriptor_names(self) -> tuple[list[str], list[str], list[str]]:
        """Frame-level rows: (over all frames, over voiced frames, over pairs of adjacent
        voiced frames), each summarised with every functional."""
        contrast = self.contrast_names()
        spectral = [*SPECTRAL, *contrast, *SPECTRAL_SHAPE]
        every = [*contrast, *SPECTRAL_SHAPE, *(f"{d}_delta" for d in spectral)]
        return [*every, *VOICE_QUALITY, *ENERGY_DYNAMICS], list(VOICED_ROWS), list(VOICED_PAIR_ROWS)

    def _row_group(self, row: str) -> str:
        if row in VOICE_QUALITY or row in ("voiced_aperiodicity", "voiced_hnr"):
            return "voice_quality"
        if row in (*ENERGY_DYNAMICS, "f0_semitones", "voiced_energy", *VOICED_PAIR_ROWS):
            return "prosody_dynamics"
        if row.endswith("_delta"):
            return "spectral_deltas"
        return "spectral_shape"

    def columns(self) -> list[tuple[str, str]]:
        cols = []
        for rows in self.descriptor_names():
            cols += [(f"{d}_{f}", self._row_group(d)) for d in rows for f in self.functionals]
        return cols + [(r, "rhythm") for r in RHYTHM]

    def compute(self, clip: Clip) -> np.ndarray:
        fun = self.functionals
        fr = analysis(clip, self)
        every, t_every, on_voiced, t_voiced, on_pairs, t_pairs, scalars = extended_descriptors(
            clip.y, fr, self
        )
        vec = np.concatenate(
            [
                functionals(every, fun, t_every).ravel(),
                functionals(on_voiced, fun, t_voiced).ravel(),
                functionals(on_pairs, fun, t_pairs).ravel(),
                scalars,
            ]
        )
        return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
