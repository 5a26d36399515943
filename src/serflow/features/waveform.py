"""The clip's samples, for models that read audio themselves (``kind: finetune``).

Cached as frames of ``frame_samples`` samples (frames x frame_samples, the last frame
zero-padded); in the table padded with zeros or cut to ``pad_frames`` frames and
flattened in time order, so a row is the clip's first ``pad_frames * frame_samples``
samples. ``pad_frames`` shapes only the table: changing it recomputes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor


@dataclass(frozen=True)
class Waveform(Extractor):
    """Columns ``waveform_s000000`` ... (one per sample), group ``waveform``; not in ``all``."""

    name: ClassVar[str] = "waveform"
    GROUPS: ClassVar[tuple[str, ...]] = ("waveform",)
    PACKAGES: ClassVar[tuple[str, ...]] = ("soundfile", "soxr")
    OUTPUT_FIELDS: ClassVar[tuple[str, ...]] = ("pad_frames",)
    frame_level: ClassVar[bool] = True
    seconds_per_clip: ClassVar[float] = 0.01
    in_all: ClassVar[bool] = False

    #: Samples per cached frame (320: 20 ms at 16 kHz, a wav2vec2 frame).
    frame_samples: int = 320
    #: Frames per clip in the table (``pad_frames * frame_samples`` samples).
    pad_frames: int = 200

    def check(self) -> None:
        if self.frame_samples < 1:
            raise ValueError("waveform: frame_samples must be >= 1")
        if self.pad_frames < 1:
            raise ValueError("waveform: pad_frames must be >= 1 (the table holds padded clips)")

    @property
    def n_dims(self) -> int:
        return self.frame_samples

    def columns(self) -> list[tuple[str, str]]:
        n = self.pad_frames * self.frame_samples
        return [(f"waveform_s{i:0{max(6, len(str(n - 1)))}d}", "waveform") for i in range(n)]

    def compute(self, clip: Clip) -> np.ndarray:
        n = -(-clip.y.size // self.frame_samples)
        y = np.zeros(n * self.frame_samples, dtype=np.float32)
        y[: clip.y.size] = clip.y
        return y.reshape(n, self.frame_samples)

    def to_row(self, value: np.ndarray) -> np.ndarray:
        row = np.zeros((self.pad_frames, self.frame_samples), dtype=np.float32)
        keep = min(self.pad_frames, value.shape[0])
        row[:keep] = value[:keep]
        return row.ravel()
