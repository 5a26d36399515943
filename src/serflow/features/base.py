"""What every extractor is: a frozen dataclass of its parameters, and the clip it reads.

An extractor's fields are its parameters. ``compute(clip)`` returns what is cached per
clip: a 1-D row, or a 2-D matrix (frames x dims) for frame-level extractors, which
``to_row`` then pools into table columns. Fields listed in ``OUTPUT_FIELDS`` shape only
``to_row``, so changing them recomputes no cache entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

import numpy as np

#: Values of ``trim``.
TRIMS = ("none", "silero")


class Clip:
    """One loaded clip and the analyses extractors share while they read it.

    ``memo(key, fn)`` computes ``fn()`` once per clip and key, so extractors in one
    process (the same job, ``serflow predict``) share one STFT or one YIN pass.
    """

    def __init__(self, y: np.ndarray, sample_rate: int):
        self.y = np.ascontiguousarray(y, dtype=np.float32)
        self.sample_rate = int(sample_rate)
        self._memo: dict = {}

    @property
    def seconds(self) -> float:
        return self.y.size / self.sample_rate

    def memo(self, key, fn):
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def magnitude(self, n_fft: int, hop_length: int) -> np.ndarray:
        """|STFT| (bins x frames), centred frames as librosa's default."""
        import librosa

        return self.memo(
            ("stft", n_fft, hop_length),
            lambda: np.abs(librosa.stft(self.y, n_fft=n_fft, hop_length=hop_length)),
        )


def package_version(name: str) -> str | None:
    for dist in {"xgboost": ("xgboost", "xgboost-cpu")}.get(name, (name,)):
        try:
            return version(dist)
        except PackageNotFoundError:
            pass
    return None


@dataclass(frozen=True)
class Extractor:
    """Base of every registered extractor (see ``serflow.features.REGISTRY``)."""

    #: Registry name: the config key under ``features``, the cache folder and shard folder.
    name: ClassVar[str]
    #: Bump when a code change alters this extractor's values or names.
    version: ClassVar[int] = 1
    #: Every group this extractor can produce (the schema's group enum is their union).
    GROUPS: ClassVar[tuple[str, ...]] = ()
    #: Packages whose versions enter the cache key.
    PACKAGES: ClassVar[tuple[str, ...]] = ("librosa",)
    #: Fields that shape only ``to_row`` (pooling), not the cached value.
    OUTPUT_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Whether ``compute`` returns frames x dims (read back with ``serflow.features.frames.read_sequences``).
    frame_level: ClassVar[bool] = False
    #: Workflow resources of one extraction job: seconds per clip (generous) and memory.
    seconds_per_clip: ClassVar[float] = 0.5
    mem_mb: ClassVar[int] = 1500
    #: Whether the ``all`` feature set includes its columns.
    in_all: ClassVar[bool] = True
    #: Whether its jobs ask for the config's ``gpus`` (and use a GPU where they get one).
    gpu: ClassVar[bool] = False

    sample_rate: int = 16000
    #: ``silero``: read only the clip's speech span (``serflow.features.vad``); ``none``: all of it.
    trim: str = "none"
    #: Silero VAD's speech probability threshold when ``trim`` is ``silero``.
    trim_threshold: float = 0.5

    # -- what subclasses provide ------------------------------------------------------
    def columns(self) -> list[tuple[str, str]]:
        """(column name, group) of each value ``to_row`` returns, in order."""
        raise NotImplementedError

    def compute(self, clip: Clip) -> np.ndarray:
        """The cached value of one clip: a float32 row, or frames x dims."""
        raise NotImplementedError

    def to_row(self, value: np.ndarray) -> np.ndarray:
        """Table columns (``names()`` order) from a cached value."""
        return value

    @property
    def min_samples(self) -> int:
        """Shortest usable clip in samples at ``sample_rate``."""
        return 1

    @property
    def n_dims(self) -> int:
        """Dimensions of each frame of a ``frame_level`` extractor's value (which must define it)."""
        raise NotImplementedError(f"frame-level extractor {self.name!r} does not define n_dims")

    def check(self) -> None:
        """Raise ValueError naming the parameter when the parameters do not fit together."""

    # -- shared machinery -------------------------------------------------------------
    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if self.sample_rate < 8000:
            raise ValueError("sample_rate must be at least 8000")
        if self.trim not in TRIMS:
            raise ValueError(f"trim must be one of {', '.join(TRIMS)}, not {self.trim!r}")
        if not 0 < self.trim_threshold < 1:
            raise ValueError("trim_threshold must be in (0, 1)")
        self.check()

    @classmethod
    def from_config(cls, shared: dict | None = None, own: dict | None = None) -> Extractor:
        """Parameters from the shared ``features`` keys this extractor has, then its own block.

        Keys of ``own`` it does not have are an error naming them.
        """
        known = {f.name for f in fields(cls)}
        own = dict(own or {})
        unknown = sorted(set(own) - known)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) of extractor {cls.name!r}: {', '.join(unknown)} "
                f"(it takes {', '.join(sorted(known))})"
            )
        kwargs = {k: v for k, v in (shared or {}).items() if k in known}
        return cls(**{**kwargs, **own})

    def params(self) -> dict:
        """Every parameter, JSON-ready."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def cache_params(self) -> dict:
        # 500 and 500.0 are one setting: YAML gives ints where the class defaults are floats.
        params = {
            k: int(v) if isinstance(v, float) and v.is_integer() else v
            for k, v in self.params().items()
            if k not in self.OUTPUT_FIELDS
        }
        if self.trim == "none":  # keys from before trimming existed stay valid
            del params["trim"], params["trim_threshold"]
        else:
            params["silero_vad_version"] = package_version("silero-vad")
        return params

    def prepare(self, clip: Clip) -> Clip:
        """The clip ``compute`` reads: ``clip``, or its speech span when ``trim`` is set.

        A clip without detected speech, or whose span is shorter than ``min_samples``, is kept whole.
        """
        if self.trim == "none":
            return clip

        def span() -> Clip:
            from serflow.features.vad import speech_span

            found = speech_span(clip.y, clip.sample_rate, self.trim_threshold)
            if found is None or found[1] - found[0] < self.min_samples:
                return clip
            return Clip(clip.y[found[0] : found[1]], clip.sample_rate)

        return clip.memo(("trim", self.trim, self.trim_threshold, self.min_samples), span)

    def value(self, clip: Clip) -> np.ndarray:
        """The cached value of one clip as loaded: ``compute`` of the prepared (trimmed) clip."""
        return self.compute(self.prepare(clip))

    @property
    def clips_per_call(self) -> int:
        """Clips ``extract_shard`` hands to ``values`` at once (a batching extractor raises it)."""
        return 1

    def values(self, clips: list[Clip]) -> list[np.ndarray]:
        """``value`` of several clips (an extractor that batches them overrides this)."""
        return [self.value(c) for c in clips]

    def cache_key(self) -> str:
        """Hash of what shapes the cached values: parameters, version, library versions."""
        key = {
            "extractor": self.name,
            "version": self.version,
            **{f"{p}_version": package_version(p) for p in self.PACKAGES},
            **self.cache_params(),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def names(self) -> list[str]:
        return [n for n, _ in self.columns()]

    def column_groups(self) -> dict[str, str]:
        """Column -> group."""
        return dict(self.columns())

    def groups(self) -> dict[str, list[str]]:
        """Group -> its columns, in row order."""
        out: dict[str, list[str]] = {}
        for n, g in self.columns():
            out.setdefault(g, []).append(n)
        return out

    def value_shape_ok(self, value: np.ndarray) -> bool:
        """Whether a cached value has the shape this extractor writes."""
        if value.dtype != np.float32:
            return False
        if self.frame_level:
            return value.ndim == 2 and value.shape[1] == self.n_dims
        return value.shape == (len(self.names()),)

    def describe(self) -> dict[str, Any]:
        """Name, version, parameters and cache key (stored with tables and models)."""
        return {"name": self.name, "version": self.version, "params": self.params(), "key": self.cache_key()}
