"""Late fusion of runs: combiners fitted on training folds only, and fusion runs in the workflow."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import PROBA_ATOL, SNAKEMAKE
from sklearn.linear_model import LogisticRegression

from serflow.models.fusion import final_combiner, fuse_runs

LABELS = ["angry", "neutral", "sad"]


def base_run(seed, folds, y, skill):
    """Out-of-fold predictions of a fake run: probabilities leaning to the truth by ``skill``."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(3), size=len(y)) + skill * np.eye(3)[y]
    proba /= proba.sum(axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "id": [f"c{i:03d}" for i in range(len(y))],
            "speaker": [f"s{f}" for f in folds],
            "label": np.array(LABELS)[y],
            "fold": folds,
            "prediction": np.array(LABELS)[proba.argmax(axis=1)],
        }
    )
    for i, lab in enumerate(LABELS):
        frame[f"proba_{lab}"] = proba[:, i]
    return frame


def facts(n_folds=4):
    return {
        "protocol": "loso",
        "speaker_independent": True,
        "n_folds": n_folds,
        "n_speakers": n_folds,
        "speakers": "given",
        "labels": LABELS,
        "evaluation": {"random_state": 0},
        "n_features": 10,
        "speaker_norm": "none",
        "folds": [
            {"fold": k, "n_train": 0, "n_test": 0, "test_speakers": [f"s{k}"], "params": {}}
            for k in range(n_folds)
        ],
    }


@pytest.fixture
def two_runs():
    folds = np.repeat(np.arange(4), 30)
    y = np.tile(np.arange(3), 40)
    runs = {"a-lr": base_run(0, folds, y, 0.6), "b-svc": base_run(1, folds, y, 0.2)}
    return runs, {name: facts() for name in runs}, folds, y


def proba(frame):
    return frame[[f"proba_{lab}" for lab in LABELS]].to_numpy()


def test_each_fold_is_combined_with_what_its_training_folds_gave(two_runs):
    runs, info, folds, y = two_runs
    mean, _ = fuse_runs(runs, info, "mean")
    np.testing.assert_allclose(proba(mean), (proba(runs["a-lr"]) + proba(runs["b-svc"])) / 2, atol=1e-12)
    weighted, out = fuse_runs(runs, info, "weighted")
    stacked, _ = fuse_runs(runs, info, "stacked")
    from sklearn.metrics import balanced_accuracy_score

    for k in range(4):
        train, test = folds != k, folds == k
        uar = [balanced_accuracy_score(y[train], proba(r)[train].argmax(axis=1)) for r in runs.values()]
        w = np.array(uar) / sum(uar)
        assert out["folds"][k]["params"]["weights"] == pytest.approx(w, abs=1e-6)
        expected = w[0] * proba(runs["a-lr"])[test] + w[1] * proba(runs["b-svc"])[test]
        np.testing.assert_allclose(proba(weighted)[test], expected, atol=1e-12)
        side = np.hstack([proba(r) for r in runs.values()])
        lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(side[train], y[train])
        np.testing.assert_allclose(proba(stacked)[test], lr.predict_proba(side[test]), atol=PROBA_ATOL)
    assert out["model"]["kind"] == "fusion" and out["n_clips"] == 120 and out["n_features"] == 20
    final = final_combiner(runs, info, "weighted")
    assert final.weights[0] > final.weights[1]  # the better run weighs more


def test_a_folds_own_labels_never_reach_its_combiner(two_runs):
    runs, info, folds, y = two_runs
    before = {m: fuse_runs(runs, info, m)[0] for m in ("weighted", "stacked")}
    changed = {n: r.copy() for n, r in runs.items()}
    flip = folds == 2
    for r in changed.values():  # fold 2's labels rotated: its combiner must not notice
        r.loc[flip, "label"] = np.array(LABELS)[(y[flip] + 1) % 3]
    for method, fused in before.items():
        after, _ = fuse_runs(changed, info, method)
        np.testing.assert_allclose(proba(after)[flip], proba(fused)[flip], atol=1e-12)
        assert not np.allclose(proba(after)[~flip], proba(fused)[~flip])  # the other folds do notice


def test_runs_on_other_folds_or_labels_are_refused(two_runs):
    runs, info, folds, _ = two_runs
    other = runs["b-svc"].copy()
    other["fold"] = (folds + 1) % 4
    with pytest.raises(ValueError, match="evaluated on different folds"):
        fuse_runs({"a-lr": runs["a-lr"], "b-svc": other}, info, "mean")
    info = {**info, "b-svc": {**info["b-svc"], "labels": ["angry", "sad"]}}
    with pytest.raises(ValueError, match="predict different labels"):
        fuse_runs(runs, info, "mean")


def test_clips_a_run_lacks_and_one_fold_protocols(two_runs):
    from serflow.models.fusion import fuse_test

    runs, info, folds, y = two_runs
    short = {"a-lr": runs["a-lr"], "b-svc": runs["b-svc"].iloc[5:]}  # a table dropped 5 clips
    fused, out = fuse_runs(short, info, "mean")
    assert out["n_clips"] == 115 and list(fused["id"]) == list(runs["a-lr"]["id"].iloc[5:])
    swapped, _ = fuse_runs({"b-svc": short["b-svc"], "a-lr": runs["a-lr"]}, info, "mean")
    np.testing.assert_allclose(proba(swapped), proba(fused), atol=1e-12)
    combiner = final_combiner(runs, info, "mean")
    test = {n: r.drop(columns=["label", "fold", "speaker"]) for n, r in short.items()}
    for order in (["a-lr", "b-svc"], ["b-svc", "a-lr"]):  # either order: the clips both predicted
        assert list(fuse_test({n: test[n] for n in order}, combiner, LABELS)["id"]) == list(fused["id"])
    apart = {"a-lr": runs["a-lr"].iloc[:5], "b-svc": runs["b-svc"].iloc[5:]}
    with pytest.raises(ValueError, match="runs a-lr, b-svc share no clip"):
        fuse_runs(apart, info, "mean")
    # one fold (a hold-out split): nothing to fit a combiner on, so the scored and saved one is the mean
    one = {n: r.assign(fold=0) for n, r in runs.items()}
    held, out = fuse_runs(one, {n: facts(1) for n in one}, "stacked")
    assert out["model"]["method"] == "mean" and out["folds"][0]["params"]["method"] == "mean"
    final = final_combiner(one, {n: facts(1) for n in one}, "stacked")
    assert final.method == "mean"
    np.testing.assert_allclose(final.predict_proba([proba(r) for r in one.values()]), proba(held), atol=1e-12)


def test_the_plan_adds_fusion_runs_and_names_what_is_missing():
    from test_plan import config

    from serflow.plan import PlanError, build_plan

    models = {"lr": {"kind": "logreg"}, "svc": {"kind": "svc"}}
    runs = [{"feature_sets": ["prosody"], "models": ["lr", "svc"]}]
    plan = build_plan(
        config(models=models, runs=runs, fusions={"both": {"runs": ["prosody-lr", "prosody-svc"]}})
    )
    assert plan.datasets["demo"].run_names[-1] == "fusion-both"
    assert plan.fusions["both"]["method"] == "mean"
    with pytest.raises(PlanError, match="fusions: x: runs': no dataset has all of them"):
        build_plan(config(models=models, runs=runs, fusions={"x": {"runs": ["prosody-lr", "mfcc-lr"]}}))
    with pytest.raises(PlanError, match="the name fusion is kept for fusion runs"):
        build_plan(config(models=models, runs=runs, feature_sets={"fusion": ["prosody"]}))


def check_fusion_run(workdir, name, runs):
    """A stacked fusion run of the demo corpus in a finished workflow: its metrics, comparison,
    submission, card, and serflow predict giving its test predictions (called by
    tests/test_augmentation.py, whose workflow run holds one)."""
    folder = workdir / "results/demo/runs"
    fused = json.loads((folder / f"fusion-{name}/metrics.json").read_text())
    assert fused["model"]["runs"] == runs and fused["model"]["method"] == "stacked"
    assert fused["n_clips"] == json.loads((folder / runs[0] / "metrics.json").read_text())["n_clips"]
    assert len(fused["folds"]) == fused["n_folds"] and fused["folds"][0]["params"] == {"method": "stacked"}
    comparison = json.loads((workdir / "results/demo/comparison.json").read_text())
    assert f"fusion-{name}" in comparison["runs"]
    assert len(pd.read_csv(workdir / f"results/demo/submissions/fusion-{name}.csv")) == 6
    card = (folder / f"fusion-{name}/model_card.md").read_text()
    assert f"Late fusion of {len(runs)} runs of `demo`: a logistic regression" in card
    out = workdir / "predicted.csv"
    serflow = str(SNAKEMAKE).replace("snakemake", "serflow")
    corpus = workdir / "results/demo/corpus/test.csv"
    cmd = [serflow, "predict", str(folder / f"fusion-{name}"), str(corpus), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    predicted = pd.read_csv(out)
    test = pd.read_parquet(folder / f"fusion-{name}/test_predictions.parquet")
    np.testing.assert_allclose(proba(predicted), proba(test), atol=1e-6)  # float32 features, re-extracted
    assert list(predicted["prediction"]) == list(test["prediction"])
