"""Registered feature extractors, each with its own parameters, columns and cache.

``REGISTRY`` maps a name (the config key under ``features``, the cache folder) to an
extractor class. ``FeatureSpec.from_config`` turns a ``features`` mapping into the
enabled extractors: top-level keys are parameters every extractor that has them
takes; a key named after an extractor enables it (``true``, or a mapping of its own
parameters; ``false`` disables ``descriptors``, on by default). ``opensmile: [names]``
enables the openSMILE extractors by feature-set name.

Adding an extractor: a module with an ``Extractor`` subclass, listed in ``REGISTRY``
(plus its groups in the config schema's enum, which a test compares).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, fields

import numpy as np

from serflow.features.base import Clip, Extractor
from serflow.features.descriptors import Descriptors
from serflow.features.dvector import DVector
from serflow.features.extended import Extended
from serflow.features.frames import Frames
from serflow.features.opensmile import ComParE, EGeMAPS
from serflow.features.signal import Signal
from serflow.features.ssl import SSLEmbeddings
from serflow.features.voiceprint import Voiceprint
from serflow.features.waveform import Waveform

#: In table-column order: tables join extractors in this order.
REGISTRY: dict[str, type[Extractor]] = {
    cls.name: cls
    for cls in (
        Descriptors,
        Extended,
        EGeMAPS,
        ComParE,
        Frames,
        Signal,
        Voiceprint,
        DVector,
        SSLEmbeddings,
        Waveform,
    )
}
#: On unless the config says ``name: false``.
DEFAULT_ON = ("descriptors",)
#: ``opensmile: [feature set]`` -> extractor name.
OPENSMILE_SETS = {cls.feature_set: cls.name for cls in (EGeMAPS, ComParE)}
#: Every column group, with the extractor that produces it.
GROUP_EXTRACTOR = {g: name for name, cls in REGISTRY.items() for g in cls.GROUPS}
#: The built-in groups (the config schema's enum).
GROUPS = tuple(GROUP_EXTRACTOR)
#: Built-in named feature sets; the config's ``feature_sets`` adds to or overrides them.
FEATURE_SETS = {
    "prosody": ("prosody",),
    "mfcc": ("mfcc",),
    "mfcc_deltas": ("mfcc", "mfcc_deltas"),
    "spectral": ("spectral",),
    "mel": ("mel",),
    "all": ("all",),
    "egemaps": ("egemaps",),
    "compare": ("compare",),
}
#: Parameters the top level of ``features`` may set: those of more than one extractor.
SHARED_KEYS = sorted(
    name for name, n in Counter(f.name for cls in REGISTRY.values() for f in fields(cls)).items() if n > 1
)


def register_extractor(cls: type[Extractor]) -> type[Extractor]:
    """Add an extractor class (in process; the workflow's schema lists the built-in ones)."""
    if cls.frame_level and cls.n_dims is Extractor.n_dims:
        raise ValueError(
            f"extractor {cls.name!r}: frame_level extractors define n_dims (dimensions per frame)"
        )
    clash = {g: GROUP_EXTRACTOR[g] for g in cls.GROUPS if GROUP_EXTRACTOR.get(g, cls.name) != cls.name}
    if clash:
        raise ValueError(f"extractor {cls.name!r}: groups already produced by others: {clash}")
    REGISTRY[cls.name] = cls
    GROUP_EXTRACTOR.update({g: cls.name for g in cls.GROUPS})
    return cls


def _enable_hint(group: str) -> str:
    name = GROUP_EXTRACTOR[group]
    for feature_set, ext in OPENSMILE_SETS.items():
        if ext == name:
            return f"features: {{opensmile: [{feature_set}]}}"
    if name == "frames":
        return f"features: {{frames: {{streams: [{group.removeprefix('frames_')}]}}}}"
    return f"features: {{{name}: true}}"


@dataclass(frozen=True)
class FeatureSpec:
    """The extractors enabled for one dataset, in ``REGISTRY`` order."""

    extractors: tuple[Extractor, ...]

    @classmethod
    def from_config(cls, cfg: dict | None) -> FeatureSpec:
        """Enabled extractors from a ``features`` mapping; errors name the key."""
        cfg = dict(cfg or {})
        blocks = {name: cfg.pop(name) for name in list(cfg) if name in REGISTRY}
        for feature_set in cfg.pop("opensmile", None) or []:
            if feature_set not in OPENSMILE_SETS:
                raise ValueError(
                    f"unknown openSMILE feature set {feature_set!r}: use {', '.join(OPENSMILE_SETS)}"
                )
            blocks.setdefault(OPENSMILE_SETS[feature_set], True)
        unknown = sorted(set(cfg) - set(SHARED_KEYS))
        if unknown:
            owners = {
                k: [n for n, c in REGISTRY.items() if k in {f.name for f in fields(c)}] for k in unknown
            }
            hints = [
                f"{k} (a parameter of {', '.join(o)}: set it under that key)" if o else k
                for k, o in owners.items()
            ]
            raise ValueError(f"unknown feature parameter(s): {', '.join(hints)}")
        out = []
        for name, ext in REGISTRY.items():
            block = blocks.get(name, name in DEFAULT_ON)
            if block is False or block is None:
                continue
            try:
                out.append(ext.from_config(cfg, {} if block is True else block))
            except (TypeError, ValueError) as err:
                raise ValueError(f"features: {name}: {err}") from None
        if not out:
            raise ValueError("features: every extractor is off")
        return cls(tuple(out))

    def __getitem__(self, name: str) -> Extractor:
        for e in self.extractors:
            if e.name == name:
                return e
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.extractors]

    @property
    def sample_rate(self) -> int:
        rates = {e.sample_rate for e in self.extractors}
        if len(rates) > 1:
            raise ValueError(f"features: extractors disagree on sample_rate ({sorted(rates)})")
        return rates.pop()

    @property
    def min_samples(self) -> int:
        """Shortest usable clip for every enabled extractor."""
        return max(e.min_samples for e in self.extractors)

    @property
    def groups(self) -> dict[str, str]:
        """Group -> extractor name, for every group the enabled extractors produce."""
        return {g: e.name for e in self.extractors for g in e.groups()}

    def needs(self, groups) -> list[str]:
        """Extractor names whose columns the groups need, in order (``all``: every extractor's
        columns but those kept out of it, such as ``voiceprint``, plus any group named).

        A group no enabled extractor produces is an error naming the setting to add.
        """
        groups = set(groups)
        have = self.groups
        if "all" in groups:
            return [e.name for e in self.extractors if e.in_all or any(g in groups for g in e.GROUPS)]
        for g in sorted(groups):
            if g not in GROUP_EXTRACTOR:
                raise ValueError(f"unknown feature group {g!r}")
            if g not in have:
                raise ValueError(f"needs the group {g!r}: set {_enable_hint(g)}")
        wanted = {have[g] for g in groups}
        return [n for n in self.names if n in wanted]

    def describe(self) -> dict:
        return {e.name: e.describe() for e in self.extractors}

    def columns(self) -> list[tuple[str, str]]:
        """(column, group) of every enabled extractor, in table order."""
        return [c for e in self.extractors for c in e.columns()]

    def extract(self, y) -> np.ndarray:
        """Every extractor's table row for one clip at ``sample_rate``, sharing one ``Clip``."""
        clip = Clip(y, self.sample_rate)
        return np.concatenate([e.to_row(e.value(clip)) for e in self.extractors])

    def cache_key(self) -> str:
        """One key over every extractor's key."""
        return hashlib.sha256(" ".join(e.cache_key() for e in self.extractors).encode()).hexdigest()[:16]


def select_columns(column_groups: dict[str, str], groups) -> list[str]:
    """Columns (``column_groups``: column -> group, in order) in any of ``groups``; ``all`` = every one."""
    groups = set(groups)
    unknown = groups - set(GROUP_EXTRACTOR) - {"all"}
    if unknown:
        raise ValueError(f"unknown feature group(s): {', '.join(sorted(unknown))}")
    if "all" in groups:
        return list(column_groups)
    return [c for c, g in column_groups.items() if g in groups]


__all__ = [
    "Clip",
    "ComParE",
    "DVector",
    "Descriptors",
    "EGeMAPS",
    "Extended",
    "Extractor",
    "Frames",
    "Signal",
    "Voiceprint",
    "Waveform",
    "FEATURE_SETS",
    "FeatureSpec",
    "GROUPS",
    "GROUP_EXTRACTOR",
    "OPENSMILE_SETS",
    "REGISTRY",
    "register_extractor",
    "select_columns",
]
