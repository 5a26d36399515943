"""Augmented copies of training clips: which clips get them, what each copy is, and its waveform.

A copy is named by its source clip's checksum, the transforms with their parameters, the
augmentation's seed and the copy's number (``copy_checksum``): its features are cached
under that checksum like any clip's, so two runs or two augmentations asking for the same
copy share one computation, and a copy's random draws follow from it alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from serflow.augmentation.transforms import Transform, make_transform

#: Columns of a copies listing (``list_copies``); id, path and checksum are those extraction reads.
COPY_COLUMNS = ("id", "source", "path", "checksum", "label", "speaker", "split", "stratum")


@dataclass(frozen=True)
class Augmentation:
    """An ``augmentations`` entry of the config.

    ``classes``: labels whose clips get copies (None: every label). ``clips``: clips drawn
    at random per class (None: all). ``copies``: copies per drawn clip, or ``balance``: as
    many as bring each listed class up to the largest class, spread over its clips.
    """

    name: str
    transforms: tuple[Transform, ...]
    classes: tuple[str, ...] | None = None
    clips: int | None = None
    copies: int | str = 1
    seed: int = 0

    def __post_init__(self):
        if not self.transforms:
            raise ValueError(f"augmentation {self.name!r}: transforms must list at least one transform")
        if self.copies != "balance" and not (isinstance(self.copies, int) and self.copies >= 1):
            raise ValueError(f"augmentation {self.name!r}: copies must be a positive integer or 'balance'")
        if self.clips is not None and self.clips < 1:
            raise ValueError(f"augmentation {self.name!r}: clips must be >= 1")

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> Augmentation:
        try:
            transforms = tuple(make_transform(t) for t in cfg.get("transforms") or [])
        except (TypeError, ValueError) as err:
            raise ValueError(f"augmentation {name!r}: transforms: {err}") from None
        classes = cfg.get("classes")
        return cls(
            name=name,
            transforms=transforms,
            classes=None if classes is None else tuple(str(c) for c in classes),
            clips=cfg.get("clips"),
            copies=cfg.get("copies", 1),
            seed=int(cfg.get("seed", 0)),
        )

    def describe(self) -> dict:
        """JSON-ready settings (in metrics, model settings and the report)."""
        return {
            "name": self.name,
            "transforms": [t.params() for t in self.transforms],
            "classes": None if self.classes is None else list(self.classes),
            "clips": self.clips,
            "copies": self.copies,
            "seed": self.seed,
        }

    def copy_checksum(self, source_checksum: str, k: int) -> str:
        """The identity of copy ``k`` of a clip (its cache key); the augmentation's name is not part of it."""
        key = {
            "source": source_checksum,
            "transforms": [t.params() for t in self.transforms],
            "seed": self.seed,
            "copy": k,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def apply(self, y: np.ndarray, sample_rate: int, checksum: str) -> np.ndarray:
        """The copy ``checksum`` (from ``copy_checksum``) of the clip's samples ``y``: the
        transforms in order, with random draws seeded by the checksum alone."""
        rng = np.random.default_rng(int(checksum[:16], 16))
        out = np.asarray(y, dtype=np.float32)
        for transform in self.transforms:
            out = transform(out, sample_rate, rng)
        if not np.isfinite(out).all():
            raise ValueError("augmented samples are not finite")
        return out

    def copies_per_clip(self, manifest) -> dict[str, int]:
        """Source clip id -> number of copies, drawn from the labelled clips of ``manifest``."""
        labelled = manifest[manifest["label"].notna()]
        counts = labelled["label"].astype(str).value_counts()
        classes = sorted(counts.index) if self.classes is None else list(self.classes)
        missing = [c for c in classes if c not in counts.index]
        if missing:
            raise ValueError(
                f"augmentation {self.name!r}: classes {missing} have no labelled clip "
                f"(labels after label_map: {', '.join(sorted(counts.index))})"
            )
        rng = np.random.default_rng(self.seed)
        out: dict[str, int] = {}
        for label in classes:
            ids = np.sort(labelled.loc[labelled["label"].astype(str) == label, "id"].astype(str).to_numpy())
            if self.clips is not None and self.clips < len(ids):
                ids = np.sort(rng.choice(ids, self.clips, replace=False))
            if self.copies == "balance":
                need = max(0, int(counts.max()) - int(counts[label]))
                each = np.full(len(ids), need // len(ids))
                each[rng.choice(len(ids), need % len(ids), replace=False)] += 1
            else:
                each = np.full(len(ids), self.copies)
            out.update({i: int(n) for i, n in zip(ids, each) if n})
        return out


def list_copies(manifest, augmentation: Augmentation):
    """The copies of ``augmentation`` for a manifest's clips (a DataFrame of ``COPY_COLUMNS``):
    each copy keeps its source's label, speaker, split and stratum and reads its source's file."""
    import pandas as pd

    per_clip = augmentation.copies_per_clip(manifest)
    sources = manifest.set_index(manifest["id"].astype(str))
    rows = []
    for source, n in per_clip.items():
        row = sources.loc[source]
        for k in range(n):
            rows.append(
                {
                    "id": f"{source}~{augmentation.name}~{k}",
                    "source": source,
                    "path": row["path"],
                    "checksum": augmentation.copy_checksum(str(row["checksum"]), k),
                    **{c: row.get(c) for c in ("label", "speaker", "split", "stratum")},
                }
            )
    return pd.DataFrame(rows, columns=list(COPY_COLUMNS))
