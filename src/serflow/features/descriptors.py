"""The default librosa descriptors: prosody, MFCC and deltas, spectral and mel functionals.

Frame-level descriptors from one STFT and one YIN pass, each summarised by functionals.
The analysis (STFT, mel, energy, YIN, voicing) is shared through the ``Clip`` with the
``extended`` extractor when both run in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor
from serflow.features.functionals import DEFAULT_FUNCTIONALS, check_functionals, deltas, functionals
from serflow.features.pitch import yin

SPECTRAL = ("zcr", "spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "spectral_flatness")
#: Parameters of the shared analysis (``analysis``): equal values share one STFT and YIN.
ANALYSIS_FIELDS = (
    "sample_rate",
    "n_fft",
    "hop_length",
    "n_mels",
    "f0_min",
    "f0_max",
    "f0_frame_length",
    "voicing_energy_db",
    "voicing_max_zcr",
    "rolloff_percent",
)


@dataclass(frozen=True)
class Analysis:
    """Parameters of the frame analysis shared by the librosa descriptor extractors."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 40
    f0_min: float = 60.0
    f0_max: float = 500.0
    f0_frame_length: int = 1024
    voicing_energy_db: float = 30.0
    voicing_max_zcr: float = 0.15
    rolloff_percent: float = 0.85
    delta_width: int = 9
    functionals: tuple[str, ...] = DEFAULT_FUNCTIONALS

    def check_analysis(self) -> None:
        check_functionals(self.functionals)
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

    @property
    def min_samples(self) -> int:
        """Shortest usable clip: one analysis frame."""
        return self.n_fft


def analysis(clip: Clip, p) -> dict:
    """The frame quantities of ``_analysis`` for ``clip``, computed once per parameter set."""
    key = ("librosa-analysis", *(getattr(p, f) for f in ANALYSIS_FIELDS))
    return clip.memo(key, lambda: _analysis(clip.y, p))


def width(n: int) -> int:
    return max(2, len(str(n - 1)))


def _analysis(y: np.ndarray, p) -> dict:
    """Every frame-level quantity the descriptors are built from, from one STFT and one YIN."""
    import librosa

    sr = p.sample_rate
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


def spectral_rows(fr: dict, params) -> np.ndarray:
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
    y: np.ndarray, params, frames: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Frame-level descriptors of a mono signal at ``params.sample_rate``.

    Returns (descriptors × frames in ``descriptor_names`` order, boolean voicing per
    frame, F0 in Hz per frame, tempo in BPM). ``frames``: the output of ``_frames(y,
    params)`` when already computed.
    """
    import librosa

    p, sr = params, params.sample_rate
    fr = frames if frames is not None else _analysis(y, params)
    mfcc = librosa.feature.mfcc(S=fr["mel_db"], n_mfcc=p.n_mfcc)
    desc = np.vstack(
        [
            fr["energy"],
            spectral_rows(fr, params),
            mfcc,
            deltas(mfcc, p.delta_width, 1),
            deltas(mfcc, p.delta_width, 2),
            fr["mel_db"],
        ]
    )
    onset = librosa.onset.onset_strength(S=fr["mel_db"], sr=sr, hop_length=p.hop_length)
    tempo = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=p.hop_length)[0])
    n = fr["n"]
    return desc[:, :n], fr["voiced"], fr["f0"], tempo


@dataclass(frozen=True)
class Descriptors(Analysis, Extractor):
    """F0, energy, spectral, MFCC (with deltas) and mel-band descriptors, summarised by functionals."""

    name: ClassVar[str] = "descriptors"
    # Version 3: the per-extractor store (values equal version 2 of the single extractor).
    version: ClassVar[int] = 3
    GROUPS: ClassVar[tuple[str, ...]] = ("prosody", "mfcc", "mfcc_deltas", "spectral", "mel")
    seconds_per_clip: ClassVar[float] = 0.5

    n_mfcc: int = 13

    def check(self) -> None:
        self.check_analysis()
        if self.n_mfcc < 1 or self.n_mels < 1:
            raise ValueError("n_mfcc and n_mels must be positive")

    def descriptor_names(self) -> list[str]:
        """Frame-level descriptors summarised with every functional (F0 excluded)."""
        wm, wl = width(self.n_mfcc), width(self.n_mels)
        mfcc = [f"mfcc{i:0{wm}d}" for i in range(self.n_mfcc)]
        return [
            "energy",
            *SPECTRAL,
            *mfcc,
            *(f"{m}_delta" for m in mfcc),
            *(f"{m}_delta2" for m in mfcc),
            *(f"mel{i:0{wl}d}" for i in range(self.n_mels)),
        ]

    def columns(self) -> list[tuple[str, str]]:
        fun = self.functionals
        cols = [(f"f0_{f}", "prosody") for f in fun] + [("f0_voiced_fraction", "prosody")]
        for d in self.descriptor_names():
            cols += [(f"{d}_{f}", _group(d)) for f in fun]
        return [*cols, ("tempo_bpm", "prosody")]

    def compute(self, clip: Clip) -> np.ndarray:
        fr = analysis(clip, self)
        desc, voiced, f0, tempo = frame_descriptors(clip.y, self, fr)
        times = np.arange(desc.shape[1]) * self.hop_length / self.sample_rate
        fun = self.functionals
        vec = np.concatenate(
            [
                functionals(f0[None, voiced], fun, times[voiced]).ravel(),
                [voiced.mean() if voiced.size else 0.0],
                functionals(desc, fun, times).ravel(),
                [tempo],
            ]
        )
        return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _group(descriptor: str) -> str:
    if descriptor == "energy":
        return "prosody"
    if descriptor.startswith("mfcc"):
        return "mfcc_deltas" if "_delta" in descriptor else "mfcc"
    if descriptor.startswith("mel"):
        return "mel"
    return "spectral"
