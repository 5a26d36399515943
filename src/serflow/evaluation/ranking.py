"""Runs ranked across datasets: Friedman's test and Nemenyi's post-hoc test (Demšar 2006).

Each dataset is a block and each run name shared by every dataset a treatment; a run's rank
on a dataset is 1 for the best score (ties share the mean rank). Friedman's test asks
whether the runs differ at all; Nemenyi's test (``scikit_posthocs.posthoc_nemenyi_friedman``)
then compares every pair, and two runs whose average ranks differ by less than the critical
difference CD = q_alpha * sqrt(k (k + 1) / (6 N)) are not told apart. With few datasets
nothing can be: with N = 2 and 10 runs, CD is about 9.6 ranks out of 10.
"""

from __future__ import annotations

import numpy as np

ALPHA = 0.05


def shared_runs(scores: dict[str, dict[str, float]]) -> list[str]:
    """Run names every dataset has, in the first dataset's order."""
    names = [set(runs) for runs in scores.values()]
    first = next(iter(scores.values()), {})
    return [r for r in first if all(r in n for n in names)] if names else []


def rank_runs(scores: dict[str, dict[str, float]], alpha: float = ALPHA) -> dict | None:
    """The ranking of the runs shared by every dataset (``scores``: dataset -> run -> score,
    higher better), or None with fewer than two datasets or three shared runs.

    Returns datasets, runs (best average rank first), per-dataset ranks, average ranks,
    Friedman's chi-square and p, Nemenyi's pairwise p-values, the critical difference, and
    the groups of runs no test tells apart from the best.
    """
    import pandas as pd
    from scikit_posthocs import posthoc_nemenyi_friedman
    from scipy.stats import friedmanchisquare, rankdata, studentized_range

    runs = shared_runs(scores)
    if len(scores) < 2 or len(runs) < 3:
        return None
    datasets = list(scores)
    table = np.array([[scores[d][r] for r in runs] for d in datasets], dtype=np.float64)
    ranks = rankdata(-table, axis=1, method="average")  # 1 = the best score of a dataset
    average = ranks.mean(axis=0)
    order = np.argsort(average, kind="stable")
    n, k = table.shape
    if np.ptp(table, axis=1).max() == 0:  # every run scores the same everywhere
        statistic, p = 0.0, 1.0
    else:
        statistic, p = friedmanchisquare(*table.T)
    nemenyi = posthoc_nemenyi_friedman(pd.DataFrame(table, columns=runs))
    cd = float(studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2) * np.sqrt(k * (k + 1) / (6 * n)))
    best = runs[order[0]]
    return {
        "datasets": datasets,
        "runs": [runs[i] for i in order],
        "scores": {runs[i]: [float(v) for v in table[:, i]] for i in order},
        "ranks": {runs[i]: [float(v) for v in ranks[:, i]] for i in order},
        "average_rank": {runs[i]: float(average[i]) for i in order},
        "friedman": {"statistic": float(statistic), "p_value": float(p), "n_datasets": n, "n_runs": k},
        "nemenyi_p": {a: {b: float(nemenyi.loc[a, b]) for b in runs} for a in runs},
        "critical_difference": cd,
        "alpha": alpha,
        "tied_with_best": [r for r in (runs[i] for i in order) if float(nemenyi.loc[best, r]) >= alpha],
    }
