"""Reading audio: decode, mix to mono, resample, and probe files for the manifest."""

from __future__ import annotations

import hashlib
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioError(Exception):
    """A file that cannot be used, with the path and a specific reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What the manifest records about one decodable file."""

    duration_s: float
    sample_rate: int
    channels: int
    checksum: str
    frames: int = 0  # samples per channel

    def check_length(self, path, min_samples: int = 1, target_rate: int | None = None) -> None:
        """Raise AudioError when shorter than ``min_samples`` samples at ``target_rate``."""
        n = self.frames if target_rate is None else int(round(self.frames * target_rate / self.sample_rate))
        if n < min_samples:
            rate = self.sample_rate if target_rate is None else target_rate
            raise AudioError(
                path,
                f"shorter than one analysis frame ({n} samples at {rate} Hz < {min_samples})",
            )


def checksum_bytes(data: bytes) -> str:
    """Content checksum used as the feature-cache key (BLAKE2b, 128 bit, hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# libsndfile prefixes its messages with the repr of the file object (a memory address).
_OPENING = re.compile(r"^Error opening <[^>]*>: ")


def wav_truncation(data: bytes) -> str | None:
    """Why a RIFF/WAVE file's data chunk is cut short, or None.

    libsndfile silently decodes what is there; a copy interrupted mid-way would
    then enter the corpus as a shorter clip. Streamed files that declare an
    unknown size (0 or 0xFFFFFFFF) are not flagged.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            held = len(data) - pos - 8
            if size not in (0, 0xFFFFFFFF) and held < size:
                return f"truncated WAV: data chunk declares {size} bytes, the file holds {held}"
            return None
        pos += 8 + size + (size & 1)
    return None


def _decode(data: bytes, path) -> tuple[np.ndarray, int]:
    if not data:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(path, f"cannot decode audio ({_OPENING.sub('', str(err))})") from None
    truncated = wav_truncation(data)
    if truncated:
        raise AudioError(path, truncated)
    if y.shape[0] == 0:
        raise AudioError(path, "no audio samples")
    if not np.isfinite(y).all():
        raise AudioError(path, "audio contains NaN or infinite samples")
    return y, int(sr)


def _read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except OSError as err:
        raise AudioError(path, f"cannot read file ({err.strerror})") from None


def probe_audio(path, min_samples: int = 1, target_rate: int | None = None) -> AudioInfo:
    """Decode ``path`` fully and describe it, or raise AudioError with the reason.

    ``min_samples`` is the shortest usable length in samples at ``target_rate``
    (the analysis rate); shorter files are rejected.
    """
    data = _read_bytes(path)
    y, sr = _decode(data, path)
    info = AudioInfo(
        duration_s=y.shape[0] / sr,
        sample_rate=sr,
        channels=y.shape[1],
        checksum=checksum_bytes(data),
        frames=y.shape[0],
    )
    info.check_length(path, min_samples, target_rate)
    return info


def load_audio(path, sample_rate: int) -> np.ndarray:
    """Decode ``path``, mix to mono, remove any DC offset and resample to ``sample_rate`` (float32)."""
    return _mono_at(*_decode(_read_bytes(path), path), sample_rate)


def decode_clip(data: bytes, name, sample_rate: int, min_samples: int = 1) -> np.ndarray:
    """``load_audio`` of bytes already read (``name`` names the clip in errors).

    Raises AudioError when the clip is shorter than ``min_samples`` at ``sample_rate``.
    """
    y, sr = _decode(data, name)
    AudioInfo(y.shape[0] / sr, sr, y.shape[1], "", y.shape[0]).check_length(name, min_samples, sample_rate)
    return _mono_at(y, sr, sample_rate)


def _mono_at(y: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    y = y.mean(axis=1, dtype=np.float64) if y.shape[1] > 1 else y[:, 0].astype(np.float64)
    y = (y - y.mean()).astype(np.float32)
    if sr != sample_rate:
        y = soxr.resample(y, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)
