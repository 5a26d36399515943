"""Deterministic synthetic emotional-speech corpus for running the workflow offline.

Clips are speech-like: a band-limited harmonic (glottal-like) source with a
time-varying F0 contour and jitter, organised into syllables with onsets,
offsets and pauses, shaped by four vowel formants (cascaded 2nd-order
resonators), with aspiration/breath noise and occasional fricative onsets.
Emotions change pitch level and range, speaking rate, energy, spectral tilt,
jitter and breathiness; the per-clip parameters are drawn from overlapping
distributions, so the classes are separable but not perfectly. Each clip is
scaled to its emotion's loudness (whole-clip RMS in dBFS) with the peak limited
to 0.98, so nothing clips.

``generate_demo_corpus`` writes a competition-style folder::

    train.csv              id,path,label,speaker
    test.csv               id,path,speaker
    sample_submission.csv  id,label
    wav/train_0000.wav ... wav/test_0023.wav   (16-bit PCM, mono)

Every clip is generated from its own random generator derived from
``(seed, split, index)``, so output is byte-identical for equal arguments.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

# Default size of the corpus (labelled train clips, unlabelled test clips).
DEMO_N_TRAIN = 120
DEMO_N_TEST = 24

__all__ = [
    "EMOTIONS",
    "MORE_EMOTIONS",
    "demo_file_names",
    "generate_demo_corpus",
    "planned_clips",
    "synthesize_clip",
]

EMOTIONS = ("angry", "happy", "neutral", "sad")
#: ``n_emotions`` > 4 adds these, in this order (RAVDESS's eight with EMOTIONS).
MORE_EMOTIONS = ("calm", "fearful", "disgust", "surprised")

MAX_SPEAKERS = 64
MIN_SAMPLE_RATE = 8000
MIN_DURATION = 0.2
MAX_DURATION = 60.0

_SPLITS = {"train": 0, "test": 1}
_LAYOUT_KEY = 100  # spawn-key offset for the per-split layout generator


@dataclass(frozen=True)
class _Speaker:
    f0: float  # median speaking F0 in Hz (neutral)
    formant_scale: float  # vocal tract length: >1 means shorter tract, higher formants
    tilt_offset: float  # individual voice quality, dB/octave
    rate_scale: float  # individual speaking tempo


# Two low voices (spk1, spk2), two high voices (spk3, spk4), then extras.
_SPEAKERS = (
    _Speaker(112.0, 1.00, 0.0, 1.00),
    _Speaker(128.0, 0.97, -0.5, 0.96),
    _Speaker(205.0, 1.08, 0.5, 1.04),
    _Speaker(228.0, 1.05, -0.3, 0.98),
    _Speaker(98.0, 0.95, 0.3, 1.02),
    _Speaker(145.0, 1.02, -0.4, 1.00),
    _Speaker(185.0, 1.06, 0.2, 0.97),
    _Speaker(245.0, 1.10, -0.2, 1.03),
) + tuple(
    # Further voices, spread deterministically (golden-ratio steps) over the same ranges.
    _Speaker(
        95.0 + 160.0 * ((k * 0.618034) % 1.0),
        0.94 + 0.17 * ((k * 0.381966) % 1.0),
        -0.6 + 1.2 * ((k * 0.7548777) % 1.0),
        0.95 + 0.10 * ((k * 0.5698403) % 1.0),
    )
    for k in range(8, 64)
)


@dataclass(frozen=True)
class _Emotion:
    f0_ratio: float  # pitch level relative to the speaker's neutral F0
    range_st: float  # pitch excursion of accents, semitones
    rate: float  # syllables per second
    level_db: float  # speech RMS level, dBFS (energy / loudness)
    tilt: float  # harmonic roll-off, dB/octave (less negative = brighter)
    jitter: float  # relative cycle-to-cycle F0 perturbation
    breath: float  # aspiration noise relative to the harmonic source
    attack: float  # syllable onset time, seconds
    formant_shift: float  # global formant scaling (smiling, wide mouth)
    bandwidth: float  # formant bandwidth scaling (breathy voices are wider)


_EMOTION_PARAMS = {
    "angry": _Emotion(1.22, 5.0, 5.2, -18.0, -2.0, 0.014, 0.05, 0.010, 1.05, 1.00),
    "happy": _Emotion(1.28, 7.0, 4.8, -21.5, -4.5, 0.007, 0.06, 0.020, 1.04, 1.00),
    "neutral": _Emotion(1.00, 3.0, 4.0, -25.0, -7.0, 0.006, 0.07, 0.025, 1.00, 1.05),
    "sad": _Emotion(0.92, 1.8, 3.1, -28.5, -10.0, 0.011, 0.14, 0.040, 0.97, 1.25),
    "calm": _Emotion(0.96, 2.2, 3.5, -27.0, -9.0, 0.006, 0.10, 0.035, 0.99, 1.15),
    "fearful": _Emotion(1.32, 4.0, 5.0, -24.0, -6.0, 0.020, 0.11, 0.015, 1.02, 1.10),
    "disgust": _Emotion(0.95, 4.5, 3.3, -22.5, -5.0, 0.012, 0.08, 0.025, 0.96, 1.05),
    "surprised": _Emotion(1.38, 8.5, 4.4, -20.5, -4.0, 0.009, 0.06, 0.015, 1.03, 1.00),
}

# Per-clip spread around the emotion means (the overlap sets the difficulty).
_SPREAD = {
    "f0_log": 0.07,
    "range_st": 1.2,
    "rate": 0.45,
    "level_db": 1.2,
    "tilt": 1.0,
}

# Reference vowel formants F1..F4 (Hz, adult male) and bandwidths.
_VOWELS = np.array(
    [
        [730.0, 1090.0, 2440.0, 3400.0],  # a
        [530.0, 1840.0, 2480.0, 3500.0],  # e
        [300.0, 2250.0, 2950.0, 3700.0],  # i
        [570.0, 840.0, 2410.0, 3400.0],  # o
        [320.0, 900.0, 2250.0, 3300.0],  # u
        [660.0, 1720.0, 2410.0, 3450.0],  # ae
    ]
)
_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])

_F0_MIN, _F0_MAX = 60.0, 450.0
_PEAK_LIMIT = 0.98


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _check_duration_range(duration_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in duration_range)
    except (TypeError, ValueError):
        raise ValueError(f"duration_range must be a pair (min_s, max_s), got {duration_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"duration_range must be finite, got {duration_range!r}")
    if not MIN_DURATION <= lo <= hi <= MAX_DURATION:
        raise ValueError(
            f"duration_range must satisfy {MIN_DURATION} <= min <= max <= {MAX_DURATION} "
            f"seconds, got {duration_range!r}"
        )
    return lo, hi


def _stem(split: str, index: int, n: int) -> str:
    width = max(4, len(str(n - 1)))
    return f"{split}_{index:0{width}d}"


def demo_file_names(n_train: int = 120, n_test: int = 24) -> list[str]:
    """Relative paths of every file generate_demo_corpus writes (csvs + wavs), in a fixed order.

    Wav indices are zero-padded to 4 digits, or more when ``n`` needs them.
    """
    n_train = _check_int("n_train", n_train, 1)
    n_test = _check_int("n_test", n_test, 0)
    names = ["train.csv", "test.csv", "sample_submission.csv"]
    names += [f"wav/{_stem('train', i, n_train)}.wav" for i in range(n_train)]
    names += [f"wav/{_stem('test', i, n_test)}.wav" for i in range(n_test)]
    return names


def _resonator_sos(freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cascade of 2nd-order all-pole resonators with unit gain at DC."""
    keep = freqs < 0.45 * sample_rate
    freqs, bandwidths = freqs[keep], bandwidths[keep]
    r = np.exp(-np.pi * bandwidths / sample_rate)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sample_rate)
    a2 = r * r
    sos = np.zeros((len(freqs), 6))
    sos[:, 0] = 1.0 + a1 + a2
    sos[:, 3] = 1.0
    sos[:, 4] = a1
    sos[:, 5] = a2
    return sos


def _harmonic_source(phase: np.ndarray, f0: np.ndarray, tilt_db: float, sample_rate: int):
    """Band-limited harmonic series sum_k k**(tilt/6.02) sin(k*phase), faded out below 0.45*sr."""
    out = np.zeros_like(phase)
    if phase.size == 0:
        return out
    f_max = 0.45 * sample_rate
    fade = 0.1 * f_max
    f0_lo, f0_hi = float(f0.min()), float(f0.max())
    slope = tilt_db / (20.0 * math.log10(2.0))
    s_prev = np.zeros_like(phase)
    s_cur = np.sin(phase)
    two_cos = 2.0 * np.cos(phase)
    tmp = np.empty_like(phase)
    for k in range(1, int(f_max // f0_lo) + 1):
        weight = k**slope
        if k * f0_hi <= f_max - fade:  # whole harmonic is in band
            out += weight * s_cur
        else:
            np.multiply(f0, -k / fade, out=tmp)
            tmp += f_max / fade
            np.clip(tmp, 0.0, 1.0, out=tmp)
            tmp *= s_cur
            tmp *= weight
            out += tmp
        # sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x), computed in place
        np.multiply(two_cos, s_cur, out=tmp)
        tmp -= s_prev
        s_prev, s_cur, tmp = s_cur, tmp, s_prev
    return out


def _raised_ramp(n: int) -> np.ndarray:
    if n <= 0:
        return np.zeros(0)
    return np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2


def _syllable_plan(duration: float, rate: float, pause_scale: float, rng) -> list[tuple[float, float]]:
    """(start, end) times of voiced syllables with short gaps and occasional word pauses."""
    t = rng.uniform(0.03, 0.12)
    end = duration - rng.uniform(0.03, 0.10)
    period = 1.0 / rate
    syllables = []
    while True:
        length = 0.72 * period * math.exp(rng.normal(0.0, 0.25))
        length = max(length, 0.06)
        if t + length > end:
            if end - t >= 0.08 or not syllables:
                syllables.append((t, max(end, t + 0.05)))
            break
        syllables.append((t, t + length))
        t += length + 0.28 * period * math.exp(rng.normal(0.0, 0.3))
        if rng.random() < 0.22:  # word / phrase boundary
            t += pause_scale * rng.uniform(0.06, 0.22)
    return syllables


def synthesize_clip(
    emotion: str,
    speaker: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    duration_range=(1.0, 3.0),
) -> np.ndarray:
    """One float32 mono clip in [-1, 1].

    ``speaker`` is a 0-based index (``spk1`` is 0, at most 63); ``rng`` draws the
    duration (uniform in ``duration_range``) and every other random parameter.
    The clip is scaled to the emotion's RMS level, peak limited to 0.98.
    """
    if emotion not in _EMOTION_PARAMS:
        raise ValueError(f"unknown emotion {emotion!r}: use one of {', '.join(_EMOTION_PARAMS)}")
    speaker = _check_int("speaker", speaker, 0, MAX_SPEAKERS - 1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator")
    sample_rate = _check_int("sample_rate", sample_rate, MIN_SAMPLE_RATE)
    lo, hi = _check_duration_range(duration_range)
    sp, em = _SPEAKERS[speaker], _EMOTION_PARAMS[emotion]
    sr = sample_rate

    # Per-clip parameters from overlapping per-emotion distributions.
    duration = rng.uniform(lo, hi)
    n = max(1, int(round(duration * sr)))
    f0_base = sp.f0 * em.f0_ratio * math.exp(rng.normal(0.0, _SPREAD["f0_log"]))
    range_st = max(0.5, rng.normal(em.range_st, _SPREAD["range_st"]))
    rate = sp.rate_scale * max(2.0, rng.normal(em.rate, _SPREAD["rate"]))
    level_db = rng.normal(em.level_db, _SPREAD["level_db"])
    noise_db = rng.uniform(-68.0, -58.0)
    tilt = rng.normal(em.tilt + sp.tilt_offset, _SPREAD["tilt"])
    jitter = em.jitter * math.exp(rng.normal(0.0, 0.3))
    breath = em.breath * math.exp(rng.normal(0.0, 0.3))
    formant_scale = sp.formant_scale * em.formant_shift * math.exp(rng.normal(0.0, 0.02))
    pause_scale = 1.6 if emotion == "sad" else 1.0

    syllables = _syllable_plan(n / sr, rate, pause_scale, rng)
    n_syl = len(syllables)

    # F0 contour (semitones): per-syllable accents + declination, smoothed, + jitter.
    accents = range_st * rng.uniform(-0.35, 1.0, n_syl)
    knot_t, knot_v = [], []
    for (s, e), acc in zip(syllables, accents):
        fall = rng.uniform(0.2, 0.6) * range_st
        knot_t += [s, 0.5 * (s + e), e]
        knot_v += [0.6 * acc, acc, acc - fall]
    t = np.arange(n) / sr
    st = np.interp(t, knot_t, knot_v)
    b, a = scipy.signal.butter(1, 8.0, fs=sr)
    st = scipy.signal.filtfilt(b, a, st)
    st += range_st * 0.35 * (1.0 - 2.0 * t / max(t[-1], 1e-9))  # declination
    cycles = np.floor(t * f0_base).astype(np.int64)
    st += (12.0 / math.log(2.0)) * jitter * rng.standard_normal(cycles[-1] + 1)[cycles]
    f0 = np.clip(f0_base * 2.0 ** (st / 12.0), _F0_MIN, _F0_MAX)

    # Harmonic source, computed on the voiced samples only (phase stays continuous).
    phase = np.cumsum(2.0 * np.pi / sr * f0) + rng.uniform(0.0, 2.0 * np.pi)
    np.mod(phase, 2.0 * np.pi, out=phase)
    bounds = [(int(s * sr), min(int(e * sr), n)) for s, e in syllables]
    voiced = np.zeros(n, dtype=bool)
    for i0, i1 in bounds:
        voiced[i0:i1] = True
    source = np.zeros(n)
    source[voiced] = _harmonic_source(phase[voiced], f0[voiced], tilt, sr)
    src_rms = float(np.sqrt(np.mean(source[voiced] ** 2))) + 1e-12
    tail = int(0.04 * sr)
    out = np.zeros(n + tail)
    for (i0, i1), acc in zip(bounds, accents):
        m = i1 - i0
        if m <= 4:
            continue
        # Amplitude envelope: onset, slight decay, offset; louder when accented.
        attack = min(int(em.attack * sr * rng.uniform(0.7, 1.4)), m // 3)
        release = min(int(rng.uniform(0.03, 0.06) * sr), m // 3)
        env = np.linspace(1.0, rng.uniform(0.6, 0.9), m)
        env[:attack] *= _raised_ramp(attack)
        env[m - release :] *= _raised_ramp(release)[::-1]
        gain = math.exp(rng.normal(0.0, 0.2)) * (1.0 + 0.25 * acc / max(range_st, 1e-9))
        shimmer = 1.0 + 3.0 * jitter * rng.standard_normal(m)
        excitation = source[i0:i1] * shimmer + breath * src_rms * rng.standard_normal(m)
        excitation *= gain * env
        # Vowel formants for this syllable.
        vowel = _VOWELS[rng.integers(len(_VOWELS))]
        freqs = vowel * formant_scale * np.exp(rng.normal(0.0, 0.04, 4))
        bws = _BANDWIDTHS * em.bandwidth * np.exp(rng.normal(0.0, 0.1, 4))
        sos = _resonator_sos(freqs, bws, sr)
        vowel_out = scipy.signal.sosfilt(sos, np.concatenate([excitation, np.zeros(tail)]))
        out[i0 : i1 + tail] += vowel_out
        # Occasional fricative / burst consonant before the vowel.
        if rng.random() < 0.5:
            c_len = int(rng.uniform(0.02, 0.06) * sr)
            c0 = max(0, i0 - c_len)
            c_len = i0 - c0
            if c_len > 4:
                centre = min(rng.uniform(2500.0, 6000.0), 0.4 * sr)
                c_sos = _resonator_sos(np.array([centre]), np.array([1200.0]), sr)
                c_sos[0, :3] = [1.0, -1.0, 0.0]  # differentiate: remove low frequencies
                noise = scipy.signal.sosfilt(c_sos, rng.standard_normal(c_len))
                noise *= np.hanning(c_len)
                peak = float(np.max(np.abs(vowel_out))) + 1e-12
                noise *= rng.uniform(0.08, 0.25) * peak / (float(np.max(np.abs(noise))) + 1e-12)
                out[c0:i0] += noise
    out = out[:n]

    # Scale the speech to the emotion's loudness (RMS), add a low room-like
    # background noise, and limit the peak so that nothing ever clips.
    speech_rms = float(np.sqrt(np.mean(out**2))) + 1e-12
    out *= 10.0 ** (level_db / 20.0) / speech_rms
    hum = scipy.signal.lfilter([1.0], [1.0, -0.97], rng.standard_normal(n))
    hum *= 10.0 ** (noise_db / 20.0) / (float(np.sqrt(np.mean(hum**2))) + 1e-12)
    out += hum
    peak = float(np.max(np.abs(out)))
    if peak > _PEAK_LIMIT:
        out *= _PEAK_LIMIT / peak
    return out.astype(np.float32)


def _clip_plan(
    n: int, n_speakers: int, seed: int, split: str, n_emotions: int = len(EMOTIONS)
) -> tuple[np.ndarray, np.ndarray]:
    """(speaker index, emotion index) per clip: balanced over both, in seeded random order."""
    idx = np.arange(n)
    speakers = idx % n_speakers
    emotions = (idx // n_speakers + speakers) % n_emotions
    ss = np.random.SeedSequence(seed, spawn_key=(_LAYOUT_KEY + _SPLITS[split],))
    order = np.random.default_rng(ss).permutation(n)
    return speakers[order], emotions[order]


def _clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLITS[split], index)))


def _write_wav(path: Path, y: np.ndarray, sample_rate: int) -> None:
    pcm = np.round(np.clip(y, -1.0, 1.0) * 32767.0).astype(np.int16)
    sf.write(path, pcm, sample_rate, subtype="PCM_16", format="WAV")


def _emotions(n_emotions: int) -> tuple[str, ...]:
    n = _check_int("n_emotions", n_emotions, 2, len(EMOTIONS) + len(MORE_EMOTIONS))
    return (EMOTIONS + MORE_EMOTIONS)[:n]


def planned_clips(
    n_train: int = DEMO_N_TRAIN,
    n_test: int = DEMO_N_TEST,
    n_speakers: int = 4,
    seed: int = 0,
    duration_range=(1.0, 3.0),
    n_emotions: int = len(EMOTIONS),
    sample_rate: int = 16000,
) -> list[tuple[str, str, str | None, str, str]]:
    """(id, relative path, label or None, speaker, split) of every clip ``generate_demo_corpus``
    writes with these arguments, without writing anything."""
    n_speakers = _check_int("n_speakers", n_speakers, 1, MAX_SPEAKERS)
    emotions_used = _emotions(n_emotions)
    seed = _check_int("seed", seed, 0)
    out = []
    for split, n in (("train", _check_int("n_train", n_train, 1)), ("test", _check_int("n_test", n_test, 0))):
        speakers, emotions = _clip_plan(n, n_speakers, seed, split, len(emotions_used))
        for i in range(n):
            stem = _stem(split, i, n)
            label = emotions_used[emotions[i]] if split == "train" else None
            out.append((stem, f"wav/{stem}.wav", label, f"spk{speakers[i] + 1}", split))
    return out


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate_demo_corpus(
    out_dir,
    n_train: int = DEMO_N_TRAIN,
    n_test: int = DEMO_N_TEST,
    n_speakers: int = 4,
    sample_rate: int = 16000,
    duration_range=(1.0, 3.0),
    seed: int = 0,
    n_emotions: int = len(EMOTIONS),
) -> Path:
    """Write the corpus under out_dir and return out_dir.

    Clips are written one at a time (memory stays flat for large ``n``); the
    CSVs are written last. Test clips come from the same speakers and the same
    balanced emotion layout as training clips, with labels withheld. ``n_emotions``
    (2-8) takes the first of ``EMOTIONS + MORE_EMOTIONS``; ``n_speakers`` up to 64.
    """
    n_train = _check_int("n_train", n_train, 1)
    n_test = _check_int("n_test", n_test, 0)
    n_speakers = _check_int("n_speakers", n_speakers, 1, MAX_SPEAKERS)
    sample_rate = _check_int("sample_rate", sample_rate, MIN_SAMPLE_RATE)
    duration_range = _check_duration_range(duration_range)
    seed = _check_int("seed", seed, 0)
    emotions_used = _emotions(n_emotions)

    out_dir = Path(out_dir)
    wav_dir = out_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)

    tables = {}
    for split, n in (("train", n_train), ("test", n_test)):
        speakers, emotions = _clip_plan(n, n_speakers, seed, split, len(emotions_used))
        rows = []
        for i in range(n):
            stem = _stem(split, i, n)
            emotion = emotions_used[emotions[i]]
            y = synthesize_clip(
                emotion,
                int(speakers[i]),
                _clip_rng(seed, split, i),
                sample_rate=sample_rate,
                duration_range=duration_range,
            )
            _write_wav(wav_dir / f"{stem}.wav", y, sample_rate)
            rows.append((stem, f"wav/{stem}.wav", emotion, f"spk{speakers[i] + 1}"))
        tables[split] = rows

    placeholder = sorted(emotions_used)[0]
    _write_csv(out_dir / "train.csv", ["id", "path", "label", "speaker"], [list(r) for r in tables["train"]])
    _write_csv(out_dir / "test.csv", ["id", "path", "speaker"], [[r[0], r[1], r[3]] for r in tables["test"]])
    _write_csv(
        out_dir / "sample_submission.csv",
        ["id", "label"],
        [[r[0], placeholder] for r in tables["test"]],
    )
    return out_dir
