"""``comparison.json`` of a dataset: every run against the chosen best run, paired on the same clips."""

from __future__ import annotations

import json
from pathlib import Path

from serflow.evaluation.comparison import ALPHA, compare_with_best, format_p
from serflow.outputs.runs import choose_best, read_metrics


def write_comparison(
    runs: dict,
    out_path,
    metric: str = "uar",
    test_split: dict | None = None,
    prefer_domain_norm: str = "auto",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """``runs``: run name -> (metrics.json, predictions.parquet). Writes and returns the comparison."""
    import pandas as pd

    metrics = read_metrics({run: paths[0] for run, paths in runs.items()})
    predictions = {run: pd.read_parquet(paths[1]) for run, paths in runs.items()}
    best, reason = choose_best(metrics, metric, test_split, prefer_domain_norm)
    compared = compare_with_best(predictions, metrics, best, n_boot=n_bootstrap, seed=seed)
    others = [r for r in compared if r != best and compared[r]["comparable"]]
    close = [r for r in others if not compared[r]["distinguishable"]]
    runner_up = max(others, key=lambda r: (metrics[r][metric], -list(metrics).index(r)), default=None)
    result = {
        "best": best,
        "best_reason": reason,
        "metric": metric,
        "alpha": ALPHA,
        "method": (
            "paired bootstrap (95% interval of the difference, resampling speakers where the folds"
            " kept them apart, else clips) and a two-sided paired permutation test of the UAR"
            " difference, on the clips both runs predicted"
        ),
        "not_distinguishable": close,
        "runner_up": runner_up,
        "runs": compared,
    }
    Path(out_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def describe_runner_up(comparison: dict) -> str | None:
    """One phrase: how close the runner-up came to the best run."""
    run = comparison.get("runner_up")
    if not run:
        return None
    c = comparison["runs"][run]
    low, high = c["uar_diff_ci95"]
    verdict = "not distinguishable" if not c["distinguishable"] else "distinguishable"
    p = format_p(c["p_value"])
    return (
        f"runner-up {run}: UAR {c['uar_diff']:+.3f} [{low:+.3f}, {high:+.3f}] vs the best,"
        f" paired p {p if p.startswith('<') else '= ' + p} ({verdict} at {comparison['alpha']})"
    )
