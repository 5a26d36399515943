"""Paired comparison of two runs on the same clips: bootstrap interval and permutation p-value."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from serflow.evaluation.comparison import paired_difference


def case(n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    a = np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, n))
    b = np.where(rng.random(n) < 0.6, y, rng.integers(0, 3, n))
    return y, a, b


def uar(y, p):
    with warnings.catch_warnings():  # a resample may miss a predicted class
        warnings.simplefilter("ignore", UserWarning)
        return balanced_accuracy_score(y, p)


def test_a_run_against_itself_differs_by_nothing_with_p_one():
    y, a, _ = case()
    for groups in (None, np.arange(len(y)) % 5):
        r = paired_difference(y, a, a, 3, groups=groups, n_boot=200, n_perm=200)
        assert r["uar_diff"] == 0 and r["accuracy_diff"] == 0
        assert r["uar_diff_ci95"] == [0.0, 0.0] and r["p_value"] == 1.0


def test_the_bootstrap_and_the_permutation_test_match_a_direct_computation():
    y, a, b = case()
    n_boot, n_perm, seed = 300, 400, 7
    r = paired_difference(y, a, b, 3, n_boot=n_boot, n_perm=n_perm, seed=seed)
    assert r["uar_diff"] == pytest.approx(uar(y, a) - uar(y, b), abs=1e-12)
    assert r["accuracy_diff"] == pytest.approx(np.mean(a == y) - np.mean(b == y), abs=1e-12)
    # the same draws, one resample at a time, scored by scikit-learn
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(y), (n_boot, len(y)))
    diffs = [uar(y[i], a[i]) - uar(y[i], b[i]) for i in draws]
    np.testing.assert_allclose(r["uar_diff_ci95"], np.quantile(diffs, [0.025, 0.975]), atol=1e-12)
    rng = np.random.default_rng(seed + 1)
    swaps = rng.random((n_perm, len(y))) < 0.5
    observed = abs(uar(y, a) - uar(y, b))
    extreme = sum(
        abs(uar(y, np.where(s, b, a)) - uar(y, np.where(s, a, b))) >= observed - 1e-12 for s in swaps
    )
    assert r["p_value"] == pytest.approx((1 + extreme) / (1 + n_perm), abs=1e-12)
    assert r["resampled"] == "clips" and r["n_clips"] == len(y)


def test_speakers_are_resampled_whole():
    y, a, b = case(n=40)
    groups = np.repeat(["s1", "s2", "s3", "s4"], 10)
    n_boot, seed = 200, 3
    r = paired_difference(y, a, b, 3, groups=groups, n_boot=n_boot, n_perm=100, seed=seed)
    assert r["resampled"] == "speakers"
    rng = np.random.default_rng(seed)
    diffs = []
    for draw in rng.integers(0, 4, (n_boot, 4)):
        idx = np.concatenate([np.flatnonzero(groups == f"s{k + 1}") for k in draw])
        diffs.append(uar(y[idx], a[idx]) - uar(y[idx], b[idx]))
    np.testing.assert_allclose(r["uar_diff_ci95"], np.quantile(diffs, [0.025, 0.975]), atol=1e-12)
    # the permutation test swaps clips, whatever the bootstrap resamples
    assert r["p_value"] == paired_difference(y, a, b, 3, n_boot=10, n_perm=100, seed=seed)["p_value"]


def test_a_clear_difference_is_told_apart():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    good = np.where(rng.random(400) < 0.9, y, (y + 1) % 4)
    bad = np.where(rng.random(400) < 0.5, y, (y + 1) % 4)
    r = paired_difference(y, good, bad, 4, n_boot=300, n_perm=500)
    assert r["uar_diff"] > 0.3 and r["uar_diff_ci95"][0] > 0.2 and r["p_value"] < 0.01
