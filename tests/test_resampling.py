"""Class rebalancing with imbalanced-learn resamplers inside the training folds."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake

from serflow.evaluation.protocols import make_folds
from serflow.models.pipeline import fit_model
from serflow.models.training import dumps_metrics, evaluate_run


def imbalanced(n_speakers=5, per_speaker=(12, 6, 3), seed=0):
    """(x, y, speakers): three classes of 12 / 6 / 3 clips per speaker, speakers shifted."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.repeat(np.arange(3), per_speaker) for _ in range(n_speakers)])
    speakers = np.repeat([f"s{k}" for k in range(n_speakers)], sum(per_speaker))
    x = rng.normal(size=(len(y), 6)) + y[:, None] * 1.2
    return x, y, speakers


def table_of(x, y, speakers):
    t = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    t.insert(0, "id", [f"c{i:03d}" for i in range(len(y))])
    t.insert(1, "label", np.array(["angry", "neutral", "sad"])[y])
    t.insert(2, "speaker", speakers)
    t.insert(3, "split", "train")
    return t, [f"f{i}" for i in range(x.shape[1])]


@pytest.mark.parametrize("method", ["smote", "random_over", "random_under"])
def test_the_resampler_sees_the_training_fold_only(method):
    x, y, speakers = imbalanced()
    x[speakers == "s0"] += 100.0  # the held-out speaker is far off
    train, test = next((tr, te) for tr, te in make_folds(y, speakers, "loso") if set(speakers[te]) == {"s0"})
    fitted = fit_model("logreg", x[train], y[train], resample={"method": method})
    # what the estimator was fitted on: the same steps, the same seed, up to the resampler
    rows, classes = fitted[:-1].fit_resample(x[train], y[train])
    counts = np.bincount(classes)
    if method == "random_under":
        assert (counts == np.bincount(y[train]).min()).all()
    else:
        assert (counts == np.bincount(y[train]).max()).all()
    scaled_test = fitted.named_steps["scale"].transform(x[test])
    assert rows.max() < scaled_test.min()  # no resampled row comes near a test clip
    np.testing.assert_allclose(fitted.named_steps["scale"].mean_, x[train].mean(axis=0))


def test_counts_per_fold_are_recorded_and_reruns_give_the_same_metrics():
    x, y, speakers = imbalanced()
    table, columns = table_of(x, y, speakers)
    model = {"kind": "logreg", "resample": {"method": "smote", "params": {"k_neighbors": 3}}}
    predictions, metrics = evaluate_run(table, columns, model, {"protocol": "loso", "n_bootstrap": 50})
    _, again = evaluate_run(table, columns, model, {"protocol": "loso", "n_bootstrap": 50})
    assert dumps_metrics(metrics) == dumps_metrics(again)  # seeded: the same computation
    assert len(predictions) == len(table) and metrics["n_clips"] == len(table)  # copies never scored
    folds = make_folds(y, speakers, "loso")
    for fold, (train, _) in zip(metrics["folds"], folds):
        before = fold["train_per_label"]["before"]
        assert (
            before
            == {"angry": 48, "neutral": 24, "sad": 12}
            == {lab: int(n) for lab, n in zip(("angry", "neutral", "sad"), np.bincount(y[train]))}
        )
        assert fold["train_per_label"]["after"] == {"angry": 48, "neutral": 48, "sad": 48}
    assert metrics["model"]["resample"]["method"] == "smote"
    _, plain = evaluate_run(table, columns, {"kind": "logreg"}, {"protocol": "loso", "n_bootstrap": 50})
    assert "train_per_label" not in plain["folds"][0] and plain["uar"] != metrics["uar"]


def test_the_plan_refuses_resampling_beside_class_weights_or_for_networks():
    from test_plan import CNN, config

    from serflow.plan import PlanError, build_plan

    both = {"kind": "logreg", "class_weight": "balanced", "resample": {"method": "smote"}}
    with pytest.raises(PlanError, match="resample and class_weight both rebalance the classes"):
        build_plan(config(models={"m": both}, runs=[{"feature_sets": ["prosody"], "models": ["m"]}]))
    cnn = {
        **CNN,
        "models": {"c": {"kind": "cnn", "params": {"n_frames": 50}, "resample": {"method": "smote"}}},
    }
    cnn["runs"] = [{"feature_sets": ["logmel"], "models": ["c"]}]
    with pytest.raises(PlanError, match="a cnn model takes no resample"):
        build_plan(config(**cnn))


@pytest.mark.slow
def test_resampled_augmented_and_fused_runs_in_the_workflow_report_and_model_card(tmp_path, browser):
    """One demo workflow for three levers (a workflow run costs seconds of imports per job):
    resampling here, augmentation (``check_augmented_run``) and fusion (``check_fusion_run``)."""
    from test_augmentation import AUGMENTED_CONFIG, check_augmented_run
    from test_fusion import check_fusion_run

    config = {**AUGMENTED_CONFIG}
    config["models"] = {
        **config["models"],
        "lr_over": {"kind": "logreg", "resample": {"method": "random_over"}},
    }
    config["runs"] = [{"feature_sets": ["prosody"], "models": ["lr", "lr_over", "lr_aug"]}]
    run_snakemake(tmp_path, config)
    run = tmp_path / "results/demo/runs/prosody-lr_over"
    metrics = json.loads((run / "metrics.json").read_text())
    for fold in metrics["folds"]:
        counts = fold["train_per_label"]
        assert sum(counts["before"].values()) == fold["n_train"]
        assert len(set(counts["after"].values())) == 1  # every class brought to the largest
    card = (run / "model_card.md").read_text()
    assert "Resampled with `random_over`" in card and "| after resampling |" in card
    browser.get((tmp_path / "results/report.html").as_uri())
    details = browser.find_element("id", "run-demo-prosody-lr_over")
    details.find_element("tag name", "summary").click()  # open the run's details
    text = details.text
    assert "training sets resampled with random_over (imbalanced-learn)" in text
    assert "Training clips per class in each fold, before → after resampling" in text
    first = metrics["folds"][0]["train_per_label"]
    label = metrics["labels"][0]
    assert f"{first['before'][label]} → {first['after'][label]}" in text
    tags = browser.find_elements("css selector", "span.lever")
    assert sorted(t.text for t in tags) == ["random_over", "sad_noise"]  # the plain and fused runs have none
    check_augmented_run(tmp_path, browser)
    check_fusion_run(tmp_path, "both", ["prosody-lr", "prosody-lr_aug"])
