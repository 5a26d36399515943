"""Frame-level features: per-clip matrices (frames x dims) cached as they are, pooled into columns.

``streams`` picks the blocks of the matrix, all on one frame grid (centred frames,
``hop_length`` apart): ``spectrogram`` (|STFT|, n_fft/2+1 bins), ``mel`` (mel power from
|STFT|^2, in dB with ``mel_db``), ``mfcc`` / ``mfcc_delta`` / ``mfcc_delta2`` (from the dB
mel, as ``librosa.feature.mfcc``), ``f0`` (YIN, Hz). The cache holds the matrix; pooling
(``pooling`` functionals, or ``pad_frames`` frames padded with zeros or cut, then flattened
per dimension) and ``normalize`` shape only the table columns, so changing them recomputes
nothing. ``read_sequences`` gives later models the matrices of any clips as a padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor
from serflow.features.functionals import check_functionals, deltas, functionals
from serflow.features.pitch import clip_yin

STREAMS = ("spectrogram", "mel", "mfcc", "mfcc_delta", "mfcc_delta2", "f0")


@dataclass(frozen=True)
class Frames(Extractor):
    """Frame-level matrices of the chosen ``streams``; each stream is the group ``frames_<stream>``."""

    name: ClassVar[str] = "frames"
    version: ClassVar[int] = 1
    GROUPS: ClassVar[tuple[str, ...]] = tuple(f"frames_{s}" for s in STREAMS)
    OUTPUT_FIELDS: ClassVar[tuple[str, ...]] = ("pooling", "pad_frames", "normalize")
    frame_level: ClassVar[bool] = True
    seconds_per_clip: ClassVar[float] = 0.3
    mem_mb: ClassVar[int] = 2500

    streams: tuple[str, ...] = ("mel",)
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 40
    #: mel stream in dB (``power_to_db``, ref 1, top 80 dB) instead of power.
    mel_db: bool = True
    n_mfcc: int = 13
    delta_width: int = 9
    f0_min: float = 60.0
    f0_max: float = 500.0
    f0_frame_length: int = 1024
    #: Functionals over frames for each dimension (ignored when ``pad_frames`` is set).
    pooling: tuple[str, ...] = ("mean",)
    #: When > 0: pad with zeros or cut every stream to this many frames and flatten it.
    pad_frames: int = 0
    #: ``l2``: scale each stream's pooled vector to unit length (per clip), or ``none``.
    normalize: str = "none"

    def check(self) -> None:
        unknown = [s for s in self.streams if s not in STREAMS]
        if unknown or not self.streams or len(set(self.streams)) != len(self.streams):
            raise ValueError(f"frames: streams must be distinct names among {', '.join(STREAMS)}")
        if self.hop_length <= 0 or self.hop_length > self.n_fft:
            raise ValueError("frames: hop_length must be in 1..n_fft")
        if self.pad_frames < 0:
            raise ValueError("frames: pad_frames must be >= 0")
        if not self.pad_frames:
            check_functionals(self.pooling)
        if self.normalize not in ("none", "l2"):
            raise ValueError("frames: normalize must be 'none' or 'l2'")
        if "f0" in self.streams and not (0 < self.f0_min < self.f0_max < self.sample_rate / 2):
            raise ValueError("frames: need 0 < f0_min < f0_max < sample_rate / 2")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ValueError("frames: delta_width must be odd and >= 3")

    @property
    def in_all(self) -> bool:
        """Pooled frames are functionals like any descriptor; padded ones are a network's input."""
        return not self.pad_frames

    def dims(self) -> dict[str, int]:
        """Stream -> number of dimensions, in matrix order."""
        size = {
            "spectrogram": self.n_fft // 2 + 1,
            "mel": self.n_mels,
            "mfcc": self.n_mfcc,
            "mfcc_delta": self.n_mfcc,
            "mfcc_delta2": self.n_mfcc,
            "f0": 1,
        }
        return {s: size[s] for s in self.streams}

    @property
    def n_dims(self) -> int:
        return sum(self.dims().values())

    def dim_names(self, stream: str) -> list[str]:
        n = self.dims()[stream]
        if n == 1:
            return [f"frames_{stream}"]
        digits = max(2, len(str(n - 1)))
        return [f"frames_{stream}{i:0{digits}d}" for i in range(n)]

    def columns(self) -> list[tuple[str, str]]:
        cols = []
        for s in self.streams:
            group = f"frames_{s}"
            for d in self.dim_names(s):
                if self.pad_frames:
                    cols += [(f"{d}_t{t:04d}", group) for t in range(self.pad_frames)]
                else:
                    cols += [(f"{d}_{f}", group) for f in self.pooling]
        return cols

    def compute(self, clip: Clip) -> np.ndarray:
        import librosa

        S = clip.magnitude(self.n_fft, self.hop_length)
        blocks: dict[str, np.ndarray] = {"spectrogram": S}
        wanted = set(self.streams)
        if wanted & {"mel", "mfcc", "mfcc_delta", "mfcc_delta2"}:
            mel = librosa.feature.melspectrogram(S=S**2, sr=self.sample_rate, n_mels=self.n_mels)
            mel_db = librosa.power_to_db(mel)
            blocks["mel"] = mel_db if self.mel_db else mel
            mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=self.n_mfcc)
            blocks["mfcc"] = mfcc
            if "mfcc_delta" in wanted:
                blocks["mfcc_delta"] = deltas(mfcc, self.delta_width, 1)
            if "mfcc_delta2" in wanted:
                blocks["mfcc_delta2"] = deltas(mfcc, self.delta_width, 2)
        if "f0" in wanted:
            f0, _ = clip_yin(
                clip,
                fmin=self.f0_min,
                fmax=self.f0_max,
                frame_length=self.f0_frame_length,
                hop_length=self.hop_length,
            )
            blocks["f0"] = f0[None, :]
        n = min(blocks[s].shape[1] for s in self.streams)
        matrix = np.vstack([blocks[s][:, :n] for s in self.streams]).T
        return np.ascontiguousarray(matrix, dtype=np.float32)

    def to_row(self, value: np.ndarray) -> np.ndarray:
        parts, start = [], 0
        times = np.arange(value.shape[0]) * self.hop_length / self.sample_rate
        for n in self.dims().values():
            x = value[:, start : start + n].T.astype(np.float64)  # dims x frames
            start += n
            if self.pad_frames:
                pooled = np.zeros((n, self.pad_frames))
                keep = min(self.pad_frames, x.shape[1])
                pooled[:, :keep] = x[:, :keep]
            else:
                pooled = functionals(x, self.pooling, times)
            pooled = pooled.ravel()
            if self.normalize == "l2":
                norm = np.linalg.norm(pooled)
                pooled = pooled / norm if norm > 0 else pooled
            parts.append(pooled)
        return np.nan_to_num(np.concatenate(parts), nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    @property
    def min_samples(self) -> int:
        return self.n_fft


def read_sequences(extractor: Frames, cache_root, checksums, streams=None):
    """The cached matrices of the clips with ``checksums`` as one zero-padded batch.

    Returns (float32 array clips x max frames x dims, int64 frame counts). ``streams``
    (default: all of the extractor's) picks blocks of the dimensions. A clip missing from
    the cache raises KeyError naming its checksum: extract it first.
    """
    from serflow.features.cache import FeatureCache

    cache = FeatureCache(cache_root, extractor)
    dims = extractor.dims()
    index, start = [], 0
    for s, n in dims.items():
        if streams is None or s in streams:
            index += range(start, start + n)
        start += n
    mats = []
    for c in checksums:
        m = cache.get(c)
        if m is None:
            raise KeyError(f"clip {c} is not in the {extractor.name!r} cache at {Path(cache_root)}")
        mats.append(m[:, index])
    lengths = np.array([m.shape[0] for m in mats], dtype=np.int64)
    batch = np.zeros((len(mats), int(lengths.max(initial=0)), len(index)), dtype=np.float32)
    for i, m in enumerate(mats):
        batch[i, : m.shape[0]] = m
    return batch, lengths
