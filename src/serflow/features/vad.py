"""Speech span of a clip by Silero VAD (the ONNX/JIT model inside the ``silero-vad`` wheel).

``features: {trim: silero}`` cuts each clip to its first-to-last speech sample before any
extractor reads it; pauses inside the span are kept (they carry prosody). Requires the
``deep`` extra (PyTorch, silero-vad).
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def _model():
    try:
        import torch
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"trim: silero needs PyTorch and silero-vad: pip install -e '.[deep]' ({err})", name=err.name
        ) from None
    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"trim: silero needs silero-vad: pip install -e '.[deep]' ({err})", name=err.name
        ) from None
    torch.set_num_threads(threads)  # importing silero_vad sets one thread for the whole process
    return load_silero_vad(), get_speech_timestamps


def speech_span(y: np.ndarray, sample_rate: int, threshold: float = 0.5) -> tuple[int, int] | None:
    """(first, last + 1) sample of speech in ``y``, or None when Silero VAD finds none.

    The VAD runs at 16 kHz (8 kHz for clips below 16 kHz); spans map back to ``sample_rate``.
    """
    import torch

    model, get_speech_timestamps = _model()
    vad_rate = 16000 if sample_rate >= 16000 else 8000
    x = np.asarray(y, dtype=np.float32)
    if sample_rate != vad_rate:
        import librosa

        x = librosa.resample(x, orig_sr=sample_rate, target_sr=vad_rate)
    stamps = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(x)), model, threshold=threshold, sampling_rate=vad_rate
    )
    if not stamps:
        return None
    scale = sample_rate / vad_rate
    return int(stamps[0]["start"] * scale), min(len(y), int(round(stamps[-1]["end"] * scale)))
