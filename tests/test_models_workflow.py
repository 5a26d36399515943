"""Integration: models, evaluation, submissions and the report through the real workflow."""

import json

import pandas as pd
import pytest
from conftest import job_counts, run_snakemake

from serflow.models.training import dumps_metrics, evaluate_run, load_table

MODELS = {
    "majority": {"kind": "majority"},
    "svc": {"kind": "svc", "params": {"C": 10.0}, "class_weight": "balanced"},
    "logreg": {"kind": "logreg", "grid": {"C": [0.01, 1.0]}},
    "xgboost": {"kind": "xgboost", "params": {"n_estimators": 30, "max_depth": 3}, "threads": 2},
}
DEMO = {
    "datasets": [{"name": "demo", "adapter": "demo", "n_train": 48, "n_test": 10, "seed": 5}],
    "feature_tables": ["prosody"],
    "models": MODELS,
    "runs": [{"feature_sets": ["prosody", "all"], "models": list(MODELS)}],
    "evaluation": {"n_bootstrap": 200},
}
RUNS = [f"{fs}-{m}" for fs in ("prosody", "all") for m in MODELS]


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("models")
    proc = run_snakemake(workdir, DEMO)
    return workdir, proc


def read_metrics(workdir, run, dataset="demo"):
    return json.loads((workdir / f"results/{dataset}/runs/{run}/metrics.json").read_text())


def test_every_run_is_evaluated_speaker_independently(demo_models):
    workdir, proc = demo_models
    assert job_counts(proc)["train"] == len(RUNS)
    manifest = pd.read_parquet(workdir / "results/demo/manifest.parquet")
    labelled = manifest[manifest.label.notna()]
    for run in RUNS:
        m = read_metrics(workdir, run)
        assert m["run"] == run and m["protocol"] == "loso" and m["speaker_independent"]
        assert m["n_folds"] == labelled.speaker.nunique() and m["n_clips"] == len(labelled)
        assert m["uar_ci95"][0] <= m["uar"] <= m["uar_ci95"][1]
        pred = pd.read_parquet(workdir / f"results/demo/runs/{run}/predictions.parquet")
        assert sorted(pred["id"]) == sorted(labelled["id"])
        fold_speakers = pred.groupby("fold")["speaker"].unique()
        assert all(len(s) == 1 for s in fold_speakers)  # each LOSO test fold is one speaker
        assert len({s[0] for s in fold_speakers}) == len(fold_speakers)
        assert (workdir / f"results/demo/runs/{run}/model.joblib").stat().st_size > 0
    assert read_metrics(workdir, "all-svc")["uar"] > 0.5 > read_metrics(workdir, "all-majority")["uar"]
    for fold in read_metrics(workdir, "prosody-logreg")["folds"]:
        assert fold["params"]["C"] in (0.01, 1.0)  # chosen inside the training fold


def test_metrics_are_byte_identical_when_recomputed(demo_models):
    workdir, _ = demo_models
    table, cols = load_table(workdir / "results/demo/features/all.parquet")
    _, metrics = evaluate_run(
        table,
        cols,
        {k: MODELS["svc"].get(k) for k in ("kind", "params", "grid", "class_weight")},
        {"n_bootstrap": 200},
    )
    metrics = {"dataset": "demo", "feature_set": "all", "run": "all-svc", **metrics}
    written = (workdir / "results/demo/runs/all-svc/metrics.json").read_text()
    assert json.loads(written)["evaluation"]["n_bootstrap"] == 200
    assert dumps_metrics(metrics) == written


def test_submissions_follow_the_sample_submission(demo_models):
    workdir, _ = demo_models
    sample = pd.read_csv(workdir / "results/demo/corpus/sample_submission.csv", dtype=str)
    summary = json.loads((workdir / "results/demo/submissions.json").read_text())
    labels = set(pd.read_parquet(workdir / "results/demo/manifest.parquet")["label"].dropna())
    for run in RUNS:
        sub = pd.read_csv(workdir / f"results/demo/submissions/{run}.csv", dtype=str)
        assert list(sub.columns) == list(sample.columns) and sub["id"].tolist() == sample["id"].tolist()
        assert set(sub["label"]) <= labels and not summary["runs"][run]["missing"]
    best = max(RUNS, key=lambda r: read_metrics(workdir, r)["uar"])
    assert summary["best"] == best
    best_csv = (workdir / "results/demo/submission.csv").read_bytes()
    assert best_csv == (workdir / f"results/demo/submissions/{best}.csv").read_bytes()


def test_report_is_self_contained_and_names_every_run(demo_models):
    workdir, _ = demo_models
    html = (workdir / "results/report.html").read_text()
    for run in RUNS:
        assert f">{run}<" in html
    assert 'href="demo/submission.csv"' in html and "loso" in html
    assert "<script src" not in html and "<link" not in html and "http" not in html


def test_changed_model_parameter_reruns_only_that_model(demo_models):
    workdir, _ = demo_models
    others = {r: (workdir / f"results/demo/runs/{r}/metrics.json").stat().st_mtime_ns for r in RUNS}
    models = {**MODELS, "xgboost": {**MODELS["xgboost"], "params": {"n_estimators": 20, "max_depth": 3}}}
    proc = run_snakemake(workdir, {**DEMO, "models": models})
    counts = job_counts(proc)
    assert counts.pop("train") == counts.pop("score") == 2
    assert counts == {"compare": 1, "submissions": 1, "report": 1, "all": 1}  # the dataset-wide jobs
    for run, mtime in others.items():
        changed = (workdir / f"results/demo/runs/{run}/metrics.json").stat().st_mtime_ns != mtime
        assert changed == run.endswith("-xgboost")
    assert read_metrics(workdir, "all-xgboost")["model"]["params"]["n_estimators"] == 20
    # Threads are not a result-shaping setting: changing them reruns nothing.
    models["xgboost"]["threads"] = 1
    assert job_counts(run_snakemake(workdir, {**DEMO, "models": models})) == {}


def test_competition_with_integer_labels_and_own_split(tmp_path):
    """Seed 003's format (integer labels); the dataset's own labelled test split as protocol."""
    from serflow.corpus.demo import generate_demo_corpus

    root = generate_demo_corpus(tmp_path / "comp", n_train=32, n_test=6, seed=2)
    train = pd.read_csv(root / "train.csv", dtype=str)
    codes = {lab: str(i) for i, lab in enumerate(sorted(train["label"].unique()))}
    train.assign(label=train["label"].map(codes)).drop(columns="speaker").to_csv(
        root / "train.csv", index=False
    )
    pd.read_csv(root / "sample_submission.csv").assign(label=0).to_csv(
        root / "sample_submission.csv", index=False
    )
    config = {
        "datasets": [
            {
                "name": "comp",
                "adapter": "competition",
                "root": str(root),
                "label_map": {v: k for k, v in codes.items()},
            }
        ],
        "feature_tables": ["prosody"],
        "models": {"logreg": {"kind": "logreg"}},
        "runs": [{"feature_sets": ["prosody"], "models": ["logreg"]}],
        "evaluation": {"n_bootstrap": 50},
    }
    run_snakemake(tmp_path, config)
    m = read_metrics(tmp_path, "prosody-logreg", "comp")
    assert m["protocol"] == "stratified_kfold" and not m["speaker_independent"]  # no speakers known
    assert m["labels"] == sorted(codes)  # named through label_map
    sub = pd.read_csv(tmp_path / "results/comp/submission.csv", dtype=str)
    assert set(sub["label"]) <= set(codes.values())  # written back in the competition's integer coding
    assert "speaker-dependent" in (tmp_path / "results/report.html").read_text()


def test_feature_groups_outside_the_runs_table_stop_the_run_before_any_job(tmp_path):
    config = {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8}],
        "models": {"pick": {"kind": "logreg", "feature_groups": [["prosody"], ["mfcc", "spectral"]]}},
        "runs": [{"feature_sets": ["mfcc_deltas"], "models": ["pick"]}],
    }
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0
    assert (
        "dataset 'demo', run 'mfcc_deltas-pick': feature_groups ['prosody'] name ['prosody'], "
        "which the table 'mfcc_deltas' does not hold"
    ) in proc.stdout + proc.stderr
    config["runs"] = [{"feature_sets": ["all"], "models": ["pick"]}]
    assert run_snakemake(tmp_path, config, "-n", check=False).returncode == 0
