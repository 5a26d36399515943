"""openSMILE functionals (optional ``opensmile`` package): eGeMAPS and ComParE.

Each feature set is its own extractor with its own cache, so adding ComParE to eGeMAPS
computes only ComParE. The openSMILE library is free for research and education;
commercial use needs a licence from audEERING.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor

#: openSMILE returns NaN for clips shorter than this.
MIN_SECONDS = 0.06


@functools.cache
def _smile(feature_set: str):
    # Built once per process: creating a Smile object takes about 0.3 s.
    import opensmile

    return opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)


def opensmile_functionals(y: np.ndarray, sample_rate: int, feature_set: str) -> np.ndarray:
    """openSMILE's functionals of ``feature_set`` for one clip (float64, NaN when too short)."""
    # openSMILE converts to 16-bit integers by multiplying by 32768 without clipping:
    # a sample at full scale would wrap around.
    y = np.clip(np.asarray(y, dtype=np.float32), -1.0, 32767 / 32768)
    return _smile(feature_set).process_signal(y, sample_rate).to_numpy(dtype=np.float64).ravel()


@dataclass(frozen=True)
class OpenSmile(Extractor):
    """Functionals of one openSMILE feature set; values as openSMILE gives them."""

    feature_set: ClassVar[str]
    PACKAGES: ClassVar[tuple[str, ...]] = ("opensmile",)
    seconds_per_clip: ClassVar[float] = 0.5

    def check(self) -> None:
        if importlib.util.find_spec("opensmile") is None:
            raise ValueError(
                f"the {self.name!r} extractor ({self.feature_set}) needs the 'opensmile' package: "
                "pip install 'serflow[opensmile]'"
            )

    def columns(self) -> list[tuple[str, str]]:
        return [(f"{self.name}_{n}", self.name) for n in _smile(self.feature_set).feature_names]

    def compute(self, clip: Clip) -> np.ndarray:
        # NaN (a clip too short for openSMILE) stays: the extraction rejects the clip.
        return opensmile_functionals(clip.y, clip.sample_rate, self.feature_set).astype(np.float32)

    @property
    def min_samples(self) -> int:
        return max(1, math.ceil(MIN_SECONDS * self.sample_rate))


@dataclass(frozen=True)
class EGeMAPS(OpenSmile):
    """eGeMAPSv02 functionals (88 columns, group ``egemaps``)."""

    name: ClassVar[str] = "egemaps"
    feature_set: ClassVar[str] = "eGeMAPSv02"
    GROUPS: ClassVar[tuple[str, ...]] = ("egemaps",)


@dataclass(frozen=True)
class ComParE(OpenSmile):
    """ComParE_2016 functionals (6 373 columns, group ``compare``)."""

    name: ClassVar[str] = "compare"
    feature_set: ClassVar[str] = "ComParE_2016"
    GROUPS: ClassVar[tuple[str, ...]] = ("compare",)
