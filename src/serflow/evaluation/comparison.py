"""Paired comparison of two runs on the same clips: is the difference beyond noise?

Both runs' out-of-fold predictions of the same labelled clips are compared: the
difference in UAR and accuracy (a minus b), a 95% paired bootstrap interval of it
(Efron & Tibshirani 1993), resampling speakers where the folds kept speakers apart (a
cluster bootstrap: a speaker's clips are not independent) and clips otherwise, and a
two-sided paired permutation test of the UAR difference (approximate randomisation,
Noreen 1989; Yeh 2000), swapping the two runs' predictions of each clip at random (per
clip, as Yeh does for sentences: swapping whole speakers would leave 2^10 arrangements
for EmoDB's 10 speakers and none below p = 0.05 for four). A run compared with itself
gives 0 and p = 1.
"""

from __future__ import annotations

import numpy as np

#: Runs whose paired p-value vs the best is at least this are "not distinguishable" from it.
ALPHA = 0.05


def format_p(p: float) -> str:
    """A p-value for people: three decimals, or ``< 0.001``."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _uar_acc(weights: np.ndarray, correct: np.ndarray, onehot: np.ndarray):
    """UAR and accuracy of each row of ``weights`` (resamples x clips) for 0/1 ``correct``."""
    total = weights @ onehot
    right = (weights * correct) @ onehot
    present = total > 0
    uar = (right / np.where(present, total, 1)).sum(axis=1) / present.sum(axis=1)
    acc = (weights * correct).sum(axis=1) / weights.sum(axis=1)
    return uar, acc


def _batches(n_rows: int, n_clips: int):
    step = max(1, 2_000_000 // max(n_clips, 1))  # memory-bounded: about 16 MB per array
    for start in range(0, n_rows, step):
        yield min(step, n_rows - start)


def paired_difference(
    y, pred_a, pred_b, n_classes: int, groups=None, n_boot: int = 1000, n_perm: int = 2000, seed: int = 0
) -> dict:
    """UAR and accuracy of a minus b on the same clips, paired 95% bootstrap intervals, permutation p."""
    y, pred_a, pred_b = (np.asarray(v) for v in (y, pred_a, pred_b))
    onehot = np.eye(n_classes)[y]
    ca, cb = (pred_a == y).astype(float), (pred_b == y).astype(float)
    if groups is not None:
        names, units = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        n_units, unit = len(names), "speakers"
    else:
        units, n_units, unit = np.arange(len(y)), len(y), "clips"
    ones = np.ones((1, len(y)))
    (uar_a,), (acc_a,) = _uar_acc(ones, ca, onehot)
    (uar_b,), (acc_b,) = _uar_acc(ones, cb, onehot)
    rng = np.random.default_rng(seed)
    d_uar, d_acc = [], []
    for b in _batches(n_boot, len(y)):
        draws = rng.integers(0, n_units, (b, n_units))
        w = np.stack([np.bincount(d, minlength=n_units) for d in draws])[:, units].astype(float)
        ua, aa = _uar_acc(w, ca, onehot)
        ub, ab = _uar_acc(w, cb, onehot)
        d_uar.append(ua - ub)
        d_acc.append(aa - ab)
    d_uar, d_acc = np.concatenate(d_uar), np.concatenate(d_acc)
    rng = np.random.default_rng(seed + 1)
    observed, extreme = uar_a - uar_b, 0
    for b in _batches(n_perm, len(y)):
        swap = rng.random((b, len(y))) < 0.5
        ones = np.ones(swap.shape)
        pa, _ = _uar_acc(ones, np.where(swap, cb, ca), onehot)
        pb, _ = _uar_acc(ones, np.where(swap, ca, cb), onehot)
        extreme += int((np.abs(pa - pb) >= abs(observed) - 1e-12).sum())
    return {
        "uar_diff": float(observed),
        "uar_diff_ci95": [float(np.quantile(d_uar, 0.025)), float(np.quantile(d_uar, 0.975))],
        "accuracy_diff": float(acc_a - acc_b),
        "accuracy_diff_ci95": [float(np.quantile(d_acc, 0.025)), float(np.quantile(d_acc, 0.975))],
        "p_value": float((1 + extreme) / (1 + n_perm)),
        "resampled": unit,
        "n_clips": int(len(y)),
    }


def compare_with_best(predictions: dict, metrics: dict, best: str, n_boot: int = 1000, seed: int = 0) -> dict:
    """Run -> its paired difference from ``best`` (and ``distinguishable``) on the clips both
    predicted; ``predictions``: run -> out-of-fold predictions (id, label, speaker, prediction)."""
    ref = predictions[best].set_index("id")
    labels = metrics[best]["labels"]
    code = {lab: i for i, lab in enumerate(labels)}
    out = {}
    for run, pred in predictions.items():
        other = pred.set_index("id")
        common = ref.index.intersection(other.index)
        if not len(common) or metrics[run]["labels"] != labels:
            out[run] = {"comparable": False, "n_clips": int(len(common))}
            continue
        r, o = ref.loc[common], other.loc[common]
        grouped = metrics[best]["speaker_independent"] and metrics[best].get("n_speakers")
        result = paired_difference(
            r["label"].astype(str).map(code).to_numpy(),
            o["prediction"].astype(str).map(code).to_numpy(),
            r["prediction"].astype(str).map(code).to_numpy(),
            len(labels),
            groups=r["speaker"].astype(str).to_numpy() if grouped else None,
            n_boot=n_boot,
            seed=seed,
        )
        result["distinguishable"] = run != best and result["p_value"] < ALPHA
        out[run] = {"comparable": True, **result}
    return out
