"""Waveform transforms for augmented training copies: pure functions of (samples, rate, RNG).

Each transform is a frozen dataclass of its parameters (a range ``[low, high]`` is drawn
uniformly per copy, a single number is fixed) and a probability ``p`` of being applied,
as audiomentations' transforms (not used here: it caps soxr below the version serflow
resamples every corpus with). A new transform is one class here with a ``name``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import numpy as np

#: Noise colours: the power spectrum's slope, 1 / f ** exponent.
COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def _number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _range(value, name: str) -> tuple[float, float]:
    pair = (value, value) if _number(value) else value
    ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_number(v) for v in pair)
    if not ok or pair[0] > pair[1]:
        raise ValueError(f"{name} must be a number or [low, high] with low <= high, not {value!r}")
    return float(pair[0]), float(pair[1])


def _draw(rng: np.random.Generator, value) -> float:
    low, high = _range(value, "range")
    return low if low == high else float(rng.uniform(low, high))


@dataclass(frozen=True)
class Transform:
    """Base of every transform: ``p`` is the chance that a copy gets it."""

    name: ClassVar[str]
    #: Parameters given as a number or [low, high] (checked by ``__post_init__``).
    RANGES: ClassVar[tuple[str, ...]] = ()

    p: float = 1.0

    def __post_init__(self):
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        if not _number(self.p) or not 0 <= self.p <= 1:
            raise ValueError(f"{self.name}: p must be in [0, 1], not {self.p}")
        for name in self.RANGES:
            _range(getattr(self, name), f"{self.name}: {name}")
        self.check()

    def check(self) -> None:
        """Raise ValueError naming the parameter when a value does not fit."""

    def apply(self, y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        # The draw happens either way: whether one transform applies never shifts the next one's numbers.
        if rng.random() >= self.p:
            return y
        return np.asarray(self.apply(y, sample_rate, rng), dtype=np.float32)

    def params(self) -> dict:
        return {
            "name": self.name,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()},
        }


@dataclass(frozen=True)
class Noise(Transform):
    """Additive noise at a signal-to-noise ratio (dB, from the clip's mean power); white, pink or brown."""

    name: ClassVar[str] = "noise"
    RANGES: ClassVar[tuple[str, ...]] = ("snr_db",)

    snr_db: float | tuple[float, float] = (10.0, 30.0)
    colour: str = "white"

    def check(self):
        if self.colour not in COLOURS:
            raise ValueError(f"noise: colour must be one of {', '.join(COLOURS)}, not {self.colour!r}")

    def apply(self, y, sample_rate, rng):
        snr = _draw(rng, self.snr_db)
        noise = rng.standard_normal(y.size)
        if COLOURS[self.colour] and y.size > 1:
            spectrum = np.fft.rfft(noise)
            f = np.arange(spectrum.size, dtype=np.float64)
            f[0] = f[1]
            noise = np.fft.irfft(spectrum / f ** (COLOURS[self.colour] / 2), n=y.size)
        power = float(np.mean(np.square(y, dtype=np.float64)))
        noise_power = float(np.mean(noise**2))
        if power == 0 or noise_power == 0:
            return y
        return y + noise * np.sqrt(power / noise_power / 10 ** (snr / 10))


@dataclass(frozen=True)
class Gain(Transform):
    """The clip louder or quieter by a number of decibels."""

    name: ClassVar[str] = "gain"
    RANGES: ClassVar[tuple[str, ...]] = ("db",)

    db: float | tuple[float, float] = (-6.0, 6.0)

    def apply(self, y, sample_rate, rng):
        return y * 10 ** (_draw(rng, self.db) / 20)


@dataclass(frozen=True)
class PitchShift(Transform):
    """Pitch moved by semitones, duration kept (``librosa.effects.pitch_shift``)."""

    name: ClassVar[str] = "pitch_shift"
    RANGES: ClassVar[tuple[str, ...]] = ("semitones",)

    semitones: float | tuple[float, float] = (-2.0, 2.0)

    def apply(self, y, sample_rate, rng):
        import librosa

        steps = _draw(rng, self.semitones)
        return y if steps == 0 else librosa.effects.pitch_shift(y, sr=sample_rate, n_steps=steps)


@dataclass(frozen=True)
class TimeStretch(Transform):
    """Tempo changed by a rate (> 1 faster), pitch kept (``librosa.effects.time_stretch``)."""

    name: ClassVar[str] = "time_stretch"
    RANGES: ClassVar[tuple[str, ...]] = ("rate",)

    rate: float | tuple[float, float] = (0.9, 1.1)

    def check(self):
        if _range(self.rate, "rate")[0] <= 0:
            raise ValueError("time_stretch: rate must be > 0")

    def apply(self, y, sample_rate, rng):
        import librosa

        rate = _draw(rng, self.rate)
        return y if rate == 1 else librosa.effects.time_stretch(y, rate=rate)


@dataclass(frozen=True)
class Fade(Transform):
    """Linear fade-in over the first ``in_s`` seconds and fade-out over the last ``out_s`` (seed 002)."""

    name: ClassVar[str] = "fade"

    in_s: float = 0.5
    out_s: float = 0.5

    def check(self):
        if self.in_s < 0 or self.out_s < 0:
            raise ValueError("fade: in_s and out_s must be >= 0")

    def apply(self, y, sample_rate, rng):
        out = np.array(y, dtype=np.float32)
        n_in = min(out.size, int(round(self.in_s * sample_rate)))
        n_out = min(out.size, int(round(self.out_s * sample_rate)))
        if n_in:
            out[:n_in] *= np.linspace(0.0, 1.0, n_in, dtype=np.float32)
        if n_out:
            out[out.size - n_out :] *= np.linspace(1.0, 0.0, n_out, dtype=np.float32)
        return out


@dataclass(frozen=True)
class Reverb(Transform):
    """Room-like reverberation: the clip convolved with a synthetic impulse response, a direct
    path then exponentially decaying noise reaching -60 dB after ``rt60_s`` (a diffuse tail,
    not a simulated room), mixed in with the fraction ``wet``; length kept."""

    name: ClassVar[str] = "reverb"
    RANGES: ClassVar[tuple[str, ...]] = ("rt60_s", "wet")

    rt60_s: float | tuple[float, float] = (0.2, 0.6)
    wet: float | tuple[float, float] = 0.3

    def check(self):
        if _range(self.rt60_s, "rt60_s")[0] <= 0:
            raise ValueError("reverb: rt60_s must be > 0")
        low, high = _range(self.wet, "wet")
        if low < 0 or high > 1:
            raise ValueError("reverb: wet must be in [0, 1]")

    def apply(self, y, sample_rate, rng):
        from scipy.signal import fftconvolve

        rt60, wet = _draw(rng, self.rt60_s), _draw(rng, self.wet)
        t = np.arange(max(1, int(rt60 * sample_rate))) / sample_rate
        tail = rng.standard_normal(t.size) * np.exp(-6.9078 * t / rt60)  # ln(1000): -60 dB at rt60
        tail /= np.sqrt(np.sum(tail**2)) or 1.0
        reverberant = fftconvolve(y, tail)[: y.size]
        dry_rms, wet_rms = np.sqrt(np.mean(y**2)), np.sqrt(np.mean(reverberant**2))
        if wet_rms > 0:
            reverberant *= dry_rms / wet_rms
        return (1 - wet) * y + wet * reverberant


TRANSFORMS: dict[str, type[Transform]] = {
    cls.name: cls for cls in (Noise, Gain, PitchShift, TimeStretch, Fade, Reverb)
}


def make_transform(spec: dict) -> Transform:
    """A transform from its config block (``name`` and its parameters); errors name the key."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r} (one of {', '.join(TRANSFORMS)})")
    cls = TRANSFORMS[name]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(
            f"{name}: unknown parameter(s) {', '.join(unknown)} (it takes {', '.join(sorted(known))})"
        )
    return cls(**spec)
