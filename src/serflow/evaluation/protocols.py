"""Speaker-independent evaluation: folds, out-of-fold predictions and metrics with intervals.

scikit-learn is imported inside the functions: the Snakefile imports this module for
its defaults, and every Snakemake start would otherwise pay about 1.7 s for it.
"""

from __future__ import annotations

import numpy as np

EVALUATION_DEFAULTS = {
    "protocol": "auto",
    "n_splits": 5,
    "inner_splits": 3,
    "test_size": 0.2,
    "stratify": False,
    "n_bootstrap": 1000,
    "random_state": 0,
    "metric": "uar",
    "prefer_domain_norm": "auto",
}
#: Settings that change scores or the choice of the best run, never a fit.
SCORING_KEYS = ("metric", "n_bootstrap", "prefer_domain_norm")
PROTOCOLS = ("loso", "group_kfold", "stratified_kfold", "random_split", "dataset_split")
SPEAKER_DEPENDENT = {"stratified_kfold", "random_split"}


def resolve_protocol(protocol: str, groups) -> str:
    """``auto`` means ``loso`` when every clip has a speaker (at least two), else ``stratified_kfold``."""
    if protocol != "auto":
        return protocol
    known = groups is not None and all(g is not None and g == g and g != "" for g in groups)
    return "loso" if known and len(set(groups)) >= 2 else "stratified_kfold"


def make_folds(
    y,
    groups=None,
    protocol: str = "loso",
    n_splits: int = 5,
    random_state: int = 0,
    test_size: float = 0.2,
    stratify: bool | str = False,
    splits=None,
    strata=None,
):
    """(train indices, test indices) pairs for ``protocol``.

    ``loso`` and ``group_kfold`` keep each speaker on one side; ``stratified_kfold``
    and ``random_split`` (one shuffled hold-out of ``test_size``, as
    ``train_test_split``) do not: they are speaker-dependent and inflate scores on
    corpora where speakers repeat. ``dataset_split`` uses the dataset's own
    ``splits`` ("train" / "test" per clip). ``stratify`` (random split): True keeps
    the label proportions, ``"stratum"`` the proportions of ``strata`` (one value per
    clip, such as a genre: seed 002's split); with ``group_kfold``, True keeps label
    proportions across the group folds (``StratifiedGroupKFold``).
    """
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedKFold, train_test_split

    y = np.asarray(y)
    x = np.zeros((len(y), 1))
    if protocol in ("loso", "group_kfold"):
        if groups is None or any(g is None or g != g or g == "" for g in groups):
            raise ValueError(f"protocol {protocol!r} needs the speaker of every clip")
        groups = np.asarray(groups)
    if protocol == "loso":
        if len(set(groups)) < 2:
            raise ValueError("leave-one-speaker-out needs at least two speakers")
        return list(LeaveOneGroupOut().split(x, y, groups))
    if protocol == "group_kfold":
        if len(set(groups)) < n_splits:
            raise ValueError(f"group k-fold needs at least {n_splits} speakers (found {len(set(groups))})")
        if stratify is True:  # label proportions kept across folds, as far as the groups allow
            from sklearn.model_selection import StratifiedGroupKFold

            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
            return list(splitter.split(x, y, groups))
        return list(GroupKFold(n_splits=n_splits).split(x, y, groups))
    if protocol == "stratified_kfold":
        return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state).split(x, y))
    if protocol == "random_split":
        if stratify == "stratum":
            if strata is None or any(s is None or s == "" for s in strata):
                raise ValueError(
                    "stratify: stratum needs the stratum of every clip (dataset stratify_column)"
                )
            by = np.asarray(strata)
        else:
            by = y if stratify else None
        train, test = train_test_split(
            np.arange(len(y)), test_size=test_size, random_state=random_state, stratify=by
        )
        return [(np.sort(train), np.sort(test))]
    if protocol == "dataset_split":
        splits = np.asarray(splits if splits is not None else [])
        train, test = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
        if len(train) == 0 or len(test) == 0:
            raise ValueError(
                "protocol 'dataset_split' needs labelled clips in both the train and the test split"
            )
        return [(train, test)]
    raise ValueError(f"unknown protocol {protocol!r} (use one of auto, {', '.join(PROTOCOLS)})")


def bootstrap_accuracy_uar(y_true, y_pred, n_classes: int, n_boot: int = 1000, seed: int = 0):
    """Accuracy and UAR of ``n_boot`` seeded resamples of the files (vectorised; memory-bounded).

    UAR of a resample averages the recall of the classes present in it, as
    ``balanced_accuracy_score`` does.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    correct = (y_true == y_pred).astype(float)
    acc, uar = np.empty(n_boot), np.empty(n_boot)
    batch = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, batch):
        b = min(batch, n_boot - start)
        idx = rng.integers(0, n, (b, n))
        flat = (y_true[idx] + n_classes * np.arange(b)[:, None]).ravel()
        hits = correct[idx]
        total = np.bincount(flat, minlength=b * n_classes).reshape(b, n_classes)
        right = np.bincount(flat, weights=hits.ravel(), minlength=b * n_classes).reshape(b, n_classes)
        present = total > 0
        acc[start : start + b] = hits.mean(axis=1)
        uar[start : start + b] = (right / np.where(present, total, 1)).sum(axis=1) / present.sum(axis=1)
    return acc, uar


def _interval(stats, level: float = 0.95):
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def score(y_true, y_pred, labels, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy and UAR (each with a 95% bootstrap interval), macro-F1, per-class P/R/F1, confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    codes = np.arange(len(labels))
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=codes, zero_division=0)
    present = np.unique(y_true)
    boot_acc, boot_uar = bootstrap_accuracy_uar(y_true, y_pred, len(labels), n_boot, seed)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "accuracy_ci95": _interval(boot_acc),
        "uar": float(np.mean(rec[present])),
        "uar_ci95": _interval(boot_uar),
        "macro_f1": float(f1_score(y_true, y_pred, labels=codes, average="macro", zero_division=0)),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, prec, rec, f1, support)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=codes).tolist(),
        "labels": list(labels),
    }
