"""YIN pitch tracking that also returns the aperiodicity."""

from __future__ import annotations

import numpy as np


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


def clip_yin(clip, *, fmin: float, fmax: float, frame_length: int, hop_length: int):
    """``yin`` of a ``Clip`` at its sample rate, computed once per clip and parameters."""
    return clip.memo(
        ("yin", fmin, fmax, frame_length, hop_length),
        lambda: yin(
            clip.y,
            fmin=fmin,
            fmax=fmax,
            sr=clip.sample_rate,
            frame_length=frame_length,
            hop_length=hop_length,
        ),
    )
