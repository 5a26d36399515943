"""Speaker d-vectors of Resemblyzer's pretrained voice encoder (weights inside its wheel).

The encoder (a 3-layer LSTM over 40-band mel frames, GE2E-trained on speaker
verification) embeds partial utterances of 1.6 s and averages them, as
``resemblyzer.VoiceEncoder.embed_utterance`` does. It is rebuilt here from the wheel's
``pretrained.pt`` because importing ``resemblyzer`` imports ``webrtcvad``, whose PyPI
release needs ``pkg_resources`` (gone from current setuptools); silences are trimmed by
``trim: silero`` instead of its webrtcvad step. Requires the ``voice`` extra.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor

WIDTH = 256
PARTIAL_FRAMES = 160  # 1.6 s of 10-ms frames
SAMPLE_RATE = 16000
TARGET_DBFS = -30.0  # resemblyzer's volume normalisation (raise only)


def weights_path() -> Path:
    """``pretrained.pt`` of the installed resemblyzer, found without importing it."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the dvector extractor needs resemblyzer's weights: pip install -e '.[voice]'", name="resemblyzer"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


@functools.lru_cache(maxsize=1)
def _encoder():
    import torch
    from torch import nn

    class VoiceEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(40, WIDTH, 3, batch_first=True)
            self.linear = nn.Linear(WIDTH, WIDTH)

        def forward(self, mels):
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True)

    model = VoiceEncoder()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
    model.load_state_dict(state, strict=False)  # the file also holds GE2E's similarity scale
    return model.eval()


def partial_starts(n_samples: int, rate: float, min_coverage: float) -> list[int]:
    """First mel frame of each partial utterance (``VoiceEncoder.compute_partial_slices``)."""
    hop = SAMPLE_RATE // 100
    n_frames = int(np.ceil((n_samples + 1) / hop))
    step = int(np.round((SAMPLE_RATE / rate) / hop))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * hop) / (PARTIAL_FRAMES * hop)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    return starts


@dataclass(frozen=True)
class DVector(Extractor):
    """Columns ``dvector_d000`` .. ``dvector_d255`` (a unit-length speaker embedding), group ``dvector``.

    Clips at another ``sample_rate`` are resampled to the encoder's 16 kHz first."""

    name: ClassVar[str] = "dvector"
    GROUPS: ClassVar[tuple[str, ...]] = ("dvector",)
    PACKAGES: ClassVar[tuple[str, ...]] = ("librosa", "torch", "resemblyzer")
    seconds_per_clip: ClassVar[float] = 0.2
    mem_mb: ClassVar[int] = 2000
    in_all: ClassVar[bool] = False  # a voice feature: named sets and speakers: cluster ask for it

    #: Partial utterances per second of speech.
    partials_per_second: float = 1.3
    #: A last partial covering less than this share of 1.6 s is dropped (unless it is the only one).
    min_coverage: float = 0.75

    def check(self) -> None:
        if not 0.625 <= self.partials_per_second <= 100:
            raise ValueError("dvector: partials_per_second must be in 0.625..100 (partials cover the clip)")
        if not 0 < self.min_coverage <= 1:
            raise ValueError("dvector: min_coverage must be in (0, 1]")
        if importlib.util.find_spec("torch") is None:
            raise ValueError("dvector: needs PyTorch and resemblyzer: pip install -e '.[voice]'")

    def columns(self) -> list[tuple[str, str]]:
        return [(f"dvector_d{d:03d}", "dvector") for d in range(WIDTH)]

    def compute(self, clip: Clip) -> np.ndarray:
        import librosa
        import torch

        y = clip.y.astype(np.float32)
        if clip.sample_rate != SAMPLE_RATE:  # the encoder's rate, whatever the other extractors use
            import soxr

            y = soxr.resample(y, clip.sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
        dbfs = 10 * np.log10(max(float(np.mean(y.astype(np.float64) ** 2)), 1e-20))
        if dbfs < TARGET_DBFS:
            y = y * np.float32(10 ** ((TARGET_DBFS - dbfs) / 20))
        starts = partial_starts(len(y), self.partials_per_second, self.min_coverage)
        hop = SAMPLE_RATE // 100
        end = (starts[-1] + PARTIAL_FRAMES) * hop
        if end >= len(y):
            y = np.pad(y, (0, end - len(y)))
        mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=400, hop_length=hop, n_mels=40)
        mel = mel.astype(np.float32).T
        mels = np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
        with torch.no_grad():
            partials = _encoder()(torch.from_numpy(mels)).numpy()
        mean = partials.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)
