"""Class rebalancing of a training set by imbalanced-learn resamplers, inside the folds.

A model's ``resample: {method: smote, params: {...}}`` puts the resampler into its
pipeline (imbalanced-learn's ``Pipeline``) after the scaler: it acts when the pipeline is
fitted (on an outer or inner training set, or the refit) and never on the clips predicted,
so no test clip is resampled or scored twice.
"""

from __future__ import annotations

import importlib

import numpy as np

#: ``method`` -> (module, class) of imbalanced-learn.
RESAMPLERS = {
    "random_over": ("imblearn.over_sampling", "RandomOverSampler"),
    "smote": ("imblearn.over_sampling", "SMOTE"),
    "borderline_smote": ("imblearn.over_sampling", "BorderlineSMOTE"),
    "adasyn": ("imblearn.over_sampling", "ADASYN"),
    "random_under": ("imblearn.under_sampling", "RandomUnderSampler"),
}


def make_resampler(spec: dict, random_state: int = 0):
    """An unfitted imbalanced-learn sampler from ``{method, params}`` (seeded)."""
    module, name = RESAMPLERS[spec["method"]]
    params = {"random_state": random_state, **(spec.get("params") or {})}
    return getattr(importlib.import_module(module), name)(**params)


def counts_after(sampler, before: np.ndarray) -> np.ndarray:
    """Rows per class after a fitted sampler, from the rows per class before it."""
    after = np.array(before, dtype=int)
    for cls, n in sampler.sampling_strategy_.items():
        after[int(cls)] = after[int(cls)] + int(n) if sampler._sampling_type == "over-sampling" else int(n)
    return after


def fitted_resampler(fitted):
    """The fitted sampler of a fitted pipeline or search (None without one)."""
    pipeline = getattr(fitted, "best_estimator_", fitted)
    steps = getattr(pipeline, "named_steps", {})
    return steps.get("resample")
