"""Augmented training copies: waveform transforms (``transforms``) and the copies a config
asks for (``copies``; ``listing`` writes them for the workflow)."""

from serflow.augmentation.copies import Augmentation, list_copies
from serflow.augmentation.transforms import TRANSFORMS, Transform, make_transform

__all__ = ["TRANSFORMS", "Augmentation", "Transform", "list_copies", "make_transform"]
