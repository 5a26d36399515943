"""Clip-level scalars of the raw signal: mean square energy and tempo (seed 003's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor


@dataclass(frozen=True)
class Signal(Extractor):
    """``signal_mean_square`` (mean of y**2) and ``signal_tempo_bpm`` (librosa's onset-strength
    tempo with its default mel analysis, ``tempo_hop_length`` apart), group ``signal``."""

    name: ClassVar[str] = "signal"
    GROUPS: ClassVar[tuple[str, ...]] = ("signal",)
    seconds_per_clip: ClassVar[float] = 0.2

    tempo_hop_length: int = 512

    def check(self) -> None:
        if self.tempo_hop_length < 1:
            raise ValueError("signal: tempo_hop_length must be positive")

    def columns(self) -> list[tuple[str, str]]:
        return [("signal_mean_square", "signal"), ("signal_tempo_bpm", "signal")]

    def compute(self, clip: Clip) -> np.ndarray:
        import librosa

        y, sr = clip.y, self.sample_rate
        onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=self.tempo_hop_length)
        tempo = librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=self.tempo_hop_length)[0]
        energy = np.mean(y.astype(np.float64) ** 2)
        return np.nan_to_num(np.array([energy, tempo]), nan=0.0).astype(np.float32)

    @property
    def min_samples(self) -> int:
        return 2048  # librosa's default n_fft of the onset analysis
