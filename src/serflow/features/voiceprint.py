"""Voice descriptors for grouping clips by speaker: who speaks, as far as it differs from how.

Cepstral means and spreads, the long-term average spectrum (level removed) and the pitch
register over the clip's active frames: vocal-tract and voice traits. Emotion moves them
too; ``serflow.corpus.speakers`` projects the emotion directions out before clustering them
(``speakers: cluster``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor
from serflow.features.pitch import clip_yin

F0_PERCENTILES = (10, 50, 90)


@dataclass(frozen=True)
class Voiceprint(Extractor):
    """Columns ``voiceprint_mfcc<k>_mean``/``_std`` (k = 1..voice_n_mfcc-1),
    ``voiceprint_ltas<j>`` and ``voiceprint_log_f0_p10/p50/p90`` (YIN over voiced active
    frames), group ``voiceprint``."""

    name: ClassVar[str] = "voiceprint"
    GROUPS: ClassVar[tuple[str, ...]] = ("voiceprint",)
    seconds_per_clip: ClassVar[float] = 0.05
    in_all: ClassVar[bool] = False  # it serves speaker grouping

    n_fft: int = 512
    hop_length: int = 160
    voice_n_mels: int = 40
    voice_n_mfcc: int = 20
    voice_active_db: float = 30.0
    f0_min: float = 60.0
    f0_max: float = 500.0
    f0_frame_length: int = 1024

    def check(self) -> None:
        if not 2 <= self.voice_n_mfcc <= self.voice_n_mels:
            raise ValueError("voiceprint: voice_n_mfcc must be in 2..voice_n_mels")
        if self.hop_length <= 0 or self.hop_length > self.n_fft:
            raise ValueError("voiceprint: hop_length must be in 1..n_fft")
        if not 0 < self.f0_min < self.f0_max < self.sample_rate / 2:
            raise ValueError("voiceprint: need 0 < f0_min < f0_max < sample_rate / 2")

    def columns(self) -> list[tuple[str, str]]:
        ks = range(1, self.voice_n_mfcc)
        cols = [f"voiceprint_mfcc{k}_{s}" for s in ("mean", "std") for k in ks]
        cols += [f"voiceprint_ltas{j}" for j in range(self.voice_n_mels)]
        cols += [f"voiceprint_log_f0_p{q}" for q in F0_PERCENTILES]
        return [(c, "voiceprint") for c in cols]

    def compute(self, clip: Clip) -> np.ndarray:
        import librosa

        power = clip.magnitude(self.n_fft, self.hop_length) ** 2
        mel = librosa.feature.melspectrogram(S=power, sr=self.sample_rate, n_mels=self.voice_n_mels)
        log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        level = librosa.power_to_db(power.sum(axis=0), ref=1.0, amin=1e-10, top_db=None)
        active = level >= level.max() - self.voice_active_db
        log_mel = log_mel[:, active]
        mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=self.voice_n_mfcc)[1:]
        ltas = log_mel.mean(axis=1)
        f0, aperiodicity = clip_yin(
            clip,
            fmin=self.f0_min,
            fmax=self.f0_max,
            frame_length=self.f0_frame_length,
            hop_length=self.hop_length,
        )
        n = min(len(f0), len(active))
        voiced = (aperiodicity[:n] < 0.2) & active[:n]
        middle = np.array([np.sqrt(self.f0_min * self.f0_max)])  # no voiced frame
        log_f0 = np.log(f0[:n][voiced] if voiced.any() else middle)
        pitch = np.percentile(log_f0, F0_PERCENTILES)
        row = np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1), ltas - ltas.mean(), pitch])
        return np.nan_to_num(row, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    @property
    def min_samples(self) -> int:
        return self.n_fft
