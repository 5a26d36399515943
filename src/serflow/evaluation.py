"""Speaker-independent evaluation: folds, out-of-fold predictions and metrics with intervals."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedKFold

PROTOCOLS = ("loso", "group_kfold", "stratified_kfold")
SPEAKER_DEPENDENT = {"stratified_kfold"}


def make_folds(y, groups, protocol: str = "loso", n_splits: int = 5, random_state: int = 0):
    """(train indices, test indices) pairs for ``protocol``.

    ``loso`` and ``group_kfold`` keep each speaker on one side; ``stratified_kfold``
    does not (speaker-dependent: it inflates scores on corpora where speakers repeat).
    """
    y = np.asarray(y)
    x = np.zeros((len(y), 1))
    if protocol == "loso":
        if groups is None or len(set(groups)) < 2:
            raise ValueError("leave-one-speaker-out needs at least two speakers")
        return list(LeaveOneGroupOut().split(x, y, groups))
    if protocol == "group_kfold":
        if groups is None or len(set(groups)) < n_splits:
            raise ValueError(f"group k-fold needs at least {n_splits} speakers")
        return list(GroupKFold(n_splits=n_splits).split(x, y, groups))
    if protocol == "stratified_kfold":
        return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state).split(x, y))
    raise ValueError(f"unknown protocol {protocol!r} (use one of {', '.join(PROTOCOLS)})")


def cross_val_predict_proba(pipeline, x, y, folds, n_classes: int):
    """Out-of-fold class probabilities and fold numbers, refitting a clone per fold.

    ``y`` holds integer codes 0..n_classes-1. Every statistic (scaling included) is
    fitted on the training indices of a fold only.
    """
    proba = np.zeros((len(y), n_classes))
    fold_of = np.full(len(y), -1)
    for k, (train, test) in enumerate(folds):
        model = clone(pipeline).fit(x[train], y[train])
        cols = model.classes_
        proba[np.ix_(test, cols)] = model.predict_proba(x[test])
        fold_of[test] = k
    return proba, fold_of


def bootstrap_interval(y_true, y_pred, metric, n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of ``metric`` over files (seeded, deterministic)."""
    rng = np.random.default_rng(seed)
    n = len(y_true)
    stats = np.empty(n_boot)
    with warnings.catch_warnings():  # resamples may miss a class; that is expected here
        warnings.simplefilter("ignore", UserWarning)
        for b in range(n_boot):
            idx = rng.integers(0, n, n)
            stats[b] = metric(y_true[idx], y_pred[idx])
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def score(y_true, y_pred, labels, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy, UAR, macro-F1 (with 95% bootstrap intervals), per-class P/R/F1, confusion matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    codes = np.arange(len(labels))
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=codes, zero_division=0)

    def uar(a, b):
        return balanced_accuracy_score(a, b) if len(np.unique(a)) > 1 else float(np.mean(a == b))

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "accuracy_ci95": bootstrap_interval(y_true, y_pred, accuracy_score, n_boot, seed),
        "uar": float(uar(y_true, y_pred)),
        "uar_ci95": bootstrap_interval(y_true, y_pred, uar, n_boot, seed),
        "macro_f1": float(f1_score(y_true, y_pred, labels=codes, average="macro", zero_division=0)),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, prec, rec, f1, support)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=codes).tolist(),
        "labels": list(labels),
    }
