"""Runs ranked across datasets: Friedman, Nemenyi, the critical-difference diagram in the report."""

import numpy as np
import pytest
from conftest import REPO
from scipy.stats import studentized_range
from selenium.webdriver.common.by import By

from serflow.evaluation.ranking import rank_runs


def test_ranks_friedman_and_nemenyi_against_the_formulas():
    rng = np.random.default_rng(0)
    runs = ["a", "b", "c", "d"]
    table = rng.uniform(size=(5, 4)) + np.array([0.6, 0.3, 0.1, 0.0])  # no ties
    scores = {f"d{i}": dict(zip(runs, row)) for i, row in enumerate(table)}
    out = rank_runs(scores)
    n, k = table.shape
    ranks = k + 1 - table.argsort(axis=1).argsort(axis=1) - 1  # 1 = the highest score of a row
    average = ranks.mean(axis=0)
    assert out["average_rank"] == pytest.approx(dict(zip(runs, average)), abs=1e-12)
    assert out["runs"] == [runs[i] for i in np.argsort(average, kind="stable")]
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(average**2) * 1.0 - k * (k + 1) ** 2 / 4)
    assert out["friedman"]["statistic"] == pytest.approx(chi2, rel=1e-9)
    best = out["runs"][0]
    for run in runs:
        q = abs(out["average_rank"][best] - out["average_rank"][run]) / np.sqrt(k * (k + 1) / (6 * n))
        expected = 1.0 if run == best else studentized_range.sf(q * np.sqrt(2), k, np.inf)
        assert out["nemenyi_p"][best][run] == pytest.approx(expected, abs=1e-9)
    # Demšar (2006), table 5(a): q_0.05 = 2.569 for four classifiers
    assert out["critical_difference"] == pytest.approx(2.569 * np.sqrt(k * (k + 1) / (6 * n)), abs=2e-3)
    assert out["tied_with_best"] == [r for r in out["runs"] if out["nemenyi_p"][best][r] >= 0.05]


def test_ties_runs_missing_somewhere_and_too_little_to_rank():
    scores = {"x": {"a": 0.5, "b": 0.5, "c": 0.4, "only_x": 0.9}, "y": {"a": 0.7, "b": 0.6, "c": 0.6}}
    out = rank_runs(scores)
    assert out["runs"] == ["a", "b", "c"]  # only_x is not everywhere
    assert out["ranks"]["a"] == [1.5, 1.0] and out["ranks"]["b"] == [1.5, 2.5]
    assert rank_runs({"x": scores["x"]}) is None  # one dataset
    assert rank_runs({"x": {"a": 1, "b": 2}, "y": {"a": 1, "b": 2}}) is None  # two runs
    same = rank_runs({"x": {"a": 0.5, "b": 0.5, "c": 0.5}, "y": {"a": 0.5, "b": 0.5, "c": 0.5}})
    assert same["friedman"]["p_value"] == 1.0 and len(same["tied_with_best"]) == 3


def check_ranking_in_report(browser, n_runs: int, n_datasets: int):
    """The open report's ranking section: its table and the critical-difference diagram, drawn
    (called by tests/test_cross_corpus.py, whose EmoDB workflow run holds two datasets)."""
    section = browser.find_element(By.ID, "ranking")
    said = f"The {n_runs} runs every dataset has, ranked on each of the {n_datasets} datasets by uar"
    assert said in section.text
    rows = section.find_elements(By.CSS_SELECTOR, "#ranking-table tr")[1:]
    assert len(rows) == n_runs and rows[-1].find_element(By.TAG_NAME, "td").text.startswith(
        "prosody-majority"
    )
    img = browser.find_element(By.ID, "critical-difference")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 300
    assert len(img.screenshot_as_png) > 5_000
    from browser import full_page_screenshot

    shot = full_page_screenshot(browser, REPO / "results" / "test-artifacts" / "report_ranking.png")
    assert shot.stat().st_size > 50_000
