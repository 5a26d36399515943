"""Outer folds side by side (processes, fold jobs) give exactly the single-process results."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import job_counts, run_snakemake

from serflow.models.training import dumps_metrics, evaluate_run, fit_folds, prepare_run, summarize_run


def table(n=96, n_speakers=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b", "c"])[np.arange(n) % 3]
    x = rng.normal(size=(n, 40)) + (np.arange(n) % 3)[:, None] * 0.4
    t = pd.DataFrame(x, columns=[f"f{i:02d}" for i in range(40)])
    t.insert(0, "id", [f"c{i:03d}" for i in range(n)])
    t.insert(1, "label", y)
    t.insert(2, "speaker", [f"s{(i // 3) % n_speakers}" for i in range(n)])
    t.insert(3, "split", "train")
    return t, [f"f{i:02d}" for i in range(40)]


MODEL = {"kind": "logreg", "grid": {"C": [0.01, 0.1, 1.0]}, "class_weight": "balanced"}


def test_parallel_folds_equal_sequential_ones():
    t, cols = table()
    seq_pred, seq_metrics = evaluate_run(t, cols, MODEL, {"n_bootstrap": 50})
    par_pred, par_metrics = evaluate_run(t, cols, MODEL, {"n_bootstrap": 50}, workers=2)
    assert dumps_metrics(par_metrics) == dumps_metrics(seq_metrics)
    pd.testing.assert_frame_equal(par_pred, seq_pred, check_exact=True)
    assert seq_metrics["n_folds"] == 6
    assert all(
        f["params"]["C"] in MODEL["grid"]["C"] for f in seq_metrics["folds"]
    )  # each fold's search chose


def test_blocks_of_folds_are_gathered_into_the_same_metrics():
    t, cols = table(seed=1)
    run = prepare_run(t, cols, MODEL, {"n_bootstrap": 50})
    whole = summarize_run(run, fit_folds(run), len(cols))
    results = {}
    for block in range(4):  # as 4 fold jobs: folds k with k % 4 == block
        results.update(fit_folds(run, [k for k in range(len(run.folds)) if k % 4 == block]))
    gathered = summarize_run(run, results, len(cols))
    assert dumps_metrics(gathered[1]) == dumps_metrics(whole[1])
    pd.testing.assert_frame_equal(gathered[0], whole[0], check_exact=True)
    del results[2]
    with pytest.raises(ValueError, match="results of folds"):
        summarize_run(run, results, len(cols))


@pytest.mark.slow
def test_workflow_fold_jobs_and_workers_give_identical_results(tmp_path):
    base = {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": 48, "n_test": 8, "seed": 2}],
        "feature_tables": ["mfcc"],
        "models": {"logreg": MODEL},
        "runs": [{"feature_sets": ["mfcc"], "models": ["logreg"]}],
        "evaluation": {"n_bootstrap": 50},
        "cache_dir": str(tmp_path / "cache"),
    }
    outputs = {}
    for name, training in (
        ("single", {"fold_workers": 1}),
        ("workers", {"fold_workers": 2, "parallel_min_seconds": 0}),
        ("jobs", {"fold_jobs": 3, "fold_workers": 2, "parallel_min_seconds": 0}),
    ):
        workdir = tmp_path / name
        workdir.mkdir()
        proc = run_snakemake(workdir, {**base, "training": training})
        counts = job_counts(proc)
        assert counts.get("train_folds", 0) == (3 if name == "jobs" else 0)
        run = workdir / "results/demo/runs/mfcc-logreg"
        log = (workdir / "logs/demo/train/mfcc-logreg.log").read_text()
        if name == "workers":
            assert "4 outer folds in 2 process(es)" in log
        if name == "jobs":
            assert "gathered 4 folds from 3 fold jobs" in log
        outputs[name] = {
            "metrics": (run / "metrics.json").read_bytes(),
            "predictions": pd.read_parquet(run / "predictions.parquet"),
            "test": pd.read_parquet(run / "test_predictions.parquet"),
        }
    for name in ("workers", "jobs"):
        assert outputs[name]["metrics"] == outputs["single"]["metrics"]
        for key in ("predictions", "test"):
            pd.testing.assert_frame_equal(outputs[name][key], outputs["single"][key], check_exact=True)
    assert json.loads(outputs["single"]["metrics"])["n_folds"] == 4
